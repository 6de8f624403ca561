//! A text or email to an assigned user, queued by the fan-out in the event's transaction and
//! delivered by the worker. Unique per event, user and channel: never queued twice. Activity
//! reminders and escalations are events too, so their emails are outbox rows like any other.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// How a message reaches its recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "OutboundChannel"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Channel {
    #[sea_orm(string_value = "EMAIL")]
    Email,
    #[sea_orm(string_value = "TEXT")]
    Text,
}

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "OutboundStatus"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Status {
    /// Waiting for its next attempt.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Waiting for its account: paused, or without a sender address or SMTP server (an SMS
    /// gateway, for a text). It goes out when that changes, without using an attempt.
    #[sea_orm(string_value = "HELD")]
    Held,
    /// Taken by a worker right now.
    #[sea_orm(string_value = "SENDING")]
    Sending,
    #[sea_orm(string_value = "SENT")]
    Sent,
    /// Given up: a permanent refusal, or too many attempts.
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

/// Whose server an email went out through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "OutboundSender"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum SentAs {
    /// The account's system sender, through the account's SMTP server.
    #[sea_orm(string_value = "SYSTEM")]
    System,
    /// A user's own mailbox, through its outgoing side, `From:` its address.
    #[sea_orm(string_value = "USER_MAILBOX")]
    UserMailbox,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "outbox_message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub event_id: Uuid,
    pub user_id: Uuid,
    pub channel: Channel,
    /// `Pending` waits for `next_attempt_at`, `Sending` is claimed by a worker until
    /// `leased_until`, `Held` waits for its account (`api::outbox`).
    pub status: Status,
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
    /// Emails: whose server the last attempt went through, and why that one when the
    /// settings asked for another (the owner's mailbox has no outgoing side, say).
    pub sent_as: Option<SentAs>,
    pub sender_note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
