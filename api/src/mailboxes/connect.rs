//! Connecting a mailbox through its provider's sign-in (OAuth2 authorization code with PKCE).
//!
//! 1. [`start`] (the `connectMailbox` mutation): the caller may manage the mailbox, which
//!    signs in with a configured provider, and the return URL is on the allow-list. A random
//!    `state` and a PKCE verifier are made; Herald keeps the state's SHA-256 and the verifier
//!    sealed, bound to the user and the mailbox, for ten minutes. The answer is the provider's
//!    authorization URL, where the page sends the browser.
//! 2. [`finish`] (`GET /oauth/callback`): the state must name a flow that was started, is
//!    unused and unexpired (a forged or replayed state is refused before anything else, and a
//!    state is used at most once, even by two callbacks at the same moment). The user who
//!    started it must still be able to manage the mailbox, which must still be the same
//!    provider's. The code is exchanged with the verifier, the new access token is tested on
//!    the IMAP server (unless the flow said `skipTest`), and only then are the tokens sealed
//!    into the mailbox, in one audited change. The browser goes back to the return URL with
//!    `herald_mailbox` and `herald_status=connected`, or `herald_status=error` and
//!    `herald_error=<code>`.
//!
//! Nothing is stored from a callback that fails, and no token is ever answered, logged or put
//! in the audit log.

use chrono::{DateTime, Utc};
use entity::{
    mailbox::{self, AuthMethod, State},
    oauth_authorization, user,
};
use sea_orm::{sea_query::Expr, ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use uuid::Uuid;

use super::{find, require_manage, slot, snapshot, Connection, ACCESS_TOKEN_COLUMN, REFRESH_TOKEN_COLUMN};
use crate::{
    audit::Change,
    auth::{Caller, Principal},
    crypto::SecretSlot,
    error::{ApiError, ApiResult},
    imap::Credential,
    state::AppState,
};

pub const TABLE: &str = "oauth_authorization";
pub const VERIFIER_COLUMN: &str = "pkce_verifier";
/// How long a started sign-in may take.
pub const LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

fn verifier_slot(row: &oauth_authorization::Model) -> SecretSlot<'static> {
    SecretSlot { account_id: row.account_id, table: TABLE, row_id: row.id, column: VERIFIER_COLUMN }
}

/// Only the state's SHA-256 is kept, as for API keys' secrets.
fn state_hash(state: &str) -> String {
    crate::auth::hash_secret(state)
}

pub struct Started {
    /// Where to send the browser: the provider's sign-in page.
    pub authorization_url: String,
    pub expires_at: DateTime<Utc>,
}

/// Starts connecting `mailbox_id` through its provider.
pub async fn start(app: &AppState, caller: &Caller, mailbox_id: Uuid, return_url: &str, skip_test: bool) -> ApiResult<Started> {
    let Principal::User { user_id, .. } = &caller.principal else {
        return Err(ApiError::forbidden("the provider's sign-in needs a person at a browser: start it from a user's session"));
    };
    let row = find(&app.db, caller, mailbox_id).await?;
    require_manage(caller, row.user_id)?;
    let provider = match (row.auth_method, row.oauth_provider) {
        (AuthMethod::Oauth2, Some(p)) => p,
        _ => return Err(ApiError::bad_input("input.mailboxId", "this mailbox signs in with a password: switch it to a provider first")),
    };
    if !app.oauth.return_allowed(return_url) {
        return Err(ApiError::bad_input("input.returnUrl", "not one of the return URLs this server allows (HERALD_OAUTH_RETURN_URLS)"));
    }
    let authorization = app.oauth.authorize(provider, Connection::of(&row).login()).map_err(|e| ApiError::NotConfigured(e.to_string()))?;
    let now = Utc::now();
    let mut flow = oauth_authorization::Model {
        id: Uuid::now_v7(),
        account_id: row.account_id,
        mailbox_id: row.id,
        user_id: *user_id,
        provider,
        state_hash: state_hash(&authorization.state),
        pkce_verifier: String::new(),
        return_url: return_url.to_string(),
        skip_test,
        created_at: now,
        expires_at: now + LIFETIME,
        used_at: None,
    };
    flow.pkce_verifier = app.keyring.seal(verifier_slot(&flow), &authorization.pkce_verifier);
    let txn = crate::db::begin_write(&app.db).await?;
    // Flows of this mailbox that can no longer finish are of no use to anyone.
    oauth_authorization::Entity::delete_many()
        .filter(oauth_authorization::Column::MailboxId.eq(row.id))
        .filter(oauth_authorization::Column::ExpiresAt.lt(now).or(oauth_authorization::Column::UsedAt.is_not_null()))
        .exec(&txn)
        .await?;
    let expires_at = flow.expires_at;
    flow.into_active_model().reset_all().insert(&txn).await?;
    txn.commit().await?;
    Ok(Started { authorization_url: authorization.url, expires_at })
}

