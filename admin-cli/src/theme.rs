//! `ayushctl theme`: set, show, export and import the white-label theme. Files named on the
//! command line are read here and sent as the API's JSON, so local and remote work alike.

use crate::ThemeCommand;
use crate::backend::Backend;
use crate::output::Output;
use ayush_server::theme::{ImageBody, Settings, images};
use serde_json::{Map, Value, json};
use std::path::Path;

/// What `theme export` writes: a version, then the settings.
const FORMAT_KEY: &str = "ayush_theme";
const FORMAT: u64 = 1;

pub fn run(backend: &dyn Backend, out: Output, cmd: ThemeCommand) -> Result<(), String> {
    match cmd {
        ThemeCommand::Set {
            product_name,
            primary_color,
            accent_color,
            mode,
            logo,
            favicon,
            banner,
            footer_links,
            no_footer_links,
            css,
            reset,
        } => {
            let mut body = Map::new();
            let mut put = |key: &str, value: Value| body.insert(key.into(), value);
            if let Some(v) = product_name {
                put("product_name", json!(v));
            }
            if let Some(v) = primary_color {
                put("primary_color", json!(v));
            }
            if let Some(v) = accent_color {
                put("accent_color", json!(v));
            }
            if let Some(v) = mode {
                put("mode", json!(v));
            }
            if let Some(path) = logo {
                put("logo", image(&path)?);
            }
            if let Some(path) = favicon {
                put("favicon", image(&path)?);
            }
            if let Some(v) = banner {
                put("banner", json!(v));
            }
            if no_footer_links {
                put("footer_links", Value::Null);
            } else if !footer_links.is_empty() {
                let links = footer_links.iter().map(|l| link(l)).collect::<Result<Vec<_>, _>>()?;
                put("footer_links", json!(links));
            }
            if let Some(path) = css {
                put("css", json!(read_text(&path, ayush_server::theme::settings::MAX_CSS_BYTES)?));
            }
            for setting in reset {
                let key = setting.replace('-', "_");
                if !KEYS.contains(&key.as_str()) {
                    return Err(format!("--reset {setting}: no such setting; one of {}", KEYS.join(", ")));
                }
                if body.contains_key(&key) {
                    return Err(format!("{setting} is both set and reset"));
                }
                body.insert(key, Value::Null);
            }
            if body.is_empty() {
                return Err("give at least one setting to change (see `ayushctl theme set --help`)".into());
            }
            let shown = backend.set_theme(Value::Object(body))?;
            out.object(&summary(&shown))
        }
        ThemeCommand::Show => out.object(&summary(&backend.show_theme()?)),
        ThemeCommand::Export { file } => {
            let shown = backend.show_theme()?;
            let doc = json!({ FORMAT_KEY: FORMAT, "settings": shown["settings"] });
            let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
            match file {
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    out.done(&format!("theme written to {}", path.display()))
                }
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        ThemeCommand::Import { file } => {
            let text = read_text(&file, 4 * 1024 * 1024)?;
            let doc: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: not JSON ({e})", file.display()))?;
            if doc.get(FORMAT_KEY).and_then(Value::as_u64) != Some(FORMAT) {
                return Err(format!(
                    "{}: not a theme written by `ayushctl theme export` (no \"{FORMAT_KEY}\": {FORMAT})",
                    file.display()
                ));
            }
            // Read as settings first, so a misspelt field is named before anything changes;
            // every field is sent, so the theme becomes exactly the exported one.
            let settings: Settings = serde_json::from_value(doc["settings"].clone())
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let body = serde_json::to_value(settings).map_err(|e| e.to_string())?;
            out.object(&summary(&backend.set_theme(body)?))
        }
    }
}

const KEYS: &[&str] = &[
    "product_name",
    "primary_color",
    "accent_color",
    "mode",
    "logo",
    "favicon",
    "banner",
    "footer_links",
    "css",
];

/// What is in effect, and which settings are set here rather than taken from the config file.
fn summary(shown: &Value) -> Value {
    let set: Vec<&str> = KEYS.iter().copied().filter(|k| !shown["settings"][*k].is_null()).collect();
    json!({"effective": shown["effective"], "set": set, "revision": shown["revision"]})
}

fn image(path: &Path) -> Result<Value, String> {
    let content_type = images::type_of_file(path)?;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > images::MAX_BYTES as u64 {
        return Err(format!("{}: larger than 512 KiB", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::to_value(ImageBody::of(content_type, &bytes)).map_err(|e| e.to_string())
}

fn read_text(path: &Path, limit: usize) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > limit as u64 {
        return Err(format!("{}: larger than {} KiB", path.display(), limit / 1024));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn link(arg: &str) -> Result<Value, String> {
    match arg.split_once('=') {
        Some((label, url)) if !label.trim().is_empty() => {
            Ok(json!({"label": label.trim(), "url": url.trim()}))
        }
        _ => Err(format!("--footer-link {arg:?}: write it as LABEL=URL")),
    }
}
