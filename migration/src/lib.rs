//! Herald's schema migrations, for SQLite (embedded) and PostgreSQL (production).
//!
//! Migrations are frozen once they land: a change to the schema is a new migration, never an
//! edit of an old one. Enumerations are stored as short strings (not PostgreSQL enum types)
//! so that one migration serves both databases and adding a value needs no DDL.
// `MigrationTrait` is an `async_trait` whose methods take `&SchemaManager` with its lifetime
// elided; writing `SchemaManager<'_>` makes a signature that no longer matches the trait.
#![allow(elided_lifetimes_in_paths)]
pub use sea_orm_migration::prelude::*;

mod m20261123_000001_foundation;
mod m20261123_000002_notification_control;
mod m20261123_000003_notification_events;
mod m20261123_000004_activities_delivery;
mod m20261123_000005_mailboxes;
mod m20261123_000006_fanout_indexes;
mod m20261123_000007_folder_modseq;
mod m20261123_000008_notification_write_path;
mod m20261123_000009_outbox_partial_indexes;
mod m20261123_000010_activity_alert_partial_indexes;
mod m20261205_000011_notification_content_once;
mod m20261205_000012_outbox_claim;
mod m20261205_000013_account_primary_admin;
mod m20261205_000014_operators;
mod m20261205_000015_operator_audit;
mod m20261206_000016_mail_accounts;
mod m20261206_000017_report_settings;
mod m20261206_000018_integrations;
mod m20261206_000019_integration_reports;
mod m20261206_000020_workflows;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_foundation::Migration),
            Box::new(m20261123_000002_notification_control::Migration),
            Box::new(m20261123_000003_notification_events::Migration),
            Box::new(m20261123_000004_activities_delivery::Migration),
            Box::new(m20261123_000005_mailboxes::Migration),
            Box::new(m20261123_000006_fanout_indexes::Migration),
            Box::new(m20261123_000007_folder_modseq::Migration),
            Box::new(m20261123_000008_notification_write_path::Migration),
            Box::new(m20261123_000009_outbox_partial_indexes::Migration),
            Box::new(m20261123_000010_activity_alert_partial_indexes::Migration),
            Box::new(m20261205_000011_notification_content_once::Migration),
            Box::new(m20261205_000012_outbox_claim::Migration),
            Box::new(m20261205_000013_account_primary_admin::Migration),
            Box::new(m20261205_000014_operators::Migration),
            Box::new(m20261205_000015_operator_audit::Migration),
            Box::new(m20261206_000016_mail_accounts::Migration),
            Box::new(m20261206_000017_report_settings::Migration),
            Box::new(m20261206_000018_integrations::Migration),
            Box::new(m20261206_000019_integration_reports::Migration),
            Box::new(m20261206_000020_workflows::Migration),
        ]
    }
}

/// Runs raw statements in order: for the migrations whose DDL sea-query does not express
/// (partial indexes) and that read the same on both databases.
async fn execute_all(m: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    for sql in statements {
        m.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}
