//! An account's activity settings page: the SMTP server its emails go out through, when
//! activities are reminded and escalated, and from whom. One row per account; an account
//! without a row has the documented defaults (see `api::activities::settings`).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "activity_settings")]
pub struct Model {
    /// The row's own id: with `account_id`, the associated data of the sealed password.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub account_id: Uuid,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    /// `STARTTLS`, `TLS` (implicit) or `NONE`.
    pub smtp_security: String,
    pub smtp_username: Option<String>,
    /// Sealed envelope (`api::crypto`); never leaves the server.
    #[serde(skip_serializing)]
    pub smtp_password: Option<String>,
    pub sender_address: Option<String>,
    pub sender_name: Option<String>,
    pub alert_interval_hours: i32,
    /// `SYSTEM_ACCOUNT` or `USER_ACCOUNT`.
    pub alert_sender: String,
    pub late_interval_hours: i32,
    /// `SYSTEM_ACCOUNT` or `EMAIL`.
    pub late_sender: String,
    pub late_sender_email: Option<String>,
    pub version: i32,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
