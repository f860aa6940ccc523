//! Engine speed on a realistic order set: 20 medication and service orders for a 78-year-old
//! with an osteoporotic VCF, a full patient context (labs, active medications, conditions).
//!
//! Run: `cargo bench --bench engine` (figures in README, "Performance").

use chrono::{TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use orderguard::pathway::Plan;
use std::hint::black_box;

#[path = "support/realistic_input.rs"]
mod realistic;
use realistic::realistic_input;

/// The same allocator as the orderguard binary, so the figures are the service's.
#[global_allocator]
static ALLOCATOR: orderguard::alloc::Mimalloc = orderguard::alloc::Mimalloc;

fn engine(c: &mut Criterion) {
    let plan = Plan::builtin();
    // Never evaluated itself: each iteration gets a fresh copy, so the per-concept caches
    // (value-set membership bits) start cold as they do for a real request. Copying is not
    // timed.
    let prototype = realistic_input();
    let evaluation = orderguard::engine::evaluate(&plan, &prototype.clone());
    eprintln!(
        "realistic 20-order set: {} findings, {} unrecognized",
        evaluation.findings.len(),
        evaluation.unrecognized.len()
    );
    // Two ways to hand each iteration its copy; both time only the evaluation and its drop.
    // - "parsed input" (the figure kept since session 2): criterion builds a batch of copies
    //   before timing any of them, so by the time one is evaluated it has left the CPU caches.
    // - "input just made": the copy is made right before its evaluation, as in the service,
    //   where the adapter builds the input from the request an instant before the engine reads it.
    let evaluate = |input: &mut orderguard::domain::EvaluationInput| {
        black_box(orderguard::engine::evaluate(
            black_box(&plan),
            black_box(input),
        ));
    };
    c.bench_function("engine/evaluate 20 orders (parsed input)", |b| {
        b.iter_batched_ref(|| prototype.clone(), evaluate, BatchSize::SmallInput)
    });
    c.bench_function("engine/evaluate 20 orders (input just made)", |b| {
        b.iter_batched_ref(|| prototype.clone(), evaluate, BatchSize::PerIteration)
    });
}

/// From the request's bytes to the CDS Hooks response: parse, adapt, evaluate, render (no
/// audit, no HTTP). A 20-order order-sign with full prefetch (`fixtures/cds-hooks/`).
fn bytes_to_cards(c: &mut Criterion) {
    let plan = Plan::builtin();
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cds-hooks/order-sign-20-orders.json"
    ))
    .unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    c.bench_function("decide/json bytes to cards (20-order order-sign)", |b| {
        b.iter(|| {
            let mut prepared = orderguard::decide::prepare(black_box(&bytes)).unwrap();
            let decision = orderguard::decide::decide(&plan, &mut prepared, now, uuid::Uuid::nil());
            orderguard::decide::render(&prepared, &decision)
        })
    });
}

criterion_group!(benches, engine, bytes_to_cards);
criterion_main!(benches);
