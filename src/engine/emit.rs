//! How rule kinds report: an [`Emitter`] per rule fills the rule's message templates with the
//! finding's numbers, picks its suggestions, and drops findings about orders outside the
//! order-select focus. Rule kinds never build [`Finding`]s by hand, so every card has the same
//! shape.

use super::facts::Facts;
use crate::decision::{
    Action, Evaluation, Finding, Labels, MissingInput, Numbers, PATIENT_PLACEHOLDER, Resource,
    Severity, Suggestion,
};
use crate::domain::OrderRef;
use crate::domain::units::push_number;
use crate::pathway::CompiledRule;
use crate::pathway::document::ActionTarget;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The most suggestions a rule may have (one bit each in a finding's offer).
pub const MAX_SUGGESTIONS: usize = 64;

/// Collects the findings and missing inputs of one evaluation.
#[derive(Default)]
pub struct Sink {
    findings: Vec<Finding>,
    /// The values of the finding under construction: one buffer for every finding of the
    /// evaluation, handed to each builder and taken back when it is emitted.
    vars: Vec<(&'static str, Var)>,
    missing: BTreeMap<String, BTreeSet<String>>,
}

impl Sink {
    pub fn missing(&mut self, input: &str, rule_id: &str) {
        self.missing
            .entry(input.to_owned())
            .or_default()
            .insert(rule_id.to_owned());
    }

    pub fn finish(mut self, facts: &Facts<'_>) -> Evaluation {
        // Deterministic order: most severe first, then rule id, then order reference.
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.rule_id.cmp(&b.rule_id))
                .then_with(|| a.order_ref.cmp(&b.order_ref))
        });
        self.findings
            .dedup_by(|a, b| a.rule_id == b.rule_id && a.order_ref == b.order_ref);
        Evaluation {
            findings: self.findings,
            unrecognized: facts.unrecognized(),
            missing_inputs: self
                .missing
                .into_iter()
                .map(|(input, rules)| MissingInput {
                    input,
                    rules: rules.into_iter().collect(),
                })
                .collect(),
        }
    }
}

/// A value placed into a message template and, for numbers, into the finding's `numbers`.
#[derive(Debug, Clone)]
pub enum Var {
    Number(f64),
    Text(Cow<'static, str>),
}

/// The per-rule reporting handle given to [`super::rules::RuleKind::evaluate`].
pub struct Emitter<'a> {
    rule: &'a CompiledRule,
    facts: &'a Facts<'a>,
    sink: &'a mut Sink,
}

/// A finding under construction; `emit()` adds it.
#[must_use = "call .emit() to report the finding"]
pub struct FindingBuilder<'e, 'a> {
    emitter: &'e mut Emitter<'a>,
    variant: &'static str,
    severity: Option<Severity>,
    order: Option<OrderRef>,
    vars: Vec<(&'static str, Var)>,
    /// Which of the rule's suggestions to offer, one bit per suggestion (`None`: all).
    offered: Option<u64>,
}

impl<'a> Emitter<'a> {
    pub fn new(rule: &'a CompiledRule, facts: &'a Facts<'a>, sink: &'a mut Sink) -> Emitter<'a> {
        Emitter { rule, facts, sink }
    }

    pub fn rule_id(&self) -> &str {
        &self.rule.id
    }

    /// Starts a finding with the `default` message.
    pub fn finding(&mut self) -> FindingBuilder<'_, 'a> {
        let mut vars = std::mem::take(&mut self.sink.vars);
        vars.clear();
        vars.reserve(8);
        FindingBuilder {
            emitter: self,
            variant: "default",
            severity: None,
            order: None,
            vars,
            offered: None,
        }
    }

    /// Records that this rule could not check because `input` was missing.
    pub fn missing(&mut self, input: &str) {
        let id = self.rule.id.clone();
        self.sink.missing(input, &id);
    }
}

impl FindingBuilder<'_, '_> {
    /// Uses message variant `name` (falls back to `default` when the pathway lacks it).
    pub fn variant(mut self, name: &'static str) -> Self {
        self.variant = name;
        self
    }

