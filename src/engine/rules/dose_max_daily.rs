//! `dose_max_daily` (DOSE-MAX-DAILY): the daily amount of an ingredient over every current
//! order (drafts + active, as-needed at its maximum, each part of a combination counted)
//! above the terminology's daily maximum, or its lower maximum at an older age or with hepatic
//! disease (acetaminophen 3 g). Critical above `critical_ratio` × the maximum.
//!
//! Not for an order that breaks its label regimen (DOSE-REGIMEN says it better: alendronate
//! 70 mg daily is a wrong frequency, not a high dose), and not for the classes the pathway
//! leaves to DOSE-SUPPLEMENT-UL (calcium, vitamin D).

use super::dose_common::{anchor, incomplete_draft, medications, total};
use super::dose_regimen::{default_tolerance, regimen_violation};
use super::{RuleKind, params};
use crate::decision::Severity;
use crate::domain::ClinicalFlag;
use crate::domain::units::push_number;
use crate::engine::dosing::{DailyUnit, limit_in};
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::{DrugClass, IngredientId, LimitUnit, Terminology};
use serde::Deserialize;
use smallvec::SmallVec;
use std::borrow::Cow;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Age from which the lower maximum applies (acetaminophen 3 g at >= 65).
    elderly_age: u32,
    /// Above this multiple of the maximum the finding is critical.
    critical_ratio: f64,
    /// Classes checked by other rules (calcium, vitamin D: DOSE-SUPPLEMENT-UL).
    #[serde(default)]
    exclude_classes: Vec<DrugClass>,
    /// Same meaning as DOSE-REGIMEN's `interval_tolerance`, to skip the orders it reports.
    #[serde(default = "default_tolerance")]
    regimen_interval_tolerance: f64,
}

#[derive(Debug)]
struct DoseMaxDaily {
    elderly_age: u32,
    critical_ratio: f64,
    exclude: Vec<DrugClass>,
    regimen_tolerance: f64,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    if p.critical_ratio < 1.0 {
        ctx.error("critical_ratio", "must be at least 1");
        return None;
    }
    Some(Box::new(DoseMaxDaily {
        elderly_age: p.elderly_age,
        critical_ratio: p.critical_ratio,
        exclude: p.exclude_classes,
        regimen_tolerance: p.regimen_interval_tolerance,
    }))
}

fn daily_unit(unit: LimitUnit) -> DailyUnit {
    match unit {
        LimitUnit::Milligram | LimitUnit::Microgram => DailyUnit::Milligram,
        LimitUnit::InternationalUnit => DailyUnit::InternationalUnit,
        LimitUnit::MilligramElemental => DailyUnit::MilligramElemental,
    }
}

