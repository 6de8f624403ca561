//! A text or email to an assigned user, queued by the fan-out in the event's transaction and
//! delivered by the worker. Unique per event, user and channel: never queued twice. Activity
//! reminders and escalations are events too, so their emails are outbox rows like any other.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "outbox_message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub event_id: Uuid,
    pub user_id: Uuid,
    /// `EMAIL` or `TEXT`.
    pub channel: String,
    /// `PENDING` (waiting for `next_attempt_at`), `SENDING` (claimed by a worker until
    /// `leased_until`), `HELD` (waiting for its account: `api::outbox`), `SENT`, `FAILED`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub next_attempt_at: DateTimeUtc,
    /// While `SENDING`: when the claim lapses and another worker may take the message. The
    /// worker holding it renews it while it works.
    pub leased_until: Option<DateTimeUtc>,
    /// While `SENDING`: the claim that holds the message, a token of the worker's own. An
    /// outcome is written only where it is still the worker's.
    pub claim_id: Option<Uuid>,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
