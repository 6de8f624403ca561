//! Migrations: idempotent, reversible, and safe when several processes start at once.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database};

use crate::helpers::spawn_app;

#[tokio::test]
async fn migrations_are_idempotent_and_reversible() {
    let app = spawn_app().await;
    let db = &app.state.db;
    api::db::migrate(db).await.expect("second run finds nothing to do");
    assert!(Migrator::get_pending_migrations(db).await.unwrap().is_empty());
    Migrator::down(db, None).await.expect("down");
    assert_eq!(Migrator::get_pending_migrations(db).await.unwrap().len(), Migrator::migrations().len());
    api::db::migrate(db).await.expect("up again");
    db.execute_unprepared("SELECT id, name, time_zone, add_ons, version FROM account").await.expect("tables are back");
}

/// Several processes starting together against one PostgreSQL database: the advisory lock
/// lets one migrate while the others wait, and all start.
#[tokio::test]
async fn concurrent_start_ups_migrate_once() {
    let Some(url) = std::env::var("HERALD_TEST_DATABASE_URL").ok().filter(|v| !v.is_empty()) else {
        eprintln!("HERALD_TEST_DATABASE_URL not set: concurrent migration is a PostgreSQL concern; skipped on SQLite");
        return;
    };
    let schema = format!("mig_{}", uuid::Uuid::now_v7().simple());
    let admin = Database::connect(url.as_str()).await.unwrap();
    admin.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\"")).await.unwrap();
    let mut starts = Vec::new();
    for _ in 0..4 {
        let mut config = api::Config::embedded(std::env::temp_dir());
        config.database_url = Some(url.clone());
        config.database_schema = Some(schema.clone());
        starts.push(tokio::spawn(async move {
            let db = api::db::connect(&config).await?;
            api::db::migrate(&db).await?;
            Migrator::get_pending_migrations(&db).await.map(|pending| pending.len())
        }));
    }
    for start in starts {
        assert_eq!(start.await.unwrap().expect("every process starts"), 0);
    }
    let applied = admin
        .query_one(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, format!("SELECT count(*) AS n FROM \"{schema}\".seaql_migrations")))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(applied as usize, Migrator::migrations().len(), "each migration recorded once");
    admin.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE")).await.unwrap();
}
