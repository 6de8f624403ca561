//! The panel's states, as in the best in-app feeds: unseen (not yet shown; the badge counts
//! these), seen, read, archived. Every change pushes the authoritative counts to all of the
//! user's open panels, so badges never drift from the list.
//!
//! "Log in as": an admin viewing someone's panel marks nothing seen for them (seeing is
//! implicit); what the admin changes explicitly (read, archive) is done and audited with the
//! admin as actor.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{event, notification};
use sea_orm::{sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
};

pub use super::counts::{counts, CountsReader, NotificationCounts};

/// Panel rows read from the database, with their content: their latest event's title, body,
/// data and action URL, which the rows do not keep a copy of (one read for all the rows).
pub async fn with_content(db: &impl ConnectionTrait, mut rows: Vec<notification::Model>) -> ApiResult<Vec<notification::Model>> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let ids: std::collections::HashSet<Uuid> = rows.iter().map(|r| r.event_id).collect();
    let events: std::collections::HashMap<Uuid, event::Model> = event::Entity::find()
        .filter(crate::db::id_in(db.get_database_backend(), event::Column::Id, ids))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    for row in &mut rows {
        let event = events.get(&row.event_id).ok_or_else(|| ApiError::Internal(anyhow::anyhow!("panel row {} names no event", row.id)))?;
        row.title.clone_from(&event.title);
        row.body.clone_from(&event.body);
        row.data.clone_from(&event.data);
        row.action_url.clone_from(&event.action_url);
    }
    Ok(rows)
}

/// Which rows a state change applies to.
pub enum Selection {
    Ids(Vec<Uuid>),
    All,
    /// Archive: every read row.
    AllRead,
}

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "NotificationStateChangeKind")]
pub enum StateChange {
    /// Shown in the panel (`seenAt` set).
    Seen,
    /// Read (`readAt` set; a row read unseen is seen at the same time).
    Read,
    /// Unread again (`readAt` cleared).
    Unread,
    Archive,
    Unarchive,
}

/// Rows named in one state announcement at most; past that the feed says `truncated` and a
/// panel re-reads its list.
const ANNOUNCED_ROWS: usize = 1000;

/// One change of state of some of a user's rows, as the live feed tells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChanged {
    pub change: StateChange,
    /// The time set (`None` when a time was cleared: unread, unarchive).
    pub at: Option<DateTime<Utc>>,
    /// The rows changed (all of them, unless `truncated`).
    pub ids: Vec<Uuid>,
    /// More rows changed than are named: re-read the list.
    pub truncated: bool,
}

/// What the bus carries on a user's channel. The database stays the record: a feed that
/// misses a message (lag, a Redis reconnection) catches up from it. Rows are shared, not
/// copied, between the publisher and the panels of its process (see [`crate::bus`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Announcement {
    /// New or bumped rows (the feed reads the counts after them).
    Rows { rows: Vec<Arc<notification::Model>> },
    /// A change of state, and the counts after it.
    State { state: StateChanged, counts: NotificationCounts },
    /// Anything else (a resync after lost messages): re-read from the database.
    #[serde(other)]
    Resync,
}

