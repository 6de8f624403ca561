//! Notification settings: headers (a version per settings object), account defaults with
//! locks, user overrides (the Control tab) and users' chosen sub-accounts (the Roll-up tab).
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum NotificationSetting {
    Table,
    OwnerId,
    AccountId,
    Scope,
    Version,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum NotificationDefault {
    Table,
    AccountId,
    NotificationType,
    Switch,
    Enabled,
    Locked,
}

#[derive(DeriveIden)]
enum NotificationOverride {
    Table,
    UserId,
    NotificationType,
    Switch,
    AccountId,
    Enabled,
}

#[derive(DeriveIden)]
enum NotificationRollUp {
    Table,
    UserId,
    SubAccountId,
    AccountId,
}

#[derive(DeriveIden)]
enum Account {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(NotificationSetting::Table)
                .col(uuid(NotificationSetting::OwnerId))
                .col(uuid(NotificationSetting::AccountId))
                .col(string_len(NotificationSetting::Scope, 24))
                .col(integer(NotificationSetting::Version))
                .col(timestamp_with_time_zone(NotificationSetting::UpdatedAt))
                .col(uuid_null(NotificationSetting::UpdatedBy))
                .primary_key(Index::create().col(NotificationSetting::OwnerId).col(NotificationSetting::Scope))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_notification_setting_account")
                        .from(NotificationSetting::Table, NotificationSetting::AccountId)
                        .to(Account::Table, Account::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NotificationDefault::Table)
                .col(uuid(NotificationDefault::AccountId))
                .col(string_len(NotificationDefault::NotificationType, 64))
                .col(string_len(NotificationDefault::Switch, 16))
                .col(boolean(NotificationDefault::Enabled))
                .col(boolean(NotificationDefault::Locked).default(false))
                .primary_key(Index::create().col(NotificationDefault::AccountId).col(NotificationDefault::NotificationType).col(NotificationDefault::Switch))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_notification_default_account")
                        .from(NotificationDefault::Table, NotificationDefault::AccountId)
                        .to(Account::Table, Account::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NotificationOverride::Table)
                .col(uuid(NotificationOverride::UserId))
                .col(string_len(NotificationOverride::NotificationType, 64))
                .col(string_len(NotificationOverride::Switch, 16))
                .col(uuid(NotificationOverride::AccountId))
                .col(boolean(NotificationOverride::Enabled))
                .primary_key(Index::create().col(NotificationOverride::UserId).col(NotificationOverride::NotificationType).col(NotificationOverride::Switch))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_notification_override_user")
                        .from(NotificationOverride::Table, NotificationOverride::UserId)
                        .to(User::Table, User::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(NotificationRollUp::Table)
                .col(uuid(NotificationRollUp::UserId))
                .col(uuid(NotificationRollUp::SubAccountId))
                .col(uuid(NotificationRollUp::AccountId))
                .primary_key(Index::create().col(NotificationRollUp::UserId).col(NotificationRollUp::SubAccountId))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_notification_roll_up_user")
                        .from(NotificationRollUp::Table, NotificationRollUp::UserId)
                        .to(User::Table, User::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_notification_roll_up_sub_account")
                        .from(NotificationRollUp::Table, NotificationRollUp::SubAccountId)
                        .to(Account::Table, Account::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("ix_notification_roll_up_sub_account").table(NotificationRollUp::Table).col(NotificationRollUp::SubAccountId).to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("ix_notification_override_account").table(NotificationOverride::Table).col(NotificationOverride::AccountId).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            NotificationRollUp::Table.into_iden(),
            NotificationOverride::Table.into_iden(),
            NotificationDefault::Table.into_iden(),
            NotificationSetting::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