/// What the provider sent the browser back with.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    /// Set instead of `code` when the user declined or the provider refused (RFC 6749 §4.1.2.1).
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Why a callback did not connect the mailbox. `code()` is what the return URL and the error
/// page carry.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("the sign-in is unknown to this server (a forged or mistyped link)")]
    UnknownState,
    #[error("this sign-in was already used: start again from the mailbox's settings")]
    Replayed,
    #[error("the sign-in took too long: start again from the mailbox's settings")]
    Expired,
    #[error("the provider did not grant access: {0}")]
    Declined(String),
    #[error("you may no longer manage this mailbox, or it no longer signs in with this provider")]
    NotAllowed,
    #[error("the provider refused the sign-in's code: {0}")]
    Exchange(String),
    #[error("the provider gave no refresh token: allow offline access and try again")]
    NoRefreshToken,
    #[error("the mailbox's server refused the new sign-in: {0}")]
    ConnectionTest(String),
    #[error("{0}")]
    Internal(#[from] ApiError),
}

impl CallbackError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownState => "UNKNOWN_STATE",
            Self::Replayed => "STATE_ALREADY_USED",
            Self::Expired => "EXPIRED",
            Self::Declined(_) => "ACCESS_DENIED",
            Self::NotAllowed => "FORBIDDEN",
            Self::Exchange(_) => "CODE_REFUSED",
            Self::NoRefreshToken => "NO_REFRESH_TOKEN",
            Self::ConnectionTest(_) => "CONNECTION_TEST_FAILED",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

/// The callback's outcome: where to send the browser (when the state named a flow; a forged
/// or replayed state gets an error page, not a redirect) and what happened.
pub struct Finished {
    pub return_url: Option<String>,
    pub outcome: Result<Uuid, CallbackError>,
}

impl Finished {
    /// The return URL with the outcome in its query.
    pub fn redirect(&self) -> Option<String> {
        let mut url = reqwest::Url::parse(self.return_url.as_deref()?).ok()?;
        {
            let mut query = url.query_pairs_mut();
            match &self.outcome {
                Ok(mailbox) => {
                    query.append_pair("herald_mailbox", &mailbox.to_string());
                    query.append_pair("herald_status", "connected");
                }
                Err(e) => {
                    query.append_pair("herald_status", "error");
                    query.append_pair("herald_error", e.code());
                }
            }
        }
        Some(url.to_string())
    }
}

/// Handles the provider's callback.
pub async fn finish(app: &AppState, callback: Callback) -> Finished {
    let Some(state) = callback.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 512) else {
        return Finished { return_url: None, outcome: Err(CallbackError::UnknownState) };
    };
    let flow = match take(app, state).await {
        Ok(flow) => flow,
        Err(e) => return Finished { return_url: None, outcome: Err(e) },
    };
    let outcome = complete(app, &flow, &callback).await;
    if let Err(e) = &outcome {
        tracing::info!(mailbox = %flow.mailbox_id, code = e.code(), error = %e, "a mailbox sign-in callback was refused");
    }
    Finished { return_url: Some(flow.return_url.clone()), outcome: outcome.map(|_| flow.mailbox_id) }
}

/// Marks the state's flow used, exactly once.
async fn take(app: &AppState, state: &str) -> Result<oauth_authorization::Model, CallbackError> {
    let hash = state_hash(state);
    let flow = oauth_authorization::Entity::find().filter(oauth_authorization::Column::StateHash.eq(hash)).one(&app.db).await.map_err(ApiError::from)?;
    let flow = flow.ok_or(CallbackError::UnknownState)?;
    let taken = oauth_authorization::Entity::update_many()
        .col_expr(oauth_authorization::Column::UsedAt, Expr::value(Some(Utc::now())))
        .filter(oauth_authorization::Column::Id.eq(flow.id))
        .filter(oauth_authorization::Column::UsedAt.is_null())
        .exec(&app.db)
        .await
        .map_err(ApiError::from)?;
    if taken.rows_affected != 1 {
        return Err(CallbackError::Replayed);
    }
    Ok(flow)
}

