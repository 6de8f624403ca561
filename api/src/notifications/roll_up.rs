//! Roll-up settings: a user of a parent account picks sub-accounts whose notifications also
//! appear in their panel — only of the types their own Control settings enable.
//!
//! Only with the account's Notification Roll-up add-on: without it the settings answer
//! FORBIDDEN with that reason (the tab does not exist for the account).

use std::collections::HashSet;

use entity::{account, notification_roll_up, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Serialize;
use uuid::Uuid;

use super::control::{bump_version, header, target_user, Scope};
use crate::{
    audit::Change,
    auth::Caller,
    crm::accounts::{self, AddOn},
    error::{ApiError, ApiResult},
    state::AppState,
};

/// The user whose roll-up is asked for, once the account is known to have the add-on.
pub async fn target(db: &impl ConnectionTrait, caller: &Caller, user_id: Option<Uuid>) -> ApiResult<(user::Model, account::Model)> {
    let user = target_user(db, caller, user_id).await?;
    let account = account::Entity::find_by_id(user.account_id).one(db).await?.ok_or(ApiError::NotFound("account"))?;
    if !accounts::add_ons(&account).contains(&AddOn::NotificationRollUp) {
        return Err(ApiError::forbidden("the Notification Roll-up add-on is not enabled for this account"));
    }
    Ok((user, account))
}

/// The sub-accounts the user rolls up, in the order of the account tree.
pub async fn selected(db: &impl ConnectionTrait, user_id: Uuid, candidates: &[account::Model]) -> ApiResult<Vec<account::Model>> {
    let chosen: HashSet<Uuid> = notification_roll_up::Entity::find()
        .filter(notification_roll_up::Column::UserId.eq(user_id))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.sub_account_id)
        .collect();
    Ok(candidates.iter().filter(|a| chosen.contains(&a.id)).cloned().collect())
}

#[derive(Serialize)]
struct Snapshot {
    version: i32,
    sub_account_ids: Vec<Uuid>,
}

/// Replaces the user's chosen sub-accounts.
pub async fn update(app: &AppState, caller: &Caller, user_id: Option<Uuid>, expected: Option<i32>, sub_account_ids: &[Uuid]) -> ApiResult<Uuid> {
    let mut change = Change::begin(app, caller).await?;
    let (user, account) = target(change.db(), caller, user_id).await?;
    let candidates = accounts::descendants(change.db(), account.id).await?;
    let allowed: HashSet<Uuid> = candidates.iter().map(|a| a.id).collect();
    if let Some(position) = sub_account_ids.iter().position(|id| !allowed.contains(id)) {
        return Err(ApiError::bad_input(format!("input.subAccountIds[{position}]"), "not a sub-account of the user's account"));
    }
    let before: Vec<Uuid> = selected(change.db(), user.id, &candidates).await?.iter().map(|a| a.id).collect();
    let old_version = header(change.db(), user.id, Scope::RollUp).await?.map_or(0, |h| h.version);
    notification_roll_up::Entity::delete_many().filter(notification_roll_up::Column::UserId.eq(user.id)).exec(change.db()).await?;
    let mut after: Vec<Uuid> = Vec::new();
    for id in sub_account_ids {
        if after.contains(id) {
            continue;
        }
        notification_roll_up::ActiveModel { user_id: Set(user.id), sub_account_id: Set(*id), account_id: Set(account.id) }.insert(change.db()).await?;
        after.push(*id);
    }
    let header = bump_version(&change, user.id, account.id, Scope::RollUp, expected).await?;
    change
        .record(
            account.id,
            "notification_roll_up.updated",
            "User",
            user.id,
            Some(&Snapshot { version: old_version, sub_account_ids: before }),
            Some(&Snapshot { version: header.version, sub_account_ids: after }),
        )
        .await?;
    change.commit().await?;
    Ok(user.id)
}
