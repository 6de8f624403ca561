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
    /// Sealed envelope (`api::crypto`); never leaves the server.
    #[serde(skip_serializing)]
    pub password: Option<String>,
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
