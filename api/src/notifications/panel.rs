//! The panel's states, as in the best in-app feeds: unseen (not yet shown; the badge counts
//! these), seen, read, archived. Every change pushes the authoritative counts to all of the
//! user's open panels, so badges never drift from the list.
//!
//! "Log in as": an admin viewing someone's panel marks nothing seen for them (seeing is
//! implicit); what the admin changes explicitly (read, archive) is done and audited with the
//! admin as actor.

use chrono::Utc;
use entity::notification;
use sea_orm::{sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::fanout::channel;
use crate::{
    audit::Change,
    auth::{Caller, Principal},
    error::{ApiError, ApiResult},
    state::AppState,
};

#[derive(async_graphql::SimpleObject, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NotificationCounts {
    /// Not yet shown in the panel: the badge.
    pub unseen: u64,
    pub unread: u64,
    /// All rows not archived.
    pub total: u64,
}

pub async fn counts(db: &impl ConnectionTrait, user_id: Uuid) -> ApiResult<NotificationCounts> {
    let live = || notification::Entity::find().filter(notification::Column::UserId.eq(user_id)).filter(notification::Column::ArchivedAt.is_null());
    Ok(NotificationCounts {
        unseen: live().filter(notification::Column::SeenAt.is_null()).count(db).await?,
        unread: live().filter(notification::Column::ReadAt.is_null()).count(db).await?,
        total: live().count(db).await?,
    })
}

/// Which rows a state change applies to.
pub enum Selection {
    Ids(Vec<Uuid>),
    All,
    /// Archive: every read row.
    AllRead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum StateChange {
    Seen,
    Read,
    Unread,
    Archive,
    Unarchive,
}

/// Panels belong to users: an API key has none.
pub fn owner(caller: &Caller) -> ApiResult<Uuid> {
    caller.user_id().ok_or_else(|| ApiError::bad_input("viewer", "notifications belong to a signed-in user; an API key has no panel"))
}

/// Applies a state change to the caller's rows; answers the counts after it.
pub async fn change_state(app: &AppState, caller: &Caller, selection: Selection, change: StateChange) -> ApiResult<(u64, NotificationCounts)> {
    let user_id = owner(caller)?;
    let impersonating = matches!(caller.principal, Principal::User { impersonator_id: Some(_), .. });
    if change == StateChange::Seen && impersonating {
        // Viewing someone else's panel is not them seeing it.
        return Ok((0, counts(&app.db, user_id).await?));
    }
    if let Selection::Ids(ids) = &selection {
        if ids.is_empty() {
            return Err(ApiError::bad_input("input.ids", "name at least one notification, or use all"));
        }
    }
    let now = Utc::now();
    let select = |update: sea_orm::UpdateMany<notification::Entity>| {
        let update = update.filter(notification::Column::UserId.eq(user_id));
        match &selection {
            Selection::Ids(ids) => update.filter(notification::Column::Id.is_in(ids.iter().copied())),
            // "All" is the panel's list (archived rows are another list), except for unarchiving.
            Selection::All if change == StateChange::Unarchive => update,
            Selection::All => update.filter(notification::Column::ArchivedAt.is_null()),
            Selection::AllRead => update.filter(notification::Column::ReadAt.is_not_null()).filter(notification::Column::ArchivedAt.is_null()),
        }
    };
    let none = Option::<chrono::DateTime<Utc>>::None;
    let seen = || select(notification::Entity::update_many()).col_expr(notification::Column::SeenAt, Expr::value(now)).filter(notification::Column::SeenAt.is_null());
    let update = match change {
        StateChange::Seen => seen(),
        StateChange::Read => select(notification::Entity::update_many()).col_expr(notification::Column::ReadAt, Expr::value(now)).filter(notification::Column::ReadAt.is_null()),
        StateChange::Unread => select(notification::Entity::update_many()).col_expr(notification::Column::ReadAt, Expr::value(none)).filter(notification::Column::ReadAt.is_not_null()),
        StateChange::Archive => select(notification::Entity::update_many()).col_expr(notification::Column::ArchivedAt, Expr::value(now)).filter(notification::Column::ArchivedAt.is_null()),
        StateChange::Unarchive => select(notification::Entity::update_many()).col_expr(notification::Column::ArchivedAt, Expr::value(none)).filter(notification::Column::ArchivedAt.is_not_null()),
    };
    let txn = app.db.begin().await?;
    if let Selection::Ids(ids) = &selection {
        // Every id must be one of the caller's rows: another user's is NOT_FOUND, and
        // nothing is changed.
        let mine = notification::Entity::find()
            .filter(notification::Column::UserId.eq(user_id))
            .filter(notification::Column::Id.is_in(ids.iter().copied()))
            .count(&txn)
            .await?;
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        if mine != distinct.len() as u64 {
            return Err(ApiError::NotFound("notification"));
        }
    }
    if change == StateChange::Read {
        // Reading a row is also seeing it.
        seen().exec(&txn).await?;
    }
    let changed = update.exec(&txn).await?.rows_affected;
    txn.commit().await?;
    if impersonating && changed > 0 {
        let mut audit = Change::begin(app, caller).await?;
        let ids = match &selection {
            Selection::Ids(ids) => json!(ids),
            Selection::All => json!("all"),
            Selection::AllRead => json!("all read"),
        };
        audit
            .record(caller.account_id, "notifications.changed", "User", user_id, None::<&()>, Some(&json!({"change": change, "notifications": ids, "rows": changed})))
            .await?;
        audit.commit().await?;
    }
    let counts = counts(&app.db, user_id).await?;
    announce(app, user_id, &json!({"type": "state", "counts": counts})).await;
    Ok((changed, counts))
}

pub async fn announce(app: &AppState, user_id: Uuid, message: &serde_json::Value) {
    if let Err(e) = app.bus.publish(&channel(user_id), &message.to_string()).await {
        tracing::warn!(error = %e, "panel change not announced on the bus");
    }
}
