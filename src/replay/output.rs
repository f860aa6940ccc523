//! The replay reports as a text table, CSV, JSON, and (what-if) a self-contained HTML page with
//! an inline SVG chart of the alert burden before / after per rule (no external assets).

use super::determinism::DeterminismReport;
use super::whatif::{RuleImpact, WhatIfReport};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn ids(examples: &super::Examples) -> String {
    examples
        .ids()
        .iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

const COLUMNS: [&str; 12] = [
    "rule_id",
    "old_cards",
    "new_cards",
    "appears",
    "disappears",
    "severity_changes",
    "old_per_100_order_sign",
    "new_per_100_order_sign",
    "severity_transitions",
    "appears_examples",
    "disappears_examples",
    "severity_change_examples",
];

fn row(r: &RuleImpact) -> [String; 12] {
    [
        r.rule_id.clone(),
        r.old_cards.to_string(),
        r.new_cards.to_string(),
        r.appears.to_string(),
        r.disappears.to_string(),
        r.severity_changes.to_string(),
        opt(r.old_per_100_order_sign),
        opt(r.new_per_100_order_sign),
        r.severity_transitions
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(" "),
        ids(&r.examples.appears),
        ids(&r.examples.disappears),
        ids(&r.examples.severity_changes),
    ]
}

/// The what-if report in `format`.
pub fn what_if(report: &WhatIfReport, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).expect("reports serialize") + "\n",
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(COLUMNS);
            for r in report.rules.iter().chain([&report.total]) {
                let _ = w.write_record(row(r));
            }
            String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
        }
        Format::Table => what_if_table(report),
    }
}

