//! A text or email, delivered by the worker. Two shapes:
//! - **to one user** about an event (`user_id`, `event_id`): queued by the fan-out in the
//!   event's transaction and rendered when sent; unique per event, user and channel, so never
//!   queued twice. Activity reminders and escalations are events too.
//! - **addressed** (`recipients`, an email): To, Cc and Bcc lists of users or plain addresses,
//!   rendered once when queued (`subject`, `body_text`, `body_html`) and sent as one message;
//!   unique per account and `source_key` (what it reports: an integration's state change, a
//!   window of mapping errors), so never queued twice either. Integration reports use it;
//!   workflow communications to customers' contacts will.
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
    /// The event a message is about (every message to one user has one).
    pub event_id: Option<Uuid>,
    /// The user a message is for; `None` for an addressed email.
    pub user_id: Option<Uuid>,
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
    /// Addressed emails: To, Cc and Bcc (a JSON list of [`Recipient`]).
    pub recipients: Option<Json>,
    pub subject: Option<String>,
    pub body_text: Option<String>,
    pub body_html: Option<String>,
    /// Addressed emails: what the message is for, unique per account.
    pub source_key: Option<String>,
    /// Addressed emails sent as a user (workflow communications): through their main
    /// mailbox's outgoing side when it can send, else by the system with them in `Reply-To:`.
    pub sender_user_id: Option<Uuid>,
}

/// Where an addressed email's recipient stands in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "RecipientField"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Field {
    To,
    Cc,
    /// In the envelope only: never in a header anyone receives.
    Bcc,
}

/// One recipient of an addressed email: a user of the account (their address when queued) or
/// a plain address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub field: Field,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
}

impl Model {
    /// An addressed email's recipients (an unreadable list is none: the worker fails it).
    pub fn addressed(&self) -> Option<Vec<Recipient>> {
        self.recipients.as_ref().map(|r| serde_json::from_value(r.clone()).unwrap_or_default())
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
