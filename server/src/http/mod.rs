//! actix-web adapters: `api/<capability>.rs` (JSON for the UI, scripts and `ayushctl`),
//! `ui/<capability>.rs` (HTML pages), `v1` (the OpenAI-compatible API), sign-in (`sign_in`,
//! `oidc`), health and metrics. Rules live in the services; handlers here only translate.

pub mod api;
pub mod assets;
pub mod csrf;
pub mod guard;
pub mod health;
pub mod message;
pub mod metrics;
pub mod multipart;
pub mod oidc;
pub mod routes;
pub mod sign_in;
pub mod ui;
pub mod v1;

use crate::error::AppError;
use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, web};

// `media-src blob:`: Read aloud plays the audio the page fetched, from a blob URL it made.
const CSP: &str = "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; \
                   script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A streamed response body fed through a channel by a task that produces it (exports, SSE).
pub struct Chunks(pub tokio::sync::mpsc::Receiver<actix_web::web::Bytes>);

impl futures_core::Stream for Chunks {
    type Item = Result<actix_web::web::Bytes, actix_web::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|b| b.map(Ok))
    }
}

/// The next piece of a request body as it arrives, or `None` at its end: for handlers that read a
/// body themselves (uploads, `/v1`'s larger JSON).
pub(crate) async fn next_chunk<S: futures_core::Stream + Unpin>(body: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx)).await
}

/// A whole request body of at most `limit` bytes, for handlers whose bodies may exceed the
/// app-wide limit; past it, refused as too large with `too_large` as the message.
pub(crate) async fn read_capped(
    mut body: web::Payload,
    limit: usize,
    too_large: &str,
) -> Result<Vec<u8>, AppError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("the body broke off: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(AppError::new(crate::error::ErrorKind::TooLarge, too_large));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Request bodies larger than this are refused before parsing.
const BODY_LIMIT: usize = 64 * 1024;

/// The one app builder: `main` serves it, tests serve it.
pub fn build_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .app_data(
            web::JsonConfig::default()
                .limit(BODY_LIMIT)
                .error_handler(|e, _| AppError::bad_request(format!("invalid JSON body: {e}")).into()),
        )
        .app_data(
            web::FormConfig::default()
                .limit(BODY_LIMIT)
                .error_handler(|e, _| AppError::bad_request(format!("invalid form: {e}")).into()),
        )
        // Pages' forms are read whole (`ui::CsrfForm`), under the same limit as `web::Form`.
        .app_data(web::PayloadConfig::new(BODY_LIMIT))
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| AppError::bad_request(format!("invalid path: {e}")).into()),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| AppError::bad_request(format!("invalid query: {e}")).into()),
        )
        .wrap(from_fn(crate::http::guard::identify))
        .wrap(from_fn(csrf::guard))
        .wrap(
            DefaultHeaders::new()
                .add(("Content-Security-Policy", CSP))
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("Referrer-Policy", "same-origin"))
                .add(("X-Frame-Options", "DENY")),
        )
        .wrap(from_fn(metrics::track))
        .configure(routes::configure)
        // Paths under /api and /v1 that no route serves answer in their API's error shape.
        .route("/api/{tail:.*}", web::to(api::unknown_endpoint))
        .route("/v1/{tail:.*}", web::to(v1::unknown_endpoint))
        .default_service(web::to(ui::not_found))
}
