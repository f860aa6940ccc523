//! The adapter is on the hot path of every CDS Hooks call. The timing test is `#[ignore]`d
//! (timings in a debug build mean nothing); run it with
//! `cargo test --release --test adapters_perf -- --ignored --nocapture`.

use orderguard::adapters::CdsHooksRequest;
use orderguard::domain::RecordSection;
use std::path::PathBuf;
use std::time::Instant;

fn twenty_orders() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cds-hooks/order-sign-20-orders.json");
    std::fs::read(path).unwrap()
}

#[test]
fn the_twenty_order_request_translates() {
    let t = CdsHooksRequest::parse(&twenty_orders())
        .unwrap()
        .to_domain()
        .unwrap();
    assert_eq!(t.orders.medications.len() + t.orders.services.len(), 20);
    assert!(
        t.orders
            .medications
            .iter()
            .all(|m| m.dose.given().is_some() && m.frequency.given().is_some())
    );
    assert_eq!(t.patient.active_medications.len(), 10);
    assert_eq!(t.patient.diagnoses.len(), 5);
    assert_eq!(t.patient.labs.len(), 3);
    assert_eq!(
        t.patient
            .absent_sections
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![RecordSection::Imaging]
    );
}

/// The same 20 orders as a lean client sends them: one doseAndRate entry, no extensions, no
/// category / subject / encounter references, no narrative.
fn lean(bytes: &[u8]) -> Vec<u8> {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for key in ["extension", "category", "subject", "encounter", "meta"] {
                    map.remove(key);
                }
                if let Some(serde_json::Value::Array(entries)) = map.get_mut("doseAndRate") {
                    entries.drain(..entries.len().saturating_sub(1));
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    strip(&mut value);
    serde_json::to_vec(&value).unwrap()
}

#[test]
#[ignore = "timing: run in release"]
fn twenty_order_request_timing() {
    let bytes = twenty_orders();
    let compact =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()).unwrap();
    let lean = lean(&bytes);
    let translated = CdsHooksRequest::parse(&lean).unwrap().to_domain().unwrap();
    assert_eq!(
        translated.orders.medications.len() + translated.orders.services.len(),
        20
    );
    for (label, input) in [("pretty", &bytes), ("compact", &compact), ("lean", &lean)] {
        for _ in 0..200 {
            std::hint::black_box(CdsHooksRequest::parse(input).unwrap().to_domain().unwrap());
        }
        let rounds = 2_000;
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let start = Instant::now();
            let request = CdsHooksRequest::parse(std::hint::black_box(input)).unwrap();
            let translated = request.to_domain().unwrap();
            std::hint::black_box(translated);
            samples.push(start.elapsed().as_nanos() as f64 / 1000.0);
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "{label} ({} bytes): bytes -> Translated median {:.1} µs, p99 {:.1} µs",
            input.len(),
            samples[rounds / 2],
            samples[rounds * 99 / 100]
        );
    }
}

#[test]
#[ignore = "timing: run in release"]
fn where_the_time_goes() {
    let bytes = twenty_orders();
    let time = |label: &str, f: &dyn Fn()| {
        for _ in 0..100 {
            f();
        }
        let start = Instant::now();
        for _ in 0..1000 {
            f();
        }
        println!(
            "{label}: {:.1} µs",
            start.elapsed().as_nanos() as f64 / 1000.0 / 1000.0
        );
    };
    time("serde_json -> Value", &|| {
        std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap());
    });
    time("serde_json -> IgnoredAny", &|| {
        std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).unwrap());
    });
    time("parse envelope", &|| {
        std::hint::black_box(CdsHooksRequest::parse(&bytes).unwrap());
    });
    let request = CdsHooksRequest::parse(&bytes).unwrap();
    time("to_domain", &|| {
        std::hint::black_box(request.to_domain().unwrap());
    });
    let translated = request.to_domain().unwrap();
    time("drop Translated+clone", &|| {
        std::hint::black_box(translated.clone());
    });
}

#[test]
#[ignore = "timing: run in release"]
fn native_order_set_timing() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/native/valid-vcf-full.json");
    let bytes = std::fs::read(path).unwrap();
    let rounds = 2_000;
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds + 200 {
        let start = Instant::now();
        let set =
            orderguard::adapters::NativeOrderSet::parse(std::hint::black_box(&bytes)).unwrap();
        std::hint::black_box(set.to_domain().unwrap());
        if i >= 200 {
            samples.push(start.elapsed().as_nanos() as f64 / 1000.0);
        }
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "native ({} bytes): bytes -> validated -> Translated median {:.1} µs, p99 {:.1} µs",
        bytes.len(),
        samples[rounds / 2],
        samples[rounds * 99 / 100]
    );
}
