//! CRM activities, written by the CRM and partners and read by the settings UI. Every write
//! re-plans the activity's reminder and escalation (see [`super::plan`]).

use chrono::{DateTime, Utc};
use entity::{activity, contact, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, Select};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{plan, settings};
use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// The activity an ACTIVITY_REMINDER or LATE_ACTIVITY event is about, as the scheduler put
/// it in the event's data.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityData {
    pub activity_id: Uuid,
    pub kind: ActivityKind,
    pub title: String,
    pub due_at: DateTime<Utc>,
    pub owner_id: Uuid,
}

impl ActivityData {
    pub fn of(event: &entity::event::Model) -> Option<Self> {
        event.data.as_ref().and_then(|d| d.get("activity")).and_then(|a| serde_json::from_value(a.clone()).ok())
    }
}

pub use entity::activity::Kind as ActivityKind;

/// Which activities a list shows.
#[derive(Debug, Default)]
pub struct ActivityFilter {
    pub owner_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    /// True: only activities not completed; false: only completed ones.
    pub open: Option<bool>,
    pub external_id: Option<String>,
}

/// The caller's account's activities that pass `filter` (anyone who may read the account).
pub fn list(caller: &Caller, filter: ActivityFilter) -> ApiResult<Select<activity::Entity>> {
    caller.require_read()?;
    let mut select = activity::Entity::find().filter(activity::Column::AccountId.eq(caller.account_id));
    if let Some(owner) = filter.owner_id {
        select = select.filter(activity::Column::OwnerId.eq(owner));
    }
    if let Some(contact) = filter.contact_id {
        select = select.filter(activity::Column::ContactId.eq(contact));
    }
    match filter.open {
        Some(true) => select = select.filter(activity::Column::CompletedAt.is_null()),
        Some(false) => select = select.filter(activity::Column::CompletedAt.is_not_null()),
        None => {}
    }
    if let Some(external) = filter.external_id {
        select = select.filter(activity::Column::ExternalId.eq(external.trim()));
    }
    Ok(select)
}

impl crate::owned::Owned for activity::Entity {
    const NAME: &'static str = "activity";
    const OBJECT_TYPE: &'static str = "Activity";
    const ACTION: &'static str = "activity";
    fn account_column() -> activity::Column {
        activity::Column::AccountId
    }
}

