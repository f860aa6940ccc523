//! The determinism check: each stored decision, replayed under the pathway version that decided
//! it (found by its `pathway_hash` among the recorded versions and the shipped one), at its own
//! `evaluated_at` and with its own decision id, must give exactly the stored findings (rule id,
//! severity, order ref, card uuid, numbers, in order), unrecognized orders and missing inputs,
//! and an answer whose SHA-256 is the stored `response_sha256` (the answer is rendered from the
//! decision and the stored input alone, so the hash is meaningful for every channel).

use super::{Job, RunStats, StoredDecision, Window, same_json};
use crate::audit::versions::KnownPlan;
use crate::audit::{AuditRecord, Channel, RequestMeta};
use serde::Serialize;
use std::collections::BTreeMap;
use uuid::Uuid;

pub struct Determinism {
    /// By content hash.
    pub plans: BTreeMap<String, KnownPlan>,
}

/// A decision that did not reproduce.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Difference {
    pub decision_id: Uuid,
    pub pathway_version: String,
    /// What differs, one line each (never patient data: rule ids, indexes, numbers' names).
    pub details: Vec<String>,
}

/// Decisions that could not be replayed, by pathway hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub pathway_hash: String,
    pub pathway_version: String,
    pub decisions: u64,
    pub reason: String,
}

/// Differences kept in full; beyond it only counted.
const KEEP_DIFFERENCES: usize = 1000;

#[derive(Debug, Default)]
pub struct DeterminismAcc {
    replayed: u64,
    reproduced: u64,
    findings_compared: u64,
    differing: u64,
    response_differs: u64,
    differences: Vec<Difference>,
    skipped: BTreeMap<String, Skipped>,
}

impl Determinism {
    fn skip(acc: &mut DeterminismAcc, stored: &StoredDecision, reason: String) {
        acc.skipped
            .entry(stored.pathway_hash.clone())
            .or_insert_with(|| Skipped {
                pathway_hash: stored.pathway_hash.clone(),
                pathway_version: stored.pathway_version.clone(),
                decisions: 0,
                reason,
            })
            .decisions += 1;
    }
}

