//! The installation's state over JSON, for admins and monitoring scripts: `GET
//! /api/admin/status`, the same figures as the console's status page.

use crate::error::AppResult;
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::{HttpResponse, web};

pub fn routes(r: &mut Routes) {
    r.get("/api/admin/status", status);
}

async fn status(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(crate::status::gather(&state).await))
}
