//! `/metrics`: counts every request into the registry (`crate::metrics`) and answers the scrape.

use crate::metrics::Metrics;
use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use std::time::Instant;

pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let route = res.request().match_pattern().unwrap_or_else(|| "(unmatched)".into());
    if let Some(state) = state {
        state.metrics.observe(&method, &route, res.status().as_u16(), started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// The scrape. With `server.metrics_token` set, only a request bearing it is answered; the
/// figures name routes, models and error rates that are nobody else's business.
pub async fn endpoint(state: web::Data<AppState>, req: actix_web::HttpRequest) -> HttpResponse {
    if let Some(token) = &state.metrics_token {
        let presented = crate::http::guard::bearer(&req).unwrap_or_default();
        if !crate::auth::secret::constant_time_eq(&presented, token) {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer realm=\"metrics\""))
                .content_type("text/plain; charset=utf-8")
                .body("/metrics needs the scrape token (server.metrics_token) as a Bearer token\n");
        }
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body({
        let mut out = state.metrics.render(state.store.stats());
        Metrics::render_audit(&mut out, state.store.journal().write_failures());
        Metrics::render_engines(&mut out, &state.catalog.loaded_engines());
        out
    })
}
