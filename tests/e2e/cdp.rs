//! A minimal Chrome DevTools Protocol client for the real-browser test: headless Chromium with
//! `--remote-debugging-pipe` (CDP messages as NUL-terminated JSON on file descriptors 3 and 4),
//! so no WebSocket and no browser-automation crate is needed. A shell `exec` maps the child's
//! stdin / stdout pipes onto fds 3 / 4.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where Chromium is: `ORDERGUARD_CHROMIUM`, else `chromium` / `chromium-browser` on PATH,
/// else installed by `scripts/ensure-chromium.sh` (Debian's package, as root).
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("ORDERGUARD_CHROMIUM").map(PathBuf::from)
        && path.is_file()
    {
        return path;
    }
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            && out.status.success()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-chromium.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "the real-browser test needs Chromium: scripts/ensure-chromium.sh failed \
         (install Debian's chromium package or set ORDERGUARD_CHROMIUM)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// What the page reported while it was driven.
#[derive(Debug, Default, Clone)]
pub struct PageLog {
    /// Console errors, uncaught exceptions, browser log errors (CSP violations, failed loads).
    pub errors: Vec<String>,
    /// Subresources or fetches answered with HTTP ≥ 400 (url and status).
    pub failed_responses: Vec<String>,
}

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    incoming: mpsc::Receiver<Value>,
    next_id: u64,
    /// Events that arrived while waiting for something else.
    pending: Vec<Value>,
    pub session: String,
    pub log: PageLog,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts headless Chromium and opens one page (a flat session on a new target).
    pub fn launch(width: u32, height: u32) -> Browser {
        let binary = chromium();
        let profile = tempfile::tempdir().expect("a profile folder");
        // Root (CI containers) needs --no-sandbox; the pages are our own.
        let command = format!(
            "exec \"$0\" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
             --no-first-run --no-default-browser-check --disable-extensions \
             --disable-background-networking --disable-sync --disable-component-update \
             --mute-audio --hide-scrollbars --remote-debugging-pipe \
             --user-data-dir=\"$1\" --window-size={width},{height} about:blank \
             3<&0 4>&1 0</dev/null 1>&2"
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .arg(&binary)
            .arg(profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            while let Ok(n) = reader.read_until(0, &mut buf) {
                if n == 0 {
                    break;
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    break;
                }
                buf.clear();
            }
        });
        let mut browser = Browser {
            child,
            stdin,
            incoming,
            next_id: 0,
            pending: Vec::new(),
            session: String::new(),
            log: PageLog::default(),
            _profile: profile,
        };
        let target = browser.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("a target id").to_owned();
        let attached = browser.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            browser.page(domain, json!({}));
        }
        browser.page(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut message = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        self.stdin
            .write_all(&bytes)
            .and_then(|()| self.stdin.flush())
            .expect("Chromium takes CDP messages");
        self.next_id
    }

    fn next_message(&mut self, deadline: Instant) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(left) {
            Ok(message) => message,
            Err(_) => panic!("Chromium did not answer in time"),
        }
    }

    /// Notes what an event says about errors; keeps every event for `wait_event`.
    fn observe(&mut self, event: Value) {
        let params = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Runtime.exceptionThrown" => self.log.errors.push(format!(
                "exception: {}",
                params["exceptionDetails"]["exception"]["description"]
                    .as_str()
                    .or(params["exceptionDetails"]["text"].as_str())
                    .unwrap_or("?")
            )),
            "Runtime.consoleAPICalled" if params["type"] == "error" => {
                self.log
                    .errors
                    .push(format!("console.error: {}", params["args"]));
            }
            "Log.entryAdded" if params["entry"]["level"] == "error" => self.log.errors.push(
                format!("log: {}", params["entry"]["text"].as_str().unwrap_or("?")),
            ),
            "Network.responseReceived" => {
                let status = params["response"]["status"].as_i64().unwrap_or(0);
                if status >= 400 {
                    self.log.failed_responses.push(format!(
                        "{} {}",
                        status,
                        params["response"]["url"].as_str().unwrap_or("?")
                    ));
                }
            }
            "Network.loadingFailed" => self.log.errors.push(format!(
                "loading failed: {}",
                params["errorText"].as_str().unwrap_or("?")
            )),
            _ => {}
        }
        self.pending.push(event);
    }

    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.send(session, method, params);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let message = self.next_message(deadline);
            if message["id"].as_u64() == Some(id) {
                if let Some(error) = message.get("error") {
                    panic!("{method}: {error}");
                }
                return message["result"].clone();
            }
            if message.get("method").is_some() {
                self.observe(message);
            }
        }
    }

    /// A CDP command on the page's session.
    pub fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params)
    }

    /// Waits for the next `method` event (one that arrived earlier counts once).
    pub fn wait_event(&mut self, method: &str, timeout: Duration) -> Value {
        if let Some(i) = self.pending.iter().position(|e| e["method"] == method) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let message = self.next_message(deadline);
            if message["method"] == method {
                self.observe(message.clone());
                self.pending.retain(|e| e != &message);
                return message;
            }
            if message.get("method").is_some() {
                self.observe(message);
            }
        }
    }

    /// Forgets load events seen so far (before an action that reloads the page).
    pub fn pending_clear_load(&mut self) {
        self.settle(Duration::from_millis(50));
        self.pending
            .retain(|e| e["method"] != "Page.loadEventFired");
    }

    /// Every later request of the page carries these headers (the hospital proxy's job).
    pub fn set_headers(&mut self, headers: Value) {
        self.page("Network.setExtraHTTPHeaders", json!({ "headers": headers }));
    }

    /// Navigates and waits for the load event.
    pub fn goto(&mut self, url: &str) {
        self.pending
            .retain(|e| e["method"] != "Page.loadEventFired");
        let result = self.page("Page.navigate", json!({ "url": url }));
        if let Some(error) = result.get("errorText") {
            panic!("navigating to {url}: {error}");
        }
        self.wait_event("Page.loadEventFired", Duration::from_secs(30));
    }

    /// Evaluates `expression` in the page and returns its value (JSON-serializable results).
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.page(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("{expression}: {details}");
        }
        result["result"]["value"].clone()
    }

    /// A real mouse click (pressed + released) at the centre of the element `selector`.
    pub fn click(&mut self, selector: &str) {
        let rect = self.eval(&format!(
            "(() => {{ const e = document.querySelector({s}); e.scrollIntoView({{block: 'center'}}); \
             const r = e.getBoundingClientRect(); return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()",
            s = serde_json::to_string(selector).unwrap()
        ));
        for kind in ["mousePressed", "mouseReleased"] {
            self.page(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Focuses `selector` and types `text` into it.
    pub fn type_into(&mut self, selector: &str, text: &str) {
        self.eval(&format!(
            "document.querySelector({}).focus()",
            serde_json::to_string(selector).unwrap()
        ));
        self.page("Input.insertText", json!({ "text": text }));
    }

    /// A PNG of the whole page (not only the viewport), saved at `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let result = self.page(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let data = result["data"].as_str().expect("PNG data");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64");
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Drains whatever events arrived (so errors after the last command are seen).
    pub fn settle(&mut self, quiet: Duration) {
        while let Ok(message) = self.incoming.recv_timeout(quiet) {
            if message.get("method").is_some() {
                self.observe(message);
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.send(None, "Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The harness can fail: a page that logs an error and throws is seen as such.
#[test]
fn the_harness_sees_console_errors_exceptions_and_the_dom() {
    let mut browser = Browser::launch(400, 300);
    browser.goto(
        "data:text/html,<svg class='chart'><circle r='3'/></svg>\
         <script>console.error('boom'); window.missingFunction();</script>",
    );
    browser.settle(Duration::from_millis(300));
    assert_eq!(
        browser.eval("document.querySelectorAll('svg.chart circle').length"),
        json!(1)
    );
    let errors = browser.log.errors.join("\n");
    assert!(errors.contains("boom"), "{errors}");
    assert!(errors.contains("missingFunction"), "{errors}");
}
