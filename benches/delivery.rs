//! Delivery throughput: 10,000 due activity reminders, from due to accepted by a local SMTP
//! sink (Postfix's `smtp-sink`), with one worker and with two, beside Postfix's own
//! `smtp-source` pushing the same number of messages to the same sink in the same run.
//!
//! Herald's time covers the whole path, from the moment the reminders fall due (one statement
//! sets their reminder time, the workers already running and polling every 50 ms): the
//! scheduler turning due activities into reminder events, panel rows and outbox emails, then
//! rendering (minijinja, text + HTML) and sending them over pooled SMTP connections, and
//! settling each one. Duplicates are counted at the sink (messages accepted beyond the number
//! queued) and must be 0.
//!
//! `cargo bench --bench delivery` (PostgreSQL at HERALD_BENCH_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; HERALD_BENCH_MESSAGES, default 10000;
//! HERALD_DELIVERY_CONCURRENCY, default 32; smtp-sink and smtp-source from Debian's postfix).
//! HERALD_BENCH_ROUNDS (default 3): rounds of smtp-source, one worker, two workers; the table
//! gives medians. Diagnosis: HERALD_BENCH_PHASES runs the scheduler alone before timing (so
//! the time is delivery only), HERALD_BENCH_TIMELINE prints the sink's count every 250 ms,
//! HERALD_BENCH_WORKERS=1 or 2 runs only that many workers (to profile one). Each worker runs
//! on a runtime of its own, of HERALD_WORKER_THREADS threads (default 1, as a worker process).
// Test and benchmark code: a step that fails is a failed run, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../tests/support/sink.rs"]
mod sink;

use std::time::{Duration, Instant};

use sink::Sink;

