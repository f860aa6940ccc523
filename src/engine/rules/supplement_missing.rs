//! `supplement_missing` (VCF-CALCIUM-MISSING, VCF-VITD-MISSING): after a fragility fracture,
//! the total calcium (elemental) or vitamin D (IU/day, weekly and monthly regimens as their
//! daily average) ordered + active is below the pathway's target. Nothing at all: the rule's
//! severity (warning); some but too little: the `below_target` variant (info) with the total.
//! Silent with hypercalcemia (serum calcium above `hypercalcemia_above_mg_dl` in the last
//! `calcium_lookback_days`), where adding calcium or vitamin D is the wrong reflex.

use super::dose_common::{medications, total};
use super::{RuleKind, params};
use crate::engine::dosing::DailyUnit;
use crate::engine::{Emitter, Etiology, Facts};
use crate::pathway::CompileContext;
use crate::terminology::{DrugClass, Terminology};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// `calcium` (mg elemental/day) or `vitamin_d` (IU/day).
    class: DrugClass,
    /// Target daily total, in the class's unit.
    min_daily: f64,
    hypercalcemia_above_mg_dl: f64,
    calcium_lookback_days: i64,
}

#[derive(Debug)]
struct SupplementMissing {
    class: DrugClass,
    unit: DailyUnit,
    min_daily: f64,
    hypercalcemia_above: f64,
    lookback_days: i64,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    let unit = match p.class {
        DrugClass::Calcium => DailyUnit::MilligramElemental,
        DrugClass::VitaminD => DailyUnit::InternationalUnit,
        _ => {
            ctx.error("class", "must be calcium or vitamin_d");
            return None;
        }
    };
    Some(Box::new(SupplementMissing {
        class: p.class,
        unit,
        min_daily: p.min_daily,
        hypercalcemia_above: p.hypercalcemia_above_mg_dl,
        lookback_days: p.calcium_lookback_days,
    }))
}

impl RuleKind for SupplementMissing {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let Some(fracture) = &facts.fracture else {
            return;
        };
        if fracture.etiology != Etiology::Fragility {
            return;
        }
        if facts.labs.calcium_mg_dl.is_some_and(|c| {
            c.within_days(facts.now, self.lookback_days) && c.value > self.hypercalcemia_above
        }) {
            return;
        }
        let t = Terminology::builtin();
        let meds = medications(facts);
        let sum = total(meds, t, self.unit, |i| i.classes.contains(&self.class));
        if sum.amount + 1e-9 >= self.min_daily {
            return;
        }
        let finding = out
            .finding()
            .number("target", self.min_daily)
            .text("unit", self.unit.per_day_symbol());
        if sum.orders == 0 {
            finding.emit();
        } else {
            finding
                .variant("below_target")
                .number("daily_amount", sum.amount)
                .text("explanation", sum.explanation(self.unit, t))
                .text("not_counted", sum.not_computed_note())
                .emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::{OrderStatus, PeriodUnit};
    use crate::engine::rules::testing::{
        Case, lab, med, med_per_day, vcf_patient, vcf_patient_aged,
    };

    fn calcium_mg_elemental(mg: f64) -> crate::domain::MedicationOrder {
        med_per_day(
            "MedicationRequest/ca",
            "calcium 500 mg elemental",
            mg,
            "mg",
            1,
        )
    }

    #[test]
    fn calcium_at_999_and_1000() {
        Case::new(vcf_patient()).expect_severity("VCF-CALCIUM-MISSING", Some("warning"));
        let f = Case::new(vcf_patient())
            .medication(calcium_mg_elemental(999.0))
            .expect_severity("VCF-CALCIUM-MISSING", Some("info"))
            .unwrap();
        assert_eq!(f.numbers["daily_amount"], 999);
        assert_eq!(f.numbers["target"], 1000);
        assert!(f.order_ref.is_none());
        Case::new(vcf_patient())
            .medication(calcium_mg_elemental(1000.0))
            .expect_severity("VCF-CALCIUM-MISSING", None);
        // Carbonate salt weight counts at 40%: 1250 mg BID = 1000 elemental, from the home list.
        let mut home = med_per_day(
            "MedicationRequest/home",
            "calcium carbonate 1250 MG Oral Tablet",
            1.0,
            "tablet",
            2,
        );
        home.status = OrderStatus::Active;
        Case::new(vcf_patient())
            .active_medication(home)
            .expect_severity("VCF-CALCIUM-MISSING", None);
    }

    #[test]
    fn vitamin_d_at_799_and_800() {
        let d = |iu: f64| med_per_day("MedicationRequest/d", "cholecalciferol", iu, "[iU]", 1);
        let f = Case::new(vcf_patient())
            .medication(d(799.0))
            .expect_severity("VCF-VITD-MISSING", Some("info"))
            .unwrap();
        assert_eq!(f.numbers["daily_amount"], 799);
        assert_eq!(f.numbers["target"], 800);
        assert!(f.order_ref.is_none());
        assert!(f.detail().contains("800 IU/day"), "{}", f.detail());
        Case::new(vcf_patient())
            .medication(d(800.0))
            .expect_severity("VCF-VITD-MISSING", None);
        // 50,000 IU monthly = 1643 IU/day.
        Case::new(vcf_patient())
            .medication(med(
                "MedicationRequest/d",
                "cholecalciferol 50000 UNT Oral Capsule",
                1.0,
                "capsule",
                1.0,
                PeriodUnit::Month,
            ))
            .expect_severity("VCF-VITD-MISSING", None);
        let f = Case::new(vcf_patient())
            .expect_severity("VCF-VITD-MISSING", Some("warning"))
            .unwrap();
        assert!(!f.suggestions.is_empty());
    }

    #[test]
    fn silenced_by_hypercalcemia_and_not_for_traumatic_fractures() {
        let mut case = Case::new(vcf_patient());
        case.patient_mut()
            .labs
            .push(lab("17861-6", 10.6, "mg/dL", 10));
        case.expect_severity("VCF-CALCIUM-MISSING", None);
        case.expect_severity("VCF-VITD-MISSING", None);
        let mut case = Case::new(vcf_patient());
        case.patient_mut()
            .labs
            .push(lab("17861-6", 10.5, "mg/dL", 10));
        case.expect_severity("VCF-CALCIUM-MISSING", Some("warning"));
        let mut case = Case::new(vcf_patient());
        case.patient_mut()
            .labs
            .push(lab("17861-6", 11.0, "mg/dL", 31));
        case.expect_severity("VCF-CALCIUM-MISSING", Some("warning"));
        // A 30-year-old with an S-coded fracture: traumatic.
        let mut young = vcf_patient_aged(30, 5);
        young.diagnoses[0].code =
            crate::domain::Concept::coded(crate::domain::codes::system::ICD10CM, "S32.010A", None);
        Case::new(young).expect_severity("VCF-CALCIUM-MISSING", None);
    }
}
