"""Shared by scripts/chaos and scripts/soak: a throwaway PostgreSQL cluster, the real
`orderguard serve` binary with client JWT authentication, a fake FHIR server, request builders
and load workers. Loopback only; every port is picked free. Standard library plus
`cryptography` (RS384 signatures with the repository's TEST-ONLY key)."""
import base64, copy, http.client, http.server, json, os, shutil, signal, socket, subprocess
import tempfile, threading, time, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")
ISSUER = "https://chaos-ehr.example.org"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary():
    path = os.environ.get("ORDERGUARD_BIN") or os.path.join(ROOT, "target", "release", "orderguard")
    if not os.path.exists(path):
        path = os.path.join(ROOT, "target", "debug", "orderguard")
    return path


# --- PostgreSQL: a cluster of our own (never the machine's main server) -------------------

def pg_bin(name):
    for version in ("17", "16", "15", "14"):
        path = f"/usr/lib/postgresql/{version}/bin/{name}"
        if os.path.exists(path):
            return path
    return shutil.which(name) or name


def as_postgres(args):
    """PostgreSQL refuses to run as root: drop to the postgres user then."""
    return (["runuser", "-u", "postgres", "--"] + args) if os.geteuid() == 0 else args


class Cluster:
    def __init__(self, base):
        self.dir = os.path.join(base, "pgdata")
        self.port = free_port()
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            shutil.chown(base, "postgres")
            shutil.chown(self.dir, "postgres")
        subprocess.run(as_postgres([pg_bin("initdb"), "-D", self.dir, "-U", "postgres",
                                    "-A", "trust", "--no-sync"]), check=True,
                       stdout=subprocess.DEVNULL)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def ctl(self, *args):
        subprocess.run(as_postgres([pg_bin("pg_ctl"), "-D", self.dir, "-w", "-l",
                                    os.path.join(self.dir, "server.log")] + list(args)),
                       check=True, stdout=subprocess.DEVNULL)

    def start(self):
        self.ctl("-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                 "-c max_connections=100 -c fsync=on", "start")

    def stop(self):
        self.ctl("-m", "fast", "stop")

    def psql(self, sql):
        out = subprocess.run(["psql", "-qAt", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                              "postgres", "-c", sql], check=True, capture_output=True, text=True)
        return out.stdout


# --- JWT (RS384, the TEST-ONLY key of fixtures/jwt) ---------------------------------------

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    def __init__(self):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding
        with open(os.path.join(FIXTURES, "jwt", "rs384-TEST-ONLY.key.pem"), "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        self.hashes, self.padding = hashes, padding
        self.header = b64(json.dumps({"alg": "RS384", "typ": "JWT",
                                      "kid": "orderguard-test-rsa"}).encode())

    def token(self, audience):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + 300,
                  "jti": uuid.uuid4().hex}
        signing_input = f"{self.header}.{b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), self.padding.PKCS1v15(),
                                  self.hashes.SHA384())
        return f"{signing_input}.{b64(signature)}"


# --- The service ---------------------------------------------------------------------------

