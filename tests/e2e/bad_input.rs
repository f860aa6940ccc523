//! Requests the service must refuse: each answers a 4xx problem naming the field, is recorded in
//! `rejected_requests`, and leaves the service answering good requests.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Http, fixture, read_json, spawn_app};

struct Bad {
    what: &'static str,
    path: &'static str,
    body: Vec<u8>,
    status: u16,
    /// The field error's JSON pointer; `None` where the body has no field to name (JSON that
    /// does not parse), then the detail must say where it broke.
    field: Option<&'static str>,
}

fn good_request() -> Value {
    read_json(fixture("cases/49-cds-order-sign-opioid.json"))
}

fn with(mut request: Value, pointer: &str, value: Value) -> Vec<u8> {
    *request
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    serde_json::to_vec(&request).unwrap()
}

/// The request's JSON bytes with the first `from` replaced by `to` (for bytes JSON cannot hold).
fn replace_once(request: &Value, from: &[u8], to: &[u8]) -> Vec<u8> {
    let bytes = serde_json::to_vec_pretty(request).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{:?} not in the request", String::from_utf8_lossy(from)));
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

fn cases() -> Vec<Bad> {
    let good = good_request();
    let native = read_json(fixture("native/valid-vcf-full.json"));
    let mut truncated = serde_json::to_vec(&good).unwrap();
    truncated.truncate(truncated.len() / 2);
    vec![
        Bad {
            what: "malformed JSON (cut in half)",
            path: "/cds-services/vcf-order-sign",
            body: truncated,
            status: 400,
            field: None,
        },
        Bad {
            what: "malformed JSON (stray brace)",
            path: "/v1/validate",
            body: b"{\"patient\": {}}}".to_vec(),
            status: 400,
            field: None,
        },
        Bad {
            what: "patientId is a number",
            path: "/cds-services/vcf-order-sign",
            body: with(good.clone(), "/context/patientId", json!(42)),
            status: 400,
            field: Some("/context/patientId"),
        },
        Bad {
            what: "draftOrders is a string",
            path: "/cds-services/vcf-order-sign",
            body: with(good.clone(), "/context/draftOrders", json!("oxycodone")),
            status: 400,
            field: Some("/context/draftOrders"),
        },
        Bad {
            what: "hook is a number",
            path: "/cds-services/vcf-order-sign",
            body: with(good.clone(), "/hook", json!(7)),
            status: 400,
            field: Some("/hook"),
        },
        Bad {
            what: "unknown service id",
            path: "/cds-services/no-such-service",
            body: serde_json::to_vec(&good).unwrap(),
            status: 404,
            field: None,
        },
        Bad {
            what: "order-sign body sent to order-select",
            path: "/cds-services/vcf-order-select",
            body: serde_json::to_vec(&good).unwrap(),
            status: 400,
            field: Some("/hook"),
        },
        Bad {
            what: "patient-view hook sent to order-sign",
            path: "/cds-services/vcf-order-sign",
            body: with(good.clone(), "/hook", json!("patient-view")),
            status: 400,
            field: Some("/hook"),
        },
        Bad {
            what: "native: birth_date is a number",
            path: "/v1/validate",
            body: with(native.clone(), "/patient/birth_date", json!(1948)),
            status: 400,
            field: Some("/patient/birth_date"),
        },
        // Huge strings and arrays: over the body limit, and under it where the size lands
        // in a field the audit log indexes.
        Bad {
            what: "huge string: 1.5 MB patientId",
            path: "/cds-services/vcf-order-sign",
            body: with(
                good.clone(),
                "/context/patientId",
                json!("x".repeat(1_500_000)),
            ),
            status: 400,
            field: Some("/context/patientId"),
        },
        Bad {
            what: "huge string: 3 MB body",
            path: "/cds-services/vcf-order-sign",
            body: with(
                good.clone(),
                "/context/userId",
                json!("x".repeat(3_000_000)),
            ),
            status: 413,
            field: None,
        },
        Bad {
            what: "huge array: 5000 draft orders over the body limit",
            path: "/cds-services/vcf-order-sign",
            body: with(
                good.clone(),
                "/context/draftOrders/entry",
                json!(vec![
                    good["context"]["draftOrders"]["entry"][0].clone();
                    5000
                ]),
            ),
            status: 413,
            field: None,
        },
        Bad {
            what: "native: 1 kB patient reference",
            path: "/v1/validate",
            body: with(
                native.clone(),
                "/patient/reference",
                json!("P".repeat(1000)),
            ),
            status: 400,
            field: Some("/patient/reference"),
        },
        // Deep nesting, refused before parsing.
        Bad {
            what: "deep nesting: 200 arrays",
            path: "/cds-services/vcf-order-sign",
            body: [
                &b"{\"hook\":\"order-sign\",\"context\":"[..],
                &[b'['; 200],
                &[b']'; 200],
                b"}",
            ]
            .concat(),
            status: 400,
            field: None,
        },
        // Invalid UTF-8 inside a string.
        Bad {
            what: "invalid UTF-8 in userId",
            path: "/cds-services/vcf-order-sign",
            body: replace_once(&good, b"\"userId\": \"", b"\"userId\": \"\xff\xfe"),
            status: 400,
            field: None,
        },
        Bad {
            what: "native: invalid UTF-8 in a medication's text",
            path: "/v1/validate",
            body: replace_once(&native, b"oxycodone 5 mg", b"oxy\xc3\x28codone"),
            status: 400,
            field: None,
        },
        // Doses the schema refuses (the native door is strict; CDS Hooks doses are read
        // leniently and answered DOSE-UNREADABLE, see the next test).
        Bad {
            what: "native: negative dose",
            path: "/v1/validate",
            body: with(native.clone(), "/medications/0/dose/value", json!(-5)),
            status: 400,
            field: Some("/medications/0/dose/value"),
        },
        Bad {
            what: "native: zero dose",
            path: "/v1/validate",
            body: with(native.clone(), "/medications/0/dose/value", json!(0)),
            status: 400,
            field: Some("/medications/0/dose/value"),
        },
        // Duplicate ids.
        Bad {
            what: "duplicate draft order id",
            path: "/cds-services/vcf-order-sign",
            body: {
                let mut request = good.clone();
                let entries = request["context"]["draftOrders"]["entry"]
                    .as_array_mut()
                    .unwrap();
                entries.push(entries[0].clone());
                serde_json::to_vec(&request).unwrap()
            },
            status: 400,
            field: Some("/context/draftOrders/entry/1/resource/id"),
        },
        Bad {
            what: "native: duplicate order id",
            path: "/v1/validate",
            body: with(native.clone(), "/services/0/id", json!("med-oxy")),
            status: 400,
            field: Some("/services/0/id"),
        },
        // Dates that are not dates.
        Bad {
            what: "native: birth date 2026-02-30",
            path: "/v1/validate",
            body: with(native.clone(), "/patient/birth_date", json!("2026-02-30")),
            status: 400,
            field: Some("/patient/birth_date"),
        },
        Bad {
            what: "native body is an array",
            path: "/v1/validate",
            body: b"[1, 2, 3]".to_vec(),
            status: 400,
            // The whole body is at fault: its field error has no `path` (never empty).
            field: None,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_recorded_and_the_service_keeps_serving() {
    let app = spawn_app().await;
    let http = Http::new();
    let cases = cases();
    for (i, case) in cases.iter().enumerate() {
        let answer = http
            .post(&app.url(case.path), case.body.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.what));
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert_eq!(answer.status, case.status, "{}: {text}", case.what);
        assert!(
            answer.content_type.starts_with("application/problem+json"),
            "{}: content type {:?}",
            case.what,
            answer.content_type
        );
        let body = answer.json();
        assert_eq!(body["status"], case.status, "{}: {body}", case.what);
        match case.field {
            Some(field) => {
                let paths: Vec<&str> = body["errors"]
                    .as_array()
                    .map(|e| e.iter().filter_map(|e| e["path"].as_str()).collect())
                    .unwrap_or_default();
                assert!(
                    paths.contains(&field),
                    "{}: no field error at {field:?} in {body}",
                    case.what
                );
            }
            None => assert!(
                body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{}: a problem without a field still says what was wrong: {body}",
                case.what
            ),
        }
        // CDS Hooks routes carry an OperationOutcome for FHIR-minded clients.
        if case.path.starts_with("/cds-services") {
            assert_eq!(
                body["operationOutcome"]["resourceType"], "OperationOutcome",
                "{}: {body}",
                case.what
            );
        }
        // Recorded before the answer, with its status.
        let recorded = wait_for_rejections(&app.pool, i as i64 + 1).await;
        assert_eq!(recorded, i as i64 + 1, "{}: not recorded", case.what);
        let (status, route): (i32, String) = sqlx::query_as(
            "SELECT status, route FROM rejected_requests ORDER BY rejected_at DESC LIMIT 1",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(status as u16, case.status, "{}", case.what);
        assert!(!route.is_empty(), "{}", case.what);
    }

    // No decision came of any of them, and a good request is still answered.
    assert_eq!(app.count("SELECT count(*) FROM decisions").await, 0);
    let answer = http
        .post_json(&app.url("/cds-services/vcf-order-sign"), &good_request())
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(app.count("SELECT count(*) FROM decisions").await, 1);
    let health = http.get(&app.url("/healthz")).await.unwrap();
    assert_eq!(health.status, 200);
}

/// Rejections are recorded through the writer; wait briefly for `at_least` rows.
async fn wait_for_rejections(pool: &sqlx::PgPool, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rejected_requests")
            .fetch_one(pool)
            .await
            .unwrap();
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A valid request whose content cannot be read is answered, never refused and never passed
/// silently: the unreadable dose is a DOSE-UNREADABLE card, an impossible date or an unknown
/// drug is listed in the stored decision (missing input / unrecognized).
struct Unreadable {
    what: &'static str,
    path: &'static str,
    body: Value,
    /// A rule whose finding must be in the answer.
    rule: Option<&'static str>,
    /// A rule whose finding must not be (an impossible date must not count).
    not_rule: Option<&'static str>,
    /// `missing_inputs[].input` or `unrecognized` must name this in the stored row.
    stored: Option<(&'static str, &'static str)>,
}

fn oxycodone_dose(value: Value, unit: &str) -> Value {
    let mut request = good_request();
    request["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"][0]["doseAndRate"]
        ["doseQuantity"] = json!({"value": value, "unit": unit});
    request
}

fn unreadable_cases() -> Vec<Unreadable> {
    let native = read_json(fixture("native/valid-vcf-full.json"));
    let dose = |value: Value, unit: &str, what| Unreadable {
        what,
        path: "/cds-services/vcf-order-sign",
        body: oxycodone_dose(value, unit),
        rule: Some("DOSE-UNREADABLE"),
        not_rule: None,
        stored: None,
    };
    // Kyphoplasty with a dated fracture: VCF-AUGMENT-TIMING counts the days from it.
    let with_kyphoplasty = read_json(fixture("cases/27-kyphoplasty-no-fracture-date.json"));
    let mut future_fracture = with_kyphoplasty.clone();
    future_fracture["patient"]["diagnoses"][0]["onset"] = json!("2099-01-01");
    let mut before_birth = with_kyphoplasty;
    before_birth["patient"]["diagnoses"][0]["onset"] = json!("1930-01-01");
    let mut future_birth = native.clone();
    future_birth["patient"]["birth_date"] = json!("2099-01-01");
    let mut unknown_drug = good_request();
    unknown_drug["context"]["draftOrders"]["entry"][0]["resource"]["medicationCodeableConcept"] = json!({
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "99999999"}],
        "text": "zzq-unknown-compound 5 mg"});
    let mut native_ml = native.clone();
    native_ml["medications"][0]["dose"] = json!({"value": 5, "unit": "mL"});
    vec![
        dose(json!(10), "mL", "mismatched unit: oxycodone in mL"),
        dose(json!(10), "[iU]", "mismatched unit: oxycodone in IU"),
        dose(json!(10), "furlong", "unknown unit"),
        dose(json!(-10), "mg", "negative dose"),
        dose(json!(0), "mg", "zero dose"),
        dose(json!("ten"), "mg", "dose value is a string"),
        dose(json!(1e308), "g", "absurd dose: 1e308 g"),
        Unreadable {
            what: "absurd but computable dose: 1e12 mg",
            path: "/cds-services/vcf-order-sign",
            body: oxycodone_dose(json!(1e12), "mg"),
            rule: Some("DOSE-MME-90"),
            not_rule: None,
            stored: None,
        },
        Unreadable {
            what: "native: mismatched unit",
            path: "/v1/validate",
            body: native_ml,
            rule: Some("DOSE-UNREADABLE"),
            not_rule: None,
            stored: Some(("missing", "mme_factor")),
        },
        Unreadable {
            what: "unknown drug code",
            path: "/cds-services/vcf-order-sign",
            body: unknown_drug,
            rule: None,
            not_rule: None,
            stored: Some(("unrecognized", "MedicationRequest/oxy")),
        },
        Unreadable {
            what: "native: birth date in the future",
            path: "/v1/validate",
            body: future_birth,
            rule: None,
            not_rule: Some("VCF-OPIOID-ELDERLY"),
            stored: Some(("missing", "birth_date")),
        },
        Unreadable {
            what: "native: fracture dated in the future",
            path: "/v1/validate",
            body: future_fracture,
            rule: Some("VCF-AUGMENT-NODATE"),
            not_rule: Some("VCF-AUGMENT-TIMING"),
            stored: None,
        },
        Unreadable {
            what: "native: fracture dated before birth",
            path: "/v1/validate",
            body: before_birth,
            rule: Some("VCF-AUGMENT-NODATE"),
            not_rule: Some("VCF-AUGMENT-TIMING"),
            stored: None,
        },
    ]
}

fn rules_of(answer: &Value) -> Vec<String> {
    let cards = answer["cards"].as_array().into_iter().flatten();
    let findings = answer["findings"].as_array().into_iter().flatten();
    cards
        .filter_map(|c| c["source"]["topic"]["code"].as_str())
        .chain(findings.filter_map(|f| f["rule_id"].as_str()))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_requests_with_unreadable_content_are_answered_with_what_could_not_be_read() {
    let app = spawn_app().await;
    let http = Http::new();
    let cases = unreadable_cases();
    for case in &cases {
        let answer = http.post_json(&app.url(case.path), &case.body).await;
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert_eq!(answer.status, 200, "{}: {text}", case.what);
        let rules = rules_of(&answer.json());
        if let Some(rule) = case.rule {
            assert!(rules.iter().any(|r| r == rule), "{}: {rules:?}", case.what);
        }
        if let Some(rule) = case.not_rule {
            assert!(!rules.iter().any(|r| r == rule), "{}: {rules:?}", case.what);
        }
        assert!(
            !text.contains("inf ") && !text.contains("NaN"),
            "{}: {text}",
            case.what
        );
        if let Some((column, name)) = case.stored {
            let (missing, unrecognized): (Value, Value) = sqlx::query_as(
                "SELECT missing_inputs, unrecognized FROM decisions ORDER BY recorded_at DESC, batch_pos DESC LIMIT 1",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            let listed = match column {
                "missing" => missing.to_string(),
                _ => unrecognized.to_string(),
            };
            assert!(listed.contains(name), "{}: {column} = {listed}", case.what);
        }
    }
    assert_eq!(
        app.count("SELECT count(*) FROM decisions").await,
        cases.len() as i64
    );
    assert_eq!(app.count("SELECT count(*) FROM rejected_requests").await, 0);
    let health = http.get(&app.url("/readyz")).await.unwrap();
    assert_eq!(health.status, 200);
}
