//! `/pharmacy`: the dosing-alert queue as a page. Filters are a plain GET form; the action
//! buttons are wired by `/static/pharmacy.js` to `POST /v1/dosing-alerts/{id}/actions`.

use super::html::{Nav, escape, options, page};
use super::svg::format_value;
use crate::pharmacy::{AlertStatus, DosingAlert, Quantity};
use std::fmt::Write;

/// The filter values as the user typed them (re-shown in the form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterForm {
    pub status: String,
    pub rule: String,
    pub from: String,
    pub to: String,
    pub patient: String,
}

/// The rules offered in the filter (the pathway's DOSE rule ids; any other typed id simply
/// matches nothing).
pub const DOSE_RULES: &[&str] = &[
    "DOSE-MAX-DAILY",
    "DOSE-REGIMEN",
    "DOSE-RENAL",
    "DOSE-RENAL-UNKNOWN",
    "DOSE-MME-50",
    "DOSE-MME-90",
    "DOSE-OPIOID-BENZO",
    "DOSE-OPIOID-GABA",
    "DOSE-BEERS-RELAXANT",
    "DOSE-SUPPLEMENT-UL",
    "DOSE-UNREADABLE",
];

fn quantity(q: Option<&Quantity>) -> String {
    match q {
        None => "—".into(),
        Some(q) => {
            let value = q
                .value
                .as_f64()
                .map(format_value)
                .unwrap_or_else(|| q.value.to_string());
            match &q.unit {
                Some(unit) => format!("{} {}", escape(&value), escape(unit)),
                None => escape(&value),
            }
        }
    }
}