/// What differs between a stored decision and its replay (empty: reproduced).
fn compare(stored: &StoredDecision, replayed: &AuditRecord, response_sha256: &[u8]) -> Vec<String> {
    let mut details = Vec::new();
    if stored.findings.len() != replayed.findings.len() {
        details.push(format!(
            "{} finding(s) stored, {} replayed",
            stored.findings.len(),
            replayed.findings.len()
        ));
    }
    for (i, (s, r)) in stored.findings.iter().zip(&replayed.findings).enumerate() {
        if s.rule_id != r.rule_id {
            details.push(format!(
                "finding {i}: rule {} stored, {} replayed",
                s.rule_id, r.rule_id
            ));
            continue;
        }
        let rule = &s.rule_id;
        if s.severity != r.severity.as_str() {
            details.push(format!(
                "finding {i} ({rule}): severity {} stored, {} replayed",
                s.severity,
                r.severity.as_str()
            ));
        }
        if s.order_ref != r.order_ref {
            details.push(format!("finding {i} ({rule}): order ref differs"));
        }
        if s.card_uuid != r.card_uuid {
            details.push(format!("finding {i} ({rule}): card uuid differs"));
        }
        if !same_json(&s.numbers, &r.numbers) {
            let mut names: Vec<&String> = s
                .numbers
                .as_object()
                .into_iter()
                .chain(r.numbers.as_object())
                .flat_map(|m| m.keys())
                .filter(|k| !same_json(&s.numbers[k.as_str()], &r.numbers[k.as_str()]))
                .collect();
            names.sort();
            names.dedup();
            details.push(format!(
                "finding {i} ({rule}): numbers differ: {}",
                names
                    .iter()
                    .map(|n| format!(
                        "{n} stored {} replayed {}",
                        s.numbers[n.as_str()],
                        r.numbers[n.as_str()]
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if !same_json(&stored.unrecognized, &replayed.unrecognized) {
        details.push("unrecognized orders differ".into());
    }
    if !same_json(&stored.missing_inputs, &replayed.missing_inputs) {
        details.push("missing inputs differ".into());
    }
    if stored.response_sha256 != response_sha256 {
        details.push("response differs (SHA-256 of the rendered answer)".into());
    }
    details
}

impl Job for Determinism {
    type Acc = DeterminismAcc;

    fn replay_one(&self, stored: StoredDecision, acc: &mut DeterminismAcc) {
        let plan = match self.plans.get(&stored.pathway_hash) {
            Some(Ok(plan)) => plan.clone(),
            Some(Err(reason)) => return Self::skip(acc, &stored, reason.clone()),
            None => {
                return Self::skip(
                    acc,
                    &stored,
                    "no pathway version with this hash is recorded (and it is not the shipped one)"
                        .into(),
                );
            }
        };
        let Some(channel) = Channel::parse(&stored.channel) else {
            return Self::skip(
                acc,
                &stored,
                format!("unknown channel {:?}", stored.channel),
            );
        };
        acc.replayed += 1;
        let details = match crate::decide::from_stored(&stored.canonical_input) {
            Err(e) => vec![format!("the stored input cannot be read back: {e}")],
            Ok(mut prepared) => {
                let decision = crate::decide::decide(
                    &plan,
                    &mut prepared,
                    stored.evaluated_at,
                    stored.decision_id,
                );
                let answer = crate::decide::render(&prepared, &decision);
                let response = crate::decide::response_bytes(channel, &answer);
                let response_sha256 = crate::audit::records::sha256(&response);
                let record = AuditRecord::from_decision(
                    &decision,
                    RequestMeta::new(channel),
                    Vec::new(),
                    response,
                );
                acc.findings_compared += stored.findings.len() as u64;
                compare(&stored, &record, &response_sha256)
            }
        };
        if details.is_empty() {
            acc.reproduced += 1;
            return;
        }
        acc.differing += 1;
        if details.iter().any(|d| d.starts_with("response differs")) {
            acc.response_differs += 1;
        }
        if acc.differences.len() < KEEP_DIFFERENCES {
            acc.differences.push(Difference {
                decision_id: stored.decision_id,
                pathway_version: stored.pathway_version,
                details,
            });
        }
    }

    fn merge(into: &mut DeterminismAcc, other: DeterminismAcc) {
        into.replayed += other.replayed;
        into.reproduced += other.reproduced;
        into.findings_compared += other.findings_compared;
        into.differing += other.differing;
        into.response_differs += other.response_differs;
        into.differences.extend(other.differences);
        for (hash, s) in other.skipped {
            match into.skipped.get_mut(&hash) {
                Some(mine) => mine.decisions += s.decisions,
                None => {
                    into.skipped.insert(hash, s);
                }
            }
        }
    }
}

/// The determinism report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeterminismReport {
    pub window: Window,
    /// Decisions in the window.
    pub decisions: u64,
    /// Replayed under their own version.
    pub replayed: u64,
    /// Of those, reproduced exactly.
    pub reproduced: u64,
    pub findings_compared: u64,
    /// Decisions that differ (all of them, even beyond the ones listed).
    pub differing: u64,
    /// Of those, how many differ in the rendered answer's hash.
    pub response_differs: u64,
    /// The first differences, by decision id (at most 1000).
    pub differences: Vec<Difference>,
    /// Not replayable, with why, by pathway hash.
    pub skipped: Vec<Skipped>,
    pub skipped_decisions: u64,
    pub run: RunStats,
}

impl DeterminismReport {
    pub fn is_clean(&self) -> bool {
        self.differing == 0
    }
}

impl Determinism {
    pub fn report(&self, window: Window, acc: DeterminismAcc, run: RunStats) -> DeterminismReport {
        let mut differences = acc.differences;
        differences.sort();
        differences.truncate(KEEP_DIFFERENCES);
        let skipped: Vec<Skipped> = acc.skipped.into_values().collect();
        DeterminismReport {
            window,
            decisions: run.decisions,
            replayed: acc.replayed,
            reproduced: acc.reproduced,
            findings_compared: acc.findings_compared,
            differing: acc.differing,
            response_differs: acc.response_differs,
            differences,
            skipped_decisions: skipped.iter().map(|s| s.decisions).sum(),
            skipped,
            run,
        }
    }
}
