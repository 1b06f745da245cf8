//! The embedded stylesheet and script modules, and the theme's CSS and logo.

use crate::error::{AppError, AppResult};
use crate::http::routes::Routes;
use crate::state::AppState;
use crate::web::{APP_CSS, JS_MODULES};
use actix_web::{HttpResponse, web};

pub fn routes(r: &mut Routes) {
    r.get("/static/app.css", || async { asset(APP_CSS, "text/css; charset=utf-8") })
        .get("/static/js/{name}", script)
        .get("/theme.css", theme_css)
        .get("/theme/logo", logo);
}

fn asset(body: &'static str, content_type: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}

async fn script(name: web::Path<String>) -> AppResult<HttpResponse> {
    let name = name.into_inner();
    match JS_MODULES.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => Ok(asset(body, "text/javascript; charset=utf-8")),
        None => Err(AppError::not_found(format!("there is no script {name:?}"))),
    }
}

async fn theme_css(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(state.theme.css())
}

async fn logo(state: web::Data<AppState>) -> HttpResponse {
    let (bytes, content_type) = state.theme.logo();
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(bytes.to_vec())
}
