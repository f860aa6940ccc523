use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use orderguard::service::{
    BoxFuture, ClientIdentity, DecisionPipeline, FieldError, PipelineError, Readiness, Rejection,
    ServiceConfig,
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The shared test data folder (see PREAMBLE: env var, then next to the crate, then /work/shared).
pub fn shared_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ORDERGUARD_SHARED") {
        return PathBuf::from(dir);
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from("/work/shared")
}

pub fn spec_file(name: &str) -> PathBuf {
    shared_dir()
        .join("conformance/cds-hooks/spec-2.0")
        .join(name)
}

pub fn read_json(path: impl AsRef<std::path::Path>) -> Value {
    let path = path.as_ref();
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap()
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// No `null`, `""`, `[]` or `{}` anywhere, except `"cards": []` (the CDS Hooks rule).
pub fn assert_no_empty(value: &Value) {
    fn walk(value: &Value, path: &str, key: Option<&str>) {
        match value {
            Value::Null => panic!("null at {path}"),
            Value::String(s) if s.is_empty() => panic!("empty string at {path}"),
            Value::Array(items) => {
                if items.is_empty() && key != Some("cards") {
                    panic!("empty array at {path}");
                }
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}/{i}"), None);
                }
            }
            Value::Object(members) => {
                assert!(!members.is_empty(), "empty object at {path}");
                for (k, v) in members {
                    walk(v, &format!("{path}/{k}"), Some(k));
                }
            }
            _ => {}
        }
    }
    walk(value, "", None);
}

#[test]
fn the_empty_checker_can_fail() {
    for bad in [
        json!({"a": null}),
        json!({"a": []}),
        json!({"a": {}}),
        json!({"a": [""]}),
    ] {
        assert!(
            std::panic::catch_unwind(|| assert_no_empty(&bad)).is_err(),
            "{bad}"
        );
    }
    assert_no_empty(&json!({"cards": []}));
}

/// A test double of the decision pipeline seam. It reads just enough of a body to answer the
/// way the real pipeline does for each kind of input, and counts what the HTTP layer hands it.
#[derive(Default)]
pub struct TestPipeline {
    pub rejections: Mutex<Vec<Rejection>>,
    pub decisions: AtomicUsize,
    pub feedbacks: AtomicUsize,
    pub shutdowns: AtomicUsize,
    pub readiness: Mutex<Option<Readiness>>,
    pub delay: Mutex<Option<Duration>>,
    pub clients: Mutex<Vec<ClientIdentity>>,
}

impl TestPipeline {
    pub fn rejection_count(&self) -> usize {
        self.rejections.lock().unwrap().len()
    }

    fn bad(path: &str, message: &str) -> PipelineError {
        PipelineError::BadRequest {
            field_errors: vec![FieldError::new(path, message)],
            detail: format!("{path}: {message}"),
        }
    }

    fn parse(body: &[u8]) -> Result<Value, PipelineError> {
        serde_json::from_slice(body).map_err(|_| Self::bad("", "not valid JSON"))
    }
}

impl DecisionPipeline for TestPipeline {
    fn cds_hooks(
        &self,
        service_id: &str,
        body: Bytes,
        client: ClientIdentity,
    ) -> BoxFuture<'_, Result<Value, PipelineError>> {
        let service_id = service_id.to_owned();
        Box::pin(async move {
            self.clients.lock().unwrap().push(client);
            let delay = *self.delay.lock().unwrap();
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let request = Self::parse(&body)?;
            let hook = request["hook"]
                .as_str()
                .ok_or_else(|| Self::bad("/hook", "required, a string"))?;
            if !service_id.ends_with(hook) {
                return Err(PipelineError::UnknownHook);
            }
            if !request["context"]["patientId"].is_string() {
                return Err(Self::bad("/context/patientId", "required, a string"));
            }
            if request.get("x-test-audit").is_some() {
                return Err(PipelineError::Unavailable);
            }
            if request.get("prefetch").is_none() && request.get("fhirServer").is_none() {
                return Err(PipelineError::PrefetchUnavailable {
                    missing: vec!["renalFunction".into()],
                });
            }
            self.decisions.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"cards": [{
                "uuid": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
                "summary": "Bed rest ordered: early mobilisation is the pathway for VCF",
                "indicator": "warning",
                "source": {"label": "orderguard", "topic": {
                    "system": "urn:orderguard:rules", "code": "ACT-BEDREST", "display": "Bed rest"}},
                "overrideReasons": [{"system": "urn:orderguard:override", "code": "contraindicated",
                    "display": "Mobilisation contraindicated"}]
            }]}))
        })
    }

    fn native(
        &self,
        body: Bytes,
        client: ClientIdentity,
    ) -> BoxFuture<'_, Result<Value, PipelineError>> {
        Box::pin(async move {
            self.clients.lock().unwrap().push(client);
            let order_set = Self::parse(&body)?;
            if !order_set["orders"].is_array() {
                return Err(Self::bad("/orders", "required, an array"));
            }
            self.decisions.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"decisionId": "0190f000-0000-7000-8000-000000000000", "findings": []}))
        })
    }

    fn feedback(
        &self,
        _service_id: &str,
        body: Bytes,
        _client: ClientIdentity,
    ) -> BoxFuture<'_, Result<(), PipelineError>> {
        Box::pin(async move {
            let feedback = Self::parse(&body)?;
            let items = feedback["feedback"]
                .as_array()
                .ok_or_else(|| Self::bad("/feedback", "required, an array"))?;
            for (i, item) in items.iter().enumerate() {
                if item["card"] == "no-such-card" {
                    return Err(PipelineError::UnknownCard {
                        path: format!("/feedback/{i}/card"),
                    });
                }
            }
            self.feedbacks.fetch_add(items.len(), Ordering::SeqCst);
            Ok(())
        })
    }

    fn record_rejection(&self, rejection: Rejection) -> BoxFuture<'_, ()> {
        self.rejections.lock().unwrap().push(rejection);
        Box::pin(async {})
    }

    fn readiness(&self) -> Readiness {
        self.readiness
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(Readiness::Ready)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
}

pub fn insecure_config() -> ServiceConfig {
    ServiceConfig {
        insecure_no_auth: true,
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServiceConfig::default()
    }
}

pub struct TestApp {
    pub router: Router,
    pub pipeline: Arc<TestPipeline>,
}

pub fn app_with(config: &ServiceConfig) -> TestApp {
    let pipeline = Arc::new(TestPipeline::default());
    let router = orderguard::service::startup::router(config, pipeline.clone()).unwrap();
    TestApp { router, pipeline }
}

pub fn app() -> TestApp {
    app_with(&insecure_config())
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.bytes))
        })
    }
}

impl TestApp {
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            content_type,
            bytes,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post(&self, path: &str, body: impl Into<Body>) -> Answer {
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
    }
}
