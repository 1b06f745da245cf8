//! Templates (compiled in by askama) and static assets, embedded in the binary at build time:
//! nothing is fetched from a CDN, and no web fonts come from outside. `http::assets` serves them.

pub const APP_CSS: &str = include_str!("static/app.css");

/// The OpenType MATH font answers' formulas are laid out with (see `static/fonts/NOTICE.md`).
pub const MATH_FONT: &[u8] = include_bytes!("static/fonts/latinmodern-math.woff2");

/// The installable app's service worker, before the server names its build and shell in it.
pub const SERVICE_WORKER: &str = include_str!("static/sw.js");

/// The pages' scripts: ES modules, one per concern, loaded from `main.js` with no build step
/// (`/static/js/NAME`, under the CSP's `script-src 'self'`).
pub const JS_MODULES: &[(&str, &str)] = &[
    ("main.js", include_str!("static/js/main.js")),
    ("forms.js", include_str!("static/js/forms.js")),
    ("http.js", include_str!("static/js/http.js")),
    ("stream.js", include_str!("static/js/stream.js")),
    ("replies.js", include_str!("static/js/replies.js")),
    ("chat.js", include_str!("static/js/chat.js")),
    ("dictate.js", include_str!("static/js/dictate.js")),
    ("readaloud.js", include_str!("static/js/readaloud.js")),
    ("nav.js", include_str!("static/js/nav.js")),
    ("tables.js", include_str!("static/js/tables.js")),
    ("uploads.js", include_str!("static/js/uploads.js")),
    ("theme.js", include_str!("static/js/theme.js")),
    ("models.js", include_str!("static/js/models.js")),
];
