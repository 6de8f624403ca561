//! An account's integrations: added one per provider, turned on and off, their features and
//! health, and their settings tabs saved and reset (company admins, WRITE keys; READ keys and
//! company admins read them).
//!
//! Turning one on or off raises Integration Enabled or Integration Disabled for the account
//! (each user's panel by their switches) and queues the email to the report recipients, in
//! the transaction that made the change ([`super::reports::toggled`]).

use chrono::Utc;
use entity::integration::{self, Health, Provider};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use super::settings::{available_tabs, Tab, Tabs};
use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// The features an integration may have on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Features {
    pub sync: bool,
    pub filters: bool,
    pub communication: bool,
}

pub fn features(row: &integration::Model) -> Features {
    Features { sync: row.sync_enabled, filters: row.filters_enabled, communication: row.communication_enabled }
}

/// The tabs as stored (a row written by an older version gets the defaults).
pub fn tabs(row: &integration::Model) -> Tabs {
    serde_json::from_value(row.settings.clone()).unwrap_or_else(|_| Tabs::defaults(row.provider))
}

/// The tabs a front end offers for `row`, in order.
pub fn tabs_available(row: &integration::Model) -> Vec<Tab> {
    available_tabs(row.filters_enabled, row.communication_enabled)
}

pub async fn list(db: &impl ConnectionTrait, caller: &Caller) -> ApiResult<Vec<integration::Model>> {
    caller.require_admin_or_read_key()?;
    Ok(integration::Entity::find().filter(integration::Column::AccountId.eq(caller.account_id)).order_by_asc(integration::Column::Provider).all(db).await?)
}

pub async fn find(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<integration::Model> {
    caller.require_admin_or_read_key()?;
    integration::Entity::find_by_id(id).filter(integration::Column::AccountId.eq(caller.account_id)).one(db).await?.ok_or(ApiError::NotFound("integration"))
}

/// Adds the account's integration with `provider`, off, with the recommended settings.
pub async fn create(app: &AppState, caller: &Caller, provider: Provider, features: Features) -> ApiResult<integration::Model> {
    caller.require_admin_or_write_key()?;
    let now = Utc::now();
    let row = integration::Model {
        id: Uuid::now_v7(),
        account_id: caller.account_id,
        provider,
        enabled: false,
        sync_enabled: features.sync,
        filters_enabled: features.filters,
        communication_enabled: features.communication,
        health: Health::Disabled,
        last_sync_at: None,
        problems: serde_json::json!([]),
        settings: serde_json::to_value(Tabs::defaults(provider)).map_err(|e| ApiError::Internal(e.into()))?,
        version: 1,
        created_at: now,
        updated_at: now,
        updated_by: caller.user_id(),
    };
    let mut change = Change::begin(app, caller).await?;
    let row = match row.into_active_model().reset_all().insert(change.db()).await {
        Ok(r) => r,
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            return Err(ApiError::Conflict(format!("the account already has a {provider:?} integration")))
        }
        Err(e) => return Err(e.into()),
    };
    change.record(row.account_id, "integration.created", "Integration", row.id, None::<&()>, Some(&row)).await?;
    change.commit().await?;
    Ok(row)
}

/// Writes `after` over `before` if nobody changed it meanwhile, audited as `action`.
async fn save(change: &mut Change<'_>, before: &integration::Model, mut after: integration::Model, action: &str) -> ApiResult<integration::Model> {
    after.version = before.version + 1;
    after.updated_at = Utc::now();
    after.updated_by = change.caller().user_id();
    let saved = match integration::Entity::update(after.into_active_model().reset_all())
        .filter(integration::Column::Version.eq(before.version))
        .exec(change.db())
        .await
    {
        Ok(r) => r,
        Err(sea_orm::DbErr::RecordNotUpdated) => return Err(ApiError::Conflict("the integration was changed meanwhile: reload and try again".into())),
        Err(e) => return Err(e.into()),
    };
    change.record(saved.account_id, action, "Integration", saved.id, Some(before), Some(&saved)).await?;
    Ok(saved)
}

fn check_version(row: &integration::Model, expected: i32) -> ApiResult<()> {
    if row.version != expected {
        return Err(ApiError::Conflict(format!("the integration changed since version {expected} (now {}): reload and try again", row.version)));
    }
    Ok(())
}

