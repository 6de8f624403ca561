//! Personal mail accounts: a mailbox signs in with a password or with an OAuth2 grant from
//! Microsoft or Google (its tokens sealed like every secret), may carry its outgoing side
//! (SMTP), and remembers its last failed send. The authorization flows under way wait in
//! `oauth_authorization` until the provider calls back. Outbox emails record which sender
//! sent them and why.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Mailbox {
    Table,
    Id,
    AuthMethod,
    OauthProvider,
    OauthRefreshToken,
    OauthAccessToken,
    OauthExpiresAt,
    OauthRefreshLeasedUntil,
    OauthConnectedAt,
    SmtpHost,
    SmtpPort,
    SmtpSecurity,
    SmtpUsername,
    SmtpPassword,
    SendError,
    SendErrorAt,
}

#[derive(DeriveIden)]
enum OauthAuthorization {
    Table,
    Id,
    AccountId,
    MailboxId,
    UserId,
    Provider,
    StateHash,
    PkceVerifier,
    ReturnUrl,
    SkipTest,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum OutboxMessage {
    Table,
    SentAs,
    SenderNote,
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

fn cascade(name: &str, from: (impl IntoIden + 'static, impl IntoIden), to: (impl IntoIden + 'static, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        let columns = [
            string_len(Mailbox::AuthMethod, 16).default("PASSWORD").to_owned(),
            string_len_null(Mailbox::OauthProvider, 16),
            text_null(Mailbox::OauthRefreshToken),
            text_null(Mailbox::OauthAccessToken),
            timestamp_with_time_zone_null(Mailbox::OauthExpiresAt),
            timestamp_with_time_zone_null(Mailbox::OauthRefreshLeasedUntil),
            timestamp_with_time_zone_null(Mailbox::OauthConnectedAt),
            string_len_null(Mailbox::SmtpHost, 253),
            integer_null(Mailbox::SmtpPort),
            string_len_null(Mailbox::SmtpSecurity, 16),
            string_len_null(Mailbox::SmtpUsername, 320),
            text_null(Mailbox::SmtpPassword),
            text_null(Mailbox::SendError),
            timestamp_with_time_zone_null(Mailbox::SendErrorAt),
        ];
        for mut column in columns {
            m.alter_table(Table::alter().table(Mailbox::Table).add_column(&mut column).to_owned()).await?;
        }
        // The worker's refresher looks for grants about to expire.
        m.create_index(Index::create().name("ix_mailbox_oauth_expires").table(Mailbox::Table).col(Mailbox::OauthExpiresAt).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(OauthAuthorization::Table)
                .col(uuid(OauthAuthorization::Id).primary_key())
                .col(uuid(OauthAuthorization::AccountId))
                .col(uuid(OauthAuthorization::MailboxId))
                .col(uuid(OauthAuthorization::UserId))
                .col(string_len(OauthAuthorization::Provider, 16))
                .col(string_len(OauthAuthorization::StateHash, 64))
                .col(text(OauthAuthorization::PkceVerifier))
                .col(text(OauthAuthorization::ReturnUrl))
                .col(boolean(OauthAuthorization::SkipTest))
                .col(timestamp_with_time_zone(OauthAuthorization::CreatedAt))
                .col(timestamp_with_time_zone(OauthAuthorization::ExpiresAt))
                .col(timestamp_with_time_zone_null(OauthAuthorization::UsedAt))
                .foreign_key(&mut cascade(
                    "fk_oauth_authorization_account",
                    (OauthAuthorization::Table, OauthAuthorization::AccountId),
                    (Account::Table, Account::Id),
                ))
                .foreign_key(&mut cascade(
                    "fk_oauth_authorization_mailbox",
                    (OauthAuthorization::Table, OauthAuthorization::MailboxId),
                    (Mailbox::Table, Mailbox::Id),
                ))
                .foreign_key(&mut cascade("fk_oauth_authorization_user", (OauthAuthorization::Table, OauthAuthorization::UserId), (User::Table, User::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("ux_oauth_authorization_state").table(OauthAuthorization::Table).col(OauthAuthorization::StateHash).unique().to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_oauth_authorization_mailbox").table(OauthAuthorization::Table).col(OauthAuthorization::MailboxId).to_owned())
            .await?;

        for mut column in [string_len_null(OutboxMessage::SentAs, 16), text_null(OutboxMessage::SenderNote)] {
            m.alter_table(Table::alter().table(OutboxMessage::Table).add_column(&mut column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [OutboxMessage::SenderNote, OutboxMessage::SentAs] {
            m.alter_table(Table::alter().table(OutboxMessage::Table).drop_column(column).to_owned()).await?;
        }
        m.drop_table(Table::drop().table(OauthAuthorization::Table).to_owned()).await?;
        m.drop_index(Index::drop().name("ix_mailbox_oauth_expires").table(Mailbox::Table).to_owned()).await?;
        for column in [
            Mailbox::SendErrorAt,
            Mailbox::SendError,
            Mailbox::SmtpPassword,
            Mailbox::SmtpUsername,
            Mailbox::SmtpSecurity,
            Mailbox::SmtpPort,
            Mailbox::SmtpHost,
            Mailbox::OauthConnectedAt,
            Mailbox::OauthRefreshLeasedUntil,
            Mailbox::OauthExpiresAt,
            Mailbox::OauthAccessToken,
            Mailbox::OauthRefreshToken,
            Mailbox::OauthProvider,
            Mailbox::AuthMethod,
        ] {
            m.alter_table(Table::alter().table(Mailbox::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