    /// Overrides the severity (e.g. DOSE-MAX-DAILY becomes critical above 1.5× the maximum).
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    pub fn order(mut self, order: &OrderRef) -> Self {
        self.order = Some(order.clone());
        self
    }

    pub fn number(mut self, name: &'static str, value: f64) -> Self {
        self.vars.push((name, Var::Number(value)));
        self
    }

    pub fn text(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Self {
        self.vars.push((name, Var::Text(value.into())));
        self
    }

    /// Offers only these suggestions (by id); by default every suggestion of the rule is offered.
    pub fn suggestions(mut self, ids: &[&str]) -> Self {
        // A pathway rule has at most MAX_SUGGESTIONS suggestions (checked when it compiles).
        let mask = self
            .emitter
            .rule
            .suggestions
            .iter()
            .take(MAX_SUGGESTIONS)
            .enumerate()
            .filter(|(_, s)| ids.contains(&&*s.id))
            .fold(0u64, |mask, (i, _)| mask | (1 << i));
        self.offered = Some(mask);
        self
    }

    pub fn emit(self) {
        let FindingBuilder {
            emitter,
            variant,
            severity,
            order,
            mut vars,
            offered,
        } = self;
        let rule = emitter.rule;
        let facts = emitter.facts;
        let in_focus = match &order {
            Some(order) => facts.input.orders.in_focus(order),
            // order-select: patient-level reminders wait for order-sign, where the whole set is
            // known; repeating them on every selection is alert fatigue.
            None => facts.input.orders.focus.is_none(),
        };
        if !in_focus {
            emitter.sink.vars = vars;
            return;
        }
        let key = if rule.messages.contains_key(variant) {
            variant
        } else {
            "default"
        };
        let message = rule.messages.get(key).zip(rule.templates.get(key));
        let variant_severity = message.and_then(|(m, _)| m.severity);
        let severity = severity.or(variant_severity).unwrap_or(rule.severity);
        // Room for the detail's values and the citations, so that it is written without
        // growing: a number is rarely longer than 16 characters.
        let values_len: usize = vars
            .iter()
            .map(|(_, v)| match v {
                Var::Number(_) => 16,
                Var::Text(t) => t.len(),
            })
            .sum();
        let (summary, mut detail) = match message {
            Some((_, (summary, detail))) => (
                summary.fill(&vars),
                detail.fill_reserving(&vars, values_len + rule.citation_note.len()),
            ),
            None => (fill(&rule.id, &vars), fill(&rule.id, &vars)),
        };
        detail.push_str(&rule.citation_note);
        let summary = clip_summary(summary);
        let suggestions = rule
            .suggestions
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                offered.is_none_or(|mask| *i < MAX_SUGGESTIONS && mask & (1 << i) != 0)
            })
            .map(|(_, s)| s)
            .filter_map(|s| {
                let actions: Vec<Action> = s
                    .actions
                    .iter()
                    .filter_map(|a| {
                        let target = match (a.target, &order) {
                            (Some(ActionTarget::Order), Some(order)) => Some(order.0.clone()),
                            (Some(ActionTarget::Order), None) => return None,
                            (None, _) => None,
                        };
                        let resource = a.resource.as_ref().map(|template| {
                            let fills = a
                                .placeholders
                                .iter()
                                .any(|name| vars.iter().any(|(n, _)| n == name));
                            if fills {
                                let patient = facts.input.patient.reference.as_deref();
                                Resource::Value(fill_json(template, patient, &vars))
                            } else {
                                Resource::Template {
                                    template: template.clone(),
                                    patient: facts.patient_reference(),
                                }
                            }
                        });
                        Some(Action {
                            kind: a.kind,
                            description: fill_shared(&a.description, &vars),
                            resource,
                            resource_id: target,
                        })
                    })
                    .collect();
                (!actions.is_empty()).then(|| Suggestion {
                    id: s.id.clone(),
                    label: fill_shared(&s.label, &vars),
                    actions,
                })
            })
            .collect();
        // Last, once the templates are filled: the texts move into the labels, uncopied.
        let count = vars
            .iter()
            .filter(|(_, v)| matches!(v, Var::Number(_)))
            .count();
        let mut numbers = Numbers::with_capacity(count);
        let mut labels = Labels::with_capacity(vars.len() - count);
        for (name, var) in vars.drain(..) {
            match var {
                Var::Number(n) => {
                    numbers.insert(name, number_json(n));
                }
                Var::Text(t) if !t.is_empty() => {
                    labels.insert(name, t);
                }
                Var::Text(_) => {}
            }
        }
        emitter.sink.vars = vars;
        emitter.sink.findings.push(Finding {
            rule_id: rule.id.clone(),
            severity,
            order_ref: order,
            summary,
            detail,
            numbers,
            labels,
            suggestions,
            citations: rule.citations.clone(),
        });
    }
}