pub fn render(alerts: &[DosingAlert], form: &FilterForm, limit: i64) -> String {
    let mut body = String::new();
    let statuses: Vec<(&str, &str)> = std::iter::once(("", "any"))
        .chain(AlertStatus::ALL.iter().map(|s| (s.as_str(), s.as_str())))
        .collect();
    let rules: Vec<(&str, &str)> = std::iter::once(("", "any"))
        .chain(DOSE_RULES.iter().map(|r| (*r, *r)))
        .collect();
    let _ = write!(
        body,
        "<form class=\"filters\" method=\"get\" action=\"/pharmacy\">\
         <label>Status<select name=\"status\">{}</select></label>\
         <label>Rule<select name=\"rule\">{}</select></label>\
         <label>From<input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>To (inclusive)<input type=\"date\" name=\"to\" value=\"{}\"></label>\
         <label>Patient<input type=\"text\" name=\"patient\" value=\"{}\" placeholder=\"Patient/…\"></label>\
         <button type=\"submit\">Filter</button></form>",
        options(&statuses, Some(form.status.as_str())),
        options(&rules, Some(form.rule.as_str())),
        escape(&form.from),
        escape(&form.to),
        escape(&form.patient),
    );
    if alerts.is_empty() {
        body.push_str("<p class=\"empty\">No dosing alerts match these filters.</p>");
        return page("Dosing alerts", Nav::Pharmacy, &[], &body);
    }
    let _ = write!(
        body,
        "<p class=\"muted\">{} alert{}, newest first{}.</p>",
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" },
        if alerts.len() as i64 >= limit {
            format!(" (the first {limit}; narrow the filters for older ones)")
        } else {
            String::new()
        }
    );
    body.push_str(
        "<div class=\"scroll-x\"><table id=\"queue\"><thead><tr><th>Evaluated (UTC)</th><th>Patient</th><th>Drug (order)</th>\
         <th>Rule</th><th>Computed</th><th>Limit</th><th>Status</th>\
         <th>Last action</th><th>Action</th></tr></thead><tbody>",
    );
    for a in alerts {
        let last = match &a.last_action {
            Some(l) => format!(
                "{} by {}{}",
                escape(&l.at.format("%Y-%m-%d %H:%M UTC").to_string()),
                escape(&l.by),
                l.note
                    .as_deref()
                    .map(|n| format!("<br><q>{}</q>", escape(n)))
                    .unwrap_or_default()
            ),
            None => "—".into(),
        };
        let actions = a.status.actions();
        let action_cell = if actions.is_empty() {
            "<span class=\"muted\">closed</span>".to_owned()
        } else {
            let mut cell = format!(
                "<input type=\"text\" name=\"note\" maxlength=\"{}\" placeholder=\"Note\" aria-label=\"Note for {}\">",
                crate::pharmacy::MAX_NOTE_CHARS,
                escape(&a.id)
            );
            for action in actions {
                let _ = write!(
                    cell,
                    "<button type=\"button\" data-alert=\"{}\" data-action=\"{}\">{}</button>",
                    escape(&a.id),
                    action.as_str(),
                    match action {
                        crate::pharmacy::AlertAction::Acknowledge => "Acknowledge",
                        crate::pharmacy::AlertAction::Escalate => "Escalate",
                        crate::pharmacy::AlertAction::Resolve => "Resolve",
                    }
                );
            }
            cell.push_str("<div class=\"message\" role=\"status\"></div>");
            cell
        };
        let _ = write!(
            body,
            "<tr data-alert=\"{id}\" data-status=\"{status}\">\
             <td class=\"when\">{evaluated}</td><td class=\"ref\">{patient}</td><td>{drug}<span class=\"ref\">{order}</span></td>\
             <td><span class=\"severity-{severity}\">{rule}</span></td>\
             <td class=\"num\">{value}</td><td class=\"num\">{limit}</td>\
             <td class=\"status status-{status}\">{status}</td><td>{last}</td>\
             <td class=\"actions\">{action_cell}</td></tr>",
            id = escape(&a.id),
            status = a.status.as_str(),
            evaluated = escape(&a.evaluated_at.format("%Y-%m-%d %H:%M").to_string()),
            patient = escape(a.patient_ref.as_deref().unwrap_or("—")),
            drug = escape(a.drug.as_deref().unwrap_or("—")),
            severity = escape(&a.severity),
            rule = escape(&a.rule_id),
            value = quantity(a.value.as_ref()),
            limit = quantity(a.limit.as_ref()),
            order = escape(a.order_ref.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table></div>");
    page(
        "Dosing alerts",
        Nav::Pharmacy,
        &["/static/pharmacy.js"],
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pharmacy::{LastAction, compared};
    use serde_json::json;
    use uuid::Uuid;

    fn alert(status: AlertStatus, patient: &str) -> DosingAlert {
        let numbers = json!({"daily_amount": 4875, "limit": 3000});
        let labels = json!({"ingredient": "acetaminophen", "unit": "mg/day"});
        let (value, limit) = compared(&numbers, &labels);
        DosingAlert {
            id: format!("{}.0", Uuid::nil()),
            decision_id: Uuid::nil(),
            finding_index: 0,
            evaluated_at: "2026-11-30T10:00:00Z".parse().unwrap(),
            rule_id: "DOSE-MAX-DAILY".into(),
            severity: "critical".into(),
            patient_ref: Some(patient.into()),
            user_ref: None,
            encounter_ref: None,
            order_ref: Some("MedicationRequest/m1".into()),
            drug: Some("acetaminophen".into()),
            value,
            limit,
            numbers,
            labels,
            pathway_version: "1".into(),
            status,
            last_action: (status != AlertStatus::Open).then(|| LastAction {
                at: "2026-11-30T11:00:00Z".parse().unwrap(),
                by: "key:pharmacy".into(),
                note: Some("<img src=x onerror=alert(1)>".into()),
            }),
        }
    }

    #[test]
    fn rows_show_the_numbers_with_units_and_the_buttons_the_status_allows() {
        let html = render(
            &[
                alert(AlertStatus::Open, "Patient/<script>"),
                alert(AlertStatus::Resolved, "Patient/2"),
            ],
            &FilterForm {
                status: "open".into(),
                ..Default::default()
            },
            100,
        );
        assert!(html.contains("4875 mg/day"));
        assert!(html.contains("3000 mg/day"));
        assert!(html.contains("Patient/&lt;script&gt;"));
        assert!(!html.contains("<script>"), "patient refs are escaped");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert_eq!(
            html.matches("data-action=").count(),
            3,
            "resolved rows have none"
        );
        assert!(html.contains("<option value=\"open\" selected>"));
        assert!(html.contains("/static/pharmacy.js"));
    }

    #[test]
    fn an_empty_queue_says_so() {
        let html = render(&[], &FilterForm::default(), 100);
        assert!(html.contains("No dosing alerts match"));
        assert!(!html.contains("<table"));
    }
}