async fn complete(app: &AppState, flow: &oauth_authorization::Model, callback: &Callback) -> Result<(), CallbackError> {
    if flow.expires_at < Utc::now() {
        return Err(CallbackError::Expired);
    }
    if let Some(error) = &callback.error {
        let said = callback.error_description.as_deref().map(|d| format!("{error} ({d})")).unwrap_or_else(|| error.clone());
        return Err(CallbackError::Declined(said.chars().take(300).collect()));
    }
    let code = callback.code.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| CallbackError::Exchange("no code was given".into()))?;
    let caller = still_allowed(app, flow).await?;
    let verifier = app.keyring.open(verifier_slot(flow), &flow.pkce_verifier).map_err(|e| ApiError::Internal(e.into()))?;
    let tokens = app.oauth.exchange(flow.provider, code, verifier.expose()).await.map_err(|e| CallbackError::Exchange(e.to_string()))?;
    let refresh_token = tokens.refresh_token.clone().ok_or(CallbackError::NoRefreshToken)?;
    let before = find(&app.db, &caller, flow.mailbox_id).await?;
    if !flow.skip_test {
        crate::imap::probe(&Connection::of(&before).server(Credential::AccessToken(tokens.access_token.clone())))
            .await
            .map_err(|f| CallbackError::ConnectionTest(f.message))?;
    }

    let mut change = Change::begin(app, &caller).await?;
    let now = Utc::now();
    let mut row = before.clone();
    row.oauth_refresh_token = Some(app.keyring.seal(slot(&row, REFRESH_TOKEN_COLUMN), &refresh_token));
    row.oauth_access_token = Some(app.keyring.seal(slot(&row, ACCESS_TOKEN_COLUMN), &tokens.access_token));
    row.oauth_expires_at = Some(tokens.expires_at);
    row.oauth_refresh_leased_until = None;
    row.oauth_connected_at = Some(now);
    row.state = if flow.skip_test { State::New } else { State::Connected };
    row.last_error = None;
    row.owner_notified_of_auth_failure = false;
    // Scans resume from where the folders stood: nothing is archived twice.
    row.next_scan_at = row.scan_active.then_some(now);
    row.version += 1;
    row.updated_at = now;
    let after = mailbox::Entity::update(row.into_active_model().reset_all())
        .filter(mailbox::Column::Version.eq(before.version))
        .filter(mailbox::Column::AuthMethod.eq(AuthMethod::Oauth2))
        .filter(mailbox::Column::OauthProvider.eq(flow.provider))
        .exec(change.db())
        .await
        .map_err(|e| match e {
            sea_orm::DbErr::RecordNotUpdated => CallbackError::NotAllowed,
            e => CallbackError::Internal(e.into()),
        })?;
    change.record(after.account_id, "mailbox.connected", "Mailbox", after.id, Some(&snapshot(&before)), Some(&snapshot(&after))).await?;
    change.commit().await?;
    if !flow.skip_test {
        super::announce_test(app, after.account_id, after.user_id, &after.email_address).await?;
    }
    Ok(())
}

/// The caller the flow's user is now, if they may still manage the mailbox.
async fn still_allowed(app: &AppState, flow: &oauth_authorization::Model) -> Result<Caller, CallbackError> {
    let person = user::Entity::find_by_id(flow.user_id).filter(user::Column::AccountId.eq(flow.account_id)).one(&app.db).await.map_err(ApiError::from)?;
    let person = person.filter(|u| u.active).ok_or(CallbackError::NotAllowed)?;
    let caller =
        Caller { account_id: flow.account_id, principal: Principal::User { user_id: person.id, role: person.role, impersonator: None }, expires_at: None };
    let row = find(&app.db, &caller, flow.mailbox_id).await.map_err(|_| CallbackError::NotAllowed)?;
    require_manage(&caller, row.user_id).map_err(|_| CallbackError::NotAllowed)?;
    if row.auth_method != AuthMethod::Oauth2 || row.oauth_provider != Some(flow.provider) {
        return Err(CallbackError::NotAllowed);
    }
    Ok(caller)
}
