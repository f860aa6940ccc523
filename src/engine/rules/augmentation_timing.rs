//! `augmentation_timing` (VCF-AUGMENT-TIMING): vertebroplasty or kyphoplasty ordered before a
//! course of conservative care (default 90 days after the fracture), unless an early
//! indication is documented: a parenteral opioid recently, a documented flag (refractory pain,
//! oral analgesics contraindicated, progressive deformity, pulmonary dysfunction), or a coded
//! condition from the pathway's early-indication set. An inpatient stay alone is not one.
//!
//! With no fracture date the rule cannot count days: it records the missing input and
//! VCF-AUGMENT-NODATE (`fracture_date_required`) speaks instead.

use super::{RuleKind, params};
use crate::domain::{ClinicalFlag, Field};
use crate::engine::{Emitter, Facts};
use crate::pathway::{CompileContext, ValueSetId};
use crate::terminology::DrugClass;
use crate::terminology::ProductForm;
use chrono::Duration;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Value sets of the augmentation procedures.
    procedures: Vec<String>,
    /// Fires when the fracture is fewer than this many whole days old.
    conservative_days: i64,
    early_indications: EarlyParams,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EarlyParams {
    /// A drug of this class given by a parenteral route (IV, IM, SC, PCA) ...
    parenteral_class: DrugClass,
    /// ... drafted now, or an active order authored within this many hours.
    parenteral_within_hours: i64,
    #[serde(default)]
    flags: Vec<ClinicalFlag>,
    /// Active conditions from this value set.
    value_set: String,
}

#[derive(Debug)]
struct AugmentationTiming {
    procedures: Vec<ValueSetId>,
    conservative_days: i64,
    parenteral_class: DrugClass,
    parenteral_within: Duration,
    flags: Vec<ClinicalFlag>,
    indications: ValueSetId,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    let procedures: Option<Vec<ValueSetId>> = p
        .procedures
        .iter()
        .enumerate()
        .map(|(i, name)| ctx.value_set(&format!("procedures/{i}"), name))
        .collect();
    let indications = ctx.value_set(
        "early_indications/value_set",
        &p.early_indications.value_set,
    )?;
    Some(Box::new(AugmentationTiming {
        procedures: procedures?,
        conservative_days: p.conservative_days,
        parenteral_class: p.early_indications.parenteral_class,
        parenteral_within: Duration::hours(p.early_indications.parenteral_within_hours),
        flags: p.early_indications.flags,
        indications,
    }))
}

impl AugmentationTiming {
    fn early_indication(&self, facts: &Facts<'_>) -> bool {
        let parenteral = facts
            .medications
            .iter()
            .filter(|m| m.has_class(self.parenteral_class))
            .filter(|m| match m.order.route {
                Field::Given(route) => route.is_parenteral(),
                // No readable route: an injectable product can only be given parenterally.
                Field::Absent | Field::Unreadable(_) => m
                    .drug
                    .as_ref()
                    .is_some_and(|d| d.form == Some(ProductForm::Injection)),
            })
            .any(|m| {
                m.drafted
                    || m.order.authored_on.is_some_and(|at| {
                        at <= facts.now && facts.now - at <= self.parenteral_within
                    })
            });
        let flagged = self.flags.iter().any(|f| facts.has_flag(*f));
        let set = facts.plan.value_set(self.indications);
        let coded = facts
            .input
            .patient
            .diagnoses
            .iter()
            .any(|d| d.is_active() && set.contains(&d.code));
        parenteral || flagged || coded
    }
}

