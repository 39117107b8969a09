//! The original app's preprocessing, matched to torchvision on PIL images:
//! decode, `.convert("RGB")`, `Resize(256)` (PIL's bilinear convolution
//! resampling of the shorter side, which is antialiased when shrinking),
//! `CenterCrop(224)`, `ToTensor`, `Normalize(mean, std)`.
//!
//! Bit-exact with PIL, because eight-bit rounding differences move the logits
//! by ~0.05 (measured: fast_image_resize's bilinear filter differs from
//! Pillow's by ±1 on a fifth of the pixels, and the image crate's JPEG
//! decoder from libjpeg-turbo's by up to 4):
//! - JPEGs are decoded by libjpeg-turbo (PIL's decoder) with its defaults
//!   (accurate integer IDCT, fancy upsampling);
//! - resizing is Pillow's two-pass convolution (`resample_bilinear` below:
//!   the same coefficients, 22-bit fixed point and rounding).
//!
//! tests/parity.rs proves it: decoded and resized pixels hash the same as
//! PIL's, and the logits match PyTorch's within 1e-4.

use image::ImageReader;
use std::io::Cursor;

pub const RESIZE: u32 = 256;
pub const CROP: u32 = 224;
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Decoded images larger than this many pixels are refused (a 40 MP photo
/// decodes to 120 MB of RGB; a decompression bomb to much more).
pub const MAX_PIXELS: u64 = 50_000_000;

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("the upload is not an image this service can read (JPEG, PNG, WebP, GIF or BMP)")]
    NotAnImage,
    #[error("the image could not be decoded: {0}")]
    Decode(String),
    #[error("the image is too large ({0}×{1} pixels; at most {MAX_PIXELS} pixels)")]
    TooLarge(u32, u32),
    #[error("the image is empty")]
    Empty,
}

/// An image as the network takes it: CHW, 3×224×224, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Input(pub Vec<f32>);

/// Decodes the bytes of an uploaded file into 8-bit RGB, as PIL's
/// `Image.open(f).convert("RGB")` does (alpha dropped, gray replicated).
pub fn decode_rgb(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    if let Some(decoded) = decode_jpeg(bytes)? {
        return Ok(decoded);
    }
    decode_other(bytes)
}

/// A JPEG through libjpeg-turbo, or None if `bytes` is not a JPEG it can
/// turn into RGB (CMYK ones go through the image crate).
fn decode_jpeg(bytes: &[u8]) -> Result<Option<(u32, u32, Vec<u8>)>, PreprocessError> {
    if !bytes.starts_with(&[0xff, 0xd8]) {
        return Ok(None);
    }
    let header = turbojpeg::read_header(bytes).map_err(|e| PreprocessError::Decode(e.to_string()))?;
    let (w, h) = (header.width as u32, header.height as u32);
    check_size(w, h)?;
    if header.colorspace == turbojpeg::Colorspace::CMYK || header.colorspace == turbojpeg::Colorspace::YCCK {
        return Ok(None);
    }
    let img: turbojpeg::Image<Vec<u8>> =
        turbojpeg::decompress(bytes, turbojpeg::PixelFormat::RGB).map_err(|e| PreprocessError::Decode(e.to_string()))?;
    let (w, h) = (img.width as u32, img.height as u32);
    let row = img.width * 3;
    let rgb = if img.pitch == row { img.pixels } else { img.pixels.chunks(img.pitch).flat_map(|r| r[..row].iter().copied()).collect() };
    Ok(Some((w, h, rgb)))
}

fn check_size(w: u32, h: u32) -> Result<(), PreprocessError> {
    if w == 0 || h == 0 {
        return Err(PreprocessError::Empty);
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(PreprocessError::TooLarge(w, h));
    }
    Ok(())
}

/// PNG, WebP, GIF, BMP (and CMYK JPEGs) through the image crate.
fn decode_other(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), PreprocessError> {
    use image::ImageDecoder;
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| PreprocessError::Decode(e.to_string()))?;
    if reader.format().is_none() {
        return Err(PreprocessError::NotAnImage);
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| PreprocessError::Decode(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    check_size(w, h)?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => PreprocessError::TooLarge(w, h),
        other => PreprocessError::Decode(other.to_string()),
    })?;
    let rgb = img.to_rgb8();
    Ok((rgb.width(), rgb.height(), rgb.into_raw()))
}

