//! White-label settings applied to every page: product name, logo, favicon, colours, light or
//! dark, a notice people acknowledge, footer links and custom CSS.
//!
//! The config file's `[theme]` is the base. What admins set (the console, `ayushctl theme`,
//! `PUT /api/admin/theme`) is one database row over it, with a revision: every replica follows
//! the row (at once on PostgreSQL, which announces each change; within seconds otherwise), so
//! a change needs no restart. Pages read the theme in effect from memory, never the database.

pub mod contrast;
pub mod icons;
pub mod images;
pub mod settings;

use crate::audit::{self, Actor, Event, Outcome};
use crate::clock::SharedClock;
use crate::config::ThemeConfig;
use crate::error::{AppError, AppResult};
use crate::store::schema::{notice_acknowledgements, theme};
use crate::store::{Backend, Conn, Store};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
pub use settings::{Change, FooterLink, ImageBody, Mode, Settings};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

const DEFAULT_LOGO: &str = include_str!("../web/static/logo.svg");
/// The colour the built-in logo is drawn in, replaced by the theme's primary colour.
const DEFAULT_LOGO_COLOUR: &str = "#3b5bdb";
/// Announced (PostgreSQL NOTIFY) at each change, so other replicas reload at once.
pub const CHANNEL: &str = "ayush_theme_changes";
/// How often a replica looks for a change nobody announced (SQLite written by `ayushctl
/// --local`, or a notification lost with its connection).
const LOOK_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Picture {
    pub bytes: Arc<[u8]>,
    pub content_type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Banner {
    pub text: String,
    pub revision: i64,
}

/// The theme in effect: the config file's, with what admins set laid over it.
#[derive(Debug, Clone)]
pub struct Theme {
    pub product_name: String,
    pub primary_color: String,
    pub accent_color: String,
    pub mode: Mode,
    logo: Picture,
    favicon: Option<Picture>,
    pub banner: Option<Banner>,
    pub footer_links: Vec<FooterLink>,
    pub custom_css: Option<String>,
    /// The stored row's revision (0: nothing set); pages add it to the URLs of the theme's
    /// files, so a browser fetches them again after a change.
    pub revision: i64,
    /// The app icons, drawn from the logo when first asked for (one per size in
    /// `icons::SIZES`).
    icons: Arc<[std::sync::OnceLock<Arc<[u8]>>; icons::SIZES.len()]>,
}

impl Theme {
    /// The stylesheet every page loads first; `app.css` only refers to these variables.
    pub fn css(&self) -> String {
        format!(
            ":root {{\n  --brand: {};\n  --accent: {};\n  --brand-name: \"{}\";\n}}\n",
            self.primary_color,
            self.accent_color,
            self.product_name.replace(['"', '\\', '\n'], "")
        )
    }

    /// The built-in theme, for the rare page drawn without the app's state.
    pub fn fallback() -> Theme {
        Base { config: ThemeConfig::default(), logo: None }.theme(&Stored::default())
    }

    pub fn logo(&self) -> &Picture {
        &self.logo
    }

    /// The favicon, or the logo where none is set.
    pub fn favicon(&self) -> &Picture {
        self.favicon.as_ref().unwrap_or(&self.logo)
    }

    /// The installable app's icon of `size` pixels (one of `icons::SIZES`): the logo, or the
    /// built-in mark in the brand colour where the logo cannot be drawn.
    pub fn app_icon(&self, size: u32) -> Option<Arc<[u8]>> {
        let at = icons::SIZES.iter().position(|s| *s == size)?;
        Some(
            self.icons[at]
                .get_or_init(|| {
                    let mark = || Picture {
                        bytes: DEFAULT_LOGO.replace(DEFAULT_LOGO_COLOUR, &self.primary_color).into_bytes().into(),
                        content_type: images::SVG,
                    };
                    let drawn = icons::app_icon(&self.logo, size).or_else(|e| {
                        tracing::warn!(error = %e, "the logo is not drawn as an app icon; the built-in mark is");
                        icons::app_icon(&mark(), size)
                    });
                    drawn.unwrap_or_default().into()
                })
                .clone(),
        )
    }

    /// The web app manifest: what a phone or desktop installs, in the theme's name, colours and
    /// icons.
    pub fn manifest(&self) -> serde_json::Value {
        let short: String = self.product_name.chars().take(12).collect();
        let icons: Vec<serde_json::Value> = icons::SIZES
            .iter()
            .map(|s| {
                json!({
                    "src": format!("/theme/icon-{s}.png?r={}", self.revision),
                    "sizes": format!("{s}x{s}"), "type": "image/png", "purpose": "any",
                })
            })
            .collect();
        json!({
            "name": self.product_name,
            "short_name": short,
            "id": "/chat",
            "start_url": "/chat",
            "scope": "/",
            "display": "standalone",
            "background_color": if self.mode == Mode::Dark { "#12151d" } else { "#f6f7fb" },
            "theme_color": self.primary_color,
            "icons": icons,
        })
    }

    /// `data-mode` on the page's root: which of app.css's schemes apply.
    pub fn mode_attr(&self) -> &'static str {
        self.mode.as_str()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("theme.logo_file {0}: {1}")]
    Logo(String, String),
}

