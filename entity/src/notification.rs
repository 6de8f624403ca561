//! One row of a user's notification panel. Repeated events about the same contact and type
//! within the collapse window bump `count`, `occurred_at` and `position` of one row instead
//! of adding rows. `position` is a UUIDv7 renewed on every bump (unique per user; the rows
//! one event writes share it): the panel's order and the cursor a reconnecting panel resumes
//! from.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::notification_type::NotificationType;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notification")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub position: Uuid,
    pub user_id: Uuid,
    /// The account the event happened in (a sub-account for roll-ups).
    pub account_id: Uuid,
    /// The latest event folded into this row.
    pub event_id: Uuid,
    pub notification_type: NotificationType,
    pub contact_id: Option<Uuid>,
    /// The content (title, body, data, action URL) is `event_id`'s event's and is not stored
    /// with the row: an event shown in ten thousand panels keeps one copy. Rows read from the
    /// database get it from the event (`api::notifications::panel::with_content`); rows a
    /// fan-out makes or bumps carry it from the event they were made for.
    #[sea_orm(ignore)]
    pub title: String,
    #[sea_orm(ignore)]
    pub body: Option<String>,
    #[sea_orm(ignore)]
    pub data: Option<Json>,
    #[sea_orm(ignore)]
    pub action_url: Option<String>,
    pub count: i32,
    pub created_at: DateTimeUtc,
    pub occurred_at: DateTimeUtc,
    pub seen_at: Option<DateTimeUtc>,
    pub read_at: Option<DateTimeUtc>,
    pub archived_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
