//! `publishEvent` and Herald's own events: who may publish, what an event may carry, and the
//! hand-over to the [writer](super::writer), which records events and their fan-out
//! ([`super::fanout`]) in batches. Publishing is idempotent per account and key.

use entity::account;
use sea_orm::EntityTrait;

use super::fanout::Pending;
pub use super::fanout::{NewEvent, Published, Publisher};
use crate::{
    auth::{ApiKeyScope, Caller, Principal},
    crm::accounts,
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

/// `publishEvent`: API keys with PUBLISH_EVENTS, or signed-in company admins.
///
/// `own_account` is the caller's account row when the request has it already (signing in
/// reads it): an event for the caller's own account then costs no statement to find it.
pub async fn publish(app: &AppState, caller: &Caller, input: NewEvent, own_account: Option<account::Model>) -> ApiResult<Published> {
    let publisher = match &caller.principal {
        Principal::ApiKey { key_id, scopes } if scopes.contains(&ApiKeyScope::PublishEvents) => Publisher::ApiKey(*key_id),
        Principal::ApiKey { .. } => return Err(ApiError::forbidden("this API key lacks the PUBLISH_EVENTS scope")),
        Principal::User { .. } => Publisher::User(caller.require_company_admin_user()?),
    };
    // Not `find_visible`: publishing needs no READ scope, only PUBLISH_EVENTS.
    let account_id = input.account_id.unwrap_or(caller.account_id);
    let found = match own_account.filter(|a| a.id == account_id && a.id == caller.account_id) {
        Some(own) => Some(own),
        None if accounts::is_visible(&app.db, caller, account_id).await? => account::Entity::find_by_id(account_id).one(&app.db).await?,
        None => None,
    };
    let account = found.ok_or_else(|| ApiError::bad_input("input.accountId", "account not found"))?;
    record(app, publisher, &account, input).await
}

/// The largest `data` an event may carry, serialised.
pub const MAX_DATA_BYTES: usize = 16 * 1024;

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
    if let Some(data) = &input.data {
        if !data.is_object() {
            return Err(ApiError::bad_input("input.data", "a JSON object"));
        }
        // Every panel row shows it: an event's content is bounded like its body.
        if serde_json::to_vec(data).map_or(usize::MAX, |json| json.len()) > MAX_DATA_BYTES {
            return Err(ApiError::bad_input("input.data", format!("at most {} KiB of JSON", MAX_DATA_BYTES / 1024)));
        }
    }
    Ok(())
}

/// Records an event for `account` and fans it out, in one transaction shared with the other
/// events published at the same moment (see [`super::writer`]), then rings the panels.
pub async fn record(app: &AppState, publisher: Publisher, account: &account::Model, input: NewEvent) -> ApiResult<Published> {
    check(&input)?;
    let published = app.events().submit(Pending { publisher, account: account.clone(), input }).await?;
    super::announce(app, &published.notifications).await;
    Ok(published)
}
