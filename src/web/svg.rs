//! Charts drawn on the server as inline SVG: no script, no external asset, readable offline and
//! printable. Every text is escaped; every shape carries a `<title>` with its exact value so a
//! hover (or a screen reader) gives the number behind it.

use super::html::escape;
use std::fmt::Write;

/// Series colours (colour-blind safe, Okabe–Ito).
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

const WIDTH: f64 = 720.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const LEGEND_COLUMNS: usize = 3;

/// One line of a trend chart: a value (or a gap) per x label.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<Option<f64>>,
}

/// A trend: x labels (weeks) and one line per series.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_labels: Vec<String>,
    pub series: Vec<Series>,
    /// Appended to tick labels and titles, e.g. `%`.
    pub unit: String,
}

/// Horizontal bars, one per category.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub bars: Vec<(String, f64)>,
    pub unit: String,
}

/// A "nice" upper bound for an axis (1, 2, 2.5 or 5 times a power of ten) and its tick step.
pub fn nice_axis(max: f64) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 0.25);
    }
    let raw_step = max / 4.0;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| s * 4.0 >= max)
        .unwrap_or(10.0 * magnitude);
    (step * 4.0, step)
}

/// A number for a tick or a tooltip: integers without decimals, others with up to two.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn open_svg(out: &mut String, height: f64, title: &str, class: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart {class}\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"100%\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"12\">\
         <title>{t}</title>\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"14\" font-weight=\"bold\" fill=\"#222\">{shown}</text>",
        t = escape(title),
        // About 7 px a character at 14 px: what fits the width (the full title is the tooltip).
        shown = escape(&truncate(title, 90))
    );
}

/// A trend chart; `None` when there is nothing to draw (no x label or no value at all).
pub fn line_chart(chart: &LineChart) -> Option<String> {
    let values: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .collect();
    if chart.x_labels.is_empty() || values.is_empty() {
        return None;
    }
    let legend_rows = chart.series.len().div_ceil(LEGEND_COLUMNS) as f64;
    let plot_h = 200.0;
    let bottom = 40.0 + 18.0 * legend_rows;
    let height = TOP + plot_h + bottom;
    let plot_w = WIDTH - LEFT - RIGHT;
    let (y_max, step) = nice_axis(values.iter().copied().fold(0.0, f64::max));
    let n = chart.x_labels.len();
    let x_at = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y_at = |v: f64| TOP + plot_h - plot_h * (v.max(0.0) / y_max);

    let mut out = String::new();
    open_svg(&mut out, height, &chart.title, "line-chart");
    axes(&mut out, plot_h, plot_w, y_max, step, &chart.unit);
    // X labels: at most ~12, evenly picked, so weeks never overlap.
    let every = n.div_ceil(12).max(1);
    for (i, label) in chart.x_labels.iter().enumerate() {
        if i % every == 0 || i == n - 1 {
            // The outermost labels are anchored inwards so they are never clipped.
            let anchor = match i {
                _ if n == 1 => "middle",
                0 => "start",
                i if i == n - 1 => "end",
                _ => "middle",
            };
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"#444\">{}</text>",
                x_at(i),
                TOP + plot_h + 16.0,
                escape(label)
            );
        }
    }
    for (s, series) in chart.series.iter().enumerate() {
        let colour = PALETTE[s % PALETTE.len()];
        // A gap (None) breaks the line into segments.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (i, p) in series.points.iter().enumerate().take(n) {
            match p.filter(|v| v.is_finite()) {
                Some(v) => segments.last_mut().expect("one").push((x_at(i), y_at(v))),
                None => segments.push(Vec::new()),
            }
        }
        let _ = write!(
            out,
            "<g class=\"series\" data-series=\"{}\">",
            escape(&series.name)
        );
        for seg in segments.iter().filter(|s| s.len() > 1) {
            let points: Vec<String> = seg.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            );
        }
        for (i, p) in series.points.iter().enumerate().take(n) {
            if let Some(v) = p.filter(|v| v.is_finite()) {
                let _ = write!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}: {} — {}{}</title></circle>",
                    x_at(i),
                    y_at(v),
                    escape(&series.name),
                    escape(&chart.x_labels[i]),
                    format_value(v),
                    escape(&chart.unit)
                );
            }
        }
        out.push_str("</g>");
        // Legend: three per row under the axis.
        let lx = LEFT + (s % LEGEND_COLUMNS) as f64 * (plot_w / LEGEND_COLUMNS as f64);
        let ly = TOP + plot_h + 36.0 + 18.0 * (s / LEGEND_COLUMNS) as f64;
        let _ = write!(
            out,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\" fill=\"#222\">{}</text>",
            ly - 10.0,
            lx + 16.0,
            escape(&truncate(&series.name, 30))
        );
    }
    out.push_str("</svg>");
    Some(out)
}

