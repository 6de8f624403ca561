//! The panel rows' write path, which an account-wide event takes ten thousand times at once.
//!
//! - On PostgreSQL the panel rows lose their foreign keys to `user` and `account`. Each key
//!   costs a lookup and a row lock per inserted row, as much work again as the insert itself.
//!   Fan-out takes the same lock once per statement instead: it reads its recipients
//!   `FOR KEY SHARE`, so a user cannot be deleted between being chosen and getting the row,
//!   and deleting a user deletes their rows (`crm::users::delete`). The account needs no key:
//!   every row's event already has one to the row's account (roll-up rows name the event's
//!   own sub-account). SQLite keeps the keys: its `ALTER TABLE` cannot drop them, and its
//!   single writer does not race.
//! - The collapse index (`ix_notification_fold`) covers only rows about a contact, the only
//!   rows an event can fold into, so rows about no contact (account-wide news) do not
//!   maintain it.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// Variants are column names: `notification_type` is what the column is called.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum Notification {
    Table,
    UserId,
    AccountId,
    NotificationType,
    ContactId,
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Account {
    Table,
    Id,
}

const PARTIAL_COLLAPSE: &str = "CREATE INDEX ix_notification_fold ON notification (user_id, notification_type, contact_id) WHERE contact_id IS NOT NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            for name in ["fk_notification_user", "fk_notification_account"] {
                m.drop_foreign_key(ForeignKey::drop().name(name).table(Notification::Table).to_owned()).await?;
            }
        }
        m.get_connection().execute_unprepared(PARTIAL_COLLAPSE).await?;
        m.drop_index(Index::drop().name("ix_notification_collapse").table(Notification::Table).to_owned()).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("ix_notification_collapse")
                .table(Notification::Table)
                .col(Notification::UserId)
                .col(Notification::NotificationType)
                .col(Notification::ContactId)
                .to_owned(),
        )
        .await?;
        m.drop_index(Index::drop().name("ix_notification_fold").table(Notification::Table).to_owned()).await?;
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            // Rows of users deleted since have to go first, as the cascade would have taken them.
            m.get_connection().execute_unprepared(r#"DELETE FROM notification n WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u.id = n.user_id)"#).await?;
            m.create_foreign_key(
                ForeignKey::create()
                    .name("fk_notification_user")
                    .from(Notification::Table, Notification::UserId)
                    .to(User::Table, User::Id)
                    .on_delete(ForeignKeyAction::Cascade)
                    .to_owned(),
            )
            .await?;
            m.create_foreign_key(
                ForeignKey::create()
                    .name("fk_notification_account")
                    .from(Notification::Table, Notification::AccountId)
                    .to(Account::Table, Account::Id)
                    .on_delete(ForeignKeyAction::Cascade)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
