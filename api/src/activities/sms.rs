//! An account's SMS gateway: a Twilio-compatible REST API (`POST
//! {baseUrl}/2010-04-01/Accounts/{accountSid}/Messages.json` with HTTP basic auth and a form
//! of `To`, `From`, `Body`). The auth token is write-only and sealed at rest.

use chrono::Utc;
use entity::sms_gateway;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::Caller,
    crypto::{Keyring, SecretSlot},
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

pub const TABLE: &str = "sms_gateway";
pub const TOKEN_COLUMN: &str = "auth_token";

/// A gateway with its token opened, for the worker. `Debug` hides the token.
#[derive(Clone)]
pub struct Gateway {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from_number: String,
    pub version: i32,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("base_url", &self.base_url).field("account_sid", &self.account_sid).field("from_number", &self.from_number).finish()
    }
}

impl Gateway {
    /// The Messages resource of the account.
    pub fn messages_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Messages.json", self.base_url.trim_end_matches('/'), self.account_sid)
    }
}

fn slot(row: &sms_gateway::Model) -> SecretSlot<'static> {
    SecretSlot { account_id: row.account_id, table: TABLE, row_id: row.id, column: TOKEN_COLUMN }
}

pub async fn load(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<Option<sms_gateway::Model>> {
    Ok(sms_gateway::Entity::find().filter(sms_gateway::Column::AccountId.eq(account_id)).one(db).await?)
}

pub fn open(row: &sms_gateway::Model, keyring: &Keyring) -> ApiResult<Gateway> {
    let token = keyring.open(slot(row), &row.auth_token).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Gateway {
        base_url: row.base_url.clone(),
        account_sid: row.account_sid.clone(),
        auth_token: token.expose().to_string(),
        from_number: row.from_number.clone(),
        version: row.version,
    })
}

pub async fn get(app: &AppState, caller: &Caller) -> ApiResult<Option<sms_gateway::Model>> {
    caller.require_admin_or_read_key()?;
    load(&app.db, caller.account_id).await
}

pub struct GatewayInput {
    pub expected_version: i32,
    pub base_url: String,
    pub account_sid: String,
    /// Required when no gateway is set yet; omitted keeps the stored token.
    pub auth_token: Option<String>,
    pub from_number: String,
}

/// The audit log's view: everything but the token.
#[derive(Serialize)]
struct Snapshot<'a> {
    base_url: &'a str,
    account_sid: &'a str,
    from_number: &'a str,
    version: i32,
}

fn snapshot(row: &sms_gateway::Model) -> Snapshot<'_> {
    Snapshot { base_url: &row.base_url, account_sid: &row.account_sid, from_number: &row.from_number, version: row.version }
}

pub async fn change(app: &AppState, caller: &Caller, input: GatewayInput) -> ApiResult<sms_gateway::Model> {
    caller.require_admin_or_write_key()?;
    let base_url = input.base_url.trim().trim_end_matches('/').to_string();
    let parsed = reqwest::Url::parse(&base_url).map_err(|e| ApiError::bad_input("input.baseUrl", format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
        return Err(ApiError::bad_input("input.baseUrl", "an http(s) URL such as https://api.twilio.com"));
    }
    let sid = input.account_sid.trim().to_string();
    if sid.is_empty() || sid.len() > 200 || !sid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ApiError::bad_input("input.accountSid", "1 to 200 letters, digits, dashes or underscores"));
    }
    let from = validate::phone("input.fromNumber", &input.from_number)?;
    if input.auth_token.as_ref().is_some_and(|t| t.is_empty() || t.len() > 1024) {
        return Err(ApiError::bad_input("input.authToken", "1 to 1024 characters"));
    }

    let mut change = Change::begin(app, caller).await?;
    let before = load(change.db(), caller.account_id).await?;
    let current = before.as_ref().map_or(0, |r| r.version);
    if current != input.expected_version {
        return Err(ApiError::Conflict(format!("the SMS gateway changed since version {} (now {current}): reload and try again", input.expected_version)));
    }
    let now = Utc::now();
    let stale = || ApiError::Conflict("the SMS gateway was changed by someone else meanwhile: reload and try again".into());
    let after = match before.clone() {
        None => {
            let Some(token) = &input.auth_token else {
                return Err(ApiError::bad_input("input.authToken", "give the gateway's auth token"));
            };
            let mut row = sms_gateway::Model {
                id: Uuid::now_v7(),
                account_id: caller.account_id,
                base_url,
                account_sid: sid,
                auth_token: String::new(),
                from_number: from,
                version: 1,
                updated_at: now,
            };
            row.auth_token = app.keyring.seal(slot(&row), token);
            match row.into_active_model().reset_all().insert(change.db()).await {
                Ok(row) => row,
                Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => return Err(stale()),
                Err(e) => return Err(e.into()),
            }
        }
        Some(mut row) => {
            row.base_url = base_url;
            row.account_sid = sid;
            row.from_number = from;
            if let Some(token) = &input.auth_token {
                row.auth_token = app.keyring.seal(slot(&row), token);
            }
            row.version += 1;
            row.updated_at = now;
            match sms_gateway::Entity::update(row.into_active_model().reset_all()).filter(sms_gateway::Column::Version.eq(current)).exec(change.db()).await {
                Ok(row) => row,
                Err(sea_orm::DbErr::RecordNotUpdated) => return Err(stale()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    // Texts held for want of a gateway go out through this one.
    crate::outbox::release_held(change.db(), caller.account_id, now).await?;
    change.record(caller.account_id, "sms_gateway.changed", "SmsGateway", after.id, before.as_ref().map(snapshot).as_ref(), Some(&snapshot(&after))).await?;
    change.commit().await?;
    Ok(after)
}

/// Removes the gateway: texts are then held until one is set again.
pub async fn remove(app: &AppState, caller: &Caller, expected_version: i32) -> ApiResult<Option<sms_gateway::Model>> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let before = load(change.db(), caller.account_id).await?;
    let current = before.as_ref().map_or(0, |r| r.version);
    if current != expected_version {
        return Err(ApiError::Conflict(format!("the SMS gateway changed since version {expected_version} (now {current}): reload and try again")));
    }
    let Some(before) = before else { return Ok(None) };
    sms_gateway::Entity::delete_by_id(before.id).exec(change.db()).await?;
    change.record(caller.account_id, "sms_gateway.removed", "SmsGateway", before.id, Some(&snapshot(&before)), None::<&()>).await?;
    change.commit().await?;
    Ok(Some(before))
}
