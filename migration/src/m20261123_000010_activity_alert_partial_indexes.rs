//! The scheduler's two activity indexes hold only what is still to be alerted.
//!
//! `ix_activity_remind_at` and `ix_activity_escalate_at` indexed every activity, including the
//! NULLs of every activity already reminded, escalated, completed or never to be alerted:
//! nearly all of them, once an account has some history. The scheduler only ever asks for
//! `remind_at <= now` (or `escalate_at`), which implies the column is set, so partial indexes
//! on the rows where it is serve the same scans, stay the size of the work to come, and
//! marking a batch reminded (its `remind_at` cleared) no longer writes an entry into the
//! reminder index. PostgreSQL and SQLite both use a partial index for a range on its column.
//! Each step may run again, as in migration 000009.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: [&str; 4] = [
    "DROP INDEX IF EXISTS ix_activity_remind_at",
    "DROP INDEX IF EXISTS ix_activity_escalate_at",
    "CREATE INDEX IF NOT EXISTS ix_activity_remind_at ON activity (remind_at) WHERE remind_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS ix_activity_escalate_at ON activity (escalate_at) WHERE escalate_at IS NOT NULL",
];

const DOWN: [&str; 4] = [
    "DROP INDEX IF EXISTS ix_activity_remind_at",
    "DROP INDEX IF EXISTS ix_activity_escalate_at",
    "CREATE INDEX IF NOT EXISTS ix_activity_remind_at ON activity (remind_at)",
    "CREATE INDEX IF NOT EXISTS ix_activity_escalate_at ON activity (escalate_at)",
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
