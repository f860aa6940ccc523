//! Every real client request in `shared/conformance/` through the running service: well-formed
//! order-select / order-sign requests with prefetch are answered; without prefetch, and with a
//! FHIR server that cannot be reached, 412; JSON that does not parse, 400.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Http, assert_no_empty, free_port, shared_dir, spawn_app};

#[derive(Debug)]
enum Expect {
    Answered,
    PrefetchUnavailable,
    NotJson,
}

struct Case {
    file: PathBuf,
    service: &'static str,
    body: Vec<u8>,
    expect: Expect,
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn service_for(hook: &str) -> Option<&'static str> {
    match hook {
        "order-select" => Some("vcf-order-select"),
        "order-sign" => Some("vcf-order-sign"),
        _ => None,
    }
}

/// The cases, with every `fhirServer` pointed at a closed loopback port: the service must not
/// reach out of this machine, and a server that refuses is what "cannot be fetched" means.
fn cases(closed_fhir_server: &str) -> Vec<Case> {
    let mut files = Vec::new();
    json_files(&shared_dir().join("conformance"), &mut files);
    let mut cases = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        match serde_json::from_slice::<Value>(&bytes) {
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes);
                if !text.contains("\"hookInstance\"") {
                    continue;
                }
                // Sent where its hook says; it must be refused before the hook is even read.
                let service = if text.contains("\"order-select\"") {
                    "vcf-order-select"
                } else {
                    "vcf-order-sign"
                };
                cases.push(Case {
                    file,
                    service,
                    body: bytes,
                    expect: Expect::NotJson,
                });
            }
            Ok(mut request) => {
                let Some(service) = request
                    .get("hook")
                    .and_then(Value::as_str)
                    .and_then(service_for)
                else {
                    continue;
                };
                let has_prefetch = request
                    .get("prefetch")
                    .and_then(Value::as_object)
                    .is_some_and(|p| !p.is_empty());
                request["fhirServer"] = Value::String(closed_fhir_server.to_owned());
                cases.push(Case {
                    file,
                    service,
                    body: serde_json::to_vec(&request).unwrap(),
                    expect: if has_prefetch {
                        Expect::Answered
                    } else {
                        Expect::PrefetchUnavailable
                    },
                });
            }
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_request_gets_its_answer() {
    let closed = format!("http://127.0.0.1:{}/fhir", free_port());
    let cases = cases(&closed);
    let count = |f: fn(&Expect) -> bool| cases.iter().filter(|c| f(&c.expect)).count();
    // The shared folder is what it says it is (a missing folder must not pass as "no cases").
    assert!(count(|e| matches!(e, Expect::Answered)) >= 1);
    assert!(count(|e| matches!(e, Expect::PrefetchUnavailable)) >= 6);
    assert!(count(|e| matches!(e, Expect::NotJson)) >= 20);

    let app = spawn_app().await;
    let http = Http::new();
    let mut wrong = Vec::new();
    for case in &cases {
        let name = case
            .file
            .strip_prefix(shared_dir())
            .unwrap_or(&case.file)
            .display()
            .to_string();
        let answer = http
            .post(
                &app.url(&format!("/cds-services/{}", case.service)),
                case.body.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = match case.expect {
            Expect::Answered => 200,
            Expect::PrefetchUnavailable => 412,
            Expect::NotJson => 400,
        };
        if answer.status != expected {
            wrong.push(format!(
                "{name}: expected {expected}, got {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
            continue;
        }
        let body = answer.json();
        match case.expect {
            Expect::Answered => {
                assert!(body["cards"].is_array(), "{name}: {body}");
                assert_no_empty(&body);
            }
            Expect::PrefetchUnavailable => {
                assert!(
                    answer.content_type.starts_with("application/problem+json"),
                    "{name}"
                );
                let paths: Vec<&str> = body["errors"]
                    .as_array()
                    .map(|e| e.iter().filter_map(|e| e["path"].as_str()).collect())
                    .unwrap_or_default();
                assert!(
                    paths.iter().any(|p| p.starts_with("/prefetch/")),
                    "{name}: the 412 names the missing prefetch: {body}"
                );
            }
            Expect::NotJson => assert!(
                answer.content_type.starts_with("application/problem+json"),
                "{name}"
            ),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} case(s) wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The service is still up after all of it.
    assert_eq!(http.get(&app.url("/healthz")).await.unwrap().status, 200);
}
