//! A user's IMAP mailbox, read for archiving mail of customers and leads (seeds/004).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::mail_security::Security;

/// Where a mailbox's scans stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "MailboxState"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum State {
    /// Saved without a successful connection test, and not scanned yet.
    #[sea_orm(string_value = "NEW")]
    New,
    /// The last scan (or connection test) succeeded.
    #[sea_orm(string_value = "CONNECTED")]
    Connected,
    /// The server refused the credentials: not scanned again until they change.
    #[sea_orm(string_value = "AUTH_FAILED")]
    AuthFailed,
    /// The last scan failed otherwise (network, server); retried at the next period.
    #[sea_orm(string_value = "ERROR")]
    Error,
    /// Scans stopped by the worker (a folder's UIDVALIDITY kept changing); `lastError` says
    /// why.
    #[sea_orm(string_value = "PAUSED")]
    Paused,
    /// The provider refused to refresh the mailbox's OAuth2 grant (revoked, password
    /// changed): not scanned until its owner signs in again.
    #[sea_orm(string_value = "NEEDS_RECONNECTION")]
    NeedsReconnection,
}

/// How a mailbox signs in to its servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "MailboxAuthMethod"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum AuthMethod {
    /// LOGIN (IMAP) and AUTH PLAIN/LOGIN (SMTP) with a stored password.
    #[sea_orm(string_value = "PASSWORD")]
    Password,
    /// SASL XOAUTH2 with an access token from the provider's grant.
    #[sea_orm(string_value = "OAUTH2")]
    #[cfg_attr(feature = "graphql", graphql(name = "OAUTH2"))]
    Oauth2,
}

/// Who issued a mailbox's OAuth2 grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "MailProvider"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Provider {
    /// Microsoft Entra ID (Microsoft 365, Outlook.com).
    #[sea_orm(string_value = "MICROSOFT")]
    Microsoft,
    /// Google (Gmail, Google Workspace).
    #[sea_orm(string_value = "GOOGLE")]
    Google,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "mailbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    /// The owner: whose mail this is.
    pub user_id: Uuid,
    pub email_address: String,
    /// The login, only when it differs from the address.
    pub username: Option<String>,
    pub auth_method: AuthMethod,
    /// Sealed envelope (`api::crypto`); never leaves the server. Password mailboxes only.
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// OAuth2 mailboxes: the grant's issuer, and its tokens sealed like the password.
    pub oauth_provider: Option<Provider>,
    #[serde(skip_serializing)]
    pub oauth_refresh_token: Option<String>,
    #[serde(skip_serializing)]
    pub oauth_access_token: Option<String>,
    /// When the access token expires; the worker refreshes it before.
    pub oauth_expires_at: Option<DateTimeUtc>,
    /// While a worker refreshes the grant: until when the refresh is that worker's.
    pub oauth_refresh_leased_until: Option<DateTimeUtc>,
    /// When the owner last completed the provider's sign-in.
    pub oauth_connected_at: Option<DateTimeUtc>,
    pub host: String,
    pub port: Option<i32>,
    pub security: Security,
    pub scan_active: bool,
    pub sync_clients: bool,
    pub sync_leads: bool,
    /// Full paths (as the server names them, modified UTF-7) of the folders to sync.
    pub directories: Json,
    /// The one mailbox shown in the Email module (at most one per user).
    pub main: bool,
    /// The outgoing side (SMTP), if the mailbox sends as its owner. It signs in like the
    /// mailbox: with the OAuth2 grant, or with `smtp_password` (sealed), or else the
    /// mailbox's own password; `smtp_username` defaults to the mailbox's login.
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    pub smtp_security: Option<Security>,
    pub smtp_username: Option<String>,
    #[serde(skip_serializing)]
    pub smtp_password: Option<String>,
    /// The last send through the outgoing side that failed, and when; cleared by a success.
    pub send_error: Option<String>,
    pub send_error_at: Option<DateTimeUtc>,
    pub state: State,
    pub last_scan_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub owner_notified_of_auth_failure: bool,
    /// When the worker scans it next (null: not scheduled, e.g. inactive or stopped).
    pub next_scan_at: Option<DateTimeUtc>,
    /// While a worker scans it: until when the mailbox is that worker's.
    pub scan_leased_until: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
