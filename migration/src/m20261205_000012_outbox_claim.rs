//! Each claim of outbox messages carries a token of its own (`claim_id`), so that its lease can
//! be renewed while the worker works and kept short.
//!
//! The token says who holds a message and the lease only until when: a worker renews the
//! leases of its claims every third of a lease, and outcomes are written where the token is
//! still the worker's. The lease time must not also say who holds a message (each claim
//! writing a lease of its own, outcomes written only where the lease is still that one): a
//! lease that says both cannot be renewed without racing the outcomes written meanwhile, so
//! it would have to be long, and a worker that died would leave up to four batches waiting
//! that long.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboxMessage {
    Table,
    ClaimId,
}

/// The renewal finds a claim's messages among those being sent.
const INDEX: &str = "CREATE INDEX ix_outbox_claim ON outbox_message (claim_id) WHERE status = 'SENDING'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(OutboxMessage::Table).add_column(uuid_null(OutboxMessage::ClaimId)).to_owned()).await?;
        crate::execute_all(m, &[INDEX]).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        crate::execute_all(m, &["DROP INDEX IF EXISTS ix_outbox_claim"]).await?;
        m.alter_table(Table::alter().table(OutboxMessage::Table).drop_column(OutboxMessage::ClaimId).to_owned()).await
    }
}
