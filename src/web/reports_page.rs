//! `/reports`: every report ([`crate::reports`]) as a chart and a table, with one filter form.
//! Charts come from the [`ReportTable`] itself: a report with a week column is a trend (one line
//! per combination of its text columns), any other a bar chart; the measure is the first
//! percent column, else the first number, else the first count.

use super::html::{Nav, escape, options, page};
use super::routes::url_params;
use super::svg::{self, BarChart, LineChart, Series, format_value};
use crate::reports::{ColumnKind, Direction, Filter, ReportName, ReportQuery, ReportTable};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Most rows a report shows on the page (the JSON / CSV API gives all).
pub const PAGE_ROWS: u32 = 500;
/// Most lines in one trend chart, most bars in one bar chart.
const MAX_SERIES: usize = 8;
const MAX_BARS: usize = 15;

/// One report on the page.
#[derive(Debug, Clone)]
pub struct Section {
    pub table: ReportTable,
    /// Filters given in the form that this report does not have (left out for it).
    pub skipped_filters: Vec<&'static str>,
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The column a chart plots, and its unit.
fn measure(table: &ReportTable) -> Option<(usize, &'static str)> {
    for (kind, unit) in [
        (ColumnKind::Percent, "%"),
        (ColumnKind::Number, ""),
        (ColumnKind::Integer, ""),
    ] {
        if let Some(i) = table.columns.iter().position(|c| c.kind == kind) {
            return Some((i, unit));
        }
    }
    None
}

/// The chart for a report table, as SVG; `None` when it has nothing to plot.
pub fn chart(table: &ReportTable) -> Option<String> {
    let (m, unit) = measure(table)?;
    let week = table
        .columns
        .iter()
        .position(|c| c.kind == ColumnKind::Week);
    let categories: Vec<usize> = table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.kind, ColumnKind::Text | ColumnKind::Date))
        .map(|(i, _)| i)
        .collect();
    let key = |row: &[Value]| -> String {
        let parts: Vec<String> = categories
            .iter()
            .map(|i| cell_text(&row[*i]))
            .map(|s| if s.is_empty() { "—".to_owned() } else { s })
            .collect();
        if parts.is_empty() {
            table.columns[m].label.clone()
        } else {
            parts.join(" · ")
        }
    };
    // The section's heading carries the report's title; the chart names what it plots.
    let title = table.columns[m].label.clone();
    if let Some(w) = week {
        let weeks: BTreeSet<String> = table
            .rows
            .iter()
            .map(|r| cell_text(&r[w]))
            .filter(|s| !s.is_empty())
            .collect();
        let weeks: Vec<String> = weeks.into_iter().collect();
        let mut by_series: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for row in &table.rows {
            let (Some(v), Value::String(wk)) = (number(&row[m]), &row[w]) else {
                continue;
            };
            by_series.entry(key(row)).or_default().insert(wk.clone(), v);
        }
        // The series with the largest totals, at most MAX_SERIES of them.
        let mut ranked: Vec<(String, f64)> = by_series
            .iter()
            .map(|(k, pts)| (k.clone(), pts.values().sum()))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let series = ranked
            .into_iter()
            .take(MAX_SERIES)
            .map(|(name, _)| {
                let pts = &by_series[&name];
                Series {
                    points: weeks.iter().map(|wk| pts.get(wk).copied()).collect(),
                    name,
                }
            })
            .collect();
        return svg::line_chart(&LineChart {
            title,
            x_labels: weeks,
            series,
            unit: unit.to_owned(),
        });
    }
    // One row without categories (a summary): a bar per percent (or number) column.
    if categories.is_empty() && table.rows.len() == 1 {
        let kind = table.columns[m].kind;
        let bars = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == kind)
            .filter_map(|(i, c)| number(&table.rows[0][i]).map(|v| (c.label.clone(), v)))
            .collect();
        return svg::bar_chart(&BarChart {
            title: table.title.clone(),
            bars,
            unit: unit.to_owned(),
        });
    }
    let mut bars: Vec<(String, f64)> = table
        .rows
        .iter()
        .filter_map(|r| number(&r[m]).map(|v| (key(r), v)))
        .collect();
    bars.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    bars.truncate(MAX_BARS);
    svg::bar_chart(&BarChart {
        title,
        bars,
        unit: unit.to_owned(),
    })
}