impl RuleKind for DoseMaxDaily {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let t = Terminology::builtin();
        let meds = medications(facts);
        // Ingredients of the draft orders this rule may speak about, once each in id order
        // (as the `BTreeSet` they were kept in gave them): a few, kept inline.
        let mut concerned: SmallVec<[IngredientId; 8]> = SmallVec::new();
        for m in meds.iter().filter(|m| m.drafted) {
            let Some(drug) = &m.drug else { continue };
            if incomplete_draft(facts, m.order)
                || regimen_violation(m, t, self.regimen_tolerance).is_some()
            {
                continue;
            }
            for c in &drug.components {
                let ingredient = t.ingredient(c.ingredient);
                if ingredient.max_daily.is_some()
                    && !self.exclude.iter().any(|x| ingredient.classes.contains(x))
                {
                    concerned.push(c.ingredient);
                }
            }
        }
        concerned.sort_unstable();
        concerned.dedup();
        let hepatic = facts.has_flag(ClinicalFlag::HepaticDisease);
        for id in concerned {
            let ingredient = t.ingredient(id);
            let Some(standard) = ingredient.max_daily else {
                continue;
            };
            let elderly = facts.age.map(|a| a >= self.elderly_age);
            let (limit, reason): (_, Cow<'static, str>) =
                match ingredient.max_daily_elderly_or_hepatic {
                    Some(lower) if hepatic => (lower, " (hepatic disease)".into()),
                    Some(lower) if elderly == Some(true) => {
                        let mut reason = String::with_capacity(24);
                        reason.push_str(" (age ≥ ");
                        push_number(&mut reason, f64::from(self.elderly_age));
                        reason.push(')');
                        (lower, reason.into())
                    }
                    Some(_) if elderly.is_none() => {
                        out.missing("birth_date");
                        (standard, "".into())
                    }
                    _ => (standard, "".into()),
                };
            let unit = daily_unit(limit.unit);
            let Some(limit_amount) = limit_in(limit.amount, limit.unit, unit) else {
                continue;
            };
            let sum = total(meds, t, unit, |i| i.id == id);
            if sum.amount <= limit_amount + 1e-9 {
                continue;
            }
            let Some(order) = anchor(facts, meds, |m| {
                m.drug.as_ref().is_some_and(|d| {
                    d.components.iter().any(|c| c.ingredient == id)
                        && regimen_violation(m, t, self.regimen_tolerance).is_none()
                })
            }) else {
                continue;
            };
            let mut finding = out
                .finding()
                .order(order)
                .text("ingredient", ingredient.name.as_str())
                .number("daily_amount", sum.amount)
                .number("limit", limit_amount)
                .text("unit", unit.per_day_symbol())
                .text("limit_reason", reason)
                .text("explanation", sum.explanation(unit, t))
                .text("not_counted", sum.not_computed_note());
            if sum.amount > self.critical_ratio * limit_amount + 1e-9 {
                finding = finding.severity(Severity::Critical);
            }
            finding.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::codes::system;
    use crate::domain::{ClinicalFlag, Concept, Diagnosis, PeriodUnit};
    use crate::engine::rules::testing::{Case, med, med_per_day, patient_aged};

    #[test]
    fn acetaminophen_three_grams_from_sixty_five() {
        // 3001 mg/day: above 3000 at 65, within 4000 at 64; 3000 mg/day never fires.
        for (age, per_day_mg, expect) in [
            (64, 3000.0, None),
            (64, 3001.0, None),
            (65, 3000.0, None),
            (65, 3001.0, Some("warning")),
            (64, 4001.0, Some("warning")),
            (65, 4501.0, Some("critical")),
            (64, 6001.0, Some("critical")),
        ] {
            let case = Case::new(patient_aged(age)).medication(med_per_day(
                "MedicationRequest/apap",
                "acetaminophen",
                per_day_mg,
                "mg",
                1,
            ));
            if let Some(f) = case.expect_severity("DOSE-MAX-DAILY", expect) {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/apap"
                );
                assert_eq!(
                    f.numbers["daily_amount"],
                    serde_json::json!(per_day_mg as i64)
                );
                let limit = if age >= 65 { 3000 } else { 4000 };
                assert_eq!(f.numbers["limit"], limit);
                assert!(
                    f.detail().contains(&format!("max {limit} mg/day")),
                    "{}",
                    f.detail()
                );
            }
        }
    }

    #[test]
    fn hepatic_disease_lowers_the_maximum_at_any_age() {
        let mut case = Case::new(patient_aged(40)).medication(med_per_day(
            "MedicationRequest/apap",
            "acetaminophen 500 mg tablet",
            1000.0,
            "mg",
            4,
        ));
        case.expect_severity("DOSE-MAX-DAILY", None);
        case.patient_mut()
            .flags
            .insert(ClinicalFlag::HepaticDisease);
        let f = case
            .expect_severity("DOSE-MAX-DAILY", Some("warning"))
            .unwrap();
        assert!(f.detail().contains("hepatic disease"), "{}", f.detail());
        // A coded cirrhosis diagnosis does the same.
        let mut case = Case::new(patient_aged(40)).medication(med_per_day(
            "MedicationRequest/apap",
            "acetaminophen 500 mg tablet",
            1000.0,
            "mg",
            4,
        ));
        case.patient_mut()
            .diagnoses
            .push(Diagnosis::new(Concept::coded(
                system::ICD10CM,
                "K74.60",
                Some("Cirrhosis of liver"),
            )));
        case.expect_severity("DOSE-MAX-DAILY", Some("warning"));
    }

    #[test]
    fn combination_and_active_acetaminophen_add_up() {
        // Percocet 2 tabs q4h (3900 mg APAP) alone is below 4000 at 50; with 500 mg active
        // acetaminophen it is 4400.
        let mut percocet = med(
            "MedicationRequest/percocet",
            "acetaminophen 325 MG / oxycodone 5 MG Oral Tablet",
            2.0,
            "tablet",
            4.0,
            PeriodUnit::Hour,
        );
        percocet.as_needed = true;
        let case = Case::new(patient_aged(50)).medication(percocet.clone());
        case.expect_severity("DOSE-MAX-DAILY", None);
        let mut home = med_per_day("MedicationRequest/home", "Tylenol 500 mg", 500.0, "mg", 1);
        home.status = crate::domain::OrderStatus::Active;
        let f = Case::new(patient_aged(50))
            .medication(percocet)
            .active_medication(home.clone())
            .expect_severity("DOSE-MAX-DAILY", Some("warning"))
            .unwrap();
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/percocet"
        );
        assert_eq!(f.numbers["daily_amount"], 4400);
        assert!(
            f.detail().contains("2 tablets × 325 mg × 6/day"),
            "{}",
            f.detail()
        );
        assert!(f.detail().contains("(active)"), "{}", f.detail());
        // The home list alone raises nothing.
        let mut high_home = home;
        high_home.dose = crate::engine::rules::testing::mg_dose(5000.0);
        Case::new(patient_aged(50))
            .active_medication(high_home)
            .expect_severity("DOSE-MAX-DAILY", None);
    }

    #[test]
    fn prn_counted_at_frequency_max() {
        // Ibuprofen 400-800 mg, 1-2 times every 6 h as needed: 800 mg x 8/day = 6400 > 4800.
        let mut o = med_per_day("MedicationRequest/ibu", "ibuprofen", 800.0, "mg", 4);
        o.as_needed = true;
        o.frequency = crate::domain::Field::Given(
            crate::domain::Frequency::new(1, Some(2), 6.0, None, PeriodUnit::Hour).unwrap(),
        );
        let f = Case::new(patient_aged(50))
            .medication(o)
            .expect_severity("DOSE-MAX-DAILY", Some("critical"))
            .unwrap();
        assert_eq!(f.numbers["daily_amount"], 6400);
        assert_eq!(f.numbers["limit"], 3200);
        assert!(
            f.detail().contains("as needed, counted at its maximum"),
            "{}",
            f.detail()
        );
    }

    #[test]
    fn not_for_a_regimen_error_nor_for_supplements() {
        let case = Case::new(patient_aged(70)).medication(med(
            "MedicationRequest/aln",
            "alendronate 70 MG Oral Tablet",
            70.0,
            "mg",
            1.0,
            PeriodUnit::Day,
        ));
        case.expect_severity("DOSE-REGIMEN", Some("critical"));
        case.expect_severity("DOSE-MAX-DAILY", None);
        Case::new(patient_aged(70))
            .medication(med_per_day(
                "MedicationRequest/ca",
                "calcium carbonate",
                3000.0,
                "mg",
                4,
            ))
            .expect_severity("DOSE-MAX-DAILY", None);
    }
}
