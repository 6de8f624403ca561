//! Events, the panel notifications fanned out from them, and the outbox of texts and emails
//! to assigned users that the worker delivers.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Event {
    Table,
    Id,
    AccountId,
    NotificationType,
    ContactId,
    Title,
    Body,
    Data,
    ActionUrl,
    OccurredAt,
    IdempotencyKey,
    CreatedAt,
    PublishedByUser,
    PublishedByKey,
}

// Variants are column names: `notification_type` is what the column is called.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum Notification {
    Table,
    Id,
    Position,
    UserId,
    AccountId,
    EventId,
    NotificationType,
    ContactId,
    Title,
    Body,
    Data,
    ActionUrl,
    Count,
    CreatedAt,
    OccurredAt,
    SeenAt,
    ReadAt,
    ArchivedAt,
}

#[derive(DeriveIden)]
enum OutboxMessage {
    Table,
    Id,
    AccountId,
    EventId,
    UserId,
    Channel,
    Status,
    Attempts,
    LastError,
    CreatedAt,
    NextAttemptAt,
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
        m.create_table(
            Table::create()
                .table(Event::Table)
                .col(uuid(Event::Id).primary_key())
                .col(uuid(Event::AccountId))
                .col(string_len(Event::NotificationType, 64))
                .col(uuid_null(Event::ContactId))
                .col(string(Event::Title))
                .col(text_null(Event::Body))
                .col(json_null(Event::Data))
                .col(string_null(Event::ActionUrl))
                .col(timestamp_with_time_zone(Event::OccurredAt))
                .col(string_len(Event::IdempotencyKey, 200))
                .col(timestamp_with_time_zone(Event::CreatedAt))
                .col(uuid_null(Event::PublishedByUser))
                .col(uuid_null(Event::PublishedByKey))
                .foreign_key(&mut cascade("fk_event_account", (Event::Table, Event::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ux_event_idempotency").table(Event::Table).col(Event::AccountId).col(Event::IdempotencyKey).unique().to_owned())
            .await?;

        m.create_table(
            Table::create()
                .table(Notification::Table)
                .col(uuid(Notification::Id).primary_key())
                .col(uuid(Notification::Position))
                .col(uuid(Notification::UserId))
                .col(uuid(Notification::AccountId))
                .col(uuid(Notification::EventId))
                .col(string_len(Notification::NotificationType, 64))
                .col(uuid_null(Notification::ContactId))
                .col(string(Notification::Title))
                .col(text_null(Notification::Body))
                .col(json_null(Notification::Data))
                .col(string_null(Notification::ActionUrl))
                .col(integer(Notification::Count).default(1))
                .col(timestamp_with_time_zone(Notification::CreatedAt))
                .col(timestamp_with_time_zone(Notification::OccurredAt))
                .col(timestamp_with_time_zone_null(Notification::SeenAt))
                .col(timestamp_with_time_zone_null(Notification::ReadAt))
                .col(timestamp_with_time_zone_null(Notification::ArchivedAt))
                .foreign_key(&mut cascade("fk_notification_user", (Notification::Table, Notification::UserId), (User::Table, User::Id)))
                .foreign_key(&mut cascade("fk_notification_account", (Notification::Table, Notification::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;
        // Positions order one user's panel: unique per user. Rows of different users folded by
        // one event share its position.
        m.create_index(
            Index::create()
                .name("ux_notification_user_position")
                .table(Notification::Table)
                .col(Notification::UserId)
                .col(Notification::Position)
                .unique()
                .to_owned(),
        )
        .await?;
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

        m.create_table(
            Table::create()
                .table(OutboxMessage::Table)
                .col(uuid(OutboxMessage::Id).primary_key())
                .col(uuid(OutboxMessage::AccountId))
                .col(uuid(OutboxMessage::EventId))
                .col(uuid(OutboxMessage::UserId))
                .col(string_len(OutboxMessage::Channel, 16))
                .col(string_len(OutboxMessage::Status, 16))
                .col(integer(OutboxMessage::Attempts).default(0))
                .col(text_null(OutboxMessage::LastError))
                .col(timestamp_with_time_zone(OutboxMessage::CreatedAt))
                .col(timestamp_with_time_zone(OutboxMessage::NextAttemptAt))
                .foreign_key(&mut cascade("fk_outbox_account", (OutboxMessage::Table, OutboxMessage::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_outbox_event_user_channel")
                .table(OutboxMessage::Table)
                .col(OutboxMessage::EventId)
                .col(OutboxMessage::UserId)
                .col(OutboxMessage::Channel)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("ix_outbox_due").table(OutboxMessage::Table).col(OutboxMessage::Status).col(OutboxMessage::NextAttemptAt).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [OutboxMessage::Table.into_iden(), Notification::Table.into_iden(), Event::Table.into_iden()] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
