//! The outbox as the account sees it ([`list`]), and messages held for their account.
//!
//! A message that cannot go out because of its account — the account is paused, or its
//! activity settings have no sender address or SMTP server (no SMS gateway, for a text) — is
//! `HELD`: the worker gives back the attempt its claim counted, no worker claims it again, and
//! it waits, its `lastError` saying why, until the change that lifts the reason releases it
//! ([`release_held`]): resuming the account, saving the activity settings or the SMS gateway.
//! It is then due at once. Retrying such a message until it failed used up its attempts in
//! hours and raised an Email Failed Error each time, so a resumed account never sent it.
//!
//! A reminder released after its activity's due time is not sent: as when it is planned, a
//! reminder whose due time has passed is dropped (its message is FAILED, saying so).

use chrono::{DateTime, Utc};
use entity::{account, event, outbox_message, outbox_message::Status};
use sea_orm::{sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{auth::Caller, error::ApiResult};

/// An addressed message to queue (`outbox_message`'s second shape): its content rendered
/// now, to its recipients, under a source key unique per account.
pub struct Addressed {
    pub channel: outbox_message::Channel,
    pub recipients: Vec<outbox_message::Recipient>,
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    pub source_key: String,
    /// Sent as this user (their own mailbox when it can send).
    pub sender_user_id: Option<Uuid>,
}

impl Addressed {
    /// The outbox row, due at `now`.
    pub fn row(self, account_id: Uuid, now: DateTime<Utc>) -> crate::error::ApiResult<outbox_message::Model> {
        Ok(outbox_message::Model {
            id: Uuid::now_v7(),
            account_id,
            event_id: None,
            user_id: None,
            channel: self.channel,
            status: Status::Pending,
            attempts: 0,
            last_error: None,
            created_at: now,
            next_attempt_at: now,
            leased_until: None,
            claim_id: None,
            sent_at: None,
            sent_as: None,
            sender_note: None,
            recipients: Some(serde_json::to_value(&self.recipients).map_err(|e| crate::error::ApiError::Internal(e.into()))?),
            subject: self.subject,
            body_text: Some(self.text),
            body_html: self.html,
            source_key: Some(self.source_key),
            sender_user_id: self.sender_user_id,
        })
    }
}

/// Which outbound messages a list shows.
#[derive(Debug, Default)]
pub struct MessageFilter {
    pub status: Option<outbox_message::Status>,
    pub channel: Option<outbox_message::Channel>,
    pub recipient_id: Option<Uuid>,
}

/// The texts and emails queued for the caller's account that pass `filter` (company admins,
/// API keys with READ).
pub fn list(caller: &Caller, filter: MessageFilter) -> ApiResult<sea_orm::Select<outbox_message::Entity>> {
    caller.require_admin_or_read_key()?;
    let mut select = outbox_message::Entity::find().filter(outbox_message::Column::AccountId.eq(caller.account_id));
    if let Some(status) = filter.status {
        select = select.filter(outbox_message::Column::Status.eq(status));
    }
    if let Some(channel) = filter.channel {
        select = select.filter(outbox_message::Column::Channel.eq(channel));
    }
    if let Some(recipient) = filter.recipient_id {
        // A message to that user, or an addressed email that names them: the recipients' JSON
        // as text holds `"userId":"…"` (SQLite keeps it compact; PostgreSQL writes `": "`).
        let text = || sea_orm::sea_query::Expr::col(outbox_message::Column::Recipients).cast_as(sea_orm::sea_query::Alias::new("TEXT"));
        let named =
            sea_orm::Condition::any().add(text().like(format!("%\"userId\":\"{recipient}\"%"))).add(text().like(format!("%\"userId\": \"{recipient}\"%")));
        select = select.filter(sea_orm::Condition::any().add(outbox_message::Column::UserId.eq(recipient)).add(named));
    }
    Ok(select)
}

/// Releases the held messages of `account_id` if nothing holds them any more (the account is
/// not paused; the worker holds them again at once if their settings still lack something).
/// Answers how many were released.
pub async fn release_held(db: &impl ConnectionTrait, account_id: Uuid, now: DateTime<Utc>) -> ApiResult<u64> {
    let paused = account::Entity::find_by_id(account_id).one(db).await?.is_none_or(|a| a.paused);
    if paused {
        return Ok(0);
    }
    let held = outbox_message::Entity::find()
        .filter(outbox_message::Column::AccountId.eq(account_id))
        .filter(outbox_message::Column::Status.eq(Status::Held))
        .all(db)
        .await?;
    if held.is_empty() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let events = event::Entity::find().filter(crate::db::id_in(backend, event::Column::Id, held.iter().filter_map(|m| m.event_id))).all(db).await?;
    let passed: std::collections::HashSet<Uuid> = events.iter().filter(|e| reminder_due_before(e, now)).map(|e| e.id).collect();
    let (dropped, released): (Vec<_>, Vec<_>) = held.iter().partition(|m| m.event_id.is_some_and(|e| passed.contains(&e)));
    if !dropped.is_empty() {
        outbox_message::Entity::update_many()
            .col_expr(outbox_message::Column::Status, Expr::value(Status::Failed))
            .col_expr(
                outbox_message::Column::LastError,
                Expr::value("not sent: the activity was due before the message could go out (a reminder whose due time has passed is dropped)"),
            )
            .filter(crate::db::id_in(backend, outbox_message::Column::Id, dropped.iter().map(|m| m.id)))
            .filter(outbox_message::Column::Status.eq(Status::Held))
            .exec(db)
            .await?;
    }
    let result = outbox_message::Entity::update_many()
        .col_expr(outbox_message::Column::Status, Expr::value(Status::Pending))
        .col_expr(outbox_message::Column::NextAttemptAt, Expr::value(now))
        .col_expr(outbox_message::Column::LastError, Expr::value(Option::<String>::None))
        .filter(crate::db::id_in(backend, outbox_message::Column::Id, released.iter().map(|m| m.id)))
        .filter(outbox_message::Column::Status.eq(Status::Held))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Whether `event` is an activity reminder whose activity was due by `now`.
fn reminder_due_before(event: &event::Model, now: DateTime<Utc>) -> bool {
    event.notification_type == entity::event::NotificationType::ActivityReminder
        && crate::activities::records::ActivityData::of(event).is_some_and(|activity| activity.due_at <= now)
}
