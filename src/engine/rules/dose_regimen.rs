//! `dose_regimen` (DOSE-REGIMEN): a drug whose label regimen is weekly, monthly, yearly or
//! every 6 months ordered more often (alendronate 70 mg daily). The label steps come from the
//! terminology: a dose of at least `min_dose_mg` may not be repeated sooner than every
//! `min_interval_days`. Daily dosing of a weekly bisphosphonate causes esophageal injury and
//! hypocalcemia; a twice-yearly antibody given monthly is an overdose.

use super::dose_common::{incomplete_draft, medications};
use super::{RuleKind, params};
use crate::domain::Field;
use crate::domain::units::push_number;
use crate::engine::dosing::{DailyDose, DailyUnit};
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::{IngredientId, RegimenStep, Terminology};
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// An interval this much shorter than the label's still counts as the label regimen
    /// (0.1: every 4 weeks is "monthly", every 26 weeks is "every 6 months").
    #[serde(default = "default_tolerance")]
    interval_tolerance: f64,
}

pub(super) fn default_tolerance() -> f64 {
    0.1
}

#[derive(Debug)]
struct DoseRegimen {
    tolerance: f64,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    if !(0.0..1.0).contains(&p.interval_tolerance) {
        ctx.error("interval_tolerance", "must be at least 0 and below 1");
        return None;
    }
    Some(Box::new(DoseRegimen {
        tolerance: p.interval_tolerance,
    }))
}

/// An order given more often than its label regimen allows: the terminology's step, borrowed
/// (copying it copied its label, an allocation per check).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RegimenViolation<'t> {
    pub ingredient: IngredientId,
    pub dose_mg: f64,
    pub interval_days: f64,
    pub step: &'t RegimenStep,
}

/// The label regimen this order breaks, if any: the step with the largest dose the order
/// reaches, and an interval shorter than that step's (less the tolerance).
pub(super) fn regimen_violation<'t>(
    med: &super::dose_common::Med<'_>,
    t: &'t Terminology,
    tolerance: f64,
) -> Option<RegimenViolation<'t>> {
    // Every order is asked, by two rules: one without a regimen ingredient is answered before
    // its frequency and daily doses are read (each dose is of one of its ingredients).
    if !med.has_label_regimen() {
        return None;
    }
    regimen_violation_reading_every_dose(med, t, tolerance)
}

/// [`regimen_violation`] reading every daily dose of the order, whatever its drug: its
/// reference (`violations_are_found_as_by_reading_every_dose`), and what it runs for an order
/// whose drug has a regimen ingredient.
fn regimen_violation_reading_every_dose<'t>(
    med: &super::dose_common::Med<'_>,
    t: &'t Terminology,
    tolerance: f64,
) -> Option<RegimenViolation<'t>> {
    let order = med.order;
    let Field::Given(frequency) = &order.frequency else {
        return None;
    };
    let per_day = frequency.max_per_day();
    med.daily_doses().iter().find_map(|dose| {
        let DailyDose::Amount(a) = dose else {
            return None;
        };
        let ingredient = t.ingredient(a.ingredient);
        if ingredient.regimen.is_empty() || a.unit != DailyUnit::Milligram {
            return None;
        }
        let dose_mg = a.amount / per_day;
        let step = ingredient
            .regimen
            .iter()
            .filter(|s| dose_mg + 1e-9 >= s.min_dose_mg)
            .max_by(|x, y| x.min_dose_mg.total_cmp(&y.min_dose_mg))?;
        let interval_days = frequency.min_interval_days();
        (interval_days < step.min_interval_days * (1.0 - tolerance)).then_some(RegimenViolation {
            ingredient: a.ingredient,
            dose_mg,
            interval_days,
            step,
        })
    })
}

impl RuleKind for DoseRegimen {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let t = Terminology::builtin();
        for med in medications(facts).iter().filter(|m| m.drafted) {
            let order = med.order;
            if med.drug.is_none() || incomplete_draft(facts, order) {
                continue;
            }
            if let Some(v) = regimen_violation(med, t, self.tolerance) {
                out.finding()
                    .order(&order.reference)
                    .text("ingredient", t.ingredient(v.ingredient).name.as_str())
                    .text("regimen", v.step.label.as_str())
                    .number("dose_mg", v.dose_mg)
                    .number("interval_days", v.interval_days)
                    .number("label_interval_days", v.step.min_interval_days)
                    .text("interval", describe_interval(v.interval_days))
                    .emit();
            }
        }
    }
}

/// "every day", "every 7 days", "every 12 hours": written with [`push_number`], not `format!`.
fn describe_interval(days: f64) -> Cow<'static, str> {
    let (value, unit) = if days < 1.0 {
        (days * 24.0, " hours")
    } else if (days - 1.0).abs() < 1e-9 {
        return "every day".into();
    } else {
        (days, " days")
    };
    let mut out = String::with_capacity(16);
    out.push_str("every ");
    push_number(&mut out, value);
    out.push_str(unit);
    out.into()
}

