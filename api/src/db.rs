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
    let url = config.effective_database_url();
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(config.database_max_connections)
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
