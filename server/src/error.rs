//! One error type with stable codes, mapped to HTTP status and a JSON body in one table.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    UnsupportedMediaType,
    CrossSite,
    Unauthenticated,
    InvalidCredentials,
    LockedOut,
    Forbidden,
    NotFound,
    Conflict,
    Validation,
    WeakPassword,
    Unavailable,
    Busy,
    TooLarge,
    Internal,
}

/// The one table: kind -> (stable code, HTTP status). Codes are part of the API contract.
const TABLE: [(ErrorKind, &str, u16); 15] = [
    (ErrorKind::BadRequest, "request.invalid", 400),
    (ErrorKind::UnsupportedMediaType, "request.unsupported_media_type", 415),
    (ErrorKind::CrossSite, "request.cross_site", 403),
    (ErrorKind::Unauthenticated, "auth.unauthenticated", 401),
    (ErrorKind::InvalidCredentials, "auth.invalid_credentials", 401),
    (ErrorKind::LockedOut, "auth.locked_out", 429),
    (ErrorKind::Forbidden, "auth.forbidden", 403),
    (ErrorKind::NotFound, "not_found", 404),
    (ErrorKind::Conflict, "conflict", 409),
    (ErrorKind::Validation, "validation", 422),
    (ErrorKind::WeakPassword, "auth.weak_password", 422),
    (ErrorKind::Unavailable, "service.unavailable", 503),
    (ErrorKind::Busy, "service.busy", 429),
    (ErrorKind::TooLarge, "request.too_large", 413),
    (ErrorKind::Internal, "internal", 500),
];

impl ErrorKind {
    pub fn code(self) -> &'static str {
        TABLE.iter().find(|(k, _, _)| *k == self).map_or("internal", |(_, c, _)| c)
    }

    pub fn status(self) -> StatusCode {
        let raw = TABLE.iter().find(|(k, _, _)| *k == self).map_or(500, |(_, _, s)| *s);
        StatusCode::from_u16(raw).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

#[derive(Debug, Clone)]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
    /// Seconds, sent as `Retry-After` (lockouts, overload).
    pub retry_after: Option<u64>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AppError { kind, message: message.into(), retry_after: None }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, m)
    }
    pub fn validation(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, m)
    }
    pub fn unauthenticated() -> Self {
        Self::new(ErrorKind::Unauthenticated, "sign in first")
    }
    /// Logs the detail, shows the client a generic message.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorKind::Internal, "internal error; see the server log")
    }
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.code())
    }
}

impl std::error::Error for AppError {}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.kind.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            resp.insert_header(("Retry-After", secs.to_string()));
        }
        resp.json(serde_json::json!({"error": {"code": self.code(), "message": self.message}}))
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::not_found("not found"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                AppError::conflict("that name is already taken")
            }
            Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                AppError::conflict("that change refers to something that does not exist")
            }
            other => AppError::internal(format!("database: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row() {
        for (kind, code, status) in TABLE {
            assert_eq!(TABLE.iter().filter(|(k, _, _)| *k == kind).count(), 1, "{code}");
            assert_eq!(kind.status().as_u16(), status);
        }
    }

    #[test]
    fn json_body_has_code_and_message() {
        let resp = AppError::new(ErrorKind::LockedOut, "wait").with_retry_after(60).error_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "60");
    }
}