impl RuleKind for AugmentationTiming {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let sets: Vec<_> = self
            .procedures
            .iter()
            .map(|id| facts.plan.value_set(*id))
            .collect();
        let mut orders = facts
            .input
            .orders
            .services
            .iter()
            .filter(|o| o.status.is_current() && !o.do_not_perform)
            .filter(|o| sets.iter().any(|s| s.contains(&o.code)))
            .peekable();
        if orders.peek().is_none() {
            return;
        }
        let Some(days) = facts.fracture.as_ref().and_then(|f| f.age_days(facts.now)) else {
            out.missing("fracture_date");
            return;
        };
        if days >= self.conservative_days || self.early_indication(facts) {
            return;
        }
        for order in orders {
            out.finding()
                .order(&order.reference)
                .number("fracture_days", days as f64)
                .number("conservative_days", self.conservative_days as f64)
                .text("order", order.code.label())
                .emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::codes::system;
    use crate::domain::{ClinicalFlag, Concept, Diagnosis, Field, Route, ServiceOrder};
    use crate::engine::rules::testing::{
        Case, drug_order, now, number, service_order, suggestion_ids, vcf_patient_aged,
        vcf_patient_date_unknown,
    };
    use chrono::Duration;

    fn kyphoplasty() -> ServiceOrder {
        service_order("ServiceRequest/kp", system::CPT, "22514", "Kyphoplasty L1")
    }

    fn iv_morphine(
        drafted: bool,
        hours_ago: Option<i64>,
    ) -> (bool, crate::domain::MedicationOrder) {
        let mut order = drug_order(
            "MedicationRequest/ivm",
            "morphine 2 mg/mL injection",
            Some("7052"),
        );
        order.route = Field::Given(Route::parse("IV"));
        order.authored_on = hours_ago.map(|h| now() - Duration::hours(h));
        if !drafted {
            order.status = crate::domain::OrderStatus::Active;
        }
        (drafted, order)
    }

    /// How each early indication is documented in a case.
    #[derive(Clone, Copy, Debug)]
    enum Early {
        None,
        DraftedIvOpioid,
        ActiveIvOpioid71h,
        ActiveIvOpioid73h,
        OralOpioidDrafted,
        Flag(ClinicalFlag),
        CodedCondition,
    }

    fn case(days: i64, early: Early) -> Case {
        let mut case = Case::new(vcf_patient_aged(72, days)).service(kyphoplasty());
        let med = match early {
            Early::DraftedIvOpioid => Some(iv_morphine(true, None)),
            Early::ActiveIvOpioid71h => Some(iv_morphine(false, Some(71))),
            Early::ActiveIvOpioid73h => Some(iv_morphine(false, Some(73))),
            Early::OralOpioidDrafted => {
                let mut o = drug_order(
                    "MedicationRequest/po",
                    "oxycodone 5 mg tablet",
                    Some("7804"),
                );
                o.route = Field::Given(Route::Oral);
                Some((true, o))
            }
            _ => None,
        };
        match early {
            Early::Flag(flag) => {
                case.patient_mut().flags.insert(flag);
            }
            Early::CodedCondition => {
                case.patient_mut()
                    .diagnoses
                    .push(Diagnosis::new(Concept::coded(
                        system::ICD10CM,
                        "G89.11",
                        Some("Acute pain due to trauma"),
                    )))
            }
            _ => {}
        }
        match med {
            Some((true, o)) => case.medication(o),
            Some((false, o)) => case.active_medication(o),
            None => case,
        }
    }

    #[test]
    fn day_89_fires_day_90_does_not() {
        for (days, expect) in [
            (89, Some("warning")),
            (90, None),
            (91, None),
            (10, Some("warning")),
        ] {
            let f = case(days, Early::None).expect_severity("VCF-AUGMENT-TIMING", expect);
            if let Some(f) = f {
                assert_eq!(f.order_ref.as_ref().unwrap().as_str(), "ServiceRequest/kp");
                assert_eq!(number(&f, "fracture_days"), days as f64);
                assert_eq!(number(&f, "conservative_days"), 90.0);
                assert_eq!(suggestion_ids(&f), ["cancel-augmentation"]);
                let action = &f.suggestions[0].actions[0];
                assert_eq!(action.resource_id.as_deref(), Some("ServiceRequest/kp"));
            }
        }
    }

    #[test]
    fn early_indications_silence_it_before_day_90() {
        let silencing = [
            Early::DraftedIvOpioid,
            Early::ActiveIvOpioid71h,
            Early::Flag(ClinicalFlag::RefractoryPain),
            Early::Flag(ClinicalFlag::OralAnalgesicContraindicated),
            Early::Flag(ClinicalFlag::ProgressiveDeformity),
            Early::Flag(ClinicalFlag::PulmonaryDysfunction),
            Early::CodedCondition,
        ];
        for early in silencing {
            for days in [89, 90, 91] {
                case(days, early).expect_severity("VCF-AUGMENT-TIMING", None);
            }
        }
        // Not indications: an older parenteral order, an oral opioid, other flags.
        for early in [
            Early::ActiveIvOpioid73h,
            Early::OralOpioidDrafted,
            Early::Flag(ClinicalFlag::HepaticDisease),
        ] {
            case(89, early).expect_severity("VCF-AUGMENT-TIMING", Some("warning"));
            case(90, early).expect_severity("VCF-AUGMENT-TIMING", None);
            case(91, early).expect_severity("VCF-AUGMENT-TIMING", None);
        }
    }

    #[test]
    fn an_injectable_product_without_a_route_is_parenteral() {
        let product = |code: &str, text: &str| {
            let mut order = drug_order("MedicationRequest/inj", text, None);
            order.medication = Concept::coded(system::RXNORM, code, Some(text));
            order
        };
        // Hydromorphone 1 mg/mL injection, by product code, no route given: an indication.
        Case::new(vcf_patient_aged(72, 30))
            .service(kyphoplasty())
            .medication(product(
                "897653",
                "1 ML hydromorphone hydrochloride 1 MG/ML Injection",
            ))
            .expect_severity("VCF-AUGMENT-TIMING", None);
        // The same drug as an oral tablet without a route: not one.
        Case::new(vcf_patient_aged(72, 30))
            .service(kyphoplasty())
            .medication(drug_order(
                "MedicationRequest/po",
                "hydromorphone 2 mg oral tablet",
                Some("3423"),
            ))
            .expect_severity("VCF-AUGMENT-TIMING", Some("warning"));
    }

    #[test]
    fn parenteral_window_is_72_hours_inclusive() {
        // An active IV morphine order authored at now(); evaluated 72 h and 73 h later.
        for (hours_later, expect) in [(72, None), (73, Some("warning"))] {
            let (_, order) = iv_morphine(false, Some(0));
            Case::new(vcf_patient_aged(72, 30))
                .service(kyphoplasty())
                .active_medication(order)
                .at(now() + Duration::hours(hours_later))
                .expect_severity("VCF-AUGMENT-TIMING", expect);
        }
    }

    #[test]
    fn unknown_date_is_left_to_the_nodate_rule() {
        let case = Case::new(vcf_patient_date_unknown(72)).service(kyphoplasty());
        case.expect_severity("VCF-AUGMENT-TIMING", None);
        let f = case
            .expect_severity("VCF-AUGMENT-NODATE", Some("warning"))
            .unwrap();
        assert_eq!(f.order_ref.as_ref().unwrap().as_str(), "ServiceRequest/kp");
        let missing = case.evaluate().missing_inputs;
        assert!(
            missing.iter().any(|m| m.input == "fracture_date"
                && m.rules.contains(&"VCF-AUGMENT-TIMING".to_owned()))
        );
        Case::new(vcf_patient_aged(72, 10))
            .service(kyphoplasty())
            .expect_severity("VCF-AUGMENT-NODATE", None);
    }

    #[test]
    fn vertebroplasty_by_text_counts_too() {
        let vp = ServiceOrder::new(
            "ServiceRequest/vp",
            Concept::from_text("Percutaneous vertebroplasty T12"),
        );
        Case::new(vcf_patient_aged(72, 30))
            .service(vp)
            .expect_severity("VCF-AUGMENT-TIMING", Some("warning"));
    }
}
