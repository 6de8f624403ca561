//! Control settings, changed: a user's switches (by the user, or an admin of the account) and
//! the account's defaults for its users (company admins), each saved as a whole against its
//! version and audited. How the switches resolve is [`super::switches`]'s.
//!
//! The AU switches apply only to types that concern a contact; setting them elsewhere is an
//! input error rather than a silent no-op.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use entity::{notification_default, notification_override, notification_setting};
use sea_orm::ActiveEnum;
use sea_orm::{sea_query::Expr, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde::Serialize;
use uuid::Uuid;

use super::catalog::{info, NotificationType};
use crate::{
    audit::Change,
    auth::Caller,
    crm::{accounts, users},
    error::{ApiError, ApiResult},
    state::AppState,
};

pub use super::switches::{applies, AccountLayers, Layers, SettingSource, Switch, SwitchState};

#[derive(Clone, Copy, Debug)]
pub struct SwitchChange {
    pub kind: NotificationType,
    pub switch: Switch,
    pub enabled: Option<bool>,
    /// Account defaults only.
    pub locked: Option<bool>,
}

fn check_changes(changes: &[SwitchChange], account_level: bool) -> ApiResult<()> {
    if changes.is_empty() {
        return Err(ApiError::bad_input("input.changes", "name at least one switch to change"));
    }
    let mut seen = HashSet::new();
    for (i, change) in changes.iter().enumerate() {
        let field = format!("input.changes[{i}]");
        if !applies(change.switch, info(change.kind)) {
            return Err(ApiError::bad_input(
                format!("{field}.switch"),
                format!("{} does not concern a contact, so {} does not apply", info(change.kind).label, change.switch.to_value()),
            ));
        }
        if !seen.insert((change.kind, change.switch)) {
            return Err(ApiError::bad_input(field, "the same switch is changed twice"));
        }
        match (account_level, change.locked, change.enabled) {
            (false, Some(_), _) => return Err(ApiError::bad_input(format!("{field}.locked"), "only an account's defaults can be locked")),
            (true, Some(true), None) => return Err(ApiError::bad_input(format!("{field}.locked"), "a locked default needs a value")),
            _ => {}
        }
    }
    Ok(())
}

/// Checks `expected` against the settings object's version and bumps it, atomically.
pub(crate) async fn bump_version(
    change: &Change<'_>,
    owner_id: Uuid,
    account_id: Uuid,
    scope: Scope,
    expected: Option<i32>,
) -> ApiResult<notification_setting::Model> {
    let db = change.db();
    let current = header(db, owner_id, scope).await?;
    let version = current.as_ref().map_or(0, |h| h.version);
    if let Some(expected) = expected {
        if expected != version {
            return Err(ApiError::Conflict(format!("the settings changed since version {expected} (now version {version}); reload and try again")));
        }
    }
    let now = Utc::now();
    let actor = change.caller().user_id();
    match current {
        None => {
            let header = notification_setting::Model { owner_id, scope, account_id, version: 1, updated_at: now, updated_by: actor };
            // A concurrent first save inserts the same key: one of them fails, as CONFLICT.
            header.into_active_model().reset_all().insert(db).await.map_err(|e| match e.sql_err() {
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                    ApiError::Conflict("the settings were changed concurrently; reload and try again".into())
                }
                _ => e.into(),
            })
        }
        Some(_) => {
            let done = notification_setting::Entity::update_many()
                .col_expr(notification_setting::Column::Version, Expr::col(notification_setting::Column::Version).add(1))
                .col_expr(notification_setting::Column::UpdatedAt, Expr::value(now))
                .col_expr(notification_setting::Column::UpdatedBy, Expr::value(actor))
                .filter(notification_setting::Column::OwnerId.eq(owner_id))
                .filter(notification_setting::Column::Scope.eq(scope))
                .filter(notification_setting::Column::Version.eq(version))
                .exec(db)
                .await?;
            if done.rows_affected == 0 {
                return Err(ApiError::Conflict("the settings were changed concurrently; reload and try again".into()));
            }
            header(db, owner_id, scope).await?.ok_or(ApiError::NotFound("settings"))
        }
    }
}

pub use entity::notification_setting::Scope;

pub async fn header(db: &impl ConnectionTrait, owner_id: Uuid, scope: Scope) -> ApiResult<Option<notification_setting::Model>> {
    Ok(notification_setting::Entity::find_by_id((owner_id, scope)).one(db).await?)
}

/// The user whose Control settings the caller may read or change: themselves (the user they
/// act as), or any user of the account for its admins. Another account's user is NOT_FOUND.
pub async fn target_user(db: &impl ConnectionTrait, caller: &Caller, user_id: Option<Uuid>) -> ApiResult<entity::user::Model> {
    let user_id = match user_id.or(caller.user_id()) {
        Some(id) => id,
        None => return Err(ApiError::bad_input("userId", "an API key must name the user")),
    };
    let user = users::find(db, caller, user_id).await?;
    caller.require_self_or_admin(user.id)?;
    Ok(user)
}

#[derive(Serialize)]
struct Snapshot {
    version: i32,
    values: Vec<(String, String, bool)>,
}

fn snapshot(version: i32, values: &HashMap<(NotificationType, Switch), bool>) -> Snapshot {
    let mut values: Vec<_> = values.iter().map(|(&(kind, switch), &on)| (kind.to_value(), switch.to_value(), on)).collect();
    values.sort();
    Snapshot { version, values }
}

