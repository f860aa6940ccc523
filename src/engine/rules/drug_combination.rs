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

/// The card labels of the medications of `class`, comma-separated, a label repeated by the
/// next medication written once (as collecting, `dedup` and `join` did, into one string).
fn names(meds: &[Med<'_>], class: DrugClass) -> String {
    joined_card_labels(meds, |m| m.has_class(class))
}

#[cfg(test)]
fn names_by_collecting(meds: &[Med<'_>], class: DrugClass) -> String {
    use super::dose_common::DoseView;
    let mut labels: Vec<String> = meds
        .iter()
        .filter(|m| m.has_class(class))
        .map(|m| m.card_label())
        .collect();
    labels.dedup();
    labels.join(", ")
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

    proptest::proptest! {
        /// Writing the labels into one string names the drugs exactly as collecting them,
        /// `dedup` and `join` did: repeated, interleaved, drafted and active medications.
        #[test]
        fn names_are_written_as_collected(
            picks in proptest::collection::vec((0usize..5, proptest::bool::ANY), 0..8)
        ) {
            use crate::engine::Facts;
            use crate::terminology::DrugClass;
            let texts = [
                "oxycodone 5 MG Oral Tablet",
                "oxycodone 5 MG Oral Tablet",
                "lorazepam 1 MG Oral Tablet",
                "gabapentin 300 MG Oral Capsule",
                "morphine sulfate 15 MG Oral Tablet",
            ];
            let mut case = Case::new(patient_aged(60));
            for (n, (pick, active)) in picks.iter().enumerate() {
                let order = med_per_day(&format!("MedicationRequest/m{n}"), texts[*pick], 1.0, "mg", 2);
                case = if *active { case.active_medication(order) } else { case.medication(order) };
            }
            let plan = crate::pathway::Plan::builtin();
            let facts = Facts::gather(&plan, case.input());
            let meds = super::medications(&facts);
            // The pool's drugs are recognized, so the comparison is not of two empty strings.
            let opioids = picks.iter().filter(|(pick, _)| [0, 1, 4].contains(pick)).count();
            proptest::prop_assert_eq!(opioids == 0, super::names(meds, DrugClass::Opioid).is_empty());
            for class in [DrugClass::Opioid, DrugClass::Benzodiazepine, DrugClass::Gabapentinoid] {
                proptest::prop_assert_eq!(
                    super::names(meds, class),
                    super::names_by_collecting(meds, class)
                );
            }
        }
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
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/oxy"
        );
        assert!(f.detail().contains("lorazepam"), "{}", f.detail());
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
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/gaba"
        );
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