/// Numbers are stored rounded to 4 decimals so that float noise never changes an audit row.
fn number_json(n: f64) -> Value {
    let rounded = (n * 10_000.0).round() / 10_000.0;
    if rounded.fract() == 0.0 && rounded.abs() < 9.0e15 {
        Value::from(rounded as i64)
    } else {
        serde_json::Number::from_f64(rounded)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// A message template split once, when the plan compiles, into literal text and `{name}`
/// placeholders, so filling it per finding is copying, not scanning. Fills exactly as [`fill`].
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// `text[start..end]` as is.
    Literal(usize, usize),
    /// A placeholder whose name is `text[start..end]`.
    Placeholder(usize, usize),
}

impl Template {
    pub fn compile(template: &str) -> Template {
        let mut parts = Vec::new();
        let mut literal_start = 0;
        let mut pos = 0;
        while let Some(open) = template[pos..].find('{') {
            let after_start = pos + open + 1;
            let after = &template[after_start..];
            match after.find('}') {
                Some(close)
                    if after[..close]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    parts.push(Part::Literal(literal_start, pos + open));
                    parts.push(Part::Placeholder(after_start, after_start + close));
                    pos = after_start + close + 1;
                    literal_start = pos;
                }
                // Not a placeholder: the `{` stays in the literal text.
                _ => pos = after_start,
            }
        }
        parts.push(Part::Literal(literal_start, template.len()));
        parts.retain(|p| !matches!(p, Part::Literal(a, b) if a == b));
        Template {
            text: template.to_owned(),
            parts,
        }
    }

    pub fn fill(&self, vars: &[(&str, Var)]) -> String {
        self.fill_reserving(vars, 32)
    }

    /// [`Template::fill`] into a string with room for `extra` bytes beyond the template.
    pub fn fill_reserving(&self, vars: &[(&str, Var)], extra: usize) -> String {
        let mut out = String::with_capacity(self.text.len() + extra);
        for part in &self.parts {
            match *part {
                Part::Literal(a, b) => out.push_str(&self.text[a..b]),
                Part::Placeholder(a, b) => push_var(&mut out, &self.text[a..b], vars),
            }
        }
        out
    }
}

