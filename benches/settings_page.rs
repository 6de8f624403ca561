//! Settings-page benchmark: the authenticated query a settings page sends (the signed-in user
//! with their account, and a page of contacts with their assignees), at 64 concurrent
//! connections against Herald on PostgreSQL, beside two plain axum endpoints in the same
//! run: one doing the same database work by hand (the fair peer), one returning a fixed JSON
//! document (the ceiling of the HTTP stack alone).
//!
//! It also counts SQL statements per request through sea-orm's metric hook, and fails if a
//! request needs more than one statement per level of nesting, or if the count grows with
//! the page size (an N+1).
//!
//! `cargo bench --bench settings_page` (PostgreSQL at HERALD_BENCH_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres; HERALD_BENCH_SECS per endpoint and round, default 10).
// Test and benchmark code: a step that fails is a failed run, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use api::{bootstrap, config::SecretString, crypto::Keyring, AppState, Config, Server};
use axum::{extract::State, http::HeaderMap, routing::get, Json, Router};
use entity::{account, contact, contact::ContactKind, contact_assignee, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{json, Value};
use uuid::Uuid;

/// The allocator Herald's binaries use, so that the numbers are production's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 64;
const PAGE: usize = 50;
const ROUNDS: usize = 3;
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret";

fn settings_query(page: usize) -> String {
    format!(
        "query SettingsPage {{ viewer {{ user {{ id name email role account {{ id name timeZone }} }} }} \
         contacts(first: {page}) {{ nodes {{ id name kind mainEmail assignees {{ id name email }} }} }} }}"
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("HERALD_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let secs: u64 = std::env::var("HERALD_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let schema = format!("bench_{}", Uuid::now_v7().simple());
    let admin_db = Database::connect(url.as_str()).await?;
    admin_db.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\"")).await?;
    let result = run(&url, &schema, Duration::from_secs(secs)).await;
    admin_db.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await?;
    result
}

async fn run(url: &str, schema: &str, duration: Duration) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::embedded(dir.path());
    config.bind = "127.0.0.1:0".parse()?;
    config.database_url = Some(url.to_string());
    config.database_schema = Some(schema.to_string());
    config.database_max_connections = 16;
    config.jwt_secret = Some(SecretString::new(JWT_SECRET));
    config.secret_key = Some(SecretString::new(Keyring::generate_spec("bench")));
    let mut state = AppState::init(config).await?;
    let (account, admin) = bootstrap::bootstrap(&state.db, bootstrap::FirstAdmin::default()).await?.expect("fresh schema");
    seed(&state.db, account.id).await?;
    // Fresh tables have no statistics: without this the first endpoint measured would run
    // while autovacuum analyzes them, and pay for it.
    state.db.execute_unprepared("VACUUM ANALYZE").await?;
    let statements = Arc::new(AtomicUsize::new(0));
    let counter = statements.clone();
    state.db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let token = state.tokens.mint(admin.id, None, Duration::from_secs(3600));
    let server = Server::bind(state.clone()).await?;
    let herald = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    let plain = spawn_plain(state.db.clone()).await?;

    let client = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build()?;
    let graphql = |page: usize| client.post(format!("http://{herald}/graphql")).bearer_auth(&token).json(&json!({"query": settings_query(page)}));

    // Statements per request, at two page sizes: DataLoader keeps them equal.
    let mut per_page = Vec::new();
    for page in [10, PAGE] {
        let before = statements.load(Ordering::SeqCst);
        let body: Value = graphql(page).send().await?.json().await?;
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(body["data"]["contacts"]["nodes"].as_array().map(Vec::len), Some(page));
        per_page.push(statements.load(Ordering::SeqCst) - before);
    }
    // Authentication (1: the user joined to their account, which also answers viewer.user
    // and user.account), the contacts page (1), the assignees of the whole page (1): one
    // statement per level of nesting.
    println!("SQL statements per request: {} (page of 10), {} (page of {PAGE})", per_page[0], per_page[1]);
    anyhow::ensure!(per_page[0] == per_page[1], "statement count grows with the page size: N+1");
    anyhow::ensure!(per_page[1] <= 3, "more than one statement per level of nesting");

    // HERALD_BENCH_ONLY=herald|plain|static runs one endpoint (for profiling with perf).
    // Endpoints alternate over several rounds, and each figure is the median of its rounds,
    // so that a drift of the machine's speed during the run does not favour one of them.
    let only = std::env::var("HERALD_BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let mut rounds: Vec<Vec<LoadResult>> = Vec::new();
    for _ in 0..ROUNDS {
        let mut round = Vec::new();
        if wanted("herald") {
            round.push(load("herald graphql", duration, || graphql(PAGE)).await?);
        }
        if wanted("plain") {
            round.push(load("plain axum, same SQL", duration, || client.get(format!("http://{plain}/settings-page")).bearer_auth(&token)).await?);
        }
        if wanted("static") {
            round.push(load("plain axum, fixed JSON", duration, || client.get(format!("http://{plain}/static"))).await?);
        }
        rounds.push(round);
    }

    println!();
    println!("| endpoint | requests/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for i in 0..rounds[0].len() {
        let of = |f: fn(&LoadResult) -> f64| median(rounds.iter().map(|r| f(&r[i])).collect());
        println!("| {} | {:.0} | {:.2} | {:.2} |", rounds[0][i].name, of(|r| r.rate), of(|r| r.p50_ms), of(|r| r.p99_ms));
    }
    if rounds[0].len() == 3 {
        let ratio = median(rounds.iter().map(|r| r[0].rate / r[1].rate).collect());
        let ceiling = median(rounds.iter().map(|r| r[0].rate / r[2].rate).collect());
        println!("\nHerald / plain axum with the same SQL: {ratio:.2} (target >= 0.35; median of {ROUNDS} rounds)");
        println!("Herald / plain axum with fixed JSON:   {ceiling:.3}");
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

struct LoadResult {
    name: &'static str,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// 64 workers, each with requests in flight back to back, for `duration`.
async fn load(name: &'static str, duration: Duration, request: impl Fn() -> reqwest::RequestBuilder) -> anyhow::Result<LoadResult> {
    // Warm-up: open the connections and fill caches, concurrently, for a second.
    let warm_until = Instant::now() + Duration::from_secs(1);
    let warm: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let builder = request();
            tokio::spawn(async move {
                while Instant::now() < warm_until {
                    builder.try_clone().expect("cloneable request").send().await?.error_for_status()?;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for task in warm {
        task.await??;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let stop = stop.clone();
        let builder = request();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let req = builder.try_clone().expect("cloneable request");
                let t = Instant::now();
                let response = req.send().await?;
                let status = response.status();
                let _ = response.bytes().await?;
                anyhow::ensure!(status.is_success(), "status {status}");
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    let result = LoadResult { name, rate: all.len() as f64 / elapsed, p50_ms: pct(0.50), p99_ms: pct(0.99) };
    eprintln!("{name}: {} requests in {elapsed:.1} s", all.len());
    Ok(result)
}

async fn seed(db: &DatabaseConnection, account_id: Uuid) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let mut users = Vec::new();
    for i in 0..30 {
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
        };
        users.push(u.clone().into_active_model().reset_all().insert(db).await?);
    }
    for i in 0..200 {
        let c = contact::Model {
            id: Uuid::now_v7(),
            account_id,
            kind: if i % 3 == 0 { ContactKind::Lead } else { ContactKind::Customer },
            name: format!("Contact {i}"),
            main_email: Some(format!("info@contact{i}.example")),
            email_domain: Some(format!("contact{i}.example")),
            valid: true,
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .reset_all()
        .insert(db)
        .await?;
        for k in 0..(1 + i % 3) {
            contact_assignee::Model { contact_id: c.id, user_id: users[(i + k * 7) % users.len()].id, account_id, position: k as i32, assigned_at: now }
                .into_active_model()
                .reset_all()
                .insert(db)
                .await?;
        }
    }
    Ok(())
}

/// The plain peer: the same data with hand-written queries, no GraphQL.
async fn spawn_plain(db: DatabaseConnection) -> anyhow::Result<SocketAddr> {
    let fixed: Arc<Value> =
        Arc::new(json!({"data": {"contacts": {"nodes": (0..PAGE).map(|i| json!({"id": i, "name": format!("Contact {i}")})).collect::<Vec<_>>()}}}));
    let app = Router::new().route("/settings-page", get(plain_settings_page)).with_state(db).route(
        "/static",
        get(move || {
            let fixed = fixed.clone();
            async move { Json((*fixed).clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn plain_settings_page(State(db): State<DatabaseConnection>, headers: HeaderMap) -> Result<Json<Value>, axum::http::StatusCode> {
    let fail = |_| axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    // The same work Herald does: the caller with their account, the page, its assignees.
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().trim_start_matches("Bearer ");
    let key = jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes());
    let claims: Value = jsonwebtoken::decode::<Value>(token, &key, &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256))
        .map_err(|_| axum::http::StatusCode::UNAUTHORIZED)?
        .claims;
    let user_id: Uuid = claims["sub"].as_str().and_then(|s| s.parse().ok()).ok_or(axum::http::StatusCode::UNAUTHORIZED)?;
    let (me, account) = match user::Entity::find_by_id(user_id).find_also_related(account::Entity).one(&db).await.map_err(fail)? {
        Some((me, Some(account))) if me.active => (me, account),
        _ => return Err(axum::http::StatusCode::UNAUTHORIZED),
    };
    let contacts = contact::Entity::find()
        .filter(contact::Column::AccountId.eq(me.account_id))
        .order_by_asc(contact::Column::Id)
        .limit(PAGE as u64 + 1)
        .all(&db)
        .await
        .map_err(fail)?;
    let ids: Vec<Uuid> = contacts.iter().map(|c| c.id).collect();
    let links = contact_assignee::Entity::find()
        .filter(contact_assignee::Column::ContactId.is_in(ids))
        .order_by_asc(contact_assignee::Column::Position)
        .find_also_related(user::Entity)
        .all(&db)
        .await
        .map_err(fail)?;
    let nodes: Vec<Value> = contacts
        .iter()
        .take(PAGE)
        .map(|c| {
            let assignees: Vec<Value> = links
                .iter()
                .filter(|(l, _)| l.contact_id == c.id)
                .filter_map(|(_, u)| u.as_ref())
                .map(|u| json!({"id": u.id, "name": u.name, "email": u.email}))
                .collect();
            json!({"id": c.id, "name": c.name, "kind": format!("{:?}", c.kind), "mainEmail": c.main_email, "assignees": assignees})
        })
        .collect();
    Ok(Json(json!({"data": {
        "viewer": {"user": {"id": me.id, "name": me.name, "email": me.email, "role": format!("{:?}", me.role),
                   "account": {"id": account.id, "name": account.name, "timeZone": account.time_zone}}},
        "contacts": {"nodes": nodes}
    }})))
}
