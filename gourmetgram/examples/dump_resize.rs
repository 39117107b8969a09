// Debug aid: decode an image (and resize it as preprocess does); raw RGB to stdout.
use std::io::Write;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&a[1]).expect("image");
    let (w, h, rgb) = gourmetgram::preprocess::decode_rgb(&bytes).expect("decodes");
    let out = if a.get(2).map(String::as_str) == Some("decode") {
        rgb
    } else {
        let (rw, rh) = gourmetgram::preprocess::resized_size(w, h);
        gourmetgram::preprocess::resample_bilinear(w, h, &rgb, rw, rh)
    };
    std::io::stdout().write_all(&out).expect("stdout");
}
