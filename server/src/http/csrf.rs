//! Cross-site request forgery defence for every state-changing request from a browser:
//! - no request may come from another site (`Sec-Fetch-Site`, else `Origin` against `Host`);
//! - JSON endpoints take only `Content-Type: application/json`, which a cross-site form cannot
//!   send without a CORS preflight that Ayush never grants;
//! - HTML forms also carry the session's token (checked by the UI handlers).
//!
//! Requests with an API token (`Authorization: Bearer`) carry no ambient credential, so scripts
//! and SDKs need no token dance.

use crate::error::{AppError, ErrorKind};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

fn header<'a>(req: &'a ServiceRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn check(req: &ServiceRequest) -> Result<(), AppError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let has_bearer = header(req, "authorization")
        .is_some_and(|v| v.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer ")));
    if has_bearer {
        return Ok(());
    }
    let cross = || AppError::new(ErrorKind::CrossSite, "cross-site requests are refused");
    match header(req, "sec-fetch-site") {
        Some("same-origin" | "none") => {}
        Some(_) => return Err(cross()),
        None => {
            if let Some(origin) = header(req, "origin") {
                let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
                let host = header(req, "host").unwrap_or_default();
                if origin == "null" || !authority.eq_ignore_ascii_case(host) {
                    return Err(cross());
                }
            }
        }
    }
    if req.path().starts_with("/api/") {
        let json = header(req, "content-type")
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(AppError::new(
                ErrorKind::UnsupportedMediaType,
                "send Content-Type: application/json (or authenticate with an API token)",
            ));
        }
    }
    Ok(())
}

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if let Err(e) = check(&req) {
        return Ok(req.error_response(e));
    }
    next.call(req).await.map(ServiceResponse::map_into_boxed_body)
}
