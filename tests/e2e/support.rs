//! The harness: a fresh database per test on the PostgreSQL at `DATABASE_URL`, the real
//! `orderguard serve` binary on a free loopback port, and a small HTTP client.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub const BIN: &str = env!("CARGO_BIN_EXE_orderguard");

/// The server the tests create their databases on.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `server_url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // After "scheme://authority", the path is the database name.
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The shared test data folder (see PREAMBLE: env var, then next to the crate, then /work/shared).
pub fn shared_dir() -> PathBuf {
    // scripts/test exports ORDERGUARD_SHARED=../shared whether or not it exists there.
    if let Some(dir) = std::env::var_os("ORDERGUARD_SHARED").map(PathBuf::from)
        && dir.is_dir()
    {
        return dir;
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from("/work/shared")
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

pub fn read_bytes(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn read_json(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    serde_json::from_slice(&read_bytes(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A database of its own: created on the server, dropped (with its connections) on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let name = format!("og_e2e_{}", uuid::Uuid::now_v7().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&server_url())
            .await
            .expect("the PostgreSQL at DATABASE_URL answers (e2e tests need it)");
        // The name is ours (og_e2e_ + hex), never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .expect("CREATE DATABASE");
        admin.close().await;
        let url = with_database(&server_url(), &name);
        TestDatabase { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime: a thread of its own with its own runtime.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&server_url())
                    .await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// The running binary. Killed (SIGKILL) on drop.
pub struct Server {
    pub base_url: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Server {
    /// `orderguard serve --insecure-no-auth` on `database_url` and `data_dir`, ready.
    pub async fn start(database_url: &str, data_dir: &Path) -> Server {
        Server::start_with(database_url, data_dir, &[]).await
    }

    /// As [`Server::start`], with more arguments for `serve` (e.g. `--config FILE`).
    pub async fn start_with(
        database_url: &str,
        data_dir: &Path,
        extra: &[&std::ffi::OsStr],
    ) -> Server {
        let port = free_port();
        let log = data_dir.join(format!("serve-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .args(["serve", "--insecure-no-auth", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("DATABASE_URL", database_url)
            .env_remove("ORDERGUARD_LISTEN")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone().expect("log file")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("the orderguard binary starts");
        let mut server = Server {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let http = Http::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "orderguard serve exited ({status}) before it was ready:\n{}",
                    self.log_text()
                );
            }
            if let Ok(answer) = http.get(&format!("{}/readyz", self.base_url)).await
                && answer.status == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "orderguard serve not ready within 30 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no graceful shutdown, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh database, a data folder, the server on them, and a pool for looking at the rows.
pub struct TestApp {
    pub server: Server,
    pub pool: PgPool,
    pub data_dir: tempfile::TempDir,
    // Declared last: dropped after the server and the pool let go of the database.
    pub db: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    let db = TestDatabase::create().await;
    let data_dir = tempfile::tempdir().expect("a temporary data folder");
    let server = Server::start(&db.url, data_dir.path()).await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url)
        .await
        .expect("the test database answers");
    TestApp {
        server,
        pool,
        data_dir,
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Kill -9 the server, then start the binary again on the same database and data folder.
    pub async fn restart_after_kill(&mut self) {
        self.server.kill();
        self.server = Server::start(&self.db.url, self.data_dir.path()).await;
    }

    /// `orderguard <args>` against this app's database and data folder.
    pub fn run_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .env("DATABASE_URL", &self.db.url)
            .output()
            .expect("the orderguard binary runs")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// One answer: status, content type and body (JSON when it parses).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer {} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn get(&self, url: &str) -> Result<Answer, String> {
        self.send(Method::GET, url, Bytes::new()).await
    }

    pub async fn post(&self, url: &str, body: impl Into<Bytes>) -> Result<Answer, String> {
        self.send(Method::POST, url, body.into()).await
    }

    pub async fn post_json(&self, url: &str, body: &Value) -> Answer {
        self.post(url, serde_json::to_vec(body).expect("JSON"))
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    async fn send(&self, method: Method, url: &str, body: Bytes) -> Result<Answer, String> {
        self.send_with(method, url, body, &[]).await
    }

    /// A request with extra headers (e.g. `authorization` for the staff routes).
    pub async fn send_with(
        &self,
        method: Method,
        url: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(20), self.client.request(request))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }
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

/// A problem answer (4xx, `application/problem+json`) with a field error at `path`.
pub fn assert_problem(answer: &Answer, status: u16, path: &str, what: &str) {
    assert_eq!(
        answer.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(
        answer.content_type.starts_with("application/problem+json"),
        "{what}: content type {:?}",
        answer.content_type
    );
    let body = answer.json();
    assert_eq!(body["status"], status, "{what}: {body}");
    let paths: Vec<&str> = body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["path"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        paths.contains(&path),
        "{what}: no field error at {path:?} in {body}"
    );
}

#[test]
fn database_names_replace_only_the_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}
