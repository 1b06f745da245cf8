//! The embedded stylesheet and script modules, the theme's CSS and logo, and what makes the
//! app installable: the web app manifest, its icons and the service worker.

use crate::error::{AppError, AppResult};
use crate::http::routes::Routes;
use crate::state::AppState;
use crate::web::{APP_CSS, JS_MODULES, MATH_FONT, SERVICE_WORKER};
use actix_web::{HttpResponse, web};

pub fn routes(r: &mut Routes) {
    r.get("/static/app.css", || async { asset(APP_CSS, "text/css; charset=utf-8") })
        .get("/static/js/{name}", script)
        .get("/static/fonts/latinmodern-math.woff2", || async {
            // The same bytes for the life of a release, and a large file: kept a day.
            HttpResponse::Ok()
                .content_type("font/woff2")
                .insert_header(("Cache-Control", "public, max-age=86400"))
                .body(MATH_FONT)
        })
        .get("/theme.css", theme_css)
        .get("/theme/logo", logo)
        .get("/theme/favicon", favicon)
        .get("/theme/custom.css", custom_css)
        .get("/theme/icon-{size}.png", icon)
        .get("/manifest.webmanifest", manifest)
        .get("/sw.js", service_worker);
}

/// The shell the service worker keeps: what a page needs to open, never what it shows.
fn shell_files() -> Vec<String> {
    let mut files = vec![
        "/static/app.css".to_string(),
        "/theme.css".into(),
        "/theme/logo".into(),
        "/theme/favicon".into(),
    ];
    files.extend(JS_MODULES.iter().map(|(name, _)| format!("/static/js/{name}")));
    files
}

/// The service worker, named for this build, so an upgrade replaces what browsers kept. Served
/// from the root so it may look after every page (the pages' CSP lets `'self'` scripts run it).
async fn service_worker() -> HttpResponse {
    let script = SERVICE_WORKER
        .replace("VERSION", env!("AYUSH_COMMIT"))
        .replace("SHELL_FILES", &serde_json::to_string(&shell_files()).unwrap_or_else(|_| "[]".into()));
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(script)
}

async fn manifest(state: web::Data<AppState>) -> HttpResponse {
    themed(state.themes.current().manifest().to_string().into_bytes(), "application/manifest+json")
}

async fn icon(state: web::Data<AppState>, size: web::Path<u32>) -> AppResult<HttpResponse> {
    let png = state.themes.current().app_icon(size.into_inner()).filter(|p| !p.is_empty());
    match png {
        Some(png) => Ok(themed(png.to_vec(), "image/png")),
        None => Err(AppError::not_found("the app icons are 192 and 512 pixels")),
    }
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
