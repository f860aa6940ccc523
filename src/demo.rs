//! `orderguard demo seed`: realistic decisions for demonstrations and benchmarks, made by the
//! real engine and written through the real audit writer (so `audit verify` holds afterwards).
//!
//! Each decision starts from one of the shipped native test cases (`fixtures/cases/*.json`: 47
//! varied VCF and dosing situations, each with known findings), moved in time to a random moment
//! of the last `days` days (every date in the case shifted alike, so the clinical timeline and
//! therefore the findings stay those of the case), with synthetic patient, prescriber and
//! encounter references (`Patient/demo-…`, `Practitioner/demo-…`, `Encounter/demo-…`; no real
//! person). It is recorded as a CDS Hooks `order-sign` call (one in ten `order-select`) whose
//! response is the cards the engine's findings give. Clinicians' feedback follows on a share of
//! the cards: accepted (with the suggestion taken, when the card has one) or overridden with one
//! of the card's override reasons.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::audit::{
    AuditError, AuditRecord, AuditWriter, Channel, FeedbackOutcome, FeedbackRecord, RequestMeta,
};
use crate::decision::Severity;
use crate::pathway::Plan;

/// The native cases decisions are made from.
const TEMPLATES: &[&str] = &[
    include_str!("../fixtures/cases/01-complete-care-no-findings.json"),
    include_str!("../fixtures/cases/02-non-vcf-no-drafts.json"),
    include_str!("../fixtures/cases/03-bedrest-72h.json"),
    include_str!("../fixtures/cases/04-bedrest-48h-reminder.json"),
    include_str!("../fixtures/cases/05-bedrest-open-ended-by-text.json"),
    include_str!("../fixtures/cases/06-opioid-elderly-with-companions.json"),
    include_str!("../fixtures/cases/07-opioid-alone-elderly.json"),
    include_str!("../fixtures/cases/08-opioid-64-no-elderly-card.json"),
    include_str!("../fixtures/cases/09-mme-90-oxycodone.json"),
    include_str!("../fixtures/cases/10-mme-50-morphine.json"),
    include_str!("../fixtures/cases/11-mme-49.9-morphine.json"),
    include_str!("../fixtures/cases/12-opioid-duration-10-days-acute.json"),
    include_str!("../fixtures/cases/13-opioid-duration-7-days.json"),
    include_str!("../fixtures/cases/14-opioid-duration-old-fracture.json"),
    include_str!("../fixtures/cases/15-fentanyl-patch-180-mme.json"),
    include_str!("../fixtures/cases/16-opioid-with-benzodiazepine.json"),
    include_str!("../fixtures/cases/17-opioid-with-gabapentin.json"),
    include_str!("../fixtures/cases/18-non-vcf-high-mme.json"),
    include_str!("../fixtures/cases/19-cyclobenzaprine-at-72.json"),
    include_str!("../fixtures/cases/20-cyclobenzaprine-at-60.json"),
    include_str!("../fixtures/cases/21-kyphoplasty-day-10.json"),
    include_str!("../fixtures/cases/22-kyphoplasty-day-89.json"),
    include_str!("../fixtures/cases/23-kyphoplasty-day-90.json"),
    include_str!("../fixtures/cases/24-kyphoplasty-day-10-refractory-pain.json"),
    include_str!("../fixtures/cases/25-kyphoplasty-day-10-iv-opioid.json"),
    include_str!("../fixtures/cases/26-vertebroplasty-day-120.json"),
    include_str!("../fixtures/cases/27-kyphoplasty-no-fracture-date.json"),
    include_str!("../fixtures/cases/28-neuro-deficit-no-consult.json"),
    include_str!("../fixtures/cases/29-neuro-deficit-with-consult.json"),
    include_str!("../fixtures/cases/30-malignant-vcf-no-mri.json"),
    include_str!("../fixtures/cases/31-malignant-vcf-mri-ordered.json"),
    include_str!("../fixtures/cases/32-no-antiosteoporosis.json"),
    include_str!("../fixtures/cases/33-traumatic-young-no-treatment-needed.json"),
    include_str!("../fixtures/cases/34-s-code-elderly-is-fragility.json"),
    include_str!("../fixtures/cases/35-no-calcium.json"),
    include_str!("../fixtures/cases/36-calcium-below-target.json"),
    include_str!("../fixtures/cases/37-no-vitamin-d.json"),
    include_str!("../fixtures/cases/38-alendronate-daily.json"),
    include_str!("../fixtures/cases/39-alendronate-egfr-30.json"),
    include_str!("../fixtures/cases/40-zoledronic-no-renal-labs.json"),
    include_str!("../fixtures/cases/41-acetaminophen-4g-at-72.json"),
    include_str!("../fixtures/cases/42-ibuprofen-at-80.json"),
    include_str!("../fixtures/cases/43-calcium-over-upper-limit.json"),
    include_str!("../fixtures/cases/44-unreadable-opioid-unit.json"),
    include_str!("../fixtures/cases/45-calcitonin-8-weeks.json"),
    include_str!("../fixtures/cases/46-no-pt-day-10.json"),
    include_str!("../fixtures/cases/47-no-pt-day-6.json"),
];

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub decisions: u64,
    /// Decisions are spread over the `days` days before `now`.
    pub days: u32,
    pub now: DateTime<Utc>,
    /// The random stream; the same seed gives the same data (ids and receipt times aside).
    pub seed: u64,
    /// Decisions in flight at once (the writer batches them).
    pub concurrency: usize,
    /// Distinct prescribers and encounters to draw from. Encounters are stays of up to five
    /// days, as many beginning each day.
    pub prescribers: u32,
    pub encounters: u32,
}

