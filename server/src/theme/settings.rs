//! What admins set over the config file's `[theme]`: the stored row, the JSON shape the API,
//! `ayushctl theme export|import` and the console share, and the rules a setting must meet.

use super::contrast::{self, Schemes};
use super::images;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize};

pub const MAX_PRODUCT_NAME: usize = 60;
pub const MAX_BANNER_CHARS: usize = 4000;
pub const MAX_FOOTER_LINKS: usize = 8;
pub const MAX_LINK_LABEL: usize = 40;
pub const MAX_URL: usize = 500;
pub const MAX_CSS_BYTES: usize = 64 * 1024;

/// Whether pages follow the visitor's system setting or are always light or dark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Auto,
    Light,
    Dark,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Light => "light",
            Mode::Dark => "dark",
        }
    }

    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "light" => Ok(Mode::Light),
            "dark" => Ok(Mode::Dark),
            other => Err(format!("mode must be auto, light or dark, not {other:?}")),
        }
    }

    pub fn schemes(self) -> Schemes {
        Schemes { light: self != Mode::Dark, dark: self != Mode::Light }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FooterLink {
    pub label: String,
    pub url: String,
}

/// An image in JSON: its type and its bytes in base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBody {
    pub content_type: String,
    pub base64: String,
}

impl ImageBody {
    pub fn of(content_type: &str, bytes: &[u8]) -> ImageBody {
        ImageBody { content_type: content_type.into(), base64: BASE64.encode(bytes) }
    }

    pub fn bytes(&self, what: &str) -> Result<Vec<u8>, String> {
        BASE64.decode(self.base64.trim()).map_err(|e| format!("the {what} is not valid base64 ({e})"))
    }
}

/// What admins set; `None` keeps the config file's value (or, for the banner, links and CSS,
/// none). The document `theme export` writes and `theme import` reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub product_name: Option<String>,
    pub primary_color: Option<String>,
    pub accent_color: Option<String>,
    pub mode: Option<Mode>,
    pub logo: Option<ImageBody>,
    pub favicon: Option<ImageBody>,
    pub banner: Option<String>,
    pub footer_links: Option<Vec<FooterLink>>,
    pub css: Option<String>,
}

/// A change to the settings: a field left out stays as it is, `null` removes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    #[serde(default, deserialize_with = "present")]
    pub product_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub primary_color: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub accent_color: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub mode: Option<Option<Mode>>,
    #[serde(default, deserialize_with = "present")]
    pub logo: Option<Option<ImageBody>>,
    #[serde(default, deserialize_with = "present")]
    pub favicon: Option<Option<ImageBody>>,
    #[serde(default, deserialize_with = "present")]
    pub banner: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub footer_links: Option<Option<Vec<FooterLink>>>,
    #[serde(default, deserialize_with = "present")]
    pub css: Option<Option<String>>,
}

/// A field that is present, even as `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl Change {
    /// The change that makes the settings exactly `s` (an import).
    pub fn to(s: Settings) -> Change {
        Change {
            product_name: Some(s.product_name),
            primary_color: Some(s.primary_color),
            accent_color: Some(s.accent_color),
            mode: Some(s.mode),
            logo: Some(s.logo),
            favicon: Some(s.favicon),
            banner: Some(s.banner),
            footer_links: Some(s.footer_links),
            css: Some(s.css),
        }
    }

    /// The settings after this change, and the names of the fields it changed.
    pub fn apply(self, mut s: Settings) -> (Settings, Vec<&'static str>) {
        let mut changed = Vec::new();
        fn put<T: PartialEq>(
            slot: &mut Option<T>,
            new: Option<Option<T>>,
            name: &'static str,
            changed: &mut Vec<&'static str>,
        ) {
            if let Some(new) = new
                && *slot != new
            {
                *slot = new;
                changed.push(name);
            }
        }
        // Blank text is "none", so `--banner ""` takes a banner away.
        let blank_is_none = |v: Option<Option<String>>| v.map(|v| v.filter(|t| !t.trim().is_empty()));
        let trimmed = |v: Option<Option<String>>| v.map(|v| v.map(|t| t.trim().to_string()));
        put(&mut s.product_name, trimmed(self.product_name), "product_name", &mut changed);
        put(&mut s.primary_color, trimmed(self.primary_color), "primary_color", &mut changed);
        put(&mut s.accent_color, trimmed(self.accent_color), "accent_color", &mut changed);
        put(&mut s.mode, self.mode, "mode", &mut changed);
        put(&mut s.logo, self.logo, "logo", &mut changed);
        put(&mut s.favicon, self.favicon, "favicon", &mut changed);
        put(&mut s.banner, blank_is_none(self.banner), "banner", &mut changed);
        let links = self.footer_links.map(|l| l.filter(|l| !l.is_empty()));
        put(&mut s.footer_links, links, "footer_links", &mut changed);
        put(&mut s.css, blank_is_none(self.css), "css", &mut changed);
        (s, changed)
    }
}