/// What the config file gives: the base every stored setting is laid over.
#[derive(Debug, Clone)]
struct Base {
    config: ThemeConfig,
    logo: Option<Picture>,
}

impl Base {
    fn load(cfg: &ThemeConfig) -> Result<Base, ThemeError> {
        let logo = match &cfg.logo_file {
            None => None,
            Some(path) => {
                let shown = path.display().to_string();
                let content_type =
                    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) {
                        Some(e) if e == "svg" => "image/svg+xml",
                        Some(e) if e == "png" => "image/png",
                        Some(e) if e == "jpg" || e == "jpeg" => "image/jpeg",
                        Some(e) if e == "webp" => "image/webp",
                        _ => return Err(ThemeError::Logo(shown, "must be .svg, .png, .jpg or .webp".into())),
                    };
                let meta =
                    std::fs::metadata(path).map_err(|e| ThemeError::Logo(shown.clone(), e.to_string()))?;
                if meta.len() > images::MAX_BYTES as u64 {
                    return Err(ThemeError::Logo(shown, "is larger than 512 KiB".into()));
                }
                let bytes = std::fs::read(path).map_err(|e| ThemeError::Logo(shown, e.to_string()))?;
                Some(Picture { bytes: bytes.into(), content_type })
            }
        };
        Ok(Base { config: cfg.clone(), logo })
    }

    fn primary<'a>(&'a self, s: &'a Settings) -> &'a str {
        s.primary_color.as_deref().unwrap_or(&self.config.primary_color)
    }

    fn accent<'a>(&'a self, s: &'a Settings) -> &'a str {
        s.accent_color.as_deref().unwrap_or(&self.config.accent_color)
    }

    fn theme(&self, stored: &Stored) -> Theme {
        let s = &stored.settings;
        let primary = self.primary(s).to_string();
        let picture = |body: &Option<ImageBody>| {
            let body = body.as_ref()?;
            let bytes = body.bytes("image").ok()?;
            let content_type = images::check("image", &body.content_type, &bytes).ok()?;
            Some(Picture { bytes: bytes.into(), content_type })
        };
        // The built-in mark takes the brand colour, so a recoloured theme needs no new logo.
        let logo = picture(&s.logo).or_else(|| self.logo.clone()).unwrap_or_else(|| Picture {
            bytes: DEFAULT_LOGO.replace(DEFAULT_LOGO_COLOUR, &primary).into_bytes().into(),
            content_type: images::SVG,
        });
        Theme {
            product_name: s.product_name.clone().unwrap_or_else(|| self.config.product_name.clone()),
            accent_color: self.accent(s).to_string(),
            primary_color: primary,
            mode: s.mode.unwrap_or_default(),
            logo,
            favicon: picture(&s.favicon),
            banner: s.banner.clone().map(|text| Banner { text, revision: stored.banner_revision }),
            footer_links: s.footer_links.clone().unwrap_or_default(),
            custom_css: s.css.clone(),
            revision: stored.revision,
            icons: Arc::default(),
        }
    }
}

/// The stored row as settings.
#[derive(Debug, Clone, Default)]
struct Stored {
    settings: Settings,
    banner_revision: i64,
    revision: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = theme)]
struct Row {
    product_name: Option<String>,
    primary_color: Option<String>,
    accent_color: Option<String>,
    mode: Option<String>,
    logo: Option<Vec<u8>>,
    logo_type: Option<String>,
    favicon: Option<Vec<u8>>,
    favicon_type: Option<String>,
    banner: Option<String>,
    banner_revision: i64,
    footer_links: Option<String>,
    css: Option<String>,
    revision: i64,
}