/// Bus channel of one user's panel.
pub fn channel(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

pub fn owner(caller: &Caller) -> ApiResult<Uuid> {
    caller.user_id().ok_or_else(|| ApiError::bad_input("viewer", "notifications belong to a signed-in user; an API key has no panel"))
}

/// Applies a state change to the caller's rows; answers the counts after it.
///
/// One rule while an admin is logged in as the user: nothing of the user's panel state
/// changes unless the request says `on_behalf` (then it changes, audited with the admin as
/// the actor). Looking at someone's panel is not them seeing or reading it.
pub async fn change_state(app: &AppState, caller: &Caller, selection: Selection, change: StateChange, on_behalf: bool) -> ApiResult<(u64, NotificationCounts)> {
    let user_id = owner(caller)?;
    let impersonating = caller.is_impersonated();
    if impersonating && !on_behalf {
        return Ok((0, counts(&app.db, user_id).await?));
    }
    if let Selection::Ids(ids) = &selection {
        if ids.is_empty() {
            return Err(ApiError::bad_input("input.ids", "name at least one notification, or use all"));
        }
    }
    let now = Utc::now();
    let at = match change {
        StateChange::Unread | StateChange::Unarchive => None,
        _ => Some(now),
    };
    let column = match change {
        StateChange::Seen => notification::Column::SeenAt,
        StateChange::Read | StateChange::Unread => notification::Column::ReadAt,
        StateChange::Archive | StateChange::Unarchive => notification::Column::ArchivedAt,
    };

    // The change and, when an admin acts as the user, its audit record: one transaction.
    let mut audit = Change::begin(app, caller).await?;
    let txn = audit.db();
    if let Selection::Ids(ids) = &selection {
        // Every id must be one of the caller's rows: another user's is NOT_FOUND, and
        // nothing is changed.
        let mine = notification::Entity::find()
            .filter(notification::Column::UserId.eq(user_id))
            .filter(notification::Column::Id.is_in(ids.iter().copied()))
            .count(txn)
            .await?;
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        if mine != distinct.len() as u64 {
            return Err(ApiError::NotFound("notification"));
        }
    }
    // Name the rows first, so that the feed can say which changed; a change of more rows than
    // a feed names applies to the selection as a whole.
    let ids: Vec<Uuid> = target(notification::Entity::find(), user_id, &selection, change)
        .select_only()
        .column(notification::Column::Id)
        .limit(ANNOUNCED_ROWS as u64 + 1)
        .into_tuple()
        .all(txn)
        .await?;
    let truncated = ids.len() > ANNOUNCED_ROWS;
    let restrict = |update: sea_orm::UpdateMany<notification::Entity>| match truncated {
        false => update.filter(notification::Column::Id.is_in(ids.iter().copied())),
        true => target(update, user_id, &selection, change),
    };
    if change == StateChange::Read {
        // Reading a row is also seeing it.
        restrict(notification::Entity::update_many())
            .col_expr(notification::Column::SeenAt, Expr::value(now))
            .filter(notification::Column::SeenAt.is_null())
            .exec(txn)
            .await?;
    }
    let changed =
        if ids.is_empty() { 0 } else { restrict(notification::Entity::update_many()).col_expr(column, Expr::value(at)).exec(txn).await?.rows_affected };
    if impersonating && changed > 0 {
        let ids = match &selection {
            Selection::Ids(ids) => json!(ids),
            Selection::All => json!("all"),
            Selection::AllRead => json!("all read"),
        };
        audit
            .record(
                caller.account_id,
                "notifications.changed",
                "User",
                user_id,
                None::<&()>,
                Some(&json!({"change": change, "notifications": ids, "rows": changed})),
            )
            .await?;
    }
    audit.commit().await?;
    let counts = counts(&app.db, user_id).await?;
    if changed > 0 {
        let state = StateChanged { change, at, ids: if truncated { Vec::new() } else { ids }, truncated };
        announce(app, user_id, Announcement::State { state, counts }).await;
    }
    Ok((changed, counts))
}

/// The rows a change applies to: the selection, less those already in the new state.
fn target<Q: QueryFilter>(query: Q, user_id: Uuid, selection: &Selection, change: StateChange) -> Q {
    let query = query.filter(notification::Column::UserId.eq(user_id));
    let query = match selection {
        Selection::Ids(ids) => query.filter(notification::Column::Id.is_in(ids.iter().copied())),
        // "All" is the panel's list (archived rows are another list), except for unarchiving.
        Selection::All if change == StateChange::Unarchive => query,
        Selection::All => query.filter(notification::Column::ArchivedAt.is_null()),
        Selection::AllRead => query.filter(notification::Column::ReadAt.is_not_null()).filter(notification::Column::ArchivedAt.is_null()),
    };
    match change {
        StateChange::Seen => query.filter(notification::Column::SeenAt.is_null()),
        StateChange::Read => query.filter(notification::Column::ReadAt.is_null()),
        StateChange::Unread => query.filter(notification::Column::ReadAt.is_not_null()),
        StateChange::Archive => query.filter(notification::Column::ArchivedAt.is_null()),
        StateChange::Unarchive => query.filter(notification::Column::ArchivedAt.is_not_null()),
    }
}

pub async fn announce(app: &AppState, user_id: Uuid, message: Announcement) {
    if let Err(e) = app.bus.publish_values(vec![(channel(user_id), message)]) {
        tracing::warn!(error = %e, "panel change not announced on the bus");
    }
}

/// Which of a panel's rows a list shows.
#[derive(Debug, Default)]
pub struct PanelFilter {
    pub unread: Option<bool>,
    pub unseen: Option<bool>,
    /// The archived rows instead of the others.
    pub archived: bool,
    pub types: Option<Vec<entity::notification::NotificationType>>,
    pub account_ids: Option<Vec<Uuid>>,
    pub contact_id: Option<Uuid>,
}

/// The rows of `user_id`'s panel that pass `filter` ([`owner`] says whose panel a caller sees).
pub fn list(user_id: Uuid, filter: PanelFilter) -> sea_orm::Select<notification::Entity> {
    let mut select = notification::Entity::find().filter(notification::Column::UserId.eq(user_id));
    select =
        if filter.archived { select.filter(notification::Column::ArchivedAt.is_not_null()) } else { select.filter(notification::Column::ArchivedAt.is_null()) };
    if let Some(unread) = filter.unread {
        select = select.filter(if unread { notification::Column::ReadAt.is_null() } else { notification::Column::ReadAt.is_not_null() });
    }
    if let Some(unseen) = filter.unseen {
        select = select.filter(if unseen { notification::Column::SeenAt.is_null() } else { notification::Column::SeenAt.is_not_null() });
    }
    if let Some(types) = filter.types {
        select = select.filter(notification::Column::NotificationType.is_in(types));
    }
    if let Some(ids) = filter.account_ids {
        select = select.filter(notification::Column::AccountId.is_in(ids));
    }
    if let Some(contact) = filter.contact_id {
        select = select.filter(notification::Column::ContactId.eq(contact));
    }
    select
}
