//! Partners' API keys: created by a company admin, shown once, stored hashed, revocable.

use chrono::Utc;
use entity::api_key;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::{generate_key, ApiKeyScope, Caller, API_KEY_PREFIX},
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

pub fn scopes(model: &api_key::Model) -> Vec<ApiKeyScope> {
    serde_json::from_value(model.scopes.clone()).unwrap_or_default()
}

/// Creates a key and returns it with its secret, which is not stored and never shown again.
pub async fn create(app: &AppState, caller: &Caller, name: &str, scopes: &[ApiKeyScope]) -> ApiResult<(api_key::Model, String)> {
    let admin = caller.require_company_admin_user()?;
    let name = validate::name("input.name", name)?;
    if scopes.is_empty() {
        return Err(ApiError::bad_input("input.scopes", "give the key at least one scope"));
    }
    let mut scopes = scopes.to_vec();
    scopes.sort_by_key(|s| *s as u8);
    scopes.dedup();
    let key = generate_key(API_KEY_PREFIX);
    let mut change = Change::begin(app, caller).await?;
    let model = api_key::Model {
        id: key.id,
        account_id: caller.account_id,
        name,
        secret_hash: key.secret_hash,
        scopes: serde_json::to_value(&scopes).map_err(|e| ApiError::Internal(e.into()))?,
        created_by: Some(admin),
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    }
    .into_active_model()
    .reset_all()
    .insert(change.db())
    .await?;
    change.record(model.account_id, "api_key.created", "ApiKey", model.id, None::<&()>, Some(&model)).await?;
    change.commit().await?;
    Ok((model, key.secret))
}

pub async fn revoke(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<api_key::Model> {
    caller.require_company_admin_user()?;
    let mut change = Change::begin(app, caller).await?;
    let before = api_key::Entity::find_by_id(id)
        .filter(api_key::Column::AccountId.eq(caller.account_id))
        .one(change.db())
        .await?
        .ok_or(ApiError::NotFound("API key"))?;
    if before.revoked_at.is_some() {
        change.commit().await?;
        return Ok(before);
    }
    let mut row = before.clone().into_active_model();
    row.revoked_at = Set(Some(Utc::now()));
    let after = row.update(change.db()).await?;
    change.record(after.account_id, "api_key.revoked", "ApiKey", after.id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}

/// The account's API keys, revoked ones only when asked (signed-in company admins).
pub fn list(caller: &Caller, include_revoked: bool) -> ApiResult<sea_orm::Select<api_key::Entity>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    caller.require_company_admin_user()?;
    let select = api_key::Entity::find().filter(api_key::Column::AccountId.eq(caller.account_id));
    Ok(if include_revoked { select } else { select.filter(api_key::Column::RevokedAt.is_null()) })
}
