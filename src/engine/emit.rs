//! How rule kinds report: an [`Emitter`] per rule fills the rule's message templates with the
//! finding's numbers, picks its suggestions, and drops findings about orders outside the
//! order-select focus. Rule kinds never build [`Finding`]s by hand, so every card has the same
//! shape.

use super::facts::Facts;
use crate::decision::{
    Action, Evaluation, Finding, Labels, MissingInput, Number, Numbers, PATIENT_PLACEHOLDER,
    Placeholder, Resource, Severity, Suggestion, Texts,
};
use crate::domain::OrderRef;
use crate::domain::units::{NumberText, push_number, round_half_away};
use crate::pathway::document::ActionTarget;
use crate::pathway::{CompiledMessage, CompiledRule};
use serde_json::Value;
use std::borrow::Cow;
use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The most suggestions a rule may have (one bit each in a finding's offer).
pub const MAX_SUGGESTIONS: usize = 64;

/// Collects the findings and missing inputs of one evaluation.
#[derive(Default)]
pub struct Sink {
    findings: Vec<Finding>,
    /// Each finding's [`SortKey`], beside it: the final sort compares these rather than the
    /// findings' rule ids.
    keys: Vec<SortKey>,
    /// The values of the finding under construction: one buffer for every finding of the
    /// evaluation, filled by each builder, taken by `emit` while it fills the texts and
    /// given back.
    vars: Vec<Slot>,
    missing: BTreeMap<String, BTreeSet<String>>,
}

/// The part of a finding's place in the evaluation's order that is known when it is made:
/// most severe first, then by rule id, read as the id's rank among the plan's
/// ([`CompiledRule::id_rank`]). Two keys are equal exactly when the severities and the ids
/// are, so ordering by the key, then by order reference, is the order of severity, id and
/// order reference, without comparing the ids' text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey {
    /// 0 for critical, 1 for warning, 2 for info.
    severity_rank: u8,
    id_rank: u32,
}

impl SortKey {
    fn new(severity: Severity, id_rank: u32) -> SortKey {
        SortKey {
            severity_rank: Severity::Critical as u8 - severity as u8,
            id_rank,
        }
    }
}

impl Sink {
    /// A sink with room for `findings` findings, so that collecting them never moves the ones
    /// already made (a finding is a few hundred bytes).
    pub fn with_capacity(findings: usize) -> Sink {
        Sink {
            findings: Vec::with_capacity(findings),
            keys: Vec::with_capacity(findings),
            ..Sink::default()
        }
    }

    pub fn missing(&mut self, input: &str, rule_id: &str) {
        self.missing
            .entry(input.to_owned())
            .or_default()
            .insert(rule_id.to_owned());
    }

    fn push(&mut self, finding: Finding, id_rank: u32) {
        self.keys.push(SortKey::new(finding.severity, id_rank));
        self.findings.push(finding);
    }

    pub fn finish(mut self, facts: &Facts<'_>) -> Evaluation {
        // Deterministic order: most severe first, then rule id, then order reference.
        sort_findings(&mut self.findings, &mut self.keys);
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

/// Sorts `findings` and their `keys` alike, stably, by severity (most severe first), then
/// rule id, then order reference: an insertion sort, as the standard library's sort is for
/// this few elements, comparing the keys instead of the ids (a `memcmp` call each) and order
/// references only between findings of one rule. Findings mostly come in order already
/// (the plan evaluates its rules in it), so most stay where they are.
fn sort_findings(findings: &mut [Finding], keys: &mut [SortKey]) {
    debug_assert_eq!(findings.len(), keys.len());
    let after = |a: (SortKey, &Finding), b: (SortKey, &Finding)| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.order_ref.cmp(&b.1.order_ref))
            == Ordering::Greater
    };
    for i in 1..findings.len() {
        // Finding `i` goes after the sorted ones before it that are not after it.
        let mut place = i;
        while place > 0
            && after(
                (keys[place - 1], &findings[place - 1]),
                (keys[i], &findings[i]),
            )
        {
            place -= 1;
        }
        if place < i {
            findings[place..=i].rotate_right(1);
            keys[place..=i].rotate_right(1);
        }
    }
}

/// A value placed into a message template and, for numbers, into the finding's `numbers`.
#[derive(Debug, Clone)]
pub enum Var {
    /// A number and its text, written the first time a template names it: a finding's summary
    /// and detail (and suggestion labels) name the same numbers, formatted once.
    Number(f64, Cell<Option<NumberText>>),
    Text(Cow<'static, str>),
}

impl Var {
    #[inline]
    pub fn number(value: f64) -> Var {
        Var::Number(value, Cell::new(None))
    }

    /// The value as a resource template keeps it until it is rendered.
    fn placeholder(&self) -> Placeholder {
        match self {
            Var::Number(value, _) => Placeholder::Number(*value),
            Var::Text(t) => Placeholder::Text(t.clone()),
        }
    }

