//! Events in, notifications out: who sees an event in their panel, and who gets a text or an
//! email about it.
//!
//! For an event of type T in account A, about contact C (optional):
//! - each active user of A gets a panel notification when their System switch for T is on,
//!   or their AU switch is on and they are one of C's assigned users (judged now, when the
//!   event happens);
//! - each assigned user of C gets a text (Text AU, if they have a phone) and an email
//!   (Email AU), queued in the outbox in the same transaction; the worker delivers them;
//! - users of ancestor accounts who roll A up (and whose account has the roll-up add-on) get
//!   a panel notification when their own System switch for T is on.
//!
//! Publishing is idempotent per account and key: a second publish answers the first event and
//! notifies nobody again, even when both race (the unique index decides). Repeated events
//! about the same contact and type within the collapse window fold into the user's existing
//! unread row, bumping its count and moving it to the top.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{account, contact, event, notification, notification_roll_up, outbox_message, user};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    catalog::{info, NotificationType, TypeInfo},
    control::{type_code, AccountLayers, Switch},
};
use crate::{
    auth::{ApiKeyScope, Caller, Principal},
    crm::{accounts, accounts::AddOn, contacts},
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

/// Bus channel of one user's panel.
pub fn channel(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

pub struct NewEvent {
    pub kind: NotificationType,
    /// Defaults to the caller's account; a sub-account of it is allowed.
    pub account_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub title: String,
    pub body: Option<String>,
    pub data: Option<serde_json::Value>,
    pub action_url: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub idempotency_key: String,
}

/// Who publishes: a caller through the API, or Herald itself (the worker's reminders).
#[derive(Clone, Copy, Debug)]
pub enum Publisher {
    User(Uuid),
    ApiKey(Uuid),
    System,
}

pub struct Published {
    pub event: event::Model,
    /// True when the key had been published before: nothing was notified this time.
    pub duplicate: bool,
    pub notifications: Vec<notification::Model>,
    pub outbox: Vec<outbox_message::Model>,
}

/// `publishEvent`: API keys with PUBLISH_EVENTS, or signed-in company admins.
pub async fn publish(app: &AppState, caller: &Caller, input: NewEvent) -> ApiResult<Published> {
    let publisher = match &caller.principal {
        Principal::ApiKey { key_id, scopes } if scopes.contains(&ApiKeyScope::PublishEvents) => Publisher::ApiKey(*key_id),
        Principal::ApiKey { .. } => return Err(ApiError::forbidden("this API key lacks the PUBLISH_EVENTS scope")),
        Principal::User { .. } => Publisher::User(caller.require_company_admin_user()?),
    };
    // Not `find_visible`: publishing needs no READ scope, only PUBLISH_EVENTS.
    let account_id = input.account_id.unwrap_or(caller.account_id);
    let found = match accounts::is_visible(&app.db, caller, account_id).await? {
        true => account::Entity::find_by_id(account_id).one(&app.db).await?,
        false => None,
    };
    let account = found.ok_or_else(|| ApiError::bad_input("input.accountId", "account not found"))?;
    record(app, publisher, &account, input).await
}

fn check(input: &NewEvent) -> ApiResult<()> {
    validate::name("input.title", &input.title)?;
    let key = input.idempotency_key.trim();
    if key.is_empty() || key.len() > 200 {
        return Err(ApiError::bad_input("input.idempotencyKey", "give 1 to 200 characters that identify this event"));
    }
    if input.body.as_ref().is_some_and(|b| b.chars().count() > 10_000) {
        return Err(ApiError::bad_input("input.body", "at most 10,000 characters"));
    }
    if let Some(url) = &input.action_url {
        if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/')) || url.len() > 2_000 {
            return Err(ApiError::bad_input("input.actionUrl", "an http(s) URL or a path starting with /"));
        }
    }
    if input.data.as_ref().is_some_and(|d| !d.is_object()) {
        return Err(ApiError::bad_input("input.data", "a JSON object"));
    }
    Ok(())
}

/// Records an event for `account` and fans it out, in one transaction.
pub async fn record(app: &AppState, publisher: Publisher, account: &account::Model, input: NewEvent) -> ApiResult<Published> {
    check(&input)?;
    let key = input.idempotency_key.trim().to_string();
    if let Some(existing) = find_by_key(&app.db, account.id, &key).await? {
        return Ok(Published { event: existing, duplicate: true, notifications: Vec::new(), outbox: Vec::new() });
    }
    let type_info = info(input.kind);
    let txn = app.db.begin().await?;
    if let Some(contact_id) = input.contact_id {
        let belongs = contact::Entity::find_by_id(contact_id).filter(contact::Column::AccountId.eq(account.id)).one(&txn).await?;
        if belongs.is_none() {
            return Err(ApiError::bad_input("input.contactId", "not a contact of the event's account"));
        }
    }
    let now = Utc::now();
    let (published_by_user, published_by_key) = match publisher {
        Publisher::User(id) => (Some(id), None),
        Publisher::ApiKey(id) => (None, Some(id)),
        Publisher::System => (None, None),
    };
    let event = event::Model {
        id: Uuid::now_v7(),
        account_id: account.id,
        notification_type: type_code(input.kind),
        contact_id: input.contact_id,
        title: input.title.trim().to_string(),
        body: input.body,
        data: input.data,
        action_url: input.action_url,
        occurred_at: input.occurred_at.unwrap_or(now),
        idempotency_key: key.clone(),
        created_at: now,
        published_by_user,
        published_by_key,
    };
    let event = match event.into_active_model().reset_all().insert(&txn).await {
        Ok(event) => event,
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            // Another publish of the same key won the race: answer its event.
            drop(txn);
            let existing = find_by_key(&app.db, account.id, &key).await?.ok_or(ApiError::Conflict("event published concurrently".into()))?;
            return Ok(Published { event: existing, duplicate: true, notifications: Vec::new(), outbox: Vec::new() });
        }
        Err(e) => return Err(e.into()),
    };
    let (notifications, outbox) = fan_out(&txn, &event, type_info, app.config.notification_collapse_window).await?;
    txn.commit().await?;
    announce(app, &notifications).await;
    Ok(Published { event, duplicate: false, notifications, outbox })
}

