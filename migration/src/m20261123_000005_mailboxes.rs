//! IMAP mailboxes of users, and the archive of the mail read from them, linked to customers
//! and leads (seeds/004).
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
    NextScanAt,
    ScanLeasedUntil,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MailboxFolder {
    Table,
    MailboxId,
    Path,
    AccountId,
    Uidvalidity,
    LastUid,
    UidvalidityChanges,
    LastError,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Email {
    Table,
    Id,
    AccountId,
    MessageKey,
    MessageId,
    Subject,
    FromAddress,
    FromName,
    ToAddresses,
    CcAddresses,
    SentAt,
    TextBody,
    HtmlBody,
    Attachments,
    Raw,
    HeadersOnly,
    Size,
    InReplyTo,
    References,
    ContactId,
    ProjectId,
    LinkedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum EmailLocation {
    Table,
    EmailId,
    MailboxId,
    Folder,
    Uidvalidity,
    Uid,
    AccountId,
}

#[derive(DeriveIden)]
enum EmailTombstone {
    Table,
    AccountId,
    MessageKey,
    DeletedAt,
}

#[derive(DeriveIden)]
enum EmailSettings {
    Table,
    AccountId,
    ScanAll,
    Version,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum Contact {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Project {
    Table,
    Id,
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
                .col(timestamp_with_time_zone_null(Mailbox::NextScanAt))
                .col(timestamp_with_time_zone_null(Mailbox::ScanLeasedUntil))
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
        m.create_index(Index::create().name("ix_mailbox_next_scan").table(Mailbox::Table).col(Mailbox::NextScanAt).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(MailboxFolder::Table)
                .col(uuid(MailboxFolder::MailboxId))
                .col(string_len(MailboxFolder::Path, 1000))
                .col(uuid(MailboxFolder::AccountId))
                .col(big_integer(MailboxFolder::Uidvalidity))
                .col(big_integer(MailboxFolder::LastUid))
                .col(integer(MailboxFolder::UidvalidityChanges).default(0))
                .col(text_null(MailboxFolder::LastError))
                .col(timestamp_with_time_zone(MailboxFolder::UpdatedAt))
                .primary_key(Index::create().col(MailboxFolder::MailboxId).col(MailboxFolder::Path))
                .foreign_key(&mut cascade("fk_folder_mailbox", (MailboxFolder::Table, MailboxFolder::MailboxId), (Mailbox::Table, Mailbox::Id)))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Email::Table)
                .col(uuid(Email::Id).primary_key())
                .col(uuid(Email::AccountId))
                .col(string_len(Email::MessageKey, 1000))
                .col(string_len_null(Email::MessageId, 1000))
                .col(text_null(Email::Subject))
                .col(string_len_null(Email::FromAddress, 320))
                .col(string_len_null(Email::FromName, 500))
                .col(json(Email::ToAddresses))
                .col(json(Email::CcAddresses))
                .col(timestamp_with_time_zone_null(Email::SentAt))
                .col(text_null(Email::TextBody))
                .col(text_null(Email::HtmlBody))
                .col(json(Email::Attachments))
                .col(binary_null(Email::Raw))
                .col(boolean(Email::HeadersOnly))
                .col(big_integer(Email::Size))
                .col(string_len_null(Email::InReplyTo, 1000))
                .col(json(Email::References))
                .col(uuid_null(Email::ContactId))
                .col(uuid_null(Email::ProjectId))
                .col(string_len(Email::LinkedBy, 32))
                .col(timestamp_with_time_zone(Email::CreatedAt))
                .foreign_key(&mut cascade("fk_email_account", (Email::Table, Email::AccountId), (Account::Table, Account::Id)))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_email_contact")
                        .from(Email::Table, Email::ContactId)
                        .to(Contact::Table, Contact::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_email_project")
                        .from(Email::Table, Email::ProjectId)
                        .to(Project::Table, Project::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        // Stored once per account: by Message-ID, else by a hash of the content.
        m.create_index(Index::create().name("ux_email_key").table(Email::Table).col(Email::AccountId).col(Email::MessageKey).unique().to_owned()).await?;
        m.create_index(Index::create().name("ix_email_contact").table(Email::Table).col(Email::ContactId).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(EmailLocation::Table)
                .col(uuid(EmailLocation::EmailId))
                .col(uuid(EmailLocation::MailboxId))
                .col(string_len(EmailLocation::Folder, 1000))
                .col(big_integer(EmailLocation::Uidvalidity))
                .col(big_integer(EmailLocation::Uid))
                .col(uuid(EmailLocation::AccountId))
                .primary_key(Index::create().col(EmailLocation::MailboxId).col(EmailLocation::Folder).col(EmailLocation::Uidvalidity).col(EmailLocation::Uid))
                .foreign_key(&mut cascade("fk_location_email", (EmailLocation::Table, EmailLocation::EmailId), (Email::Table, Email::Id)))
                .foreign_key(&mut cascade("fk_location_mailbox", (EmailLocation::Table, EmailLocation::MailboxId), (Mailbox::Table, Mailbox::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_location_email").table(EmailLocation::Table).col(EmailLocation::EmailId).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(EmailTombstone::Table)
                .col(uuid(EmailTombstone::AccountId))
                .col(string_len(EmailTombstone::MessageKey, 1000))
                .col(timestamp_with_time_zone(EmailTombstone::DeletedAt))
                .primary_key(Index::create().col(EmailTombstone::AccountId).col(EmailTombstone::MessageKey))
                .foreign_key(&mut cascade("fk_tombstone_account", (EmailTombstone::Table, EmailTombstone::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(EmailSettings::Table)
                .col(uuid(EmailSettings::AccountId).primary_key())
                .col(boolean(EmailSettings::ScanAll))
                .col(integer(EmailSettings::Version))
                .col(timestamp_with_time_zone(EmailSettings::UpdatedAt))
                .col(uuid_null(EmailSettings::UpdatedBy))
                .foreign_key(&mut cascade("fk_email_settings_account", (EmailSettings::Table, EmailSettings::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            EmailSettings::Table.into_iden(),
            EmailTombstone::Table.into_iden(),
            EmailLocation::Table.into_iden(),
            Email::Table.into_iden(),
            MailboxFolder::Table.into_iden(),
            Mailbox::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
