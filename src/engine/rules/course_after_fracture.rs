//! `course_after_fracture` (VCF-CALCITONIN-DURATION): a drug of a class (calcitonin-salmon)
//! drafted for longer than a limit, or running past that many days after the fracture date.
//! AAOS 2010 supports calcitonin for the first 4 weeks after an acute osteoporotic VCF; with
//! longer use the FDA label warns of a malignancy signal.
//!
//! Only drafted orders are checked (a new order or a renewal); an active home order on its own
//! gets no card. The rule's suggestions must include `limit-4-weeks` (an update that sets the
//! supply to `{allowed_days}`, offered while days of the window remain) and `stop` (a delete,
//! offered once the window has passed).

use super::{RuleKind, params};
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::DrugClass;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    class: DrugClass,
    /// Longest course in days, and the day after the fracture by which it must end.
    max_days: f64,
}

#[derive(Debug)]
struct CourseAfterFracture(Params);

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    let p: Params = params(value, ctx)?;
    Some(Box::new(CourseAfterFracture(p)))
}

impl RuleKind for CourseAfterFracture {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let Params { class, max_days } = self.0;
        let fracture_date = facts.fracture.as_ref().and_then(|f| f.date);
        for medication in facts.drafted(class) {
            let order = medication.order;
            let course_days = order.supply_duration.given().map(|d| d.days());
            // The course starts when it was ordered (or now, for an undated draft).
            let start = order.authored_on.unwrap_or(facts.now).min(facts.now);
            // Whole days, as every other fracture-age rule counts them.
            let start_day = fracture_date.map(|d| (start - d).num_days() as f64);
            let end_day = start_day.map(|s| s + course_days.unwrap_or(0.0));
            let too_long = course_days.is_some_and(|d| d > max_days);
            let past_window = end_day.is_some_and(|e| e > max_days);
            if !too_long && !past_window {
                continue;
            }
            // What is left of the window from the start; nothing left: stop it instead.
            let allowed_days = match start_day {
                Some(s) => (max_days - s.max(0.0)).floor().min(max_days),
                None => max_days,
            };
            let mut finding = out
                .finding()
                .order(&order.reference)
                .number("max_days", max_days)
                .number("allowed_days", allowed_days.max(0.0))
                .text("drug", medication.label());
            if let Some(d) = course_days {
                finding = finding.number("course_days", d);
            }
            if let Some(s) = start_day {
                finding = finding.number("fracture_days", s);
            }
            if !too_long {
                finding = finding.variant("past_window");
            }
            finding = if allowed_days >= 1.0 {
                finding.suggestions(&["limit-4-weeks"])
            } else {
                finding.suggestions(&["stop"])
            };
            finding.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::{CalendarDuration, Field, PeriodUnit};
    use crate::engine::rules::testing::{
        Case, drug_order, number, suggestion_ids, vcf_patient_aged,
    };

    fn calcitonin(days: Option<f64>) -> crate::domain::MedicationOrder {
        let mut o = drug_order(
            "MedicationRequest/ct",
            "calcitonin salmon 200 unit/actuat nasal spray",
            None,
        );
        if let Some(d) = days {
            o.supply_duration = Field::Given(CalendarDuration::new(d, PeriodUnit::Day).unwrap());
        }
        o
    }

    #[test]
    fn course_longer_than_28_days() {
        for (days, expect) in [(28.0, None), (29.0, Some("warning"))] {
            let f = Case::new(vcf_patient_aged(72, 0))
                .medication(calcitonin(Some(days)))
                .expect_severity("VCF-CALCITONIN-DURATION", expect);
            if let Some(f) = f {
                assert_eq!(
                    f.order_ref.as_ref().unwrap().as_str(),
                    "MedicationRequest/ct"
                );
                assert_eq!(number(&f, "course_days"), 29.0);
                assert_eq!(number(&f, "allowed_days"), 28.0);
                assert_eq!(suggestion_ids(&f), ["limit-4-weeks"]);
                let patch = f.suggestions[0].actions[0]
                    .resource
                    .as_ref()
                    .unwrap()
                    .to_value();
                assert_eq!(
                    patch["dispenseRequest"]["expectedSupplyDuration"]["value"],
                    28
                );
            }
        }
    }

    #[test]
    fn course_running_past_day_28_after_the_fracture() {
        // Fracture 20 days ago: 8 days left. 8-day course ends on day 28 (fine), 9 days on 29.
        Case::new(vcf_patient_aged(72, 20))
            .medication(calcitonin(Some(8.0)))
            .expect_severity("VCF-CALCITONIN-DURATION", None);
        let f = Case::new(vcf_patient_aged(72, 20))
            .medication(calcitonin(Some(9.0)))
            .expect_severity("VCF-CALCITONIN-DURATION", Some("warning"))
            .unwrap();
        assert_eq!(number(&f, "allowed_days"), 8.0);
        assert_eq!(number(&f, "fracture_days"), 20.0);
        assert_eq!(suggestion_ids(&f), ["limit-4-weeks"]);
        // Continued on day 40 with no duration: stop.
        let f = Case::new(vcf_patient_aged(72, 40))
            .medication(calcitonin(None))
            .expect_severity("VCF-CALCITONIN-DURATION", Some("warning"))
            .unwrap();
        assert_eq!(suggestion_ids(&f), ["stop"]);
        // Day 10, no duration: nothing to say yet.
        Case::new(vcf_patient_aged(72, 10))
            .medication(calcitonin(None))
            .expect_severity("VCF-CALCITONIN-DURATION", None);
    }
}