/// The images of settings that passed [`validate`], decoded.
pub struct Checked {
    pub logo: Option<(Vec<u8>, &'static str)>,
    pub favicon: Option<(Vec<u8>, &'static str)>,
}

/// Checks every field, and the colours' contrast as they will be shown (`primary`, `accent`:
/// the colours in effect once the config file's fill the gaps).
pub fn validate(s: &Settings, primary: &str, accent: &str) -> Result<Checked, String> {
    if let Some(name) = &s.product_name {
        let n = name.trim().chars().count();
        if n == 0 || n > MAX_PRODUCT_NAME || name.chars().any(char::is_control) {
            return Err(format!("the product name must be 1 to {MAX_PRODUCT_NAME} characters, on one line"));
        }
    }
    for (what, colour) in [("primary_color", &s.primary_color), ("accent_color", &s.accent_color)] {
        if let Some(c) = colour
            && contrast::parse(c).is_none()
        {
            return Err(format!("{what} must be #rgb or #rrggbb, not {c:?}"));
        }
    }
    let problems = contrast::check(primary, accent, s.mode.unwrap_or_default().schemes());
    if !problems.is_empty() {
        return Err(format!("the colours are too hard to read: {}", problems.join("; ")));
    }
    let image = |what: &str, body: &Option<ImageBody>| -> Result<Option<(Vec<u8>, &'static str)>, String> {
        let Some(body) = body else { return Ok(None) };
        let bytes = body.bytes(what)?;
        let content_type = images::check(what, &body.content_type, &bytes)?;
        Ok(Some((bytes, content_type)))
    };
    let checked = Checked { logo: image("logo", &s.logo)?, favicon: image("favicon", &s.favicon)? };
    if let Some(banner) = &s.banner
        && banner.chars().count() > MAX_BANNER_CHARS
    {
        return Err(format!("the banner is longer than {MAX_BANNER_CHARS} characters"));
    }
    if let Some(links) = &s.footer_links {
        if links.len() > MAX_FOOTER_LINKS {
            return Err(format!("at most {MAX_FOOTER_LINKS} footer links"));
        }
        for link in links {
            footer_link(link)?;
        }
    }
    if let Some(css) = &s.css {
        custom_css(css)?;
    }
    Ok(checked)
}

fn footer_link(link: &FooterLink) -> Result<(), String> {
    let n = link.label.trim().chars().count();
    if n == 0 || n > MAX_LINK_LABEL || link.label.chars().any(char::is_control) {
        return Err(format!("a footer link's label must be 1 to {MAX_LINK_LABEL} characters"));
    }
    let url = &link.url;
    let allowed = url.starts_with("https://")
        || url.starts_with("http://")
        || url.starts_with("mailto:")
        || (url.starts_with('/') && !url.starts_with("//"));
    if !allowed || url.len() > MAX_URL || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "footer link {:?}: the address must start with https://, http://, mailto: or / (a page here), \
             without spaces, at most {MAX_URL} characters; not {url:?}",
            link.label
        ));
    }
    Ok(())
}

/// Custom CSS is served as its own stylesheet under the pages' CSP, which would block anything
/// it loads from elsewhere: refused here instead, so the admin hears why.
fn custom_css(css: &str) -> Result<(), String> {
    if css.len() > MAX_CSS_BYTES {
        return Err("the custom CSS is larger than 64 KiB".into());
    }
    let lower: String = css.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    if lower.contains("@import") {
        return Err("the custom CSS may not @import other stylesheets".into());
    }
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("url(") {
        rest = &rest[at + 4..];
        let target = rest.trim_start_matches(['"', '\'']);
        let here = (target.starts_with('/') && !target.starts_with("//"))
            || target.starts_with('#')
            || target.starts_with("data:image/");
        if !here {
            return Err(format!(
                "the custom CSS loads {:?} from elsewhere; only paths on this server (/...) and data:image/ \
                 are allowed",
                target.split(')').next().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &Settings) -> Result<Checked, String> {
        validate(s, s.primary_color.as_deref().unwrap_or("#3b5bdb"), "#0ca678")
    }

    #[test]
    fn a_change_keeps_what_it_leaves_out_and_removes_what_it_nulls() {
        let before = Settings {
            product_name: Some("Acme".into()),
            banner: Some("Be nice".into()),
            ..Default::default()
        };
        let change: Change =
            serde_json::from_str(r##"{"banner": null, "primary_color": "#123456"}"##).unwrap();
        let (after, changed) = change.apply(before);
        assert_eq!(after.product_name.as_deref(), Some("Acme"));
        assert_eq!(after.banner, None);
        assert_eq!(after.primary_color.as_deref(), Some("#123456"));
        assert_eq!(changed, ["primary_color", "banner"]);
        let (same, changed) = Change::to(after.clone()).apply(after.clone());
        assert_eq!((same, changed.len()), (after, 0));
        assert!(serde_json::from_str::<Change>(r##"{"colour": "#fff"}"##).is_err());
    }

    #[test]
    fn fields_are_checked() {
        let bad = |s: Settings| ok(&s).err().unwrap_or_default();
        assert!(
            bad(Settings { product_name: Some(" ".into()), ..Default::default() }).contains("product name")
        );
        assert!(bad(Settings { primary_color: Some("red".into()), ..Default::default() }).contains("#rgb"));
        assert!(
            bad(Settings { primary_color: Some("#fafafa".into()), ..Default::default() })
                .contains("contrast")
        );
        let link = |url: &str| Settings {
            footer_links: Some(vec![FooterLink { label: "Help".into(), url: url.into() }]),
            ..Default::default()
        };
        assert!(ok(&link("https://intranet.example/help")).is_ok());
        assert!(ok(&link("/account")).is_ok());
        assert!(bad(link("javascript:alert(1)")).contains("must start with"));
        assert!(bad(link("//evil.example")).contains("must start with"));
        let css = |css: &str| Settings { css: Some(css.into()), ..Default::default() };
        assert!(ok(&css("body { background: url(/theme/logo) }")).is_ok());
        assert!(bad(css("@import 'https://x/y.css';")).contains("@import"));
        assert!(bad(css("body { background: url( https://x/y.png ) }")).contains("elsewhere"));
        let logo = Settings {
            logo: Some(ImageBody { content_type: "image/png".into(), base64: "!!".into() }),
            ..Default::default()
        };
        assert!(bad(logo).contains("base64"));
    }
}
