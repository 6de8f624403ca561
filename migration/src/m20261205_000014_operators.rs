//! Platform operators: the keys that provision tenants (`api operator-key`), and the
//! platform's own audit log of what they did. An operator key belongs to no account.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OperatorKey {
    Table,
    Id,
    Name,
    SecretHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum PlatformEvent {
    Table,
    Id,
    OperatorKeyId,
    Action,
    ObjectType,
    ObjectId,
    After,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OperatorKey::Table)
                .col(uuid(OperatorKey::Id).primary_key())
                .col(string(OperatorKey::Name))
                .col(string_len(OperatorKey::SecretHash, 64))
                .col(timestamp_with_time_zone(OperatorKey::CreatedAt))
                .col(timestamp_with_time_zone_null(OperatorKey::LastUsedAt))
                .col(timestamp_with_time_zone_null(OperatorKey::RevokedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PlatformEvent::Table)
                .col(uuid(PlatformEvent::Id).primary_key())
                .col(uuid(PlatformEvent::OperatorKeyId))
                .col(string(PlatformEvent::Action))
                .col(string(PlatformEvent::ObjectType))
                .col(string(PlatformEvent::ObjectId))
                .col(json_null(PlatformEvent::After))
                .col(timestamp_with_time_zone(PlatformEvent::CreatedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(PlatformEvent::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(OperatorKey::Table).to_owned()).await
    }
}
