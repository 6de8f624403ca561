//! Live panels at scale: how fast `publishEvent` reaches the `notificationEvents` feed over
//! WebSocket, and what an idle subscriber costs the api process. The issue's two targets:
//!
//! 1. **Latency over Redis.** 1,000 users of one account, each the only assignee of a contact
//!    of their own and with AU on for NEW_LEAD (off by default, so System stays off), each
//!    subscribed to api process A. Events are published one after another through
//!    `publishEvent` on api process B, each about another user's contact, so exactly one
//!    panel gets each one, carried from B to A by Redis. Measured from just before the HTTP
//!    request to the moment that user's socket yields the NOTIFICATION frame.
//!    Target: p99 under 10 ms. Before it, the floor of the machine in the same run: `pgbench`
//!    running transactions of a publish's round trips with nothing around them.
//! 2. **One account-wide event on one process.** N users (default 10,000) of another account
//!    subscribed to one api process. The server's resident memory (VmRSS) before and after
//!    connecting them, divided by N, is the memory per idle subscriber (also read in between,
//!    once the sockets are authenticated and before they subscribe, to split it into socket
//!    and subscription). Then one WARNINGS event (System on by default: everyone's panel) and
//!    the time until every socket has its NOTIFICATION frame. Targets: all within 500 ms; at
//!    most 16 KiB per idle subscriber.
//!
//! The api runs as real `herald` processes (API and worker, the bench's build profile) on a
//! fresh PostgreSQL schema, seeded in-process, with a Redis bus prefix of their own; each
//! client is one task reading its socket (graphql-transport-ws, tokio-tungstenite, 4 KiB read
//! buffer) and stamping each frame as it is read. Clients and servers share the machine. The
//! api processes are killed and the schema dropped at the end, also on error or time-out;
//! their log lines at WARN and above are counted and shown.
//!
//! `cargo bench --bench panel_feed` (PostgreSQL at HERALD_BENCH_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; Redis at
//! HERALD_BENCH_REDIS_URL, default redis://127.0.0.1:6379; HERALD_BENCH_EVENTS, default 500;
//! HERALD_BENCH_SUBSCRIBERS, default 10000; HERALD_BENCH_BROADCAST_BUS, `redis` (default) or
//! `local` for the in-process bus; HERALD_BENCH_ONLY, `latency` or `broadcast`;
//! HERALD_BENCH_CONNECT_CONCURRENCY, sockets opening at once, default 200;
//! HERALD_BENCH_TIME_LIMIT_SECS, default 1200). The bench needs about N + 200 open files
//! (`ulimit -n`); the api processes raise their soft limit to the hard one.
// Test and benchmark code: a step that fails is a failed run, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/fixtures.rs"]
mod fixtures;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use api::{
    bootstrap,
    config::SecretString,
    notifications::{catalog::NotificationType, control::Switch},
    AppState,
};
use entity::{account, contact, contact::ContactKind, contact_assignee, notification_override, user};
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel};
use serde_json::{json, Value};
use tokio::{
    net::TcpStream,
    sync::{mpsc, watch, Semaphore},
    task::JoinSet,
};
use tokio_tungstenite::{
    connect_async_with_config,
    tungstenite::{client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig, Error as WsError, Message},
    MaybeTlsStream, WebSocketStream,
};
use uuid::Uuid;

/// The allocator Herald's binaries use.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LATENCY_SUBSCRIBERS: usize = 1_000;
/// Events published and received before the measured ones (connections and caches warm up).
const WARMUP_EVENTS: usize = 20;
/// A type that is off by default, about a contact: only its assignees with AU on get it.
const AU_KIND: NotificationType = NotificationType::NewLead;
/// A type on by default ("strongly encouraged"), about no contact: everyone's panel.
const BROADCAST_KIND: &str = "WARNINGS";
const FEED: &str = "subscription { notificationEvents { kind cursor notification { id title } counts { unseen } } }";
const PUBLISH: &str = "mutation($i: PublishEventInput!) { publishEvent(input: $i) { notified } }";
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret";
const TOKEN_TTL: Duration = Duration::from_secs(3 * 3600);
/// The api processes' pool (each also has the worker's).
const SERVER_DB_CONNECTIONS: &str = "20";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
const BROADCAST_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause before reading the server's memory, for it to settle.
const QUIESCENCE: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq)]
enum BusKind {
    Redis,
    Local,
}

impl BusKind {
    fn name(self) -> &'static str {
        match self {
            BusKind::Redis => "redis",
            BusKind::Local => "in-process",
        }
    }
}

struct Settings {
    database_url: String,
    redis_url: String,
    events: usize,
    subscribers: usize,
    broadcast_bus: BusKind,
    latency: bool,
    broadcast: bool,
    connect_concurrency: usize,
    time_limit: Duration,
}