impl SeedOptions {
    pub fn new(decisions: u64, days: u32, now: DateTime<Utc>) -> Self {
        SeedOptions {
            decisions,
            days: days.max(1),
            now,
            seed: 20261201,
            concurrency: 256,
            prescribers: 60,
            encounters: (decisions / 3).clamp(1, 1_000_000) as u32,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedSummary {
    pub decisions: u64,
    pub findings: u64,
    pub feedback: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("demo case {index} does not read: {message}")]
    Template { index: usize, message: String },
    #[error("recording: {0}")]
    Audit(#[from] AuditError),
}

/// The writer configuration for seeding: the service's, with a generous acknowledgement
/// deadline (a bulk load on a busy machine is not a clinician waiting for an answer).
pub fn writer_config(spool_dir: std::path::PathBuf) -> crate::audit::WriterConfig {
    let mut config = crate::audit::WriterConfig::new(spool_dir);
    config.ack_deadline = std::time::Duration::from_secs(300);
    config
}

/// A small, fast, seedable random stream (SplitMix64): demo data needs no cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// A case, parsed, with the date it was written for.
struct Template {
    value: Value,
    evaluated_at: DateTime<Utc>,
}

fn templates() -> Result<Vec<Template>, SeedError> {
    TEMPLATES
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let value: Value = serde_json::from_str(text).map_err(|e| SeedError::Template {
                index,
                message: e.to_string(),
            })?;
            let evaluated_at = value
                .get("evaluated_at")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| SeedError::Template {
                    index,
                    message: "no evaluated_at".into(),
                })?;
            Ok(Template {
                value,
                evaluated_at,
            })
        })
        .collect()
}

