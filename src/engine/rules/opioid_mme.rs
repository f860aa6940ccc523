//! `opioid_mme` (DOSE-MME-50, DOSE-MME-90): total morphine milligram equivalents per day of
//! every current opioid (drafts + active) with the CDC 2022 factors, read at the order's
//! ceiling (maximum frequency, high end of a range, as-needed included); fentanyl patches as
//! patches × mcg/h × 2.4 whatever the change interval; buprenorphine not counted. A band
//! `[min_mme, below_mme)` per rule, so that at 90 MME only DOSE-MME-90 fires.
//!
//! Opioids without a 2022 factor (meperidine, fentanyl other than patches) have an unknown
//! MME, not zero: the card names them, and the decision records the missing factor.

use super::dose_common::{DoseView, Med, anchor, joined_card_labels, medications};
use super::{RuleKind, params};
use crate::domain::units::push_number;
use crate::engine::dosing::{DailyAmount, DailyDose, Mme, mme, write_mme_explanation};
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::{DrugClass, Terminology};
use serde::Deserialize;
use smallvec::SmallVec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Fires at a total of at least this many MME/day...
    min_mme: f64,
    /// ...and below this, when given.
    #[serde(default)]
    below_mme: Option<f64>,
}

#[derive(Debug)]
struct OpioidMme {
    min: f64,
    below: Option<f64>,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    if p.below_mme.is_some_and(|b| b <= p.min_mme) {
        ctx.error("below_mme", "must be above min_mme");
        return None;
    }
    Some(Box::new(OpioidMme {
        min: p.min_mme,
        below: p.below_mme,
    }))
}

