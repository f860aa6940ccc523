//! `class_risk_factors` (VCF-NSAID-RENAL): a drug of a class (NSAIDs) drafted for a patient
//! with any of the risk factors the AGS Beers criteria name for it: renal function below a
//! cut-off (eGFR or CrCl), an age at or above a limit, or a drug of an interacting class
//! (anticoagulants: bleeding) ordered or active. The card lists every reason that applies.

use super::{RuleKind, params, renal_function};
use crate::domain::units::format_number;
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::DrugClass;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    class: DrugClass,
    /// Fires when eGFR or CrCl (either) is below this, mL/min(/1.73 m²).
    renal_below: f64,
    /// Fires at this age and above.
    min_age: u32,
    /// Fires when a drug of any of these classes is ordered or active.
    #[serde(default)]
    interacting_classes: Vec<DrugClass>,
    /// How the summary names the interacting drugs ("an anticoagulant").
    #[serde(default = "default_interaction_label")]
    interaction_label: String,
}

fn default_interaction_label() -> String {
    "an interacting drug".to_owned()
}

#[derive(Debug)]
struct ClassRiskFactors(Params);

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    Some(Box::new(ClassRiskFactors(p)))
}

impl RuleKind for ClassRiskFactors {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let p = &self.0;
        let mut orders = facts.drafted(p.class).peekable();
        if orders.peek().is_none() {
            return;
        }
        // Short names for the summary, full reasons for the detail.
        let mut names = Vec::new();
        let mut reasons = Vec::new();
        let renal = renal_function(facts);
        match renal {
            Some((value, measure)) if value < p.renal_below => {
                names.push(format!("{measure} {}", format_number(value)));
                reasons.push(format!(
                    "{measure} {} (below {})",
                    format_number(value),
                    format_number(p.renal_below)
                ));
            }
            Some(_) => {}
            None => out.missing("renal_function"),
        }
        match facts.age {
            Some(age) if age >= p.min_age => {
                names.push(format!("age {age}"));
                reasons.push(format!("age {age} (≥ {})", p.min_age));
            }
            Some(_) => {}
            None => out.missing("birth_date"),
        }
        let interacting: Vec<String> = facts
            .medications
            .iter()
            .filter(|m| p.interacting_classes.iter().any(|c| m.has_class(*c)))
            .map(|m| m.label())
            .collect();
        if !interacting.is_empty() {
            names.push(p.interaction_label.clone());
            reasons.push(format!("with {}", interacting.join(", ")));
        }
        if reasons.is_empty() {
            return;
        }
        let reasons = reasons.join("; ");
        let names = names.join(", ");
        for medication in orders {
            let mut finding = out
                .finding()
                .order(&medication.order.reference)
                .text("drug", medication.label())
                .text("reasons", reasons.clone())
                .text("reason_names", names.clone())
                .number("renal_below", p.renal_below)
                .number("min_age", f64::from(p.min_age));
            if let Some((value, measure)) = renal {
                finding = finding
                    .number("renal_function", value)
                    .text("renal_measure", measure);
            }
            if let Some(age) = facts.age {
                finding = finding.number("age", f64::from(age));
            }
            if !interacting.is_empty() {
                finding = finding.number("interacting_orders", interacting.len() as f64);
            }
            finding.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::testing::{Case, drug_order, egfr, lab, number, vcf_patient_aged};

    fn ibuprofen() -> crate::domain::MedicationOrder {
        drug_order(
            "MedicationRequest/ibu",
            "ibuprofen 400 mg oral tablet",
            Some("5640"),
        )
    }

    #[test]
    fn renal_cut_off_at_30() {
        for (gfr, expect) in [(29.0, Some("warning")), (30.0, None)] {
            let mut case = Case::new(vcf_patient_aged(70, 10)).medication(ibuprofen());
            case.patient_mut().labs.push(egfr(gfr));
            let f = case.expect_severity("VCF-NSAID-RENAL", expect);
            if let Some(f) = f {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/ibu"
                );
                assert_eq!(number(&f, "renal_function"), 29.0);
                assert_eq!(number(&f, "renal_below"), 30.0);
                assert!(f.detail.contains("eGFR 29 (below 30)"), "{}", f.detail);
                assert!(!f.detail.contains("age 70"), "{}", f.detail);
                assert!(f.suggestions.is_empty());
            }
        }
        // Creatinine clearance counts as well.
        let mut case = Case::new(vcf_patient_aged(70, 10)).medication(ibuprofen());
        case.patient_mut()
            .labs
            .push(lab("35591-7", 25.0, "mL/min", 3));
        let f = case
            .expect_severity("VCF-NSAID-RENAL", Some("warning"))
            .unwrap();
        assert!(f.detail.contains("CrCl 25"), "{}", f.detail);
    }

    #[test]
    fn age_75_and_above() {
        for (age, expect) in [(74, None), (75, Some("warning"))] {
            let mut case = Case::new(vcf_patient_aged(age, 10)).medication(ibuprofen());
            case.patient_mut().labs.push(egfr(80.0));
            let f = case.expect_severity("VCF-NSAID-RENAL", expect);
            if let Some(f) = f {
                assert_eq!(number(&f, "age"), 75.0);
                assert_eq!(number(&f, "min_age"), 75.0);
                assert!(f.detail.contains("age 75"), "{}", f.detail);
                assert!(!f.detail.contains("eGFR 80"), "{}", f.detail);
            }
        }
    }

    #[test]
    fn anticoagulant_ordered_or_active_and_all_reasons_listed() {
        let mut case = Case::new(vcf_patient_aged(60, 10))
            .medication(ibuprofen())
            .active_medication(drug_order(
                "MedicationRequest/apx",
                "apixaban 5 mg tablet",
                None,
            ));
        case.patient_mut().labs.push(egfr(90.0));
        let f = case
            .expect_severity("VCF-NSAID-RENAL", Some("warning"))
            .unwrap();
        assert_eq!(number(&f, "interacting_orders"), 1.0);
        assert!(f.detail.contains("apixaban"), "{}", f.detail);

        let mut all = Case::new(vcf_patient_aged(80, 10))
            .medication(ibuprofen())
            .medication(drug_order(
                "MedicationRequest/enox",
                "enoxaparin 40 mg/0.4 mL injection",
                None,
            ));
        all.patient_mut().labs.push(egfr(20.0));
        let f = all
            .expect_severity("VCF-NSAID-RENAL", Some("warning"))
            .unwrap();
        assert!(
            f.summary
                .starts_with("NSAID with eGFR 20, age 80, an anticoagulant:"),
            "{}",
            f.summary
        );
        for reason in ["eGFR 20", "age 80", "enoxaparin"] {
            assert!(f.detail.contains(reason), "{reason}: {}", f.detail);
        }
    }

    #[test]
    fn no_risk_no_card_and_unknown_renal_is_recorded() {
        let case = Case::new(vcf_patient_aged(60, 10)).medication(ibuprofen());
        case.expect_severity("VCF-NSAID-RENAL", None);
        let missing = case.evaluate().missing_inputs;
        assert!(missing.iter().any(
            |m| m.input == "renal_function" && m.rules.contains(&"VCF-NSAID-RENAL".to_owned())
        ));
    }
}
