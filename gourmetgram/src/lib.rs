//! GourmetGram: a food-photo classifier (Food-11, MobileNetV2) served over
//! HTTP, in Rust with axum and tch (libtorch).
pub mod checkpoint;
pub mod classifier;
pub mod network;
pub mod preprocess;
pub mod web;

pub use classifier::{Classifier, Prediction, CLASSES};
