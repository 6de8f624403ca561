//! A panel row's content is its event's: rows no longer keep a copy of it.
//!
//! A panel row shows the content of the latest event folded into it (`event_id`), and title,
//! body, data and action URL were copied from that event into every recipient's row: an
//! account-wide event stored its content once per panel. The rows now keep what is theirs
//! (whose, where in the panel, its state, how many events folded in) and what the panel
//! filters and folds on (type, contact, account, time); readers take the content from the
//! event. Down puts the copies back from the events.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Notification {
    Table,
    Title,
    Body,
    Data,
    ActionUrl,
}

const UP: [&str; 4] = [
    "ALTER TABLE notification DROP COLUMN title",
    "ALTER TABLE notification DROP COLUMN body",
    "ALTER TABLE notification DROP COLUMN data",
    "ALTER TABLE notification DROP COLUMN action_url",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        crate::execute_all(m, &UP).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        for mut column in [
            string(Notification::Title).default("").to_owned(),
            text_null(Notification::Body),
            json_null(Notification::Data),
            string_null(Notification::ActionUrl),
        ] {
            m.alter_table(Table::alter().table(Notification::Table).add_column(&mut column).to_owned()).await?;
        }
        m.get_connection()
            .execute_unprepared(
                "UPDATE notification SET title = e.title, body = e.body, data = e.data, action_url = e.action_url \
                 FROM event e WHERE e.id = notification.event_id",
            )
            .await?;
        Ok(())
    }
}
