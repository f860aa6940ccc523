//! Pathway reload by SIGHUP on the real binary, and `orderguard replay` from the command line.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Http, Server, TestDatabase, fixture, read_json};

/// The morphine case at `mg` every 6 h (4 × mg MME/day).
fn morphine(mg: f64) -> Value {
    let mut v = read_json(fixture("cases/10-mme-50-morphine.json"));
    v["medications"][0]["dose"]["value"] = json!(mg);
    v
}

fn shipped() -> Value {
    serde_json::from_str(orderguard::pathway::BUILTIN_VCF).unwrap()
}

/// DOSE-MME-50 from 90 MME/day.
fn draft() -> Value {
    let mut v = shipped();
    v["version"] = json!("2026.12.0-e2e-draft");
    for rule in v["rules"].as_array_mut().unwrap() {
        if rule["id"] == "DOSE-MME-50" {
            rule["params"] = json!({ "min_mme": 90 });
        }
    }
    v
}

fn hangup(server: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

async fn decide(http: &Http, server: &Server, mg: f64) -> Value {
    let answer = http
        .post_json(&server.url("/v1/validate"), &morphine(mg))
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

fn rules(decision: &Value) -> Vec<String> {
    decision["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_pathway_file_and_refuses_a_bad_one() {
    let db = TestDatabase::create().await;
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("pathway.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&shipped()).unwrap()).unwrap();
    let server = Server::start_with(
        &db.url,
        data.path(),
        &["--pathway".as_ref(), file.as_os_str()],
    )
    .await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db.url)
        .await
        .unwrap();
    let http = Http::new();
    let first = decide(&http, &server, 15.0).await;
    let hash_a = first["pathway"]["content_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(rules(&first).contains(&"DOSE-MME-50".to_owned()));

    // A pathway that fails lint: refused, recorded, the old one keeps serving.
    let mut bad = draft();
    bad["rules"][0]["severity"] = json!("severe");
    std::fs::write(&file, serde_json::to_vec(&bad).unwrap()).unwrap();
    hangup(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let refused: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE kind = 'pathway.reload_refused'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if refused == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no refusal recorded:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let still = decide(&http, &server, 15.0).await;
    assert_eq!(still["pathway"]["content_hash"], json!(hash_a));
    assert!(rules(&still).contains(&"DOSE-MME-50".to_owned()));

    // A good one: swapped in.
    std::fs::write(&file, serde_json::to_vec(&draft()).unwrap()).unwrap();
    hangup(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    let swapped = loop {
        let d = decide(&http, &server, 15.0).await;
        if d["pathway"]["content_hash"] != json!(hash_a) {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "not reloaded:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(swapped["pathway"]["version"], "2026.12.0-e2e-draft");
    assert!(!rules(&swapped).iter().any(|r| r.starts_with("DOSE-MME")));
    let versions: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT version, trigger, loaded_by FROM pathway_versions ORDER BY loaded_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        versions,
        vec![
            (
                shipped()["version"].as_str().unwrap().to_owned(),
                "startup".to_owned(),
                "startup".to_owned()
            ),
            (
                "2026.12.0-e2e-draft".to_owned(),
                "sighup".to_owned(),
                "signal:SIGHUP".to_owned()
            ),
        ]
    );

    // The command line: the decisions of both versions reproduce; a what-if report with its
    // HTML page; each run is one audit event; a bad draft names the file and the JSON path.
    let cli = |args: &[&str]| {
        std::process::Command::new(crate::support::BIN)
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .env("DATABASE_URL", &db.url)
            .env("ORDERGUARD_ACTOR", "cli:e2e")
            .output()
            .unwrap()
    };
    // The poll above may have decided a few more times under the old version.
    let decided: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(decided >= 3);
    let verified = cli(&["replay", "--verify-determinism"]);
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        out.contains(&format!("{decided} replayed"))
            && out.contains(&format!("{decided} reproduced")),
        "{out}"
    );

    let draft_file = data.path().join("draft.json");
    std::fs::write(&draft_file, serde_json::to_vec(&shipped()).unwrap()).unwrap();
    let html = data.path().join("what-if.html");
    let what_if = cli(&[
        "replay",
        "--pathway",
        draft_file.to_str().unwrap(),
        "--format",
        "json",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(
        what_if.status.success(),
        "{}",
        String::from_utf8_lossy(&what_if.stderr)
    );
    let report: Value = serde_json::from_slice(&what_if.stdout).unwrap();
    assert_eq!(report["decisions"], decided);
    // Under the shipped pathway, the one 60 MME/day decision made by the draft gains its card.
    let mme50 = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == "DOSE-MME-50")
        .unwrap();
    assert_eq!(mme50["appears"], 1, "{mme50:#}");
    assert_eq!(mme50["examples"]["appears"][0], swapped["decision_id"]);
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    let runs: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, actor FROM audit_events WHERE kind LIKE 'replay.%' ORDER BY occurred_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        runs,
        vec![
            ("replay.verify_determinism".to_owned(), "cli:e2e".to_owned()),
            ("replay.what_if".to_owned(), "cli:e2e".to_owned())
        ]
    );
    std::fs::write(&draft_file, serde_json::to_vec(&bad).unwrap()).unwrap();
    let refused = cli(&["replay", "--pathway", draft_file.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("draft.json: /rules/0/severity"), "{err}");
    pool.close().await;
}
