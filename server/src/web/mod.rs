//! Templates (compiled in by askama) and static assets, embedded in the binary at build time:
//! nothing is fetched from a CDN, and no web fonts come from outside. `http::assets` serves them.

pub const APP_CSS: &str = include_str!("static/app.css");
pub const APP_JS: &str = include_str!("static/app.js");
