//! A fixed amount of engine work for instruction counting (run through
//! `scripts/bench-engine-callgrind.sh`, which runs it under valgrind callgrind). Usage:
//!
//! ```text
//! engine_callgrind evaluate N   # N × engine::evaluate on the benches/engine.rs input
//! engine_callgrind cards N      # N × JSON bytes -> cards on the 20-order order-sign request
//! ```
//!
//! The measured loop is the function `measured` alone (callgrind `--toggle-collect`), after one
//! warm-up call that builds the process-wide terminology and plan. Each evaluation gets a fresh,
//! never-evaluated copy of the input (made outside `measured`), so per-request caches start cold
//! as they do for a real request.

#[path = "../benches/support/realistic_input.rs"]
mod realistic;

use chrono::{TimeZone, Utc};
use orderguard::domain::EvaluationInput;
use orderguard::pathway::Plan;
use std::hint::black_box;

#[global_allocator]
static ALLOCATOR: orderguard::alloc::Mimalloc = orderguard::alloc::Mimalloc;

#[inline(never)]
fn measured_evaluate(plan: &Plan, inputs: &[EvaluationInput]) -> usize {
    let mut findings = 0;
    for input in inputs {
        findings += orderguard::engine::evaluate(plan, black_box(input))
            .findings
            .len();
    }
    findings
}

#[inline(never)]
fn measured_cards(plan: &Plan, bytes: &[u8], n: usize) -> usize {
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let mut cards = 0;
    for _ in 0..n {
        let mut prepared = orderguard::decide::prepare(black_box(bytes)).unwrap();
        let decision = orderguard::decide::decide(plan, &mut prepared, now, uuid::Uuid::nil());
        cards += orderguard::decide::render(&prepared, &decision)["cards"]
            .as_array()
            .map_or(0, Vec::len);
    }
    cards
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "evaluate".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let plan = Plan::builtin();
    match mode.as_str() {
        "evaluate" => {
            let prototype = realistic::realistic_input();
            black_box(orderguard::engine::evaluate(&plan, &prototype.clone()));
            let inputs: Vec<EvaluationInput> = (0..n).map(|_| prototype.clone()).collect();
            let findings = measured_evaluate(&plan, &inputs);
            println!("evaluate x{n}: {} findings each", findings / n.max(1));
        }
        "cards" => {
            let bytes = std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/cds-hooks/order-sign-20-orders.json"
            ))
            .unwrap();
            let mut warm = orderguard::decide::prepare(&bytes).unwrap();
            let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
            let decision = orderguard::decide::decide(&plan, &mut warm, now, uuid::Uuid::nil());
            black_box(orderguard::decide::render(&warm, &decision));
            let cards = measured_cards(&plan, &bytes, n);
            println!("cards x{n}: {} cards each", cards / n.max(1));
        }
        other => {
            eprintln!("usage: engine_callgrind evaluate|cards N (not {other:?})");
            std::process::exit(2);
        }
    }
}