/// Total MME/day over all current opioids, with each term and the opioids left out (kept as
/// references, inline: written out only for a card, and both MME rules compute a total).
#[derive(Debug)]
pub(super) struct MmeTotal<'m, 'a> {
    pub mme_per_day: f64,
    /// (order, daily amount, factor, MME/day)
    terms: SmallVec<[(&'m Med<'a>, &'m DailyAmount, f64, f64); 4]>,
    /// Orders left out and why: "(no CDC 2022 factor)", "(dose not computable)".
    uncounted: SmallVec<[(&'m Med<'a>, &'static str); 2]>,
}

impl MmeTotal<'_, '_> {
    /// "oxycodone: ... = 90 MME/day + (active) morphine: ...; total 150 MME/day".
    fn explanation(&self, t: &Terminology) -> String {
        let mut out = String::with_capacity(128 * self.terms.len().max(1));
        for (i, (m, a, factor, mme)) in self.terms.iter().enumerate() {
            if i > 0 {
                out.push_str(" + ");
            }
            if !m.drafted {
                out.push_str("(active) ");
            }
            write_mme_explanation(&mut out, a, *factor, *mme, t);
        }
        if self.terms.len() > 1 {
            out.push_str("; total ");
            push_number(&mut out, self.mme_per_day);
            out.push_str(" MME/day");
        }
        out
    }

    /// " Not included, MME unknown: meperidine (no CDC 2022 factor)." or empty.
    fn uncounted_note(&self) -> String {
        if self.uncounted.is_empty() {
            return String::new();
        }
        let mut out = String::from(" Not included, MME unknown: ");
        for (i, (m, why)) in self.uncounted.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            m.push_card_label(&mut out);
            out.push(' ');
            out.push_str(why);
        }
        out.push('.');
        out
    }
}

pub(super) fn total_mme<'m, 'a>(meds: &'m [Med<'a>], t: &Terminology) -> MmeTotal<'m, 'a> {
    let mut total = MmeTotal {
        mme_per_day: 0.0,
        terms: SmallVec::new(),
        uncounted: SmallVec::new(),
    };
    for m in meds.iter().filter(|m| m.has_class(DrugClass::Opioid)) {
        for dose in m.doses(t) {
            let ingredient = t.ingredient(dose.ingredient());
            match dose {
                DailyDose::Amount(a) => match mme(a, t) {
                    Mme::Counted {
                        mme_per_day,
                        factor,
                    } => {
                        total.mme_per_day += mme_per_day;
                        total.terms.push((m, a, factor, mme_per_day));
                    }
                    Mme::Unknown => total.uncounted.push((m, "(no CDC 2022 factor)")),
                    Mme::NotCounted | Mme::NotAnOpioid => {}
                },
                DailyDose::Unreadable { .. } if ingredient.classes.contains(&DrugClass::Opioid) => {
                    total.uncounted.push((m, "(dose not computable)"));
                }
                DailyDose::Unreadable { .. } => {}
            }
        }
    }
    total
}

impl RuleKind for OpioidMme {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let t = Terminology::builtin();
        let meds = medications(facts);
        let Some(order) = anchor(facts, meds, |m| m.has_class(DrugClass::Opioid)) else {
            return;
        };
        let total = total_mme(meds, t);
        if !total.uncounted.is_empty() {
            out.missing("mme_factor");
        }
        let mme_per_day = total.mme_per_day;
        // Compare at the precision cards show (4 decimals), so 49.99999 from float noise in
        // a 49.9 + 0.1 sum does not decide a band.
        let rounded = (mme_per_day * 10_000.0).round() / 10_000.0;
        if rounded < self.min || self.below.is_some_and(|b| rounded >= b) {
            return;
        }
        let naloxone_on_hand = meds
            .iter()
            .any(|m| m.has_class(DrugClass::OpioidAntagonist));
        let uncounted = total.uncounted_note();
        let explanation = total.explanation(t);
        // The opioids counted, for the pharmacist queue (not in any message).
        let drugs = joined_card_labels(meds, |m| m.has_class(DrugClass::Opioid));
        let finding = out
            .finding()
            .order(order)
            .text("drug", drugs)
            .number("mme_per_day", mme_per_day)
            .number("threshold", self.min)
            .text("explanation", explanation)
            .text("uncounted", uncounted);
        if naloxone_on_hand {
            finding.variant("naloxone_on_hand").suggestions(&[]).emit();
        } else {
            finding.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::PeriodUnit;
    use crate::domain::codes::system;
    use crate::domain::{Concept, MedicationOrder};
    use crate::engine::rules::testing::{Case, dose, med, med_per_day, patient_aged};

    fn morphine(mg_per_day: f64) -> MedicationOrder {
        med_per_day("MedicationRequest/mor", "morphine", mg_per_day, "mg", 1)
    }

    #[test]
    fn bands_at_fifty_and_ninety() {
        for (mg, mme50, mme90) in [
            (49.9, None, None),
            (50.0, Some("warning"), None),
            (89.9, Some("warning"), None),
            (90.0, None, Some("critical")),
            (200.0, None, Some("critical")),
        ] {
            let case = Case::new(patient_aged(50)).medication(morphine(mg));
            for f in [
                case.expect_severity("DOSE-MME-50", mme50),
                case.expect_severity("DOSE-MME-90", mme90),
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/mor"
                );
                assert_eq!(f.numbers["mme_per_day"].as_f64(), Some(mg));
                assert!(f.detail().contains("× 1 ="), "{}", f.detail());
                // Naloxone 4 mg nasal spray is offered.
                let s = &f.suggestions[0];
                let resource = s.actions[0].resource.as_ref().unwrap().to_value();
                assert_eq!(resource["resourceType"], "MedicationRequest");
                assert!(
                    resource["medicationCodeableConcept"]["text"]
                        .as_str()
                        .unwrap()
                        .contains("naloxone")
                );
            }
        }
    }

    #[test]
    fn oxycodone_uses_one_and_a_half() {
        // 20 mg q6h = 80 mg/day x 1.5 = 120 MME; 8 mg x 4 = 32 mg x 1.5 = 48.
        let f = Case::new(patient_aged(50))
            .medication(med(
                "MedicationRequest/oxy",
                "oxycodone 20 mg",
                20.0,
                "mg",
                6.0,
                PeriodUnit::Hour,
            ))
            .expect_severity("DOSE-MME-90", Some("critical"))
            .unwrap();
        assert_eq!(f.numbers["mme_per_day"], 120);
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/oxy"
        );
        Case::new(patient_aged(50))
            .medication(med(
                "MedicationRequest/oxy",
                "oxycodone",
                8.0,
                "mg",
                6.0,
                PeriodUnit::Hour,
            ))
            .expect_severity("DOSE-MME-50", None);
    }

    #[test]
    fn fentanyl_75_patch_is_180_mme() {
        let mut patch = MedicationOrder::new(
            "MedicationRequest/fent",
            Concept::coded(system::RXNORM, "197696", None),
        );
        patch.dose = dose(1.0, "patch");
        patch.frequency = crate::domain::Field::Given(
            crate::domain::Frequency::once_every(72.0, PeriodUnit::Hour).unwrap(),
        );
        let f = Case::new(patient_aged(50))
            .medication(patch)
            .expect_severity("DOSE-MME-90", Some("critical"))
            .unwrap();
        assert_eq!(f.numbers["mme_per_day"], 180);
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/fent"
        );
        assert!(
            f.detail()
                .contains("1 patch × 75 mcg/h = 75 mcg/h × 2.4 = 180 MME/day"),
            "{}",
            f.detail()
        );
    }

