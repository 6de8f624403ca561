//! An OAuth2 mailbox's grant: a fresh access token for every sign-in to its servers, refreshed
//! ahead of expiry, one refresh per mailbox at a time across every process.
//!
//! - A token valid for less than [`MARGIN`] is refreshed before use; the worker refreshes
//!   those expiring within [`AHEAD`] on its own ([`refresh_due`]), so a scan or a send seldom
//!   waits for the provider.
//! - A refresh takes the mailbox's refresh lease first (`oauth_refresh_leased_until`). Who
//!   finds it taken waits for the other refresh and reads its token: some providers rotate
//!   refresh tokens, and two refreshes at once would leave one of them holding a token the
//!   provider has already replaced.
//! - Writes are guarded by `oauth_connected_at`, which names the grant: an answer for a grant
//!   that a new sign-in has replaced meanwhile changes nothing.
//! - A refresh the provider refuses for good (`invalid_grant`: revoked, expired, password
//!   changed) puts the mailbox in NEEDS_RECONNECTION: scans stop, and its owner is told once
//!   per grant (panel, and an email when their Email AU switch for System Error Information
//!   is on). Signing in again ([`super::connect`]) resumes the scans where they stopped.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::mailbox::{self, State};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::{slot, ACCESS_TOKEN_COLUMN, REFRESH_TOKEN_COLUMN};
use crate::{
    error::ApiError,
    notifications::{
        catalog::NotificationType,
        fanout::{self, AddressedEvent},
    },
    oauth::OAuthError,
    state::AppState,
};

/// A token closer than this to its expiry is refreshed before it is used.
pub const MARGIN: Duration = Duration::from_secs(60);
/// The worker refreshes tokens that expire within this.
pub const AHEAD: Duration = Duration::from_secs(300);
/// How long a refresh may hold the mailbox before another process may try.
const LEASE: Duration = Duration::from_secs(30);
/// How long a sign-in waits for another process's refresh of the same grant.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("the mailbox is not connected to its provider: its owner must sign in")]
    NotConnected,
    #[error("the provider no longer accepts the mailbox's sign-in ({0}): its owner must sign in again")]
    Revoked(String),
    #[error("the provider could not renew the mailbox's sign-in now: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] ApiError),
}

impl GrantError {
    /// Only a new sign-in by the owner helps.
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, Self::NotConnected | Self::Revoked(_))
    }
}

impl From<sea_orm::DbErr> for GrantError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Storage(e.into())
    }
}

/// An access token valid for at least [`MARGIN`], refreshed first if need be.
pub async fn access_token(app: &AppState, row: &mailbox::Model) -> Result<String, GrantError> {
    fresh(app, row, MARGIN).await
}