pub async fn find(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<activity::Model> {
    crate::owned::find::<activity::Entity>(db, caller, id).await
}

pub struct NewActivity {
    pub external_id: Option<String>,
    pub kind: ActivityKind,
    pub title: String,
    pub owner_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A partial update; `None` leaves a field as it is, `Some(None)` clears an optional one.
#[derive(Default)]
pub struct ActivityPatch {
    pub expected_version: Option<i32>,
    pub kind: Option<ActivityKind>,
    pub title: Option<String>,
    pub owner_id: Option<Uuid>,
    pub contact_id: Option<Option<Uuid>>,
    pub due_at: Option<DateTime<Utc>>,
    pub completed_at: Option<Option<DateTime<Utc>>>,
}

async fn check_owner(db: &impl ConnectionTrait, account_id: Uuid, id: Uuid) -> ApiResult<()> {
    let found = user::Entity::find_by_id(id).filter(user::Column::AccountId.eq(account_id)).one(db).await?;
    match found {
        None => Err(ApiError::bad_input("input.ownerId", "not a user of this account")),
        Some(u) if !u.active => Err(ApiError::bad_input("input.ownerId", "this user is deactivated")),
        Some(_) => Ok(()),
    }
}

async fn check_contact(db: &impl ConnectionTrait, account_id: Uuid, id: Uuid) -> ApiResult<()> {
    let found = contact::Entity::find_by_id(id).filter(contact::Column::AccountId.eq(account_id)).one(db).await?;
    found.map(|_| ()).ok_or_else(|| ApiError::bad_input("input.contactId", "not a contact of this account"))
}

fn title(value: &str) -> ApiResult<String> {
    let t = value.trim();
    crate::validate::single_line("input.title", t)?;
    if t.is_empty() || t.chars().count() > 500 {
        return Err(ApiError::bad_input("input.title", "1 to 500 characters"));
    }
    Ok(t.to_string())
}

fn external_id(value: Option<&str>) -> ApiResult<Option<String>> {
    match value.map(str::trim) {
        None => Ok(None),
        Some(v) if v.is_empty() || v.len() > 200 => Err(ApiError::bad_input("input.externalId", "1 to 200 characters")),
        Some(v) if v.chars().any(char::is_control) => Err(ApiError::bad_input("input.externalId", "one line without control characters")),
        Some(v) => Ok(Some(v.to_string())),
    }
}

fn apply_plan(row: &mut activity::Model, intervals: plan::Intervals, now: DateTime<Utc>) {
    let p = plan::plan(plan::Facts::from(&*row), intervals, now, plan::Occasion::ActivityWritten);
    row.remind_at = p.remind_at;
    row.escalate_at = p.escalate_at;
}

pub async fn create(app: &AppState, caller: &Caller, input: NewActivity) -> ApiResult<activity::Model> {
    caller.require_admin_or_write_key()?;
    let title = title(&input.title)?;
    let external_id = external_id(input.external_id.as_deref())?;
    let mut change = Change::begin(app, caller).await?;
    check_owner(change.db(), caller.account_id, input.owner_id).await?;
    if let Some(contact_id) = input.contact_id {
        check_contact(change.db(), caller.account_id, contact_id).await?;
    }
    let intervals = settings::load(change.db(), caller.account_id).await?.intervals();
    let now = Utc::now();
    let mut row = activity::Model {
        id: Uuid::now_v7(),
        account_id: caller.account_id,
        external_id,
        kind: input.kind,
        title,
        owner_id: input.owner_id,
        contact_id: input.contact_id,
        due_at: input.due_at,
        completed_at: input.completed_at,
        remind_at: None,
        escalate_at: None,
        reminded_for: None,
        escalated_for: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    apply_plan(&mut row, intervals, now);
    let row = match row.into_active_model().reset_all().insert(change.db()).await {
        Ok(row) => row,
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            return Err(ApiError::Conflict("an activity with this externalId already exists".into()))
        }
        Err(e) => return Err(e.into()),
    };
    change.record(row.account_id, "activity.created", "Activity", row.id, None::<&()>, Some(&row)).await?;
    change.commit().await?;
    Ok(row)
}

pub async fn update(app: &AppState, caller: &Caller, id: Uuid, patch: ActivityPatch) -> ApiResult<activity::Model> {
    caller.require_admin_or_write_key()?;
    let new_title = patch.title.as_deref().map(title).transpose()?;
    let mut change = Change::begin(app, caller).await?;
    // Locked: the worker locks the activities it reminds (skipping locked ones), so the plan
    // written here is made from the reminder state as it really is.
    let before = activity::Entity::find_by_id(id)
        .filter(activity::Column::AccountId.eq(caller.account_id))
        .lock_exclusive()
        .one(change.db())
        .await?
        .ok_or(ApiError::NotFound("activity"))?;
    if let Some(expected) = patch.expected_version {
        if expected != before.version {
            return Err(ApiError::Conflict(format!("the activity changed since version {expected} (now {}): reload and try again", before.version)));
        }
    }
    let mut row = before.clone();
    if let Some(kind) = patch.kind {
        row.kind = kind;
    }
    if let Some(t) = new_title {
        row.title = t;
    }
    if let Some(owner) = patch.owner_id {
        check_owner(change.db(), caller.account_id, owner).await?;
        row.owner_id = owner;
    }
    if let Some(contact) = patch.contact_id {
        if let Some(cid) = contact {
            check_contact(change.db(), caller.account_id, cid).await?;
        }
        row.contact_id = contact;
    }
    if let Some(due) = patch.due_at {
        row.due_at = due;
    }
    if let Some(completed) = patch.completed_at {
        row.completed_at = completed;
    }
    let now = Utc::now();
    // Only a change of what the plan depends on re-plans: a new title must not bring back
    // an escalation that was skipped because the activity was entered overdue.
    if row.due_at != before.due_at || row.completed_at != before.completed_at {
        let intervals = settings::load(change.db(), caller.account_id).await?.intervals();
        apply_plan(&mut row, intervals, now);
    }
    row.version += 1;
    row.updated_at = now;
    let after = match activity::Entity::update(row.into_active_model().reset_all()).filter(activity::Column::Version.eq(before.version)).exec(change.db()).await
    {
        Ok(after) => after,
        Err(sea_orm::DbErr::RecordNotUpdated) => return Err(ApiError::Conflict("the activity was changed meanwhile: reload and try again".into())),
        Err(e) => return Err(e.into()),
    };
    change.record(after.account_id, "activity.updated", "Activity", after.id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}

pub async fn delete(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<activity::Model> {
    crate::owned::delete::<activity::Entity>(app, caller, id).await
}
