//! `discouraged_service` (VCF-AUGMENT-VP): a service order from a value set that the guideline
//! recommends against, unless it is also in an excepted set or a documented flag changes the
//! picture. AAOS 2010 recommends against vertebroplasty for a neurologically intact patient;
//! kyphoplasty (the excepted set) is the weaker-evidence alternative.

use super::{RuleKind, params};
use crate::domain::ClinicalFlag;
use crate::engine::{Emitter, Facts};
use crate::pathway::{CompileContext, ValueSetId};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    value_set: String,
    /// Orders also in this set are not concerned (a kyphoplasty order that mentions
    /// "vertebral augmentation").
    except_value_set: Option<String>,
    /// The rule is silent when any of these is documented.
    #[serde(default)]
    unless_flags: Vec<ClinicalFlag>,
}

#[derive(Debug)]
struct DiscouragedService {
    set: ValueSetId,
    except: Option<ValueSetId>,
    unless_flags: Vec<ClinicalFlag>,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    let set = ctx.value_set("value_set", &p.value_set);
    let except = match &p.except_value_set {
        Some(name) => Some(ctx.value_set("except_value_set", name)?),
        None => None,
    };
    Some(Box::new(DiscouragedService {
        set: set?,
        except,
        unless_flags: p.unless_flags,
    }))
}

impl RuleKind for DiscouragedService {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        if self.unless_flags.iter().any(|f| facts.has_flag(*f)) {
            return;
        }
        let set = facts.plan.value_set(self.set);
        let except = self.except.map(|id| facts.plan.value_set(id));
        for order in &facts.input.orders.services {
            if !order.status.is_current() || order.do_not_perform || !set.contains(&order.code) {
                continue;
            }
            if except.is_some_and(|e| e.contains(&order.code)) {
                continue;
            }
            out.finding()
                .order(&order.reference)
                .text("order", order.code.label())
                .emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::codes::system;
    use crate::domain::{ClinicalFlag, Concept, Diagnosis};
    use crate::engine::rules::testing::{Case, service_order, vcf_patient};

    #[test]
    fn vertebroplasty_in_an_intact_patient_only() {
        let vp = || {
            service_order(
                "ServiceRequest/vp",
                system::CPT,
                "22510",
                "Vertebroplasty T8",
            )
        };
        let f = Case::new(vcf_patient())
            .service(vp())
            .expect_severity("VCF-AUGMENT-VP", Some("info"))
            .unwrap();
        assert_eq!(f.order_ref.as_ref().unwrap().as_str(), "ServiceRequest/vp");
        Case::new(vcf_patient())
            .service(service_order(
                "ServiceRequest/kp",
                system::CPT,
                "22513",
                "Kyphoplasty T8",
            ))
            .expect_severity("VCF-AUGMENT-VP", None);
        let mut flagged = Case::new(vcf_patient()).service(vp());
        flagged
            .patient_mut()
            .flags
            .insert(ClinicalFlag::NeurologicalDeficit);
        flagged.expect_severity("VCF-AUGMENT-VP", None);
        let mut coded = Case::new(vcf_patient()).service(vp());
        coded
            .patient_mut()
            .diagnoses
            .push(Diagnosis::new(Concept::coded(
                system::ICD10CM,
                "G83.4",
                None,
            )));
        coded.expect_severity("VCF-AUGMENT-VP", None);
    }
}
