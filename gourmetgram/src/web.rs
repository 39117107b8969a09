//! The HTTP service: the original app's routes (`/`, `/predict`, `/test`)
//! and, beyond it, `/api/predict` (JSON, top-3 with probabilities) and
//! `/healthz` (which weights are loaded).
//!
//! Uploads are read into memory and decoded; their file names are never
//! used, as paths or otherwise. Bad input gets a 4xx with a message.

use crate::classifier::{Classifier, ClassifyError, Prediction};
use crate::preprocess::{self, PreprocessError};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::path::PathBuf;
use std::sync::Arc;

const PAGE: &str = include_str!("../templates/index.html");

#[derive(Debug)]
pub struct AppState {
    pub classifier: Classifier,
    /// The bundled test image `/test` classifies.
    pub test_image: PathBuf,
}

pub fn router(state: Arc<AppState>, max_upload: usize) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/predict", post(predict_html))
        .route("/api/predict", post(predict_json))
        .route("/test", get(test_html))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(max_upload))
        .with_state(state)
}

/// An error as the client sees it: a status and a sentence.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<PreprocessError> for ApiError {
    fn from(e: PreprocessError) -> Self {
        let status = match e {
            PreprocessError::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PreprocessError::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
            PreprocessError::Decode(_) | PreprocessError::Empty => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

impl From<ClassifyError> for ApiError {
    fn from(e: ClassifyError) -> Self {
        let status = match e {
            ClassifyError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ClassifyError::Stopped | ClassifyError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn index(State(state): State<Arc<AppState>>) -> Html<String> {
    let info = &state.classifier.info;
    Html(
        PAGE.replace("{{weights_file}}", &escape(&info.file))
            .replace("{{weights_sha256}}", &info.sha256)
            .replace("{{weights_sha256_short}}", &info.sha256[..12.min(info.sha256.len())])
            .replace("{{threads}}", &state.classifier.threads.to_string())
            .replace("{{workers}}", &state.classifier.workers.to_string()),
    )
}

/// The `file` field of a multipart upload, in memory.
async fn upload(mut form: Multipart) -> Result<Vec<u8>, ApiError> {
    loop {
        let field = form.next_field().await.map_err(multipart_error)?;
        let Some(field) = field else {
            return Err(ApiError(StatusCode::BAD_REQUEST, "no file uploaded: send a multipart form with a `file` field".into()));
        };
        if field.name() == Some("file") {
            let bytes = field.bytes().await.map_err(multipart_error)?;
            if bytes.is_empty() {
                return Err(ApiError(StatusCode::BAD_REQUEST, "the uploaded file is empty".into()));
            }
            return Ok(bytes.to_vec());
        }
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "the upload is too large".to_string()
    } else {
        format!("the upload could not be read: {}", e.body_text())
    };
    ApiError(status, msg)
}

/// A prediction and where its time went, for the `Server-Timing` header.
struct Classified {
    prediction: Prediction,
    decode_ms: f64,
    preprocess_ms: f64,
}

impl Classified {
    fn server_timing(&self) -> String {
        let p = &self.prediction;
        format!(
            "decode;dur={:.1}, preprocess;dur={:.1}, queue;dur={:.1}, inference;dur={:.1}",
            self.decode_ms, self.preprocess_ms, p.queue_ms, p.inference_ms
        )
    }
}

async fn classify_bytes(state: &AppState, bytes: Vec<u8>) -> Result<Classified, ApiError> {
    // Decoding and resizing are CPU work: off the async threads.
    let (input, decode_ms, preprocess_ms) = tokio::task::spawn_blocking(move || {
        let t0 = std::time::Instant::now();
        let (w, h, rgb) = preprocess::decode_rgb(&bytes)?;
        let t1 = std::time::Instant::now();
        let input = preprocess::to_input(w, h, rgb)?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Ok::<_, PreprocessError>((input, ms(t1 - t0), ms(t1.elapsed())))
    })
    .await
    .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "preprocessing failed".into()))??;
    let prediction = state.classifier.classify(input).await?;
    Ok(Classified { prediction, decode_ms, preprocess_ms })
}

fn badge(c: &Classified) -> Response {
    ([("server-timing", c.server_timing())], Html(format!(r#"<span class="badge">{}</span>"#, escape(c.prediction.class)))).into_response()
}

async fn predict_html(State(state): State<Arc<AppState>>, form: Multipart) -> Result<Response, ApiError> {
    let bytes = upload(form).await?;
    Ok(badge(&classify_bytes(&state, bytes).await?))
}

async fn predict_json(State(state): State<Arc<AppState>>, form: Multipart) -> Result<Response, ApiError> {
    let bytes = upload(form).await?;
    let c = classify_bytes(&state, bytes).await?;
    let p = &c.prediction;
    Ok(([("server-timing", c.server_timing())], Json(serde_json::json!({ "class": p.class, "top3": p.top3, "logits": p.logits })))
        .into_response())
}

async fn test_html(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let bytes = tokio::fs::read(&state.test_image).await.map_err(|e| {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("the bundled test image {} is unreadable: {e}", state.test_image.display()))
    })?;
    Ok(badge(&classify_bytes(&state, bytes).await?))
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let c = &state.classifier;
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "status": "ok",
            "model": "MobileNetV2 (torchvision layout), 11 classes",
            "weights": &*c.info,
            "classes": crate::classifier::CLASSES,
            "threads": c.threads,
            "workers": c.workers,
            "waiting": c.waiting(),
        })),
    )
        .into_response()
}
