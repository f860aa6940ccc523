//! Issue 3's promise under a crash: every decision a client was answered is in PostgreSQL with
//! its findings after `kill -9` mid-load and a restart, and the audit chains still verify.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;

use crate::support::{Http, fixture, read_bytes, spawn_app};

const CLIENTS: usize = 16;
/// Answered decisions before the kill: enough that the kill lands mid-load on a busy machine too.
const ANSWERED_BEFORE_KILL: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_decision_survives_kill_9_and_the_log_verifies() {
    let mut app = spawn_app().await;
    let url = app.url("/v1/validate");
    // One order set with findings, one with few or none, so both kinds of rows are checked.
    let bodies = [
        Bytes::from(read_bytes(fixture("native/valid-vcf-full.json"))),
        Bytes::from(read_bytes(fixture("native/valid-minimal.json"))),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let answered_so_far = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, url, stop) = (Http::new(), url.clone(), stop.clone());
        let answered_so_far = answered_so_far.clone();
        let body = bodies[client % bodies.len()].clone();
        clients.push(tokio::spawn(async move {
            // decision id -> findings in the answer
            let mut answered: HashMap<Uuid, usize> = HashMap::new();
            let mut failures = 0usize;
            while !stop.load(Ordering::Relaxed) {
                match http.post(&url, body.clone()).await {
                    Ok(answer) if answer.status == 200 => {
                        let decision = answer.json();
                        let id = decision["decision_id"]
                            .as_str()
                            .and_then(|s| Uuid::parse_str(s).ok())
                            .expect("a 200 carries its decision_id");
                        let findings = decision["findings"].as_array().map_or(0, Vec::len);
                        assert!(answered.insert(id, findings).is_none(), "id given twice");
                        answered_so_far.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(answer) => panic!(
                        "a request under load answered {}: {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body)
                    ),
                    // The server is gone (killed): connection refused or reset.
                    Err(_) => {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (answered, failures)
        }));
    }

    // Kill once enough answers are out, not after a fixed time: on a machine busy with other
    // work a fixed sleep may see too few answers to test anything.
    let started = Instant::now();
    while answered_so_far.load(Ordering::Relaxed) < ANSWERED_BEFORE_KILL
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.server.kill();
    let killed_after = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered: HashMap<Uuid, usize> = HashMap::new();
    let mut failures = 0;
    for client in clients {
        let (mine, failed) = client.await.expect("a client task");
        answered.extend(mine);
        failures += failed;
    }
    assert!(
        answered.len() >= ANSWERED_BEFORE_KILL,
        "too little load to test a crash: {} decisions in {killed_after:?}",
        answered.len()
    );
    assert!(
        failures > 0,
        "no request failed: the kill did not land mid-load"
    );
    assert!(
        answered.values().any(|&n| n > 0),
        "some answers must have findings"
    );
    eprintln!(
        "crash: {} decisions answered in {killed_after:?} before kill -9 ({failures} failed requests after)",
        answered.len()
    );

    app.restart_after_kill().await;

    // Durable before the answer: committed, or spooled and replayed by the restarted binary.
    let ids: Vec<Uuid> = answered.keys().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let stored: HashMap<Uuid, (i32, i64)> = loop {
        let rows: Vec<(Uuid, i32, i64)> = sqlx::query_as(
            "SELECT d.decision_id, d.finding_count,
                    (SELECT count(*) FROM findings f
                      WHERE f.decision_id = d.decision_id AND f.evaluated_at = d.evaluated_at)
               FROM decisions d WHERE d.decision_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        if rows.len() >= ids.len() || Instant::now() > deadline {
            break rows.into_iter().map(|(id, n, f)| (id, (n, f))).collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lost: Vec<&Uuid> = ids.iter().filter(|id| !stored.contains_key(id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered decisions are not stored, e.g. {:?}",
        lost.len(),
        ids.len(),
        &lost[..lost.len().min(3)]
    );
    for (id, &findings) in &answered {
        let (finding_count, rows) = stored[id];
        assert_eq!(finding_count as usize, findings, "decision {id}");
        assert_eq!(rows as usize, findings, "findings rows of decision {id}");
    }
    // Each stored once.
    let distinct = app
        .count("SELECT count(*) - count(DISTINCT decision_id) FROM decisions")
        .await;
    assert_eq!(distinct, 0, "a decision stored twice");

    let verify = app.run_cli(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "audit verify after the crash: {}\n{}\n{}",
        verify.status,
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
