//! The API's one error type: an HTTP status, the AWS-style error code (also in the
//! `x-amzn-ErrorType` header, as AWS's JSON services send it) and a message.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use vigil_store::StoreError;

use crate::sigv4::AuthError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    pub fn denied(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "AccessDeniedException", message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// A fault of ours: the details go to the log, the caller gets none.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "the server failed to handle the request",
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NoIncident(_) => ApiError::not_found(e.to_string()),
            StoreError::Transition { .. } | StoreError::NotDead { .. } => {
                ApiError::new(StatusCode::CONFLICT, "ConflictException", e.to_string())
            }
            StoreError::Cursor(_) => ApiError::bad_request(e.to_string()),
            e => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "__type": self.code, "message": self.message }));
        let mut r = (self.status, body).into_response();
        r.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        r
    }
}
