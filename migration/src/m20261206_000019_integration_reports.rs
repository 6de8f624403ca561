//! Integration reports by email: addressed outbox messages, and what integration services
//! report about an account's integrations.
//!
//! - `outbox_message` gains the addressed shape: To/Cc/Bcc `recipients`, the content rendered
//!   once when queued, and a `source_key` unique per account. Its `user_id` and `event_id`
//!   become nullable (an addressed email is to several people, and a workflow's is about no
//!   event). SQLite cannot drop a NOT NULL, so there the table is rebuilt with its indexes.
//! - `report_settings.mapping_error_window_minutes`: the grouping window of mapping errors.
//! - `integration_report`: each report under its idempotency key.
//! - `integration_mapping_error`: one row per record that cannot be mapped (its state).
//! - `integration_alert_window`: the open window gathering an integration's mapping errors.
use sea_orm_migration::{prelude::*, schema::*, sea_orm::TransactionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboxMessage {
    Table,
    Recipients,
    Subject,
    BodyText,
    BodyHtml,
    SourceKey,
}

#[derive(DeriveIden)]
enum ReportSettings {
    Table,
    MappingErrorWindowMinutes,
}

#[derive(DeriveIden)]
enum IntegrationReport {
    Table,
    Id,
    AccountId,
    IntegrationId,
    Kind,
    IdempotencyKey,
    Payload,
    Alerted,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum IntegrationMappingError {
    Table,
    Id,
    AccountId,
    IntegrationId,
    ObjectType,
    RecordId,
    RecordName,
    Field,
    Error,
    Tips,
    Actions,
    Deadline,
    Occurrences,
    FirstReportedAt,
    LastReportedAt,
    AlertedAt,
    ResolvedAt,
}

#[derive(DeriveIden)]
enum IntegrationAlertWindow {
    Table,
    Id,
    AccountId,
    IntegrationId,
    OpenedAt,
    ClosesAt,
    ClosedAt,
    Records,
}

#[derive(DeriveIden)]
enum Account {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Integration {
    Table,
    Id,
}

fn cascade(name: &str, from: (impl IntoIden + 'static, impl IntoIden), to: (impl IntoIden + 'static, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).to_owned()
}

/// SQLite: the outbox rebuilt with `user_id` and `event_id` nullable, its rows copied, its
/// indexes made again as they were (the partial ones of migrations 9 and 12 included).
const SQLITE_REBUILD: &[&str] = &[
    SQLITE_TABLE,
    "INSERT INTO outbox_message_v19 (id, account_id, event_id, user_id, channel, status, attempts, last_error, created_at, next_attempt_at, \
     leased_until, sent_at, claim_id, sent_as, sender_note) \
     SELECT id, account_id, event_id, user_id, channel, status, attempts, last_error, created_at, next_attempt_at, \
     leased_until, sent_at, claim_id, sent_as, sender_note FROM outbox_message",
    "DROP TABLE outbox_message",
    "ALTER TABLE outbox_message_v19 RENAME TO outbox_message",
    "CREATE UNIQUE INDEX ux_outbox_event_user_channel ON outbox_message (event_id, user_id, channel)",
    "CREATE INDEX ix_outbox_due ON outbox_message (next_attempt_at) WHERE status = 'PENDING'",
    "CREATE INDEX ix_outbox_leased ON outbox_message (leased_until) WHERE status = 'SENDING'",
    "CREATE INDEX ix_outbox_claim ON outbox_message (claim_id) WHERE status = 'SENDING'",
];

const SQLITE_TABLE: &str = "CREATE TABLE outbox_message_v19 ( \
    \"id\" uuid_text NOT NULL PRIMARY KEY, \"account_id\" uuid_text NOT NULL, \"event_id\" uuid_text NULL, \"user_id\" uuid_text NULL, \
    \"channel\" varchar(16) NOT NULL, \"status\" varchar(16) NOT NULL, \"attempts\" integer NOT NULL DEFAULT 0, \"last_error\" text NULL, \
    \"created_at\" timestamp_with_timezone_text NOT NULL, \"next_attempt_at\" timestamp_with_timezone_text NOT NULL, \
    \"leased_until\" timestamp_with_timezone_text NULL, \"sent_at\" timestamp_with_timezone_text NULL, \"claim_id\" uuid_text NULL, \
    \"sent_as\" varchar(16) NULL, \"sender_note\" text NULL, \
    \"recipients\" json_text NULL, \"subject\" text NULL, \"body_text\" text NULL, \"body_html\" text NULL, \"source_key\" varchar(200) NULL, \
    FOREIGN KEY (\"account_id\") REFERENCES \"account\" (\"id\") ON DELETE CASCADE )";

const POSTGRES_OUTBOX: &[&str] = &[
    "ALTER TABLE outbox_message ALTER COLUMN user_id DROP NOT NULL",
    "ALTER TABLE outbox_message ALTER COLUMN event_id DROP NOT NULL",
    "ALTER TABLE outbox_message ADD COLUMN recipients json NULL",
    "ALTER TABLE outbox_message ADD COLUMN subject text NULL",
    "ALTER TABLE outbox_message ADD COLUMN body_text text NULL",
    "ALTER TABLE outbox_message ADD COLUMN body_html text NULL",
    "ALTER TABLE outbox_message ADD COLUMN source_key varchar(200) NULL",
];

const SOURCE_INDEX: &str = "CREATE UNIQUE INDEX ux_outbox_source ON outbox_message (account_id, source_key) WHERE source_key IS NOT NULL";
const OPEN_WINDOW_INDEX: &str = "CREATE UNIQUE INDEX ux_alert_window_open ON integration_alert_window (integration_id) WHERE closed_at IS NULL";
const DUE_WINDOW_INDEX: &str = "CREATE INDEX ix_alert_window_due ON integration_alert_window (closes_at) WHERE closed_at IS NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        match m.get_database_backend() {
            sea_orm::DbBackend::Sqlite => {
                // One transaction: a rebuild half done would lose the outbox.
                let txn = m.get_connection().begin().await?;
                for sql in SQLITE_REBUILD {
                    txn.execute_unprepared(sql).await?;
                }
                txn.commit().await?;
            }
            _ => crate::execute_all(m, POSTGRES_OUTBOX).await?,
        }
        crate::execute_all(m, &[SOURCE_INDEX]).await?;
        m.alter_table(Table::alter().table(ReportSettings::Table).add_column(integer(ReportSettings::MappingErrorWindowMinutes).default(15)).to_owned())
            .await?;

        m.create_table(
            Table::create()
                .table(IntegrationReport::Table)
                .col(uuid(IntegrationReport::Id).primary_key())
                .col(uuid(IntegrationReport::AccountId))
                .col(uuid(IntegrationReport::IntegrationId))
                .col(string_len(IntegrationReport::Kind, 32))
                .col(string_len(IntegrationReport::IdempotencyKey, 200))
                .col(json(IntegrationReport::Payload))
                .col(boolean(IntegrationReport::Alerted))
                .col(timestamp_with_time_zone(IntegrationReport::ReceivedAt))
                .foreign_key(&mut cascade(
                    "fk_integration_report_account",
                    (IntegrationReport::Table, IntegrationReport::AccountId),
                    (Account::Table, Account::Id),
                ))
                .foreign_key(&mut cascade(
                    "fk_integration_report_integration",
                    (IntegrationReport::Table, IntegrationReport::IntegrationId),
                    (Integration::Table, Integration::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_integration_report_key")
                .table(IntegrationReport::Table)
                .col(IntegrationReport::IntegrationId)
                .col(IntegrationReport::IdempotencyKey)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(IntegrationMappingError::Table)
                .col(uuid(IntegrationMappingError::Id).primary_key())
                .col(uuid(IntegrationMappingError::AccountId))
                .col(uuid(IntegrationMappingError::IntegrationId))
                .col(string_len(IntegrationMappingError::ObjectType, 32))
                .col(string_len(IntegrationMappingError::RecordId, 200))
                .col(string_len_null(IntegrationMappingError::RecordName, 300))
                .col(string_len_null(IntegrationMappingError::Field, 100))
                .col(text(IntegrationMappingError::Error))
                .col(json(IntegrationMappingError::Tips))
                .col(json(IntegrationMappingError::Actions))
                .col(timestamp_with_time_zone_null(IntegrationMappingError::Deadline))
                .col(integer(IntegrationMappingError::Occurrences))
                .col(timestamp_with_time_zone(IntegrationMappingError::FirstReportedAt))
                .col(timestamp_with_time_zone(IntegrationMappingError::LastReportedAt))
                .col(timestamp_with_time_zone_null(IntegrationMappingError::AlertedAt))
                .col(timestamp_with_time_zone_null(IntegrationMappingError::ResolvedAt))
                .foreign_key(&mut cascade(
                    "fk_mapping_error_account",
                    (IntegrationMappingError::Table, IntegrationMappingError::AccountId),
                    (Account::Table, Account::Id),
                ))
                .foreign_key(&mut cascade(
                    "fk_mapping_error_integration",
                    (IntegrationMappingError::Table, IntegrationMappingError::IntegrationId),
                    (Integration::Table, Integration::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_mapping_error_record")
                .table(IntegrationMappingError::Table)
                .col(IntegrationMappingError::IntegrationId)
                .col(IntegrationMappingError::ObjectType)
                .col(IntegrationMappingError::RecordId)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(IntegrationAlertWindow::Table)
                .col(uuid(IntegrationAlertWindow::Id).primary_key())
                .col(uuid(IntegrationAlertWindow::AccountId))
                .col(uuid(IntegrationAlertWindow::IntegrationId))
                .col(timestamp_with_time_zone(IntegrationAlertWindow::OpenedAt))
                .col(timestamp_with_time_zone(IntegrationAlertWindow::ClosesAt))
                .col(timestamp_with_time_zone_null(IntegrationAlertWindow::ClosedAt))
                .col(integer(IntegrationAlertWindow::Records).default(0))
                .foreign_key(&mut cascade(
                    "fk_alert_window_account",
                    (IntegrationAlertWindow::Table, IntegrationAlertWindow::AccountId),
                    (Account::Table, Account::Id),
                ))
                .foreign_key(&mut cascade(
                    "fk_alert_window_integration",
                    (IntegrationAlertWindow::Table, IntegrationAlertWindow::IntegrationId),
                    (Integration::Table, Integration::Id),
                ))
                .to_owned(),
        )
        .await?;
        crate::execute_all(m, &[OPEN_WINDOW_INDEX, DUE_WINDOW_INDEX]).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [IntegrationAlertWindow::Table.into_iden(), IntegrationMappingError::Table.into_iden(), IntegrationReport::Table.into_iden()] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        m.alter_table(Table::alter().table(ReportSettings::Table).drop_column(ReportSettings::MappingErrorWindowMinutes).to_owned()).await?;
        crate::execute_all(m, &["DROP INDEX IF EXISTS ux_outbox_source"]).await?;
        // Addressed messages cannot be kept by the older shape.
        crate::execute_all(m, &["DELETE FROM outbox_message WHERE user_id IS NULL OR event_id IS NULL"]).await?;
        for column in [OutboxMessage::Recipients, OutboxMessage::Subject, OutboxMessage::BodyText, OutboxMessage::BodyHtml, OutboxMessage::SourceKey] {
            m.alter_table(Table::alter().table(OutboxMessage::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
