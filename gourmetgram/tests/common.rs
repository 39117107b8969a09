//! Where the setup step put the fixed-seed weights and PyTorch's golden
//! logits (scripts/gourmetgram.sh weights). Missing files fail the tests:
//! they are part of the test fixture, not optional.
#![allow(dead_code)]
use std::path::PathBuf;

pub fn golden_dir() -> PathBuf {
    let dir = std::env::var_os("GOURMETGRAM_GOLDEN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/lib/berth-lab/gourmetgram"));
    assert!(
        dir.join("golden.json").is_file() && dir.join("food11.pth").is_file(),
        "no golden logits in {}: run scripts/gourmetgram.sh setup",
        dir.display()
    );
    dir
}

pub fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(golden_dir().join("golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("golden.json parses")
}

pub fn test_image() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/static/test_image.jpeg")).expect("bundled test image")
}
