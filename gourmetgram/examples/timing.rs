// Where a request's time goes: decode, resize + crop + normalise, inference.
use std::time::Instant;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&a[1]).expect("image");
    let (model, _) = gourmetgram::classifier::Model::load(std::path::Path::new(&a[2])).expect("model");
    tch::set_num_threads(a.get(3).and_then(|t| t.parse().ok()).unwrap_or(1));
    for round in 0..6 {
        let t0 = Instant::now();
        let (w, h, rgb) = gourmetgram::preprocess::decode_rgb(&bytes).expect("decode");
        let t1 = Instant::now();
        let input = gourmetgram::preprocess::to_input(w, h, rgb).expect("input");
        let t2 = Instant::now();
        let _ = model.logits(&[&input]);
        let t3 = Instant::now();
        let batch: Vec<_> = (0..2).map(|_| &input).collect();
        let _ = model.logits(&batch);
        let t4 = Instant::now();
        if round > 0 {
            println!(
                "decode {:.1} ms, preprocess {:.1} ms, inference {:.1} ms, batch of 2 {:.1} ms",
                (t1 - t0).as_secs_f64() * 1e3,
                (t2 - t1).as_secs_f64() * 1e3,
                (t3 - t2).as_secs_f64() * 1e3,
                (t4 - t3).as_secs_f64() * 1e3
            );
        }
    }
}