/// Replaces `{name}` placeholders with the finding's values.
pub fn fill(template: &str, vars: &[(&str, Var)]) -> String {
    if !template.contains('{') {
        return template.to_owned();
    }
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if after[..close]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                push_var(&mut out, &after[..close], vars);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// [`fill`] for a pathway text kept as `Arc<str>`: one without a placeholder is shared, not
/// copied.
fn fill_shared(template: &Arc<str>, vars: &[(&str, Var)]) -> Arc<str> {
    if template.contains('{') {
        Arc::from(fill(template, vars))
    } else {
        template.clone()
    }
}

/// Writes the value of placeholder `name`; an unknown one stays visible as `{name}`.
fn push_var(out: &mut String, name: &str, vars: &[(&str, Var)]) {
    match vars.iter().find(|(n, _)| *n == name) {
        Some((_, Var::Number(v))) => push_number(out, *v),
        Some((_, Var::Text(t))) => out.push_str(t),
        None => {
            out.push('{');
            out.push_str(name);
            out.push('}');
        }
    }
}

/// The `{name}` placeholders [`fill_json`] would fill in `template`'s strings (read as
/// [`fill`] reads them), once each; `{{patient}}` strings are not among them.
pub fn placeholder_names(template: &Value) -> Vec<String> {
    fn walk(value: &Value, names: &mut Vec<String>) {
        match value {
            Value::String(s) if s == PATIENT_PLACEHOLDER => {}
            Value::String(s) if s.contains('{') => {
                let template = Template::compile(s);
                for part in &template.parts {
                    if let Part::Placeholder(a, b) = *part
                        && !names.iter().any(|n| *n == template.text[a..b])
                    {
                        names.push(template.text[a..b].to_owned());
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, names)),
            Value::Object(map) => map.values().for_each(|v| walk(v, names)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    walk(template, &mut names);
    names
}

/// Fills a FHIR resource template: `{{patient}}` becomes the patient reference, other strings
/// take `{name}` placeholders. The template is copied whole (a structural clone, cheap) and
/// only its strings with a placeholder are rewritten in place.
fn fill_json(template: &Value, patient: Option<&str>, vars: &[(&str, Var)]) -> Value {
    let mut value = template.clone();
    fill_in_place(&mut value, patient, vars);
    value
}

fn fill_in_place(value: &mut Value, patient: Option<&str>, vars: &[(&str, Var)]) {
    match value {
        Value::String(s) if s == PATIENT_PLACEHOLDER => {
            *s = patient.unwrap_or("Patient/unknown").to_owned();
        }
        Value::String(s) if s.contains('{') => {
            *value =
                whole_number_placeholder(s, vars).unwrap_or_else(|| Value::String(fill(s, vars)));
        }
        Value::Array(items) => {
            for item in items {
                fill_in_place(item, patient, vars);
            }
        }
        Value::Object(map) => {
            if patient.is_none() {
                // A subject template with no patient reference is left out rather than
                // pointing at a patient we do not know.
                map.retain(|_, v| {
                    v.get("reference").and_then(Value::as_str) != Some(PATIENT_PLACEHOLDER)
                });
            }
            for (_, v) in map.iter_mut() {
                fill_in_place(v, patient, vars);
            }
        }
        _ => {}
    }
}

/// A string that is one `{name}` placeholder for a number becomes that number, so FHIR
/// fields that must be numeric (`expectedSupplyDuration.value`) can take the rule's limit from
/// its parameters instead of repeating it in the suggestion.
fn whole_number_placeholder(template: &str, vars: &[(&str, Var)]) -> Option<Value> {
    let name = template.strip_prefix('{')?.strip_suffix('}')?;
    match vars.iter().find(|(n, _)| *n == name)? {
        (_, Var::Number(v)) => Some(number_json(*v)),
        (_, Var::Text(_)) => None,
    }
}

/// CDS Hooks summaries must stay under 140 characters.
fn clip_summary(summary: String) -> String {
    // Never more characters than bytes: a summary under 140 bytes needs no count.
    if summary.len() < 140 || summary.chars().count() < 140 {
        return summary;
    }
    let mut clipped: String = summary.chars().take(138).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_and_keeps_unknown_ones_visible() {
        let vars = vec![
            ("hours", Var::Number(72.0)),
            ("drug", Var::Text("oxycodone".into())),
        ];
        assert_eq!(
            fill("{drug}: {hours} h > {limit} h", &vars),
            "oxycodone: 72 h > {limit} h"
        );
        assert_eq!(fill("no { placeholder", &vars), "no { placeholder");
    }

    #[test]
    fn compiled_templates_fill_exactly_as_fill() {
        let vars = vec![
            ("hours", Var::Number(72.5)),
            ("drug", Var::Text("oxycodone".into())),
            ("empty", Var::Text("".into())),
        ];
        for template in [
            "",
            "plain",
            "{drug}",
            "{drug}: {hours} h > {limit} h",
            "no { placeholder",
            "{ {drug} }{",
            "}{}{hours}{empty}{a-b}{drug",
            "ünï {drug} ≥ {hours}{",
        ] {
            assert_eq!(
                Template::compile(template).fill(&vars),
                fill(template, &vars),
                "{template:?}"
            );
        }
    }

    #[test]
    fn a_lone_number_placeholder_stays_a_number_in_resources() {
        let vars = vec![("max_days", Var::Number(7.0))];
        let template = serde_json::json!({"value": "{max_days}", "unit": "{max_days} days"});
        assert_eq!(
            fill_json(&template, None, &vars),
            serde_json::json!({"value": 7, "unit": "7 days"})
        );
    }

    /// JSON resource templates: `{{patient}}` strings, subjects that reference it, other
    /// strings with and without braces, numbers, nested arrays and objects.
    fn resource_template() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::String(PATIENT_PLACEHOLDER.into())),
            Just(serde_json::json!({ "reference": PATIENT_PLACEHOLDER })),
            Just(serde_json::json!({ "reference": "Patient/p9", "display": "x" })),
            Just(Value::String("draft".into())),
            Just(Value::String("{{patient}} and more".into())),
            Just(Value::String("{max_days}".into())),
            Just(Value::String("{tablet}".into())),
            Just(Value::String("{drug} {tablet} {{x}".into())),
            Just(Value::String("no { placeholder".into())),
            Just(Value::Null),
            (0i64..100).prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,3}|subject|reference", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// A template shared with the plan and rendered later gives exactly what filling a copy
        /// per finding gave, as a value and serialized, with and without a patient.
        #[test]
        fn shared_resources_render_as_filled_copies(
            template in resource_template(),
            patient in proptest::option::of("Patient/[a-z0-9]{1,4}"),
            with_max_days in proptest::bool::ANY,
            with_drug in proptest::bool::ANY,
        ) {
            let mut vars = vec![("other", Var::Number(1.0))];
            if with_max_days {
                vars.push(("max_days", Var::Number(7.0)));
            }
            if with_drug {
                vars.push(("drug", Var::Text("oxycodone".into())));
            }
            let filled = fill_json(&template, patient.as_deref(), &vars);
            let shared = Resource::Template {
                template: Arc::new(template.clone()),
                patient: patient.as_deref().map(Arc::from),
            };
            let names = placeholder_names(&template);
            if names.iter().any(|name| vars.iter().any(|(n, _)| n == name)) {
                // Filled per finding, as before; only then does filling change a string.
                proptest::prop_assert!(with_max_days || with_drug);
            } else {
                proptest::prop_assert_eq!(&shared.to_value(), &filled);
                proptest::prop_assert_eq!(serde_json::to_value(&shared).unwrap(), filled.clone());
                proptest::prop_assert_eq!(
                    serde_json::to_string(&shared).unwrap(),
                    serde_json::to_string(&filled).unwrap()
                );
                proptest::prop_assert_eq!(&shared, &Resource::Value(filled));
            }
        }
    }

    #[test]
    fn the_builtin_pathway_shares_its_create_resources() {
        let plan = crate::pathway::Plan::builtin();
        let actions: Vec<_> = plan
            .rules
            .iter()
            .flat_map(|r| r.suggestions.iter().flat_map(|s| s.actions.iter()))
            .filter(|a| a.resource.is_some())
            .collect();
        assert!(actions.iter().any(|a| a.placeholders.is_empty()));
        for a in actions {
            let template = a.resource.as_ref().unwrap();
            if a.placeholders.iter().all(|p| p == "tablet" || p == "spray") {
                let shared = Resource::Template {
                    template: template.clone(),
                    patient: Some("Patient/p1".into()),
                };
                assert_eq!(
                    shared.to_value(),
                    fill_json(template, Some("Patient/p1"), &[])
                );
            }
        }
    }

    proptest::proptest! {
        /// The byte-length shortcut clips exactly as counting the characters always did.
        #[test]
        fn summaries_clip_as_by_counting(summary in "[aé€😀 ]{100,160}") {
            let counted = if summary.chars().count() < 140 {
                summary.clone()
            } else {
                let mut clipped: String = summary.chars().take(138).collect();
                clipped.push('…');
                clipped
            };
            proptest::prop_assert_eq!(clip_summary(summary), counted);
        }
    }

    #[test]
    fn long_summaries_are_clipped_below_140() {
        let s = clip_summary("x".repeat(200));
        assert!(s.chars().count() < 140);
        assert_eq!(clip_summary("short".into()), "short");
    }
}
