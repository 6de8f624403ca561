//! What the integration tests and the benchmarks set up the same way: a PostgreSQL schema of
//! their own, and a configuration with fixed secrets over it. Included with `#[path]` by
//! `tests/it/helpers.rs` and by the benches.

use std::path::Path;

use api::{config::SecretString, crypto::Keyring, Config};
use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

/// Creates a schema of its own (`{prefix}_{uuid}`) on the PostgreSQL at `url`; answers its
/// name. The caller drops it with [`drop_schema`].
pub async fn create_schema(url: &str, prefix: &str) -> anyhow::Result<String> {
    let schema = format!("{prefix}_{}", Uuid::now_v7().simple());
    let db = Database::connect(url).await?;
    db.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\"")).await?;
    db.close().await?;
    Ok(schema)
}

/// Drops a schema made by [`create_schema`] with everything in it.
pub async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    let db = Database::connect(url).await?;
    db.execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await?;
    db.close().await?;
    Ok(())
}

/// The embedded configuration in `dir`, with a fixed token secret and a fresh keyring named
/// after `label`, on the PostgreSQL `(url, schema)` when given.
pub fn config(dir: &Path, label: &str, postgres: Option<(&str, &str)>) -> Config {
    let mut config = Config::embedded(dir);
    config.jwt_secret = Some(SecretString::new(format!("{label}-secret-{label}-secret-{label}-secret")));
    config.secret_key = Some(SecretString::new(Keyring::generate_spec(label)));
    if let Some((url, schema)) = postgres {
        config.database_url = Some(url.to_string());
        config.database_schema = Some(schema.to_string());
    }
    config
}
