//! Fan-out throughput: events per second into an account of 200 users with mixed Control
//! settings, on PostgreSQL, through the same function `publishEvent` and the worker call.
//!
//! Settings mixes (deterministic; every contact has two assigned users, one user in ten has
//! Email AU on, a third of the users AU on, the rest keep the defaults):
//! - `typical` (default): one user in twenty also watches every new lead (System on), so an
//!   event reaches about eleven panels: the watchers and the assignees with AU.
//! - `broad`: a third of the users watch every new lead, so an event reaches about 68 panels.
//!
//! Each event is about one of 500 contacts in turn, so with the default collapse window most
//! events fold into rows of earlier ones (an update per panel touched, not an insert).
//!
//! `cargo bench --bench fanout` (PostgreSQL at HERALD_BENCH_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres; HERALD_BENCH_EVENTS, default 4000;
//! HERALD_BENCH_CONCURRENCY, publishers at once, default 8; HERALD_BENCH_MIX, `typical` or
//! `broad`; HERALD_BENCH_COLLAPSE_SECS, the collapse window, default 300, 0 for no folding).
// Test and benchmark code: a step that fails is a failed run, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/fixtures.rs"]
mod fixtures;

use std::time::{Duration, Instant};

use api::{
    bootstrap,
    notifications::{
        catalog::NotificationType,
        control::Switch,
        publish::{NewEvent, Publisher},
    },
    AppState,
};
use entity::{contact, contact::ContactKind, contact_assignee, notification, notification_override, outbox_message, user};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, Set};
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USERS: usize = 200;
const CONTACTS: usize = 500;
const KIND: NotificationType = NotificationType::NewLead;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("HERALD_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let events: usize = std::env::var("HERALD_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);
    let concurrency: usize = std::env::var("HERALD_BENCH_CONCURRENCY").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let broad = match std::env::var("HERALD_BENCH_MIX").as_deref() {
        Ok("broad") => true,
        Ok("typical") | Err(_) => false,
        Ok(other) => anyhow::bail!("HERALD_BENCH_MIX: `typical` or `broad`, not {other:?}"),
    };
    let schema = fixtures::create_schema(&url, "bench").await?;
    let result = run(&url, &schema, events, concurrency, broad).await;
    fixtures::drop_schema(&url, &schema).await?;
    result
}

async fn run(url: &str, schema: &str, events: usize, concurrency: usize, broad: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = fixtures::config(dir.path(), "bench", Some((url, schema)));
    config.database_max_connections = concurrency as u32 + 2;
    if let Some(secs) = std::env::var("HERALD_BENCH_COLLAPSE_SECS").ok().and_then(|s| s.parse().ok()) {
        config.notification_collapse_window = std::time::Duration::from_secs(secs);
    }
    let state = AppState::init(config).await?;
    let (account, _) = bootstrap::bootstrap(&state.db, bootstrap::FirstAdmin::default()).await?.expect("fresh schema");
    let contacts = seed(&state, account.id, broad).await?;
    // Warm-up, then statistics: the planner judges the panel's tables as they are in use,
    // not as the empty tables of a fresh schema (where every scan looks cheap).
    publish_all(&state, &account, &contacts, "warm", events / 4, concurrency).await?;
    state.db.execute_unprepared("VACUUM ANALYZE").await?;
    let rows_before = notification::Entity::find().count(&state.db).await?;
    let queued_before = outbox_message::Entity::find().count(&state.db).await?;

    let started = Instant::now();
    let (mut latencies, touched) = publish_all(&state, &account, &contacts, "bench", events, concurrency).await?;
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0;
    let rows = notification::Entity::find().count(&state.db).await? - rows_before;
    let queued = outbox_message::Entity::find().count(&state.db).await? - queued_before;
    println!("| mix | events | concurrency | events/s | p50 ms | p99 ms | panels per event | panel rows/s | new rows | outbox rows |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {events} | {concurrency} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} | {rows} | {queued} |",
        if broad { "broad" } else { "typical" },
        events as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        touched as f64 / events as f64,
        touched as f64 / elapsed
    );
    println!("\n(target: 2,000 events/s)");
    Ok(())
}

/// Publishes `events` events from `concurrency` publishers at once; answers each one's
/// latency and the panel rows written or bumped.
async fn publish_all(
    state: &AppState,
    account: &entity::account::Model,
    contacts: &[Uuid],
    prefix: &str,
    events: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let state = state.clone();
        let account = account.clone();
        let contacts = contacts.to_vec();
        let prefix = prefix.to_string();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut touched = 0;
            for i in (w..events).step_by(concurrency) {
                let input = NewEvent {
                    kind: KIND,
                    account_id: None,
                    contact_id: Some(contacts[i % contacts.len()]),
                    title: format!("New lead {i}"),
                    body: None,
                    data: None,
                    action_url: None,
                    occurred_at: None,
                    idempotency_key: format!("{prefix}-{i}"),
                };
                let t = Instant::now();
                touched += api::notifications::publish::record(&state, Publisher::System, &account, input).await?.notifications.len();
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>((latencies, touched))
        }));
    }
    let (mut latencies, mut touched): (Vec<Duration>, usize) = (Vec::new(), 0);
    for w in workers {
        let (l, t) = w.await??;
        latencies.extend(l);
        touched += t;
    }
    Ok((latencies, touched))
}

async fn seed(state: &AppState, account_id: Uuid, broad: bool) -> anyhow::Result<Vec<Uuid>> {
    let now = chrono::Utc::now();
    let db = &state.db;
    let mut users = Vec::new();
    for i in 0..USERS {
        let u = user::Model {
            id: Uuid::now_v7(),
            account_id,
            name: format!("User {i}"),
            email: format!("user{i}@example.com"),
            phone: None,
            role: user::Role::User,
            active: true,
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .reset_all()
        .insert(db)
        .await?;
        let set = |switch: Switch| notification_override::ActiveModel {
            user_id: Set(u.id),
            notification_type: Set(KIND),
            switch: Set(switch),
            account_id: Set(account_id),
            enabled: Set(true),
        };
        let watches = if broad { i % 3 == 0 } else { i % 20 == 0 };
        if watches {
            set(Switch::System).insert(db).await?;
        }
        if i % 3 == 1 {
            set(Switch::Au).insert(db).await?;
        }
        if i % 10 == 0 {
            set(Switch::EmailAu).insert(db).await?;
        }
        users.push(u.id);
    }
    let mut contacts = Vec::new();
    for i in 0..CONTACTS {
        let c = contact::Model {
            id: Uuid::now_v7(),
            account_id,
            kind: ContactKind::Lead,
            name: format!("Lead {i}"),
            main_email: None,
            email_domain: None,
            valid: true,
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .reset_all()
        .insert(db)
        .await?;
        for k in 0..2 {
            contact_assignee::Model { contact_id: c.id, user_id: users[(i * 7 + k * 13) % USERS], account_id, position: k as i32, assigned_at: now }
                .into_active_model()
                .reset_all()
                .insert(db)
                .await?;
        }
        contacts.push(c.id);
    }
    Ok(contacts)
}
