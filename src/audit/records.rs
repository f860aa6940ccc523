//! What the rest of the service hands to the audit writer, and the row images the hash chain
//! covers.
//!
//! A record becomes an [`Entry`] as soon as the writer accepts it: ids and receipt times are
//! fixed then, so a retry or a spool replay writes exactly the same row (idempotent on the id).

use crate::decision::{Decision, PathwayRef};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How the decision was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    CdsHooks,
    Native,
    Cli,
}

impl Channel {
    /// The spelling stored in `decisions.channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::CdsHooks => "cds-hooks",
            Channel::Native => "native",
            Channel::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "cds-hooks" => Some(Channel::CdsHooks),
            "native" => Some(Channel::Native),
            "cli" => Some(Channel::Cli),
            _ => None,
        }
    }
}

/// What the transport knows about a request (who asked, about whom), beside the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta {
    pub channel: Channel,
    pub hook: Option<String>,
    pub hook_instance: Option<String>,
    pub client_id: Option<String>,
    pub user_ref: Option<String>,
    pub patient_ref: Option<String>,
    pub encounter_ref: Option<String>,
}

impl RequestMeta {
    /// A request with only its channel known (CLI, tests).
    pub fn new(channel: Channel) -> Self {
        RequestMeta {
            channel,
            hook: None,
            hook_instance: None,
            client_id: None,
            user_ref: None,
            patient_ref: None,
            encounter_ref: None,
        }
    }
}

/// One finding as stored: enough for reports and feedback joins; the card text is in the
/// response bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    pub rule_id: String,
    pub severity: crate::decision::Severity,
    pub order_ref: Option<String>,
    pub card_uuid: Option<Uuid>,
    /// The numbers behind the finding, a JSON object.
    pub numbers: Value,
    /// The text values behind it (drug, unit, regimen), a JSON object of strings
    /// (`findings.labels`, added by migration 20261201000002; empty for older rows).
    #[serde(default = "empty_object")]
    pub labels: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// Everything the audit log keeps about one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub decision_id: Uuid,
    pub evaluated_at: DateTime<Utc>,
    pub channel: Channel,
    pub hook: Option<String>,
    /// Stored for tracing, never a key (clients reuse it).
    pub hook_instance: Option<String>,
    pub client_id: Option<String>,
    pub user_ref: Option<String>,
    pub patient_ref: Option<String>,
    pub encounter_ref: Option<String>,
    pub pathway: PathwayRef,
    /// Canonical JSON bytes of the input (see [`crate::canonical`]); stored as they are.
    pub canonical_input: Vec<u8>,
    /// The response bytes exactly as sent.
    pub response: Vec<u8>,
    pub findings: Vec<FindingRecord>,
    /// `Decision::evaluation.unrecognized`, a JSON array.
    pub unrecognized: Value,
    /// `Decision::evaluation.missing_inputs`, a JSON array.
    pub missing_inputs: Value,
}

impl AuditRecord {
    pub fn from_decision(
        decision: &Decision,
        meta: RequestMeta,
        canonical_input: Vec<u8>,
        response: Vec<u8>,
    ) -> Self {
        let findings = decision
            .evaluation
            .findings
            .iter()
            .enumerate()
            .map(|(index, finding)| FindingRecord {
                rule_id: finding.rule_id.to_string(),
                severity: finding.severity,
                order_ref: finding.order_ref.as_ref().map(|r| r.0.to_string()),
                card_uuid: Some(decision.card_uuid(index)),
                numbers: serde_json::to_value(&finding.numbers).unwrap_or_else(|_| json!({})),
                labels: serde_json::to_value(&finding.labels).unwrap_or_else(|_| json!({})),
            })
            .collect();
        AuditRecord {
            decision_id: decision.decision_id,
            evaluated_at: decision.evaluated_at,
            channel: meta.channel,
            hook: meta.hook,
            hook_instance: meta.hook_instance,
            client_id: meta.client_id,
            user_ref: meta.user_ref,
            patient_ref: meta.patient_ref,
            encounter_ref: meta.encounter_ref,
            pathway: decision.pathway.clone(),
            canonical_input,
            response,
            findings,
            unrecognized: serde_json::to_value(&decision.evaluation.unrecognized)
                .unwrap_or_else(|_| json!([])),
            missing_inputs: serde_json::to_value(&decision.evaluation.missing_inputs)
                .unwrap_or_else(|_| json!([])),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackOutcome {
    Accepted,
    Overridden,
}

impl FeedbackOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackOutcome::Accepted => "accepted",
            FeedbackOutcome::Overridden => "overridden",
        }
    }
}