fn env_or<T: FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw.trim().parse().map_err(|_| anyhow::anyhow!("{name}: cannot use {raw:?}")),
        _ => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let broadcast_bus = match env_or("HERALD_BENCH_BROADCAST_BUS", "redis".to_string())?.as_str() {
            "redis" => BusKind::Redis,
            "local" => BusKind::Local,
            other => anyhow::bail!("HERALD_BENCH_BROADCAST_BUS: `redis` or `local`, not {other:?}"),
        };
        let (latency, broadcast) = match env_or("HERALD_BENCH_ONLY", String::new())?.as_str() {
            "" => (true, true),
            "latency" => (true, false),
            "broadcast" => (false, true),
            other => anyhow::bail!("HERALD_BENCH_ONLY: `latency` or `broadcast`, not {other:?}"),
        };
        Ok(Self {
            database_url: env_or("HERALD_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".to_string())?,
            redis_url: env_or("HERALD_BENCH_REDIS_URL", "redis://127.0.0.1:6379".to_string())?,
            events: env_or("HERALD_BENCH_EVENTS", 500)?,
            subscribers: env_or("HERALD_BENCH_SUBSCRIBERS", 10_000)?,
            broadcast_bus,
            latency,
            broadcast,
            connect_concurrency: env_or("HERALD_BENCH_CONNECT_CONCURRENCY", 200)?,
            time_limit: Duration::from_secs(env_or("HERALD_BENCH_TIME_LIMIT_SECS", 1200)?),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let (soft, hard) = open_file_limits()?;
    let needed = settings.subscribers.max(LATENCY_SUBSCRIBERS) as u64 + 200;
    anyhow::ensure!(soft >= needed, "open files: soft limit {soft} < {needed} needed; run `ulimit -n {needed}` (hard limit {hard}) first");
    println!("open files (RLIMIT_NOFILE): soft {soft}, hard {hard}; api processes run with soft = hard");
    println!("{} CPUs; load average {}", std::thread::available_parallelism().map_or(0, |n| n.get()), load_average());

    let schema = fixtures::create_schema(&settings.database_url, "bench").await?;
    let result = match tokio::time::timeout(settings.time_limit, run(&settings, &schema)).await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!("stopped after the time limit of {} s", settings.time_limit.as_secs())),
    };
    // The api processes are killed by now (kill on drop); let their sessions end first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    fixtures::drop_schema(&settings.database_url, &schema).await?;
    result
}

/// (soft, hard) RLIMIT_NOFILE of this process, from /proc/self/limits.
fn open_file_limits() -> anyhow::Result<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits.lines().find(|l| l.starts_with("Max open files")).context("no `Max open files` in /proc/self/limits")?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let mut next = || -> u64 { fields.next().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX) }; // "unlimited"
    Ok((next(), next()))
}

async fn run(settings: &Settings, schema: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = fixtures::config(dir.path(), "bench", Some((&settings.database_url, schema)));
    config.database_max_connections = 4;
    // The api processes it starts are given this secret: the tokens minted here are theirs.
    config.jwt_secret = Some(SecretString::new(JWT_SECRET));
    // Migrates the fresh schema; the api processes then find nothing to do.
    let state = AppState::init(config.clone()).await?;
    let (account, admin) = bootstrap::bootstrap(&state.db, bootstrap::FirstAdmin::default()).await?.context("fresh schema")?;
    let shared = Shared {
        database_url: settings.database_url.clone(),
        schema: schema.to_string(),
        secret_key: config.secret_key.as_ref().expect("set above").expose().to_string(),
        redis_url: settings.redis_url.clone(),
        bus_prefix: format!("bench-{}", Uuid::now_v7().simple()),
        dir,
    };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let mint = |id: Uuid| state.tokens.mint(id, None, TOKEN_TTL);

    let mut verdicts = Vec::new();
    if settings.latency {
        let users = seed_latency(&state.db, account.id).await?;
        state.db.execute_unprepared("VACUUM ANALYZE").await?;
        let tokens = users.iter().map(|(u, _)| mint(*u)).collect();
        let contacts = users.iter().map(|(_, c)| *c).collect();
        let floor = round_trip_floor(&state.db, &shared).await?;
        verdicts.push(latency(settings, &shared, &http, &mint(admin.id), tokens, contacts).await?);
        print_floor(floor);
    }
    if settings.broadcast {
        let (admin, users) = seed_broadcast(&state.db, settings.subscribers).await?;
        state.db.execute_unprepared("VACUUM ANALYZE").await?;
        let tokens = users.iter().map(|u| mint(*u)).collect();
        verdicts.extend(broadcast(settings, &shared, &http, &mint(admin), tokens).await?);
    }
    println!("\nload average at the end: {}", load_average());
    println!("\n## Targets\n");
    for verdict in verdicts {
        println!("- {verdict}");
    }
    Ok(())
}

