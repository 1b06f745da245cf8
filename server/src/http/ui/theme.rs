//! The console's theme page: name, colours, light or dark, the notice, footer links, custom
//! CSS, and the logo and favicon (uploaded by a small script, as the file's own bytes). Each
//! change goes through the Themes service, as `ayushctl theme set` does.

use crate::error::{AppError, AppResult};
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::http::ui::{
    Chrome, CsrfForm, DoneQuery, Flash, NoFields, Page, UiError, check_csrf_header, done_flash,
    render_uncached, see_other, ui_error,
};
use crate::state::AppState;
use crate::theme::{Change, FooterLink, ImageBody, Mode, Shown, images};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/admin/theme", page)
        .post("/admin/theme", save)
        .put("/admin/theme/{image}", upload)
        .post("/admin/theme/{image}/remove", remove_image);
}

#[derive(Template)]
#[template(path = "theme.html")]
struct ThemePage {
    chrome: Chrome,
    shown: Shown,
    /// What the fields hold: the last try when it was refused, else what is set.
    form: ThemeForm,
}

impl ThemePage {
    /// Each image the page offers, with where the current one comes from.
    fn images(&self) -> [(&'static str, &'static str); 2] {
        [("logo", self.shown.effective.logo), ("favicon", self.shown.effective.favicon)]
    }
}

async fn page(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_page(&state, &who, None, done_flash(&q), StatusCode::OK).await
}

async fn render_page(
    state: &AppState,
    who: &Authed<AdminOnly>,
    tried: Option<ThemeForm>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let shown = state.themes.show().await.map_err(ui_error(state, "/admin/theme"))?;
    let s = &shown.settings;
    // The footer links as the form edits them, one `Label | URL` a line.
    let links = s
        .footer_links
        .iter()
        .flatten()
        .map(|l| format!("{} | {}", l.label, l.url))
        .collect::<Vec<_>>()
        .join("\n");
    let form = tried.unwrap_or_else(|| ThemeForm {
        product_name: s.product_name.clone().unwrap_or_default(),
        primary_color: s.primary_color.clone().unwrap_or_default(),
        accent_color: s.accent_color.clone().unwrap_or_default(),
        mode: s.mode.unwrap_or_default().as_str().into(),
        banner: s.banner.clone().unwrap_or_default(),
        footer_links: links,
        css: s.css.clone().unwrap_or_default(),
    });
    let page = ThemePage { chrome: Chrome::for_user(state, who, "theme", flash), shown, form };
    Ok(render_uncached(&page, status))
}

#[derive(Deserialize, Clone, Default)]
struct ThemeForm {
    #[serde(default)]
    product_name: String,
    #[serde(default)]
    primary_color: String,
    #[serde(default)]
    accent_color: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    banner: String,
    #[serde(default)]
    footer_links: String,
    #[serde(default)]
    css: String,
}

/// Blank is "not set": the config file's value holds.
fn text(v: &str) -> Option<Option<String>> {
    Some(Some(v.trim().to_string()).filter(|v| !v.is_empty()))
}

/// `Label | URL` a line.
fn footer_links(lines: &str) -> AppResult<Vec<FooterLink>> {
    lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| match line.split_once('|') {
            Some((label, url)) => Ok(FooterLink { label: label.trim().into(), url: url.trim().into() }),
            None => Err(AppError::validation(format!(
                "write each footer link as Label | https://…; not {:?}",
                line.trim()
            ))),
        })
        .collect()
}

impl ThemeForm {
    fn change(&self) -> AppResult<Change> {
        let mode = Mode::parse(self.mode.trim()).map_err(AppError::validation)?;
        Ok(Change {
            product_name: text(&self.product_name),
            primary_color: text(&self.primary_color),
            accent_color: text(&self.accent_color),
            // Auto is what no setting means.
            mode: Some((mode != Mode::Auto).then_some(mode)),
            banner: Some(Some(self.banner.replace("\r\n", "\n"))),
            footer_links: Some(Some(footer_links(&self.footer_links)?)),
            css: Some(Some(self.css.replace("\r\n", "\n"))),
            ..Default::default()
        })
    }
}

async fn save(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, ThemeForm>,
) -> Result<HttpResponse, UiError> {
    let result = async { state.themes.set(who.actor(), form.change()?).await }.await;
    match result {
        Ok(_) => Ok(see_other("/admin/theme?done=theme")),
        Err(e) => {
            let flash = Flash { kind: "error", text: e.message.clone() };
            render_page(&state, &who, Some(form), Some(flash), e.kind.status()).await
        }
    }
}

fn which(image: &str) -> AppResult<&'static str> {
    match image {
        "logo" => Ok("logo"),
        "favicon" => Ok("favicon"),
        other => Err(AppError::not_found(format!("there is no theme image {other:?}"))),
    }
}

fn image_change(which: &str, body: Option<ImageBody>) -> Change {
    match which {
        "logo" => Change { logo: Some(body), ..Default::default() },
        _ => Change { favicon: Some(body), ..Default::default() },
    }
}

/// The page's script sends the chosen file as it is, with the session's form token in a
/// header: JSON answers, for the script to show.
async fn upload(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    check_csrf_header(&who, &req)?;
    let which = which(&path)?;
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let too_large = format!("the {which} is larger than 512 KiB");
    let bytes = crate::http::read_capped(body, images::MAX_BYTES, &too_large).await?;
    let change = image_change(which, Some(ImageBody::of(&content_type, &bytes)));
    let shown = state.themes.set(who.actor(), change).await?;
    Ok(HttpResponse::Ok().json(shown.effective))
}

async fn remove_image(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AdminOnly, NoFields>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let result = async { state.themes.set(who.actor(), image_change(which(&path)?, None)).await }.await;
    match result {
        Ok(_) => Ok(see_other("/admin/theme?done=theme")),
        Err(e) => {
            let flash = Flash { kind: "error", text: e.message.clone() };
            render_page(&state, &who, None, Some(flash), e.kind.status()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_links_are_read_a_line_each() {
        let links = footer_links("Help | https://intranet.example/help\n\n  Privacy|/privacy  \n").unwrap();
        assert_eq!(links[1], FooterLink { label: "Privacy".into(), url: "/privacy".into() });
        assert!(footer_links("just a label").unwrap_err().message.contains("Label | https://"));
    }
}
