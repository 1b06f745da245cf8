//! Usage, prices and quotas over JSON: reports, prices and quotas for admins, and each person's
//! own usage. They adapt to the Usage service, as `ayushctl` and the pages do.

use crate::error::AppResult;
use crate::http::guard::{AdminOnly, AnyUser, Authed};
use crate::http::routes::Routes;
use crate::role::Role;
use crate::state::AppState;
use crate::usage::quotas::{QuotaOf, SetQuota};
use crate::usage::{ReportQuery, SetPrice};
use actix_web::{HttpResponse, web};

pub fn routes(r: &mut Routes) {
    r.get("/api/admin/usage", report)
        .get("/api/admin/prices", prices)
        .put("/api/admin/prices", set_price)
        .delete("/api/admin/prices/{provider}/{model}", remove_price)
        .get("/api/admin/quotas", quotas)
        .put("/api/admin/quotas", set_quota)
        .delete("/api/admin/quotas", remove_quota)
        .get("/api/me/usage", mine);
}

async fn report(
    state: web::Data<AppState>,
    _who: Authed<AdminOnly>,
    query: web::Query<ReportQuery>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.usage.report(query.into_inner()).await?))
}

async fn prices(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.usage.prices().await?))
}

async fn set_price(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<SetPrice>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.usage.set_price(who.actor(), body.into_inner()).await?))
}

async fn remove_price(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (provider, model) = path.into_inner();
    state.usage.remove_price(who.actor(), provider, model).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn quotas(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.usage.quotas().await?))
}

async fn set_quota(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<SetQuota>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.usage.set_quota(who.actor(), body.into_inner()).await?))
}

async fn remove_quota(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    query: web::Query<QuotaOf>,
) -> AppResult<HttpResponse> {
    state.usage.remove_quota(who.actor(), query.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn mine(state: web::Data<AppState>, who: Authed<AnyUser>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.usage.mine(who.user.id, who.user.role == Role::Admin).await?))
}
