//! IMAP mailboxes of users: where their mail is read from for archiving (seeds/004).
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

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

#[derive(DeriveIden)]
enum Mailbox {
    Table,
    Id,
    AccountId,
    UserId,
    EmailAddress,
    Username,
    Password,
    Host,
    Port,
    Security,
    ScanActive,
    SyncClients,
    SyncLeads,
    Directories,
    Main,
    State,
    LastScanAt,
    LastError,
    OwnerNotifiedOfAuthFailure,
    Version,
    CreatedAt,
    UpdatedAt,
}

fn cascade(name: &str, from: (impl IntoIden + 'static, impl IntoIden), to: (impl IntoIden + 'static, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Mailbox::Table)
                .col(uuid(Mailbox::Id).primary_key())
                .col(uuid(Mailbox::AccountId))
                .col(uuid(Mailbox::UserId))
                .col(string_len(Mailbox::EmailAddress, 320))
                .col(string_len_null(Mailbox::Username, 320))
                .col(text_null(Mailbox::Password))
                .col(string_len(Mailbox::Host, 253))
                .col(integer_null(Mailbox::Port))
                .col(string_len(Mailbox::Security, 16))
                .col(boolean(Mailbox::ScanActive))
                .col(boolean(Mailbox::SyncClients))
                .col(boolean(Mailbox::SyncLeads))
                .col(json(Mailbox::Directories))
                .col(boolean(Mailbox::Main))
                .col(string_len(Mailbox::State, 24))
                .col(timestamp_with_time_zone_null(Mailbox::LastScanAt))
                .col(text_null(Mailbox::LastError))
                .col(boolean(Mailbox::OwnerNotifiedOfAuthFailure).default(false))
                .col(integer(Mailbox::Version))
                .col(timestamp_with_time_zone(Mailbox::CreatedAt))
                .col(timestamp_with_time_zone(Mailbox::UpdatedAt))
                .foreign_key(&mut cascade("fk_mailbox_account", (Mailbox::Table, Mailbox::AccountId), (Account::Table, Account::Id)))
                .foreign_key(&mut cascade("fk_mailbox_user", (Mailbox::Table, Mailbox::UserId), (User::Table, User::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("ux_mailbox_user_address").table(Mailbox::Table).col(Mailbox::UserId).col(Mailbox::EmailAddress).unique().to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_mailbox_account").table(Mailbox::Table).col(Mailbox::AccountId).to_owned()).await?;
        // At most one main mailbox per user: a partial unique index (both databases have them).
        m.get_connection().execute_unprepared("CREATE UNIQUE INDEX ux_mailbox_main ON mailbox (user_id) WHERE main").await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Mailbox::Table).to_owned()).await
    }
}
