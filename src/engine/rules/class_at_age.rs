//! `class_at_age` (VCF-OPIOID-ELDERLY, DOSE-BEERS-RELAXANT): a drug of a class drafted for a
//! patient at or above an age. Older adults are the ones the AGS Beers criteria and the CDC
//! opioid guideline single out (falls, delirium, sedation); the card offers override reasons
//! rather than a fix, because the drug may still be the right choice.

use super::{RuleKind, params};
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::DrugClass;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    class: DrugClass,
    /// Fires at this age and above (whole years at the evaluation time).
    min_age: u32,
}

#[derive(Debug)]
struct ClassAtAge(Params);

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    Some(Box::new(ClassAtAge(p)))
}

impl RuleKind for ClassAtAge {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let Params { class, min_age } = self.0;
        let mut orders = facts.drafted(class).peekable();
        if orders.peek().is_none() {
            return;
        }
        let Some(age) = facts.age else {
            out.missing("birth_date");
            return;
        };
        if age < min_age {
            return;
        }
        for medication in orders {
            out.finding()
                .order(&medication.order.reference)
                .number("age", f64::from(age))
                .number("min_age", f64::from(min_age))
                .text("drug", medication.label())
                .emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::PatientContext;
    use crate::engine::rules::testing::{Case, drug_order, number, vcf_patient_aged};
    use chrono::NaiveDate;

    #[test]
    fn a_misspelled_class_is_a_lint_error_at_its_param() {
        let mut v: serde_json::Value = serde_json::from_str(crate::pathway::BUILTIN_VCF).unwrap();
        let ix = v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .position(|r| r["id"] == "VCF-OPIOID-ELDERLY")
            .unwrap();
        v["rules"][ix]["params"]["class"] = "opiod".into();
        let errors = crate::pathway::Plan::from_value(v)
            .unwrap_err()
            .lint_errors();
        assert_eq!(
            errors[0].path,
            format!("/rules/{ix}/params/class"),
            "{errors:?}"
        );
        assert!(errors[0].message.contains("opiod"), "{errors:?}");
    }

    #[test]
    fn opioid_from_65() {
        for (age, expect) in [(64, None), (65, Some("warning")), (80, Some("warning"))] {
            let finding = Case::new(vcf_patient_aged(age, 10))
                .medication(drug_order(
                    "MedicationRequest/oxy",
                    "oxycodone 5 mg oral tablet",
                    Some("7804"),
                ))
                .expect_severity("VCF-OPIOID-ELDERLY", expect);
            if let Some(f) = finding {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/oxy"
                );
                assert_eq!(number(&f, "age"), f64::from(age));
                assert_eq!(number(&f, "min_age"), 65.0);
                assert!(f.suggestions.is_empty());
            }
        }
    }

    #[test]
    fn no_card_without_an_opioid_or_for_an_active_home_opioid() {
        Case::new(vcf_patient_aged(80, 10))
            .medication(drug_order(
                "MedicationRequest/apap",
                "acetaminophen 500 mg tablet",
                Some("161"),
            ))
            .expect_severity("VCF-OPIOID-ELDERLY", None);
        Case::new(vcf_patient_aged(80, 10))
            .active_medication(drug_order(
                "MedicationRequest/home",
                "oxycodone 5 mg tablet",
                Some("7804"),
            ))
            .expect_severity("VCF-OPIOID-ELDERLY", None);
    }

    #[test]
    fn unknown_age_is_recorded_not_guessed() {
        let mut patient = vcf_patient_aged(80, 10);
        patient.birth_date = None;
        let case = Case::new(patient).medication(drug_order(
            "MedicationRequest/oxy",
            "oxycodone 5 mg tablet",
            Some("7804"),
        ));
        case.expect_severity("VCF-OPIOID-ELDERLY", None);
        let missing = case.evaluate().missing_inputs;
        assert!(
            missing
                .iter()
                .any(|m| m.input == "birth_date"
                    && m.rules.contains(&"VCF-OPIOID-ELDERLY".to_owned())),
            "{missing:?}"
        );
    }

    #[test]
    fn muscle_relaxant_from_65_for_every_patient() {
        let patient = |age: i32| PatientContext {
            reference: Some("Patient/p".into()),
            birth_date: NaiveDate::from_ymd_opt(2026 - age, 1, 1),
            ..PatientContext::default()
        };
        for (age, expect) in [(64, None), (65, Some("warning"))] {
            let finding = Case::new(patient(age))
                .medication(drug_order(
                    "MedicationRequest/cbz",
                    "cyclobenzaprine 10 mg tablet",
                    Some("21949"),
                ))
                .expect_severity("DOSE-BEERS-RELAXANT", expect);
            if let Some(f) = finding {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/cbz"
                );
                assert_eq!(number(&f, "age"), 65.0);
                assert_eq!(number(&f, "min_age"), 65.0);
            }
        }
        Case::new(patient(70))
            .medication(drug_order(
                "MedicationRequest/m",
                "methocarbamol 750 mg tablet",
                None,
            ))
            .expect_severity("DOSE-BEERS-RELAXANT", Some("warning"));
    }
}