/// Changes a user's switches (that user, or an admin of the account).
pub async fn update_user(app: &AppState, caller: &Caller, user_id: Option<Uuid>, expected: Option<i32>, changes: &[SwitchChange]) -> ApiResult<Uuid> {
    check_changes(changes, false)?;
    let mut change = Change::begin(app, caller).await?;
    let user = target_user(change.db(), caller, user_id).await?;
    let before = Layers::load(change.db(), user.account_id, Some(user.id)).await?;
    for (i, c) in changes.iter().enumerate() {
        if before.locked(c.kind, c.switch) {
            return Err(ApiError::Forbidden(format!("input.changes[{i}]: {} / {} is locked by the account's admins", info(c.kind).label, c.switch.to_value())));
        }
    }
    let old_version = header(change.db(), user.id, Scope::Control).await?.map_or(0, |h| h.version);
    for c in changes {
        notification_override::Entity::delete_many()
            .filter(notification_override::Column::UserId.eq(user.id))
            .filter(notification_override::Column::NotificationType.eq(c.kind))
            .filter(notification_override::Column::Switch.eq(c.switch))
            .exec(change.db())
            .await?;
        if let Some(enabled) = c.enabled {
            notification_override::ActiveModel {
                user_id: Set(user.id),
                notification_type: Set(c.kind),
                switch: Set(c.switch),
                account_id: Set(user.account_id),
                enabled: Set(enabled),
            }
            .insert(change.db())
            .await?;
        }
    }
    let header = bump_version(&change, user.id, user.account_id, Scope::Control, expected).await?;
    let after = Layers::load(change.db(), user.account_id, Some(user.id)).await?;
    change
        .record(
            user.account_id,
            "notification_control.updated",
            "User",
            user.id,
            Some(&snapshot(old_version, &before.user)),
            Some(&snapshot(header.version, &after.user)),
        )
        .await?;
    change.commit().await?;
    Ok(user.id)
}

/// Removes all of a user's overrides: they get the account's defaults again.
pub async fn reset_user(app: &AppState, caller: &Caller, user_id: Option<Uuid>, expected: Option<i32>) -> ApiResult<Uuid> {
    let mut change = Change::begin(app, caller).await?;
    let user = target_user(change.db(), caller, user_id).await?;
    let before = Layers::load(change.db(), user.account_id, Some(user.id)).await?;
    let old_version = header(change.db(), user.id, Scope::Control).await?.map_or(0, |h| h.version);
    notification_override::Entity::delete_many().filter(notification_override::Column::UserId.eq(user.id)).exec(change.db()).await?;
    let header = bump_version(&change, user.id, user.account_id, Scope::Control, expected).await?;
    change
        .record(
            user.account_id,
            "notification_control.reset",
            "User",
            user.id,
            Some(&snapshot(old_version, &before.user)),
            Some(&snapshot(header.version, &HashMap::new())),
        )
        .await?;
    change.commit().await?;
    Ok(user.id)
}

#[derive(Serialize)]
struct AccountSnapshot {
    version: i32,
    values: Vec<(String, String, bool, bool)>,
}

fn account_snapshot(version: i32, layers: &Layers) -> AccountSnapshot {
    let mut values: Vec<_> = layers.account.iter().map(|(&(kind, switch), &(on, locked))| (kind.to_value(), switch.to_value(), on, locked)).collect();
    values.sort();
    AccountSnapshot { version, values }
}

/// Changes the account's defaults for its users (company admins).
pub async fn update_account(app: &AppState, caller: &Caller, expected: Option<i32>, changes: &[SwitchChange]) -> ApiResult<Uuid> {
    caller.require_admin_or_write_key()?;
    check_changes(changes, true)?;
    let mut change = Change::begin(app, caller).await?;
    let account = accounts::find_visible(change.db(), caller, caller.account_id).await?;
    let before = Layers::load(change.db(), account.id, None).await?;
    let old_version = header(change.db(), account.id, Scope::AccountDefaults).await?.map_or(0, |h| h.version);
    for c in changes {
        notification_default::Entity::delete_many()
            .filter(notification_default::Column::AccountId.eq(account.id))
            .filter(notification_default::Column::NotificationType.eq(c.kind))
            .filter(notification_default::Column::Switch.eq(c.switch))
            .exec(change.db())
            .await?;
        if let Some(enabled) = c.enabled {
            notification_default::ActiveModel {
                account_id: Set(account.id),
                notification_type: Set(c.kind),
                switch: Set(c.switch),
                enabled: Set(enabled),
                locked: Set(c.locked.unwrap_or(false)),
            }
            .insert(change.db())
            .await?;
        }
    }
    let header = bump_version(&change, account.id, account.id, Scope::AccountDefaults, expected).await?;
    let after = Layers::load(change.db(), account.id, None).await?;
    change
        .record(
            account.id,
            "notification_defaults.updated",
            "Account",
            account.id,
            Some(&account_snapshot(old_version, &before)),
            Some(&account_snapshot(header.version, &after)),
        )
        .await?;
    change.commit().await?;
    Ok(account.id)
}

/// Removes the account's defaults and locks: everyone gets the built-in defaults again
/// (users' own overrides stay).
pub async fn reset_account(app: &AppState, caller: &Caller, expected: Option<i32>) -> ApiResult<Uuid> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let account = accounts::find_visible(change.db(), caller, caller.account_id).await?;
    let before = Layers::load(change.db(), account.id, None).await?;
    let old_version = header(change.db(), account.id, Scope::AccountDefaults).await?.map_or(0, |h| h.version);
    notification_default::Entity::delete_many().filter(notification_default::Column::AccountId.eq(account.id)).exec(change.db()).await?;
    let header = bump_version(&change, account.id, account.id, Scope::AccountDefaults, expected).await?;
    change
        .record(
            account.id,
            "notification_defaults.reset",
            "Account",
            account.id,
            Some(&account_snapshot(old_version, &before)),
            Some(&account_snapshot(header.version, &Layers::default())),
        )
        .await?;
    change.commit().await?;
    Ok(account.id)
}
