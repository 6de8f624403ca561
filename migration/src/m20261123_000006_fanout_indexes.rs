//! Indexes for batched fan-out: an event reads only its own type's overrides of an account.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum NotificationOverride {
    Table,
    AccountId,
    NotificationType,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Replaces the account-only index: its leading column serves the same look-ups.
        m.drop_index(Index::drop().name("ix_notification_override_account").table(NotificationOverride::Table).to_owned()).await?;
        m.create_index(
            Index::create()
                .name("ix_notification_override_account_type")
                .table(NotificationOverride::Table)
                .col(NotificationOverride::AccountId)
                .col(NotificationOverride::NotificationType)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ix_notification_override_account_type").table(NotificationOverride::Table).to_owned()).await?;
        m.create_index(
            Index::create().name("ix_notification_override_account").table(NotificationOverride::Table).col(NotificationOverride::AccountId).to_owned(),
        )
        .await
    }
}
