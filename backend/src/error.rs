//! One error kind for the whole daemon, and the one place that turns it into
//! Docker's error shape: `{"message": "..."}` with the matching status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// What went wrong, as the API reports it (moby's errdefs, reduced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is malformed or asks for something invalid.
    BadRequest,
    /// 403: not allowed in this state.
    Forbidden,
    /// 404: no such object.
    NotFound,
    /// 409: conflicts with existing state (name in use, in-use volume).
    Conflict,
    /// 413: the request body is larger than the route takes.
    PayloadTooLarge,
    /// 500: the engine failed.
    Internal,
    /// 501: not provided by berth.
    NotImplemented,
    /// 503: not available in this node's state (swarm mode: this node is in no swarm).
    Unavailable,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error on its way to a client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
}

/// axum's own rejections (malformed JSON, a body over the limit, a bad path
/// or query) in Docker's shape, never axum's plain text.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        match r {
            J::BytesRejection(b) => b.into(),
            J::MissingJsonContentType(_) => ApiError::bad_request("Content-Type specified must be 'application/json'"),
            other => ApiError::bad_request(format!("invalid JSON: {}", other.body_text())),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorKind::PayloadTooLarge, "request body too large")
        } else {
            ApiError::bad_request(format!("error reading the request body: {}", r.body_text()))
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.kind == ErrorKind::Internal {
            tracing::error!(message = %crate::text::clip(&self.message), "request failed");
        }
        (self.kind.status(), Json(serde_json::json!({ "message": self.message }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::network::netlink::NetError> for ApiError {
    fn from(e: crate::network::netlink::NetError) -> Self {
        use crate::network::netlink::NetError;
        let kind = match &e {
            NetError::Conflict(_) => ErrorKind::Conflict,
            NetError::Invalid(_) => ErrorKind::BadRequest,
            NetError::Forbidden(_) => ErrorKind::Forbidden,
            NetError::NotFound(_) => ErrorKind::NotFound,
            NetError::Netlink(_) | NetError::Io { .. } => ErrorKind::Internal,
        };
        ApiError::new(kind, e.to_string())
    }
}
