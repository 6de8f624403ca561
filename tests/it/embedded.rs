//! The all-in-one `herald` binary on its embedded defaults (SQLite in a data directory of its
//! own), run as a newcomer runs it: its database file and its log.

use std::{sync::Arc, time::Duration};

use base64::Engine;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::Mutex,
};

use crate::helpers::{TestImap, TestSmtp};

/// The all-in-one binary on embedded defaults in a directory of its own, its output collected.
struct Herald {
    child: tokio::process::Child,
    output: Arc<Mutex<Vec<String>>>,
    url: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Herald {
    async fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .env_clear()
            .env("HERALD_BIND", "127.0.0.1:0")
            .env("HERALD_DATA_DIR", dir.path())
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the herald binary runs");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [Box::pin(child.stdout.take().unwrap()) as std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>, Box::pin(child.stderr.take().unwrap())] {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    output.lock().await.push(line);
                }
            });
        }
        let (mut url, mut token) = (None, None);
        for _ in 0..300 {
            for line in output.lock().await.iter() {
                if let Some(rest) = line.strip_prefix("GraphQL (and GraphiQL in a browser): ") {
                    url = Some(rest.trim().to_string());
                }
                if line.starts_with("  ey") {
                    token = Some(line.trim().to_string());
                }
            }
            if url.is_some() && token.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, output, url: url.expect("herald printed its address"), token: token.expect("herald printed a token"), _dir: dir }
    }

    async fn gql(&self, query: &str, variables: Value) -> Value {
        let response =
            reqwest::Client::new().post(&self.url).bearer_auth(&self.token).json(&json!({"query": query, "variables": variables})).send().await.unwrap();
        response.json().await.unwrap()
    }

    fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.output.lock().await.join("\n")
    }
}

#[tokio::test]
async fn no_password_reaches_the_log_even_at_trace_level() {
    const IMAP_PASSWORD: &str = "imap-marker-Zq81x";
    let imap = TestImap::start(&[("ann@acme.example", IMAP_PASSWORD)]).await;
    let smtp = TestSmtp::start(&[]).await;
    let herald = Herald::start(&[("HERALD_LOG", "trace"), ("HERALD_WORKER_POLL_MS", "100"), ("HERALD_MAILBOX_SCAN_SECS", "1")]).await;

    let mailbox = json!({"emailAddress": "ann@acme.example", "host": "127.0.0.1", "port": imap.port, "security": "NONE", "password": IMAP_PASSWORD});
    let tested =
        herald.gql("mutation($i: TestMailboxConnectionInput!) { testMailboxConnection(input: $i) { ok failure { message } } }", json!({"i": mailbox})).await;
    assert_eq!(tested["data"]["testMailboxConnection"]["ok"], true, "{tested:#}");
    let mut create = mailbox.clone();
    create["main"] = json!(true);
    let created = herald.gql("mutation($i: CreateMailboxInput!) { createMailbox(input: $i) { mailbox { state } } }", json!({"i": create})).await;
    assert_eq!(created["data"]["createMailbox"]["mailbox"]["state"], "CONNECTED", "{created:#}");

    let settings = json!({
        "expectedVersion": 0,
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "NONE", "username": smtp.user, "password": smtp.password},
        "senderAddress": "crm@acme.example",
        "activityAlerts": {"intervalHours": 24, "sender": "SYSTEM_ACCOUNT"},
        "lateResponse": {"intervalHours": 2, "sender": "SYSTEM_ACCOUNT", "defaultPersonIds": []},
    });
    let saved = herald
        .gql("mutation($i: ChangeActivitySettingsInput!) { changeActivitySettings(input: $i) { activitySettings { version } } }", json!({"i": settings}))
        .await;
    assert!(saved.get("errors").is_none(), "{saved:#}");
    let probed = herald.gql("mutation { testSmtpSettings(input: {sendTo: \"ops@acme.example\"}) { ok failure { message } } }", json!({})).await;
    assert_eq!(probed["data"]["testSmtpSettings"]["ok"], true, "{probed:#}");
    // The worker scans the mailbox meanwhile (logging in again).
    tokio::time::sleep(Duration::from_secs(2)).await;

    let log = herald.stop().await;
    let (smtp_user, smtp_password) = (smtp.user.clone(), smtp.password.clone());
    imap.stop().await;
    smtp.stop().await;
    assert!(log.contains("TRACE"), "the log was written at trace level");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for (what, secret) in [
        ("the IMAP password", IMAP_PASSWORD.to_string()),
        ("the IMAP password as AUTH PLAIN", b64(&format!("\0ann@acme.example\0{IMAP_PASSWORD}"))),
        ("the SMTP password", smtp_password.clone()),
        ("the SMTP password as AUTH PLAIN", b64(&format!("\0{smtp_user}\0{smtp_password}"))),
        ("the SMTP password as AUTH LOGIN", b64(&smtp_password)),
    ] {
        assert!(!log.contains(&secret), "{what} is in the log:\n{}", log.lines().filter(|l| l.contains(&secret)).take(3).collect::<Vec<_>>().join("\n"));
    }
}

/// The embedded database under its own worker: concurrent API writes wait for one another
/// instead of failing with "database is locked", and the file is private to its owner.
#[tokio::test]
async fn the_embedded_database_takes_concurrent_writes_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let herald = Herald::start(&[("HERALD_WORKER_POLL_MS", "50")]).await;
    let writes = futures_util::future::join_all((0..16).map(|lane| {
        let herald = &herald;
        async move {
            let mut failures = Vec::new();
            for i in 0..20 {
                let name = format!("Customer {lane}-{i}");
                let body = herald
                    .gql("mutation($i: CreateContactInput!) { createContact(input: $i) { contact { id } } }", json!({"i": {"kind": "CUSTOMER", "name": name}}))
                    .await;
                if body.get("errors").is_some() {
                    failures.push(body);
                }
            }
            failures
        }
    }))
    .await;
    let failures: Vec<Value> = writes.into_iter().flatten().collect();
    let dir = herald.data_dir().to_path_buf();
    let modes: Vec<(String, u32)> = ["herald.db", "herald.db-wal"]
        .iter()
        .map(|f| (f.to_string(), std::fs::metadata(dir.join(f)).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)))
        .collect();
    // A reader beside the running server (write-ahead logging lets it in).
    let db = sea_orm::Database::connect(format!("sqlite://{}?mode=ro", dir.join("herald.db").display())).await.unwrap();
    let contacts = entity::contact::Entity::find().count(&db).await.unwrap();
    db.close().await.unwrap();
    herald.stop().await;
    assert!(failures.is_empty(), "{} of 320 writes failed, first: {:#}", failures.len(), failures[0]);
    assert_eq!(contacts, 320, "every acknowledged write is stored");
    for (file, mode) in modes {
        assert_eq!(mode, 0o600, "{file} is {mode:o}: the database (and its write-ahead log) must be private");
    }
}

/// `herald --help` and `--version` answer and exit without starting anything (no database
/// appears); an unknown argument is an error with the usage.
#[tokio::test]
async fn the_binary_answers_help_and_version_and_refuses_unknown_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let run = |arg: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg(arg)
            .current_dir(dir.path())
            .env_clear()
            .env("HERALD_DATA_DIR", dir.path())
            .output()
            .unwrap()
    };
    let help = run("--help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: herald") && text.contains("HERALD_"), "{text}");
    let version = run("--version");
    assert!(version.status.success());
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("herald {}", env!("CARGO_PKG_VERSION")));
    let unknown = run("--bogus");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Usage: herald"));
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was created");
}
