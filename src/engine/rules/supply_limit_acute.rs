//! `supply_limit_acute` (VCF-OPIOID-DURATION): a drug of a class (opioids) drafted for longer
//! than a limit while the fracture is acute. CDC 2022 asks for no more than the expected
//! duration of severe acute pain; after the acute window the rule has nothing to say. An unknown
//! fracture date counts as acute (the card says the date is unknown: variant `date_unknown`).
//!
//! Duration: the order's planned supply (expectedSupplyDuration, else the timing bounds, as the
//! adapter reads them), else the dispensed quantity divided by the doses per day. No duration at
//! all: silent (nothing to compare).

use super::{RuleKind, params};
use crate::domain::{Dose, DoseForm, DoseUnit, Field, MedicationOrder};
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::DrugClass;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    class: DrugClass,
    /// Longest acceptable supply in days.
    max_days: f64,
    /// The fracture counts as acute while fewer than this many whole days old.
    acute_days: i64,
}

#[derive(Debug)]
struct SupplyLimitAcute(Params);

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    if !(p.max_days.is_finite() && p.max_days > 0.0) {
        ctx.error("max_days", "must be a positive number of days");
        return None;
    }
    Some(Box::new(SupplyLimitAcute(p)))
}

/// How many days an order lasts, and how that was found.
fn supply_days(order: &MedicationOrder) -> Option<(f64, &'static str)> {
    if let Field::Given(d) = &order.supply_duration {
        return Some((d.days(), "planned_duration"));
    }
    quantity_days(order).map(|days| (days, "dispense_quantity"))
}

/// Days of supply from `dispenseRequest.quantity` ÷ doses per day, computed here only for doses
/// counted in units (tablets, capsules, patches) in the same unit as the quantity: turning
/// milligrams into tablets needs the product strength, which the dose arithmetic of
/// `engine::dosing` owns. The most frequent directed use is taken (a pharmacist's days' supply):
/// if even that outlasts the limit, the supply certainly does.
fn quantity_days(order: &MedicationOrder) -> Option<f64> {
    let quantity = order.dispense_quantity.given()?;
    let frequency = order.frequency.given()?;
    let per_dose = match order.dose.given()? {
        Dose::Fixed { amount } => *amount,
        Dose::Range { high, .. } => *high,
    };
    // "Each" / "dose" stands for the product's own unit, so it pairs with any counted form.
    let (dose_unit, quantity_unit) = (per_dose.unit(), quantity.unit());
    let each = DoseUnit::Count(DoseForm::Each);
    let same_count = dose_unit.is_count()
        && quantity_unit.is_count()
        && (dose_unit == quantity_unit || dose_unit == each || quantity_unit == each);
    if !same_count {
        return None;
    }
    let units_per_day = per_dose.value() * frequency.max_per_day();
    (units_per_day > 0.0).then(|| quantity.value() / units_per_day)
}