fn format_cell(kind: ColumnKind, v: &Value) -> String {
    match (kind, v) {
        (_, Value::Null) => "—".into(),
        (ColumnKind::Percent, v) if number(v).is_some() => {
            format!("{} %", format_value(number(v).unwrap_or_default()))
        }
        (ColumnKind::Number, v) if number(v).is_some() => {
            format_value(number(v).unwrap_or_default())
        }
        (_, v) => cell_text(v),
    }
}

/// The query's parameters with `report` and `sort` replaced: for the sort links.
fn link(query: &ReportQuery, report: ReportName, sort: &str) -> String {
    let mut params: Vec<(&str, Option<String>)> = vec![
        ("report", Some(report.as_str().to_owned())),
        ("from", Some(query.from.to_rfc3339())),
        ("to", Some(query.to.to_rfc3339())),
    ];
    for (filter, value) in query.filters.set() {
        if report.filters().contains(&filter) {
            params.push((filter.param(), Some(value.to_owned())));
        }
    }
    params.push(("sort", Some(sort.to_owned())));
    format!("/reports?{}", url_params(&params))
}

fn table_html(section: &Section, query: &ReportQuery) -> String {
    let table = &section.table;
    let mut out =
        String::from("<div class=\"table-wrap\"><table class=\"report-table\"><thead><tr>");
    for column in &table.columns {
        let current = query.sort.first().filter(|k| k.column == column.name);
        let (next, arrow) = match current.map(|k| k.direction) {
            Some(Direction::Asc) => (format!("-{}", column.name), " ▲"),
            Some(Direction::Desc) => (column.name.clone(), " ▼"),
            None => (column.name.clone(), ""),
        };
        let _ = write!(
            out,
            "<th scope=\"col\"><a href=\"{}\">{}{arrow}</a></th>",
            escape(&link(query, table.name, &next)),
            escape(&column.label)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for row in &table.rows {
        out.push_str("<tr>");
        for (column, value) in table.columns.iter().zip(row) {
            let numeric = matches!(
                column.kind,
                ColumnKind::Integer | ColumnKind::Number | ColumnKind::Percent
            );
            let _ = write!(
                out,
                "<td{}>{}</td>",
                if numeric { " class=\"num\"" } else { "" },
                escape(&format_cell(column.kind, value))
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

pub fn render(sections: &[Section], query: &ReportQuery, only: Option<ReportName>) -> String {
    let mut body = String::new();
    let reports: Vec<(&str, &str)> = std::iter::once(("", "all reports"))
        .chain(ReportName::ALL.iter().map(|r| (r.as_str(), r.title())))
        .collect();
    let _ = write!(
        body,
        "<form class=\"filters\" method=\"get\" action=\"/reports\">\
         <label>Report<select name=\"report\">{}</select></label>\
         <label>From<input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>To (inclusive)<input type=\"date\" name=\"to\" value=\"{}\"></label>",
        options(&reports, only.map(|r| r.as_str())),
        escape(&query.from.format("%Y-%m-%d").to_string()),
        // `to` is exclusive; the date field names the last day included.
        escape(
            &(query.to - chrono::Duration::microseconds(1))
                .format("%Y-%m-%d")
                .to_string()
        ),
    );
    for filter in Filter::ALL {
        let value = query.filters.get(*filter).unwrap_or_default();
        if *filter == Filter::Severity {
            let severities = [
                ("", "any"),
                ("info", "info"),
                ("warning", "warning"),
                ("critical", "critical"),
            ];
            let _ = write!(
                body,
                "<label>Severity<select name=\"severity\">{}</select></label>",
                options(&severities, Some(value))
            );
        } else {
            let _ = write!(
                body,
                "<label>{}<input type=\"text\" name=\"{}\" value=\"{}\"></label>",
                escape(&filter.param().replace('_', " ")),
                filter.param(),
                escape(value)
            );
        }
    }
    body.push_str("<button type=\"submit\">Show</button></form>");
    let _ = write!(
        body,
        "<p class=\"muted\">Decisions evaluated from {} to {} (UTC, end exclusive). \
         Every column heading sorts; JSON and CSV: <code>/v1/reports/&lt;name&gt;</code>.</p>",
        escape(&query.from.format("%Y-%m-%d %H:%M").to_string()),
        escape(&query.to.format("%Y-%m-%d %H:%M").to_string()),
    );
    for section in sections {
        let table = &section.table;
        let _ = write!(
            body,
            "<section class=\"report\" id=\"report-{name}\" data-report=\"{name}\"><h2>{}</h2>",
            escape(&table.title),
            name = table.name.as_str()
        );
        if !section.skipped_filters.is_empty() {
            let _ = write!(
                body,
                "<p class=\"muted\">Not filtered by {} (this report has no such filter).</p>",
                escape(&section.skipped_filters.join(", "))
            );
        }
        if table.rows.is_empty() {
            body.push_str("<p class=\"empty\">No rows in this window.</p></section>");
            continue;
        }
        if let Some(svg) = chart(table) {
            body.push_str(&svg);
        }
        if table.rows.len() as u32 >= PAGE_ROWS {
            let _ = write!(
                body,
                "<p class=\"muted\">The first {PAGE_ROWS} rows; the API gives all of them.</p>"
            );
        }
        body.push_str(&table_html(section, query));
        body.push_str("</section>");
    }
    page("Reports", Nav::Reports, &[], &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::Column;
    use serde_json::json;

    fn column(name: &str, kind: ColumnKind) -> Column {
        Column {
            name: name.into(),
            kind,
            label: name.replace('_', " "),
        }
    }

    fn burden() -> ReportTable {
        ReportTable {
            name: ReportName::ALL[0],
            title: "Alert burden".into(),
            columns: vec![
                column("week", ColumnKind::Week),
                column("rule_id", ColumnKind::Text),
                column("cards", ColumnKind::Integer),
                column("cards_per_100", ColumnKind::Number),
            ],
            rows: vec![
                vec![
                    json!("2026-11-02"),
                    json!("DOSE-MME-90"),
                    json!(4),
                    json!(8.0),
                ],
                vec![
                    json!("2026-11-09"),
                    json!("DOSE-MME-90"),
                    json!(6),
                    json!(12.5),
                ],
                vec![json!("2026-11-09"), json!("<b>X</b>"), json!(1), json!(2.0)],
            ],
        }
    }

    #[test]
    fn a_table_with_a_week_column_is_a_trend_with_a_line_per_category() {
        let svg = chart(&burden()).unwrap();
        assert!(svg.contains("line-chart"));
        assert_eq!(svg.matches("<g class=\"series\"").count(), 2);
        assert_eq!(
            svg.matches("<polyline").count(),
            1,
            "one-point series has no line"
        );
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("DOSE-MME-90: 2026-11-09 — 12.5"));
        assert!(svg.contains("&lt;b&gt;X&lt;/b&gt;"));
    }

    #[test]
    fn a_table_without_weeks_is_a_bar_chart_of_its_first_percentage() {
        let table = ReportTable {
            name: ReportName::ALL[0],
            title: "Override rate".into(),
            columns: vec![
                column("rule_id", ColumnKind::Text),
                column("cards", ColumnKind::Integer),
                column("override_rate", ColumnKind::Percent),
            ],
            rows: vec![
                vec![json!("A"), json!(10), json!(25.0)],
                vec![json!("B"), json!(4), json!(50.0)],
                vec![json!("C"), json!(0), Value::Null],
            ],
        };
        let svg = chart(&table).unwrap();
        assert!(svg.contains("bar-chart"));
        assert_eq!(svg.matches("class=\"bar\"").count(), 2, "null is not a bar");
        assert!(
            svg.find(">B<").unwrap() < svg.find(">A<").unwrap(),
            "largest first"
        );
        assert!(svg.contains("B: 50%"));
    }

    #[test]
    fn the_page_escapes_cells_and_links_every_column_for_sorting() {
        let query = ReportQuery::last_days("2026-12-01T00:00:00Z".parse().unwrap());
        let html = render(
            &[Section {
                table: burden(),
                skipped_filters: vec!["reason"],
            }],
            &query,
            None,
        );
        assert!(html.contains("&lt;b&gt;X&lt;/b&gt;"));
        assert!(!html.contains("<b>X</b>"));
        assert_eq!(html.matches("sort=").count(), 4);
        assert!(html.contains("Not filtered by reason"));
        assert!(html.contains("<svg"));
        assert!(
            html.contains("value=\"2026-11-30\""),
            "the last day included"
        );
    }
}
