//! Heap allocations per engine evaluation: a counting allocator around
//! `orderguard::alloc::Mimalloc` (the allocator of the binary and the bench) counts what
//! `engine::evaluate` allocates on the benches/engine.rs input, the evaluation's drop
//! included. Instruction counts do not weigh malloc and free, nor the cache misses of
//! touching fresh memory; this does.
//!
//! ```text
//! cargo run --release --example engine_allocs [N]   # N evaluations, default 1000
//! ```
//!
//! Each evaluation gets a fresh, never-evaluated copy of the input, made outside the counted
//! section, as in `examples/engine_callgrind.rs`.

#[path = "../benches/support/realistic_input.rs"]
mod realistic;

use orderguard::domain::EvaluationInput;
use orderguard::pathway::Plan;
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static REALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to mimalloc; the counters have no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        unsafe { orderguard::alloc::Mimalloc.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        unsafe { orderguard::alloc::Mimalloc.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { orderguard::alloc::Mimalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size.saturating_sub(layout.size()) as u64, Relaxed);
        unsafe { orderguard::alloc::Mimalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let plan = Plan::builtin();
    let prototype = realistic::realistic_input();
    black_box(orderguard::engine::evaluate(&plan, &prototype.clone()));
    let before_copy = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
    let inputs: Vec<EvaluationInput> = (0..n).map(|_| prototype.clone()).collect();
    // What one parsed input holds on the heap: what an evaluation reads (besides the plan).
    println!(
        "input copy: {} allocations, {} bytes on the heap (+ {} inline)",
        (ALLOCATIONS.load(Relaxed) - before_copy.0 - 1) / n,
        (BYTES.load(Relaxed) - before_copy.1) / n - std::mem::size_of::<EvaluationInput>() as u64,
        std::mem::size_of::<EvaluationInput>(),
    );
    let before = (
        ALLOCATIONS.load(Relaxed),
        REALLOCATIONS.load(Relaxed),
        BYTES.load(Relaxed),
    );
    for input in &inputs {
        black_box(orderguard::engine::evaluate(&plan, black_box(input)));
    }
    let per_call = |counter: &AtomicU64, start: u64| (counter.load(Relaxed) - start) / n;
    println!(
        "evaluate: {} allocations, {} reallocations, {} bytes per call (over {n} calls)",
        per_call(&ALLOCATIONS, before.0),
        per_call(&REALLOCATIONS, before.1),
        per_call(&BYTES, before.2),
    );
}
