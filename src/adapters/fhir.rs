//! Readers for the FHIR resources orderguard uses, working on borrowed `serde_json::Value`s.
//!
//! Why a hand walk and not typed structs: the same request carries R4, STU3 and DSTU2 shapes,
//! clients send objects where FHIR says arrays (`doseAndRate`, `category`) and `null`s anywhere,
//! and resources of types we do not read must never cause a rejection. Walking the borrowed
//! tree reads only the fields the pathway needs, never clones a resource, and knows the exact
//! JSON pointer of anything structurally wrong.
//!
//! Two kinds of trouble are kept apart: a wrong JSON *type* where FHIR requires one (an object
//! where an array must be) is an [`AdapterError::Malformed`] for the whole request; a value that
//! is well-typed but not understood (unit "furlong", frequency 1.5) becomes a
//! [`Field::Unreadable`] on that order, so the engine can say what it did not check.

use super::AdapterError;
use crate::domain::codes::{Coding, Concept, System};
use crate::domain::orders::{
    Dose, Field, MedicationOrder, OrderStatus, Route, ServiceOrder, Unreadable,
};
use crate::domain::patient::{
    ClinicalStatus, Diagnosis, ImagingReport, LabResult, Sex, Verification,
};
use crate::domain::timing::{Frequency, RepeatSpec};
use crate::domain::units::{Amount, CalendarDuration, PeriodUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

/// Where a value sits in the request: a linked list on the stack, rendered only when an error
/// or an unreadable field needs it (the hot path never formats a path).
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    parent: Option<&'a At<'a>>,
    seg: Seg<'a>,
    /// The segment is the root of a FHIR resource: FHIR paths (for `Unreadable.field`) start
    /// after it.
    resource_root: bool,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> At<'a> {
    pub(crate) const ROOT: At<'static> = At {
        parent: None,
        seg: Seg::Root,
        resource_root: false,
    };

    pub(crate) fn key(&'a self, key: &'a str) -> At<'a> {
        At {
            parent: Some(self),
            seg: Seg::Key(key),
            resource_root: false,
        }
    }

    pub(crate) fn index(&'a self, index: usize) -> At<'a> {
        At {
            parent: Some(self),
            seg: Seg::Index(index),
            resource_root: false,
        }
    }

    /// Marks this position as the start of a resource.
    pub(crate) fn resource(self) -> At<'a> {
        At {
            resource_root: true,
            ..self
        }
    }

    fn segments(&self) -> Vec<(Seg<'a>, bool)> {
        let mut out = Vec::new();
        let mut cur = Some(self);
        while let Some(at) = cur {
            out.push((at.seg, at.resource_root));
            cur = at.parent;
        }
        out.reverse();
        out
    }

    /// RFC 6901 JSON pointer, e.g. `/context/draftOrders/entry/0/resource/dosageInstruction`.
    pub(crate) fn pointer(&self) -> String {
        let mut out = String::new();
        for (seg, _) in self.segments() {
            match seg {
                Seg::Root => {}
                Seg::Key(k) => {
                    out.push('/');
                    out.push_str(&k.replace('~', "~0").replace('/', "~1"));
                }
                Seg::Index(i) => {
                    out.push('/');
                    out.push_str(&i.to_string());
                }
            }
        }
        out
    }

    /// FHIR-style path inside the enclosing resource, e.g.
    /// `dosageInstruction[0].doseAndRate[0].doseQuantity.unit`.
    pub(crate) fn fhir_path(&self) -> String {
        let segments = self.segments();
        let start = segments
            .iter()
            .rposition(|(_, root)| *root)
            .map_or(0, |i| i + 1);
        let mut out = String::new();
        for (seg, _) in &segments[start..] {
            match seg {
                Seg::Root => {}
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    pub(crate) fn malformed(&self, message: impl Into<String>) -> AdapterError {
        AdapterError::Malformed {
            path: self.pointer(),
            message: message.into(),
        }
    }

    pub(crate) fn unreadable(&self, raw: impl Into<String>, reason: impl ToString) -> Unreadable {
        Unreadable::new(self.fhir_path(), raw, reason)
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field of an object; `null` counts as absent (clients send `null` where FHIR says omit).
pub(crate) fn field<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(crate) fn as_object<'v>(
    value: &'v Value,
    at: &At<'_>,
) -> Result<&'v Map<String, Value>, AdapterError> {
    value
        .as_object()
        .ok_or_else(|| at.malformed(format!("must be a JSON object, found {}", type_name(value))))
}

pub(crate) fn opt_object<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    at: &At<'_>,
) -> Result<Option<&'v Map<String, Value>>, AdapterError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => as_object(v, &at.key(key)).map(Some),
    }
}

