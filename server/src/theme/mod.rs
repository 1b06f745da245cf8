//! White-label settings applied to every page: product name, logo and colours, delivered as CSS
//! custom properties so no page hard-codes the brand.

use crate::config::ThemeConfig;

const DEFAULT_LOGO: &str = include_str!("../web/static/logo.svg");

#[derive(Debug, Clone)]
pub struct Theme {
    pub product_name: String,
    pub primary_color: String,
    pub accent_color: String,
    logo: Logo,
}

#[derive(Debug, Clone)]
struct Logo {
    bytes: Vec<u8>,
    content_type: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("theme.logo_file {0}: {1}")]
    Logo(String, String),
}

const MAX_LOGO_BYTES: u64 = 512 * 1024;

impl Theme {
    pub fn from_config(cfg: &ThemeConfig) -> Result<Theme, ThemeError> {
        let logo = match &cfg.logo_file {
            // The built-in mark takes the brand colour, so a recoloured theme needs no new logo.
            None => Logo {
                bytes: DEFAULT_LOGO.replace("#3b5bdb", &cfg.primary_color).into_bytes(),
                content_type: "image/svg+xml",
            },
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
                if meta.len() > MAX_LOGO_BYTES {
                    return Err(ThemeError::Logo(shown, "is larger than 512 KiB".into()));
                }
                let bytes = std::fs::read(path).map_err(|e| ThemeError::Logo(shown, e.to_string()))?;
                Logo { bytes, content_type }
            }
        };
        Ok(Theme {
            product_name: cfg.product_name.clone(),
            primary_color: cfg.primary_color.clone(),
            accent_color: cfg.accent_color.clone(),
            logo,
        })
    }

    /// The stylesheet every page loads first; `app.css` only refers to these variables.
    pub fn css(&self) -> String {
        format!(
            ":root {{\n  --brand: {};\n  --accent: {};\n  --brand-name: \"{}\";\n}}\n",
            self.primary_color,
            self.accent_color,
            self.product_name.replace(['"', '\\', '\n'], "")
        )
    }

    pub fn logo(&self) -> (&[u8], &'static str) {
        (&self.logo.bytes, self.logo.content_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_carries_the_brand() {
        let t = Theme::from_config(&ThemeConfig { primary_color: "#123456".into(), ..Default::default() })
            .unwrap();
        assert!(t.css().contains("--brand: #123456"));
    }
}
