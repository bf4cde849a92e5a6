//! Charts drawn on the server as SVG: no script, no external library, nothing fetched at run
//! time; printed as they are shown. Every chart on the page has a plain table beside it with
//! the same numbers, so a chart is never the only way to read them.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::fmt::Write as _;

/// One series of a bar chart: a name for the legend, a CSS class for its colour and a value
/// per label (`None`: no data, no bar).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS class of its bars (`s1`, `s2`, `s3`).
    pub class: &'static str,
    /// One value per label.
    pub values: Vec<Option<Decimal>>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 230.0;
const LEFT: f64 = 92.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 46.0;

/// Escapes text for SVG/XML content and attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" step for about four ticks over `span` (1, 2 or 5 times a power of ten).
fn nice_step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / 4.0;
    let power = 10f64.powf(raw.log10().floor());
    let unit = raw / power;
    let nice = if unit <= 1.0 {
        1.0
    } else if unit <= 2.0 {
        2.0
    } else if unit <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// A grouped bar chart: one group per label, one bar per series, a zero line, ticks written
/// by `tick` (Danish numbers). `id` names the chart for `aria-labelledby`; `title` is its
/// accessible name.
pub fn bars(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series],
    tick: impl Fn(Decimal) -> String,
) -> String {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .filter_map(|d| d.to_f64())
        .collect();
    // Drawing only: positions are floats; every number a person reads is from the table.
    let lo = values.iter().copied().fold(0.0f64, f64::min);
    let hi = values.iter().copied().fold(0.0f64, f64::max);
    let step = nice_step(hi - lo);
    let lo = (lo / step).floor() * step;
    let hi = ((hi / step).ceil() * step).max(lo + step);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let plot_w = WIDTH - LEFT - RIGHT;
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{}</title>"#,
        esc(title)
    );
    // Grid and ticks.
    let mut t = lo;
    let mut guard = 0;
    while t <= hi + step / 2.0 && guard < 20 {
        let yy = y(t);
        let label = Decimal::from_f64_retain(t)
            .map(|d| tick(d.round_dp(6)))
            .unwrap_or_default();
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            esc(&label)
        );
        t += step;
        guard += 1;
    }
    let zero = y(0.0);
    let _ = write!(
        svg,
        r#"<line class="zero" x1="{LEFT}" x2="{}" y1="{zero:.1}" y2="{zero:.1}"/>"#,
        WIDTH - RIGHT
    );
    // Bars.
    let groups = labels.len().max(1) as f64;
    let group_w = plot_w / groups;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    for (i, label) in labels.iter().enumerate() {
        let x0 = LEFT + group_w * i as f64 + group_w * 0.1;
        for (k, s) in series.iter().enumerate() {
            let Some(v) = s.values.get(i).copied().flatten().and_then(|d| d.to_f64()) else {
                continue;
            };
            let (top, bottom) = if v >= 0.0 { (y(v), zero) } else { (zero, y(v)) };
            let _ = write!(
                svg,
                r#"<rect class="{}" x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}"><title>{}: {}</title></rect>"#,
                s.class,
                x0 + bar_w * k as f64,
                (bar_w - 1.0).max(1.0),
                (bottom - top).max(0.5),
                esc(&format!("{} {label}", s.name)),
                esc(&tick(s.values[i].unwrap_or_default()))
            );
        }
        let _ = write!(
            svg,
            r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x0 + group_w * 0.4,
            HEIGHT - BOTTOM + 16.0,
            esc(label)
        );
    }
    // Legend.
    let mut lx = LEFT;
    for s in series {
        let _ = write!(
            svg,
            r#"<rect class="{}" x="{lx:.1}" y="{:.1}" width="12" height="12"/><text class="legend" x="{:.1}" y="{:.1}">{}</text>"#,
            s.class,
            HEIGHT - 16.0,
            lx + 16.0,
            HEIGHT - 6.0,
            esc(&s.name)
        );
        lx += 24.0 + 7.5 * s.name.chars().count() as f64;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_bar_per_value_escaped_text_and_no_script() {
        let labels = vec!["jan.".to_owned(), "feb.".to_owned(), "<x>".to_owned()];
        let series = vec![
            Series {
                name: "Indtægt".into(),
                class: "s1",
                values: vec![Some(Decimal::from(100)), None, Some(Decimal::from(-40))],
            },
            Series {
                name: "Omkostninger & løn".into(),
                class: "s2",
                values: vec![Some(Decimal::from(80)), Some(Decimal::from(90)), None],
            },
        ];
        let svg = bars("c1", "Indtægt mod omkostninger", &labels, &series, |d| {
            d.normalize().to_string()
        });
        assert_eq!(
            svg.matches("<rect class=\"s1\" x=").count(),
            3,
            "2 bars + legend"
        );
        assert_eq!(
            svg.matches("<rect class=\"s2\" x=").count(),
            3,
            "2 bars + legend"
        );
        assert!(svg.contains("&lt;x&gt;") && svg.contains("Omkostninger &amp; løn"));
        assert!(!svg.contains("<script"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(nice_step(1000.0), 500.0);
        assert_eq!(nice_step(3.0), 1.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(7_000_000.0), 2_000_000.0);
    }
}
