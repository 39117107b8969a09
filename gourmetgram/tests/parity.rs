//! The Rust service's logits against PyTorch's (torchvision preprocessing on
//! PIL images, the same fixed-seed weights): within 1e-4 for the bundled
//! test image and for images of other sizes, shapes and modes.
mod common;

use gourmetgram::classifier::Model;
use gourmetgram::preprocess;
use sha2::{Digest, Sha256};

#[test]
fn logits_match_pytorch_within_1e_4() {
    let dir = common::golden_dir();
    let golden = common::golden();
    let (model, info) = Model::load(&dir.join("food11.pth")).expect("the weights load");
    assert_eq!(info.sha256, golden["weights_sha256"].as_str().expect("sha"), "golden logits are for other weights");
    assert_eq!(info.tensors, 314, "a torchvision MobileNetV2 state_dict has 314 entries");
    let images = golden["images"].as_object().expect("images");
    assert!(images.len() >= 9, "the golden set has the test image and its variants");
    let mut worst = 0f64;
    let mut failures = Vec::new();
    for (name, g) in images {
        let file = g["file"].as_str().expect("file");
        let path = dir.join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Bit-exact pixels first: PIL's decode and Resize(256).
        let (w, h, rgb) = preprocess::decode_rgb(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (rw, rh) = preprocess::resized_size(w, h);
        let resized = preprocess::resample_bilinear(w, h, &rgb, rw, rh);
        assert_eq!(
            [rw, rh],
            [g["resized_size"][0].as_u64().expect("w") as u32, g["resized_size"][1].as_u64().expect("h") as u32],
            "{name}"
        );
        if hex::encode(Sha256::digest(&resized)) != g["resized_sha256"].as_str().expect("resized_sha256") {
            failures.push(format!("{name}: decoded and resized pixels differ from PIL's"));
        }
        let input = preprocess::preprocess(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let sum: f64 = input.0.iter().map(|&v| f64::from(v)).sum();
        let want_sum = g["input_sum"].as_f64().expect("input_sum");
        let logits = model.logits(&[&input])[0];
        let want: Vec<f64> = g["logits"].as_array().expect("logits").iter().map(|v| v.as_f64().expect("f64")).collect();
        let diff = logits.iter().zip(&want).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
        worst = worst.max(diff);
        eprintln!("{name}: max |Δlogit| = {diff:.2e}, input sum {sum:.4} vs {want_sum:.4}");
        if diff >= 1e-4 {
            failures.push(format!("{name}: logits differ from PyTorch's by {diff:e} (input sum {sum} vs {want_sum})"));
        }
        if gourmetgram::Prediction::from_logits(&logits).class != g["top"].as_str().expect("top") {
            failures.push(format!("{name}: top class differs"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("worst max |Δlogit| over {} images: {worst:.2e}", images.len());
}

#[test]
fn a_batch_gives_each_image_its_own_logits() {
    let dir = common::golden_dir();
    let (model, _) = Model::load(&dir.join("food11.pth")).expect("the weights load");
    let a = preprocess::preprocess(&common::test_image()).expect("test image");
    let b = preprocess::preprocess(&std::fs::read(dir.join("small_120x90.png")).expect("png")).expect("png decodes");
    let alone = [model.logits(&[&a])[0], model.logits(&[&b])[0]];
    let batched = model.logits(&[&a, &b, &a]);
    for (got, want) in batched.iter().zip([alone[0], alone[1], alone[0]]) {
        let diff = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "batched logits drift by {diff}");
    }
    assert_ne!(alone[0], alone[1], "different images give different logits");
}

#[test]
fn a_replica_shares_the_weights_and_gives_the_same_logits() {
    let dir = common::golden_dir();
    let (model, _) = Model::load(&dir.join("food11.pth")).expect("the weights load");
    let replica = model.replica();
    assert!(replica.shares_weights_with(&model), "no second copy of the weights");
    let input = preprocess::preprocess(&common::test_image()).expect("test image");
    assert_eq!(model.logits(&[&input]), replica.logits(&[&input]));
}

#[test]
fn wrong_checkpoints_are_refused_with_a_reason() {
    let dir = tempfile_dir();
    let not_zip = dir.join("notes.pth");
    std::fs::write(&not_zip, b"definitely not a checkpoint").expect("write");
    let err = Model::load(&not_zip).expect_err("text is not a checkpoint").to_string();
    assert!(err.contains("notes.pth"), "{err}");
    let err = Model::load(&dir.join("absent.pth")).expect_err("missing file");
    assert!(format!("{err:#}").contains("absent.pth"), "{err:#}");
    std::fs::remove_dir_all(dir).ok();
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gourmetgram-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}
