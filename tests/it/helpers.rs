//! The test harness: each test runs the real server on a random port over its own database
//! (a fresh SQLite file, or a PostgreSQL schema dropped at the end when
//! `HERALD_TEST_DATABASE_URL` is set) and its own bus (in process, or a Redis channel prefix
//! of its own when `HERALD_TEST_REDIS_URL` is set), and speaks HTTP and WebSocket to it.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use api::{bootstrap, AppState, Config, Server};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use uuid::Uuid;

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub config: Config,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub admin_id: String,
    pub account_id: String,
    /// SQL statements executed by the server so far (sea-orm's metric hook).
    pub statements: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
    _db: DbGuard,
}

enum DbGuard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { url: String, schema: String },
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let DbGuard::Postgres { url, schema } = self {
            let (url, schema) = (url.clone(), schema.clone());
            // Drop runs outside async context: use a runtime of its own on another thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    let _ = fixtures::drop_schema(&url, &schema).await;
                });
            })
            .join();
        }
    }
}

/// Everything the servers of this test binary log from the first call on, as Herald logs in
/// production (its filter of secret-bearing targets included), with Herald's own events and
/// the OAuth2 and HTTP clients' at DEBUG. Shared by every test running meanwhile: look for
/// what only one test could have written.
pub fn captured_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
        let sink = logs.clone();
        let filter = tracing_subscriber::EnvFilter::new("info,api=debug,worker=debug,oauth2=trace,reqwest=debug,sqlx=warn,sea_orm=warn");
        api::telemetry::init_with(filter, false, move || LogWriter(sink.clone()));
        logs
    })
    .clone()
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut logs = self.0.lock().unwrap();
        // Bounded: the tests running meanwhile log too.
        if logs.len() < 256 << 20 {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn redis_url() -> Option<String> {
    std::env::var("HERALD_TEST_REDIS_URL").ok().filter(|v| !v.is_empty())
}

async fn test_config() -> (Config, DbGuard) {
    let dir = tempfile::tempdir().expect("tempdir");
    let postgres = match std::env::var("HERALD_TEST_DATABASE_URL").ok().filter(|v| !v.is_empty()) {
        Some(url) => {
            let schema = fixtures::create_schema(&url, "it").await.expect("HERALD_TEST_DATABASE_URL reachable");
            Some((url, schema))
        }
        None => None,
    };
    let mut config = fixtures::config(dir.path(), "test", postgres.as_ref().map(|(url, schema)| (url.as_str(), schema.as_str())));
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.database_max_connections = 5;
    config.ws_init_timeout = Duration::from_secs(2);
    let guard = match postgres {
        Some((url, schema)) => DbGuard::Postgres { url, schema },
        None => DbGuard::Sqlite(dir),
    };
    if let Some(url) = redis_url() {
        config.redis_url = Some(url);
        config.bus_prefix = format!("it-{}", Uuid::now_v7().simple());
    }
    (config, guard)
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let (mut config, guard) = test_config().await;
    tweak(&mut config);
    let mut state = AppState::init(config.clone()).await.expect("app state");
    let statements = Arc::new(AtomicUsize::new(0));
    let counter = statements.clone();
    state.db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let first = bootstrap::FirstAdmin { account_name: "Acme".into(), ..Default::default() };
    let (account, admin) = bootstrap::bootstrap(&state.db, first).await.expect("bootstrap").expect("fresh database");
    let admin_token = state.tokens.mint(admin.id, None, Duration::from_secs(600));
    let (addr, stop) = serve(state.clone()).await;
    TestApp {
        addr,
        state,
        config,
        http: reqwest::Client::new(),
        admin_token,
        admin_id: admin.id.to_string(),
        account_id: account.id.to_string(),
        statements,
        _stop: stop,
        _db: guard,
    }
}

async fn serve(state: AppState) -> (SocketAddr, oneshot::Sender<()>) {
    let server = Server::bind(state).await.expect("bind");
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Another api process over the same database and Redis (a replica).
pub struct Replica {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    pub async fn spawn_replica(&self) -> Replica {
        let state = AppState::init(self.config.clone()).await.expect("replica state");
        let (addr, stop) = serve(state).await;
        Replica { addr, _stop: stop }
    }

    /// Statements the server runs to answer one operation as the admin.
    pub async fn statements_for(&self, query: &str) -> usize {
        let before = self.statements.load(Ordering::SeqCst);
        self.admin(query, json!({})).await;
        self.statements.load(Ordering::SeqCst) - before
    }

    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql/ws", self.addr)
    }

    /// POSTs an operation with a bearer token (or none) and returns the JSON body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self.http.post(self.url()).json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        response.json().await.expect("JSON body")
    }

    /// As the bootstrap admin; panics on errors.
    pub async fn admin(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(Some(&self.admin_token), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    pub async fn post_raw(&self, headers: &[(&str, &str)], body: impl Into<reqwest::Body>) -> reqwest::Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        self.http.post(self.url()).headers(map).body(body).send().await.expect("request")
    }

    /// Creates a user in the admin's account and returns (id, token).
    /// A user of one of the admin's sub-accounts, created through the API as a parent's admin
    /// does (a new sub-account's first company admin, say).
    pub async fn sub_account_user(&self, account_id: &str, name: &str, role: &str) -> String {
        let email = format!("{}-{}@example.com", name.to_lowercase().replace(' ', "-"), Uuid::now_v7().simple());
        let data = self
            .admin(
                "mutation($i: CreateUserInput!) { createUser(input: $i) { user { id account { id } } } }",
                json!({"i": {"accountId": account_id, "name": name, "email": email, "role": role}}),
            )
            .await;
        assert_eq!(data["createUser"]["user"]["account"]["id"], account_id);
        data["createUser"]["user"]["id"].as_str().unwrap().to_string()
    }

    pub async fn user(&self, name: &str, role: &str) -> (String, String) {
        let email = format!("{}-{}@example.com", name.to_lowercase().replace(' ', "-"), Uuid::now_v7().simple());
        let data = self
            .admin("mutation($i: CreateUserInput!) { createUser(input: $i) { user { id } } }", json!({"i": {"name": name, "email": email, "role": role}}))
            .await;
        let id = data["createUser"]["user"]["id"].as_str().unwrap().to_string();
        let token = self.token_for(&id);
        (id, token)
    }

    /// Starts the all-in-one `herald` binary over this app's PostgreSQL schema (a second
    /// process, with its own worker), with `env` on top of the shared secrets.
    pub fn spawn_herald(&self, env: &[(&str, &str)]) -> (tokio::process::Child, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .env_clear()
            .env("HERALD_BIND", "127.0.0.1:0")
            .env("HERALD_DATA_DIR", dir.path())
            .env("HERALD_DATABASE_URL", self.config.database_url.clone().expect("PostgreSQL"))
            .env("HERALD_DATABASE_SCHEMA", self.config.database_schema.clone().expect("a schema"))
            .env("HERALD_JWT_SECRET", self.config.jwt_secret.as_ref().unwrap().expose())
            .env("HERALD_SECRET_KEY", self.config.secret_key.as_ref().unwrap().expose())
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the herald binary runs");
        (child, dir)
    }

    /// Turns one of the caller's own notification switches on (e.g. SYSTEM for a type that is
    /// off by default).
    pub async fn switch_on(&self, token: &str, kind: &str, switch: &str) {
        let body = self
            .gql(
                Some(token),
                "mutation($i: UpdateNotificationControlInput!) { updateNotificationControl(input: $i) { control { version } } }",
                json!({"i": {"changes": [{"type": kind, "switch": switch, "enabled": true}]}}),
            )
            .await;
        assert!(body.get("errors").is_none(), "{body:#}");
    }

    pub fn token_for(&self, user_id: &str) -> String {
        self.state.tokens.mint(user_id.parse().unwrap(), None, Duration::from_secs(600))
    }

    /// A second tenant: a new top-level account with its own admin (id, token, account id),
    /// created as a platform operator does.
    pub async fn other_tenant(&self) -> (String, String, String) {
        let (_, operator) = api::platform::mint_key(&self.state.db, "tests").await.unwrap();
        let (tenant, admin) = self.create_tenant(&operator, "Globex", "America/New_York", "Globex admin").await;
        let token = self.token_for(&admin);
        (admin, token, tenant)
    }

    /// A new tenant created with `operator`'s key (`createAccount`): its id and its first
    /// admin's id.
    pub async fn create_tenant(&self, operator: &str, name: &str, time_zone: &str, admin_name: &str) -> (String, String) {
        let email = format!("admin-{}@{}.example", Uuid::now_v7().simple(), name.to_lowercase());
        let body = self
            .gql(
                Some(operator),
                "mutation($i: CreateAccountInput!) { createAccount(input: $i) { tenant { id } adminId } }",
                json!({"i": {"name": name, "timeZone": time_zone, "adminName": admin_name, "adminEmail": email}}),
            )
            .await;
        let created = &body["data"]["createAccount"];
        let admin = created["adminId"].as_str().unwrap_or_else(|| panic!("{body:#}")).to_string();
        (created["tenant"]["id"].as_str().unwrap().to_string(), admin)
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// A real SMTP server on loopback (Debian's aiosmtpd, `tests/support/smtp_server.py`) with
/// AUTH; what it accepts is read back from its output directory.
pub struct TestSmtp {
    pub port: u16,
    pub user: String,
    pub password: String,
    dir: tempfile::TempDir,
    child: tokio::process::Child,
}

/// One message as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub auth_user: Option<String>,
    /// Whether `RCPT` and `DATA` came together with `MAIL` (RFC 2920 pipelining).
    pub pipelined: bool,
    pub raw: String,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(self.raw.as_bytes()).expect("a parsable message")
    }
    pub fn message_id(&self) -> String {
        format!("<{}>", self.parsed().message_id().expect("a Message-ID"))
    }
}

impl TestSmtp {
    pub async fn start(extra: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
        let mut child = tokio::process::Command::new("/usr/bin/python3")
            .arg(script)
            .arg("--out")
            .arg(dir.path())
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("/usr/bin/python3 with aiosmtpd (Debian package python3-aiosmtpd) runs the test SMTP server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP server starts within 20 s")
            .expect("stdout")
            .expect("a READY line (is python3-aiosmtpd installed?)");
        let port = line.strip_prefix("READY ").and_then(|p| p.trim().parse().ok()).unwrap_or_else(|| panic!("unexpected line {line:?}"));
        Self { port, user: "herald".into(), password: "s3cret".into(), dir, child }
    }

    /// Everything accepted so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        let mut files: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(self.dir.path())
            .expect("output dir")
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                let n = path.file_stem()?.to_str()?.parse().ok()?;
                (path.extension()? == "json").then_some((n, path))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
                Received {
                    mail_from: v["mail_from"].as_str().unwrap_or_default().to_string(),
                    rcpt_tos: v["rcpt_tos"].as_array().map(|a| a.iter().filter_map(|r| r.as_str().map(String::from)).collect()).unwrap_or_default(),
                    auth_user: v["auth_user"].as_str().map(String::from),
                    pipelined: v["pipelined"].as_bool().unwrap_or_default(),
                    raw: v["data"].as_str().unwrap_or_default().to_string(),
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived (at most `secs` seconds).
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

#[path = "../support/dovecot.rs"]
mod dovecot;
#[path = "../support/fixtures.rs"]
pub mod fixtures;
#[path = "../support/idp.rs"]
mod idp;
pub use dovecot::TestImap;
pub use idp::TestIdp;