    /// Writes the value as a template shows it. Always inlined into the fill loop (with
    /// [`push_var_keyed`]): left as a call per placeholder, its prologue and epilogue cost
    /// about as much as pushing a short text.
    #[inline(always)]
    fn push_onto(&self, out: &mut String) {
        match self {
            Var::Number(value, text) => match text.get() {
                Some(text) => text.push_onto(out),
                None => match NumberText::new(*value) {
                    Some(new) => {
                        text.set(Some(new));
                        new.push_onto(out);
                    }
                    None => push_number(out, *value),
                },
            },
            Var::Text(t) => out.push_str(t),
        }
    }
}

/// A cheap first test of two placeholder names being equal (their length and three of their
/// bytes), so that finding a placeholder's value among a finding's compares names in full only
/// for the one that matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NameKey(u32);

impl NameKey {
    #[inline]
    fn of(name: &str) -> NameKey {
        let bytes = name.as_bytes();
        match bytes {
            [] => NameKey(0),
            [first, .., last] | [first @ last] => NameKey(
                (bytes.len() as u32 & 0xff)
                    | (u32::from(*first) << 8)
                    | (u32::from(*last) << 16)
                    | (u32::from(bytes[bytes.len() / 2]) << 24),
            ),
        }
    }
}

/// `a == b`, compared here rather than by a `memcmp` call: names are short, and by the time
/// their keys agree they are nearly always equal. Up to 16 bytes by two overlapping loads of
/// 8 (or 4) bytes from each end, which together cover every byte.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let u64_at = |s: &[u8], i: usize| s[i..i + 8].first_chunk().map(|c| u64::from_le_bytes(*c));
    let u32_at = |s: &[u8], i: usize| s[i..i + 4].first_chunk().map(|c| u32::from_le_bytes(*c));
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        _ => a == b,
    }
}

/// A finding's value with its name (and the name's [`NameKey`]).
#[derive(Debug, Clone)]
pub struct Slot {
    name: &'static str,
    key: NameKey,
    var: Var,
}

impl Slot {
    #[inline]
    pub fn new(name: &'static str, var: Var) -> Slot {
        Slot {
            name,
            key: NameKey::of(name),
            var,
        }
    }
}

/// The value of the placeholder `name` (whose key is `key`): the first one given.
#[inline]
fn find_var<'v>(vars: &'v [Slot], name: &str, key: NameKey) -> Option<&'v Var> {
    vars.iter()
        .find(|slot| slot.key == key && same_name(slot.name, name))
        .map(|slot| &slot.var)
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
        // The values go straight into the sink's buffer: the builder, moved through every
        // call of the chain, stays small.
        self.sink.vars.clear();
        self.sink.vars.reserve(8);
        FindingBuilder {
            emitter: self,
            variant: "default",
            severity: None,
            order: None,
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
    #[inline]
    pub fn variant(mut self, name: &'static str) -> Self {
        self.variant = name;
        self
    }

    /// Overrides the severity (e.g. DOSE-MAX-DAILY becomes critical above 1.5× the maximum).
    #[inline]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    #[inline]
    pub fn order(mut self, order: &OrderRef) -> Self {
        self.order = Some(order.clone());
        self
    }

    #[inline]
    pub fn number(self, name: &'static str, value: f64) -> Self {
        self.emitter
            .sink
            .vars
            .push(Slot::new(name, Var::number(value)));
        self
    }

    #[inline]
    pub fn text(self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Self {
        self.emitter
            .sink
            .vars
            .push(Slot::new(name, Var::Text(value.into())));
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
            offered,
        } = self;
        let mut vars = std::mem::take(&mut emitter.sink.vars);
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
        let message = find_message(&rule.messages, variant);
        let variant_severity = message.and_then(|m| m.severity);
        let severity = severity.or(variant_severity).unwrap_or(rule.severity);
        // Room for the detail's values and the citations (in the detail's template, or
        // pushed after the rule id), so that it is written without growing: a number is
        // rarely longer than 16 characters.
        let values_len: usize = vars
            .iter()
            .map(|slot| match &slot.var {
                Var::Number(..) => 16,
                Var::Text(t) => t.len(),
            })
            .sum();
        // The summary, then the detail, in one string: the summary's room is its template
        // and 32 bytes for its values, as when it was a string of its own.
        let mut text = String::with_capacity(match message {
            Some(m) => m.texts.len + 32 + values_len,
            None => 2 * rule.id.len() + 32 + values_len + rule.citation_note.len(),
        });
        let summary_len = match message {
            // The citation note is the detail template's last literal.
            Some(m) => m.texts.fill_onto(&mut text, &vars),
            None => {
                text.push_str(&fill(&rule.id, &vars));
                clip_summary(&mut text);
                let summary_len = text.len();
                text.push_str(&fill(&rule.id, &vars));
                text.push_str(&rule.citation_note);
                summary_len
            }
        };
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
                                .any(|name| vars.iter().any(|slot| slot.name == name));
                            if fills {
                                // The values of the template's placeholders, in the order the
                                // finding gave them (the first of a name is the one filled).
                                let values = vars
                                    .iter()
                                    .filter(|slot| a.placeholders.iter().any(|p| p == slot.name))
                                    .map(|slot| (slot.name, slot.var.placeholder()))
                                    .collect();
                                Resource::Filled {
                                    template: template.clone(),
                                    patient: facts.patient_reference(),
                                    values,
                                }
                            } else {
                                Resource::Template {
                                    template: template.clone(),
                                    patient: facts.patient_reference(),
                                }
                            }
                        });
                        Some(Action {
                            kind: a.kind,
                            description: fill_shared(
                                &a.description,
                                a.description_template.as_ref(),
                                &vars,
                            ),
                            resource,
                            resource_id: target,
                        })
                    })
                    .collect();
                (!actions.is_empty()).then(|| Suggestion {
                    id: s.id.clone(),
                    label: fill_shared(&s.label, s.label_template.as_ref(), &vars),
                    actions,
                })
            })
            .collect();
        // Last, once the templates are filled: the texts move into the labels, uncopied.
        let count = vars
            .iter()
            .filter(|slot| matches!(slot.var, Var::Number(..)))
            .count();
        let mut numbers = Vec::with_capacity(count);
        let mut labels = Vec::with_capacity(vars.len() - count);
        for Slot { name, var, .. } in vars.drain(..) {
            match var {
                Var::Number(n, _) => numbers.push((Cow::Borrowed(name), number_json(n))),
                Var::Text(t) if !t.is_empty() => labels.push((Cow::Borrowed(name), t)),
                Var::Text(_) => {}
            }
        }
        let (numbers, labels) = (Numbers::from_entries(numbers), Labels::from_entries(labels));
        emitter.sink.vars = vars;
        emitter.sink.push(
            Finding {
                rule_id: rule.id.clone(),
                severity,
                order_ref: order,
                texts: Texts::from_parts(text, summary_len),
                numbers,
                labels,
                suggestions,
                citations: rule.citations.clone(),
            },
            rule.id_rank,
        );
    }
}