// --- Seed -----------------------------------------------------------------------------------

fn new_user(account_id: Uuid, name: String, role: user::Role) -> user::Model {
    let now = chrono::Utc::now();
    user::Model {
        id: Uuid::now_v7(),
        account_id,
        email: format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
        name,
        phone: None,
        role,
        active: true,
        created_at: now,
        updated_at: now,
    }
}

/// Scenario 1: users each assigned to a lead of their own, with AU on for [`AU_KIND`].
/// Answers (user, contact) pairs.
async fn seed_latency(db: &DatabaseConnection, account_id: Uuid) -> anyhow::Result<Vec<(Uuid, Uuid)>> {
    let now = chrono::Utc::now();
    let users: Vec<user::Model> = (0..LATENCY_SUBSCRIBERS).map(|i| new_user(account_id, format!("Agent {i}"), user::Role::User)).collect();
    let contacts: Vec<contact::Model> = (0..LATENCY_SUBSCRIBERS)
        .map(|i| contact::Model {
            id: Uuid::now_v7(),
            account_id,
            kind: ContactKind::Lead,
            name: format!("Lead {i}"),
            main_email: None,
            email_domain: None,
            valid: true,
            created_at: now,
            updated_at: now,
        })
        .collect();
    for (users, contacts) in users.chunks(1000).zip(contacts.chunks(1000)) {
        user::Entity::insert_many(users.iter().cloned().map(IntoActiveModel::into_active_model)).exec(db).await?;
        contact::Entity::insert_many(contacts.iter().cloned().map(IntoActiveModel::into_active_model)).exec(db).await?;
        let assignees = users
            .iter()
            .zip(contacts)
            .map(|(u, c)| contact_assignee::Model { contact_id: c.id, user_id: u.id, account_id, position: 0, assigned_at: now }.into_active_model());
        contact_assignee::Entity::insert_many(assignees).exec(db).await?;
        let switches = users.iter().map(|u| {
            notification_override::Model { user_id: u.id, notification_type: AU_KIND, switch: Switch::Au, account_id, enabled: true }.into_active_model()
        });
        notification_override::Entity::insert_many(switches).exec(db).await?;
    }
    Ok(users.iter().zip(&contacts).map(|(u, c)| (u.id, c.id)).collect())
}

/// Scenario 2: an account of its own with a company admin (the publisher) and `n` users on
/// default settings. Answers (admin, users).
async fn seed_broadcast(db: &DatabaseConnection, n: usize) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
    let now = chrono::Utc::now();
    let account = account::Model {
        id: Uuid::now_v7(),
        name: "Broadcast".into(),
        parent_id: None,
        time_zone: "UTC".into(),
        paused: false,
        add_ons: json!([]),
        version: 1,
        created_at: now,
        updated_at: now,
        updated_by: None,
        primary_admin_id: None,
    };
    account::Entity::insert(account.clone().into_active_model()).exec(db).await?;
    let admin = new_user(account.id, "Broadcast admin".into(), user::Role::CompanyAdmin);
    user::Entity::insert(admin.clone().into_active_model()).exec(db).await?;
    let users: Vec<user::Model> = (0..n).map(|i| new_user(account.id, format!("Member {i}"), user::Role::User)).collect();
    for chunk in users.chunks(1000) {
        user::Entity::insert_many(chunk.iter().cloned().map(IntoActiveModel::into_active_model)).exec(db).await?;
    }
    Ok((admin.id, users.iter().map(|u| u.id).collect()))
}

// --- Scenario 1 -----------------------------------------------------------------------------

