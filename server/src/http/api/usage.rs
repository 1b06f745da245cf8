//! Usage reports over JSON, for admins: `GET /api/admin/usage?from=&to=&by=`, adapted to the
//! Usage service as `ayushctl usage report` and the console are.

use crate::error::AppResult;
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use crate::usage::ReportQuery;
use actix_web::{HttpResponse, web};

pub fn routes(r: &mut Routes) {
    r.get("/api/admin/usage", report);
}

async fn report(
    state: web::Data<AppState>,
    _who: Authed<AdminOnly>,
    query: web::Query<ReportQuery>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.usage.report(query.into_inner()).await?))
}