/// Every string that starts with a date (`YYYY-MM-DD`, alone or as the start of a date-time) is
/// moved by `days`.
fn shift_dates(value: &mut Value, days: i64) {
    match value {
        Value::String(s) => {
            if s.len() >= 10
                && s.is_char_boundary(10)
                && let Ok(date) = NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d")
                && let Some(moved) = date.checked_add_signed(Duration::days(days))
            {
                *s = format!("{}{}", moved.format("%Y-%m-%d"), &s[10..]);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| shift_dates(v, days)),
        Value::Object(members) => members.values_mut().for_each(|v| shift_dates(v, days)),
        _ => {}
    }
}

/// The longest encounter (a stay), in days.
const STAY_DAYS: u64 = 5;

/// One generated decision and the feedback that follows it.
struct Generated {
    record: AuditRecord,
    feedback: Vec<FeedbackRecord>,
}

fn generate(
    plan: &Plan,
    template: &Template,
    rng: &mut Rng,
    options: &SeedOptions,
    n: u64,
) -> Result<Generated, SeedError> {
    // A moment in the window, at a plausible hour (07:00-19:00 UTC).
    let day = rng.below(u64::from(options.days)) as i64;
    let at_day = (options.now - Duration::days(day)).date_naive();
    let seconds = 7 * 3600 + rng.below(12 * 3600) as i64;
    let mut at = at_day.and_time(chrono::NaiveTime::MIN).and_utc() + Duration::seconds(seconds);
    if at > options.now {
        at = options.now - Duration::seconds(rng.below(3600) as i64);
    }
    let shift = (at.date_naive() - template.evaluated_at.date_naive()).num_days();
    let mut value = template.value.clone();
    shift_dates(&mut value, shift);
    value["evaluated_at"] = Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    // An encounter is one patient's stay of up to STAY_DAYS days: the decision's encounter
    // began 0 to STAY_DAYS - 1 days before it, one of the encounters that began that day.
    let began = day as u64 + rng.below(STAY_DAYS);
    let per_day = (u64::from(options.encounters) / (u64::from(options.days) + STAY_DAYS)).max(1);
    let encounter_index = began * per_day + rng.below(per_day);
    let patient = format!(
        "Patient/demo-{:07}",
        encounter_index % (options.decisions.max(1) / 2 + 1)
    );
    let user = format!(
        "Practitioner/demo-{:03}",
        rng.below(u64::from(options.prescribers))
    );
    let encounter = format!("Encounter/demo-{encounter_index:07}");
    value["patient"]["reference"] = Value::String(patient);
    value["context"] = serde_json::json!({"user": user, "encounter": encounter});

    let bytes = crate::canonical::to_vec(&value);
    let mut prepared = crate::decide::prepare(&bytes).map_err(|e| SeedError::Template {
        index: n as usize % TEMPLATES.len(),
        message: e.to_string(),
    })?;
    let decision = crate::decide::decide(plan, &mut prepared, at, Uuid::now_v7());
    let response = crate::cards::render(&decision, None);
    let hook = if rng.chance(0.1) {
        "order-select"
    } else {
        "order-sign"
    };
    let meta = RequestMeta {
        channel: Channel::CdsHooks,
        hook: Some(hook.into()),
        hook_instance: Some(Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string()),
        client_id: Some("orderguard-demo".into()),
        user_ref: prepared.user_ref.take(),
        patient_ref: prepared.patient_ref.take(),
        encounter_ref: prepared.encounter_ref.take(),
    };
    let input = std::mem::take(&mut prepared.canonical_input);
    let response = serde_json::to_vec(&response).expect("cards serialize");
    let record = AuditRecord::from_decision(&decision, meta, input, response);

    let mut feedback = Vec::new();
    for (index, finding) in decision.evaluation.findings.iter().enumerate() {
        if !rng.chance(0.6) {
            continue;
        }
        let override_share = match finding.severity {
            Severity::Info => 0.15,
            Severity::Warning => 0.5,
            Severity::Critical => 0.3,
        };
        let overridden = finding.severity != Severity::Info && rng.chance(override_share);
        let reasons = crate::cards::OVERRIDE_REASONS;
        let reason = reasons[rng.below(reasons.len() as u64) as usize].0;
        feedback.push(FeedbackRecord {
            card_uuid: decision.card_uuid(index),
            decision_id: Some(decision.decision_id),
            outcome: if overridden {
                FeedbackOutcome::Overridden
            } else {
                FeedbackOutcome::Accepted
            },
            accepted_suggestions: if overridden {
                Vec::new()
            } else {
                finding
                    .suggestions
                    .iter()
                    .take(1)
                    .map(|s| s.id.to_string())
                    .collect()
            },
            override_reason_code: overridden.then(|| reason.to_owned()),
            override_comment: None,
            outcome_at: at + Duration::seconds(5 + rng.below(300) as i64),
            client_id: Some("orderguard-demo".into()),
        });
    }
    Ok(Generated { record, feedback })
}

/// Seeds `options.decisions` decisions through `writer`. `progress` is told each decision
/// recorded.
pub async fn seed(
    plan: Arc<Plan>,
    writer: &AuditWriter,
    options: &SeedOptions,
    progress: impl Fn(u64) + Send + Sync,
) -> Result<SeedSummary, SeedError> {
    let templates = Arc::new(templates()?);
    let mut rng = Rng::new(options.seed);
    let mut summary = SeedSummary::default();
    let mut in_flight = tokio::task::JoinSet::new();
    for n in 0..options.decisions {
        let template = &templates[rng.below(templates.len() as u64) as usize];
        let generated = generate(&plan, template, &mut rng, options, n)?;
        summary.decisions += 1;
        summary.findings += generated.record.findings.len() as u64;
        summary.feedback += generated.feedback.len() as u64;
        let writer = writer.clone();
        in_flight.spawn(async move {
            writer.record(generated.record).await?;
            for feedback in generated.feedback {
                writer.record_feedback(feedback).await?;
            }
            Ok::<(), AuditError>(())
        });
        while in_flight.len() >= options.concurrency.max(1) {
            finished(&mut in_flight, &progress).await?;
        }
    }
    while !in_flight.is_empty() {
        finished(&mut in_flight, &progress).await?;
    }
    Ok(summary)
}

async fn finished(
    in_flight: &mut tokio::task::JoinSet<Result<(), AuditError>>,
    progress: &(impl Fn(u64) + Send + Sync),
) -> Result<(), SeedError> {
    if let Some(done) = in_flight.join_next().await {
        done.map_err(|e| SeedError::Audit(AuditError::Stopped).with_join(e))??;
        progress(1);
    }
    Ok(())
}

impl SeedError {
    fn with_join(self, error: tokio::task::JoinError) -> Self {
        tracing::error!(%error, "seeding task failed");
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_move_together_and_other_strings_stay() {
        let mut value = serde_json::json!({
            "onset": "2026-11-13", "at": "2026-11-23T10:00:00Z", "text": "2026 dose", "n": 5,
            "list": ["2026-01-31"]
        });
        shift_dates(&mut value, -40);
        assert_eq!(value["onset"], "2026-10-04");
        assert_eq!(value["at"], "2026-10-14T10:00:00Z");
        assert_eq!(value["text"], "2026 dose");
        assert_eq!(value["list"][0], "2025-12-22");
    }

    #[test]
    fn every_demo_case_reads_and_the_rng_is_repeatable() {
        assert_eq!(templates().unwrap().len(), TEMPLATES.len());
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert!(Rng::new(1).below(10) < 10);
    }

    #[test]
    fn a_moved_case_keeps_the_findings_it_was_written_for() {
        let plan = Plan::builtin();
        let options = SeedOptions::new(10, 90, "2026-06-15T12:00:00Z".parse().unwrap());
        let templates = templates().unwrap();
        let mut rng = Rng::new(3);
        for template in &templates {
            let bytes = crate::canonical::to_vec(&template.value);
            let mut original = crate::decide::prepare(&bytes).unwrap();
            let expected =
                crate::decide::decide(&plan, &mut original, template.evaluated_at, Uuid::now_v7());
            let moved = generate(&plan, template, &mut rng, &options, 0).unwrap();
            let rules = |f: &[crate::audit::FindingRecord]| {
                f.iter().map(|f| f.rule_id.clone()).collect::<Vec<_>>()
            };
            let expected_rules: Vec<String> = expected
                .evaluation
                .findings
                .iter()
                .map(|f| f.rule_id.to_string())
                .collect();
            assert_eq!(rules(&moved.record.findings), expected_rules);
            assert!(moved.record.evaluated_at <= options.now);
            assert!(moved.record.evaluated_at > options.now - Duration::days(91));
        }
    }
}
