//! The pharmacist dosing-alert queue and the FHIR AuditEvent export against a real PostgreSQL
//! (a database per test): real decisions from the clinical fixture cases, recorded through the
//! real audit writer, then listed, filtered, acted on and exported.

#[path = "common/cases.rs"]
mod cases;

use chrono::{DateTime, Duration, Utc};
use orderguard::audit::{self, AuditWriter, WriterConfig};
use orderguard::audit_export::{self, ExportQuery};
use orderguard::decision::Decision;
use orderguard::pharmacy::{self, AlertAction, AlertKey, AlertQuery, AlertStatus, QueueError};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

async fn writer(pool: &PgPool, spool: &tempfile::TempDir) -> AuditWriter {
    let mut config = WriterConfig::new(spool.path().to_owned());
    config.max_wait = std::time::Duration::from_millis(2);
    config.lanes = 1;
    AuditWriter::start(pool.clone(), config)
        .await
        .expect("writer starts")
}

fn case_now() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

async fn record_case(w: &AuditWriter, file: &str, patient: &str, minutes: i64) -> Decision {
    let patient = patient.trim_start_matches("Patient/");
    cases::record_case(w, file, patient, case_now() + Duration::minutes(minutes)).await
}

/// Four decisions a minute apart: MME (t+0), acetaminophen (t+1), calcium (t+2), bed rest
/// (t+3, no DOSE finding).
async fn seed(w: &AuditWriter) -> Vec<Decision> {
    vec![
        record_case(w, "09-mme-90-oxycodone.json", "Patient/a", 0).await,
        record_case(w, "41-acetaminophen-4g-at-72.json", "Patient/b", 1).await,
        record_case(w, "43-calcium-over-upper-limit.json", "Patient/a", 2).await,
        record_case(w, "03-bedrest-72h.json", "Patient/c", 3).await,
    ]
}

