//! `activity_duration` (VCF-BEDREST): an activity order from a value set (bed rest) that is
//! open-ended or longer than a limit. Early mobilization is the standard after a VCF; within
//! the limit the rule only reminds (the pathway's `within_limit` message).

use super::{RuleKind, params};
use crate::domain::{CalendarDuration, Field};
use crate::engine::{Emitter, Facts};
use crate::pathway::{CompileContext, ValueSetId};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Value set of the activity orders concerned (codes and order text).
    value_set: String,
    /// Longest acceptable planned duration, in a time unit (h, d).
    max_duration: CalendarDuration,
}

#[derive(Debug)]
struct ActivityDuration {
    activity: ValueSetId,
    max_hours: f64,
}

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    let activity = ctx.value_set("value_set", &p.value_set)?;
    Some(Box::new(ActivityDuration {
        activity,
        max_hours: p.max_duration.hours(),
    }))
}

impl RuleKind for ActivityDuration {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let set = facts.plan.value_set(self.activity);
        for order in &facts.input.orders.services {
            if order.do_not_perform || !order.status.is_current() || !set.contains(&order.code) {
                continue;
            }
            let finding = out
                .finding()
                .order(&order.reference)
                .number("limit_hours", self.max_hours)
                .text("order", order.code.label());
            match &order.planned_duration {
                Field::Given(d) if d.hours() <= self.max_hours => finding
                    .variant("within_limit")
                    .number("hours", d.hours())
                    .suggestions(&[])
                    .emit(),
                Field::Given(d) => finding.number("hours", d.hours()).emit(),
                // No end, or an end we cannot read: the order is open-ended as far as anyone
                // reading it can tell.
                Field::Absent | Field::Unreadable(_) => finding.variant("open_ended").emit(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::{CalendarDuration, Concept, Field, PeriodUnit, ServiceOrder};
    use crate::engine::rules::testing::{Case, vcf_patient};

    fn bed_rest(hours: Option<f64>) -> ServiceOrder {
        let mut order = ServiceOrder::new(
            "ServiceRequest/bedrest",
            Concept::from_text("Strict bed rest"),
        );
        order.planned_duration = match hours {
            Some(h) => Field::Given(CalendarDuration::new(h, PeriodUnit::Hour).unwrap()),
            None => Field::Absent,
        };
        order
    }

    #[test]
    fn boundaries() {
        for (hours, expect) in [
            (Some(47.0), Some("info")),
            (Some(48.0), Some("info")),
            (Some(49.0), Some("warning")),
            (None, Some("warning")),
        ] {
            Case::new(vcf_patient())
                .service(bed_rest(hours))
                .expect_severity("VCF-BEDREST", expect);
        }
    }

    #[test]
    fn by_snomed_code_and_not_for_do_not_perform() {
        let coded = ServiceOrder::new(
            "ServiceRequest/x",
            Concept::coded(
                crate::domain::codes::system::SNOMED,
                "59394003",
                Some("Bed rest"),
            ),
        );
        Case::new(vcf_patient())
            .service(coded)
            .expect_severity("VCF-BEDREST", Some("warning"));
        let mut prohibition = bed_rest(None);
        prohibition.do_not_perform = true;
        Case::new(vcf_patient())
            .service(prohibition)
            .expect_severity("VCF-BEDREST", None);
    }

    #[test]
    fn not_without_a_vcf() {
        Case::new(crate::domain::PatientContext::default())
            .service(bed_rest(None))
            .expect_severity("VCF-BEDREST", None);
    }
}
