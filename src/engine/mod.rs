//! The pure engine: a compiled [`Plan`] and an [`EvaluationInput`] in, an [`Evaluation`] out.
//! No IO, no clock, no randomness: the evaluation time is part of the input, so the same input
//! under the same pathway version gives the same findings, byte for byte.

pub mod dosing;
pub mod emit;
pub mod facts;
pub mod medications;
pub mod rules;

pub use emit::Emitter;
pub use facts::{Etiology, Facts, Fracture};
pub use medications::Medication;

use crate::decision::Evaluation;
use crate::domain::EvaluationInput;
use crate::pathway::{Plan, Scope};

/// Evaluates every enabled rule of the plan against the input.
pub fn evaluate(plan: &Plan, input: &EvaluationInput) -> Evaluation {
    let facts = Facts::gather(plan, input);
    // Most rules report at most once per evaluation; room for one finding per rule.
    let mut sink = emit::Sink::with_capacity(plan.rules.len());
    for rule in plan.rules_in_evaluation_order() {
        if rule.scope == Scope::Vcf && facts.fracture.is_none() {
            if facts.conditions_absent() {
                sink.missing("conditions", &rule.id);
            }
            continue;
        }
        let mut emitter = Emitter::new(rule, &facts, &mut sink);
        rule.kind.evaluate(&facts, &mut emitter);
    }
    sink.finish(&facts)
}
