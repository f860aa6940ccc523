//! `supplement_upper_limit` (DOSE-SUPPLEMENT-UL): elemental calcium above the tolerable upper
//! intake (2000 mg/day from age 51, 2500 below) or vitamin D above 4000 IU/day as a daily
//! average (50,000 IU weekly = 7143 IU/day), over drafts + active, when a draft order contains
//! calcium or vitamin D. A vitamin D repletion course (every draft vitamin D order lasting at
//! most `repletion_max_days`) in a patient whose 25-OH vitamin D was below
//! `repletion_below_ng_ml` in the last `lab_lookback_days` is expected to exceed the limit for
//! a while: the `repletion` variant (info) says so instead of warning.

use super::dose_common::{Med, anchor, medications, total};
use super::{RuleKind, params};
use crate::domain::Field;
use crate::engine::dosing::DailyUnit;
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::{DrugClass, Terminology};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Elemental calcium, mg/day, from `calcium_older_from_age`.
    calcium_max_mg_older: f64,
    /// Elemental calcium, mg/day, below that age.
    calcium_max_mg_younger: f64,
    calcium_older_from_age: u32,
    vitamin_d_max_iu: f64,
    repletion_max_days: f64,
    repletion_below_ng_ml: f64,
    lab_lookback_days: i64,
}

#[derive(Debug)]
struct SupplementUpperLimit(Params);

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    Some(Box::new(SupplementUpperLimit(p)))
}

impl SupplementUpperLimit {
    fn is_repletion(&self, facts: &Facts<'_>, meds: &[Med<'_>]) -> bool {
        let low_level = facts.labs.vitamin_d_ng_ml.is_some_and(|v| {
            v.within_days(facts.now, self.0.lab_lookback_days)
                && v.value < self.0.repletion_below_ng_ml
        });
        let short_courses = meds
            .iter()
            .filter(|m| m.drafted && m.has_class(DrugClass::VitaminD))
            .all(|m| match &m.order.supply_duration {
                Field::Given(d) => d.days() <= self.0.repletion_max_days + 1e-9,
                _ => false,
            });
        low_level && short_courses
    }
}

impl RuleKind for SupplementUpperLimit {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let t = Terminology::builtin();
        let p = &self.0;
        let meds = medications(facts);

        if let Some(order) = anchor(facts, meds, |m| m.has_class(DrugClass::Calcium)) {
            let older = match facts.age {
                Some(age) => age >= p.calcium_older_from_age,
                // Unknown age: the lower limit, so that nothing above it passes unseen.
                None => {
                    out.missing("birth_date");
                    true
                }
            };
            let limit = if older {
                p.calcium_max_mg_older
            } else {
                p.calcium_max_mg_younger
            };
            let unit = DailyUnit::MilligramElemental;
            let sum = total(meds, t, unit, |i| i.classes.contains(&DrugClass::Calcium));
            if sum.amount > limit + 1e-9 {
                out.finding()
                    .order(order)
                    .text("supplement", "Elemental calcium")
                    .number("daily_amount", sum.amount)
                    .number("limit", limit)
                    .text("unit", "mg/day")
                    .text("explanation", sum.explanation(unit, t))
                    .text("not_counted", sum.not_computed_note())
                    .emit();
            }
        }

        if let Some(order) = anchor(facts, meds, |m| m.has_class(DrugClass::VitaminD)) {
            let unit = DailyUnit::InternationalUnit;
            let sum = total(meds, t, unit, |i| i.classes.contains(&DrugClass::VitaminD));
            if sum.amount > p.vitamin_d_max_iu + 1e-9 {
                let finding = out
                    .finding()
                    .order(order)
                    .text("supplement", "Vitamin D")
                    .number("daily_amount", sum.amount)
                    .number("limit", p.vitamin_d_max_iu)
                    .text("unit", unit.per_day_symbol())
                    .text("explanation", sum.explanation(unit, t))
                    .text("not_counted", sum.not_computed_note());
                if self.is_repletion(facts, meds) {
                    finding
                        .variant("repletion")
                        .number("repletion_max_weeks", p.repletion_max_days / 7.0)
                        .number("repletion_below_ng_ml", p.repletion_below_ng_ml)
                        .emit();
                } else {
                    finding.emit();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::{CalendarDuration, Field, PeriodUnit};
    use crate::engine::rules::testing::{Case, lab, med, med_per_day, patient_aged};

    #[test]
    fn calcium_limit_depends_on_age() {
        // 2 x 1250 mg carbonate tablets twice daily = 2000 mg elemental; 3 tablets = 3000.
        for (age, tablets, expect) in [
            (51, 2.0, None),
            (51, 2.5, Some("warning")),
            (50, 2.5, None),
            (50, 3.5, Some("warning")),
        ] {
            let case = Case::new(patient_aged(age)).medication(med_per_day(
                "MedicationRequest/ca",
                "calcium carbonate 1250 MG Oral Tablet",
                tablets,
                "tablet",
                2,
            ));
            if let Some(f) = case.expect_severity("DOSE-SUPPLEMENT-UL", expect) {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/ca"
                );
                assert_eq!(f.numbers["daily_amount"].as_f64(), Some(tablets * 1000.0));
                assert!(f.detail().contains("40% elemental"), "{}", f.detail());
            }
        }
    }

    fn weekly_50000() -> crate::domain::MedicationOrder {
        med(
            "MedicationRequest/vitd",
            "ergocalciferol 50000 UNT Oral Capsule",
            1.0,
            "capsule",
            1.0,
            PeriodUnit::Week,
        )
    }

    #[test]
    fn vitamin_d_daily_average_and_the_repletion_course() {
        Case::new(patient_aged(70))
            .medication(med_per_day(
                "MedicationRequest/d",
                "cholecalciferol",
                4000.0,
                "[iU]",
                1,
            ))
            .expect_severity("DOSE-SUPPLEMENT-UL", None);
        let f = Case::new(patient_aged(70))
            .medication(weekly_50000())
            .expect_severity("DOSE-SUPPLEMENT-UL", Some("warning"))
            .unwrap();
        assert_eq!(f.numbers["daily_amount"], 7142.8571);
        assert_eq!(f.numbers["limit"], 4000);
        // 8-week course with a low level 20 days ago: info.
        let mut course = weekly_50000();
        course.supply_duration =
            Field::Given(CalendarDuration::new(8.0, PeriodUnit::Week).unwrap());
        let mut case = Case::new(patient_aged(70)).medication(course.clone());
        case.patient_mut()
            .labs
            .push(lab("1989-3", 18.0, "ng/mL", 20));
        case.expect_severity("DOSE-SUPPLEMENT-UL", Some("info"));
        // A level of 30 is not low: warning again. So is a 13-week course.
        let mut case = Case::new(patient_aged(70)).medication(course);
        case.patient_mut()
            .labs
            .push(lab("1989-3", 30.0, "ng/mL", 20));
        case.expect_severity("DOSE-SUPPLEMENT-UL", Some("warning"));
        let mut long = weekly_50000();
        long.supply_duration = Field::Given(CalendarDuration::new(13.0, PeriodUnit::Week).unwrap());
        let mut case = Case::new(patient_aged(70)).medication(long);
        case.patient_mut()
            .labs
            .push(lab("1989-3", 18.0, "ng/mL", 20));
        case.expect_severity("DOSE-SUPPLEMENT-UL", Some("warning"));
    }
}
