//! Workflow runs at scale: 100,000 automatic email actions due across 1,000 accounts at one
//! scheduling time, on PostgreSQL. Times the worker's step (`api::workflows::send::run_due`)
//! from the moment the runs are due until every action is resolved (sender, recipients,
//! templates) and queued; checks one run per account and one outbox message per action.
//! Then, in a fresh schema, 20,000 actions of 10 accounts are queued the same way and
//! delivered by one worker's courier to Postfix's `smtp-sink`: the rate to compare with the
//! delivery benchmark's.
//!
//! `cargo bench --bench workflow_runs` (PostgreSQL at HERALD_BENCH_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres; HERALD_BENCH_ACCOUNTS, default 1000;
//! HERALD_BENCH_PER_ACCOUNT, default 100; HERALD_DELIVERY_CONCURRENCY, default 32;
//! smtp-sink from Debian's postfix).
// Test and benchmark code: a step that fails is a failed run, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../tests/support/sink.rs"]
mod sink;

use std::time::{Duration, Instant};

use api::AppState;
use chrono::Utc;
use entity::{
    account, activity_settings, contact, contact_assignee, contact_person, enrollment, outbox_message, planned_action, user, workflow, workflow_action,
    workflow_run,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use sink::Sink;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("HERALD_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (accounts, per) = (env("HERALD_BENCH_ACCOUNTS", 1000), env("HERALD_BENCH_PER_ACCOUNT", 100));

    if env("HERALD_BENCH_QUEUE", 1) == 1 {
        let schema = fixtures::create_schema(&url, "bench").await?;
        let queued = queue_phase(&url, &schema, accounts, per).await;
        fixtures::drop_schema(&url, &schema).await?;
        queued?;
    }

    let schema = fixtures::create_schema(&url, "bench").await?;
    let delivered = deliver_phase(&url, &schema, env("HERALD_BENCH_DELIVER_ACCOUNTS", 10), env("HERALD_BENCH_DELIVER_PER_ACCOUNT", 2000)).await;
    fixtures::drop_schema(&url, &schema).await?;
    delivered
}

async fn state(url: &str, schema: &str, dir: &std::path::Path) -> anyhow::Result<AppState> {
    let mut config = fixtures::config(dir, "bench", Some((url, schema)));
    config.database_max_connections = 12;
    Ok(AppState::init(config).await?)
}

async fn queue_phase(url: &str, schema: &str, accounts: usize, per: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state = state(url, schema, dir.path()).await?;
    let started = Instant::now();
    seed(&state, accounts, per, None).await?;
    state.db.execute_unprepared("VACUUM ANALYZE").await?;
    println!("seeded {accounts} accounts x {per} due actions in {:.1} s", started.elapsed().as_secs_f64());

    let now = Utc::now();
    let t = Instant::now();
    let ran = api::workflows::send::run_due(&state, now).await?;
    let secs = t.elapsed().as_secs_f64();
    let runs = workflow_run::Entity::find().count(&state.db).await?;
    let messages = outbox_message::Entity::find().filter(outbox_message::Column::SourceKey.like("workflow-action:%")).count(&state.db).await?;
    assert_eq!((ran.sent, ran.todo, runs as usize, messages as usize), (accounts * per, 0, accounts, accounts * per), "{ran:?}");
    let again = api::workflows::send::run_due(&state, now).await?;
    assert_eq!((again.runs, again.sent), (0, 0), "a second step does nothing");
    println!(
        "queue: {} actions of {accounts} accounts resolved and queued in {secs:.2} s ({:.0} actions/s); {runs} runs",
        accounts * per,
        (accounts * per) as f64 / secs
    );
    Ok(())
}

async fn deliver_phase(url: &str, schema: &str, accounts: usize, per: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state = state(url, schema, dir.path()).await?;
    let sink = Sink::start().await?;
    seed(&state, accounts, per, Some(sink.port)).await?;
    state.db.execute_unprepared("VACUUM ANALYZE").await?;
    let n = accounts * per;
    // The peer, in the same run: Postfix's own client, same count, same sink, messages of a
    // similar size, as many at once as the courier has in flight.
    let concurrency = state.config.worker.concurrency.to_string();
    let t = Instant::now();
    let status = tokio::process::Command::new("smtp-source")
        .args(["-s", &concurrency, "-m", &n.to_string(), "-l", "1500", "-f", "crm@acme.example", "-t", "buyer@customer.example"])
        .arg(format!("127.0.0.1:{}", sink.port))
        .status()
        .await?;
    anyhow::ensure!(status.success(), "smtp-source failed");
    let source_secs = t.elapsed().as_secs_f64();
    println!("smtp-source: {n} in {source_secs:.2} s = {:.0} msg/s", n as f64 / source_secs);
    let t = Instant::now();
    let ran = api::workflows::send::run_due(&state, Utc::now()).await?;
    assert_eq!(ran.sent, n);
    let queued_secs = t.elapsed().as_secs_f64();
    let courier = worker::delivery::Courier::new(state.clone()).await?;
    let t = Instant::now();
    let mut sent = 0;
    while sent < n {
        let done = courier.run(Utc::now(), None).await?;
        anyhow::ensure!(done.failed == 0 && done.held == 0, "{done:?}");
        sent += done.sent;
        if done.sent == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "deliver: {n} workflow emails of {accounts} accounts queued in {queued_secs:.2} s, delivered to smtp-sink in {secs:.2} s ({:.0} msg/s, {:.2} of smtp-source); sink counted {}",
        n as f64 / secs,
        source_secs / secs,
        {
            sink.wait_for(2 * n as u64, Duration::from_secs(5)).await;
            sink.count()
        }
    );
    Ok(())
}

/// `accounts` accounts, each with a user, `per` customers (a main contact with an address,
/// assigned to the user), one workflow of one automatic email, and every customer enrolled
/// ten days ago: all due by the last business day's run. With `smtp`, each account sends
/// through that port.
async fn seed(state: &AppState, accounts: usize, per: usize, smtp: Option<u16>) -> anyhow::Result<()> {
    let now = Utc::now();
    let on = now.date_naive() - chrono::Duration::days(10);
    let db = &state.db;
    for chunk in (0..accounts).collect::<Vec<_>>().chunks(50) {
        let (mut accs, mut users, mut settings, mut flows, mut actions) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut contacts, mut persons, mut assignees, mut enrollments, mut planned) = (vec![], vec![], vec![], vec![], vec![]);
        for a in chunk {
            let account_id = Uuid::now_v7();
            accs.push(account::Model {
                id: account_id,
                name: format!("Account {a}"),
                parent_id: None,
                time_zone: ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"][a % 4].into(),
                paused: false,
                add_ons: serde_json::json!([]),
                version: 1,
                created_at: now,
                updated_at: now,
                updated_by: None,
                primary_admin_id: None,
            });
            let user_id = Uuid::now_v7();
            users.push(user::Model {
                id: user_id,
                account_id,
                name: format!("Agent {a}"),
                email: format!("agent{a}@account{a}.example"),
                phone: None,
                role: user::Role::User,
                active: true,
                created_at: now,
                updated_at: now,
            });
            if let Some(port) = smtp {
                settings.push(activity_settings::Model {
                    id: Uuid::now_v7(),
                    account_id,
                    smtp_host: Some("127.0.0.1".into()),
                    smtp_port: Some(port.into()),
                    smtp_security: api::smtp::Security::None,
                    smtp_username: None,
                    smtp_password: None,
                    sender_address: Some(format!("crm@account{a}.example")),
                    sender_name: Some("CRM".into()),
                    alert_interval_hours: 24,
                    alert_sender: activity_settings::AlertSender::SystemAccount,
                    late_interval_hours: 24,
                    late_sender: activity_settings::LateSender::SystemAccount,
                    late_sender_email: None,
                    version: 1,
                    updated_at: now,
                    updated_by: None,
                });
            }
            let (workflow_id, action_id) = (Uuid::now_v7(), Uuid::now_v7());
            flows.push(workflow::Model {
                id: workflow_id,
                account_id,
                name: "Dunning".into(),
                description: None,
                active: true,
                version: 1,
                created_at: now,
                updated_at: now,
                updated_by: None,
            });
            actions.push(workflow_action::Model {
                id: action_id,
                account_id,
                workflow_id,
                position: 0,
                kind: workflow_action::Kind::Email,
                name: "Reminder".into(),
                delay_days: 0,
                delay_from: workflow_action::DelayFrom::Enrollment,
                subject_template: Some("Invoice for {{ customer.name }}".into()),
                body_template: Some(
                    "Dear {{ contact.name }},\n\nYour invoice is due on {{ action.due_date }}.\n\n{{ sender.name }}, {{ account.name }}".into(),
                ),
                recipients: workflow_action::Recipients::MainContact,
                recipient_position: None,
                send_automatically: true,
                sender: Some(workflow_action::Sender::AssignedUser),
                sender_user_id: None,
                sender_group_id: None,
                billing: false,
            });
            for c in 0..per {
                let (contact_id, enrollment_id) = (Uuid::now_v7(), Uuid::now_v7());
                contacts.push(contact::Model {
                    id: contact_id,
                    account_id,
                    kind: contact::ContactKind::Customer,
                    name: format!("Customer {a}-{c}"),
                    main_email: None,
                    email_domain: None,
                    valid: true,
                    created_at: now,
                    updated_at: now,
                });
                persons.push(contact_person::Model {
                    id: Uuid::now_v7(),
                    account_id,
                    contact_id,
                    name: format!("Buyer {a}-{c}"),
                    email: Some(format!("buyer{c}@customer{a}.example")),
                    position: Some("Buyer".into()),
                    invalid: false,
                    phone: None,
                    postal_address: None,
                    main: true,
                    created_at: now,
                    updated_at: now,
                });
                assignees.push(contact_assignee::Model { contact_id, user_id, account_id, position: 0, assigned_at: now });
                enrollments.push(enrollment::Model {
                    id: enrollment_id,
                    account_id,
                    workflow_id,
                    contact_id,
                    enrolled_on: on,
                    status: enrollment::Status::Active,
                    created_at: now,
                    ended_at: None,
                });
                planned.push(planned_action::Model {
                    id: Uuid::now_v7(),
                    account_id,
                    enrollment_id,
                    workflow_id,
                    action_id: Some(action_id),
                    contact_id,
                    position: 0,
                    kind: planned_action::Kind::Email,
                    trigger: planned_action::Trigger::Automated,
                    status: planned_action::Status::Planned,
                    due_on: on,
                    assignee_id: Some(user_id),
                    sender_user_id: None,
                    todo_reason: None,
                    fallback: None,
                    from_address: None,
                    recipients: None,
                    subject: None,
                    body: None,
                    outbox_message_id: None,
                    document_id: None,
                    billing: false,
                    done_at: None,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                });
            }
        }
        api::db::insert_all::<account::Entity>(db, &accs).await?;
        api::db::insert_all::<user::Entity>(db, &users).await?;
        api::db::insert_all::<activity_settings::Entity>(db, &settings).await?;
        api::db::insert_all::<workflow::Entity>(db, &flows).await?;
        api::db::insert_all::<workflow_action::Entity>(db, &actions).await?;
        for rows in contacts.chunks(2000) {
            api::db::insert_all::<contact::Entity>(db, rows).await?;
        }
        for rows in persons.chunks(2000) {
            api::db::insert_all::<contact_person::Entity>(db, rows).await?;
        }
        for rows in assignees.chunks(2000) {
            api::db::insert_all::<contact_assignee::Entity>(db, rows).await?;
        }
        for rows in enrollments.chunks(2000) {
            api::db::insert_all::<enrollment::Entity>(db, rows).await?;
        }
        for rows in planned.chunks(2000) {
            api::db::insert_all::<planned_action::Entity>(db, rows).await?;
        }
    }
    Ok(())
}
