//! WCAG 2.x contrast for the theme's colours, checked against the surfaces `app.css` puts them
//! on, so a theme that would leave text unreadable is refused before anyone sees it.
//!
//! The primary colour is text (links, the current page) and the fill of buttons with white
//! text: 4.5:1 (AA for normal text). In dark mode `app.css` shows it as text mixed 60/40 with
//! white (`--link`), and that mix is what is checked there. The accent colour marks things
//! (chart series, highlights, the "on" badge) and never carries text: 3:1 (AA for graphical
//! objects).

/// `#rgb` or `#rrggbb` as 0–255 channels.
pub fn parse(hex: &str) -> Option<[f64; 3]> {
    let digits = hex.strip_prefix('#')?;
    let channel = |s: &str| u8::from_str_radix(s, 16).ok().map(f64::from);
    match digits.len() {
        3 => {
            let mut out = [0.0; 3];
            for (i, c) in digits.chars().enumerate() {
                out[i] = channel(&format!("{c}{c}"))?;
            }
            Some(out)
        }
        6 if digits.is_ascii() => {
            Some([channel(&digits[0..2])?, channel(&digits[2..4])?, channel(&digits[4..6])?])
        }
        _ => None,
    }
}

fn luminance(rgb: [f64; 3]) -> f64 {
    let linear = |c: f64| {
        let c = c / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * linear(rgb[0]) + 0.7152 * linear(rgb[1]) + 0.0722 * linear(rgb[2])
}

pub fn ratio(a: [f64; 3], b: [f64; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// `color-mix(in srgb, c share, white)`, as browsers compute it.
fn mix_with_white(c: [f64; 3], share: f64) -> [f64; 3] {
    c.map(|v| v * share + 255.0 * (1.0 - share))
}

const WHITE: [f64; 3] = [255.0, 255.0, 255.0];
// The surfaces of app.css: --surface and --bg, light then dark.
const LIGHT: [(&str, [f64; 3]); 2] = [("white", WHITE), ("the light background", [246.0, 247.0, 251.0])];
const DARK: [(&str, [f64; 3]); 2] =
    [("the dark surface", [27.0, 31.0, 42.0]), ("the dark background", [18.0, 21.0, 29.0])];
/// How much of the primary colour dark mode's `--link` keeps.
const DARK_LINK_SHARE: f64 = 0.6;

pub const TEXT: f64 = 4.5;
pub const GRAPHIC: f64 = 3.0;

/// Which schemes the pages may be shown in.
#[derive(Clone, Copy)]
pub struct Schemes {
    pub light: bool,
    pub dark: bool,
}

/// Every way the colours fall short, worded for the admin who chose them.
pub fn check(primary: &str, accent: &str, schemes: Schemes) -> Vec<String> {
    let mut problems = Vec::new();
    let (Some(p), Some(a)) = (parse(primary), parse(accent)) else {
        return vec!["colours must be #rgb or #rrggbb".into()];
    };
    let mut need = |what: &str, colour: [f64; 3], on: &str, surface: [f64; 3], least: f64| {
        let r = ratio(colour, surface);
        if r < least {
            problems.push(format!("{what} on {on} has contrast {r:.2}:1; WCAG AA needs {least}:1"));
        }
    };
    // Buttons: white text on the primary colour, in both schemes.
    need(&format!("white text on the primary colour {primary}"), WHITE, "it", p, TEXT);
    if schemes.light {
        for (on, surface) in LIGHT {
            need(&format!("the primary colour {primary} as text"), p, on, surface, TEXT);
        }
        // Marks are drawn on cards, which are the surface.
        need(&format!("the accent colour {accent}"), a, LIGHT[0].0, LIGHT[0].1, GRAPHIC);
    }
    if schemes.dark {
        let link = mix_with_white(p, DARK_LINK_SHARE);
        for (on, surface) in DARK {
            need(&format!("the primary colour {primary} as dark-mode text"), link, on, surface, TEXT);
        }
        need(&format!("the accent colour {accent}"), a, DARK[0].0, DARK[0].1, GRAPHIC);
    }
    problems.dedup();
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Schemes = Schemes { light: true, dark: true };

    #[test]
    fn ratios_match_the_wcag_examples() {
        assert!((ratio(WHITE, [0.0; 3]) - 21.0).abs() < 1e-9);
        assert!((ratio(parse("#777").unwrap(), WHITE) - 4.48).abs() < 0.01);
        assert_eq!(parse("#abc"), parse("#aabbcc"));
        assert_eq!(parse("#12345"), None);
        assert_eq!(parse("#gg0000"), None);
    }

    #[test]
    fn the_default_colours_pass_and_pale_ones_do_not() {
        assert_eq!(check("#3b5bdb", "#0ca678", BOTH), Vec::<String>::new());
        let pale = check("#ffd43b", "#0ca678", BOTH);
        assert!(pale.iter().any(|p| p.contains("#ffd43b as text")), "{pale:?}");
        let faint_accent = check("#3b5bdb", "#e9ecef", Schemes { light: true, dark: false });
        assert!(faint_accent.iter().any(|p| p.contains("accent")), "{faint_accent:?}");
        // Too dark to read on dark surfaces even mixed with white, fine on light ones.
        assert!(check("#1a1a40", "#0ca678", Schemes { light: true, dark: false }).is_empty());
        assert!(!check("#1a1a40", "#0ca678", BOTH).is_empty());
    }
}