/// A clinician's answer to a card (CDS Hooks feedback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub card_uuid: Uuid,
    /// The decision the card belongs to, when known (see [`super::find_card`]).
    pub decision_id: Option<Uuid>,
    pub outcome: FeedbackOutcome,
    /// Ids of the suggestions accepted.
    pub accepted_suggestions: Vec<String>,
    pub override_reason_code: Option<String>,
    pub override_comment: Option<String>,
    pub outcome_at: DateTime<Utc>,
    pub client_id: Option<String>,
}

/// A request refused before any decision (auth, schema, size). Never the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectionRecord {
    pub at: DateTime<Utc>,
    pub client_id: Option<String>,
    pub route: String,
    pub reason: String,
    /// HTTP status answered.
    pub status: u16,
    /// Lowercase hex SHA-256 of (a size-capped prefix of) the body.
    pub body_hash: Option<String>,
    pub body_len: u64,
}

/// A later action: pharmacist acknowledgement, replay, administrative event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// e.g. `dosing_alert.acknowledged`, `replay`.
    pub kind: String,
    /// Who did it (user reference or program name).
    pub actor: String,
    pub decision_id: Option<Uuid>,
    pub payload: Value,
}

/// A record accepted by the writer, with its id and times fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "table")]
pub enum Entry {
    Decision(Box<AuditRecord>),
    Feedback {
        feedback_id: Uuid,
        received_at: DateTime<Utc>,
        feedback: FeedbackRecord,
    },
    Rejection {
        rejection_id: Uuid,
        record: RejectionRecord,
    },
    Event {
        event_id: Uuid,
        occurred_at: DateTime<Utc>,
        event: EventRecord,
    },
}

/// PostgreSQL keeps microseconds; hashes must be computed over what it keeps.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    micros(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of a decision's stored byte columns (input and response), computed once when the
/// record is handed over, in the caller's task, and used for both the `*_sha256` columns and the
/// row image. All zero for the other tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Digests {
    pub input: [u8; 32],
    pub response: [u8; 32],
}

impl Entry {
    pub(crate) fn digests(&self) -> Digests {
        match self {
            Entry::Decision(r) => Digests {
                input: sha256(&r.canonical_input),
                response: sha256(&r.response),
            },
            _ => Digests::default(),
        }
    }

    pub(crate) fn decision(record: AuditRecord) -> Entry {
        let mut record = record;
        record.evaluated_at = micros(record.evaluated_at);
        // The database insists on these shapes; coerce here rather than lose a whole batch.
        for finding in &mut record.findings {
            if !finding.numbers.is_object() {
                finding.numbers = match finding.numbers.take() {
                    Value::Null => json!({}),
                    other => json!({ "value": other }),
                };
            }
            if !finding.labels.is_object() {
                finding.labels = json!({});
            }
        }
        for list in [&mut record.unrecognized, &mut record.missing_inputs] {
            if !list.is_array() {
                *list = match list.take() {
                    Value::Null => json!([]),
                    other => json!([other]),
                };
            }
        }
        Entry::Decision(Box::new(record))
    }

    pub(crate) fn feedback(mut feedback: FeedbackRecord) -> Entry {
        feedback.outcome_at = micros(feedback.outcome_at);
        Entry::Feedback {
            feedback_id: Uuid::now_v7(),
            received_at: micros(Utc::now()),
            feedback,
        }
    }

    pub(crate) fn rejection(mut record: RejectionRecord) -> Entry {
        record.at = micros(record.at);
        record.body_hash = record.body_hash.map(|h| h.to_ascii_lowercase());
        Entry::Rejection {
            rejection_id: Uuid::now_v7(),
            record,
        }
    }

    pub(crate) fn event(event: EventRecord) -> Entry {
        Entry::Event {
            event_id: Uuid::now_v7(),
            occurred_at: micros(Utc::now()),
            event,
        }
    }

    /// The id the row is unique on (with its time).
    pub fn id(&self) -> Uuid {
        match self {
            Entry::Decision(r) => r.decision_id,
            Entry::Feedback { feedback_id, .. } => *feedback_id,
            Entry::Rejection { rejection_id, .. } => *rejection_id,
            Entry::Event { event_id, .. } => *event_id,
        }
    }