impl RuleKind for SupplyLimitAcute {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let Params {
            class,
            max_days,
            acute_days,
        } = self.0;
        let fracture_days = facts.fracture.as_ref().and_then(|f| f.age_days(facts.now));
        if fracture_days.is_some_and(|days| days >= acute_days) {
            return;
        }
        for medication in facts.drafted(class) {
            let Some((days, source)) = supply_days(medication.order) else {
                continue;
            };
            // Half a tablet's rounding must not fire the rule: compare to a hundredth of a day.
            if (days * 100.0).round() / 100.0 <= max_days {
                continue;
            }
            let mut finding = out
                .finding()
                .order(&medication.order.reference)
                .number("duration_days", days)
                .number("max_days", max_days)
                .number("acute_days", acute_days as f64)
                .text("drug", medication.label())
                .text(
                    "duration_source",
                    match source {
                        "planned_duration" => "planned supply",
                        _ => "dispensed quantity ÷ doses per day",
                    },
                );
            match fracture_days {
                Some(d) => finding = finding.number("fracture_days", d as f64),
                None => finding = finding.variant("date_unknown"),
            }
            finding.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::quantity_days;
    use crate::domain::{Amount, CalendarDuration, Dose, Field, Frequency, PeriodUnit};
    use crate::engine::rules::testing::{
        Case, drug_order, number, suggestion_ids, vcf_patient_aged, vcf_patient_date_unknown,
    };

    fn oxycodone(days: Option<f64>) -> crate::domain::MedicationOrder {
        let mut o = drug_order(
            "MedicationRequest/oxy",
            "oxycodone 5 mg oral tablet",
            Some("7804"),
        );
        o.supply_duration = match days {
            Some(d) => Field::Given(CalendarDuration::new(d, PeriodUnit::Day).unwrap()),
            None => Field::Absent,
        };
        o
    }

    #[test]
    fn seven_days_pass_eight_fire() {
        for (days, expect) in [
            (Some(7.0), None),
            (Some(8.0), Some("warning")),
            (None, None),
        ] {
            let f = Case::new(vcf_patient_aged(72, 10))
                .medication(oxycodone(days))
                .expect_severity("VCF-OPIOID-DURATION", expect);
            if let Some(f) = f {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/oxy"
                );
                assert_eq!(number(&f, "duration_days"), 8.0);
                assert_eq!(number(&f, "max_days"), 7.0);
                assert_eq!(number(&f, "fracture_days"), 10.0);
                assert_eq!(suggestion_ids(&f), ["shorten"]);
                let patch = f.suggestions[0].actions[0]
                    .resource
                    .as_ref()
                    .unwrap()
                    .to_value();
                assert_eq!(
                    patch["dispenseRequest"]["expectedSupplyDuration"]["value"],
                    7
                );
                assert_eq!(
                    f.suggestions[0].actions[0].resource_id.as_deref(),
                    Some("MedicationRequest/oxy")
                );
            }
        }
    }

    #[test]
    fn only_while_the_fracture_is_acute() {
        for (fracture_days, expect) in [(89, Some("warning")), (90, None)] {
            Case::new(vcf_patient_aged(72, fracture_days))
                .medication(oxycodone(Some(14.0)))
                .expect_severity("VCF-OPIOID-DURATION", expect);
        }
        let f = Case::new(vcf_patient_date_unknown(72))
            .medication(oxycodone(Some(14.0)))
            .expect_severity("VCF-OPIOID-DURATION", Some("warning"))
            .unwrap();
        assert!(f.summary().contains("unknown"), "{}", f.summary());
        assert!(!f.numbers.contains_key("fracture_days"));
    }

    #[test]
    fn duration_from_quantity_and_tablets_per_day() {
        // 1-2 tablets q4-6h PRN (at most 2 × 6 = 12 tablets/day); #90 → 7.5 days.
        let mut o = oxycodone(None);
        o.dose = Field::Given(Dose::Range {
            low: Amount::parse(1.0, "tablet").unwrap(),
            high: Amount::parse(2.0, "tablet").unwrap(),
        });
        o.frequency =
            Field::Given(Frequency::new(1, None, 4.0, Some(6.0), PeriodUnit::Hour).unwrap());
        o.dispense_quantity = Field::Given(Amount::parse(90.0, "tablet").unwrap());
        assert_eq!(quantity_days(&o), Some(7.5));
        let f = Case::new(vcf_patient_aged(72, 10))
            .medication(o.clone())
            .expect_severity("VCF-OPIOID-DURATION", Some("warning"))
            .unwrap();
        assert_eq!(number(&f, "duration_days"), 7.5);
        o.dispense_quantity = Field::Given(Amount::parse(84.0, "{each}").unwrap());
        Case::new(vcf_patient_aged(72, 10))
            .medication(o.clone())
            .expect_severity("VCF-OPIOID-DURATION", None);
        // A dose in mg cannot be turned into tablets here: no duration, no card.
        o.dispense_quantity = Field::Given(Amount::parse(200.0, "tablet").unwrap());
        o.dose = Field::Given(Dose::Fixed {
            amount: Amount::parse(5.0, "mg").unwrap(),
        });
        assert_eq!(quantity_days(&o), None);
        Case::new(vcf_patient_aged(72, 10))
            .medication(o)
            .expect_severity("VCF-OPIOID-DURATION", None);
    }
}
