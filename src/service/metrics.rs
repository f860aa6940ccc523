//! Prometheus metrics: every name in one place, with the helpers the pipeline and the audit
//! writer call. Labels are bounded sets (route templates, status codes, rule ids, severities),
//! never identifiers of patients, orders or decisions.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::decision::Evaluation;

/// Metric names. Counters end in `_total`; durations are in seconds.
pub mod names {
    /// HTTP requests answered, labels `route`, `status`.
    pub const HTTP_REQUESTS: &str = "orderguard_http_requests_total";
    /// HTTP request latency histogram (seconds), labels `route`, `status`.
    pub const HTTP_LATENCY: &str = "orderguard_http_request_duration_seconds";
    /// Decisions made.
    pub const DECISIONS: &str = "orderguard_decisions_total";
    /// Findings, labels `rule`, `severity`.
    pub const FINDINGS: &str = "orderguard_findings_total";
    /// Orders the pathway concerns whose drug could not be identified.
    pub const UNRECOGNIZED_ORDERS: &str = "orderguard_unrecognized_orders_total";
    /// Inputs a decision lacked, label `input`.
    pub const MISSING_INPUTS: &str = "orderguard_missing_inputs_total";
    /// Records waiting for the audit writer (gauge).
    pub const AUDIT_QUEUE_DEPTH: &str = "orderguard_audit_queue_depth";
    /// Records per group commit (histogram).
    pub const AUDIT_BATCH_SIZE: &str = "orderguard_audit_batch_size";
    /// Bytes in the local spool awaiting replay (gauge).
    pub const AUDIT_SPOOL_BYTES: &str = "orderguard_audit_spool_bytes";
    /// Spooled records replayed into PostgreSQL.
    pub const AUDIT_REPLAYED_RECORDS: &str = "orderguard_audit_replayed_records_total";
    /// Requests refused (4xx), label `status`.
    pub const REJECTIONS: &str = "orderguard_rejections_total";
}

/// Latency buckets centred on the 25 ms p99 target and the 500 ms CDS Hooks budget.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The process-wide recorder, installed on first use (tests build many apps in one process).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(names::HTTP_LATENCY.into()),
                    LATENCY_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(names::AUDIT_BATCH_SIZE.into()),
                        BATCH_BUCKETS,
                    )
                })
                .expect("bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's): then ours
            // renders nothing, which is visible at /metrics rather than a crash.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            handle
        })
        .clone()
}

/// One HTTP answer.
pub fn record_http(route: &str, status: u16, seconds: f64) {
    let labels = [("route", route.to_owned()), ("status", status.to_string())];
    metrics::counter!(names::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(names::HTTP_LATENCY, &labels).record(seconds);
}

/// One refused request.
pub fn record_rejection(status: u16) {
    metrics::counter!(names::REJECTIONS, "status" => status.to_string()).increment(1);
}

/// One decision and its findings. The pipeline calls this after the decision is durable.
pub fn record_decision(evaluation: &Evaluation) {
    metrics::counter!(names::DECISIONS).increment(1);
    for finding in &evaluation.findings {
        metrics::counter!(
            names::FINDINGS,
            "rule" => finding.rule_id.clone(),
            "severity" => finding.severity.as_str(),
        )
        .increment(1);
    }
    if !evaluation.unrecognized.is_empty() {
        metrics::counter!(names::UNRECOGNIZED_ORDERS)
            .increment(evaluation.unrecognized.len() as u64);
    }
    for missing in &evaluation.missing_inputs {
        metrics::counter!(names::MISSING_INPUTS, "input" => missing.input.clone()).increment(1);
    }
}

/// Audit writer: records waiting to be written.
pub fn set_audit_queue_depth(depth: usize) {
    metrics::gauge!(names::AUDIT_QUEUE_DEPTH).set(depth as f64);
}

/// Audit writer: one group commit of `records`.
pub fn record_audit_batch(records: usize) {
    metrics::histogram!(names::AUDIT_BATCH_SIZE).record(records as f64);
}

/// Audit writer: bytes now in the spool.
pub fn set_audit_spool_bytes(bytes: u64) {
    metrics::gauge!(names::AUDIT_SPOOL_BYTES).set(bytes as f64);
}

/// Audit writer: records replayed from the spool into PostgreSQL.
pub fn add_audit_replayed_records(records: u64) {
    metrics::counter!(names::AUDIT_REPLAYED_RECORDS).increment(records);
}

/// The Prometheus text exposition.
pub fn render() -> String {
    handle().render()
}