/// How [`describe_interval`] wrote before, by `format!`: the oracle of
/// `intervals_are_described_as_formatted`.
#[cfg(test)]
fn describe_interval_by_format(days: f64) -> String {
    use crate::domain::units::format_number;
    if days < 1.0 {
        format!("every {} hours", format_number(days * 24.0))
    } else if (days - 1.0).abs() < 1e-9 {
        "every day".to_owned()
    } else {
        format!("every {} days", format_number(days))
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::PeriodUnit;
    use crate::engine::rules::testing::{Case, med, patient_aged};

    proptest::proptest! {
        /// Pushing the number gives the text `format!` gave: hours below a day, "every day"
        /// at one day (and within float noise of it), days above; whole and fractional values.
        #[test]
        fn intervals_are_described_as_formatted(
            days in 0.0f64..800.0,
            weeks in 1u32..800,
            noise in -1e-9f64..1e-9,
        ) {
            for d in [days, f64::from(weeks) * 7.0, f64::from(weeks) / 7.0, 1.0 + noise, 0.5] {
                proptest::prop_assert_eq!(
                    super::describe_interval(d).into_owned(),
                    super::describe_interval_by_format(d)
                );
            }
        }
    }

    const DRUGS: [&str; 7] = [
        "alendronate 70 MG Oral Tablet",
        "risedronate 35 mg",
        "ibandronate 150 mg",
        "denosumab 60 mg",
        "ibuprofen 400 mg",
        "acetaminophen 325 MG / oxycodone 5 MG Oral Tablet",
        "no such drug",
    ];

    proptest::proptest! {
        /// Answering orders without a regimen ingredient first finds what reading every dose
        /// found: drugs with and without label regimens (and unrecognized), doses in mg and
        /// tablets, intervals from hours to months, any tolerance.
        #[test]
        fn violations_are_found_as_by_reading_every_dose(
            orders in proptest::collection::vec(
                (0usize..DRUGS.len(), 1.0f64..200.0, proptest::bool::ANY, 1.0f64..8.0, 0usize..4),
                1..5,
            ),
            tolerance in 0.0f64..0.9,
        ) {
            let units = [PeriodUnit::Hour, PeriodUnit::Day, PeriodUnit::Week, PeriodUnit::Month];
            let mut case = Case::new(patient_aged(70));
            for (i, (drug, dose, tablets, period, unit)) in orders.into_iter().enumerate() {
                let unit_text = if tablets { "tablet" } else { "mg" };
                case = case.medication(med(
                    &format!("MedicationRequest/{i}"),
                    DRUGS[drug],
                    dose,
                    unit_text,
                    period,
                    units[unit],
                ));
            }
            let plan = crate::pathway::Plan::builtin();
            let facts = crate::engine::Facts::gather(&plan, case.input());
            let t = crate::terminology::Terminology::builtin();
            for m in &facts.medications {
                proptest::prop_assert_eq!(
                    super::regimen_violation(m, t, tolerance),
                    super::regimen_violation_reading_every_dose(m, t, tolerance)
                );
            }
        }
    }

    #[test]
    fn weekly_alendronate_given_daily_is_critical() {
        let f = Case::new(patient_aged(70))
            .medication(med(
                "MedicationRequest/aln",
                "alendronate 70 MG Oral Tablet",
                70.0,
                "mg",
                1.0,
                PeriodUnit::Day,
            ))
            .expect_severity("DOSE-REGIMEN", Some("critical"))
            .unwrap();
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/aln"
        );
        assert_eq!(f.numbers["dose_mg"], 70);
        assert_eq!(f.numbers["interval_days"], 1);
        assert_eq!(f.numbers["label_interval_days"], 7);
    }

    #[test]
    fn label_regimens_and_the_tolerance() {
        for (text, dose, period, unit, expect) in [
            ("alendronate 70 mg", 70.0, 1.0, PeriodUnit::Week, None),
            ("alendronate 10 mg", 10.0, 1.0, PeriodUnit::Day, None),
            (
                "risedronate 35 mg",
                35.0,
                1.0,
                PeriodUnit::Day,
                Some("critical"),
            ),
            (
                "risedronate 150 mg",
                150.0,
                1.0,
                PeriodUnit::Week,
                Some("critical"),
            ),
            ("risedronate 150 mg", 150.0, 1.0, PeriodUnit::Month, None),
            (
                "ibandronate 150 mg",
                150.0,
                2.0,
                PeriodUnit::Week,
                Some("critical"),
            ),
            ("ibandronate 150 mg", 150.0, 4.0, PeriodUnit::Week, None),
            (
                "zoledronic acid 5 mg",
                5.0,
                6.0,
                PeriodUnit::Month,
                Some("critical"),
            ),
            ("zoledronic acid 5 mg", 5.0, 1.0, PeriodUnit::Year, None),
            (
                "denosumab 60 mg",
                60.0,
                3.0,
                PeriodUnit::Month,
                Some("critical"),
            ),
            ("denosumab 60 mg", 60.0, 26.0, PeriodUnit::Week, None),
            ("denosumab 60 mg", 60.0, 6.0, PeriodUnit::Month, None),
        ] {
            let case = Case::new(patient_aged(70)).medication(med(
                "MedicationRequest/x",
                text,
                dose,
                "mg",
                period,
                unit,
            ));
            case.expect_severity("DOSE-REGIMEN", expect);
        }
    }
}
