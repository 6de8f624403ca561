//! An account's integrations with other CRMs (HubSpot, Salesforce, Zoho): whether each is on,
//! its features, its health as its integration service last reported it, and its settings
//! tabs (one JSON document, typed by the api).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Integration {
    Table,
    Id,
    AccountId,
    Provider,
    Enabled,
    SyncEnabled,
    FiltersEnabled,
    CommunicationEnabled,
    Health,
    LastSyncAt,
    Problems,
    Settings,
    Version,
    CreatedAt,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum Account {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Integration::Table)
                .col(uuid(Integration::Id).primary_key())
                .col(uuid(Integration::AccountId))
                .col(string_len(Integration::Provider, 16))
                .col(boolean(Integration::Enabled))
                .col(boolean(Integration::SyncEnabled))
                .col(boolean(Integration::FiltersEnabled))
                .col(boolean(Integration::CommunicationEnabled))
                .col(string_len(Integration::Health, 24))
                .col(timestamp_with_time_zone_null(Integration::LastSyncAt))
                .col(json(Integration::Problems))
                .col(json(Integration::Settings))
                .col(integer(Integration::Version))
                .col(timestamp_with_time_zone(Integration::CreatedAt))
                .col(timestamp_with_time_zone(Integration::UpdatedAt))
                .col(uuid_null(Integration::UpdatedBy))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_integration_account")
                        .from(Integration::Table, Integration::AccountId)
                        .to(Account::Table, Account::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // One integration per provider and account.
        m.create_index(
            Index::create()
                .name("ux_integration_account_provider")
                .table(Integration::Table)
                .col(Integration::AccountId)
                .col(Integration::Provider)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Integration::Table).to_owned()).await
    }
}