fn key(d: &Decision, index: i32) -> AlertKey {
    AlertKey {
        decision_id: d.decision_id,
        finding_index: index,
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn the_queue_lists_every_dose_finding_newest_first_with_drug_numbers_and_limit(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, &spool).await;
    let decisions = seed(&w).await;
    let alerts = pharmacy::list(&pool, &AlertQuery::default()).await.unwrap();

    let want: Vec<(Uuid, String)> = decisions
        .iter()
        .rev()
        .flat_map(|d| {
            d.evaluation
                .findings
                .iter()
                .filter(|f| f.rule_id.starts_with("DOSE-"))
                .map(|f| (d.decision_id, f.rule_id.to_string()))
        })
        .collect();
    let got: Vec<(Uuid, String)> = alerts
        .iter()
        .map(|a| (a.decision_id, a.rule_id.clone()))
        .collect();
    assert_eq!(got, want, "DOSE findings only, newest first");
    assert_eq!(
        got.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>(),
        ["DOSE-SUPPLEMENT-UL", "DOSE-MAX-DAILY", "DOSE-MME-90"]
    );
    assert!(alerts.iter().all(|a| a.status == AlertStatus::Open));

    // Acetaminophen 4 g at 72: the daily amount and the limit as the engine computed them.
    let apap = &alerts[1];
    let finding = &decisions[1].evaluation.findings[0];
    assert_eq!(apap.patient_ref.as_deref(), Some("Patient/b"));
    assert_eq!(apap.drug.as_deref(), Some("acetaminophen"));
    let value = apap.value.as_ref().expect("the computed daily amount");
    let limit = apap.limit.as_ref().expect("the limit");
    assert_eq!(value.value, finding.numbers["daily_amount"]);
    assert_eq!(limit.value, finding.numbers["limit"]);
    assert_eq!(value.unit.as_deref(), Some("mg/day"));
    assert!(
        value.value.as_f64().unwrap() > limit.value.as_f64().unwrap(),
        "{value:?} over {limit:?}"
    );
    assert_eq!(
        apap.order_ref,
        finding.order_ref.as_ref().map(|o| o.0.to_string())
    );

    // Oxycodone: MME/day against the 90 threshold.
    let mme = &alerts[2];
    assert_eq!(mme.value.as_ref().unwrap().unit.as_deref(), Some("MME/day"));
    assert_eq!(mme.limit.as_ref().unwrap().value, json!(90));
    assert!(
        mme.drug.as_deref().unwrap().contains("oxycodone"),
        "{:?}",
        mme.drug
    );

    // Calcium: elemental mg/day over the upper limit.
    let calcium = &alerts[0];
    assert_eq!(calcium.drug.as_deref(), Some("Elemental calcium"));
    assert_eq!(
        calcium.limit.as_ref().unwrap().unit.as_deref(),
        Some("mg/day")
    );
    w.shutdown().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn filters_by_status_rule_window_and_patient(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, &spool).await;
    let d = seed(&w).await;
    let list = |q: AlertQuery| {
        let pool = pool.clone();
        async move {
            pharmacy::list(&pool, &q)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.rule_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(AlertQuery {
            rule: Some("DOSE-MAX-DAILY".into()),
            ..Default::default()
        })
        .await,
        ["DOSE-MAX-DAILY"]
    );
    // The window is [from, to): t+1 min is in, t+2 min is out.
    assert_eq!(
        list(AlertQuery {
            from: Some(case_now() + Duration::minutes(1)),
            to: Some(case_now() + Duration::minutes(2)),
            ..Default::default()
        })
        .await,
        ["DOSE-MAX-DAILY"]
    );
    assert_eq!(
        list(AlertQuery {
            patient: Some("Patient/a".into()),
            ..Default::default()
        })
        .await,
        ["DOSE-SUPPLEMENT-UL", "DOSE-MME-90"]
    );
    assert_eq!(
        list(AlertQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await,
        ["DOSE-SUPPLEMENT-UL"]
    );

    pharmacy::act(
        &pool,
        &w,
        key(&d[0], 0),
        AlertAction::Acknowledge,
        None,
        "key:ph",
    )
    .await
    .unwrap();
    pharmacy::act(
        &pool,
        &w,
        key(&d[2], 0),
        AlertAction::Resolve,
        None,
        "key:ph",
    )
    .await
    .unwrap();
    let status = |s| AlertQuery {
        status: Some(s),
        ..Default::default()
    };
    assert_eq!(list(status(AlertStatus::Open)).await, ["DOSE-MAX-DAILY"]);
    assert_eq!(
        list(status(AlertStatus::Acknowledged)).await,
        ["DOSE-MME-90"]
    );
    assert_eq!(
        list(status(AlertStatus::Resolved)).await,
        ["DOSE-SUPPLEMENT-UL"]
    );
    assert!(list(status(AlertStatus::Escalated)).await.is_empty());

    // Injection strings are values like any other: nothing matches, nothing breaks.
    for evil in [
        "DOSE-MME-90' OR '1'='1",
        "'; DROP TABLE findings; --",
        "DOSE-%",
        "\\' OR 1=1 --",
        "Patient/a' OR 'x'='x",
    ] {
        assert!(
            list(AlertQuery {
                rule: Some(evil.into()),
                ..Default::default()
            })
            .await
            .is_empty(),
            "rule {evil}"
        );
        assert!(
            list(AlertQuery {
                patient: Some(evil.into()),
                ..Default::default()
            })
            .await
            .is_empty(),
            "patient {evil}"
        );
    }
    assert_eq!(
        list(AlertQuery::default()).await.len(),
        3,
        "the tables are intact"
    );
    w.shutdown().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn actions_append_events_and_the_status_follows_the_latest(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, &spool).await;
    let d = seed(&w).await;
    let k = key(&d[1], 0);
    let events = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_events")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let status = || async { pharmacy::get(&pool, k).await.unwrap().unwrap() };
    assert_eq!(status().await.status, AlertStatus::Open);

    let steps = [
        (
            AlertAction::Acknowledge,
            AlertStatus::Acknowledged,
            "seen, calling",
        ),
        (
            AlertAction::Escalate,
            AlertStatus::Escalated,
            "prescriber unreachable",
        ),
        (
            AlertAction::Acknowledge,
            AlertStatus::Acknowledged,
            "attending took it",
        ),
        (
            AlertAction::Resolve,
            AlertStatus::Resolved,
            "dose reduced to 3 g/day",
        ),
    ];
    for (n, (action, expected, note)) in steps.into_iter().enumerate() {
        let outcome = pharmacy::act(&pool, &w, k, action, Some(note), "key:pharmacist-1")
            .await
            .unwrap();
        assert_eq!(outcome.status, expected);
        assert_eq!(events().await, n as i64 + 1, "one appended row per action");
        let alert = status().await;
        assert_eq!(alert.status, expected);
        let last = alert.last_action.unwrap();
        assert_eq!(last.by, "key:pharmacist-1");
        assert_eq!(last.note.as_deref(), Some(note));
    }
    // Resolved is final; repeating a status is refused; neither writes anything.
    for action in AlertAction::ALL {
        let refused = pharmacy::act(&pool, &w, k, action, None, "key:pharmacist-1").await;
        assert!(
            matches!(refused, Err(QueueError::Transition(t)) if t.from == AlertStatus::Resolved),
            "{action:?}"
        );
    }
    let other = key(&d[0], 0);
    pharmacy::act(&pool, &w, other, AlertAction::Escalate, None, "key:p")
        .await
        .unwrap();
    assert!(matches!(
        pharmacy::act(&pool, &w, other, AlertAction::Escalate, None, "key:p").await,
        Err(QueueError::Transition(_))
    ));
    assert_eq!(events().await, 5);

    // Unknown alerts: a finding that does not exist, and a finding that is not a DOSE rule.
    for missing in [key(&d[1], 7), key(&d[3], 0)] {
        assert!(matches!(
            pharmacy::act(&pool, &w, missing, AlertAction::Resolve, None, "key:p").await,
            Err(QueueError::NotFound(_))
        ));
    }

    let row: (String, String, Value) = sqlx::query_as(
        "SELECT kind, actor, payload FROM audit_events WHERE decision_id = $1 \
         ORDER BY occurred_at DESC, event_id DESC LIMIT 1",
    )
    .bind(k.decision_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.0, "dosing_alert.resolved");
    assert_eq!(row.1, "key:pharmacist-1");
    assert_eq!(row.2["finding_index"], 0);
    assert_eq!(row.2["from"], "acknowledged");
    assert_eq!(row.2["rule_id"], "DOSE-MAX-DAILY");
    w.shutdown().await;
    let report = audit::verify(&pool, None, false).await.unwrap();
    assert!(report.is_clean(), "{report}");
}

#[sqlx::test(migrations = "./migrations")]
async fn the_recorded_labels_are_covered_by_the_hash_chain(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, &spool).await;
    let d = record_case(&w, "41-acetaminophen-4g-at-72.json", "Patient/b", 0).await;
    w.shutdown().await;
    let labels: Value = sqlx::query_scalar("SELECT labels FROM findings WHERE decision_id = $1")
        .bind(d.decision_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(labels["ingredient"], "acetaminophen");
    assert_eq!(labels["unit"], "mg/day");
    assert!(audit::verify(&pool, None, false).await.unwrap().is_clean());

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE findings SET labels = jsonb_set(labels, '{ingredient}', '\"ibuprofen\"') \
         WHERE decision_id = $1",
    )
    .bind(d.decision_id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let report = audit::verify(&pool, None, false).await.unwrap();
    assert!(
        !report.is_clean(),
        "a changed drug name must break the chain"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn the_export_is_a_valid_searchset_of_audit_events_for_the_patient(pool: PgPool) {
    let spool = tempfile::tempdir().unwrap();
    let w = writer(&pool, &spool).await;
    let d = seed(&w).await;
    pharmacy::act(
        &pool,
        &w,
        key(&d[0], 0),
        AlertAction::Acknowledge,
        Some("ok"),
        "key:ph",
    )
    .await
    .unwrap();
    w.record_rejection(audit::RejectionRecord {
        at: Utc::now(),
        client_id: None,
        route: "/v1/validate".into(),
        reason: "schema".into(),
        status: 400,
        body_hash: None,
        body_len: 3,
    })
    .await
    .unwrap();
    w.shutdown().await;
    let window = |patient: Option<&str>| ExportQuery {
        patient: patient.map(str::to_owned),
        from: case_now() - Duration::days(1),
        to: Utc::now() + Duration::minutes(1),
        count: 100,
        offset: 0,
    };

    let page = audit_export::export(&pool, &window(Some("Patient/a")))
        .await
        .unwrap();
    let bundle = audit_export::bundle(page.events.clone(), "/v1/audit-events", None, Utc::now());
    assert_eq!(audit_export::validate_bundle(&bundle), Vec::<String>::new());
    // Patient/a: two decisions and the pharmacist's acknowledgement; no rejection (no patient).
    let subtypes: Vec<&str> = page
        .events
        .iter()
        .map(|e| e["subtype"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        subtypes,
        ["decision", "decision", "dosing_alert.acknowledged"]
    );
    for event in &page.events {
        assert!(
            event["entity"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["what"]["reference"] == "Patient/a"),
            "{event:#}"
        );
        assert_eq!(
            event["agent"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["requestor"] == true)
                .count(),
            1,
            "exactly one requestor: {event:#}"
        );
    }
    let decision = &page.events[0];
    assert_eq!(decision["id"], d[0].decision_id.to_string());
    assert_eq!(decision["action"], "E");
    assert_eq!(
        decision["agent"][0]["who"]["reference"],
        "Practitioner/dr-case"
    );
    let order = d[0].evaluation.findings[0]
        .order_ref
        .as_ref()
        .unwrap()
        .0
        .to_string();
    let entities = decision["entity"].as_array().unwrap();
    // Native order ids are not FHIR references: they are exported as identifiers.
    assert!(
        entities
            .iter()
            .any(|e| e["what"]["reference"] == order.as_str()
                || (e["what"]["identifier"]["system"] == "urn:orderguard:order"
                    && e["what"]["identifier"]["value"] == order.as_str())),
        "{order}"
    );
    assert!(
        entities
            .iter()
            .any(|e| e["what"]["identifier"]["value"] == d[0].pathway.version)
    );
    let ack = &page.events[2];
    assert_eq!(ack["action"], "U");
    assert_eq!(ack["agent"][0]["who"]["identifier"]["value"], "key:ph");

    // Everyone: four decisions, the acknowledgement and the rejection, oldest first, paged.
    let all = audit_export::export(&pool, &window(None)).await.unwrap();
    assert_eq!(all.events.len(), 6);
    assert_eq!(all.events[5]["outcome"], "4");
    let recorded: Vec<&str> = all
        .events
        .iter()
        .map(|e| e["recorded"].as_str().unwrap())
        .collect();
    let mut sorted = recorded.clone();
    sorted.sort();
    assert_eq!(recorded, sorted);
    let first = audit_export::export(
        &pool,
        &ExportQuery {
            count: 4,
            ..window(None)
        },
    )
    .await
    .unwrap();
    assert!(first.more);
    let rest = audit_export::export(
        &pool,
        &ExportQuery {
            count: 4,
            offset: 4,
            ..window(None)
        },
    )
    .await
    .unwrap();
    assert!(!rest.more);
    assert_eq!(first.events.len() + rest.events.len(), 6);
    assert_eq!(rest.events[0]["id"], all.events[4]["id"]);

    for evil in ["Patient/a' OR '1'='1", "'; DELETE FROM decisions; --"] {
        let none = audit_export::export(&pool, &window(Some(evil)))
            .await
            .unwrap();
        assert!(none.events.is_empty(), "{evil}");
    }
}