/// Turns an integration on or off (and its features); on a change of on/off, raises
/// Integration Enabled or Integration Disabled for the account.
pub async fn set_enabled(
    app: &AppState,
    caller: &Caller,
    id: Uuid,
    expected_version: i32,
    enabled: bool,
    wanted: Option<Features>,
) -> ApiResult<integration::Model> {
    caller.require_admin_or_write_key()?;
    let before = find(&app.db, caller, id).await?;
    check_version(&before, expected_version)?;
    let mut after = before.clone();
    after.enabled = enabled;
    if let Some(f) = wanted {
        after.sync_enabled = f.sync;
        after.filters_enabled = f.filters;
        after.communication_enabled = f.communication;
    }
    // A feature turned off takes its tab's settings with it, so turning it on again starts
    // from the recommended ones.
    let mut tabs = tabs(&before);
    if !after.filters_enabled {
        tabs.reset(Tab::Filters);
    }
    if !after.communication_enabled {
        tabs.reset(Tab::Communication);
    }
    after.settings = serde_json::to_value(&tabs).map_err(|e| ApiError::Internal(e.into()))?;
    after.health = match (enabled, before.health) {
        (false, _) => Health::Disabled,
        (true, Health::Disabled) => Health::Connected,
        (true, h) => h,
    };
    let mut change = Change::begin(app, caller).await?;
    let action = if enabled { "integration.enabled" } else { "integration.disabled" };
    let saved = save(&mut change, &before, after, action).await?;
    let mut notifications = Vec::new();
    if before.enabled != saved.enabled {
        let by = who(change.db(), caller).await?;
        notifications = super::reports::toggled(change.db(), &saved, &by).await?.0;
    }
    change.commit().await?;
    crate::notifications::announce(app, &notifications).await;
    Ok(saved)
}

/// Who a change was made by, as a recipient reads it.
async fn who(db: &impl ConnectionTrait, caller: &Caller) -> ApiResult<String> {
    match &caller.principal {
        crate::auth::Principal::User { user_id, .. } => {
            Ok(entity::user::Entity::find_by_id(*user_id).one(db).await?.map(|u| u.name).unwrap_or_else(|| "a user".into()))
        }
        crate::auth::Principal::ApiKey { key_id, .. } => Ok(entity::api_key::Entity::find_by_id(*key_id)
            .one(db)
            .await?
            .map(|k| format!("the API key \"{}\"", k.name))
            .unwrap_or_else(|| "an API key".into())),
    }
}

/// Saves all the tabs at once, validated together.
pub async fn save_settings(app: &AppState, caller: &Caller, id: Uuid, expected_version: i32, wanted: Tabs) -> ApiResult<integration::Model> {
    caller.require_admin_or_write_key()?;
    let before = find(&app.db, caller, id).await?;
    check_version(&before, expected_version)?;
    wanted.check(before.provider, before.filters_enabled, before.communication_enabled)?;
    let mut after = before.clone();
    after.settings = serde_json::to_value(&wanted).map_err(|e| ApiError::Internal(e.into()))?;
    let mut change = Change::begin(app, caller).await?;
    let saved = save(&mut change, &before, after, "integration.settings_saved").await?;
    change.commit().await?;
    Ok(saved)
}

/// Restores one tab (SYNC, or FILTERS or COMMUNICATION while that feature is on) to its
/// recommended settings; answers the integration and the names of the settings that changed.
pub async fn reset_tab(app: &AppState, caller: &Caller, id: Uuid, expected_version: i32, tab: Tab) -> ApiResult<(integration::Model, Vec<&'static str>)> {
    caller.require_admin_or_write_key()?;
    let before = find(&app.db, caller, id).await?;
    check_version(&before, expected_version)?;
    let resettable = match tab {
        Tab::Sync => true,
        Tab::Filters => before.filters_enabled,
        Tab::Communication => before.communication_enabled,
        Tab::ContactPropertyMapping => false,
    };
    if !resettable {
        return Err(ApiError::bad_input("input.tab", format!("{tab:?} has no reset here: SYNC, and FILTERS or COMMUNICATION while that feature is on")));
    }
    let mut tabs = tabs(&before);
    let changed = tabs.reset(tab);
    let mut after = before.clone();
    after.settings = serde_json::to_value(&tabs).map_err(|e| ApiError::Internal(e.into()))?;
    let mut change = Change::begin(app, caller).await?;
    let saved = save(&mut change, &before, after, "integration.tab_reset").await?;
    change.commit().await?;
    Ok((saved, changed))
}