pub(crate) fn opt_str<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    at: &At<'_>,
) -> Result<Option<&'v str>, AdapterError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(at
            .key(key)
            .malformed(format!("must be a string, found {}", type_name(other)))),
    }
}

pub(crate) fn opt_bool(
    obj: &Map<String, Value>,
    key: &str,
    at: &At<'_>,
) -> Result<Option<bool>, AdapterError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        // "true"/"false" as strings: seen from hand-built clients; the meaning is unambiguous.
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(other) => Err(at
            .key(key)
            .malformed(format!("must be a boolean, found {}", type_name(other)))),
    }
}

/// An array field. A single object where an array belongs is read as a one-element array
/// (the hooks library's own R4 example sends `doseAndRate` as an object).
pub(crate) fn one_or_many<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    at: &At<'_>,
) -> Result<&'v [Value], AdapterError> {
    match field(obj, key) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items.as_slice()),
        Some(v @ Value::Object(_)) => Ok(std::slice::from_ref(v)),
        Some(other) => Err(at.key(key).malformed(format!(
            "must be an array or an object, found {}",
            type_name(other)
        ))),
    }
}

/// A number that may arrive as a JSON number or a numeric string.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn raw_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Dates

/// Reads a FHIR `date` / `dateTime` / `instant`, including partial forms (`2023`, `2023-05`,
/// `2023-05-01`, with or without time and zone). A partial date means the start of its period;
/// a time without a zone is taken as UTC.
pub fn parse_fhir_datetime(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(raw) {
        return Some(dt.with_timezone(&Utc));
    }
    if !raw.contains('T')
        && let Some(date) = parse_fhir_date(raw)
    {
        return date.and_hms_opt(0, 0, 0).map(|n| n.and_utc());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(raw, format) {
            return Some(naive.and_utc());
        }
    }
    // Minutes-only with a zone ("2023-05-01T10:00-06:00"): add the seconds RFC 3339 wants.
    if raw.len() == 22 && raw.is_ascii() && raw.as_bytes()[10] == b'T' {
        let mut with_seconds = String::with_capacity(25);
        with_seconds.push_str(&raw[..16]);
        with_seconds.push_str(":00");
        with_seconds.push_str(&raw[16..]);
        if let Ok(dt) = DateTime::parse_from_rfc3339(&with_seconds) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    None
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (the first day of a partial period); also the date part
/// of a dateTime.
pub fn parse_fhir_date(raw: &str) -> Option<NaiveDate> {
    let raw = raw.trim();
    let date_part = raw.split('T').next().unwrap_or(raw);
    match date_part.len() {
        4 => date_part
            .parse::<i32>()
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1)),
        7 => NaiveDate::parse_from_str(&format!("{date_part}-01"), "%Y-%m-%d").ok(),
        10 => NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok(),
        _ => None,
    }
}

fn opt_datetime(
    obj: &Map<String, Value>,
    key: &str,
    at: &At<'_>,
) -> Result<Option<DateTime<Utc>>, AdapterError> {
    Ok(opt_str(obj, key, at)?.and_then(parse_fhir_datetime))
}

fn period_start(
    obj: &Map<String, Value>,
    key: &str,
    at: &At<'_>,
) -> Result<Option<DateTime<Utc>>, AdapterError> {
    match opt_object(obj, key, at)? {
        None => Ok(None),
        Some(period) => opt_datetime(period, "start", &at.key(key)),
    }
}

/// A Period's length (end − start), when both ends are readable and end is after start.
fn period_length(
    period: &Map<String, Value>,
    at: &At<'_>,
) -> Result<Field<CalendarDuration>, AdapterError> {
    let start = opt_datetime(period, "start", at)?;
    let end = opt_datetime(period, "end", at)?;
    Ok(match (start, end) {
        (Some(start), Some(end)) => {
            let days = (end - start).num_seconds() as f64 / 86_400.0;
            match CalendarDuration::from_days(days) {
                Ok(d) => Field::Given(d),
                Err(e) => Field::Unreadable(at.unreadable(format!("{days} days"), e)),
            }
        }
        _ => Field::Absent,
    })
}