/// An access token valid for at least `ahead`.
async fn fresh(app: &AppState, row: &mailbox::Model, ahead: Duration) -> Result<String, GrantError> {
    let give_up = tokio::time::Instant::now() + WAIT;
    let mut row = row.clone();
    loop {
        if let Some(token) = usable(app, &row, ahead)? {
            return Ok(token);
        }
        if take_lease(app, &row).await? {
            // Read again under the lease: another refresh may have ended since `row` was read.
            let current = reload(app, row.id).await?;
            return match usable(app, &current, ahead) {
                Ok(Some(token)) => {
                    release(app, &current).await?;
                    Ok(token)
                }
                Ok(None) => refresh(app, &current).await,
                Err(e) => {
                    release(app, &current).await?;
                    Err(e)
                }
            };
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(GrantError::Unavailable("it is being renewed (or was just refused by the provider for now): tried again shortly".into()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        row = reload(app, row.id).await?;
    }
}

/// The stored access token if it is valid for at least `ahead`; an error when the mailbox has
/// no grant to refresh.
fn usable(app: &AppState, row: &mailbox::Model, ahead: Duration) -> Result<Option<String>, GrantError> {
    if row.state == State::NeedsReconnection {
        return Err(GrantError::Revoked(row.last_error.clone().unwrap_or_else(|| "the grant was revoked".into())));
    }
    if row.oauth_refresh_token.is_none() || row.oauth_provider.is_none() {
        return Err(GrantError::NotConnected);
    }
    let ahead = chrono::Duration::from_std(ahead).unwrap_or_default();
    match (&row.oauth_access_token, row.oauth_expires_at) {
        (Some(envelope), Some(expires)) if expires > Utc::now() + ahead => Ok(Some(super::open(app, row, ACCESS_TOKEN_COLUMN, envelope)?)),
        _ => Ok(None),
    }
}

async fn reload(app: &AppState, id: Uuid) -> Result<mailbox::Model, GrantError> {
    mailbox::Entity::find_by_id(id).one(&app.db).await?.ok_or(GrantError::NotConnected)
}

/// Takes the refresh lease of the mailbox's grant, if no other process holds it.
async fn take_lease(app: &AppState, row: &mailbox::Model) -> Result<bool, GrantError> {
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let taken = mailbox::Entity::update_many()
        .col_expr(mailbox::Column::OauthRefreshLeasedUntil, Expr::value(until))
        .filter(mailbox::Column::Id.eq(row.id))
        .filter(same_grant(row))
        .filter(mailbox::Column::OauthRefreshLeasedUntil.is_null().or(mailbox::Column::OauthRefreshLeasedUntil.lt(now)))
        .exec(&app.db)
        .await?;
    Ok(taken.rows_affected == 1)
}

async fn release(app: &AppState, row: &mailbox::Model) -> Result<(), GrantError> {
    mailbox::Entity::update_many()
        .col_expr(mailbox::Column::OauthRefreshLeasedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(mailbox::Column::Id.eq(row.id))
        .filter(same_grant(row))
        .exec(&app.db)
        .await?;
    Ok(())
}

/// The row still holds the grant `row` was read with.
fn same_grant(row: &mailbox::Model) -> sea_orm::Condition {
    let column = mailbox::Column::OauthConnectedAt;
    sea_orm::Condition::all().add(match row.oauth_connected_at {
        Some(at) => column.eq(at),
        None => column.is_null(),
    })
}

/// Asks the provider for a new access token (under the lease) and stores it.
async fn refresh(app: &AppState, row: &mailbox::Model) -> Result<String, GrantError> {
    let (Some(provider), Some(envelope)) = (row.oauth_provider, &row.oauth_refresh_token) else {
        return Err(GrantError::NotConnected);
    };
    let refresh_token = super::open(app, row, REFRESH_TOKEN_COLUMN, envelope)?;
    match app.oauth.refresh(provider, &refresh_token).await {
        Ok(tokens) => {
            let mut update = mailbox::Entity::update_many()
                .col_expr(mailbox::Column::OauthAccessToken, Expr::value(app.keyring.seal(slot(row, ACCESS_TOKEN_COLUMN), &tokens.access_token)))
                .col_expr(mailbox::Column::OauthExpiresAt, Expr::value(tokens.expires_at))
                .col_expr(mailbox::Column::OauthRefreshLeasedUntil, Expr::value(Option::<DateTime<Utc>>::None));
            if let Some(rotated) = &tokens.refresh_token {
                update = update.col_expr(mailbox::Column::OauthRefreshToken, Expr::value(app.keyring.seal(slot(row, REFRESH_TOKEN_COLUMN), rotated)));
            }
            update.filter(mailbox::Column::Id.eq(row.id)).filter(same_grant(row)).exec(&app.db).await?;
            metrics::counter!("herald_mailbox_token_refreshes_total", "outcome" => "ok").increment(1);
            tracing::info!(mailbox = %row.id, expires_at = %tokens.expires_at, "mailbox access token refreshed");
            Ok(tokens.access_token)
        }
        Err(e) if e.grant_is_gone() => {
            metrics::counter!("herald_mailbox_token_refreshes_total", "outcome" => "revoked").increment(1);
            tracing::warn!(mailbox = %row.id, error = %e, "the provider refused the mailbox's grant: it needs a new sign-in");
            needs_reconnection(app, row, &e).await?;
            Err(GrantError::Revoked(e.to_string()))
        }
        Err(e) => {
            metrics::counter!("herald_mailbox_token_refreshes_total", "outcome" => "error").increment(1);
            // The lease is kept to its end: nobody asks the provider again before then.
            tracing::warn!(mailbox = %row.id, error = %e, "refreshing the mailbox's access token failed; tried again when the lease ends");
            Err(GrantError::Unavailable(e.to_string()))
        }
    }
}

/// Stops the mailbox's scans until its owner signs in again, and tells the owner (once per
/// grant: the write that changes the state is the one that tells).
async fn needs_reconnection(app: &AppState, row: &mailbox::Model, why: &OAuthError) -> Result<(), GrantError> {
    let txn = crate::db::begin_write(&app.db).await?;
    let stopped = mailbox::Entity::update_many()
        .col_expr(mailbox::Column::State, Expr::value(State::NeedsReconnection))
        .col_expr(mailbox::Column::LastError, Expr::value(Some(format!("the provider no longer accepts the sign-in ({why}): sign in again"))))
        .col_expr(mailbox::Column::NextScanAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(mailbox::Column::OauthAccessToken, Expr::value(Option::<String>::None))
        .col_expr(mailbox::Column::OauthExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(mailbox::Column::OauthRefreshLeasedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(mailbox::Column::Id.eq(row.id))
        .filter(same_grant(row))
        .filter(mailbox::Column::State.ne(State::NeedsReconnection))
        .exec(&txn)
        .await?;
    let mut notifications = Vec::new();
    if stopped.rows_affected == 1 {
        let grant = row.oauth_connected_at.map(|t| t.timestamp_micros()).unwrap_or_default();
        let event = AddressedEvent {
            kind: NotificationType::SystemErrorInformation,
            account_id: row.account_id,
            contact_id: None,
            title: format!("Mailbox {} needs you to sign in again", row.email_address),
            body: Some("Your mail provider no longer accepts Herald's access to this mailbox (it was revoked, or your password changed). Its mail is not archived until you connect it again.".into()),
            data: Some(serde_json::json!({ "mailboxId": row.id })),
            action_url: None,
            occurred_at: Utc::now(),
            idempotency_key: format!("mailbox:{}:needs-reconnection:{grant}", row.id),
            recipients: vec![row.user_id],
            email: true,
        };
        notifications = fanout::record_addressed(&txn, vec![event]).await?.notifications;
    }
    txn.commit().await?;
    crate::notifications::announce(app, &notifications).await;
    Ok(())
}

/// What [`refresh_due`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    pub refreshed: usize,
    pub revoked: usize,
    pub failed: usize,
}

/// Refreshes the grants whose access tokens expire within [`AHEAD`] of `now` (at most
/// `limit`, soonest first): the worker's step, so that sign-ins seldom wait for a provider.
pub async fn refresh_due(app: &AppState, now: DateTime<Utc>, limit: u64) -> Result<Refreshed, GrantError> {
    let horizon = now + chrono::Duration::from_std(AHEAD).unwrap_or_default();
    let due = mailbox::Entity::find()
        .filter(mailbox::Column::AuthMethod.eq(mailbox::AuthMethod::Oauth2))
        .filter(mailbox::Column::OauthRefreshToken.is_not_null())
        .filter(mailbox::Column::State.ne(State::NeedsReconnection))
        .filter(mailbox::Column::OauthExpiresAt.is_null().or(mailbox::Column::OauthExpiresAt.lt(horizon)))
        .filter(mailbox::Column::OauthRefreshLeasedUntil.is_null().or(mailbox::Column::OauthRefreshLeasedUntil.lt(now)))
        .order_by_asc(mailbox::Column::OauthExpiresAt)
        .limit(limit)
        .all(&app.db)
        .await?;
    let mut done = Refreshed::default();
    for row in due {
        match fresh(app, &row, AHEAD).await {
            Ok(_) => done.refreshed += 1,
            Err(GrantError::Revoked(_)) => done.revoked += 1,
            Err(GrantError::Storage(e)) => return Err(GrantError::Storage(e)),
            Err(_) => done.failed += 1,
        }
    }
    Ok(done)
}
