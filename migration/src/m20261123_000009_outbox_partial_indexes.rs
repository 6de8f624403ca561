//! The outbox's two work queues as partial indexes.
//!
//! `ix_outbox_due` and `ix_outbox_leased` were on `(status, …)` for every message, so each
//! status change of a message (queued, claimed, settled) added an entry to both, and the
//! indexes grew with every message ever sent while the worker only ever looks for the few
//! that are due or in flight. As partial indexes they hold only what a claim looks for:
//! messages waiting (`PENDING`, by when they are due) and messages in flight (`SENDING`, by
//! when their lease ends). Settling a message as sent now writes two index entries (primary
//! key and the event/user/channel key) instead of four. PostgreSQL and SQLite both have
//! partial indexes. Each step may run again (SQLite runs migrations outside a transaction, and
//! retries them once when a second process held the file).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: [&str; 4] = [
    "DROP INDEX IF EXISTS ix_outbox_due",
    "DROP INDEX IF EXISTS ix_outbox_leased",
    "CREATE INDEX IF NOT EXISTS ix_outbox_due ON outbox_message (next_attempt_at) WHERE status = 'PENDING'",
    "CREATE INDEX IF NOT EXISTS ix_outbox_leased ON outbox_message (leased_until) WHERE status = 'SENDING'",
];

const DOWN: [&str; 4] = [
    "DROP INDEX IF EXISTS ix_outbox_due",
    "DROP INDEX IF EXISTS ix_outbox_leased",
    "CREATE INDEX IF NOT EXISTS ix_outbox_due ON outbox_message (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS ix_outbox_leased ON outbox_message (status, leased_until)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        crate::execute_all(m, &UP).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        crate::execute_all(m, &DOWN).await
    }
}