// ---------------------------------------------------------------------------------------------
// Codes and quantities

pub(crate) fn coding(
    obj: &Map<String, Value>,
    at: &At<'_>,
) -> Result<Option<Coding>, AdapterError> {
    let code = match field(obj, "code") {
        None => return Ok(None),
        // Codes are strings in FHIR; a number (`"code": 1185223`) is read as its digits.
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(at
                .key("code")
                .malformed(format!("must be a string, found {}", type_name(other))));
        }
    };
    Ok(Some(Coding {
        system: opt_str(obj, "system", at)?.map(System::new),
        code,
        display: opt_str(obj, "display", at)?.map(str::to_owned),
    }))
}

/// A CodeableConcept: every coding, and the text. A bare string (STU3 `clinicalStatus`, some
/// hand-built clients) is read as the text.
pub(crate) fn concept(value: &Value, at: &At<'_>) -> Result<Concept, AdapterError> {
    if let Value::String(text) = value {
        return Ok(Concept::from_text(text));
    }
    let obj = as_object(value, at)?;
    let mut out = Concept::new(Vec::new(), opt_str(obj, "text", at)?.map(str::to_owned));
    let codings_at = at.key("coding");
    for (i, c) in one_or_many(obj, "coding", at)?.iter().enumerate() {
        let c_at = codings_at.index(i);
        if let Some(coding) = coding(as_object(c, &c_at)?, &c_at)? {
            out.codings.push(coding);
        }
    }
    Ok(out)
}

fn opt_concept(
    obj: &Map<String, Value>,
    key: &str,
    at: &At<'_>,
) -> Result<Option<Concept>, AdapterError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => concept(v, &at.key(key)).map(Some),
    }
}

/// The first code of a status-like concept (`clinicalStatus`), or the string itself (STU3).
fn status_code(
    obj: &Map<String, Value>,
    key: &str,
    at: &At<'_>,
) -> Result<Option<String>, AdapterError> {
    Ok(opt_concept(obj, key, at)?
        .and_then(|c| c.codings.first().map(|c| c.code.clone()).or(c.text)))
}

