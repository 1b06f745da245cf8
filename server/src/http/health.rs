use crate::state::AppState;
use actix_web::{HttpResponse, web};

/// The process is up.
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The process can serve: the database answers.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok()
            .json(serde_json::json!({"status": "ok", "database": state.store.backend().name()})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "unavailable", "database": e.message})),
    }
}