use api::{bootstrap, config::SecretString, crypto::Keyring, AppState, Config};
use chrono::Utc;
use entity::{activity, activity_settings, outbox_message, user};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter};
use tokio::sync::watch;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OWNERS: usize = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // No TLS to a database on loopback: it would only measure rustls.
    let url = std::env::var("HERALD_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    let n: usize = std::env::var("HERALD_BENCH_MESSAGES").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let concurrency: usize = std::env::var("HERALD_DELIVERY_CONCURRENCY").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
    let sink = Sink::start().await?;
    println!("smtp-sink on 127.0.0.1:{}; {n} messages per run; {concurrency} in flight per worker", sink.port);

    // Rounds, each the peer then Herald with one worker and with two, so that the machine's
    // drift between runs (large even for smtp-source alone) falls on all three alike; the
    // table gives each one's median.
    let rounds: usize = std::env::var("HERALD_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let mut source = Vec::new();
    let mut herald: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut duplicates = [0u64; 2];
    for round in 1..=rounds {
        // The peer: Postfix's own client, same count, same sink, messages of a similar size
        // (Herald's reminders are about 2.5 kB with both bodies).
        let before = sink.count();
        let started = Instant::now();
        let status = tokio::process::Command::new("smtp-source")
            .args(["-s", &concurrency.to_string(), "-m", &n.to_string(), "-l", "2500", "-f", "crm@acme.example", "-t", "owner@acme.example"])
            .arg(format!("127.0.0.1:{}", sink.port))
            .status()
            .await?;
        anyhow::ensure!(status.success(), "smtp-source failed");
        sink.wait_for(before + n as u64, Duration::from_secs(60)).await;
        let source_secs = started.elapsed().as_secs_f64();
        println!("round {round}: smtp-source {n} in {source_secs:.2} s = {:.0} msg/s ({} accepted)", n as f64 / source_secs, sink.count() - before);
        source.push(source_secs);

        for workers in worker_counts() {
            let schema = fixtures::create_schema(&url, "bench").await?;
            let result = run(&url, &schema, n, workers, concurrency, &sink).await;
            fixtures::drop_schema(&url, &schema).await?;
            let (secs, dup) = result?;
            println!(
                "round {round}: herald, {workers} worker(s): {n} in {secs:.2} s = {:.0} msg/s, duplicates {dup}, {:.2} of this round's smtp-source",
                n as f64 / secs,
                source_secs / secs
            );
            herald[workers - 1].push(secs);
            duplicates[workers - 1] += dup;
        }
    }
    let source_secs = median(&mut source);
    let source_rate = n as f64 / source_secs;
    println!("\nmedians of {rounds} round(s):\n| sender | messages | seconds | msg/s | duplicates | vs smtp-source |\n|---|---|---|---|---|---|");
    println!("| smtp-source (-s {concurrency}) | {n} | {source_secs:.2} | {source_rate:.0} | – | 1.00 |");
    for workers in worker_counts() {
        let secs = median(&mut herald[workers - 1]);
        let rate = n as f64 / secs;
        println!("| Herald, {workers} worker(s) | {n} | {secs:.2} | {rate:.0} | {} | {:.2} |", duplicates[workers - 1], rate / source_rate);
    }
    Ok(())
}

/// One worker and two; HERALD_BENCH_WORKERS=1 (or 2) runs only that one, for profiling.
fn worker_counts() -> Vec<usize> {
    match std::env::var("HERALD_BENCH_WORKERS").ok().and_then(|s| s.parse().ok()) {
        Some(w @ (1 | 2)) => vec![w],
        _ => vec![1, 2],
    }
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

fn config(url: &str, schema: &str, dir: &std::path::Path, concurrency: usize) -> Config {
    let mut config = fixtures::config(dir, "bench", Some((url, schema)));
    config.database_max_connections = concurrency as u32 + 4;
    // Every worker of a run reads the secrets the first one sealed: one keyring for them all.
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    config.secret_key = Some(SecretString::new(KEY.get_or_init(|| Keyring::generate_spec("bench")).clone()));
    config.worker.concurrency = concurrency;
    config.worker.poll_interval = Duration::from_millis(50);
    if let Some(threads) = std::env::var("HERALD_WORKER_THREADS").ok().and_then(|s| s.parse().ok()) {
        config.worker.threads = threads;
    }
    config
}

/// Seeds `n` activities whose reminders are due now, runs `workers` workers until the sink
/// has them all, and answers (seconds, duplicates).
async fn run(url: &str, schema: &str, n: usize, workers: usize, concurrency: usize, sink: &Sink) -> anyhow::Result<(f64, u64)> {
    let dir = tempfile::tempdir()?;
    let state = AppState::init(config(url, schema, dir.path(), concurrency)).await?;
    let (account, _) = bootstrap::bootstrap(&state.db, bootstrap::FirstAdmin::default()).await?.expect("fresh schema");
    seed(&state, account.id, n, sink.port).await?;
    state.db.execute_unprepared("VACUUM ANALYZE").await?;
    let phases = std::env::var("HERALD_BENCH_PHASES").is_ok();
    if phases {
        // Diagnosis: the scheduler alone first, then only delivery is timed below.
        fall_due(&state).await?;
        let started = Instant::now();
        let done = worker::scheduler::run(&state, Utc::now()).await?;
        println!("  scheduler alone: {} reminders in {:.2} s", done.reminders, started.elapsed().as_secs_f64());
    }

    // The workers run before anything is due, as a deployed worker does; the clock starts
    // when the reminders fall due, so that it times delivering them and not a worker's start.
    let before = sink.count();
    let (stop, stopped) = watch::channel(false);
    let mut handles = Vec::new();
    for _ in 0..workers {
        // Each worker with its own runtime (of `HERALD_WORKER_THREADS` threads, one by default)
        // and its own pools, as a separate worker process has.
        let config = config(url, schema, dir.path(), concurrency);
        let mut stopped = stopped.clone();
        let (ready, started) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            worker::runtime(&config)?.block_on(async move {
                let worker = async { worker::Worker::new(AppState::init(config).await?).await };
                match worker.await {
                    Ok(worker) => {
                        let _ = ready.send(Ok(()));
                        worker
                            .run(async move {
                                let _ = stopped.wait_for(|s| *s).await;
                            })
                            .await;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            });
            Ok(())
        }));
        started.await??;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    if !phases {
        fall_due(&state).await?;
    }
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    // The sink's count is free to read; the database is asked only once the sink has them
    // all, so that polling does not compete with the workers for PostgreSQL.
    let mut marks = Vec::new();
    let mut queued = Vec::new();
    let mut last_mark = Instant::now();
    loop {
        if std::env::var("HERALD_BENCH_TIMELINE").is_ok() && last_mark.elapsed() >= Duration::from_millis(250) {
            last_mark = Instant::now();
            marks.push(sink.count() - before);
            // How far the scheduler is: outbox rows queued so far (one query per mark).
            queued.push(outbox_message::Entity::find().count(&state.db).await?);
        }
        if sink.count() >= before + n as u64 {
            let sent = outbox_message::Entity::find().filter(outbox_message::Column::Status.eq("SENT")).count(&state.db).await? as usize;
            if sent >= n {
                break;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "only {} of {n} accepted after 10 minutes", sink.count() - before);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    if !marks.is_empty() {
        println!("  accepted every 250 ms: {marks:?}");
        println!("  queued every 250 ms:   {queued:?}");
    }
    stop.send(true)?;
    for h in handles {
        tokio::task::spawn_blocking(move || h.join().expect("a worker thread panicked")).await??;
    }
    // Let late arrivals (duplicates) land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed = outbox_message::Entity::find().filter(outbox_message::Column::Status.ne("SENT")).count(&state.db).await?;
    anyhow::ensure!(failed == 0, "{failed} messages not sent");
    Ok((secs, sink.count() - before - n as u64))
}

/// Makes every seeded reminder due, in one statement: due in three hours, reminded 24 hours
/// before, so their reminder time has passed. Until then they have none.
async fn fall_due(state: &AppState) -> anyhow::Result<()> {
    state.db.execute_unprepared("UPDATE activity SET remind_at = due_at - interval '24 hours' WHERE remind_at IS NULL AND reminded_for IS NULL").await?;
    Ok(())
}

async fn seed(state: &AppState, account_id: Uuid, n: usize, port: u16) -> anyhow::Result<()> {
    let now = Utc::now();
    activity_settings::Entity::insert(
        activity_settings::Model {
            id: Uuid::now_v7(),
            account_id,
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: Some(port.into()),
            smtp_security: api::smtp::Security::None,
            smtp_username: None,
            smtp_password: None,
            sender_address: Some("crm@acme.example".into()),
            sender_name: Some("Acme CRM".into()),
            alert_interval_hours: 24,
            alert_sender: entity::activity_settings::AlertSender::SystemAccount,
            late_interval_hours: 24,
            late_sender: entity::activity_settings::LateSender::SystemAccount,
            late_sender_email: None,
            version: 1,
            updated_at: now,
            updated_by: None,
        }
        .into_active_model(),
    )
    .exec(&state.db)
    .await?;
    let owners: Vec<user::Model> = (0..OWNERS)
        .map(|i| user::Model {
            id: Uuid::now_v7(),
            account_id,
            name: format!("Owner {i}"),
            email: format!("owner{i}@acme.example"),
            phone: None,
            role: user::Role::User,
            active: true,
            created_at: now,
            updated_at: now,
        })
        .collect();
    user::Entity::insert_many(owners.iter().cloned().map(|u| u.into_active_model())).exec(&state.db).await?;
    let due = now + chrono::Duration::hours(3);
    let activities: Vec<activity::Model> = (0..n)
        .map(|i| activity::Model {
            id: Uuid::now_v7(),
            account_id,
            external_id: None,
            kind: entity::activity::Kind::Call,
            title: format!("Call customer #{i}"),
            owner_id: owners[i % OWNERS].id,
            contact_id: None,
            due_at: due,
            completed_at: None,
            remind_at: None,
            escalate_at: None,
            reminded_for: None,
            escalated_for: None,
            version: 1,
            created_at: now,
            updated_at: now,
        })
        .collect();
    for chunk in activities.chunks(1000) {
        activity::Entity::insert_many(chunk.iter().cloned().map(|a| a.into_active_model())).exec(&state.db).await?;
    }
    Ok(())
}
