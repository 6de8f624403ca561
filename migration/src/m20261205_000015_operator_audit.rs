//! An operator logged in to a tenant as one of its users: the tenant's audit log names the
//! operator's key as the real actor (`operator_key_id`), as it names an admin's user.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvent {
    Table,
    OperatorKeyId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(AuditEvent::Table).add_column(uuid_null(AuditEvent::OperatorKeyId)).to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(AuditEvent::Table).drop_column(AuditEvent::OperatorKeyId).to_owned()).await
    }
}
