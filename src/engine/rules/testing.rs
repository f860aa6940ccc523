//! A small table-test helper for rule kinds: build a patient and orders, evaluate under the
//! shipped pathway, assert on the findings by rule id.

use crate::decision::{Evaluation, Finding};
use crate::domain::codes::system;
use crate::domain::{
    Concept, Diagnosis, EvaluationInput, MedicationOrder, OrderSet, PatientContext, ServiceOrder,
};
use crate::pathway::Plan;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

/// The evaluation time every case uses unless it says otherwise.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

/// A 72-year-old woman with an osteoporotic L1 compression fracture 10 days ago.
pub fn vcf_patient() -> PatientContext {
    vcf_patient_aged(72, 10)
}

pub fn vcf_patient_aged(age: i32, fracture_days_ago: i64) -> PatientContext {
    let mut dx = Diagnosis::new(Concept::coded(
        system::ICD10CM,
        "M80.08XA",
        Some("Osteoporotic vertebral fracture"),
    ));
    dx.onset = Some(now() - Duration::days(fracture_days_ago));
    PatientContext {
        reference: Some("Patient/test".into()),
        birth_date: NaiveDate::from_ymd_opt(2026 - age, 1, 1),
        diagnoses: vec![dx],
        ..PatientContext::default()
    }
}

pub struct Case {
    input: EvaluationInput,
    plan: std::sync::Arc<Plan>,
}

#[allow(dead_code)] // builders used by the rule kinds as they land
impl Case {
    pub fn new(patient: PatientContext) -> Case {
        Case {
            input: EvaluationInput {
                patient,
                orders: OrderSet::default(),
                now: now(),
            },
            plan: Plan::builtin(),
        }
    }

    pub fn at(mut self, now: DateTime<Utc>) -> Case {
        self.input.now = now;
        self
    }

    pub fn medication(mut self, order: MedicationOrder) -> Case {
        self.input.orders.medications.push(order);
        self
    }

    pub fn active_medication(mut self, order: MedicationOrder) -> Case {
        self.input.patient.active_medications.push(order);
        self
    }

    pub fn service(mut self, order: ServiceOrder) -> Case {
        self.input.orders.services.push(order);
        self
    }

    pub fn patient_mut(&mut self) -> &mut PatientContext {
        &mut self.input.patient
    }

    /// The input as built so far, for tests that look below the findings (e.g. at `Facts`).
    pub fn input(&self) -> &EvaluationInput {
        &self.input
    }

    pub fn evaluate(&self) -> Evaluation {
        crate::engine::evaluate(&self.plan, &self.input)
    }

    pub fn findings(&self, rule_id: &str) -> Vec<Finding> {
        self.evaluate()
            .findings
            .into_iter()
            .filter(|f| *f.rule_id == *rule_id)
            .collect()
    }

    /// Asserts that `rule_id` fires once at `severity` ("info" / "warning" / "critical"), or
    /// not at all (`None`). Returns the finding for further checks.
    #[track_caller]
    pub fn expect_severity(&self, rule_id: &str, severity: Option<&str>) -> Option<Finding> {
        let found = self.findings(rule_id);
        match severity {
            None => {
                assert!(
                    found.is_empty(),
                    "{rule_id} should not fire, got {found:#?}"
                );
                None
            }
            Some(s) => {
                assert_eq!(
                    found.len(),
                    1,
                    "{rule_id} should fire once at {s}, got {found:#?}"
                );
                assert_eq!(
                    found[0].severity.as_str(),
                    s,
                    "{rule_id} severity; finding {:#?}",
                    found[0]
                );
                assert!(
                    !found[0].summary().contains('{') && !found[0].detail().contains('{'),
                    "unfilled placeholder in {:#?}",
                    found[0]
                );
                assert!(
                    !found[0].summary().ends_with('…'),
                    "summary had to be clipped: {}",
                    found[0].summary()
                );
                found.into_iter().next()
            }
        }
    }
}

/// A draft medication order by drug name (and RxNorm ingredient code, when given), every
/// dosing field absent: enough for rules that look at the drug class only.
pub fn drug_order(reference: &str, name: &str, rxcui: Option<&str>) -> MedicationOrder {
    let mut medication = match rxcui {
        Some(code) => Concept::coded(system::RXNORM, code, Some(name)),
        None => Concept::default(),
    };
    medication.text = Some(name.to_owned());
    MedicationOrder::new(reference, medication)
}