async fn find_by_key(db: &impl ConnectionTrait, account_id: Uuid, key: &str) -> ApiResult<Option<event::Model>> {
    Ok(event::Entity::find()
        .filter(event::Column::AccountId.eq(account_id))
        .filter(event::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?)
}

/// Who gets what, written in the event's transaction.
async fn fan_out(
    txn: &DatabaseTransaction,
    event: &event::Model,
    type_info: &TypeInfo,
    collapse_window: std::time::Duration,
) -> ApiResult<(Vec<notification::Model>, Vec<outbox_message::Model>)> {
    let users = user::Entity::find()
        .filter(user::Column::AccountId.eq(event.account_id))
        .filter(user::Column::Active.eq(true))
        .all(txn)
        .await?;
    let layers = AccountLayers::load(txn, event.account_id).await?;
    let assigned: HashSet<Uuid> = match event.contact_id {
        Some(contact_id) if type_info.concerns_contact => contacts::assignee_ids(txn, contact_id).await?.into_iter().collect(),
        _ => HashSet::new(),
    };

    let mut panel: Vec<Uuid> = Vec::new();
    let mut outbox = Vec::new();
    for user in &users {
        let is_assigned = assigned.contains(&user.id);
        let system = layers.enabled(user.id, type_info, Switch::System);
        let au = is_assigned && layers.enabled(user.id, type_info, Switch::Au);
        if system || au {
            panel.push(user.id);
        }
        if is_assigned {
            if layers.enabled(user.id, type_info, Switch::TextAu) && user.phone.is_some() {
                outbox.push(outbox_row(event, user.id, "TEXT"));
            }
            if layers.enabled(user.id, type_info, Switch::EmailAu) {
                outbox.push(outbox_row(event, user.id, "EMAIL"));
            }
        }
    }
    panel.extend(roll_up_recipients(txn, event, type_info).await?);

    let notifications = write_panel(txn, event, &panel, collapse_window).await?;
    let outbox = if outbox.is_empty() {
        Vec::new()
    } else {
        let rows: Vec<outbox_message::Model> = outbox;
        outbox_message::Entity::insert_many(rows.iter().cloned().map(|r| r.into_active_model().reset_all())).exec(txn).await?;
        rows
    };
    Ok((notifications, outbox))
}

fn outbox_row(event: &event::Model, user_id: Uuid, channel: &str) -> outbox_message::Model {
    outbox_message::Model {
        id: Uuid::now_v7(),
        account_id: event.account_id,
        event_id: event.id,
        user_id,
        channel: channel.into(),
        status: "PENDING".into(),
        attempts: 0,
        last_error: None,
        created_at: event.created_at,
        next_attempt_at: event.created_at,
        leased_until: None,
        sent_at: None,
    }
}

/// A new, unread panel row for `user_id` about `event`.
fn panel_row(event: &event::Model, user_id: Uuid, position: Uuid) -> notification::Model {
    notification::Model {
        id: Uuid::now_v7(),
        position,
        user_id,
        account_id: event.account_id,
        event_id: event.id,
        notification_type: event.notification_type.clone(),
        contact_id: event.contact_id,
        title: event.title.clone(),
        body: event.body.clone(),
        data: event.data.clone(),
        action_url: event.action_url.clone(),
        count: 1,
        created_at: event.created_at,
        occurred_at: event.occurred_at,
        seen_at: None,
        read_at: None,
        archived_at: None,
    }
}

/// Users of ancestor accounts who roll this account up, with System on for the type in their
/// own settings, and whose account has the roll-up add-on.
async fn roll_up_recipients(txn: &DatabaseTransaction, event: &event::Model, type_info: &TypeInfo) -> ApiResult<Vec<Uuid>> {
    let rows = notification_roll_up::Entity::find().filter(notification_roll_up::Column::SubAccountId.eq(event.account_id)).all(txn).await?;
    let mut by_account: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for row in rows {
        by_account.entry(row.account_id).or_default().push(row.user_id);
    }
    let mut recipients = Vec::new();
    for (account_id, user_ids) in by_account {
        let Some(account) = account::Entity::find_by_id(account_id).one(txn).await? else { continue };
        if !accounts::add_ons(&account).contains(&AddOn::NotificationRollUp) {
            continue;
        }
        let active: HashSet<Uuid> = user::Entity::find()
            .filter(user::Column::Id.is_in(user_ids.clone()))
            .filter(user::Column::Active.eq(true))
            .all(txn)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        let layers = AccountLayers::load(txn, account_id).await?;
        recipients.extend(user_ids.into_iter().filter(|u| active.contains(u) && layers.enabled(*u, type_info, Switch::System)));
    }
    Ok(recipients)
}

/// Inserts panel rows, or folds the event into each user's recent unread row about the same
/// contact and type.
async fn write_panel(
    txn: &DatabaseTransaction,
    event: &event::Model,
    users: &[Uuid],
    collapse_window: std::time::Duration,
) -> ApiResult<Vec<notification::Model>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let mut recent: HashMap<Uuid, notification::Model> = HashMap::new();
    if let (Some(contact_id), false) = (event.contact_id, collapse_window.is_zero()) {
        let cutoff = event.occurred_at - chrono::Duration::from_std(collapse_window).unwrap_or(chrono::Duration::zero());
        let rows = notification::Entity::find()
            .filter(notification::Column::UserId.is_in(users.iter().copied()))
            .filter(notification::Column::NotificationType.eq(event.notification_type.clone()))
            .filter(notification::Column::ContactId.eq(contact_id))
            .filter(notification::Column::ReadAt.is_null())
            .filter(notification::Column::ArchivedAt.is_null())
            .filter(notification::Column::OccurredAt.gte(cutoff))
            .order_by_asc(notification::Column::Position)
            .all(txn)
            .await?;
        for row in rows {
            recent.insert(row.user_id, row); // the latest row per user wins
        }
    }
    // Rows folded by this event, in one statement: they share the event's new position
    // (positions are unique per user).
    let position = Uuid::now_v7();
    let folded: Vec<Uuid> = users.iter().filter_map(|u| recent.get(u).map(|r| r.id)).collect();
    let mut written = Vec::new();
    if !folded.is_empty() {
        notification::Entity::update_many()
            .col_expr(notification::Column::Count, Expr::col(notification::Column::Count).add(1))
            .col_expr(notification::Column::Position, Expr::value(position))
            .col_expr(notification::Column::EventId, Expr::value(event.id))
            .col_expr(notification::Column::Title, Expr::value(event.title.clone()))
            .col_expr(notification::Column::Body, Expr::value(event.body.clone()))
            .col_expr(notification::Column::Data, Expr::value(event.data.clone()))
            .col_expr(notification::Column::ActionUrl, Expr::value(event.action_url.clone()))
            .col_expr(notification::Column::OccurredAt, Expr::value(event.occurred_at))
            // New activity on the row: it is news again for the badge.
            .col_expr(notification::Column::SeenAt, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(notification::Column::Id.is_in(folded.iter().copied()))
            .exec(txn)
            .await?;
        for id in &folded {
            let existing = recent.values().find(|r| r.id == *id).expect("folded rows come from `recent`");
            written.push(notification::Model {
                count: existing.count + 1,
                position,
                event_id: event.id,
                title: event.title.clone(),
                body: event.body.clone(),
                data: event.data.clone(),
                action_url: event.action_url.clone(),
                occurred_at: event.occurred_at,
                seen_at: None,
                ..existing.clone()
            });
        }
    }
    let mut fresh = Vec::new();
    for &user_id in users {
        if recent.contains_key(&user_id) {
            continue;
        }
        fresh.push(panel_row(event, user_id, position));
    }
    if !fresh.is_empty() {
        notification::Entity::insert_many(fresh.iter().cloned().map(|r| r.into_active_model().reset_all())).exec(txn).await?;
        written.extend(fresh);
    }
    Ok(written)
}

/// An event about specific people (an activity's owner, the escalation's default persons),
/// recorded by Herald itself.
pub struct AddressedEvent {
    pub kind: NotificationType,
    pub account_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub title: String,
    pub body: Option<String>,
    pub data: Option<serde_json::Value>,
    pub action_url: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub idempotency_key: String,
    pub recipients: Vec<Uuid>,
}

pub struct RecordedBatch {
    pub events: Vec<event::Model>,
    pub notifications: Vec<notification::Model>,
    pub outbox: Vec<outbox_message::Model>,
}

/// Records addressed events in `txn`, in a few statements for the whole batch: the worker's
/// reminders and escalations, which come by the thousand when a busy hour falls due.
///
/// An addressed event reaches only its recipients, and among them the active users of the
/// event's account: a panel row when their System or AU switch for the type is on (the event
/// is theirs, as if they were assigned), a text when Text AU is on and they have a phone.
/// Emails are the caller's to queue ([`email_row`]): the activity settings decide them. It
/// does not roll up (a manager does not want every reminder of a sub-account) and does not
/// fold (two reminders are about two activities).
pub async fn record_addressed(txn: &DatabaseTransaction, batch: Vec<AddressedEvent>) -> ApiResult<RecordedBatch> {
    let now = Utc::now();
    let mut layers: HashMap<Uuid, AccountLayers> = HashMap::new();
    let mut active: HashMap<Uuid, HashMap<Uuid, user::Model>> = HashMap::new();
    for account_id in batch.iter().map(|e| e.account_id).collect::<HashSet<_>>() {
        layers.insert(account_id, AccountLayers::load(txn, account_id).await?);
    }
    let recipient_ids: HashSet<Uuid> = batch.iter().flat_map(|e| e.recipients.iter().copied()).collect();
    for chunk in recipient_ids.into_iter().collect::<Vec<_>>().chunks(500) {
        let users = user::Entity::find().filter(user::Column::Id.is_in(chunk.iter().copied())).filter(user::Column::Active.eq(true)).all(txn).await?;
        for u in users {
            active.entry(u.account_id).or_default().insert(u.id, u);
        }
    }
    let mut events = Vec::with_capacity(batch.len());
    let mut notifications = Vec::new();
    let mut outbox = Vec::new();
    for input in batch {
        let type_info = info(input.kind);
        let event = event::Model {
            id: Uuid::now_v7(),
            account_id: input.account_id,
            notification_type: type_code(input.kind),
            contact_id: input.contact_id,
            title: input.title,
            body: input.body,
            data: input.data,
            action_url: input.action_url,
            occurred_at: input.occurred_at,
            idempotency_key: input.idempotency_key,
            created_at: now,
            published_by_user: None,
            published_by_key: None,
        };
        let layers = &layers[&input.account_id];
        let users = active.get(&input.account_id);
        let mut seen = HashSet::new();
        for user_id in input.recipients.into_iter().filter(|u| seen.insert(*u)) {
            let Some(user) = users.and_then(|u| u.get(&user_id)) else { continue };
            if layers.enabled(user_id, type_info, Switch::System) || layers.enabled(user_id, type_info, Switch::Au) {
                notifications.push(panel_row(&event, user_id, Uuid::now_v7()));
            }
            if layers.enabled(user_id, type_info, Switch::TextAu) && user.phone.is_some() {
                outbox.push(outbox_row(&event, user_id, "TEXT"));
            }
        }
        events.push(event);
    }
    // Bounded statements: SQLite allows 32,766 parameters per statement.
    for chunk in events.chunks(1000) {
        event::Entity::insert_many(chunk.iter().cloned().map(|r| r.into_active_model().reset_all())).exec(txn).await?;
    }
    for chunk in notifications.chunks(1000) {
        notification::Entity::insert_many(chunk.iter().cloned().map(|r| r.into_active_model().reset_all())).exec(txn).await?;
    }
    insert_outbox(txn, &outbox).await?;
    Ok(RecordedBatch { events, notifications, outbox })
}

/// An email to `user_id` about `event`, for callers that decide emails themselves.
pub fn email_row(event: &event::Model, user_id: Uuid) -> outbox_message::Model {
    outbox_row(event, user_id, "EMAIL")
}

pub async fn insert_outbox(txn: &DatabaseTransaction, rows: &[outbox_message::Model]) -> ApiResult<()> {
    for chunk in rows.chunks(1000) {
        outbox_message::Entity::insert_many(chunk.iter().cloned().map(|r| r.into_active_model().reset_all())).exec(txn).await?;
    }
    Ok(())
}

/// Announces new panel rows on their users' channels (after the commit that wrote them).
pub async fn announce(app: &AppState, notifications: &[notification::Model]) {
    for n in notifications {
        let message = json!({"type": "notification", "id": n.id, "position": n.position}).to_string();
        if let Err(e) = app.bus.publish(&channel(n.user_id), &message).await {
            tracing::warn!(error = %e, "notification not announced on the bus");
        }
    }
}
