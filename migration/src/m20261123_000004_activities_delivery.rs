//! Activities and their reminders and escalations, the account's activity settings page (SMTP
//! server, alert and late-response intervals, default persons), the SMS gateway, and what the
//! worker needs to deliver the outbox exactly once across several processes (leases).
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
enum Contact {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ActivitySettings {
    Table,
    Id,
    AccountId,
    SmtpHost,
    SmtpPort,
    SmtpSecurity,
    SmtpUsername,
    SmtpPassword,
    SenderAddress,
    SenderName,
    AlertIntervalHours,
    AlertSender,
    LateIntervalHours,
    LateSender,
    LateSenderEmail,
    Version,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum ActivityDefaultPerson {
    Table,
    AccountId,
    UserId,
    Position,
}

#[derive(DeriveIden)]
enum SmsGateway {
    Table,
    Id,
    AccountId,
    BaseUrl,
    AccountSid,
    AuthToken,
    FromNumber,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Activity {
    Table,
    Id,
    AccountId,
    ExternalId,
    Kind,
    Title,
    OwnerId,
    ContactId,
    DueAt,
    CompletedAt,
    RemindAt,
    EscalateAt,
    RemindedFor,
    EscalatedFor,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OutboxMessage {
    Table,
    Status,
    LeasedUntil,
    SentAt,
}

fn cascade(name: &str, from: (impl IntoIden + 'static, impl IntoIden), to: (impl IntoIden + 'static, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ActivitySettings::Table)
                .col(uuid(ActivitySettings::Id).primary_key())
                .col(uuid_uniq(ActivitySettings::AccountId))
                .col(string_len_null(ActivitySettings::SmtpHost, 253))
                .col(integer_null(ActivitySettings::SmtpPort))
                .col(string_len(ActivitySettings::SmtpSecurity, 16))
                .col(string_len_null(ActivitySettings::SmtpUsername, 320))
                .col(text_null(ActivitySettings::SmtpPassword))
                .col(string_len_null(ActivitySettings::SenderAddress, 320))
                .col(string_len_null(ActivitySettings::SenderName, 200))
                .col(integer(ActivitySettings::AlertIntervalHours))
                .col(string_len(ActivitySettings::AlertSender, 16))
                .col(integer(ActivitySettings::LateIntervalHours))
                .col(string_len(ActivitySettings::LateSender, 16))
                .col(string_len_null(ActivitySettings::LateSenderEmail, 320))
                .col(integer(ActivitySettings::Version))
                .col(timestamp_with_time_zone(ActivitySettings::UpdatedAt))
                .col(uuid_null(ActivitySettings::UpdatedBy))
                .foreign_key(&mut cascade(
                    "fk_activity_settings_account",
                    (ActivitySettings::Table, ActivitySettings::AccountId),
                    (Account::Table, Account::Id),
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ActivityDefaultPerson::Table)
                .col(uuid(ActivityDefaultPerson::AccountId))
                .col(uuid(ActivityDefaultPerson::UserId))
                .col(integer(ActivityDefaultPerson::Position))
                .primary_key(Index::create().col(ActivityDefaultPerson::AccountId).col(ActivityDefaultPerson::UserId))
                .foreign_key(&mut cascade(
                    "fk_default_person_account",
                    (ActivityDefaultPerson::Table, ActivityDefaultPerson::AccountId),
                    (Account::Table, Account::Id),
                ))
                .foreign_key(&mut cascade("fk_default_person_user", (ActivityDefaultPerson::Table, ActivityDefaultPerson::UserId), (User::Table, User::Id)))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SmsGateway::Table)
                .col(uuid(SmsGateway::Id).primary_key())
                .col(uuid_uniq(SmsGateway::AccountId))
                .col(string_len(SmsGateway::BaseUrl, 2000))
                .col(string_len(SmsGateway::AccountSid, 200))
                .col(text(SmsGateway::AuthToken))
                .col(string_len(SmsGateway::FromNumber, 32))
                .col(integer(SmsGateway::Version))
                .col(timestamp_with_time_zone(SmsGateway::UpdatedAt))
                .foreign_key(&mut cascade("fk_sms_gateway_account", (SmsGateway::Table, SmsGateway::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Activity::Table)
                .col(uuid(Activity::Id).primary_key())
                .col(uuid(Activity::AccountId))
                .col(string_len_null(Activity::ExternalId, 200))
                .col(string_len(Activity::Kind, 32))
                .col(string_len(Activity::Title, 500))
                .col(uuid(Activity::OwnerId))
                .col(uuid_null(Activity::ContactId))
                .col(timestamp_with_time_zone(Activity::DueAt))
                .col(timestamp_with_time_zone_null(Activity::CompletedAt))
                .col(timestamp_with_time_zone_null(Activity::RemindAt))
                .col(timestamp_with_time_zone_null(Activity::EscalateAt))
                .col(timestamp_with_time_zone_null(Activity::RemindedFor))
                .col(timestamp_with_time_zone_null(Activity::EscalatedFor))
                .col(integer(Activity::Version))
                .col(timestamp_with_time_zone(Activity::CreatedAt))
                .col(timestamp_with_time_zone(Activity::UpdatedAt))
                .foreign_key(&mut cascade("fk_activity_account", (Activity::Table, Activity::AccountId), (Account::Table, Account::Id)))
                .foreign_key(&mut cascade("fk_activity_owner", (Activity::Table, Activity::OwnerId), (User::Table, User::Id)))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_activity_contact")
                        .from(Activity::Table, Activity::ContactId)
                        .to(Contact::Table, Contact::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("ux_activity_external").table(Activity::Table).col(Activity::AccountId).col(Activity::ExternalId).unique().to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_activity_account_due").table(Activity::Table).col(Activity::AccountId).col(Activity::DueAt).to_owned()).await?;
        // The scheduler's two scans: what is due to be reminded or escalated by now.
        m.create_index(Index::create().name("ix_activity_remind_at").table(Activity::Table).col(Activity::RemindAt).to_owned()).await?;
        m.create_index(Index::create().name("ix_activity_escalate_at").table(Activity::Table).col(Activity::EscalateAt).to_owned()).await?;

        // Leases: a worker that dies holding messages gives them back when its lease ends.
        m.alter_table(Table::alter().table(OutboxMessage::Table).add_column(timestamp_with_time_zone_null(OutboxMessage::LeasedUntil)).to_owned()).await?;
        m.alter_table(Table::alter().table(OutboxMessage::Table).add_column(timestamp_with_time_zone_null(OutboxMessage::SentAt)).to_owned()).await?;
        m.create_index(
            Index::create().name("ix_outbox_leased").table(OutboxMessage::Table).col(OutboxMessage::Status).col(OutboxMessage::LeasedUntil).to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ix_outbox_leased").table(OutboxMessage::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(OutboxMessage::Table).drop_column(OutboxMessage::SentAt).to_owned()).await?;
        m.alter_table(Table::alter().table(OutboxMessage::Table).drop_column(OutboxMessage::LeasedUntil).to_owned()).await?;
        for table in [Activity::Table.into_iden(), SmsGateway::Table.into_iden(), ActivityDefaultPerson::Table.into_iden(), ActivitySettings::Table.into_iden()]
        {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
