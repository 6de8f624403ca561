//! A user's IMAP mailbox, read for archiving mail of customers and leads (seeds/004).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

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
    /// `TLS` (implicit), `STARTTLS` or `NONE`.
    pub security: String,
    pub scan_active: bool,
    pub sync_clients: bool,
    pub sync_leads: bool,
    /// Full paths (as the server names them, modified UTF-7) of the folders to sync.
    pub directories: Json,
    /// The one mailbox shown in the Email module (at most one per user).
    pub main: bool,
    /// `NEW`, `CONNECTED`, `AUTH_FAILED`, `ERROR`, `PAUSED`.
    pub state: String,
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