fn revision(conn: &mut Conn) -> AppResult<i64> {
    let found: Vec<i64> = conn.load(theme::table.select(theme::revision))?;
    Ok(found.into_iter().next().unwrap_or(0))
}

fn load(conn: &mut Conn) -> AppResult<Stored> {
    let rows: Vec<Row> = conn.load(theme::table.select(crate::store::columns::<Row>()))?;
    let Some(r) = rows.into_iter().next() else { return Ok(Stored::default()) };
    let image = |bytes: Option<Vec<u8>>, content_type: Option<String>| match (bytes, content_type) {
        (Some(b), Some(t)) => Some(ImageBody::of(&t, &b)),
        _ => None,
    };
    let footer_links = match r.footer_links {
        Some(json) => Some(serde_json::from_str(&json).map_err(AppError::internal)?),
        None => None,
    };
    Ok(Stored {
        settings: Settings {
            product_name: r.product_name,
            primary_color: r.primary_color,
            accent_color: r.accent_color,
            mode: r.mode.as_deref().map(Mode::parse).transpose().map_err(AppError::internal)?,
            logo: image(r.logo, r.logo_type),
            favicon: image(r.favicon, r.favicon_type),
            banner: r.banner,
            footer_links,
            css: r.css,
        },
        banner_revision: r.banner_revision,
        revision: r.revision,
    })
}

/// What `theme show` and `GET /api/admin/theme` answer: what admins set, and what is in
/// effect with the config file's values filling the gaps.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub settings: Settings,
    pub effective: Effective,
    pub revision: i64,
}

#[derive(Debug, Serialize)]
pub struct Effective {
    pub product_name: String,
    pub primary_color: String,
    pub accent_color: String,
    pub mode: Mode,
    /// Where the logo comes from: set, config file or built-in.
    pub logo: &'static str,
    /// set, or logo (the logo serves as the favicon).
    pub favicon: &'static str,
    pub banner: Option<Banner>,
    pub footer_links: Vec<FooterLink>,
    pub css_bytes: usize,
}

/// The theme service: the theme in effect for pages, and the changes admins make.
#[derive(Clone)]
pub struct Themes {
    store: Store,
    clock: SharedClock,
    base: Arc<Base>,
    live: Arc<RwLock<Arc<Theme>>>,
    /// (user, banner revision) known to be acknowledged: acknowledgements are only ever added,
    /// so a page need not ask the database again.
    acknowledged: Arc<Mutex<HashSet<(i64, i64)>>>,
}

impl Themes {
    /// The config file's theme; [`Themes::refresh`] then lays the stored settings over it.
    pub fn new(cfg: &ThemeConfig, store: Store, clock: SharedClock) -> Result<Themes, ThemeError> {
        let base = Base::load(cfg)?;
        let theme = base.theme(&Stored::default());
        Ok(Themes {
            store,
            clock,
            base: Arc::new(base),
            live: Arc::new(RwLock::new(Arc::new(theme))),
            acknowledged: Arc::default(),
        })
    }

    /// The theme in effect now.
    pub fn current(&self) -> Arc<Theme> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes up the stored settings if they changed since this replica last looked.
    pub async fn refresh(&self) -> AppResult<()> {
        let known = self.current().revision;
        let stored =
            self.store.run(move |c| if revision(c)? == known { Ok(None) } else { load(c).map(Some) }).await?;
        if let Some(stored) = stored {
            self.take(&stored);
        }
        Ok(())
    }

    /// [`Themes::refresh`] for the start, outside async code.
    pub fn load_now(&self) -> AppResult<()> {
        let stored = self.store.run_blocking(load)?;
        self.take(&stored);
        Ok(())
    }

    /// Builds the theme of `stored` and puts it in effect unless a newer one already is; the
    /// theme built, for whoever also shows it.
    fn take(&self, stored: &Stored) -> Arc<Theme> {
        let theme = Arc::new(self.base.theme(stored));
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        if theme.revision >= live.revision {
            *live = theme.clone();
        }
        theme
    }