    #[test]
    fn active_opioids_count_but_do_not_trigger() {
        let mut home = morphine(60.0);
        home.reference = crate::domain::OrderRef("MedicationRequest/home".into());
        home.status = crate::domain::OrderStatus::Active;
        // Home morphine 60 alone: no card.
        Case::new(patient_aged(50))
            .active_medication(home.clone())
            .expect_severity("DOSE-MME-50", None);
        // + oxycodone 5 mg q6h (30 MME) drafted: 90.
        let f = Case::new(patient_aged(50))
            .active_medication(home)
            .medication(med(
                "MedicationRequest/oxy",
                "oxycodone",
                5.0,
                "mg",
                6.0,
                PeriodUnit::Hour,
            ))
            .expect_severity("DOSE-MME-90", Some("critical"))
            .unwrap();
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/oxy"
        );
        assert_eq!(f.numbers["mme_per_day"], 90);
        assert!(f.detail().contains("(active)"), "{}", f.detail());
    }

    #[test]
    fn an_opioid_without_a_2022_factor_is_named_not_counted_as_zero() {
        let case = Case::new(patient_aged(50))
            .medication(morphine(60.0))
            .medication(med_per_day(
                "MedicationRequest/mep",
                "meperidine",
                50.0,
                "mg",
                4,
            ));
        let f = case
            .expect_severity("DOSE-MME-50", Some("warning"))
            .unwrap();
        assert_eq!(f.numbers["mme_per_day"], 60);
        assert!(
            f.detail().contains("MME unknown: meperidine"),
            "{}",
            f.detail()
        );
        assert!(
            case.evaluate()
                .missing_inputs
                .iter()
                .any(|m| m.input == "mme_factor")
        );
    }

    #[test]
    fn buprenorphine_is_not_counted_and_naloxone_on_hand_drops_the_suggestion() {
        Case::new(patient_aged(50))
            .medication(med_per_day(
                "MedicationRequest/bup",
                "buprenorphine",
                8.0,
                "mg",
                3,
            ))
            .expect_severity("DOSE-MME-50", None);
        let f = Case::new(patient_aged(50))
            .medication(morphine(60.0))
            .medication(med_per_day(
                "MedicationRequest/nal",
                "naloxone hydrochloride 4 MG/ACTUAT Nasal Spray",
                1.0,
                "spray",
                1,
            ))
            .expect_severity("DOSE-MME-50", Some("warning"))
            .unwrap();
        assert!(f.suggestions.is_empty());
    }
}

/// The CDC opioid CDS IG's own CDS Hooks requests for recommendation 4/5 (MME ≥ 50 or not),
/// run through this rule. Both use factors that did not change from 2016 to 2022 (fentanyl
/// patch 2.4 per mcg/h, morphine 1), so the IG's number applies as is.
#[cfg(test)]
mod conformance {
    use crate::engine::dosing::tests::{read_medication_request, shared_dir};
    use crate::engine::rules::testing::{Case, patient_aged};

    fn first_json(path: &std::path::Path) -> serde_json::Value {
        // Some IG files carry a stray trailing `}`: read the first JSON value only.
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::Deserializer::from_str(&text)
            .into_iter()
            .next()
            .unwrap()
            .unwrap()
    }

    #[test]
    fn rec_04_05_requests_agree_with_the_ig() {
        let dir = shared_dir().join("conformance/opioid-cds/cds-r4");
        for name in ["mme-greater-than-fifty", "mme-less-than-fifty"] {
            let request = first_json(&dir.join(format!(
                "requests/OpioidCDSREC04_05/request-example-rec-04-05-{name}.json"
            )));
            let response = first_json(&dir.join(format!(
                "responses/OpioidCDSREC04_05/response-example-rec-04-05-{name}.json"
            )));
            let mut case = Case::new(patient_aged(40));
            for entry in request["context"]["draftOrders"]["entry"]
                .as_array()
                .unwrap()
            {
                let mut order = read_medication_request(&entry["resource"]);
                order.status = crate::domain::OrderStatus::Draft;
                case = case.medication(order);
            }
            let findings: Vec<_> = ["DOSE-MME-50", "DOSE-MME-90"]
                .iter()
                .flat_map(|id| case.findings(id))
                .collect();
            // The order was read and checked, not skipped.
            case.expect_severity("DOSE-UNREADABLE", None);
            let cards = response["cards"].as_array().unwrap();
            assert_eq!(findings.len(), cards.len(), "{name}: {findings:#?}");
            if let Some(card) = cards.first() {
                // "Total morphine milligram equivalent (MME) is 179.99999820 'mg/d'."
                let detail = card["detail"].as_str().unwrap();
                let after = detail.split("(MME) is ").nth(1).unwrap();
                let ig_mme: f64 = after.split_whitespace().next().unwrap().parse().unwrap();
                let ours = findings[0].numbers["mme_per_day"].as_f64().unwrap();
                assert!((ours - ig_mme).abs() < 1e-3, "{name}: {ours} vs {ig_mme}");
            }
        }
    }
}