/// A bar chart; `None` when there are no bars.
pub fn bar_chart(chart: &BarChart) -> Option<String> {
    let bars: Vec<&(String, f64)> = chart.bars.iter().filter(|(_, v)| v.is_finite()).collect();
    if bars.is_empty() {
        return None;
    }
    let label_w = 180.0;
    let bar_h = 18.0;
    let gap = 6.0;
    let plot_h = bars.len() as f64 * (bar_h + gap);
    let height = TOP + plot_h + 30.0;
    let x0 = LEFT + label_w - 40.0;
    let plot_w = WIDTH - x0 - RIGHT - 60.0;
    let (x_max, step) = nice_axis(bars.iter().map(|(_, v)| *v).fold(0.0, f64::max));

    let mut out = String::new();
    open_svg(&mut out, height, &chart.title, "bar-chart");
    // Vertical grid lines with their values.
    let mut tick = 0.0;
    while tick <= x_max + step / 2.0 {
        let x = x0 + plot_w * tick / x_max;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}{}</text>",
            TOP + plot_h,
            TOP + plot_h + 16.0,
            format_value(tick),
            escape(&chart.unit)
        );
        tick += step;
    }
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = TOP + i as f64 * (bar_h + gap);
        let w = (plot_w * value.max(0.0) / x_max).max(1.0);
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#222\">{}</text>\
             <rect class=\"bar\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{}\">\
             <title>{}: {}{}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#222\">{}{}</text>",
            x0 - 6.0,
            y + 13.0,
            escape(&truncate(label, 26)),
            PALETTE[0],
            escape(label),
            format_value(*value),
            escape(&chart.unit),
            x0 + w + 4.0,
            y + 13.0,
            format_value(*value),
            escape(&chart.unit)
        );
    }
    out.push_str("</svg>");
    Some(out)
}

fn axes(out: &mut String, plot_h: f64, plot_w: f64, y_max: f64, step: f64, unit: &str) {
    let mut tick = 0.0;
    while tick <= y_max + step / 2.0 {
        let y = TOP + plot_h - plot_h * tick / y_max;
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#444\">{}{}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            format_value(tick),
            escape(unit)
        );
        tick += step;
    }
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"#888\"/>",
        TOP + plot_h
    );
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_at_or_above_the_maximum() {
        assert_eq!(nice_axis(7.3), (8.0, 2.0));
        assert_eq!(nice_axis(100.0), (100.0, 25.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.25));
        assert_eq!(nice_axis(f64::NAN), (1.0, 0.25));
        for max in [0.003, 1.0, 9.99, 42.0, 1234.5] {
            let (top, step) = nice_axis(max);
            assert!(top >= max && top < max * 2.6, "{max} -> {top}");
            assert!((top / step - 4.0).abs() < 1e-9);
        }
    }

    #[test]
    fn a_line_chart_has_one_polyline_per_series_and_a_point_per_value() {
        let chart = LineChart {
            title: "Cards per 100 <calls>".into(),
            x_labels: vec!["2026-W45".into(), "2026-W46".into(), "2026-W47".into()],
            series: vec![
                Series {
                    name: "DOSE-MME-90".into(),
                    points: vec![Some(4.0), Some(6.5), Some(5.0)],
                },
                Series {
                    name: "VCF-\"CALCIUM\"".into(),
                    points: vec![Some(1.0), None, Some(2.0)],
                },
            ],
            unit: "%".into(),
        };
        let svg = line_chart(&chart).unwrap();
        assert_eq!(
            svg.matches("<polyline").count(),
            1,
            "the gap breaks series 2"
        );
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("Cards per 100 &lt;calls&gt;"));
        assert!(svg.contains("VCF-&quot;CALCIUM&quot;"));
        assert!(!svg.contains("<calls>"));
        assert!(svg.contains("DOSE-MME-90: 2026-W46 — 6.5%"));
        assert!(
            line_chart(&LineChart {
                series: vec![],
                ..chart
            })
            .is_none()
        );
    }

    #[test]
    fn bars_are_proportional_to_their_values() {
        let svg = bar_chart(&BarChart {
            title: "Override rate".into(),
            bars: vec![("A".into(), 50.0), ("B".into(), 25.0), ("C".into(), 0.0)],
            unit: "%".into(),
        })
        .unwrap();
        let widths: Vec<f64> = svg
            .split("class=\"bar\"")
            .skip(1)
            .map(|s| {
                let w = s.split("width=\"").nth(1).unwrap();
                w[..w.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(widths.len(), 3);
        assert!((widths[0] / widths[1] - 2.0).abs() < 0.01, "{widths:?}");
        assert_eq!(widths[2], 1.0, "a zero bar stays visible as a hairline");
        assert!(
            bar_chart(&BarChart {
                title: "x".into(),
                bars: vec![],
                unit: String::new()
            })
            .is_none()
        );
    }
}
