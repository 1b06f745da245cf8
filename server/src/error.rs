//! One error type with stable codes, mapped to HTTP status and a JSON body in one table.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use ayush_models::ModelError;
use ayush_models::provider::UpstreamKind;
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
    /// A quota or rate limit an admin set (the reason says which kind).
    OverQuota,
    TooLarge,
    Internal,
}

/// The one table: kind -> (stable code, HTTP status). Codes are part of the API contract.
const TABLE: [(ErrorKind, &str, u16); 16] = [
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
    (ErrorKind::OverQuota, "quota.exceeded", 429),
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

/// Why a model could not answer, finer than the kind: a stable word a client can act on. The
/// JSON API sends it as `error.reason`; `/v1` as OpenAI's `code`, with OpenAI's status for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ContextLengthExceeded,
    RateLimitExceeded,
    /// A month's tokens or spending, which waiting a moment does not fix.
    QuotaExceeded,
    ModelNotFound,
    UpstreamBadRequest,
    UpstreamAuthFailed,
    UpstreamTimeout,
    UpstreamUnreachable,
    EgressRefused,
    UpstreamError,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::ContextLengthExceeded => "context_length_exceeded",
            Reason::RateLimitExceeded => "rate_limit_exceeded",
            Reason::QuotaExceeded => "insufficient_quota",
            Reason::ModelNotFound => "model_not_found",
            Reason::UpstreamBadRequest => "upstream_bad_request",
            Reason::UpstreamAuthFailed => "upstream_auth_failed",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::UpstreamUnreachable => "upstream_unreachable",
            Reason::EgressRefused => "egress_refused",
            Reason::UpstreamError => "upstream_error",
        }
    }
}

/// How a model's failure reads to a client, the one place it is decided: the kind (the JSON
/// API's code and status) and, where there is one, the reason. The person can fix a prompt
/// that is too long; a busy model or provider is worth retrying; a provider that fails
/// otherwise is unavailable; anything else is a bug.
pub fn classify(e: &ModelError) -> (ErrorKind, Option<Reason>) {
    match e {
        ModelError::Busy => (ErrorKind::Busy, Some(Reason::RateLimitExceeded)),
        ModelError::ContextTooLong { .. } => (ErrorKind::Validation, Some(Reason::ContextLengthExceeded)),
        ModelError::BadRequest(_) => (ErrorKind::Validation, None),
        ModelError::Upstream { kind, .. } => match kind {
            UpstreamKind::RateLimited => (ErrorKind::Busy, Some(Reason::RateLimitExceeded)),
            UpstreamKind::ContextTooLong => (ErrorKind::Validation, Some(Reason::ContextLengthExceeded)),
            UpstreamKind::ModelNotFound => (ErrorKind::Unavailable, Some(Reason::ModelNotFound)),
            UpstreamKind::BadRequest => (ErrorKind::Unavailable, Some(Reason::UpstreamBadRequest)),
            UpstreamKind::BadKey => (ErrorKind::Unavailable, Some(Reason::UpstreamAuthFailed)),
            UpstreamKind::Timeout => (ErrorKind::Unavailable, Some(Reason::UpstreamTimeout)),
            UpstreamKind::Unreachable => (ErrorKind::Unavailable, Some(Reason::UpstreamUnreachable)),
            UpstreamKind::Refused => (ErrorKind::Unavailable, Some(Reason::EgressRefused)),
            UpstreamKind::Failed => (ErrorKind::Unavailable, Some(Reason::UpstreamError)),
        },
        ModelError::Gguf(_)
        | ModelError::Unsupported(_)
        | ModelError::Tokenizer(_)
        | ModelError::Template(_)
        | ModelError::Load(_)
        | ModelError::Inference(_) => (ErrorKind::Internal, None),
    }
}

#[derive(Debug, Clone)]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
    /// Seconds, sent as `Retry-After` (lockouts, overload).
    pub retry_after: Option<u64>,
    pub reason: Option<Reason>,
    /// Headers that say more, sent with the error (a limit's `x-ratelimit-*`).
    pub headers: Vec<(&'static str, String)>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AppError { kind, message: message.into(), retry_after: None, reason: None, headers: Vec::new() }
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
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
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
        for (name, value) in &self.headers {
            resp.insert_header((*name, value.as_str()));
        }
        let mut error = serde_json::json!({"code": self.code(), "message": self.message});
        if let Some(reason) = self.reason {
            error["reason"] = reason.code().into();
        }
        resp.json(serde_json::json!({ "error": error }))
    }
}

impl From<ModelError> for AppError {
    fn from(e: ModelError) -> Self {
        AppError::from(&e)
    }
}

impl From<&ModelError> for AppError {
    fn from(e: &ModelError) -> Self {
        match classify(e) {
            (ErrorKind::Internal, _) => AppError::internal(e),
            (kind, reason) => {
                let mut error = AppError::new(kind, e.to_string());
                error.reason = reason;
                if kind == ErrorKind::Busy { error.with_retry_after(5) } else { error }
            }
        }
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

    #[test]
    fn model_failures_keep_their_reason_and_words() {
        let long = AppError::from(ModelError::ContextTooLong { tokens: 5000, window: 4096 });
        assert_eq!((long.kind, long.reason), (ErrorKind::Validation, Some(Reason::ContextLengthExceeded)));
        assert!(long.message.contains("4096"), "{}", long.message);

        let busy = AppError::from(ModelError::Busy);
        assert_eq!((busy.kind, busy.retry_after), (ErrorKind::Busy, Some(5)));

        let slow = ModelError::Upstream { kind: UpstreamKind::Timeout, message: "no answer in 60 s".into() };
        let slow = AppError::from(slow);
        assert_eq!(
            (slow.kind, slow.reason, slow.message.as_str()),
            (ErrorKind::Unavailable, Some(Reason::UpstreamTimeout), "no answer in 60 s")
        );

        // A bug's detail goes to the log, not to the client.
        let bug = AppError::from(ModelError::Inference("index out of range".into()));
        assert_eq!((bug.kind, bug.reason), (ErrorKind::Internal, None));
        assert!(!bug.message.contains("index"));
    }

    #[tokio::test]
    async fn a_reason_rides_along_in_the_json_body() {
        let resp = AppError::from(ModelError::ContextTooLong { tokens: 9, window: 8 }).error_response();
        assert_eq!(resp.status(), 422);
        let body = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "validation");
        assert_eq!(v["error"]["reason"], "context_length_exceeded");
    }
}
