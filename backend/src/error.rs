//! One error kind for the whole daemon, below the API: the engine, images,
//! networks and builds say what went wrong in these terms, and only the API
//! (api/respond.rs) turns them into HTTP — Docker's `{"message": "..."}`
//! with the matching status.

/// What went wrong (moby's errdefs, reduced); each kind has one HTTP status.
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

pub type ApiResult<T> = Result<T, ApiError>;

/// A decision refused in `berth_shared::plan`: 404 or 409, in its words.
impl From<berth_shared::plan::Refused> for ApiError {
    fn from(r: berth_shared::plan::Refused) -> Self {
        use berth_shared::plan::Refused;
        match r {
            Refused::NotFound(m) => ApiError::not_found(m),
            Refused::Conflict(m) => ApiError::conflict(m),
        }
    }
}

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
