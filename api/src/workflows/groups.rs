//! Groups of users (company admins, WRITE keys change them; anyone of the account reads them):
//! a workflow action's sender may be a group. Members are kept in the order given: "all its
//! members" sends as the first active one.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use entity::{user, user_group, user_group_member};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

/// A group and its members' ids, in order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    pub row: user_group::Model,
    pub members: Vec<Uuid>,
}

pub const MAX_MEMBERS: usize = 500;

pub async fn list(db: &impl ConnectionTrait, caller: &Caller) -> ApiResult<Vec<Group>> {
    caller.require_read()?;
    let rows = user_group::Entity::find().filter(user_group::Column::AccountId.eq(caller.account_id)).order_by_asc(user_group::Column::Name).all(db).await?;
    let members = user_group_member::Entity::find()
        .filter(user_group_member::Column::AccountId.eq(caller.account_id))
        .order_by_asc(user_group_member::Column::Position)
        .all(db)
        .await?;
    let mut by_group: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for m in members {
        by_group.entry(m.group_id).or_default().push(m.user_id);
    }
    Ok(rows.into_iter().map(|row| Group { members: by_group.remove(&row.id).unwrap_or_default(), row }).collect())
}

pub async fn find(db: &impl ConnectionTrait, account_id: Uuid, id: Uuid) -> ApiResult<Group> {
    let row = user_group::Entity::find_by_id(id).filter(user_group::Column::AccountId.eq(account_id)).one(db).await?.ok_or(ApiError::NotFound("group"))?;
    let members = members_of(db, id).await?;
    Ok(Group { row, members })
}

/// A group's members' ids, in order.
pub async fn members_of(db: &impl ConnectionTrait, group_id: Uuid) -> ApiResult<Vec<Uuid>> {
    Ok(user_group_member::Entity::find()
        .filter(user_group_member::Column::GroupId.eq(group_id))
        .order_by_asc(user_group_member::Column::Position)
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect())
}

/// Members checked: users of the account, each once (the first mention kept).
async fn checked_members(db: &impl ConnectionTrait, account_id: Uuid, ids: Vec<Uuid>) -> ApiResult<Vec<Uuid>> {
    let mut seen = HashSet::new();
    let ids: Vec<Uuid> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
    if ids.len() > MAX_MEMBERS {
        return Err(ApiError::bad_input("input.memberIds", format!("at most {MAX_MEMBERS} members")));
    }
    if ids.is_empty() {
        return Ok(ids);
    }
    let found: HashSet<Uuid> = user::Entity::find()
        .filter(user::Column::AccountId.eq(account_id))
        .filter(user::Column::Id.is_in(ids.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    if let Some(i) = ids.iter().position(|id| !found.contains(id)) {
        // By position: another tenant's user id is not echoed back.
        return Err(ApiError::bad_input("input.memberIds", format!("the user at position {} is not a user of this account", i + 1)));
    }
    Ok(ids)
}

async fn write_members(db: &impl ConnectionTrait, group: &user_group::Model, ids: &[Uuid]) -> ApiResult<()> {
    user_group_member::Entity::delete_many().filter(user_group_member::Column::GroupId.eq(group.id)).exec(db).await?;
    let rows: Vec<user_group_member::Model> = ids
        .iter()
        .enumerate()
        .map(|(i, user_id)| user_group_member::Model { group_id: group.id, user_id: *user_id, account_id: group.account_id, position: i as i32 })
        .collect();
    crate::db::insert_all::<user_group_member::Entity>(db, &rows).await?;
    Ok(())
}

fn unique_name(e: sea_orm::DbErr, name: &str) -> ApiError {
    match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ApiError::bad_input("input.name", format!("a group named {name:?} exists already")),
        _ => e.into(),
    }
}

pub async fn create(app: &AppState, caller: &Caller, name: &str, member_ids: Vec<Uuid>) -> ApiResult<Group> {
    caller.require_admin_or_write_key()?;
    let name = validate::name("input.name", name)?;
    let mut change = Change::begin(app, caller).await?;
    let members = checked_members(change.db(), caller.account_id, member_ids).await?;
    let now = Utc::now();
    let row = user_group::Model { id: Uuid::now_v7(), account_id: caller.account_id, name: name.clone(), version: 1, created_at: now, updated_at: now };
    let row = row.into_active_model().reset_all().insert(change.db()).await.map_err(|e| unique_name(e, &name))?;
    write_members(change.db(), &row, &members).await?;
    let group = Group { row, members };
    change.record(caller.account_id, "user_group.created", "UserGroup", group.row.id, None::<&()>, Some(&group)).await?;
    change.commit().await?;
    Ok(group)
}

pub async fn update(app: &AppState, caller: &Caller, id: Uuid, expected_version: i32, name: Option<&str>, member_ids: Option<Vec<Uuid>>) -> ApiResult<Group> {
    caller.require_admin_or_write_key()?;
    let name = name.map(|n| validate::name("input.name", n)).transpose()?;
    let mut change = Change::begin(app, caller).await?;
    let before = find(change.db(), caller.account_id, id).await?;
    if before.row.version != expected_version {
        return Err(ApiError::Conflict(format!("the group changed since version {expected_version} (now {}): reload and try again", before.row.version)));
    }
    let members = match member_ids {
        Some(ids) => checked_members(change.db(), caller.account_id, ids).await?,
        None => before.members.clone(),
    };
    let mut row = before.row.clone();
    if let Some(n) = &name {
        row.name = n.clone();
    }
    row.version += 1;
    row.updated_at = Utc::now();
    let row = user_group::Entity::update(row.into_active_model().reset_all())
        .filter(user_group::Column::Version.eq(expected_version))
        .exec(change.db())
        .await
        .map_err(|e| match e {
            sea_orm::DbErr::RecordNotUpdated => ApiError::Conflict("the group was changed meanwhile: reload and try again".into()),
            e => unique_name(e, name.as_deref().unwrap_or_default()),
        })?;
    write_members(change.db(), &row, &members).await?;
    let after = Group { row, members };
    change.record(caller.account_id, "user_group.updated", "UserGroup", id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}

/// Deletes a group; actions that sent as it are left without a sender (they become to-dos).
pub async fn delete(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Group> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let before = find(change.db(), caller.account_id, id).await?;
    user_group::Entity::delete_by_id(id).exec(change.db()).await?;
    change.record(caller.account_id, "user_group.deleted", "UserGroup", id, Some(&before), None::<&()>).await?;
    change.commit().await?;
    Ok(before)
}
