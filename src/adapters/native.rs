//! Native JSON order sets: `schemas/order-set.schema.json`.
//!
//! A document is first checked against the schema (every error reported, each at its JSON
//! pointer, with the offending values masked so no patient data reaches an error message), then
//! deserialized into the typed [`NativeOrderSet`] and mapped to the domain. The schema is strict
//! about structure (unknown properties, missing ids, wrong types) and deliberately not about
//! dose units or sig codes: those become [`Field::Unreadable`] so the decision says the dose was
//! not checked, exactly as for a CDS Hooks request.

use super::fhir::parse_fhir_datetime;
use super::{AdapterError, FieldError, Translated};
use crate::domain::codes::{Coding, Concept, system};
use crate::domain::orders::{
    Dose, Field, MedicationOrder, OrderRef, OrderSet, OrderStatus, Route, ServiceOrder,
};
use crate::domain::patient::{
    ClinicalFlag, ClinicalStatus, Diagnosis, ImagingReport, LabResult, PatientContext,
    RecordSection, Sex, Verification,
};
use crate::domain::timing::{Frequency, RepeatSpec};
use crate::domain::units::{Amount, CalendarDuration, PeriodUnit};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::LazyLock;

/// The order-set schema as shipped (also served to clients).
pub const ORDER_SET_SCHEMA: &str = include_str!("../../schemas/order-set.schema.json");

/// The decision schema the native response follows.
pub const DECISION_SCHEMA: &str = include_str!("../../schemas/decision.schema.json");

/// Built once: compiling a schema costs far more than checking a document against it.
static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(ORDER_SET_SCHEMA).expect("order-set schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("order-set schema compiles")
});

/// A native order set, after schema validation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativeOrderSet {
    #[serde(default)]
    pub evaluated_at: Option<DateTime<Utc>>,
    pub patient: NativePatient,
    #[serde(default)]
    pub medications: Vec<NativeMedication>,
    #[serde(default)]
    pub services: Vec<NativeService>,
    #[serde(default)]
    pub focus: Option<Vec<String>>,
    #[serde(default)]
    pub context: Option<NativeContext>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativeContext {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub encounter: Option<String>,
}

