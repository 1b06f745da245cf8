//! Bar charts as inline SVG, drawn on the server: no script, no outside URL, nothing the CSP
//! has to allow, and the colours come from the theme's stylesheet through classes. Each chart
//! names itself for screen readers, each bar carries its figures as a tooltip, and the pages
//! show the same numbers in a table beside it.

use std::fmt::Write as _;

/// One stacked part of each bar.
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<f64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A round number at or above `max`, for the top of the scale, which quarters well.
fn ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 4.0, 8.0, 10.0].iter().map(|m| m * magnitude).find(|top| *top >= max).unwrap_or(max)
}

/// Stacked bars, one per label (a `period`: day, hour), `series` bottom to top; `shown` writes a
/// value for the axis and the tooltips.
pub fn bars(
    title: &str,
    period: &str,
    labels: &[String],
    series: &[Series<'_>],
    shown: impl Fn(f64) -> String,
) -> String {
    let totals: Vec<f64> = (0..labels.len())
        .map(|i| series.iter().map(|s| s.values.get(i).copied().unwrap_or(0.0)).sum())
        .collect();
    let top = ceiling(totals.iter().copied().fold(0.0, f64::max));
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / labels.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    let mut svg = String::new();
    let names: Vec<&str> = series.iter().map(|s| s.name).collect();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}"><title>{}</title><desc>{} over {} {period}s; the table below has each {period}'s figures.</desc>"#,
        escape(title),
        escape(title),
        escape(&names.join(" and ")),
        labels.len()
    );
    for step in 0..=4 {
        let v = top * step as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{x}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            y = y(v),
            x = LEFT - 6.0,
            ty = y(v) + 4.0,
            label = escape(&shown(v)),
        );
    }
    let every = labels.len().div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let mut base = 0.0;
        let tip: Vec<String> = series
            .iter()
            .map(|s| format!("{}: {}", s.name, shown(s.values.get(i).copied().unwrap_or(0.0))))
            .collect();
        let _ = write!(svg, "<g><title>{}: {}</title>", escape(label), escape(&tip.join(", ")));
        for (n, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v > 0.0 {
                let _ = write!(
                    svg,
                    r#"<rect class="s{n}" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}"/>"#,
                    y = y(base + v),
                    h = v / top * plot_h,
                );
            }
            base += v;
        }
        svg.push_str("</g>");
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{cx:.1}" y="{ly}" text-anchor="middle">{}</text>"#,
                escape(label),
                cx = x + bar / 2.0,
                ly = HEIGHT - 6.0,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_to_a_round_scale_with_escaped_text() {
        assert_eq!(ceiling(0.0), 1.0);
        assert_eq!(ceiling(7.0), 8.0);
        assert_eq!(ceiling(30.0), 40.0);
        assert_eq!(ceiling(1_800.0), 2_000.0);
        assert_eq!(ceiling(0.03), 0.04);
        let labels = vec!["12-01".to_string(), "<b>".to_string()];
        let svg = bars(
            "Tokens",
            "day",
            &labels,
            &[
                Series { name: "local", values: vec![10.0, 0.0] },
                Series { name: "remote", values: vec![5.0, 0.0] },
            ],
            |v| format!("{v}"),
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 2, "one rect per non-zero part: {svg}");
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains("local: 10, remote: 5"));
    }
}