async fn latency(
    settings: &Settings,
    shared: &Shared,
    http: &reqwest::Client,
    admin_token: &str,
    tokens: Vec<String>,
    contacts: Vec<Uuid>,
) -> anyhow::Result<String> {
    let n = tokens.len();
    println!("\n## publishEvent to panel over Redis ({n} subscribers on process A, publishing on process B)\n");
    let mut a = Herald::start(shared, "latency-a", BusKind::Redis, http).await?;
    let mut b = Herald::start(shared, "latency-b", BusKind::Redis, http).await?;
    println!("bus: redis ({}), prefix {}; api A on {}, api B on {}", settings.redis_url, shared.bus_prefix, a.addr, b.addr);

    let mut panels = Panels::spawn(&a.ws_url(), tokens, settings.connect_concurrency, true);
    let open = panels.wait(n, Stage::Ready, OPEN_TIMEOUT * 2).await;
    open.print(n, "panels open");
    open.ensure_all(n)?;

    // Each event about the contact of another user, in a fixed pseudo-random order.
    let order = shuffled(n, 0x9E37_79B9_7F4A_7C15);
    let mut latencies = Vec::new();
    let mut publish_times = Vec::new();
    let (mut missing, mut stray, mut dropped) = (0usize, 0usize, Vec::new());
    for i in 0..WARMUP_EVENTS + settings.events {
        let who = order[i % n];
        let input = json!({"type": AU_KIND, "contactId": contacts[who], "title": format!("New lead {i}"), "idempotencyKey": format!("latency-{i}")});
        let sent = Instant::now();
        let notified = publish(http, &b.graphql_url(), admin_token, input).await?;
        let took = sent.elapsed();
        anyhow::ensure!(notified == 1, "event {i} notified {notified} panels, not 1: check the seed");
        let deadline = sent + EVENT_TIMEOUT;
        let received = loop {
            match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), panels.reports.recv()).await {
                Ok(Some(Report { client, what: What::Notification, at })) if client == who => break Some(at - sent),
                Ok(Some(Report { what: What::Notification, .. })) => stray += 1,
                Ok(Some(Report { client, what: What::Failed(e), .. })) => {
                    dropped.push(e);
                    if client == who {
                        break None;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break None,
            }
        };
        if i >= WARMUP_EVENTS {
            publish_times.push(took);
            match received {
                Some(latency) => latencies.push(latency),
                None => missing += 1,
            }
        }
    }
    // Anything late or misdirected.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(report) = panels.reports.try_recv() {
        match report.what {
            What::Notification => stray += 1,
            What::Failed(e) => dropped.push(e),
            What::Connected | What::Ready => {}
        }
    }
    let client_rss = rss_kib(std::process::id());
    let rss_a = a.rss_kib();
    drop(panels);
    a.stop().await;
    b.stop().await;

    let events = settings.events;
    let stats = Stats::of(latencies);
    let publish = Stats::of(publish_times);
    println!();
    println!("| bus | subscribers | events | received | missing | stray | publishEvent p50 ms | publishEvent p99 ms | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| redis | {n} | {events} | {} | {missing} | {stray} | {} | {} | {} | {} | {} |",
        stats.count,
        publish.ms(0.5),
        publish.ms(0.99),
        stats.ms(0.5),
        stats.ms(0.99),
        stats.ms(1.0)
    );
    println!("\n(after {WARMUP_EVENTS} warm-up events; publishEvent = the HTTP round trip on B; latency = request sent on B to frame read from A)");
    println!("api A RSS with {n} panels: {}; bench process RSS: {}", mib(rss_a), mib(client_rss));
    report_dropped(&dropped);
    a.report_log();
    b.report_log();

    let p99 = stats.millis(0.99);
    let met = missing == 0 && stats.count == events && p99.is_some_and(|p| p < 10.0);
    Ok(format!(
        "publishEvent → panel over Redis, {n} subscribers, p99 under 10 ms: **{}** (p99 {} ms, {} of {events} received)",
        verdict(met),
        stats.ms(0.99),
        stats.count
    ))
}

/// The machine's floor under scenario 1, measured in the same run: PostgreSQL's own client,
/// `pgbench`, one connection, running one after another for five seconds a transaction shaped
/// like a publish's round trips: a read before the transaction (signing in), BEGIN, six reads
/// and two inserts, COMMIT — eleven round trips and a durable commit (a publish in a
/// sub-account; in a top-level account, as here, it has ten: no roll-up picks to read), with
/// no HTTP, GraphQL, Redis or WebSocket around them. Herald's latency cannot go below it; the
/// gap is Herald's.
/// `None` when pgbench is not installed.
async fn round_trip_floor(db: &DatabaseConnection, shared: &Shared) -> anyhow::Result<Option<Stats>> {
    db.execute_unprepared("CREATE TABLE floor_probe (id bigserial PRIMARY KEY, v text NOT NULL)").await?;
    let script = shared.dir.path().join("floor-script.sql");
    let reads = "SELECT 1;\n".repeat(6);
    std::fs::write(
        &script,
        format!("SELECT 1;\nBEGIN;\nINSERT INTO floor_probe (v) VALUES ('event');\n{reads}INSERT INTO floor_probe (v) VALUES ('row');\nCOMMIT;\n"),
    )?;
    let prefix = shared.dir.path().join("floor");
    let ran = tokio::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c", "1", "-T", "5", "-l"])
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg("-f")
        .arg(&script)
        .arg(&shared.database_url)
        .env("PGOPTIONS", format!("-c search_path={}", shared.schema))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await;
    let output = match ran {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("running pgbench"),
    };
    anyhow::ensure!(output.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&output.stderr));
    // Each log line: client, transaction, latency in µs, script, epoch seconds, µs.
    let mut samples = Vec::new();
    for entry in std::fs::read_dir(shared.dir.path())? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("floor.")) {
            for line in std::fs::read_to_string(&path)?.lines() {
                let micros: u64 = line.split_whitespace().nth(2).context("pgbench log line")?.parse()?;
                samples.push(Duration::from_micros(micros));
            }
        }
    }
    Ok(Some(Stats::of(samples)))
}