    /// Follows changes made elsewhere: announced ones at once, the rest within [`LOOK_EVERY`].
    pub fn follow(&self) {
        let wake = Arc::new(tokio::sync::Notify::new());
        let woken = wake.clone();
        self.store.listen(CHANNEL, move || woken.notify_one());
        let me = self.clone();
        actix_web::rt::spawn(async move {
            loop {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(LOOK_EVERY) => {}
                }
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "cannot read the theme's settings");
                }
            }
        });
    }

    pub async fn show(&self) -> AppResult<Shown> {
        let stored = self.store.run(load).await?;
        let theme = self.base.theme(&stored);
        Ok(self.shown(stored, &theme))
    }

    fn shown(&self, stored: Stored, theme: &Theme) -> Shown {
        let s = &stored.settings;
        let effective = Effective {
            product_name: theme.product_name.clone(),
            primary_color: theme.primary_color.clone(),
            accent_color: theme.accent_color.clone(),
            mode: theme.mode,
            logo: if s.logo.is_some() {
                "set"
            } else if self.base.logo.is_some() {
                "config file"
            } else {
                "built-in"
            },
            favicon: if s.favicon.is_some() { "set" } else { "logo" },
            banner: theme.banner.clone(),
            footer_links: theme.footer_links.clone(),
            css_bytes: theme.custom_css.as_ref().map_or(0, String::len),
        };
        Shown { settings: stored.settings, effective, revision: stored.revision }
    }

    /// Applies a change: checked whole (the colours as they will be shown), stored with its
    /// audit event in one transaction, and in effect on this replica when it returns.
    pub async fn set(&self, actor: Actor, change: Change) -> AppResult<Shown> {
        let (now, base) = (self.clock.now(), self.base.clone());
        let stored = self
            .store
            .run(move |c| {
                c.transaction(|c| {
                    let before = load(c)?;
                    let (settings, changed) = change.apply(before.settings.clone());
                    let checked =
                        settings::validate(&settings, base.primary(&settings), base.accent(&settings))
                            .map_err(AppError::validation)?;
                    let banner_revision = if changed.contains(&"banner") && settings.banner.is_some() {
                        before.banner_revision + 1
                    } else {
                        before.banner_revision
                    };
                    let stored = Stored { settings, banner_revision, revision: before.revision + 1 };
                    write(c, now, &stored, &checked)?;
                    let event = Event::new(&actor, "theme.set", Outcome::Success)
                        .target("theme", "theme")
                        .details(described(&stored, &changed));
                    audit::record(c, now, &event)?;
                    if c.backend() == Backend::Postgres {
                        c.execute(diesel::sql_query(format!("NOTIFY {CHANNEL}")))?;
                    }
                    Ok(stored)
                })
            })
            .await?;
        let theme = self.take(&stored);
        Ok(self.shown(stored, &theme))
    }

    /// The notice `user_id` has still to acknowledge before using the pages, if any.
    pub async fn notice_for(&self, user_id: i64) -> AppResult<Option<Banner>> {
        let Some(banner) = self.current().banner.clone() else { return Ok(None) };
        if self.known_acknowledged(user_id, banner.revision) {
            return Ok(None);
        }
        let seen: Vec<i64> = self
            .store
            .run(move |c| {
                Ok(c.load(
                    notice_acknowledgements::table
                        .find(user_id)
                        .select(notice_acknowledgements::banner_revision),
                )?)
            })
            .await?;
        if seen.first().is_some_and(|r| *r >= banner.revision) {
            self.remember(user_id, banner.revision);
            return Ok(None);
        }
        Ok(Some(banner))
    }

    /// Records that `actor` read and accepted notice `revision` (the one they were shown: if it
    /// has changed since, they must read the new one).
    pub async fn acknowledge(&self, actor: Actor, user_id: i64, revision: i64) -> AppResult<()> {
        let now = self.clock.now();
        self.store
            .run(move |c| {
                c.transaction(|c| {
                    let current = load(c)?;
                    if current.settings.banner.is_none() || current.banner_revision != revision {
                        return Err(AppError::validation(
                            "the notice has changed since it was shown; read the new one",
                        ));
                    }
                    c.execute(
                        diesel::delete(notice_acknowledgements::table)
                            .filter(notice_acknowledgements::user_id.eq(user_id)),
                    )?;
                    c.execute(diesel::insert_into(notice_acknowledgements::table).values((
                        notice_acknowledgements::user_id.eq(user_id),
                        notice_acknowledgements::banner_revision.eq(revision),
                        notice_acknowledgements::acknowledged_at.eq(now),
                    )))?;
                    let event = Event::new(&actor, "notice.acknowledged", Outcome::Success)
                        .target("user", &actor.name)
                        .details(json!({"banner_revision": revision}));
                    audit::record(c, now, &event)
                })
            })
            .await?;
        self.remember(user_id, revision);
        Ok(())
    }

    fn known_acknowledged(&self, user_id: i64, revision: i64) -> bool {
        self.acknowledged.lock().unwrap_or_else(|e| e.into_inner()).contains(&(user_id, revision))
    }

    fn remember(&self, user_id: i64, revision: i64) {
        let mut known = self.acknowledged.lock().unwrap_or_else(|e| e.into_inner());
        // A bound on memory; forgetting only costs one lookup per person.
        if known.len() > 100_000 {
            known.clear();
        }
        known.insert((user_id, revision));
    }
}