    /// The row image the hash chain covers, exactly as [`super::chain`] rebuilds it from the
    /// stored columns. `digests` are this entry's [`Entry::digests`]: at insert time the stored
    /// hash columns are those same digests, so each is computed once.
    pub(crate) fn row_image(
        &self,
        chain_id: &str,
        seq: i64,
        pos: i32,
        recorded_at: DateTime<Utc>,
        digests: &Digests,
    ) -> Value {
        match self {
            Entry::Decision(r) => DecisionImage {
                decision_id: r.decision_id,
                evaluated_at: micros(r.evaluated_at),
                recorded_at: micros(recorded_at),
                channel: r.channel.as_str().to_owned(),
                hook: r.hook.clone(),
                hook_instance: r.hook_instance.clone(),
                client_id: r.client_id.clone(),
                user_ref: r.user_ref.clone(),
                patient_ref: r.patient_ref.clone(),
                encounter_ref: r.encounter_ref.clone(),
                pathway_id: r.pathway.id.clone(),
                pathway_version: r.pathway.version.clone(),
                pathway_hash: r.pathway.content_hash.clone(),
                input_sha256: digests.input,
                stored_input_sha256: digests.input.to_vec(),
                response_sha256: digests.response,
                stored_response_sha256: digests.response.to_vec(),
                unrecognized: r.unrecognized.clone(),
                missing_inputs: r.missing_inputs.clone(),
                findings: r
                    .findings
                    .iter()
                    .enumerate()
                    .map(|(i, f)| FindingImage {
                        finding_index: i as i32,
                        rule_id: f.rule_id.clone(),
                        severity: f.severity.as_str().to_owned(),
                        order_ref: f.order_ref.clone(),
                        card_uuid: f.card_uuid,
                        numbers: f.numbers.clone(),
                        labels: f.labels.clone(),
                    })
                    .collect(),
                finding_count: r.findings.len() as i32,
            }
            .image(chain_id, seq, pos),
            Entry::Feedback {
                feedback_id,
                received_at,
                feedback: f,
            } => FeedbackImage {
                feedback_id: *feedback_id,
                received_at: *received_at,
                card_uuid: f.card_uuid,
                decision_id: f.decision_id,
                outcome: f.outcome.as_str().to_owned(),
                accepted_suggestions: json!(f.accepted_suggestions),
                override_reason_code: f.override_reason_code.clone(),
                override_comment: f.override_comment.clone(),
                outcome_at: f.outcome_at,
                client_id: f.client_id.clone(),
            }
            .image(chain_id, seq, pos),
            Entry::Rejection {
                rejection_id,
                record: r,
            } => RejectionImage {
                rejection_id: *rejection_id,
                rejected_at: r.at,
                client_id: r.client_id.clone(),
                route: r.route.clone(),
                reason: r.reason.clone(),
                status: i32::from(r.status),
                body_sha256: r.body_hash.clone(),
                body_len: r.body_len as i64,
            }
            .image(chain_id, seq, pos),
            Entry::Event {
                event_id,
                occurred_at,
                event: e,
            } => EventImage {
                event_id: *event_id,
                occurred_at: *occurred_at,
                kind: e.kind.clone(),
                actor: e.actor.clone(),
                decision_id: e.decision_id,
                payload: e.payload.clone(),
            }
            .image(chain_id, seq, pos),
        }
    }
}

/// Columns of one `findings` row, as hashed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct FindingImage {
    pub finding_index: i32,
    pub rule_id: String,
    pub severity: String,
    pub order_ref: Option<String>,
    pub card_uuid: Option<Uuid>,
    pub numbers: Value,
    pub labels: Value,
}

/// Columns of one `decisions` row with its findings, as hashed. The byte columns enter the
/// image through their SHA-256, recomputed from the stored bytes, and the stored hash columns
/// separately, so changing either shows.
#[derive(Debug, Clone)]
pub(crate) struct DecisionImage {
    pub decision_id: Uuid,
    pub evaluated_at: DateTime<Utc>,
    /// The time of the batch that stored the row.
    pub recorded_at: DateTime<Utc>,
    pub channel: String,
    pub hook: Option<String>,
    pub hook_instance: Option<String>,
    pub client_id: Option<String>,
    pub user_ref: Option<String>,
    pub patient_ref: Option<String>,
    pub encounter_ref: Option<String>,
    pub pathway_id: String,
    pub pathway_version: String,
    pub pathway_hash: String,
    pub input_sha256: [u8; 32],
    pub stored_input_sha256: Vec<u8>,
    pub response_sha256: [u8; 32],
    pub stored_response_sha256: Vec<u8>,
    pub unrecognized: Value,
    pub missing_inputs: Value,
    pub findings: Vec<FindingImage>,
    pub finding_count: i32,
}

