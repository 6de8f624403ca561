//! Database connection and migrations.
//!
//! Several api and worker processes may start at once against one PostgreSQL database, so
//! migrations run inside one transaction that first takes a transaction-level advisory lock:
//! the first process migrates, the others wait on the lock and then find nothing to do.
//! PostgreSQL's DDL is transactional, so a failed migration leaves nothing half-applied.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};

use crate::config::Config;

/// Arbitrary constant naming Herald's migration lock among the database's advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x4845_5241_4c44; // "HERALD"

pub async fn connect(config: &Config) -> Result<DatabaseConnection, DbErr> {
    connect_with(config, config.database_max_connections, false).await
}

/// The worker's pool for the outbox's own bookkeeping (claims and outcomes), with
/// `synchronous_commit` off on PostgreSQL: those commits do not wait for the WAL to reach the
/// disk, which more than doubles a worker's sends per second. What it risks is safe: a
/// database crash can forget the last few hundred milliseconds of outcomes, so those messages
/// are sent again (same Message-ID) — never lost. Everything else, and every SQLite write,
/// commits durably. Answers `None` on SQLite (one pool is all a single writer needs).
pub async fn connect_outbox(config: &Config, max_connections: u32) -> Result<Option<DatabaseConnection>, DbErr> {
    if !config.effective_database_url().starts_with("postgres") {
        return Ok(None);
    }
    connect_with(config, max_connections, true).await.map(Some)
}

async fn connect_with(config: &Config, max_connections: u32, relaxed_commit: bool) -> Result<DatabaseConnection, DbErr> {
    let url = config.effective_database_url();
    let mut options = ConnectOptions::new(url);
    if relaxed_commit {
        options.map_sqlx_postgres_opts(|pg| pg.options([("synchronous_commit", "off")]));
    }
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if let Some(schema) = &config.database_schema {
        options.set_schema_search_path(schema.clone());
    }
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| DbErr::Custom(format!("cannot create data dir {}: {e}", config.data_dir.display())))?;
    }
    Database::connect(options).await
}

/// Applies pending migrations; safe when several processes start together.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY.into()]))
                .await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await
        }
        _ => {
            // SQLite is the single-process embedded mode; a second process racing on the same
            // file sees SQLITE_BUSY at worst, and a retry then finds the work done.
            match Migrator::up(db, None).await {
                Ok(()) => Ok(()),
                Err(first) => {
                    tracing::warn!(error = %first, "migration failed once; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Migrator::up(db, None).await
                }
            }
        }
    }
}