/// The message of variant `name`, else the `default` one (which the plan puts first).
#[inline]
fn find_message<'r>(messages: &'r [CompiledMessage], name: &str) -> Option<&'r CompiledMessage> {
    messages
        .iter()
        .find(|m| same_name(&m.name, name))
        .or_else(|| messages.first().filter(|m| &*m.name == "default"))
}

/// Numbers are stored rounded to 4 decimals so that float noise never changes an audit row.
///
/// Below 10^9 (nearly every number) by integer arithmetic: `n × 10^4` is then below 2^52, where
/// [`round_half_away`] is `f64::round` without the library call, the ten-thousandths are exact
/// in an `f64`, and their quotient by 10^4 is whole exactly when they divide by 10^4 (a
/// non-whole one lies at least 10^-4 from any integer, far more than the spacing of `f64`s
/// there). The same values as [`number_json_general`], which the rest takes.
#[inline]
fn number_json(n: f64) -> Number {
    if n.abs() < 1e9 {
        let units = round_half_away(n * 10_000.0);
        if units % 10_000 == 0 {
            return Number::from(units / 10_000);
        }
        return Number(serde_json::Number::from_f64(units as f64 / 10_000.0));
    }
    number_json_general(n)
}

/// [`number_json`] by `f64::round` and `fract`: what it always was, for any value.
fn number_json_general(n: f64) -> Number {
    let rounded = (n * 10_000.0).round() / 10_000.0;
    if rounded.fract() == 0.0 && rounded.abs() < 9.0e15 {
        Number::from(rounded as i64)
    } else {
        Number(serde_json::Number::from_f64(rounded))
    }
}

/// A message template split once, when the plan compiles, into literal text and `{name}`
/// placeholders, so filling it per finding is copying, not scanning. Fills exactly as [`fill`].
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The template's length in bytes.
    len: usize,
    parts: Vec<Part>,
}

/// Each piece held as its own string: filling copies it without slicing the template (which
/// checks both ends are character boundaries).
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Text as is.
    Literal(Box<str>),
    /// A placeholder's name, and the name's key.
    Placeholder(Box<str>, NameKey),
}

impl Template {
    pub fn compile(template: &str) -> Template {
        // Found as ranges, then copied out.
        enum Range {
            Literal(usize, usize),
            Placeholder(usize, usize, NameKey),
        }
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
                    parts.push(Range::Literal(literal_start, pos + open));
                    let name = &template[after_start..after_start + close];
                    parts.push(Range::Placeholder(
                        after_start,
                        after_start + close,
                        NameKey::of(name),
                    ));
                    pos = after_start + close + 1;
                    literal_start = pos;
                }
                // Not a placeholder: the `{` stays in the literal text.
                _ => pos = after_start,
            }
        }
        parts.push(Range::Literal(literal_start, template.len()));
        parts.retain(|p| !matches!(p, Range::Literal(a, b) if a == b));
        Template {
            len: template.len(),
            parts: parts
                .into_iter()
                .map(|part| match part {
                    Range::Literal(a, b) => Part::Literal(template[a..b].into()),
                    Range::Placeholder(a, b, key) => Part::Placeholder(template[a..b].into(), key),
                })
                .collect(),
        }
    }

    /// The template followed by `text` as literal text (braces in it are not placeholders):
    /// fills as this template does, then copies `text`, in one copy when the template ends
    /// with literal text. The oracle: `templates_followed_by_text_fill_as_pushing_it`.
    pub fn followed_by(mut self, text: &str) -> Template {
        if text.is_empty() {
            return self;
        }
        self.len += text.len();
        match self.parts.last_mut() {
            Some(Part::Literal(last)) => *last = [&**last, text].concat().into(),
            _ => self.parts.push(Part::Literal(text.into())),
        }
        self
    }

    /// The template of a pathway text that has a `{` (a suggestion label, an action
    /// description), else `None`: the text is then shared as it is.
    pub fn compile_if_placeholders(text: &str) -> Option<Template> {
        text.contains('{').then(|| Template::compile(text))
    }

    pub fn fill(&self, vars: &[Slot]) -> String {
        self.fill_reserving(vars, 32)
    }

    /// [`Template::fill`] into a string with room for `extra` bytes beyond the template.
    /// Always inlined (a finding's summary and detail, the few labels with placeholders):
    /// as a call, the saved registers and the returned string's trip through memory cost
    /// about what filling a short template does.
    #[inline(always)]
    pub fn fill_reserving(&self, vars: &[Slot], extra: usize) -> String {
        let mut out = String::with_capacity(self.len + extra);
        self.fill_onto(&mut out, vars);
        out
    }

    /// [`Template::fill`] onto the end of `out` (a finding's summary and detail share one
    /// string). Always inlined, as [`Template::fill_reserving`] is, for the same reason.
    #[inline(always)]
    pub fn fill_onto(&self, out: &mut String, vars: &[Slot]) {
        fill_parts_onto(&self.parts, out, vars);
    }
}