/// `None` lists were left out ("not supplied"), `Some(vec![])` are known to be empty.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativePatient {
    #[serde(default)]
    pub reference: Option<String>,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    #[serde(default)]
    pub diagnoses: Option<Vec<NativeDiagnosis>>,
    #[serde(default)]
    pub labs: Option<Vec<NativeLab>>,
    #[serde(default)]
    pub imaging: Option<Vec<NativeImaging>>,
    #[serde(default)]
    pub flags: BTreeSet<ClinicalFlag>,
    #[serde(default)]
    pub active_medications: Option<Vec<NativeMedication>>,
    #[serde(default)]
    pub active_services: Option<Vec<NativeService>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativeDiagnosis {
    #[serde(default)]
    pub codes: Vec<Coding>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub onset: Option<String>,
    #[serde(default)]
    pub recorded: Option<String>,
    #[serde(default)]
    pub status: Option<ClinicalStatus>,
    #[serde(default)]
    pub verification: Option<Verification>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativeLab {
    #[serde(default)]
    pub codes: Vec<Coding>,
    #[serde(default)]
    pub loinc: Option<String>,
    pub value: f64,
    #[serde(default)]
    pub unit: Option<String>,
    pub effective: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativeImaging {
    #[serde(default)]
    pub codes: Vec<Coding>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativeQuantity {
    pub value: f64,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativeRange {
    pub low: f64,
    pub high: f64,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativeMedication {
    pub id: String,
    #[serde(default)]
    pub codes: Vec<Coding>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub authored_on: Option<String>,
    #[serde(default)]
    pub dose: Option<NativeQuantity>,
    #[serde(default)]
    pub dose_range: Option<NativeRange>,
    /// Same fields as FHIR `Timing.repeat`, in snake_case.
    #[serde(default)]
    pub frequency: Option<RepeatSpec>,
    #[serde(default)]
    pub frequency_code: Option<String>,
    #[serde(default)]
    pub as_needed: bool,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub duration: Option<NativeQuantity>,
    #[serde(default)]
    pub dispense_quantity: Option<NativeQuantity>,
    #[serde(default)]
    pub sig_text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NativeService {
    pub id: String,
    #[serde(default)]
    pub codes: Vec<Coding>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub authored_on: Option<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub duration: Option<NativeQuantity>,
    #[serde(default)]
    pub do_not_perform: bool,
}

/// Every schema error of a document, in document order, values masked.
pub fn validate(document: &Value) -> Result<(), AdapterError> {
    let errors: Vec<FieldError> = VALIDATOR
        .iter_errors(document)
        .map(|e| FieldError {
            path: e.instance_path().as_str().to_owned(),
            message: message(&e),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AdapterError::Invalid { errors })
    }
}

/// The validator's message, in the client's terms where the generic one is cryptic. Values
/// are masked: an error message never repeats what was sent.
fn message(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind;
    // The canonical keyword location names the $defs entry (`/$defs/identified/anyOf`).
    let schema_path = error.schema_path().as_str();
    match error.kind() {
        ValidationErrorKind::Not { schema } => {
            match schema.get("required").and_then(Value::as_array) {
                Some(both) if both.len() == 2 => {
                    format!(
                        "give {} or {}, not both",
                        both[0].as_str().unwrap_or("?"),
                        both[1].as_str().unwrap_or("?")
                    )
                }
                _ => error.masked().to_string(),
            }
        }
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(Value::to_string)
                .collect();
            format!("must be one of {}", allowed.join(", "))
        }
        ValidationErrorKind::AnyOf { .. } if schema_path.starts_with("/$defs/identified/") => {
            "needs at least one code (codes) or a text".to_owned()
        }
        ValidationErrorKind::AnyOf { .. }
            if schema_path.starts_with("/$defs/date_or_date_time/") =>
        {
            "must be a date (YYYY-MM-DD) or a date-time (RFC 3339)".to_owned()
        }
        ValidationErrorKind::AnyOf { .. } if schema_path.starts_with("/$defs/lab/") => {
            "needs codes or a loinc code".to_owned()
        }
        _ => error.masked().to_string(),
    }
}

impl NativeOrderSet {
    /// Parses and validates a request body.
    pub fn parse(bytes: &[u8]) -> Result<NativeOrderSet, AdapterError> {
        NativeOrderSet::from_value(super::parse_json(bytes)?)
    }

    /// Validates a parsed document against the schema, then reads it (moved, not cloned).
    pub fn from_value(document: Value) -> Result<NativeOrderSet, AdapterError> {
        validate(&document)?;
        serde_path_to_error::deserialize(document).map_err(|e| {
            // The schema admits only what these types read; a mismatch is a bug here, still
            // reported like any other schema error.
            let path = e.path().to_string();
            let path = if path == "." {
                String::new()
            } else {
                format!("/{}", path.replace('.', "/"))
            };
            AdapterError::Invalid {
                errors: vec![FieldError {
                    path,
                    message: e.into_inner().to_string(),
                }],
            }
        })
    }

    /// Findings and `focus` name an order by its id: two orders with one id would make every
    /// such reference ambiguous.
    fn unique_order_ids(&self) -> Result<(), AdapterError> {
        let ids = (self.medications.iter().enumerate())
            .map(|(i, m)| (format!("/medications/{i}/id"), m.id.as_str()))
            .chain(
                (self.services.iter().enumerate())
                    .map(|(i, s)| (format!("/services/{i}/id"), s.id.as_str())),
            );
        let mut seen: std::collections::HashMap<&str, String> = Default::default();
        let errors: Vec<FieldError> = ids
            .filter_map(|(path, id)| match seen.get(id) {
                Some(first) => Some(FieldError {
                    message: format!("the same id as {first}"),
                    path,
                }),
                None => {
                    seen.insert(id, path);
                    None
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(AdapterError::Invalid { errors })
        }
    }

    pub fn to_domain(&self) -> Result<Translated, AdapterError> {
        self.unique_order_ids()?;
        let mut notes = Vec::new();
        let patient = &self.patient;
        let mut absent = BTreeSet::new();
        let mut section = |present: bool, section| {
            if !present {
                absent.insert(section);
            }
        };
        section(patient.diagnoses.is_some(), RecordSection::Conditions);
        section(patient.labs.is_some(), RecordSection::Observations);
        section(patient.imaging.is_some(), RecordSection::Imaging);
        section(
            patient.active_medications.is_some(),
            RecordSection::Medications,
        );
        section(
            patient.active_services.is_some(),
            RecordSection::ServiceRequests,
        );

        let context = PatientContext {
            reference: patient.reference.clone(),
            birth_date: Some(patient.birth_date),
            sex: Some(patient.sex),
            diagnoses: patient.diagnoses.iter().flatten().map(diagnosis).collect(),
            labs: patient.labs.iter().flatten().map(lab).collect(),
            imaging: patient
                .imaging
                .iter()
                .flatten()
                .map(|i| ImagingReport {
                    code: concept(&i.codes, i.text.as_deref()),
                    date: date(i.date.as_deref()),
                })
                .collect(),
            flags: patient.flags.clone(),
            active_medications: patient
                .active_medications
                .iter()
                .flatten()
                .map(|m| medication(m, OrderStatus::Active))
                .filter(|m| m.status.is_current())
                .collect(),
            active_services: patient
                .active_services
                .iter()
                .flatten()
                .map(|s| service(s, OrderStatus::Active))
                .filter(|s| s.status.is_current())
                .collect(),
            absent_sections: absent,
        };

        let orders = OrderSet {
            medications: self
                .medications
                .iter()
                .map(|m| medication(m, OrderStatus::Draft))
                .collect(),
            services: self
                .services
                .iter()
                .map(|s| service(s, OrderStatus::Draft))
                .collect(),
            focus: self
                .focus
                .as_ref()
                .map(|f| f.iter().map(|id| OrderRef(id.as_str().into())).collect()),
        };
        if let Some(focus) = &orders.focus {
            let unknown = focus
                .iter()
                .filter(|r| {
                    !orders.medications.iter().any(|m| &m.reference == *r)
                        && !orders.services.iter().any(|s| &s.reference == *r)
                })
                .count();
            if unknown > 0 {
                notes.push(format!(
                    "{unknown} focus id(s) name no order of the request"
                ));
            }
        }
        let context_refs = self.context.as_ref();
        Ok(Translated {
            patient: context,
            orders,
            user_ref: context_refs.and_then(|c| c.user.clone()),
            patient_ref: patient.reference.clone(),
            encounter_ref: context_refs.and_then(|c| c.encounter.clone()),
            evaluated_at: self.evaluated_at,
            notes,
        })
    }
}

fn concept(codes: &[Coding], text: Option<&str>) -> Concept {
    Concept::new(codes.to_vec(), text.map(str::to_owned))
}

fn date(raw: Option<&str>) -> Option<DateTime<Utc>> {
    raw.and_then(parse_fhir_datetime)
}

fn diagnosis(d: &NativeDiagnosis) -> Diagnosis {
    let mut dx = Diagnosis::new(concept(&d.codes, d.text.as_deref()));
    if let Some(status) = d.status {
        dx.clinical_status = status;
    }
    if let Some(verification) = d.verification {
        dx.verification = verification;
    }
    dx.onset = date(d.onset.as_deref());
    dx.recorded = date(d.recorded.as_deref());
    dx
}

fn lab(l: &NativeLab) -> LabResult {
    let mut code = concept(&l.codes, None);
    if let Some(loinc) = &l.loinc {
        code.codings.push(Coding::new(system::LOINC, loinc));
    }
    LabResult {
        code,
        value: l.value,
        unit: l.unit.clone(),
        effective: date(Some(&l.effective)),
    }
}

fn amount(q: &NativeQuantity, field: &str) -> Field<Amount> {
    match Amount::parse(q.value, &q.unit) {
        Ok(a) => Field::Given(a),
        Err(e) => Field::Unreadable(crate::domain::Unreadable::new(
            format!("{field}.unit"),
            q.unit.clone(),
            e,
        )),
    }
}

fn medication(m: &NativeMedication, default_status: OrderStatus) -> MedicationOrder {
    let mut order = MedicationOrder::new(&m.id, concept(&m.codes, m.text.as_deref()));
    order.status = m
        .status
        .as_deref()
        .map_or(default_status, OrderStatus::parse);
    order.authored_on = date(m.authored_on.as_deref());
    order.dose = if let Some(q) = &m.dose {
        match amount(q, "dose") {
            Field::Given(amount) => Field::Given(Dose::Fixed { amount }),
            Field::Unreadable(u) => Field::Unreadable(u),
            Field::Absent => Field::Absent,
        }
    } else if let Some(r) = &m.dose_range {
        match (
            Amount::parse(r.low, &r.unit),
            Amount::parse(r.high, &r.unit),
        ) {
            (Ok(low), Ok(high)) if low.value() <= high.value() => {
                Field::Given(Dose::Range { low, high })
            }
            (Ok(_), Ok(_)) => Field::Unreadable(crate::domain::Unreadable::new(
                "dose_range",
                format!("{}-{}", r.low, r.high),
                "the dose range's low end is above its high end",
            )),
            (Err(e), _) | (_, Err(e)) => Field::Unreadable(crate::domain::Unreadable::new(
                "dose_range.unit",
                r.unit.clone(),
                e,
            )),
        }
    } else {
        Field::Absent
    };
    order.frequency = if let Some(spec) = &m.frequency {
        match Frequency::from_repeat(spec) {
            Ok(Some(f)) => Field::Given(f),
            Ok(None) => Field::Absent,
            Err(e) => Field::Unreadable(crate::domain::Unreadable::new(
                "frequency",
                format!(
                    "{:?}/{:?} {:?}",
                    spec.frequency, spec.period, spec.period_unit
                ),
                e,
            )),
        }
    } else if let Some(code) = &m.frequency_code {
        match Frequency::parse_code(code) {
            Ok(f) => Field::Given(f),
            Err(e) => Field::Unreadable(crate::domain::Unreadable::new(
                "frequency_code",
                code.clone(),
                e,
            )),
        }
    } else {
        Field::Absent
    };
    order.as_needed = m.as_needed;
    order.route = m
        .route
        .as_deref()
        .map_or(Field::Absent, |r| Field::Given(Route::parse(r)));
    order.supply_duration = m
        .duration
        .as_ref()
        .map_or(Field::Absent, |d| calendar(d, "duration"));
    order.dispense_quantity = m
        .dispense_quantity
        .as_ref()
        .map_or(Field::Absent, |q| amount(q, "dispense_quantity"));
    order.sig_text = m.sig_text.clone();
    order
}

fn calendar(d: &NativeQuantity, field: &str) -> Field<CalendarDuration> {
    match PeriodUnit::parse(&d.unit).and_then(|u| CalendarDuration::new(d.value, u)) {
        Ok(c) => Field::Given(c),
        Err(e) => Field::Unreadable(crate::domain::Unreadable::new(
            format!("{field}.unit"),
            d.unit.clone(),
            e,
        )),
    }
}

fn service(s: &NativeService, default_status: OrderStatus) -> ServiceOrder {
    let mut order = ServiceOrder::new(&s.id, concept(&s.codes, s.text.as_deref()));
    order.status = s
        .status
        .as_deref()
        .map_or(default_status, OrderStatus::parse);
    order.do_not_perform = s.do_not_perform;
    order.authored_on = date(s.authored_on.as_deref());
    order.occurrence_start = date(s.start.as_deref());
    order.planned_duration = if let Some(d) = &s.duration {
        calendar(d, "duration")
    } else {
        match (order.occurrence_start, date(s.end.as_deref())) {
            (Some(start), Some(end)) => {
                let days = (end - start).num_seconds() as f64 / 86_400.0;
                match CalendarDuration::from_days(days) {
                    Ok(d) => Field::Given(d),
                    Err(e) => Field::Unreadable(crate::domain::Unreadable::new(
                        "end",
                        format!("{days} days"),
                        e,
                    )),
                }
            }
            _ => Field::Absent,
        }
    };
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"patient": {"birth_date": "1950-01-01", "sex": "female"}})
    }

    #[test]
    fn a_minimal_order_set_is_valid_and_names_what_is_missing() {
        let t = NativeOrderSet::from_value(minimal())
            .unwrap()
            .to_domain()
            .unwrap();
        assert!(t.orders.medications.is_empty());
        assert_eq!(t.patient.absent_sections.len(), 5);
        assert!(!t.patient.absent_sections.contains(&RecordSection::Patient));
    }

    #[test]
    fn every_error_is_reported_at_its_path_without_values() {
        let doc = json!({
            "patient": {"birth_date": "1950-13-45", "sex": "f", "flags": ["dizzy"]},
            "medications": [{"id": "m1", "text": "oxycodone", "dose": {"value": 5}}, {"codes": []}]
        });
        let Err(AdapterError::Invalid { errors }) = NativeOrderSet::from_value(doc) else {
            panic!()
        };
        let paths: BTreeSet<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "/patient/birth_date",
            "/patient/sex",
            "/patient/flags/0",
            "/medications/0/dose",
            "/medications/1",
        ] {
            assert!(paths.contains(expected), "{expected} not in {paths:?}");
        }
        assert!(
            errors.iter().all(|e| !e.message.contains("dizzy")),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_units_are_unreadable_not_rejected() {
        let mut doc = minimal();
        doc["medications"] = json!([{"id": "m1", "text": "x", "dose": {"value": 1, "unit": "spoonful"}, "frequency_code": "whenever"}]);
        let t = NativeOrderSet::from_value(doc)
            .unwrap()
            .to_domain()
            .unwrap();
        let m = &t.orders.medications[0];
        assert_eq!(m.dose.unreadable().unwrap().field, "dose.unit");
        assert_eq!(m.frequency.unreadable().unwrap().field, "frequency_code");
    }
}
