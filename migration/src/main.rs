use sea_orm_migration::prelude::*;

/// `cargo run -p migration -- up|down|status|fresh` — sea-orm-migration's CLI, pointed at the
/// same database as Herald: `HERALD_DATABASE_URL` (and `HERALD_DATABASE_SCHEMA`), or the
/// embedded SQLite file `herald.db` in `HERALD_DATA_DIR` (default `.`). `DATABASE_URL`, when
/// set, wins, as the CLI documents.
#[tokio::main]
async fn main() {
    let herald = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if std::env::var_os("DATABASE_URL").is_none() {
        let url = herald("HERALD_DATABASE_URL").unwrap_or_else(|| {
            let dir = herald("HERALD_DATA_DIR").unwrap_or_else(|| ".".into());
            format!("sqlite://{dir}/herald.db?mode=rwc")
        });
        std::env::set_var("DATABASE_URL", url);
    }
    if std::env::var_os("DATABASE_SCHEMA").is_none() {
        if let Some(schema) = herald("HERALD_DATABASE_SCHEMA") {
            std::env::set_var("DATABASE_SCHEMA", schema);
        }
    }
    cli::run_cli(migration::Migrator).await;
}