/// Fills `parts` onto the end of `out`. Always inlined, as [`Template::fill_onto`] is.
#[inline(always)]
fn fill_parts_onto(parts: &[Part], out: &mut String, vars: &[Slot]) {
    for part in parts {
        match part {
            Part::Literal(text) => out.push_str(text),
            Part::Placeholder(name, key) => push_var_keyed(out, name, *key, vars),
        }
    }
}

/// A message's summary and detail templates as a finding's one text is written from them:
/// the summary's trailing literal and the detail's leading literal joined into one (the
/// joint), copied at once unless the summary may need clipping, which the plan's summaries,
/// under 140 bytes, never do. Writes what filling the summary, clipping it and filling the
/// detail wrote ([`MessageTemplate::fill_onto`]; the oracle:
/// `message_templates_fill_as_summary_clip_detail`).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageTemplate {
    /// The two templates' lengths in bytes, together.
    len: usize,
    /// The summary's parts but a trailing literal.
    summary: Vec<Part>,
    /// The summary's trailing literal, then the detail's leading literal (either may be empty).
    joint: Box<str>,
    /// Where the summary's part of `joint` ends (a character boundary).
    joint_split: usize,
    /// The detail's parts after its leading literal.
    detail: Vec<Part>,
}

impl MessageTemplate {
    pub fn new(summary: &Template, detail: &Template) -> MessageTemplate {
        let mut summary_parts = summary.parts.clone();
        let mut joint = String::new();
        if let Some(Part::Literal(text)) = summary_parts.last() {
            joint.push_str(text);
            summary_parts.pop();
        }
        let joint_split = joint.len();
        let mut detail_parts = detail.parts.as_slice();
        if let Some((Part::Literal(text), rest)) = detail_parts.split_first() {
            joint.push_str(text);
            detail_parts = rest;
        }
        MessageTemplate {
            len: summary.len + detail.len,
            summary: summary_parts,
            joint: joint.into(),
            joint_split,
            detail: detail_parts.to_vec(),
        }
    }

    /// Writes the summary, clipped as [`clip_summary`] clips it, then the detail, onto `out`
    /// (which must be empty: the summary is clipped as the whole string), and returns the
    /// summary's length. Always inlined, as [`Template::fill_onto`] is.
    #[inline(always)]
    fn fill_onto(&self, out: &mut String, vars: &[Slot]) -> usize {
        debug_assert!(out.is_empty());
        fill_parts_onto(&self.summary, out, vars);
        let summary_len = if out.len() + self.joint_split < 140 {
            // Under 140 bytes, so under 140 characters: nothing to clip.
            let summary_len = out.len() + self.joint_split;
            out.push_str(&self.joint);
            summary_len
        } else {
            let (head, tail) = self.joint.split_at(self.joint_split);
            out.push_str(head);
            clip_summary(out);
            let summary_len = out.len();
            out.push_str(tail);
            summary_len
        };
        fill_parts_onto(&self.detail, out, vars);
        summary_len
    }
}

/// Replaces `{name}` placeholders with the finding's values.
pub fn fill(template: &str, vars: &[Slot]) -> String {
    if !template.contains('{') {
        return template.to_owned();
    }
    fill_with(template, |out, name| push_var(out, name, vars))
}