fn print_floor(floor: Option<Stats>) {
    match floor {
        Some(f) => println!(
            "\nfloor (pgbench, one connection, a publish's 11 round trips and commit, {} transactions): p50 {} ms, p99 {} ms, max {} ms",
            f.count,
            f.ms(0.5),
            f.ms(0.99),
            f.ms(1.0)
        ),
        None => println!("\nfloor: pgbench not installed, not measured"),
    }
}

// --- Scenario 2 -----------------------------------------------------------------------------

async fn broadcast(settings: &Settings, shared: &Shared, http: &reqwest::Client, admin_token: &str, tokens: Vec<String>) -> anyhow::Result<Vec<String>> {
    let n = tokens.len();
    let bus = settings.broadcast_bus;
    println!("\n## One account-wide event to {n} subscribers on one api process (bus: {})\n", bus.name());
    let mut server = Herald::start(shared, "broadcast", bus, http).await?;
    println!("api on {}; {} sockets opening at once", server.addr, settings.connect_concurrency);

    // Warm-up: one panel opened and closed, so that one-time costs fall before the baseline.
    {
        let mut warm = Panels::spawn(&server.ws_url(), vec![admin_token.to_string()], 1, true);
        warm.wait(1, Stage::Ready, OPEN_TIMEOUT).await.ensure_all(1)?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_kib().context("server RSS")?;

    // Memory in two steps: authenticated sockets, then their subscriptions.
    let mut panels = Panels::spawn(&server.ws_url(), tokens, settings.connect_concurrency, false);
    let connected = panels.wait(n, Stage::Connected, OPEN_TIMEOUT * 10).await;
    connected.print(n, "sockets connected and authenticated");
    tokio::time::sleep(QUIESCENCE).await;
    let sockets = server.rss_kib().context("server RSS")?;
    panels.subscribe();
    let open = panels.wait(connected.reached, Stage::Ready, OPEN_TIMEOUT * 10).await;
    open.print(connected.reached, "panels subscribed");
    tokio::time::sleep(QUIESCENCE).await;
    let idle = server.rss_kib().context("server RSS")?;
    let per = |from: u64, to: u64, count: usize| to.saturating_sub(from) as f64 / count.max(1) as f64;
    let (per_socket, per_subscription) = (per(before, sockets, connected.reached), per(sockets, idle, open.reached));
    let per_subscriber = per(before, idle, open.reached);
    let opened = open.reached;

    // The event, then every panel's first NOTIFICATION.
    let input = json!({"type": BROADCAST_KIND, "title": "Scheduled maintenance tonight", "idempotencyKey": "broadcast-1"});
    let sent = Instant::now();
    let published = publish(http, &server.graphql_url(), admin_token, input).await;
    let took = sent.elapsed();
    let mut first: Vec<Option<Duration>> = vec![None; n];
    let (mut received, mut repeats, mut dropped) = (0usize, 0usize, Vec::new());
    if published.is_ok() {
        let deadline = sent + BROADCAST_TIMEOUT;
        while received < opened {
            match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), panels.reports.recv()).await {
                Ok(Some(Report { client, what: What::Notification, at })) => match first[client] {
                    None => {
                        first[client] = Some(at - sent);
                        received += 1;
                    }
                    Some(_) => repeats += 1,
                },
                Ok(Some(Report { what: What::Failed(e), .. })) => dropped.push(e),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    let after = server.rss_kib();
    let client_rss = rss_kib(std::process::id());
    drop(panels);
    server.stop().await;

    let stats = Stats::of(first.into_iter().flatten().collect());
    let kib = |k: f64| format!("{k:.1}");
    println!();
    println!(
        "| bus | subscribers | open | server RSS before | with sockets | with idle panels | KiB per socket | KiB per subscription | KiB per idle subscriber |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {n} | {opened} | {} | {} | {} | {} | {} | {} |",
        bus.name(),
        mib(Some(before)),
        mib(Some(sockets)),
        mib(Some(idle)),
        kib(per_socket),
        kib(per_subscription),
        kib(per_subscriber)
    );
    println!("\n(socket: upgraded and authenticated; subscription: the panel feed on it; RSS read {} s after each step)", QUIESCENCE.as_secs());
    println!();
    println!("| bus | subscribers | publishEvent ms | notified | received | first ms | p50 ms | p99 ms | all ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let notified = match &published {
        Ok(notified) => notified.to_string(),
        Err(_) => "error".into(),
    };
    println!(
        "| {} | {n} | {:.1} | {notified} | {received} | {} | {} | {} | {} |",
        bus.name(),
        took.as_secs_f64() * 1000.0,
        stats.ms(0.0),
        stats.ms(0.5),
        stats.ms(0.99),
        stats.ms(1.0)
    );
    println!("\n(notified counts the account's admin too; times from request sent to frame read)");
    println!("server RSS after the event: {}; bench process RSS: {}", mib(after), mib(client_rss));
    if let Err(e) = &published {
        println!("publishEvent failed: {e:#}");
    }
    if received < opened && published.is_ok() {
        println!("{} panels had no NOTIFICATION within {} s", opened - received, BROADCAST_TIMEOUT.as_secs());
    }
    if repeats > 0 {
        println!("{repeats} NOTIFICATION frames beyond the first per panel");
    }
    report_dropped(&dropped);
    server.report_log();

    let all = (received == n).then(|| stats.millis(1.0)).flatten();
    Ok(vec![
        format!(
            "one account-wide event to {n} subscribers ({} bus), all within 500 ms: **{}** ({})",
            bus.name(),
            verdict(all.is_some_and(|ms| ms <= 500.0)),
            match all {
                Some(ms) => format!("all in {ms:.1} ms"),
                None => format!("{received} of {n} received"),
            }
        ),
        format!(
            "memory per idle subscriber at most 16 KiB: **{}** ({per_subscriber:.1} KiB over {} panels)",
            verdict(opened == n && per_subscriber <= 16.0),
            opened
        ),
    ])
}

// --- The api processes ----------------------------------------------------------------------

/// What every api process of the run shares: database, secrets, bus prefix, a directory for
/// their data and logs.
struct Shared {
    database_url: String,
    schema: String,
    secret_key: String,
    redis_url: String,
    bus_prefix: String,
    dir: tempfile::TempDir,
}

/// One `herald` process (API and worker), killed when dropped.
struct Herald {
    name: &'static str,
    addr: SocketAddr,
    child: tokio::process::Child,
    log: PathBuf,
}

impl Herald {
    async fn start(shared: &Shared, name: &'static str, bus: BusKind, http: &reqwest::Client) -> anyhow::Result<Self> {
        let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let data = shared.dir.path().join(name);
        std::fs::create_dir_all(&data)?;
        let log = shared.dir.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let mut command = tokio::process::Command::new("/bin/sh");
        // Raise the soft open-files limit to the hard one (10,000 sockets and more), then
        // become herald: the pid is the server's own.
        command.arg("-c").arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0""#).arg(env!("CARGO_BIN_EXE_herald"));
        command
            .env_clear()
            .env("HERALD_BIND", addr.to_string())
            .env("HERALD_DATA_DIR", &data)
            .env("HERALD_DATABASE_URL", &shared.database_url)
            .env("HERALD_DATABASE_SCHEMA", &shared.schema)
            .env("HERALD_DATABASE_MAX_CONNECTIONS", SERVER_DB_CONNECTIONS)
            .env("HERALD_JWT_SECRET", JWT_SECRET)
            .env("HERALD_SECRET_KEY", &shared.secret_key)
            // Nothing to deliver here: a small outbox pool for the worker.
            .env("HERALD_DELIVERY_CONCURRENCY", "2")
            .env("HERALD_LOG", "warn")
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        if bus == BusKind::Redis {
            command.env("HERALD_REDIS_URL", &shared.redis_url).env("HERALD_BUS_PREFIX", &shared.bus_prefix);
        }
        let mut herald = Self { name, addr, child: command.spawn().context("starting herald")?, log };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = herald.child.try_wait()? {
                anyhow::bail!("herald {name} exited ({status}) before it was ready:\n{}", herald.log_tail());
            }
            let ready = http.get(format!("http://{addr}/readyz")).timeout(Duration::from_secs(2)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(herald);
            }
            anyhow::ensure!(Instant::now() < deadline, "herald {name} not ready within {} s:\n{}", READY_TIMEOUT.as_secs(), herald.log_tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/graphql/ws", self.addr)
    }

    fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.child.id()?)
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().map(String::from).collect()
    }

    fn log_tail(&self) -> String {
        let lines = self.log_lines();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Its log at WARN and above (the level it runs with): how many lines, and the first few.
    fn report_log(&self) {
        let problems: Vec<String> = self.log_lines().into_iter().filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked")).collect();
        if problems.is_empty() {
            println!("server log ({}): no warnings or errors", self.name);
        } else {
            println!("server log ({}): {} warning/error lines, first ones:", self.name, problems.len());
            for line in problems.iter().take(5) {
                println!("    {line}");
            }
        }
    }

    /// Kills the process (its log stays readable).
    async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// The machine's 1, 5 and 15 minute load averages: clients and servers share its CPUs, and
/// so does anything else running.
fn load_average() -> String {
    let raw = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    raw.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// `publishEvent` as `token`; answers `notified`.
async fn publish(http: &reqwest::Client, url: &str, token: &str, input: Value) -> anyhow::Result<i64> {
    let response = http.post(url).bearer_auth(token).json(&json!({"query": PUBLISH, "variables": {"i": input}})).send().await?;
    let status = response.status();
    let body: Value = response.json().await.with_context(|| format!("publishEvent answered HTTP {status} without JSON"))?;
    anyhow::ensure!(body.get("errors").is_none(), "publishEvent: {}", body["errors"]);
    body["data"]["publishEvent"]["notified"].as_i64().with_context(|| format!("publishEvent: unexpected answer {body}"))
}

// --- The clients ----------------------------------------------------------------------------

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a client saw, stamped when its task read it.
struct Report {
    client: usize,
    what: What,
    at: Instant,
}

enum What {
    /// Upgraded and authenticated (`connection_ack`).
    Connected,
    /// Subscribed, and the feed's first COUNTS arrived.
    Ready,
    Notification,
    /// Could not open, or closed, or an unexpected frame: the client has stopped.
    Failed(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connected,
    Ready,
}

/// Panels, one task each, reporting to one channel; the tasks are aborted (and their sockets
/// dropped) with it.
struct Panels {
    _tasks: JoinSet<()>,
    reports: mpsc::UnboundedReceiver<Report>,
    subscribe: watch::Sender<bool>,
}

struct Progress {
    reached: usize,
    failed: Vec<String>,
    elapsed: Duration,
}

impl Progress {
    fn ensure_all(&self, n: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.reached == n, "only {} of {n} panels opened; first failures: {:?}", self.reached, &self.failed[..self.failed.len().min(3)]);
        Ok(())
    }

    fn print(&self, n: usize, what: &str) {
        let secs = self.elapsed.as_secs_f64();
        println!("{} of {n} {what} in {secs:.2} s ({:.0} per s)", self.reached, self.reached as f64 / secs);
        if let Some(first) = self.failed.first() {
            println!("{} failed, first: {first}", self.failed.len());
        }
    }
}

impl Panels {
    /// One client per token, at most `concurrency` of them opening at once. Each connects
    /// and authenticates, then subscribes to its panel at once (`subscribe_now`) or when
    /// [`Panels::subscribe`] is called.
    fn spawn(url: &str, tokens: Vec<String>, concurrency: usize, subscribe_now: bool) -> Self {
        let (tx, reports) = mpsc::unbounded_channel();
        let (subscribe, go) = watch::channel(subscribe_now);
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (client, token) in tokens.into_iter().enumerate() {
            tasks.spawn(subscriber(client, url.to_string(), token, gate.clone(), go.clone(), tx.clone()));
        }
        Self { _tasks: tasks, reports, subscribe }
    }

    fn subscribe(&self) {
        let _ = self.subscribe.send(true);
    }

    /// Waits until `n` clients reached `stage` or failed (or `limit` passes).
    async fn wait(&mut self, n: usize, stage: Stage, limit: Duration) -> Progress {
        let started = Instant::now();
        let mut progress = Progress { reached: 0, failed: Vec::new(), elapsed: Duration::ZERO };
        while progress.reached + progress.failed.len() < n {
            match tokio::time::timeout(limit.saturating_sub(started.elapsed()), self.reports.recv()).await {
                Ok(Some(Report { what: What::Connected, .. })) if stage == Stage::Connected => progress.reached += 1,
                Ok(Some(Report { what: What::Ready, .. })) if stage == Stage::Ready => progress.reached += 1,
                Ok(Some(Report { what: What::Failed(e), .. })) => progress.failed.push(e),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    progress.failed.push(format!("the rest did not make it within {} s", limit.as_secs()));
                    break;
                }
            }
        }
        progress.elapsed = started.elapsed();
        progress
    }
}

/// One panel: connects and authenticates, waits for the word to subscribe, subscribes
/// (holding a permit of `gate` while opening, for each step), then reports every
/// NOTIFICATION frame with the instant it was read, until the socket ends or the task is
/// aborted. It reads all the while, which also answers the server's pings.
async fn subscriber(client: usize, url: String, token: String, gate: Arc<Semaphore>, mut go: watch::Receiver<bool>, reports: mpsc::UnboundedSender<Report>) {
    let report = |what: What, at: Instant| {
        let _ = reports.send(Report { client, what, at });
    };
    let connected = {
        let _permit = gate.acquire().await.expect("the gate is never closed");
        within("connect", connect(&url, &token)).await
    };
    let mut socket = match connected {
        Ok(socket) => socket,
        Err(e) => return report(What::Failed(e), Instant::now()),
    };
    report(What::Connected, Instant::now());
    loop {
        tokio::select! {
            go = go.wait_for(|go| *go) => match go {
                Ok(_) => break,
                Err(_) => return,
            },
            message = socket.next() => match text_of(message) {
                Ok(None) => continue,
                Ok(Some(text)) => return report(What::Failed(format!("unexpected message before subscribing: {text}")), Instant::now()),
                Err(e) => return report(What::Failed(e), Instant::now()),
            },
        }
    }
    let subscribed = {
        let _permit = gate.acquire().await.expect("the gate is never closed");
        within("subscribe", subscribe(&mut socket)).await
    };
    if let Err(e) = subscribed {
        return report(What::Failed(e), Instant::now());
    }
    report(What::Ready, Instant::now());
    loop {
        let message = socket.next().await;
        let at = Instant::now();
        let what = match text_of(message).and_then(|text| text.map(|t| feed_kind(&t)).transpose()) {
            Ok(Some(FeedKind::Notification)) => What::Notification,
            Ok(Some(FeedKind::Counts) | None) => continue,
            Err(e) => What::Failed(e),
        };
        let stop = matches!(what, What::Failed(_));
        report(what, at);
        if stop {
            return;
        }
    }
}

async fn within<T>(step: &str, work: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(OPEN_TIMEOUT, work).await.unwrap_or_else(|_| Err(format!("{step}: not done within {} s", OPEN_TIMEOUT.as_secs())))
}

/// Connects with the graphql-transport-ws subprotocol and authenticates.
async fn connect(url: &str, token: &str) -> Result<Socket, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    // A small read buffer (the default is 128 KiB, allocated eagerly) and no write buffering.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut socket, _) = connect_async_with_config(request, Some(config), true).await.map_err(|e| format!("upgrade: {e}"))?;
    let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    socket.send(Message::Text(init.to_string().into())).await.map_err(|e| format!("connection_init: {e}"))?;
    let ack = next_text(&mut socket).await?;
    if !ack.contains("\"connection_ack\"") {
        return Err(format!("expected connection_ack, got {ack}"));
    }
    Ok(socket)
}

/// Subscribes to the panel feed and waits for its first COUNTS.
async fn subscribe(socket: &mut Socket) -> Result<(), String> {
    let subscribe = json!({"type": "subscribe", "id": "panel", "payload": {"query": FEED}});
    socket.send(Message::Text(subscribe.to_string().into())).await.map_err(|e| format!("subscribe: {e}"))?;
    match feed_kind(&next_text(socket).await?)? {
        FeedKind::Counts => Ok(()),
        FeedKind::Notification => Err("a NOTIFICATION before the first COUNTS".into()),
    }
}

async fn next_text(socket: &mut Socket) -> Result<String, String> {
    loop {
        if let Some(text) = text_of(socket.next().await)? {
            return Ok(text);
        }
    }
}

/// A text frame's text; `None` for control frames (tungstenite answers pings as it reads);
/// an error when the socket closes or fails.
fn text_of(message: Option<Result<Message, WsError>>) -> Result<Option<String>, String> {
    match message {
        Some(Ok(Message::Text(text))) => Ok(Some(text.to_string())),
        Some(Ok(Message::Close(frame))) => Err(format!("closed by the server: {frame:?}")),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!("socket error: {e}")),
        None => Err("socket ended".into()),
    }
}

enum FeedKind {
    Notification,
    Counts,
}

/// The `kind` of a feed item (`next` message); anything else is an error.
fn feed_kind(text: &str) -> Result<FeedKind, String> {
    let message: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))?;
    match (message["type"].as_str(), message["payload"]["data"]["notificationEvents"]["kind"].as_str()) {
        (Some("next"), Some("NOTIFICATION")) => Ok(FeedKind::Notification),
        (Some("next"), Some("COUNTS")) => Ok(FeedKind::Counts),
        _ => Err(format!("unexpected message: {}", text.chars().take(300).collect::<String>())),
    }
}

fn report_dropped(dropped: &[String]) {
    if !dropped.is_empty() {
        println!("{} clients stopped during the run, first: {}", dropped.len(), dropped[0]);
    }
}

// --- Numbers --------------------------------------------------------------------------------

struct Stats {
    sorted: Vec<Duration>,
    count: usize,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self { count: samples.len(), sorted: samples }
    }

    /// The `p` quantile (0 = first, 1 = max) in milliseconds.
    fn millis(&self, p: f64) -> Option<f64> {
        let last = self.sorted.len().checked_sub(1)?;
        Some(self.sorted[((self.sorted.len() as f64 * p) as usize).min(last)].as_secs_f64() * 1000.0)
    }

    fn ms(&self, p: f64) -> String {
        self.millis(p).map_or("–".into(), |ms| format!("{ms:.2}"))
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "not met"
    }
}

/// 0..n in a fixed pseudo-random order (Fisher–Yates over xorshift64).
fn shuffled(n: usize, mut seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    order
}