fn write(conn: &mut Conn, now: i64, stored: &Stored, checked: &settings::Checked) -> AppResult<()> {
    let s = &stored.settings;
    let footer_links =
        s.footer_links.as_ref().map(serde_json::to_string).transpose().map_err(AppError::internal)?;
    conn.execute(diesel::delete(theme::table))?;
    conn.execute(diesel::insert_into(theme::table).values((
        theme::id.eq(1),
        theme::product_name.eq(&s.product_name),
        theme::primary_color.eq(&s.primary_color),
        theme::accent_color.eq(&s.accent_color),
        theme::mode.eq(s.mode.map(Mode::as_str)),
        theme::logo.eq(checked.logo.as_ref().map(|(b, _)| b.as_slice())),
        theme::logo_type.eq(checked.logo.as_ref().map(|(_, t)| *t)),
        theme::favicon.eq(checked.favicon.as_ref().map(|(b, _)| b.as_slice())),
        theme::favicon_type.eq(checked.favicon.as_ref().map(|(_, t)| *t)),
        theme::banner.eq(&s.banner),
        theme::banner_revision.eq(stored.banner_revision),
        theme::footer_links.eq(footer_links),
        theme::css.eq(&s.css),
        theme::revision.eq(stored.revision),
        theme::updated_at.eq(now),
    )))?;
    Ok(())
}

/// The audit event's account of a change: the fields changed, and the new values, with images
/// and the stylesheet by size and digest (an auditor needs to tell versions apart, not see them).
fn described(stored: &Stored, changed: &[&str]) -> serde_json::Value {
    let s = &stored.settings;
    let digest = |bytes: &[u8]| crate::knowledge::documents::sha256_hex(bytes);
    let image = |body: &Option<ImageBody>| {
        body.as_ref().map(|b| {
            let bytes = b.bytes("image").unwrap_or_default();
            json!({"content_type": b.content_type, "bytes": bytes.len(), "sha256": digest(&bytes)})
        })
    };
    let mut values = serde_json::Map::new();
    for field in changed {
        let value = match *field {
            "product_name" => json!(s.product_name),
            "primary_color" => json!(s.primary_color),
            "accent_color" => json!(s.accent_color),
            "mode" => json!(s.mode),
            "logo" => json!(image(&s.logo)),
            "favicon" => json!(image(&s.favicon)),
            "banner" => json!(s.banner),
            "footer_links" => json!(s.footer_links),
            "css" => json!(s.css.as_ref().map(|c| json!({"bytes": c.len(), "sha256": digest(c.as_bytes())}))),
            _ => continue,
        };
        values.insert(field.to_string(), value);
    }
    json!({
        "changed": changed,
        "values": values,
        "revision": stored.revision,
        "banner_revision": stored.banner_revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_carries_the_brand() {
        let base =
            Base::load(&ThemeConfig { primary_color: "#123456".into(), ..Default::default() }).unwrap();
        let t = base.theme(&Stored::default());
        assert!(t.css().contains("--brand: #123456"));
        assert!(std::str::from_utf8(&t.logo().bytes).unwrap().contains("#123456"));
    }

    #[test]
    fn stored_settings_lie_over_the_config_file() {
        let base = Base::load(&ThemeConfig::default()).unwrap();
        let stored = Stored {
            settings: Settings {
                product_name: Some("Acme Assist".into()),
                banner: Some("Authorised use only.".into()),
                mode: Some(Mode::Dark),
                ..Default::default()
            },
            banner_revision: 3,
            revision: 7,
        };
        let t = base.theme(&stored);
        assert_eq!((t.product_name.as_str(), t.primary_color.as_str()), ("Acme Assist", "#3b5bdb"));
        assert_eq!(t.banner, Some(Banner { text: "Authorised use only.".into(), revision: 3 }));
        assert_eq!((t.mode_attr(), t.revision), ("dark", 7));
        assert_eq!(t.favicon().content_type, images::SVG);
    }
}
