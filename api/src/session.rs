//! "Log in as": a company admin acts as a user of their account or of a sub-account.
//!
//! The token returned is the target user's for every query, mutation and subscription (their
//! notifications, their settings); the admin travels along only in the token's `act` claim,
//! which the audit log records as the real actor. Impersonation does not chain: only an admin
//! acting as themselves can start one.
//!
//! The platform operator enters a tenant the same way ([`operator_log_in`]): as one of its
//! users, recorded in the tenant's audit log with the operator's key as the actor and in the
//! platform's own log.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::{account_is_within, Caller, Impersonator},
    error::{ApiError, ApiResult},
    platform::Operator,
    state::AppState,
};

pub struct Impersonation {
    pub token: String,
    pub user: user::Model,
    pub expires_at: DateTime<Utc>,
}

/// The gold "login" button of seed 002: a parent account's company admin logs in to one of its
/// sub-accounts as that account, that is as its primary company admin
/// ([`crate::crm::accounts::primary_admin`]), under the same rules as [`impersonate`].
pub async fn log_in_to_account(app: &AppState, caller: &Caller, account_id: Uuid) -> ApiResult<Impersonation> {
    caller.require_company_admin_user()?;
    if account_id == caller.account_id {
        return Err(ApiError::bad_input("input.accountId", "that is your own account"));
    }
    let account = crate::crm::accounts::find_visible(&app.db, caller, account_id).await?;
    let Some(admin) = crate::crm::accounts::primary_admin(&app.db, &account).await? else {
        return Err(ApiError::bad_input("input.accountId", "the account has no active company admin to log in as"));
    };
    impersonate(app, caller, admin.id).await
}

pub async fn impersonate(app: &AppState, caller: &Caller, user_id: Uuid) -> ApiResult<Impersonation> {
    let admin_id = caller.require_company_admin_user()?;
    if caller.is_impersonated() {
        return Err(ApiError::forbidden("already logged in as another user; return to your own session first"));
    }
    if user_id == admin_id {
        return Err(ApiError::bad_input("input.userId", "that is you"));
    }
    let mut change = Change::begin(app, caller).await?;
    let target = user::Entity::find_by_id(user_id).one(change.db()).await?.ok_or(ApiError::NotFound("user"))?;
    if !account_is_within(change.db(), target.account_id, caller.account_id).await? {
        return Err(ApiError::NotFound("user"));
    }
    if !target.active {
        return Err(ApiError::bad_input("input.userId", "this user is deactivated"));
    }
    // Recorded in the admin's account and, for a sub-account user, in theirs too.
    let mut accounts = vec![caller.account_id];
    if target.account_id != caller.account_id {
        accounts.push(target.account_id);
    }
    for account_id in accounts {
        change.record(account_id, "session.logged_in_as", "User", target.id, None::<&()>, Some(&target)).await?;
    }
    change.commit().await?;
    let ttl = app.config.token_ttl;
    Ok(Impersonation {
        token: app.tokens.mint(target.id, Some(Impersonator::Admin(admin_id)), ttl),
        expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1)),
        user: target,
    })
}

/// The operator logs in to an account (a tenant or a sub-account) as one of its users: the
/// one named, or else the account's primary company admin. The user must be active; the
/// token is theirs, with the operator's key as the actor, and dies with the key.
pub async fn operator_log_in(app: &AppState, operator: &Operator, account_id: Uuid, user_id: Option<Uuid>) -> ApiResult<Impersonation> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let account = entity::account::Entity::find_by_id(account_id).one(&app.db).await?.ok_or(ApiError::NotFound("account"))?;
    let target = match user_id {
        Some(id) => user::Entity::find_by_id(id).filter(user::Column::AccountId.eq(account.id)).one(&app.db).await?.ok_or(ApiError::NotFound("user"))?,
        None => crate::crm::accounts::primary_admin(&app.db, &account)
            .await?
            .ok_or_else(|| ApiError::bad_input("input.userId", "the account has no active company admin: name a user"))?,
    };
    if !target.active {
        return Err(ApiError::bad_input("input.userId", "this user is deactivated"));
    }
    let acting = Caller {
        account_id: target.account_id,
        principal: crate::auth::Principal::User { user_id: target.id, role: target.role, impersonator: Some(Impersonator::Operator(operator.0.id)) },
        expires_at: None,
    };
    let mut change = Change::begin(app, &acting).await?;
    change.record(target.account_id, "session.logged_in_as", "User", target.id, None::<&()>, Some(&target)).await?;
    let logged = serde_json::json!({ "account_id": account.id, "user_id": target.id });
    crate::platform::record(change.db(), operator, "session.logged_in_as", "User", target.id, logged).await?;
    change.commit().await?;
    let ttl = app.config.token_ttl;
    Ok(Impersonation {
        token: app.tokens.mint(target.id, Some(Impersonator::Operator(operator.0.id)), ttl),
        expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1)),
        user: target,
    })
}
