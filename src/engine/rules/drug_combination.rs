//! `drug_combination` (DOSE-OPIOID-BENZO, DOSE-OPIOID-GABA): two drug classes together, ordered
//! or active, when the draft orders contain one of them. Opioids with benzodiazepines or
//! gabapentinoids add respiratory depression; the card names both drugs.

use super::dose_common::{Med, anchor, joined_card_labels, medications};
use super::{RuleKind, params};
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::DrugClass;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The two classes that must be present together.
    classes: [DrugClass; 2],
}

#[derive(Debug)]
struct DrugCombination {
    first: DrugClass,
    second: DrugClass,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    if p.classes[0] == p.classes[1] {
        ctx.error("classes", "name two different classes");
        return None;
    }
    Some(Box::new(DrugCombination {
        first: p.classes[0],
        second: p.classes[1],
    }))
}

fn names(meds: &[Med<'_>], class: DrugClass) -> String {
    joined_card_labels(meds, |m| m.has_class(class))
}

impl RuleKind for DrugCombination {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let meds = medications(facts);
        let present = |class| meds.iter().any(|m| m.has_class(class));
        if !present(self.first) || !present(self.second) {
            return;
        }
        let Some(order) = anchor(facts, meds, |m| {
            m.has_class(self.first) || m.has_class(self.second)
        }) else {
            return;
        };
        out.finding()
            .order(order)
            .text("first", names(meds, self.first))
            .text("second", names(meds, self.second))
            .emit();
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::{OrderStatus, PeriodUnit};
    use crate::engine::rules::testing::{Case, med, med_per_day, patient_aged};

    fn oxycodone() -> crate::domain::MedicationOrder {
        med(
            "MedicationRequest/oxy",
            "oxycodone 5 mg",
            5.0,
            "mg",
            6.0,
            PeriodUnit::Hour,
        )
    }

    #[test]
    fn opioid_with_benzodiazepine_is_critical_and_with_gabapentinoid_a_warning() {
        let mut lorazepam = med_per_day(
            "MedicationRequest/lzp",
            "lorazepam 1 MG Oral Tablet",
            1.0,
            "mg",
            2,
        );
        lorazepam.status = OrderStatus::Active;
        let f = Case::new(patient_aged(60))
            .medication(oxycodone())
            .active_medication(lorazepam.clone())
            .expect_severity("DOSE-OPIOID-BENZO", Some("critical"))
            .unwrap();
        assert_eq!(f.order_ref.unwrap().as_str(), "MedicationRequest/oxy");
        assert!(f.detail.contains("lorazepam"), "{}", f.detail);
        let gaba = med_per_day(
            "MedicationRequest/gaba",
            "gabapentin 300 MG Oral Capsule",
            300.0,
            "mg",
            3,
        );
        let f = Case::new(patient_aged(60))
            .active_medication(oxycodone())
            .medication(gaba)
            .expect_severity("DOSE-OPIOID-GABA", Some("warning"))
            .unwrap();
        assert_eq!(f.order_ref.unwrap().as_str(), "MedicationRequest/gaba");
        // Both on the home list only: no card.
        Case::new(patient_aged(60))
            .active_medication(oxycodone())
            .active_medication(lorazepam)
            .expect_severity("DOSE-OPIOID-BENZO", None);
        Case::new(patient_aged(60))
            .medication(oxycodone())
            .expect_severity("DOSE-OPIOID-BENZO", None);
    }
}
