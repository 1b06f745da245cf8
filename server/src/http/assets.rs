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
        .get("/theme/logo", logo)
        .get("/theme/favicon", favicon)
        .get("/theme/custom.css", custom_css);
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

// The theme's files change with it: browsers ask again each time (pages also add the
// theme's revision to their URLs), so a change shows on the next page.

async fn theme_css(state: web::Data<AppState>) -> HttpResponse {
    themed(state.themes.current().css().into_bytes(), "text/css; charset=utf-8")
}

async fn logo(state: web::Data<AppState>) -> HttpResponse {
    let picture = state.themes.current().logo().clone();
    themed(picture.bytes.to_vec(), picture.content_type)
}

async fn favicon(state: web::Data<AppState>) -> HttpResponse {
    let picture = state.themes.current().favicon().clone();
    themed(picture.bytes.to_vec(), picture.content_type)
}

async fn custom_css(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    match &state.themes.current().custom_css {
        Some(css) => Ok(themed(css.clone().into_bytes(), "text/css; charset=utf-8")),
        None => Err(AppError::not_found("this installation has no custom stylesheet")),
    }
}

fn themed(body: Vec<u8>, content_type: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        // An SVG opened on its own is a document: it gets no scripts whatever it holds.
        .insert_header(("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox"))
        .body(body)
}