/// torchvision's `Resize(256)` output size for an int size: the shorter side
/// becomes 256 and the longer one `int(256 * long / short)`.
pub fn resized_size(w: u32, h: u32) -> (u32, u32) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    if short == RESIZE {
        return (w, h);
    }
    let new_long = (f64::from(RESIZE) * f64::from(long) / f64::from(short)) as u32;
    if w <= h {
        (RESIZE, new_long)
    } else {
        (new_long, RESIZE)
    }
}

/// torchvision's `CenterCrop` offsets: `int(round((size - crop) / 2.0))`,
/// with Python's round-half-to-even.
pub fn crop_offset(size: u32, crop: u32) -> u32 {
    ((f64::from(size) - f64::from(crop)) / 2.0).round_ties_even().max(0.0) as u32
}

/// Resize(256) → CenterCrop(224) → ToTensor → Normalize on 8-bit RGB pixels.
pub fn to_input(w: u32, h: u32, rgb: Vec<u8>) -> Result<Input, PreprocessError> {
    let (rw, rh) = resized_size(w, h);
    if rw == 0 || rh == 0 {
        return Err(PreprocessError::Empty);
    }
    let resized = if (rw, rh) == (w, h) { rgb } else { resample_bilinear(w, h, &rgb, rw, rh) };
    Ok(crop_normalize(rw, rh, &resized))
}