fn what_if_table(report: &WhatIfReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "what-if: pathway {} version {} (sha256 {}){}",
        report.draft.id,
        report.draft.version,
        &report.draft.content_hash[..12.min(report.draft.content_hash.len())],
        report
            .rule
            .as_ref()
            .map(|r| format!(", rule {r}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "{} decisions replayed ({} order-sign calls) in {:.1} s on {} workers: {:.0}/s; {} unreadable",
        report.decisions,
        report.order_sign_calls,
        report.run.elapsed.as_secs_f64(),
        report.run.workers,
        report.run.per_second(),
        report.unreadable
    );
    let headers = [
        "rule",
        "old",
        "new",
        "appear",
        "disappear",
        "severity",
        "old/100 sign",
        "new/100 sign",
    ];
    let rows: Vec<[String; 8]> = report
        .rules
        .iter()
        .chain([&report.total])
        .map(|r| {
            let full = row(r);
            [
                full[0].clone(),
                full[1].clone(),
                full[2].clone(),
                full[3].clone(),
                full[4].clone(),
                full[5].clone(),
                full[6].clone(),
                full[7].clone(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(s, "{c:<w$}", w = widths[i]);
            } else {
                let _ = write!(s, "  {c:>w$}", w = widths[i]);
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    out += &line(&headers);
    for r in &rows {
        out += &line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let mut examples = String::new();
    for r in &report.rules {
        for (kind, ex) in [
            ("appear", &r.examples.appears),
            ("disappear", &r.examples.disappears),
            ("change severity", &r.examples.severity_changes),
        ] {
            if !ex.ids().is_empty() {
                let _ = writeln!(examples, "  {} {kind}: {}", r.rule_id, ids(ex));
            }
        }
    }
    if !examples.is_empty() {
        out += "example decisions:\n";
        out += &examples;
    }
    out
}

/// The determinism report in `format`.
pub fn determinism(report: &DeterminismReport, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).expect("reports serialize") + "\n",
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(["decision_id", "pathway_version", "difference"]);
            for d in &report.differences {
                for detail in &d.details {
                    let _ = w.write_record([
                        d.decision_id.to_string(),
                        d.pathway_version.clone(),
                        detail.clone(),
                    ]);
                }
            }
            String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
        }
        Format::Table => {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "{} decisions in the window; {} replayed under their own pathway version, {} reproduced exactly ({} findings compared), {} differ ({} in the answer's hash); {} skipped; {:.1} s on {} workers ({:.0}/s)",
                report.decisions,
                report.replayed,
                report.reproduced,
                report.findings_compared,
                report.differing,
                report.response_differs,
                report.skipped_decisions,
                report.run.elapsed.as_secs_f64(),
                report.run.workers,
                report.run.per_second()
            );
            for s in &report.skipped {
                let _ = writeln!(
                    out,
                    "SKIPPED {} decision(s) of pathway version {} (sha256 {}): {}",
                    s.decisions, s.pathway_version, s.pathway_hash, s.reason
                );
            }
            for d in &report.differences {
                for detail in &d.details {
                    let _ = writeln!(
                        out,
                        "DIFFERS {} ({}): {detail}",
                        d.decision_id, d.pathway_version
                    );
                }
            }
            if report.differing as usize > report.differences.len() {
                let _ = writeln!(
                    out,
                    "... and {} more differing decisions (use --format json for the first 1000)",
                    report.differing as usize - report.differences.len()
                );
            }
            out += if report.is_clean() {
                "deterministic: every replayed decision reproduced its stored findings\n"
            } else {
                "NOT deterministic: see the differences above\n"
            };
            out
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An inline SVG: two horizontal bars (stored, draft) for one rule.
fn chart(r: &RuleImpact, by_burden: bool, scale: f64) -> String {
    let (old, new, unit) = if by_burden {
        (
            r.old_per_100_order_sign.unwrap_or(0.0),
            r.new_per_100_order_sign.unwrap_or(0.0),
            "cards / 100 order-sign calls",
        )
    } else {
        (r.old_cards as f64, r.new_cards as f64, "cards")
    };
    let width = |v: f64| if scale > 0.0 { v / scale * 360.0 } else { 0.0 };
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"560\" height=\"74\" role=\"img\" aria-label=\"{}: {old:.2} before, {new:.2} after ({unit})\">",
        escape(&r.rule_id)
    );
    for (i, (label, value, color)) in [("stored", old, "#7a869a"), ("draft", new, "#1f6feb")]
        .iter()
        .enumerate()
    {
        let y = 8 + i * 30;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{label}</text><rect x=\"60\" y=\"{y}\" width=\"{:.1}\" height=\"22\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"13\">{value:.2}</text>",
            y + 16,
            width(*value),
            66.0 + width(*value),
            y + 16
        );
    }
    svg += "</svg>";
    svg
}

/// The what-if report as one HTML page, everything inline.
pub fn what_if_html(report: &WhatIfReport) -> String {
    let by_burden = report.order_sign_calls > 0;
    let value = |r: &RuleImpact| {
        if by_burden {
            r.old_per_100_order_sign
                .unwrap_or(0.0)
                .max(r.new_per_100_order_sign.unwrap_or(0.0))
        } else {
            r.old_cards.max(r.new_cards) as f64
        }
    };
    let scale = report.rules.iter().map(value).fold(0.0, f64::max);
    let mut html = String::new();
    let title = format!(
        "What-if replay: {} {}",
        report.draft.id, report.draft.version
    );
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}section{{margin:1.5em 0}}code{{font-size:.85em}}</style>\
         </head><body><h1>{t}</h1>",
        t = escape(&title)
    );
    let _ = write!(
        html,
        "<p>Draft sha256 <code>{}</code>{}. {} decisions replayed, {} of them CDS Hooks order-sign calls; {} stored inputs unreadable. Window: {} to {}.</p>",
        escape(&report.draft.content_hash),
        report
            .rule
            .as_ref()
            .map(|r| format!(", rule {}", escape(r)))
            .unwrap_or_default(),
        report.decisions,
        report.order_sign_calls,
        report.unreadable,
        report
            .window
            .from
            .map_or_else(|| "the first decision".into(), |t| t.to_rfc3339()),
        report
            .window
            .to
            .map_or_else(|| "the last".into(), |t| t.to_rfc3339()),
    );
    html += "<table><tr><th>rule</th><th>stored cards</th><th>draft cards</th><th>appear</th><th>disappear</th><th>severity changes</th><th>stored / 100 order-sign</th><th>draft / 100 order-sign</th></tr>";
    for r in report.rules.iter().chain([&report.total]) {
        let cells = row(r);
        html += "<tr>";
        for c in &cells[..8] {
            let _ = write!(html, "<td>{}</td>", escape(c));
        }
        html += "</tr>";
    }
    html += "</table>";
    for r in &report.rules {
        let _ = write!(
            html,
            "<section><h2>{}</h2>{}<p>{} appear, {} disappear, {} change severity{}.</p>",
            escape(&r.rule_id),
            chart(r, by_burden, scale),
            r.appears,
            r.disappears,
            r.severity_changes,
            if r.severity_transitions.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    escape(
                        &r.severity_transitions
                            .iter()
                            .map(|(k, v)| format!("{k}: {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                )
            }
        );
        for (kind, ex) in [
            ("appear", &r.examples.appears),
            ("disappear", &r.examples.disappears),
            ("change severity", &r.examples.severity_changes),
        ] {
            if !ex.ids().is_empty() {
                let _ = write!(
                    html,
                    "<p>Examples that {kind}: <code>{}</code></p>",
                    escape(&ids(ex))
                );
            }
        }
        html += "</section>";
    }
    html += "</body></html>\n";
    html
}
