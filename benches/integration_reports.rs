//! Contact mapping errors at volume: an integration service reports 10,000 mapping errors
//! for one account within a minute, through the same function `reportContactMappingErrors`
//! calls; then the window ends and the worker's step closes it. Measures how long the
//! reports take, how long after the window's end the grouped email is queued, and checks
//! that exactly one email was queued for the window (and none on a second close).
//!
//! `cargo bench --bench integration_reports` (PostgreSQL at HERALD_BENCH_DATABASE_URL,
//! default postgres://postgres@127.0.0.1:5432/postgres; HERALD_BENCH_ERRORS, default 10000;
//! HERALD_BENCH_PER_REPORT, errors per report, default 1; HERALD_BENCH_CONCURRENCY,
//! reporters at once, default 16).
// Test and benchmark code: a step that fails is a failed run, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/fixtures.rs"]
mod fixtures;

use std::time::Instant;

use api::{
    auth::{ApiKeyScope, Caller, Principal},
    bootstrap,
    integrations::{
        connections::{self, Features},
        reports::{self, MappingError, MappingErrors},
        settings::SyncObject,
    },
    AppState,
};
use entity::{integration_mapping_error, outbox_message};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("HERALD_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let schema = fixtures::create_schema(&url, "bench").await?;
    let result = run(&url, &schema, env("HERALD_BENCH_ERRORS", 10_000), env("HERALD_BENCH_PER_REPORT", 1), env("HERALD_BENCH_CONCURRENCY", 16)).await;
    fixtures::drop_schema(&url, &schema).await?;
    result
}

async fn run(url: &str, schema: &str, errors: usize, per_report: usize, concurrency: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = fixtures::config(dir.path(), "bench", Some((url, schema)));
    config.database_max_connections = concurrency as u32 + 2;
    let state = AppState::init(config).await?;
    let (account, admin) = bootstrap::bootstrap(&state.db, bootstrap::FirstAdmin::default()).await?.expect("fresh schema");
    let admin_caller =
        Caller { account_id: account.id, principal: Principal::User { user_id: admin.id, role: admin.role, impersonator: None }, expires_at: None };
    let integration = connections::create(&state, &admin_caller, entity::integration::Provider::Hubspot, Features { sync: true, ..Default::default() }).await?;
    let integration = connections::set_enabled(&state, &admin_caller, integration.id, 1, true, None).await?;
    let service = Caller {
        account_id: account.id,
        principal: Principal::ApiKey { key_id: uuid::Uuid::now_v7(), scopes: vec![ApiKeyScope::PublishEvents] },
        expires_at: None,
    };

    let reports_total = errors.div_ceil(per_report);
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut latencies: Vec<f64> = Vec::with_capacity(reports_total);
    let per_task = futures_util::future::join_all((0..concurrency).map(|_| async {
        let mut mine = Vec::new();
        loop {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n >= reports_total {
                return anyhow::Ok(mine);
            }
            let first = n * per_report;
            let batch: Vec<MappingError> = (first..(first + per_report).min(errors))
                .map(|i| MappingError {
                    object: SyncObject::Contacts,
                    record_id: format!("{}", 100_000 + i),
                    record_name: Some(format!("Contact {i}")),
                    field: Some("MAIN_EMAIL".into()),
                    error: "Email is not a valid address".into(),
                    tips: vec!["HubSpot rejects addresses without a domain.".into()],
                    actions: vec!["Correct the email address in the CRM.".into()],
                })
                .collect();
            let input =
                MappingErrors { integration_id: integration.id, idempotency_key: format!("bench-{n}"), errors: batch, resolved: Vec::new(), deadline: None };
            let t = Instant::now();
            reports::mapping_errors(&state, &service, input).await?;
            mine.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }))
    .await;
    for r in per_task {
        latencies.extend(r?);
    }
    let ingest = started.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let stored = integration_mapping_error::Entity::find().filter(integration_mapping_error::Column::IntegrationId.eq(integration.id)).count(&state.db).await?;
    assert_eq!(stored as usize, errors, "one row per record");

    // The window ends (15 minutes by default): the worker's step closes it.
    let at_end = chrono::Utc::now() + chrono::Duration::minutes(15);
    let t = Instant::now();
    let queued = reports::close_due_windows(&state, at_end).await?;
    let close_ms = t.elapsed().as_secs_f64() * 1000.0;
    let again = reports::close_due_windows(&state, at_end + chrono::Duration::minutes(1)).await?;
    let emails = outbox_message::Entity::find().filter(outbox_message::Column::SourceKey.like("mapping-window:%")).all(&state.db).await?;
    assert_eq!((queued, again, emails.len()), (1, 0, 1), "exactly one email for the window");
    let subject = emails[0].subject.clone().unwrap_or_default();
    assert!(subject.contains(&format!("{errors} records")), "{subject}");
    let size = emails[0].body_html.as_ref().map_or(0, |b| b.len()) + emails[0].body_text.as_ref().map_or(0, |b| b.len());

    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!("mapping errors: {errors} in {reports_total} reports of {per_report}, {concurrency} reporters at once");
    println!(
        "  reported in {ingest:.2} s ({:.0} errors/s, {:.0} reports/s); per report p50 {:.1} ms, p99 {:.1} ms",
        errors as f64 / ingest,
        reports_total as f64 / ingest,
        pct(0.5),
        pct(0.99)
    );
    println!("  window closed and its email queued {close_ms:.0} ms after its end; emails queued: {} (second close: {again})", emails.len());
    println!("  email: {subject:?}, {size} bytes of text and HTML (lists the first {} records)", reports::MAX_LISTED);
    Ok(())
}
