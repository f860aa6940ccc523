//! `dose_unreadable` (DOSE-UNREADABLE): a draft order for a drug the dose rules check (a daily
//! maximum, a label regimen, an MME factor, an opioid, calcium or vitamin D) whose dose, unit,
//! frequency or route could not be interpreted, or whose unit does not convert ("mL" of a
//! tablet). The card names the field and says that the dose was NOT checked: an unchecked dose
//! must never look like a checked one.
//!
//! At order-select a draft without a dose or frequency yet is normal and gets no card; at
//! order-sign it does.

use super::dose_common::{DoseView, incomplete_draft, medications};
use super::{RuleKind, params};
use crate::domain::Field;
use crate::engine::dosing::DailyDose;
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::{DrugClass, Ingredient, Terminology};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {}

#[derive(Debug)]
struct DoseUnreadable;

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let _: Params = params(value, ctx)?;
    Some(Box::new(DoseUnreadable))
}

/// Whether the dose rules check this ingredient's dose.
fn dose_checked(i: &Ingredient) -> bool {
    i.max_daily.is_some()
        || i.max_daily_elderly_or_hepatic.is_some()
        || !i.regimen.is_empty()
        || i.mme.is_some()
        || [DrugClass::Opioid, DrugClass::Calcium, DrugClass::VitaminD]
            .iter()
            .any(|c| i.classes.contains(c))
}

impl RuleKind for DoseUnreadable {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let t = Terminology::builtin();
        for m in medications(facts).iter().filter(|m| m.drafted) {
            let Some(drug) = &m.drug else { continue };
            if incomplete_draft(facts, m.order) {
                continue;
            }
            let problem = m
                .doses(t)
                .iter()
                .find_map(|d| match d {
                    DailyDose::Unreadable {
                        ingredient,
                        field,
                        reason,
                    } if dose_checked(t.ingredient(*ingredient)) => Some((
                        t.ingredient(*ingredient).name.clone(),
                        field.clone(),
                        reason.clone(),
                    )),
                    _ => None,
                })
                .or_else(|| match &m.order.route {
                    Field::Unreadable(u) => drug
                        .components
                        .iter()
                        .map(|c| t.ingredient(c.ingredient))
                        .find(|i| dose_checked(i))
                        .map(|i| (i.name.clone(), u.field.clone(), u.reason.clone())),
                    _ => None,
                });
            if let Some((ingredient, field, reason)) = problem {
                out.finding()
                    .order(&m.order.reference)
                    .text("ingredient", ingredient)
                    .text("order", m.order.medication.label())
                    .text("field", field)
                    .text("reason", reason)
                    .emit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::{Field, OrderRef, Unreadable};
    use crate::engine::rules::testing::{Case, dose, med_per_day, patient_aged};

    #[test]
    fn millilitres_of_a_tablet_are_not_checked_and_the_card_says_so() {
        let mut o = med_per_day(
            "MedicationRequest/apap",
            "acetaminophen 500 MG Oral Tablet",
            10.0,
            "mL",
            4,
        );
        o.dose = dose(10.0, "mL");
        let f = Case::new(patient_aged(70))
            .medication(o)
            .expect_severity("DOSE-UNREADABLE", Some("warning"))
            .unwrap();
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/apap"
        );
        assert!(f.detail().contains("dose.unit"), "{}", f.detail());
        assert!(f.summary().contains("NOT checked"), "{}", f.summary());
    }

    #[test]
    fn the_adapters_field_path_is_named() {
        let mut o = med_per_day("MedicationRequest/oxy", "oxycodone 5 mg", 5.0, "mg", 4);
        o.dose = Field::Unreadable(Unreadable::new(
            "dosageInstruction[0].doseAndRate[0].doseQuantity.unit",
            "furlong",
            "unit \"furlong\" is not a dose unit orderguard understands",
        ));
        let case = Case::new(patient_aged(70)).medication(o);
        let f = case
            .expect_severity("DOSE-UNREADABLE", Some("warning"))
            .unwrap();
        assert!(
            f.detail()
                .contains("dosageInstruction[0].doseAndRate[0].doseQuantity.unit"),
            "{}",
            f.detail()
        );
        // The other dose rules stay silent about it rather than guess.
        case.expect_severity("DOSE-MAX-DAILY", None);
        case.expect_severity("DOSE-MME-50", None);
    }

    #[test]
    fn drafts_without_a_dose_wait_at_order_select_but_not_at_order_sign() {
        let mut o = med_per_day("MedicationRequest/oxy", "oxycodone 5 mg", 5.0, "mg", 4);
        o.dose = Field::Absent;
        let sign = Case::new(patient_aged(70)).medication(o.clone());
        let f = sign
            .expect_severity("DOSE-UNREADABLE", Some("warning"))
            .unwrap();
        assert!(f.detail().contains("dose"), "{}", f.detail());
        let mut select = Case::new(patient_aged(70)).medication(o);
        select.orders_mut().focus = Some(vec![OrderRef("MedicationRequest/oxy".into())]);
        select.expect_severity("DOSE-UNREADABLE", None);
    }

    #[test]
    fn an_unidentified_drug_gets_no_card_but_is_listed() {
        let mut o = med_per_day("MedicationRequest/zz", "Zzyzxomab", 10.0, "mL", 1);
        o.dose = Field::Unreadable(Unreadable::new(
            "dosageInstruction[0].doseAndRate[0].doseQuantity.unit",
            "furlong",
            "unknown unit",
        ));
        let case = Case::new(patient_aged(70)).medication(o);
        case.expect_severity("DOSE-UNREADABLE", None);
        let evaluation = case.evaluate();
        assert!(
            evaluation
                .findings
                .iter()
                .all(|f| !f.rule_id.starts_with("DOSE-"))
        );
        assert_eq!(evaluation.unrecognized.len(), 1);
        assert_eq!(
            evaluation.unrecognized[0].order_ref.as_str(),
            "MedicationRequest/zz"
        );
    }

    #[test]
    fn an_unreadable_route_is_named_too() {
        let mut o = med_per_day("MedicationRequest/mor", "morphine", 10.0, "mg", 4);
        o.route = Field::Unreadable(Unreadable::new(
            "dosageInstruction[0].route",
            "XYZ",
            "route not recognized",
        ));
        let f = Case::new(patient_aged(70))
            .medication(o)
            .expect_severity("DOSE-UNREADABLE", Some("warning"))
            .unwrap();
        assert_eq!(
            f.order_ref.as_ref().unwrap().as_str(),
            "MedicationRequest/mor"
        );
        assert!(
            f.summary().contains("dosageInstruction[0].route"),
            "{}",
            f.summary()
        );
    }

    #[test]
    fn drugs_outside_the_tables_get_no_card() {
        Case::new(patient_aged(70))
            .medication(med_per_day(
                "MedicationRequest/senna",
                "senna",
                10.0,
                "mL",
                1,
            ))
            .expect_severity("DOSE-UNREADABLE", None);
    }
}
