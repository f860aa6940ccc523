//! `dose_renal_unknown` (DOSE-RENAL-UNKNOWN): a bisphosphonate or denosumab is ordered and no
//! eGFR or creatinine clearance from the last `lookback_days` is known, so DOSE-RENAL could
//! not check it. The pathway does not guess renal function.

use super::dose_common::{DoseView, medications};
use super::dose_renal::{RenalParams, renal_function};
use super::{RuleKind, params};
use crate::engine::{Emitter, Facts};
use crate::pathway::CompileContext;
use crate::terminology::{RenalMeasure, Terminology};

#[derive(Debug)]
struct DoseRenalUnknown(RenalParams);

pub(super) fn compile(
    value: &serde_json::Value,
    ctx: &mut CompileContext<'_>,
) -> Option<Box<dyn RuleKind>> {
    Some(Box::new(DoseRenalUnknown(params(value, ctx)?)))
}

impl RuleKind for DoseRenalUnknown {
    fn evaluate(&self, facts: &Facts<'_>, out: &mut Emitter<'_>) {
        let t = Terminology::builtin();
        if renal_function(
            facts,
            RenalMeasure::CreatinineClearance,
            self.0.lookback_days,
        )
        .is_some()
        {
            return;
        }
        for m in medications(facts).iter().filter(|m| m.drafted) {
            let Some(drug) = &m.drug else { continue };
            if !self.0.classes.iter().any(|c| drug.has_class(t, *c)) {
                continue;
            }
            let name = drug
                .components
                .iter()
                .map(|c| t.ingredient(c.ingredient))
                .find(|i| self.0.classes.iter().any(|k| i.classes.contains(k)))
                .map_or_else(|| m.card_label(), |i| i.name.clone());
            out.missing("renal_function");
            out.finding()
                .order(&m.order.reference)
                .text("ingredient", name)
                .number("lookback_days", self.0.lookback_days as f64)
                .emit();
        }
    }
}