/// A draft service order (procedure, consult, imaging, referral) by code and text.
pub fn service_order(reference: &str, code_system: &str, code: &str, text: &str) -> ServiceOrder {
    let mut concept = Concept::coded(code_system, code, Some(text));
    concept.text = Some(text.to_owned());
    ServiceOrder::new(reference, concept)
}

/// A lab result `days_ago` before [`now()`] (LOINC code, value, UCUM unit).
pub fn lab(loinc: &str, value: f64, unit: &str, days_ago: i64) -> crate::domain::LabResult {
    crate::domain::LabResult {
        code: Concept::coded(system::LOINC, loinc, None),
        value,
        unit: Some(unit.to_owned()),
        effective: Some(now() - Duration::days(days_ago)),
    }
}

/// An eGFR (CKD-EPI 2021) from yesterday.
pub fn egfr(value: f64) -> crate::domain::LabResult {
    lab("98979-8", value, "mL/min/{1.73_m2}", 1)
}

/// A VCF patient with an unknown fracture date (no onset, no recorded date).
pub fn vcf_patient_date_unknown(age: i32) -> PatientContext {
    let mut patient = vcf_patient_aged(age, 10);
    for dx in &mut patient.diagnoses {
        dx.onset = None;
        dx.recorded = None;
    }
    patient
}

/// The suggestion ids of a finding, in order.
pub fn suggestion_ids(finding: &Finding) -> Vec<&str> {
    finding.suggestions.iter().map(|s| &*s.id).collect()
}

/// The named number of a finding as f64.
#[track_caller]
pub fn number(finding: &Finding, name: &str) -> f64 {
    finding
        .numbers
        .get(name)
        .and_then(crate::decision::Number::as_f64)
        .unwrap_or_else(|| panic!("finding has no number {name:?}: {finding:#?}"))
}

// Builders for the dose rules' table tests.

/// A patient of `age` (on 1 January) with no fracture: the dose rules apply to everyone.
pub fn patient_aged(age: i32) -> PatientContext {
    PatientContext {
        reference: Some("Patient/test".into()),
        birth_date: NaiveDate::from_ymd_opt(2026 - age, 1, 1),
        ..PatientContext::default()
    }
}

/// A fixed dose of `value` `unit` ("mg", "tablet", "[iU]", "ug/h", "mL").
pub fn dose(value: f64, unit: &str) -> crate::domain::Field<crate::domain::Dose> {
    crate::domain::Field::Given(crate::domain::Dose::Fixed {
        amount: crate::domain::Amount::parse(value, unit).unwrap(),
    })
}

pub fn mg_dose(value: f64) -> crate::domain::Field<crate::domain::Dose> {
    dose(value, "mg")
}

/// A draft order for the drug named `text`: `value` `unit` once every `period` `period_unit`.
pub fn med(
    reference: &str,
    text: &str,
    value: f64,
    unit: &str,
    period: f64,
    period_unit: crate::domain::PeriodUnit,
) -> MedicationOrder {
    let mut order = MedicationOrder::new(reference, Concept::from_text(text));
    order.dose = dose(value, unit);
    order.frequency = crate::domain::Field::Given(
        crate::domain::Frequency::once_every(period, period_unit).unwrap(),
    );
    order
}

/// A draft order: `value` `unit`, `times` a day.
pub fn med_per_day(
    reference: &str,
    text: &str,
    value: f64,
    unit: &str,
    times: u32,
) -> MedicationOrder {
    let mut order = MedicationOrder::new(reference, Concept::from_text(text));
    order.dose = dose(value, unit);
    order.frequency =
        crate::domain::Field::Given(crate::domain::Frequency::times_per_day(times).unwrap());
    order
}

impl Case {
    pub fn orders_mut(&mut self) -> &mut OrderSet {
        &mut self.input.orders
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Concept, MedicationOrder};

    #[test]
    fn unidentified_drafts_are_listed_as_unrecognized() {
        let case = Case::new(vcf_patient())
            .medication(MedicationOrder::new(
                "MedicationRequest/x",
                Concept::from_text("Zzyzxomab 5 mg"),
            ))
            .medication(MedicationOrder::new(
                "MedicationRequest/y",
                Concept::from_text("oxycodone 5 mg tablet"),
            ));
        let unrecognized = case.evaluate().unrecognized;
        assert_eq!(unrecognized.len(), 1);
        assert_eq!(unrecognized[0].order_ref.as_str(), "MedicationRequest/x");
    }
}