/// A Quantity as a dose amount: the value, and the unit from `unit`, else `code` (the sandbox
/// sends only `code: "{pill}"`). Either string may be the one that parses.
fn amount(quantity: &Value, at: &At<'_>) -> Result<Field<Amount>, AdapterError> {
    let obj = as_object(quantity, at)?;
    let Some(raw_value) = field(obj, "value") else {
        return Ok(Field::Unreadable(
            at.key("value").unreadable("", "the quantity has no value"),
        ));
    };
    let Some(value) = number(raw_value) else {
        return Ok(Field::Unreadable(
            at.key("value")
                .unreadable(raw_text(raw_value), "the value is not a number"),
        ));
    };
    let unit = opt_str(obj, "unit", at)?;
    let code = opt_str(obj, "code", at)?;
    let mut first_error = None;
    for candidate in [unit, code].into_iter().flatten() {
        match Amount::parse(value, candidate) {
            Ok(a) => return Ok(Field::Given(a)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Ok(Field::Unreadable(match first_error {
        Some(e) => {
            let key = if unit.is_some() { "unit" } else { "code" };
            at.key(key).unreadable(unit.or(code).unwrap_or_default(), e)
        }
        None => at
            .key("unit")
            .unreadable(format!("{value}"), "the quantity has no unit"),
    }))
}

/// A Duration (or a Quantity used as one): value and a calendar unit from `code`, else `unit`.
fn duration(quantity: &Value, at: &At<'_>) -> Result<Field<CalendarDuration>, AdapterError> {
    let obj = as_object(quantity, at)?;
    let Some(value) = field(obj, "value").and_then(number) else {
        return Ok(Field::Unreadable(at.key("value").unreadable(
            field(obj, "value").map(raw_text).unwrap_or_default(),
            "the duration has no numeric value",
        )));
    };
    let code = opt_str(obj, "code", at)?;
    let unit = opt_str(obj, "unit", at)?;
    let Some(unit_text) = code.or(unit) else {
        return Ok(Field::Unreadable(
            at.key("unit").unreadable("", "the duration has no unit"),
        ));
    };
    let parsed = PeriodUnit::parse(unit_text)
        .or_else(|e| {
            unit.map_or(Err(e.clone()), PeriodUnit::parse)
                .map_err(|_| e)
        })
        .and_then(|u| CalendarDuration::new(value, u));
    Ok(match parsed {
        Ok(d) => Field::Given(d),
        Err(e) => Field::Unreadable(
            at.key(if code.is_some() { "code" } else { "unit" })
                .unreadable(unit_text, e),
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Medication orders

/// Where `medicationReference`s are looked up: the resource's own `contained` list and the
/// other resources of the same Bundle.
pub(crate) struct MedicationLookup<'v> {
    pub(crate) bundle: &'v [Value],
}

impl<'v> MedicationLookup<'v> {
    fn find(
        &self,
        resource: &'v Map<String, Value>,
        reference: &str,
    ) -> Option<&'v Map<String, Value>> {
        if let Some(local) = reference.strip_prefix('#') {
            return resource
                .get("contained")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .find(|r| r.get("id").and_then(Value::as_str) == Some(local));
        }
        let id = reference.rsplit('/').next().unwrap_or(reference);
        self.bundle
            .iter()
            .filter_map(Value::as_object)
            .find_map(|entry| {
                let full_url = entry.get("fullUrl").and_then(Value::as_str);
                let r = entry.get("resource")?.as_object()?;
                let is_medication =
                    r.get("resourceType").and_then(Value::as_str) == Some("Medication");
                let same_id = r.get("id").and_then(Value::as_str) == Some(id);
                (is_medication && (same_id || full_url == Some(reference))).then_some(r)
            })
    }
}

fn medication_concept(
    resource: &Map<String, Value>,
    lookup: &MedicationLookup<'_>,
    at: &At<'_>,
) -> Result<Concept, AdapterError> {
    if let Some(c) = opt_concept(resource, "medicationCodeableConcept", at)? {
        return Ok(c);
    }
    let Some(reference) = opt_object(resource, "medicationReference", at)? else {
        return Ok(Concept::default());
    };
    let ref_at = at.key("medicationReference");
    let target = opt_str(reference, "reference", &ref_at)?;
    let display = opt_str(reference, "display", &ref_at)?;
    if let Some(medication) = target.and_then(|t| lookup.find(resource, t)) {
        // A contained or bundled Medication is read leniently: it is a lookup, not the order.
        if let Some(Ok(mut code)) = medication.get("code").map(|c| concept(c, &ref_at)) {
            if code.text.is_none() {
                code.text = display.map(str::to_owned);
            }
            return Ok(code);
        }
    }
    Ok(display.map(Concept::from_text).unwrap_or_default())
}

/// The `doseAndRate` entry to read: the one typed "ordered" (vendors send calculated and
/// admin-amount entries beside it), else the first that carries a dose.
fn pick_dose_and_rate(entries: &[Value]) -> Option<(usize, &Map<String, Value>)> {
    let with_dose = || {
        entries.iter().enumerate().filter_map(|(i, e)| {
            let obj = e.as_object()?;
            (field(obj, "doseQuantity").is_some() || field(obj, "doseRange").is_some())
                .then_some((i, obj))
        })
    };
    let is_ordered = |obj: &Map<String, Value>| {
        let Some(kind) = obj.get("type") else {
            return false;
        };
        let text_is = kind
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("ordered"));
        let code_is = kind
            .get("coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("code")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("ordered"))
            });
        text_is || code_is
    };
    with_dose()
        .find(|(_, obj)| is_ordered(obj))
        .or_else(|| with_dose().next())
}

fn dose_from(holder: &Map<String, Value>, at: &At<'_>) -> Result<Field<Dose>, AdapterError> {
    if let Some(q) = field(holder, "doseQuantity") {
        return Ok(match amount(q, &at.key("doseQuantity"))? {
            Field::Given(amount) => Field::Given(Dose::Fixed { amount }),
            Field::Unreadable(u) => Field::Unreadable(u),
            Field::Absent => Field::Absent,
        });
    }
    if let Some(range) = opt_object(holder, "doseRange", at)? {
        let range_at = at.key("doseRange");
        let read = |key: &str| -> Result<Field<Amount>, AdapterError> {
            match field(range, key) {
                None => Ok(Field::Absent),
                Some(v) => amount(v, &range_at.key(key)),
            }
        };
        return Ok(match (read("low")?, read("high")?) {
            (Field::Given(low), Field::Given(high))
                if low.unit() == high.unit() && low.value() <= high.value() =>
            {
                Field::Given(Dose::Range { low, high })
            }
            (Field::Given(_), Field::Given(_)) => Field::Unreadable(range_at.unreadable(
                "low/high",
                "the dose range's low and high are in different units or reversed",
            )),
            (Field::Unreadable(u), _) | (_, Field::Unreadable(u)) => Field::Unreadable(u),
            // Only the high end: checked as a fixed dose at its ceiling. Only the low end: the
            // ceiling is unknown, so the dose cannot be checked.
            (Field::Absent, Field::Given(high)) => Field::Given(Dose::Fixed { amount: high }),
            (Field::Given(low), Field::Absent) => Field::Unreadable(
                range_at
                    .key("high")
                    .unreadable(low.to_string(), "the dose range has no upper end"),
            ),
            (Field::Absent, Field::Absent) => Field::Absent,
        });
    }
    Ok(Field::Absent)
}

fn repeat_spec(repeat: &Map<String, Value>, at: &At<'_>) -> Result<RepeatSpec, AdapterError> {
    let num = |key: &str| -> Result<Option<f64>, AdapterError> {
        match field(repeat, key) {
            None => Ok(None),
            Some(v) => number(v).map(Some).ok_or_else(|| {
                at.key(key)
                    .malformed(format!("must be a number, found {}", type_name(v)))
            }),
        }
    };
    Ok(RepeatSpec {
        frequency: num("frequency")?,
        frequency_max: num("frequencyMax")?,
        period: num("period")?,
        period_max: num("periodMax")?,
        // DSTU2 spells it `periodUnits`.
        period_unit: opt_str(repeat, "periodUnit", at)?
            .or(opt_str(repeat, "periodUnits", at)?)
            .map(str::to_owned),
        time_of_day_count: count_items(repeat, "timeOfDay"),
        when_count: count_items(repeat, "when"),
    })
}

/// How many entries a list field has; a single value sent without its array counts as one.
fn count_items(obj: &Map<String, Value>, key: &str) -> usize {
    match field(obj, key) {
        None => 0,
        Some(Value::Array(items)) => items.iter().filter(|v| !v.is_null()).count(),
        Some(_) => 1,
    }
}

fn describe_repeat(spec: &RepeatSpec) -> String {
    let n = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    format!(
        "frequency {} (max {}) per {} (max {}) {}",
        n(spec.frequency),
        n(spec.frequency_max),
        n(spec.period),
        n(spec.period_max),
        spec.period_unit.as_deref().unwrap_or("-")
    )
}

/// Frequency from `timing.repeat`, else `timing.code` (BID, Q8H), else absent.
fn frequency_from(
    timing: &Map<String, Value>,
    at: &At<'_>,
) -> Result<Field<Frequency>, AdapterError> {
    if let Some(repeat) = opt_object(timing, "repeat", at)? {
        let repeat_at = at.key("repeat");
        let spec = repeat_spec(repeat, &repeat_at)?;
        match Frequency::from_repeat(&spec) {
            Ok(Some(f)) => return Ok(Field::Given(f)),
            Ok(None) => {}
            Err(e) => {
                return Ok(Field::Unreadable(
                    repeat_at.unreadable(describe_repeat(&spec), e),
                ));
            }
        }
    }
    if let Some(code) = opt_concept(timing, "code", at)? {
        let code_at = at.key("code");
        let candidates = code
            .codings
            .iter()
            .map(|c| c.code.as_str())
            .chain(code.text.as_deref());
        let mut first_error = None;
        for candidate in candidates {
            match Frequency::parse_code(candidate) {
                Ok(f) => return Ok(Field::Given(f)),
                Err(e) => {
                    first_error.get_or_insert((candidate.to_owned(), e));
                }
            }
        }
        if let Some((raw, e)) = first_error {
            return Ok(Field::Unreadable(code_at.unreadable(raw, e)));
        }
    }
    Ok(Field::Absent)
}

/// Therapy length from `timing.repeat.boundsDuration` / `boundsPeriod`.
fn bounds(
    timing: &Map<String, Value>,
    at: &At<'_>,
) -> Result<Field<CalendarDuration>, AdapterError> {
    let Some(repeat) = opt_object(timing, "repeat", at)? else {
        return Ok(Field::Absent);
    };
    let repeat_at = at.key("repeat");
    if let Some(d) = field(repeat, "boundsDuration") {
        return duration(d, &repeat_at.key("boundsDuration"));
    }
    match opt_object(repeat, "boundsPeriod", &repeat_at)? {
        Some(p) => period_length(p, &repeat_at.key("boundsPeriod")),
        None => Ok(Field::Absent),
    }
}

fn route_from(dosage: &Map<String, Value>, at: &At<'_>) -> Result<Field<Route>, AdapterError> {
    let Some(route) = opt_concept(dosage, "route", at)? else {
        return Ok(Field::Absent);
    };
    let candidates = route
        .codings
        .iter()
        .map(|c| c.code.as_str())
        .chain(route.text.as_deref())
        .chain(route.codings.iter().filter_map(|c| c.display.as_deref()));
    let mut any = false;
    for candidate in candidates {
        any = true;
        let parsed = Route::parse(candidate);
        if parsed != Route::Other {
            return Ok(Field::Given(parsed));
        }
    }
    Ok(if any {
        Field::Given(Route::Other)
    } else {
        Field::Absent
    })
}

/// What the adapter noticed while reading an order and did not turn into a field.
#[derive(Default)]
pub(crate) struct ReadNotes {
    pub(crate) extra_dosage_instructions: usize,
}

/// Reads a MedicationRequest (R4, STU3), MedicationOrder (DSTU2) or MedicationStatement.
pub(crate) fn medication_order(
    resource: &Map<String, Value>,
    reference: &str,
    default_status: OrderStatus,
    lookup: &MedicationLookup<'_>,
    at: &At<'_>,
    notes: &mut ReadNotes,
) -> Result<MedicationOrder, AdapterError> {
    let mut order = MedicationOrder::new(reference, medication_concept(resource, lookup, at)?);
    order.status = opt_str(resource, "status", at)?.map_or(default_status, OrderStatus::parse);
    order.authored_on = match opt_datetime(resource, "authoredOn", at)? {
        Some(t) => Some(t),
        None => opt_datetime(resource, "dateWritten", at)?,
    };

    // MedicationStatement carries `dosage`; the requests `dosageInstruction`.
    let dosage_key = if field(resource, "dosageInstruction").is_some() {
        "dosageInstruction"
    } else {
        "dosage"
    };
    let dosages = one_or_many(resource, dosage_key, at)?;
    notes.extra_dosage_instructions += dosages.len().saturating_sub(1);
    let mut bounds_duration = Field::Absent;
    if let Some(first) = dosages.first() {
        let dosage_at_list = at.key(dosage_key);
        let dosage_at = dosage_at_list.index(0);
        let dosage = as_object(first, &dosage_at)?;
        order.sig_text = opt_str(dosage, "text", &dosage_at)?.map(str::to_owned);
        let dose_and_rate = one_or_many(dosage, "doseAndRate", &dosage_at)?;
        let dar_at = dosage_at.key("doseAndRate");
        for (i, entry) in dose_and_rate.iter().enumerate() {
            as_object(entry, &dar_at.index(i))?;
        }
        order.dose = match pick_dose_and_rate(dose_and_rate) {
            Some((i, entry)) => dose_from(entry, &dar_at.index(i))?,
            // STU3 / DSTU2 (and the hooks library's R4 order-sign example): dose on the dosage.
            None => dose_from(dosage, &dosage_at)?,
        };
        if let Some(timing) = opt_object(dosage, "timing", &dosage_at)? {
            let timing_at = dosage_at.key("timing");
            order.frequency = frequency_from(timing, &timing_at)?;
            bounds_duration = bounds(timing, &timing_at)?;
        }
        order.as_needed = match opt_bool(dosage, "asNeededBoolean", &dosage_at)? {
            Some(b) => b,
            None => field(dosage, "asNeededCodeableConcept").is_some(),
        };
        order.route = route_from(dosage, &dosage_at)?;
    }

    if let Some(dispense) = opt_object(resource, "dispenseRequest", at)? {
        let dispense_at = at.key("dispenseRequest");
        if let Some(d) = field(dispense, "expectedSupplyDuration") {
            order.supply_duration = duration(d, &dispense_at.key("expectedSupplyDuration"))?;
        }
        if let Some(q) = field(dispense, "quantity") {
            order.dispense_quantity = amount(q, &dispense_at.key("quantity"))?;
        }
    }
    if order.supply_duration.is_absent() {
        order.supply_duration = bounds_duration;
    }
    Ok(order)
}

/// Reads a ServiceRequest (R4) or ProcedureRequest (STU3 / DSTU2).
pub(crate) fn service_order(
    resource: &Map<String, Value>,
    reference: &str,
    default_status: OrderStatus,
    at: &At<'_>,
) -> Result<ServiceOrder, AdapterError> {
    let code = opt_concept(resource, "code", at)?.unwrap_or_default();
    let mut order = ServiceOrder::new(reference, code);
    order.status = opt_str(resource, "status", at)?.map_or(default_status, OrderStatus::parse);
    order.do_not_perform = opt_bool(resource, "doNotPerform", at)?.unwrap_or(false);
    order.authored_on = opt_datetime(resource, "authoredOn", at)?;
    if let Some(start) = opt_datetime(resource, "occurrenceDateTime", at)? {
        order.occurrence_start = Some(start);
    } else if let Some(period) = opt_object(resource, "occurrencePeriod", at)? {
        let period_at = at.key("occurrencePeriod");
        order.occurrence_start = opt_datetime(period, "start", &period_at)?;
        order.planned_duration = period_length(period, &period_at)?;
    } else if let Some(timing) = opt_object(resource, "occurrenceTiming", at)? {
        let timing_at = at.key("occurrenceTiming");
        order.planned_duration = bounds(timing, &timing_at)?;
        if let Some(repeat) = opt_object(timing, "repeat", &timing_at)? {
            order.occurrence_start =
                period_start(repeat, "boundsPeriod", &timing_at.key("repeat"))?;
        }
    }
    Ok(order)
}

// ---------------------------------------------------------------------------------------------
// Patient record

pub(crate) struct Demographics {
    pub(crate) birth_date: Option<NaiveDate>,
    pub(crate) sex: Option<Sex>,
}

pub(crate) fn patient(
    resource: &Map<String, Value>,
    at: &At<'_>,
) -> Result<Demographics, AdapterError> {
    Ok(Demographics {
        birth_date: opt_str(resource, "birthDate", at)?.and_then(parse_fhir_date),
        sex: opt_str(resource, "gender", at)?.map(Sex::parse),
    })
}

pub(crate) fn condition(
    resource: &Map<String, Value>,
    at: &At<'_>,
) -> Result<Diagnosis, AdapterError> {
    let mut dx = Diagnosis::new(opt_concept(resource, "code", at)?.unwrap_or_default());
    if let Some(status) = status_code(resource, "clinicalStatus", at)? {
        dx.clinical_status = ClinicalStatus::parse(&status);
    }
    if let Some(status) = status_code(resource, "verificationStatus", at)? {
        dx.verification = Verification::parse(&status);
    }
    dx.onset = match opt_datetime(resource, "onsetDateTime", at)? {
        Some(t) => Some(t),
        None => period_start(resource, "onsetPeriod", at)?,
    };
    // R4 recordedDate, STU3 assertedDate, DSTU2 dateRecorded.
    dx.recorded = match opt_datetime(resource, "recordedDate", at)? {
        Some(t) => Some(t),
        None => match opt_datetime(resource, "assertedDate", at)? {
            Some(t) => Some(t),
            None => opt_datetime(resource, "dateRecorded", at)?,
        },
    };
    Ok(dx)
}

fn effective(
    resource: &Map<String, Value>,
    at: &At<'_>,
) -> Result<Option<DateTime<Utc>>, AdapterError> {
    if let Some(t) = opt_datetime(resource, "effectiveDateTime", at)? {
        return Ok(Some(t));
    }
    if let Some(t) = period_start(resource, "effectivePeriod", at)? {
        return Ok(Some(t));
    }
    opt_datetime(resource, "issued", at)
}

/// An Observation with a numeric result; `None` for preliminary-or-better statuses it must
/// skip (registered, cancelled, entered-in-error) or when there is no numeric value.
pub(crate) fn observation(
    resource: &Map<String, Value>,
    at: &At<'_>,
) -> Result<Option<LabResult>, AdapterError> {
    if let Some(status) = opt_str(resource, "status", at)?
        && !matches!(status, "final" | "amended" | "corrected" | "preliminary")
    {
        return Ok(None);
    }
    let Some(quantity) = opt_object(resource, "valueQuantity", at)? else {
        return Ok(None);
    };
    let Some(value) = field(quantity, "value").and_then(number) else {
        return Ok(None);
    };
    let q_at = at.key("valueQuantity");
    let unit = opt_str(quantity, "unit", &q_at)?.or(opt_str(quantity, "code", &q_at)?);
    Ok(Some(LabResult {
        code: opt_concept(resource, "code", at)?.unwrap_or_default(),
        value,
        unit: unit.map(str::to_owned),
        effective: effective(resource, at)?,
    }))
}

pub(crate) fn diagnostic_report(
    resource: &Map<String, Value>,
    at: &At<'_>,
) -> Result<ImagingReport, AdapterError> {
    Ok(ImagingReport {
        code: opt_concept(resource, "code", at)?.unwrap_or_default(),
        date: effective(resource, at)?,
    })
}

pub(crate) fn imaging_study(
    resource: &Map<String, Value>,
    at: &At<'_>,
) -> Result<ImagingReport, AdapterError> {
    let procedure_at = at.key("procedureCode");
    let mut code = match one_or_many(resource, "procedureCode", at)?.first() {
        Some(c) => concept(c, &procedure_at.index(0))?,
        None => Concept::default(),
    };
    if code.text.is_none() {
        code.text = opt_str(resource, "description", at)?.map(str::to_owned);
    }
    Ok(ImagingReport {
        code,
        date: opt_datetime(resource, "started", at)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn partial_dates_mean_the_start_of_their_period() {
        let ymd = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
        assert_eq!(parse_fhir_datetime("2023"), Some(ymd(2023, 1, 1)));
        assert_eq!(parse_fhir_datetime("2023-05"), Some(ymd(2023, 5, 1)));
        assert_eq!(parse_fhir_datetime("2023-05-17"), Some(ymd(2023, 5, 17)));
        assert_eq!(
            parse_fhir_datetime("2023-05-01T00:00:00-06:00"),
            Some(Utc.with_ymd_and_hms(2023, 5, 1, 6, 0, 0).unwrap())
        );
        assert_eq!(
            parse_fhir_datetime("2018-04-30T13:25:40.845-04:00"),
            Some(
                Utc.with_ymd_and_hms(2018, 4, 30, 17, 25, 40).unwrap()
                    + chrono::Duration::milliseconds(845)
            )
        );
        assert_eq!(
            parse_fhir_datetime("2023-05-01T10:30:00"),
            Some(Utc.with_ymd_and_hms(2023, 5, 1, 10, 30, 0).unwrap())
        );
        assert_eq!(
            parse_fhir_datetime("2023-05-01T10:30-02:00"),
            Some(Utc.with_ymd_and_hms(2023, 5, 1, 12, 30, 0).unwrap())
        );
        assert_eq!(parse_fhir_datetime("May 1st"), None);
        assert_eq!(parse_fhir_datetime("2023-13"), None);
    }

    #[test]
    fn paths_render_as_pointer_and_as_fhir_path() {
        let root = At::ROOT;
        let context = root.key("context");
        let draft = context.key("draftOrders");
        let entry = draft.key("entry");
        let first = entry.index(0);
        let resource = first.key("resource").resource();
        let dosage = resource.key("dosageInstruction");
        let d0 = dosage.index(0);
        let unit = d0.key("doseQuantity");
        let unit = unit.key("unit");
        assert_eq!(
            unit.pointer(),
            "/context/draftOrders/entry/0/resource/dosageInstruction/0/doseQuantity/unit"
        );
        assert_eq!(unit.fhir_path(), "dosageInstruction[0].doseQuantity.unit");
    }
}