/// Pillow's bilinear filter: a triangle of support 1.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's fixed point for 8-bit resampling (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// One axis' resampling plan: for each output pixel, the first input pixel
/// and the fixed-point weights of the input pixels from there.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i32>>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear
/// filter over the whole axis: the filter is widened by the scale when
/// shrinking (antialiasing), weights are normalised in double precision and
/// rounded half away from zero into 22-bit fixed point.
fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle's support (1.0) times the scale
    let ss = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut k: Vec<f64> = (0..n).map(|x| triangle(((x + xmin) as f64 - center + 0.5) * ss)).collect();
        let ww: f64 = k.iter().sum();
        if ww != 0.0 {
            k.iter_mut().for_each(|v| *v /= ww);
        }
        let one = f64::from(1u32 << PRECISION_BITS);
        weights.push(k.iter().map(|&v| if v < 0.0 { (-0.5 + v * one) as i32 } else { (0.5 + v * one) as i32 }).collect());
        bounds.push((xmin, n));
    }
    Coeffs { bounds, weights }
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `Image.resize(size, BILINEAR)` on RGB: two one-axis passes,
/// each rounded to 8 bits. Pillow (since 13) runs the vertical pass first
/// when the height shrinks by more than twice as many pixels as the width
/// does, else the horizontal one; the order changes the rounding, so it is
/// followed here.
pub fn resample_bilinear(w: u32, h: u32, rgb: &[u8], ow: u32, oh: u32) -> Vec<u8> {
    let (w, h, ow, oh) = (w as usize, h as usize, ow as usize, oh as usize);
    match (ow != w, oh != h) {
        (false, false) => rgb.to_vec(),
        (true, false) => pass(rgb, w, h, Axis::X, &coeffs(w, ow)),
        (false, true) => pass(rgb, w, h, Axis::Y, &coeffs(h, oh)),
        (true, true) => {
            let vertical_first = h > oh && (h as i64 - oh as i64) > 2 * (w as i64 - ow as i64);
            if vertical_first {
                let tmp = pass(rgb, w, h, Axis::Y, &coeffs(h, oh));
                pass(&tmp, w, oh, Axis::X, &coeffs(w, ow))
            } else {
                let tmp = pass(rgb, w, h, Axis::X, &coeffs(w, ow));
                pass(&tmp, ow, h, Axis::Y, &coeffs(h, oh))
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Axis {
    X,
    Y,
}

/// One resampling pass of a `w`×`h` RGB image along `axis`.
fn pass(src: &[u8], w: usize, h: usize, axis: Axis, c: &Coeffs) -> Vec<u8> {
    let half = 1i32 << (PRECISION_BITS - 1);
    match axis {
        Axis::X => {
            let ow = c.bounds.len();
            let mut out = vec![0u8; ow * h * 3];
            // Pixels widened to four i32 lanes (RGB and a spare), so that a
            // tap is one vector multiply-add.
            let mut wide = vec![[0i32; 4]; w];
            for (src_row, out_row) in src.chunks_exact(w * 3).zip(out.chunks_exact_mut(ow * 3)) {
                for (d, p) in wide.iter_mut().zip(src_row.chunks_exact(3)) {
                    *d = [i32::from(p[0]), i32::from(p[1]), i32::from(p[2]), 0];
                }
                for ((&(first, n), k), px) in c.bounds.iter().zip(&c.weights).zip(out_row.chunks_exact_mut(3)) {
                    let mut ss = [half; 4];
                    for (p, &kt) in wide[first..first + n].iter().zip(k) {
                        for l in 0..4 {
                            ss[l] += p[l] * kt;
                        }
                    }
                    px[0] = clip8(ss[0]);
                    px[1] = clip8(ss[1]);
                    px[2] = clip8(ss[2]);
                }
            }
            out
        }
        Axis::Y => {
            let row = w * 3;
            let oh = c.bounds.len();
            let mut out = vec![0u8; oh * row];
            let mut acc = vec![0i32; row];
            for ((&(first, n), k), out_row) in c.bounds.iter().zip(&c.weights).zip(out.chunks_exact_mut(row)) {
                acc.iter_mut().for_each(|a| *a = half);
                for (t, &kt) in k.iter().enumerate().take(n) {
                    let src_row = &src[(first + t) * row..(first + t + 1) * row];
                    for (a, &p) in acc.iter_mut().zip(src_row) {
                        *a += i32::from(p) * kt;
                    }
                }
                for (o, &a) in out_row.iter_mut().zip(&acc) {
                    *o = clip8(a);
                }
            }
            out
        }
    }
}

/// CenterCrop(224) of a `w`×`h` RGB image (padding with zeros where the image
/// is smaller, as torchvision does), then ToTensor and Normalize.
fn crop_normalize(w: u32, h: u32, rgb: &[u8]) -> Input {
    let c = CROP as usize;
    let mut out = vec![0f32; 3 * c * c];
    // torchvision pads a too-small image to the crop size (fill 0) first.
    let (pad_l, pad_t) = (CROP.saturating_sub(w) / 2, CROP.saturating_sub(h) / 2);
    let (pw, ph) = (w.max(CROP), h.max(CROP));
    let (left, top) = (crop_offset(pw, CROP), crop_offset(ph, CROP));
    for y in 0..c {
        for x in 0..c {
            let (px, py) = (x as i64 + i64::from(left) - i64::from(pad_l), y as i64 + i64::from(top) - i64::from(pad_t));
            let inside = px >= 0 && py >= 0 && px < i64::from(w) && py < i64::from(h);
            for ch in 0..3 {
                let v = if inside { rgb[(py as usize * w as usize + px as usize) * 3 + ch] } else { 0 };
                out[ch * c * c + y * c + x] = (f32::from(v) / 255.0 - MEAN[ch]) / STD[ch];
            }
        }
    }
    Input(out)
}

/// Bytes of an uploaded file to the network's input.
pub fn preprocess(bytes: &[u8]) -> Result<Input, PreprocessError> {
    let (w, h, rgb) = decode_rgb(bytes)?;
    to_input(w, h, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_keeps_the_aspect_ratio_as_torchvision_does() {
        assert_eq!(resized_size(700, 233), (769, 256));
        assert_eq!(resized_size(257, 601), (256, 598));
        assert_eq!(resized_size(256, 300), (256, 300));
        assert_eq!(resized_size(120, 90), (341, 256));
    }

    #[test]
    fn crop_offsets_round_half_to_even() {
        assert_eq!(crop_offset(256, 224), 16);
        assert_eq!(crop_offset(225, 224), 0); // round(0.5) == 0
        assert_eq!(crop_offset(227, 224), 2); // round(1.5) == 2
        assert_eq!(crop_offset(341, 224), 58); // round(58.5) == 58
    }

    #[test]
    fn garbage_is_not_an_image() {
        assert!(matches!(preprocess(b"hello, this is text"), Err(PreprocessError::NotAnImage)));
        assert!(preprocess(&[0xff, 0xd8, 0xff, 0xe0, 0, 0x10]).is_err());
    }
}
