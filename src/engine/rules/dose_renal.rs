//! `dose_renal` (DOSE-RENAL): a bisphosphonate or denosumab ordered below its renal cut-off
//! (terminology: alendronate and zoledronic acid CrCl < 35, risedronate and ibandronate < 30,
//! denosumab eGFR < 30). Bisphosphonate labels are written in creatinine clearance, so a CrCl
//! result is preferred when one is known and eGFR used otherwise; the card says which.
//! Bisphosphonates use the rule's severity (critical); denosumab, which is not renally
//! cleared but causes severe hypocalcemia, uses the `denosumab` message variant (warning).

use super::dose_common::medications;
use super::{RuleKind, params};
use crate::engine::facts::LabValue;
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::{DrugClass, RenalMeasure, Terminology};
use serde::Deserialize;

/// The parameters of DOSE-RENAL and DOSE-RENAL-UNKNOWN.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RenalParams {
    /// Drug classes checked (bisphosphonate, denosumab).
    pub classes: Vec<DrugClass>,
    /// Lab results older than this many days are not used.
    pub lookback_days: i64,
}

#[derive(Debug)]
struct DoseRenal(RenalParams);

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    Some(Box::new(DoseRenal(params(value, ctx)?)))
}

/// The renal function result to judge a drug by: the measure its label uses when a recent
/// one is known, else the other one.
pub(super) fn renal_function(
    facts: &Facts<'_>,
    preferred: RenalMeasure,
    lookback_days: i64,
) -> Option<(RenalMeasure, LabValue)> {
    let recent = |v: Option<LabValue>| v.filter(|v| v.within_days(facts.now, lookback_days));
    let crcl = recent(facts.labs.crcl).map(|v| (RenalMeasure::CreatinineClearance, v));
    let egfr = recent(facts.labs.egfr).map(|v| (RenalMeasure::Egfr, v));
    match preferred {
        RenalMeasure::CreatinineClearance => crcl.or(egfr),
        RenalMeasure::Egfr => egfr.or(crcl),
    }
}

pub(super) fn measure_name(measure: RenalMeasure) -> &'static str {
    match measure {
        RenalMeasure::CreatinineClearance => "creatinine clearance",
        RenalMeasure::Egfr => "eGFR",
    }
}

impl RuleKind for DoseRenal {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let t = Terminology::builtin();
        for m in medications(facts).iter().filter(|m| m.drafted) {
            let Some(drug) = &m.drug else { continue };
            if !self.0.classes.iter().any(|c| drug.has_class(t, *c)) {
                continue;
            }
            for c in &drug.components {
                let ingredient = t.ingredient(c.ingredient);
                let Some(cutoff) = ingredient.renal_cutoff else {
                    continue;
                };
                if !self
                    .0
                    .classes
                    .iter()
                    .any(|k| ingredient.classes.contains(k))
                {
                    continue;
                }
                let Some((measure, lab)) =
                    renal_function(facts, cutoff.measure, self.0.lookback_days)
                else {
                    // DOSE-RENAL-UNKNOWN speaks for this case.
                    out.missing("renal_function");
                    continue;
                };
                if lab.value >= cutoff.below {
                    continue;
                }
                let finding = out
                    .finding()
                    .order(&m.order.reference)
                    .text("ingredient", ingredient.name.as_str())
                    .text("measure", measure_name(measure))
                    .number("renal_value", lab.value)
                    .number("cutoff", cutoff.below)
                    .text("label_measure", measure_name(cutoff.measure));
                if ingredient.classes.contains(&DrugClass::Denosumab) {
                    finding.variant("denosumab").emit();
                } else {
                    finding.emit();
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::PeriodUnit;
    use crate::engine::rules::testing::{Case, lab, med, patient_aged};

    fn alendronate() -> crate::domain::MedicationOrder {
        med(
            "MedicationRequest/aln",
            "alendronate 70 MG Oral Tablet",
            1.0,
            "tablet",
            1.0,
            PeriodUnit::Week,
        )
    }

    #[test]
    fn alendronate_at_egfr_34_and_35() {
        for (egfr, expect) in [(34.0, Some("critical")), (35.0, None)] {
            let mut case = Case::new(patient_aged(70)).medication(alendronate());
            case.patient_mut()
                .labs
                .push(lab("33914-3", egfr, "mL/min/{1.73_m2}", 10));
            if let Some(f) = case.expect_severity("DOSE-RENAL", expect) {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/aln"
                );
                assert_eq!(f.numbers["renal_value"], 34);
                assert_eq!(f.numbers["cutoff"], 35);
                assert!(f.detail().contains("eGFR"), "{}", f.detail());
            }
            case.expect_severity("DOSE-RENAL-UNKNOWN", None);
        }
    }

    #[test]
    fn creatinine_clearance_is_preferred_over_egfr() {
        // eGFR 40 would pass; CrCl 32 is below alendronate's 35.
        let mut case = Case::new(patient_aged(80)).medication(alendronate());
        case.patient_mut()
            .labs
            .push(lab("33914-3", 40.0, "mL/min/{1.73_m2}", 5));
        case.patient_mut()
            .labs
            .push(lab("2164-2", 32.0, "mL/min", 20));
        let f = case
            .expect_severity("DOSE-RENAL", Some("critical"))
            .unwrap();
        assert_eq!(f.numbers["renal_value"], 32);
        assert!(
            f.detail().contains("creatinine clearance"),
            "{}",
            f.detail()
        );
        // And the other way round: CrCl 40 passes even though eGFR 30 would not.
        let mut case = Case::new(patient_aged(80)).medication(alendronate());
        case.patient_mut()
            .labs
            .push(lab("33914-3", 30.0, "mL/min/{1.73_m2}", 5));
        case.patient_mut()
            .labs
            .push(lab("2164-2", 40.0, "mL/min", 20));
        case.expect_severity("DOSE-RENAL", None);
    }

    #[test]
    fn denosumab_below_thirty_is_a_warning() {
        let mut case = Case::new(patient_aged(80)).medication(med(
            "MedicationRequest/dmab",
            "denosumab 60 mg",
            60.0,
            "mg",
            6.0,
            PeriodUnit::Month,
        ));
        case.patient_mut()
            .labs
            .push(lab("33914-3", 25.0, "mL/min/{1.73_m2}", 5));
        let f = case.expect_severity("DOSE-RENAL", Some("warning")).unwrap();
        assert_eq!(f.numbers["cutoff"], 30);
    }

    #[test]
    fn no_recent_renal_function_is_an_info() {
        let mut case = Case::new(patient_aged(80)).medication(alendronate());
        case.expect_severity("DOSE-RENAL-UNKNOWN", Some("info"));
        case.patient_mut()
            .labs
            .push(lab("33914-3", 20.0, "mL/min/{1.73_m2}", 91));
        case.expect_severity("DOSE-RENAL-UNKNOWN", Some("info"));
        case.expect_severity("DOSE-RENAL", None);
        case.patient_mut()
            .labs
            .push(lab("33914-3", 60.0, "mL/min/{1.73_m2}", 90));
        case.expect_severity("DOSE-RENAL-UNKNOWN", None);
        assert!(
            case.evaluate()
                .missing_inputs
                .iter()
                .all(|m| m.input != "renal_function")
        );
    }
}