class Service:
    def __init__(self, base, database_url, name="a", env=None):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = os.path.join(base, f"data-{name}")
        os.makedirs(self.data_dir, exist_ok=True)
        self.config = os.path.join(base, f"config-{name}.json")
        with open(self.config, "w") as f:
            json.dump({"listen": f"127.0.0.1:{self.port}",
                       "auth": {"audience_base_url": self.base_url,
                                "trusted_clients": [{"issuer": ISSUER, "jwks_file": os.path.join(
                                    FIXTURES, "jwt", "rs384-TEST-ONLY.jwks.json")}]}}, f)
        self.log_path = os.path.join(base, f"serve-{name}.log")
        self.database_url = database_url
        self.env = env or {}
        self.proc = None
        self.start()

    def start(self, extra_env=None, wait=True):
        env = dict(os.environ, DATABASE_URL=self.database_url, RUST_LOG="info", **self.env,
                   **(extra_env or {}))
        env.pop("ORDERGUARD_LISTEN", None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary(), "serve", "--config", self.config, "--data-dir",
                                      self.data_dir], env=env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"orderguard serve exited {self.proc.returncode}; see {self.log_path}")
            try:
                status, _ = get(self.port, "/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("orderguard serve not ready")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cli(self, *args):
        env = dict(os.environ, DATABASE_URL=self.database_url)
        return subprocess.run([binary()] + list(args) + ["--data-dir", self.data_dir], env=env,
                              capture_output=True, text=True)


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# --- A fake FHIR server for requests without prefetch ---------------------------------------

class FakeFhir:
    """Answers the service's prefetch queries from fixture 49's prefetch. `delay` seconds
    before each answer; `stop()` closes the socket (unreachable)."""

    def __init__(self):
        with open(os.path.join(FIXTURES, "cases", "49-cds-order-sign-opioid.json")) as f:
            prefetch = json.load(f)["prefetch"]
        self.delay = 0.0
        self.requests = 0
        self.down = False
        empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        by_type = {"Patient": prefetch["patient"], "Condition": prefetch["conditions"],
                   "MedicationRequest": prefetch["medications"],
                   "ServiceRequest": prefetch["serviceRequests"],
                   "Observation": prefetch["observations"]}
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                fake.requests += 1
                if fake.down:
                    # Unreachable: kept-alive connections are cut too, not only new ones.
                    self.close_connection = True
                    self.connection.close()
                    return
                if fake.delay:
                    time.sleep(fake.delay)
                kind = self.path.lstrip("/").split("/")[-1].split("?")[0]
                if "/Patient/" in self.path or self.path.startswith("/Patient/"):
                    kind = "Patient"
                body = json.dumps(by_type.get(kind, empty)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/fhir+json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that gave up (the service's fetch deadline) is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.down = True
        self.server.shutdown()
        self.server.server_close()


# --- Requests --------------------------------------------------------------------------------

def load_json(relative):
    with open(os.path.join(FIXTURES, relative)) as f:
        return json.load(f)


class Requests:
    """Builds requests that each carry fresh identifiers (patient id, hookInstance, FHIR
    access token), so the log can be searched for every one of them."""

    def __init__(self, fhir_url=None):
        self.cds = load_json("cases/49-cds-order-sign-opioid.json")
        self.native = load_json("native/valid-vcf-full.json")
        self.fhir_url = fhir_url
        self.lock = threading.Lock()
        self.patients, self.tokens = [], []

    def remember(self, patient, token=None):
        with self.lock:
            if len(self.patients) < 5000:
                self.patients.append(patient)
            if token and len(self.tokens) < 5000:
                self.tokens.append(token)

    def cds_hooks(self, with_prefetch=True):
        r = copy.deepcopy(self.cds)
        patient = f"chaos-pt-{uuid.uuid4().hex[:16]}"
        r["hookInstance"] = str(uuid.uuid4())
        r["context"]["patientId"] = patient
        token = None
        if not with_prefetch:
            del r["prefetch"]
            token = f"fhir-secret-{uuid.uuid4().hex}"
            r["fhirServer"] = self.fhir_url
            r["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer",
                                      "expires_in": 300, "scope": "patient/*.read",
                                      "subject": "orderguard"}
        self.remember(patient, token)
        return "/cds-services/vcf-order-sign", r, ("hook", r["hookInstance"])

    def native_set(self):
        r = copy.deepcopy(self.native)
        patient = f"Patient/chaos-nat-{uuid.uuid4().hex[:16]}"
        r["patient"]["reference"] = patient
        r.pop("evaluated_at", None)
        self.remember(patient)
        return "/v1/validate", r, ("native", None)


class Client:
    """One keep-alive connection; reconnects after errors."""

    def __init__(self, port, signer):
        self.port, self.signer, self.conn = port, signer, None
        self.last_used = 0.0

    def post(self, path, body, base_url, timeout=15):
        token = self.signer.token(base_url + path)
        data = json.dumps(body).encode()
        # The server closes a kept-alive connection after 10 s without a request (its header
        # deadline). A send on such a connection fails before the server read anything: retry
        # once on a fresh connection, as HTTP client pools do.
        for attempt in (1, 2):
            # Only a connection idle past the server's deadline is retried: an error on a busy
            # one (a killed server) is the client's to see, and must not be hidden by a retry.
            stale = self.conn is not None and time.monotonic() - self.last_used > 9
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request("POST", path, body=data, headers={
                    "content-type": "application/json", "authorization": f"Bearer {token}"})
                r = self.conn.getresponse()
                payload = r.read()
                self.last_used = time.monotonic()
                return r.status, payload, token
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if not stale or attempt == 2:
                    raise
                token = self.signer.token(base_url + path)  # a jti is used once
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                raise
