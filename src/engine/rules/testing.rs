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

    pub fn evaluate(&self) -> Evaluation {
        crate::engine::evaluate(&self.plan, &self.input)
    }

    pub fn findings(&self, rule_id: &str) -> Vec<Finding> {
        self.evaluate()
            .findings
            .into_iter()
            .filter(|f| f.rule_id == rule_id)
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
                    !found[0].summary.contains('{') && !found[0].detail.contains('{'),
                    "unfilled placeholder in {:#?}",
                    found[0]
                );
                assert!(found[0].summary.chars().count() < 140);
                found.into_iter().next()
            }
        }
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