/// Reads `template` as [`fill`] reads it, copying its literal text and writing each `{name}`
/// placeholder by `push(out, name)`.
fn fill_with(template: &str, mut push: impl FnMut(&mut String, &str)) -> String {
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
                push(&mut out, &after[..close]);
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

/// [`fill`] for a pathway text kept as `Arc<str>` with its template (compiled with the plan,
/// [`Template::compile_if_placeholders`]): one without a placeholder is shared, not copied.
fn fill_shared(text: &Arc<str>, template: Option<&Template>, vars: &[Slot]) -> Arc<str> {
    match template {
        Some(template) => Arc::from(template.fill(vars)),
        None => text.clone(),
    }
}

/// How [`fill_shared`] filled before the plan compiled the texts' templates: the oracle of
/// `shared_texts_fill_as_before`.
#[cfg(test)]
fn fill_shared_reference(template: &Arc<str>, vars: &[Slot]) -> Arc<str> {
    if template.contains('{') {
        Arc::from(fill(template, vars))
    } else {
        template.clone()
    }
}

/// Writes the value of placeholder `name`; an unknown one stays visible as `{name}`.
fn push_var(out: &mut String, name: &str, vars: &[Slot]) {
    push_var_keyed(out, name, NameKey::of(name), vars);
}

/// [`push_var`] with the name's key computed beforehand (when the template compiled).
/// Always inlined: left as a call (as `#[inline]` left it) from the fill loop, its prologue
/// and epilogue cost about as much as finding the value.
#[inline(always)]
fn push_var_keyed(out: &mut String, name: &str, key: NameKey, vars: &[Slot]) {
    match find_var(vars, name, key) {
        Some(var) => var.push_onto(out),
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
                    if let Part::Placeholder(name, _) = part
                        && !names.iter().any(|n| **n == **name)
                    {
                        names.push(name.to_string());
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

/// A [`Resource::Filled`] as it is rendered: the template filled with its placeholders' values.
pub fn fill_resource(
    template: &Value,
    patient: Option<&str>,
    values: &[(&'static str, Placeholder)],
) -> Value {
    let vars: Vec<Slot> = values
        .iter()
        .map(|(name, value)| {
            let var = match value {
                Placeholder::Number(n) => Var::number(*n),
                Placeholder::Text(t) => Var::Text(t.clone()),
            };
            Slot::new(name, var)
        })
        .collect();
    fill_json(template, patient, &vars)
}

/// Fills a FHIR resource template: `{{patient}}` becomes the patient reference, other strings
/// take `{name}` placeholders. The template is copied whole (a structural clone, cheap) and
/// only its strings with a placeholder are rewritten in place.
fn fill_json(template: &Value, patient: Option<&str>, vars: &[Slot]) -> Value {
    let mut value = template.clone();
    fill_in_place(&mut value, patient, vars);
    value
}

fn fill_in_place(value: &mut Value, patient: Option<&str>, vars: &[Slot]) {
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
fn whole_number_placeholder(template: &str, vars: &[Slot]) -> Option<Value> {
    let name = template.strip_prefix('{')?.strip_suffix('}')?;
    match find_var(vars, name, NameKey::of(name))? {
        Var::Number(v, _) => Some(number_json(*v).into()),
        Var::Text(_) => None,
    }
}

/// CDS Hooks summaries must stay under 140 characters: `summary` (the whole string) clipped
/// to its first 138 characters and `…` when it has 140 or more.
fn clip_summary(summary: &mut String) {
    // Never more characters than bytes: a summary under 140 bytes needs no count.
    if summary.len() < 140 || summary.chars().count() < 140 {
        return;
    }
    let end = summary
        .char_indices()
        .nth(138)
        .map_or(summary.len(), |(at, _)| at);
    summary.truncate(end);
    summary.push('…');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_and_keeps_unknown_ones_visible() {
        let vars = vec![
            Slot::new("hours", Var::number(72.0)),
            Slot::new("drug", Var::Text("oxycodone".into())),
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
            Slot::new("hours", Var::number(72.5)),
            Slot::new("drug", Var::Text("oxycodone".into())),
            Slot::new("empty", Var::Text("".into())),
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

    proptest::proptest! {
        /// A template followed by a text fills as the template, then the text pushed after it
        /// (as the citation note was pushed after the detail), braces in the text kept as they
        /// are; its length is the two lengths.
        #[test]
        fn templates_followed_by_text_fill_as_pushing_it(
            template in "[ {}xé]{0,6}(\\{dose\\}|\\{ab\\})?[ {}x]{0,3}",
            text in "[ {}xé]{0,6}(\\{dose\\})?",
        ) {
            let vars = vec![
                Slot::new("dose", Var::number(7.5)),
                Slot::new("ab", Var::Text("text".into())),
            ];
            let compiled = Template::compile(&template);
            let mut expected = compiled.fill(&vars);
            expected.push_str(&text);
            let followed = compiled.followed_by(&text);
            proptest::prop_assert_eq!(followed.fill(&vars), expected);
            proptest::prop_assert_eq!(followed.len, template.len() + text.len());
        }
    }

    /// Template pieces for summaries around the 140-byte clip: names (some with values, some
    /// without), literals with multi-byte characters, long and short.
    fn message_pieces() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        proptest::collection::vec(
            (
                proptest::option::of(0usize..NAMES.len()),
                "[aé€ {}]{0,3}|[ax ]{0,60}",
            ),
            0..6,
        )
        .prop_map(|pieces| {
            pieces
                .iter()
                .map(|(name, text)| match name {
                    Some(i) => format!("{{{}}}{text}", NAMES[*i]),
                    None => text.clone(),
                })
                .collect()
        })
    }

    proptest::proptest! {
        /// Writing a finding's text from the joined message template gives the text and the
        /// summary length that filling the summary, clipping it and filling the detail gave:
        /// summaries under, at and over 140 bytes and characters, clipped in a literal or in
        /// a value, templates ending or starting with a placeholder or with literal text.
        #[test]
        fn message_templates_fill_as_summary_clip_detail(
            summary in message_pieces(),
            detail in message_pieces(),
            long in "[aé ]{0,150}",
        ) {
            let vars = vec![
                Slot::new("dose", Var::number(7.5)),
                Slot::new("ab", Var::Text(long.into())),
                Slot::new("a", Var::Text("é".into())),
            ];
            let (summary, detail) = (Template::compile(&summary), Template::compile(&detail));
            let mut expected = String::new();
            summary.fill_onto(&mut expected, &vars);
            clip_summary(&mut expected);
            let expected_summary_len = expected.len();
            detail.fill_onto(&mut expected, &vars);
            let mut text = String::new();
            let summary_len = MessageTemplate::new(&summary, &detail).fill_onto(&mut text, &vars);
            proptest::prop_assert_eq!(&text, &expected);
            proptest::prop_assert_eq!(summary_len, expected_summary_len);
        }
    }

    /// How placeholders were filled before names had keys and numbers were formatted once:
    /// the value found by comparing names, each number formatted where it is pushed. The
    /// oracle of `placeholders_fill_as_by_comparing_names`.
    fn fill_reference(template: &str, vars: &[Slot]) -> String {
        // The same reading of the template as `fill` (`fill_with`); only the lookup differs.
        fill_with(template, |out, name| {
            match vars.iter().find(|s| s.name == name).map(|s| &s.var) {
                Some(Var::Number(v, _)) => push_number(out, *v),
                Some(Var::Text(t)) => out.push_str(t),
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            }
        })
    }

    /// Names that share their key (length, first, middle and last byte) with another, names
    /// one byte apart, the empty name.
    const NAMES: [&str; 15] = [
        "axbyc",
        "azbwc",
        "a",
        "b",
        "ab",
        "dose",
        "dose_mg",
        "dosf",
        "",
        "abXdef",
        "abcdef",
        "abcdXfghij",
        "abcdefghij",
        "abcdefghijklmnopq",
        "abcdefghiXklmnopq",
    ];

    proptest::proptest! {
        /// The overlapping loads compare names as `==` does, at every length up to 20.
        #[test]
        fn names_are_the_same_as_by_eq(a in "[ab]{0,20}", b in "[ab]{0,20}", i in 0usize..20) {
            proptest::prop_assert_eq!(same_name(&a, &b), a == b);
            proptest::prop_assert!(same_name(&a, &a));
            // One byte changed, anywhere.
            if i < a.len() {
                let mut c = a.clone().into_bytes();
                c[i] = b'c';
                let c = String::from_utf8(c).unwrap();
                proptest::prop_assert!(!same_name(&a, &c));
            }
        }
    }

    proptest::proptest! {
        /// Filling by key and with each number formatted once gives what comparing names and
        /// formatting every occurrence gave, on the first fill and on later ones (the numbers'
        /// texts then cached), for compiled and uncompiled templates.
        #[test]
        fn placeholders_fill_as_by_comparing_names(
            pieces in proptest::collection::vec((0usize..NAMES.len(), "[ {}x]{0,3}"), 0..8),
            values in proptest::collection::vec(
                (0usize..NAMES.len(), proptest::option::of(proptest::num::f64::ANY), "[a-z]{0,3}"),
                0..8,
            ),
        ) {
            let template: String = pieces
                .iter()
                .map(|(i, text)| format!("{{{}}}{text}", NAMES[*i]))
                .collect();
            let vars: Vec<Slot> = values
                .iter()
                .map(|(i, number, text)| {
                    let var = match number {
                        Some(n) => Var::number(*n),
                        None => Var::Text(text.clone().into()),
                    };
                    Slot::new(NAMES[*i], var)
                })
                .collect();
            let expected = fill_reference(&template, &vars);
            let compiled = Template::compile(&template);
            for _ in 0..2 {
                proptest::prop_assert_eq!(&compiled.fill(&vars), &expected);
                proptest::prop_assert_eq!(&fill(&template, &vars), &expected);
            }
        }
    }

    /// How numbers were stored before they were kept as [`Number`]s: a `serde_json::Value`
    /// made by `round` and `fract`. The oracle of `numbers_are_stored_as_by_rounding`.
    fn number_value_reference(n: f64) -> Value {
        let rounded = (n * 10_000.0).round() / 10_000.0;
        if rounded.fract() == 0.0 && rounded.abs() < 9.0e15 {
            Value::from(rounded as i64)
        } else {
            serde_json::Number::from_f64(rounded)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
    }

    proptest::proptest! {
        /// The integer path stores the numbers the `round` / `fract` one stored, as values and
        /// as JSON text, on and beside the half-ten-thousandth boundaries; both as the
        /// `serde_json::Value` they were stored as, written alike, read back alike.
        #[test]
        fn numbers_are_stored_as_by_rounding(
            value in proptest::num::f64::ANY,
            halves in -20_000_000_000_001i64..20_000_000_000_001,
            noise in -1e-9f64..1e-9,
        ) {
            for n in [value, halves as f64 / 20_000.0, halves as f64 / 20_000.0 + noise, -0.0, 1e9, -1e9] {
                let (fast, general) = (number_json(n), number_json_general(n));
                proptest::prop_assert_eq!(
                    serde_json::to_string(&fast).unwrap(),
                    serde_json::to_string(&general).unwrap(),
                    "{:?}",
                    n
                );
                proptest::prop_assert_eq!(&fast, &general, "{:?}", n);
                let value = number_value_reference(n);
                proptest::prop_assert_eq!(&fast, &value, "{:?}", n);
                proptest::prop_assert_eq!(&fast.to_value(), &value, "{:?}", n);
                let text = serde_json::to_string(&fast).unwrap();
                proptest::prop_assert_eq!(&text, &value.to_string(), "{:?}", n);
                proptest::prop_assert_eq!(&serde_json::to_value(&fast).unwrap(), &value);
                let back: Number = serde_json::from_str(&text).unwrap();
                let value_back: Value = serde_json::from_str(&text).unwrap();
                proptest::prop_assert_eq!(&back, &value_back, "{:?}", n);
            }
        }
    }

    proptest::proptest! {
        /// Suggestion labels and action descriptions fill from their compiled templates as they
        /// filled from their text, and are shared (not copied) exactly when they were.
        #[test]
        fn shared_texts_fill_as_before(
            pieces in proptest::collection::vec((0usize..NAMES.len(), "[ {}x]{0,3}"), 0..5),
            plain in "[a-z ]{0,12}",
        ) {
            let vars = vec![
                Slot::new("dose", Var::number(7.5)),
                Slot::new("ab", Var::Text("text".into())),
            ];
            let with_braces: String = pieces
                .iter()
                .map(|(i, text)| format!("{{{}}}{text}", NAMES[*i]))
                .collect();
            for text in [with_braces, plain] {
                let text: Arc<str> = Arc::from(text.as_str());
                let template = Template::compile_if_placeholders(&text);
                let filled = fill_shared(&text, template.as_ref(), &vars);
                let reference = fill_shared_reference(&text, &vars);
                proptest::prop_assert_eq!(&filled, &reference);
                proptest::prop_assert_eq!(
                    Arc::ptr_eq(&filled, &text),
                    Arc::ptr_eq(&reference, &text)
                );
            }
        }
    }

    proptest::proptest! {
        /// Finding a variant among the compiled messages gives the message the two maps of
        /// texts and templates gave: the variant when the rule has it, else `default`, else
        /// none (a rule without `default` does not compile; the lookup still says none).
        #[test]
        fn variants_are_found_as_in_the_maps(
            names in proptest::collection::btree_set("(default|a|ab|b|naloxone_on_hand)", 0..5),
            wanted in "(default|a|ab|b|c|naloxone_on_hand)",
        ) {
            let message = |name: &str| crate::pathway::MessageDef {
                severity: None,
                summary: format!("summary {name}"),
                detail: format!("detail {name} {{x}}"),
            };
            let messages: BTreeMap<String, _> =
                names.iter().map(|n| (n.clone(), message(n))).collect();
            // As the maps answered: the variant's, else the default's texts.
            let note = "\n\nSource: {x}.";
            let expected = messages.get(&wanted).or(messages.get("default")).map(|m| {
                (
                    Template::compile(&m.summary),
                    Template::compile(&m.detail).followed_by(note),
                )
            });
            let compiled = CompiledMessage::compile_all(&messages, note);
            let expected = expected.map(|(summary, detail)| MessageTemplate::new(&summary, &detail));
            let found = find_message(&compiled, &wanted).map(|m| m.texts.clone());
            proptest::prop_assert_eq!(found, expected);
        }
    }

    /// `resource` renders as the `filled` value every way the service reads it: as a value,
    /// serialized to a value and to text, and compared.
    fn renders_as(
        resource: &Resource,
        filled: Value,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        proptest::prop_assert_eq!(&resource.to_value(), &filled);
        proptest::prop_assert_eq!(serde_json::to_value(resource).unwrap(), filled.clone());
        proptest::prop_assert_eq!(
            serde_json::to_string(resource).unwrap(),
            serde_json::to_string(&filled).unwrap()
        );
        proptest::prop_assert_eq!(resource, &Resource::Value(filled));
        Ok(())
    }

    #[test]
    fn a_lone_number_placeholder_stays_a_number_in_resources() {
        let vars = vec![Slot::new("max_days", Var::number(7.0))];
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
            let mut vars = vec![Slot::new("other", Var::number(1.0))];
            if with_max_days {
                vars.push(Slot::new("max_days", Var::number(7.0)));
            }
            if with_drug {
                vars.push(Slot::new("drug", Var::Text("oxycodone".into())));
            }
            let filled = fill_json(&template, patient.as_deref(), &vars);
            let shared = Resource::Template {
                template: Arc::new(template.clone()),
                patient: patient.as_deref().map(Arc::from),
            };
            let names = placeholder_names(&template);
            if names.iter().any(|name| vars.iter().any(|slot| slot.name == name)) {
                // Filled per finding, as before; only then does filling change a string.
                proptest::prop_assert!(with_max_days || with_drug);
            } else {
                renders_as(&shared, filled)?;
            }
        }
    }

    proptest::proptest! {
        /// A template kept with the values of its placeholders and rendered later gives exactly
        /// what filling a copy when the finding was made gave, as a value and serialized: with
        /// and without a patient, with values for some placeholders, for none, for a name
        /// given twice (the first is filled), numbers and texts.
        #[test]
        fn filled_resources_render_as_filled_copies(
            template in resource_template(),
            patient in proptest::option::of("Patient/[a-z0-9]{1,4}"),
            max_days in proptest::option::of(proptest::num::f64::ANY),
            tablet in proptest::option::of("[a-z{}]{0,4}"),
            twice in proptest::bool::ANY,
        ) {
            let mut vars = vec![Slot::new("other", Var::number(1.0))];
            if let Some(n) = max_days {
                vars.push(Slot::new("max_days", Var::number(n)));
            }
            if let Some(t) = tablet {
                vars.push(Slot::new("tablet", Var::Text(t.into())));
            }
            if twice {
                vars.push(Slot::new("max_days", Var::Text("again".into())));
            }
            let filled = fill_json(&template, patient.as_deref(), &vars);
            // As `emit` keeps them: the values of the template's placeholders, in order.
            let names = placeholder_names(&template);
            let values = vars
                .iter()
                .filter(|slot| names.iter().any(|p| p == slot.name))
                .map(|slot| (slot.name, slot.var.placeholder()))
                .collect();
            let kept = Resource::Filled {
                template: Arc::new(template.clone()),
                patient: patient.as_deref().map(Arc::from),
                values,
            };
            renders_as(&kept, filled)?;
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
            let mut clipped = summary.clone();
            clip_summary(&mut clipped);
            proptest::prop_assert_eq!(clipped, counted);
        }
    }

    /// How `Sink::finish` sorted before the keys: a stable sort of the findings themselves,
    /// comparing severities, then the ids' text, then order references. The oracle of
    /// `findings_sort_as_by_comparing_ids`.
    fn sort_findings_reference(findings: &mut [Finding]) {
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.rule_id.cmp(&b.rule_id))
                .then_with(|| a.order_ref.cmp(&b.order_ref))
        });
    }

    #[test]
    fn rule_id_ranks_order_as_the_ids() {
        let plan = crate::pathway::Plan::builtin();
        for a in &plan.rules {
            for b in &plan.rules {
                assert_eq!(
                    a.id_rank.cmp(&b.id_rank),
                    a.id.cmp(&b.id),
                    "{} {}",
                    a.id,
                    b.id
                );
            }
        }
    }

    proptest::proptest! {
        /// Sorting by keys (severity, the id's rank) and order references puts the findings
        /// where sorting them by severity, id and order reference did, equal ones in the
        /// order they came (the summaries tell them apart): ids that are prefixes of each
        /// other, findings with and without an order, several per rule and order.
        #[test]
        fn findings_sort_as_by_comparing_ids(
            made in proptest::collection::vec(
                (0usize..3, 0usize..5, proptest::option::of(0usize..3)),
                0..40,
            ),
        ) {
            const IDS: [&str; 5] = ["DOSE-MME", "DOSE-MME-90", "VCF-A", "A", "VCF-"];
            const SEVERITIES: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];
            // As the plan ranks them: by id, equal ids sharing a rank.
            let mut sorted_ids = IDS.to_vec();
            sorted_ids.sort_unstable();
            let rank = |id: &str| sorted_ids.binary_search(&id).unwrap() as u32;
            let findings: Vec<Finding> = made
                .iter()
                .enumerate()
                .map(|(n, (severity, id, order))| Finding {
                    rule_id: Arc::from(IDS[*id]),
                    severity: SEVERITIES[*severity],
                    order_ref: order.map(|o| OrderRef(Arc::from(format!("MedicationRequest/{o}")))),
                    texts: Texts::new(&n.to_string(), ""),
                    numbers: Numbers::new(),
                    labels: Labels::new(),
                    suggestions: Vec::new(),
                    citations: Arc::from([]),
                })
                .collect();
            let keys: Vec<SortKey> = findings
                .iter()
                .map(|f| SortKey::new(f.severity, rank(&f.rule_id)))
                .collect();
            let mut expected = findings.clone();
            sort_findings_reference(&mut expected);
            let (mut sorted, mut keys) = (findings, keys);
            sort_findings(&mut sorted, &mut keys);
            // The keys moved with their findings.
            let moved: Vec<SortKey> = sorted
                .iter()
                .map(|f| SortKey::new(f.severity, rank(&f.rule_id)))
                .collect();
            proptest::prop_assert_eq!(keys, moved);
            proptest::prop_assert_eq!(sorted, expected);
        }
    }

    #[test]
    fn long_summaries_are_clipped_below_140() {
        let mut s = "x".repeat(200);
        clip_summary(&mut s);
        assert!(s.chars().count() < 140);
        let mut short = String::from("short");
        clip_summary(&mut short);
        assert_eq!(short, "short");
    }
}
