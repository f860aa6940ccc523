//! `fracture_date_required` (VCF-AUGMENT-NODATE): a service order from the given value sets
//! while the fracture date is unknown. Rules that count days from the fracture (augmentation
//! timing) cannot check such an order; this card says so rather than passing it silently.

use super::{RuleKind, params};
use crate::engine::{Emitter, Facts};
use crate::pathway::{CompileContext, ValueSetId};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Value sets of the orders that need a fracture date.
    value_sets: Vec<String>,
}

#[derive(Debug)]
struct FractureDateRequired {
    sets: Vec<ValueSetId>,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    let sets: Option<Vec<ValueSetId>> = p
        .value_sets
        .iter()
        .enumerate()
        .map(|(i, name)| ctx.value_set(&format!("value_sets/{i}"), name))
        .collect();
    Some(Box::new(FractureDateRequired { sets: sets? }))
}

impl RuleKind for FractureDateRequired {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        if facts.fracture.as_ref().is_none_or(|f| f.date.is_some()) {
            return;
        }
        for order in &facts.input.orders.services {
            let in_sets = self
                .sets
                .iter()
                .any(|id| facts.plan.value_set(*id).contains(&order.code));
            if in_sets && order.status.is_current() && !order.do_not_perform {
                out.finding()
                    .order(&order.reference)
                    .text("order", order.code.label())
                    .emit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::codes::system;
    use crate::engine::rules::testing::{
        Case, service_order, vcf_patient_aged, vcf_patient_date_unknown,
    };

    /// Found by the bad-input corpus: a fracture dated in the future (or before birth) was
    /// counted from as if it were real (negative days since the fracture). It is unknown now,
    /// so an augmentation order asks for the date.
    #[test]
    fn a_fracture_dated_in_the_future_or_before_birth_is_unknown() {
        let kp = service_order("ServiceRequest/kp", system::CPT, "22513", "Kyphoplasty");
        // 10 days ago: a known date, no NODATE card (the timing rule speaks instead).
        Case::new(vcf_patient_aged(70, 10))
            .service(kp.clone())
            .expect_severity("VCF-AUGMENT-NODATE", None);
        for implausible in [-30, 71 * 366] {
            Case::new(vcf_patient_aged(70, implausible))
                .service(kp.clone())
                .expect_severity("VCF-AUGMENT-NODATE", Some("warning"));
        }
    }

    #[test]
    fn vertebroplasty_without_a_fracture_date() {
        let vp = service_order(
            "ServiceRequest/vp",
            system::CPT,
            "22511",
            "Vertebroplasty lumbar",
        );
        let f = Case::new(vcf_patient_date_unknown(70))
            .service(vp.clone())
            .expect_severity("VCF-AUGMENT-NODATE", Some("warning"))
            .unwrap();
        assert_eq!(f.order_ref.as_ref().unwrap().as_str(), "ServiceRequest/vp");
        assert!(f.suggestions.is_empty());
        let mut cancelled = vp;
        cancelled.status = crate::domain::OrderStatus::Cancelled;
        Case::new(vcf_patient_date_unknown(70))
            .service(cancelled)
            .expect_severity("VCF-AUGMENT-NODATE", None);
    }
}