fn position(value: &mut Value, table: &str, chain_id: &str, seq: i64, pos: i32) {
    let object = value.as_object_mut().expect("row images are objects");
    object.insert("table".into(), json!(table));
    object.insert("chain_id".into(), json!(chain_id));
    object.insert("batch_seq".into(), json!(seq));
    object.insert("batch_pos".into(), json!(pos));
}

impl DecisionImage {
    pub(crate) fn image(&self, chain_id: &str, seq: i64, pos: i32) -> Value {
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut finding = json!({
                    "finding_index": f.finding_index,
                    "rule_id": f.rule_id,
                    "severity": f.severity,
                    "order_ref": f.order_ref,
                    "card_uuid": f.card_uuid,
                    "numbers": f.numbers,
                });
                // Rows from before the labels column have `{}` there and were hashed without
                // the member; any non-empty labels are covered by the hash.
                if f.labels.as_object().is_none_or(|l| !l.is_empty()) {
                    finding["labels"] = f.labels.clone();
                }
                finding
            })
            .collect();
        let mut value = json!({
            "decision_id": self.decision_id,
            "evaluated_at": timestamp(self.evaluated_at),
            "recorded_at": timestamp(self.recorded_at),
            "channel": self.channel,
            "hook": self.hook,
            "hook_instance": self.hook_instance,
            "client_id": self.client_id,
            "user_ref": self.user_ref,
            "patient_ref": self.patient_ref,
            "encounter_ref": self.encounter_ref,
            "pathway_id": self.pathway_id,
            "pathway_version": self.pathway_version,
            "pathway_hash": self.pathway_hash,
            "input_sha256": hex::encode(self.input_sha256),
            "stored_input_sha256": hex::encode(&self.stored_input_sha256),
            "response_sha256": hex::encode(self.response_sha256),
            "stored_response_sha256": hex::encode(&self.stored_response_sha256),
            "unrecognized": self.unrecognized,
            "missing_inputs": self.missing_inputs,
            "finding_count": self.finding_count,
            "findings": findings,
        });
        position(&mut value, "decisions", chain_id, seq, pos);
        value
    }
}

#[derive(Debug, Clone)]
pub(crate) struct FeedbackImage {
    pub feedback_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub card_uuid: Uuid,
    pub decision_id: Option<Uuid>,
    pub outcome: String,
    pub accepted_suggestions: Value,
    pub override_reason_code: Option<String>,
    pub override_comment: Option<String>,
    pub outcome_at: DateTime<Utc>,
    pub client_id: Option<String>,
}

impl FeedbackImage {
    pub(crate) fn image(&self, chain_id: &str, seq: i64, pos: i32) -> Value {
        let mut value = json!({
            "feedback_id": self.feedback_id,
            "received_at": timestamp(self.received_at),
            "card_uuid": self.card_uuid,
            "decision_id": self.decision_id,
            "outcome": self.outcome,
            "accepted_suggestions": self.accepted_suggestions,
            "override_reason_code": self.override_reason_code,
            "override_comment": self.override_comment,
            "outcome_at": timestamp(self.outcome_at),
            "client_id": self.client_id,
        });
        position(&mut value, "feedback", chain_id, seq, pos);
        value
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RejectionImage {
    pub rejection_id: Uuid,
    pub rejected_at: DateTime<Utc>,
    pub client_id: Option<String>,
    pub route: String,
    pub reason: String,
    pub status: i32,
    pub body_sha256: Option<String>,
    pub body_len: i64,
}

impl RejectionImage {
    pub(crate) fn image(&self, chain_id: &str, seq: i64, pos: i32) -> Value {
        let mut value = json!({
            "rejection_id": self.rejection_id,
            "rejected_at": timestamp(self.rejected_at),
            "client_id": self.client_id,
            "route": self.route,
            "reason": self.reason,
            "status": self.status,
            "body_sha256": self.body_sha256,
            "body_len": self.body_len,
        });
        position(&mut value, "rejected_requests", chain_id, seq, pos);
        value
    }
}

#[derive(Debug, Clone)]
pub(crate) struct EventImage {
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub decision_id: Option<Uuid>,
    pub payload: Value,
}

impl EventImage {
    pub(crate) fn image(&self, chain_id: &str, seq: i64, pos: i32) -> Value {
        let mut value = json!({
            "event_id": self.event_id,
            "occurred_at": timestamp(self.occurred_at),
            "kind": self.kind,
            "actor": self.actor,
            "decision_id": self.decision_id,
            "payload": self.payload,
        });
        position(&mut value, "audit_events", chain_id, seq, pos);
        value
    }
}
