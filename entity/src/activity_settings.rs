//! An account's activity settings page: the SMTP server its emails go out through, when
//! activities are reminded and escalated, and from whom. One row per account; an account
//! without a row has the documented defaults (see `api::activities::settings`).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::mail_security::Security;

/// Who activity reminders come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum AlertSender {
    /// The account's system sender address.
    #[sea_orm(string_value = "SYSTEM_ACCOUNT")]
    SystemAccount,
    /// The activity owner's own address (see `worker::compose`), else the system address.
    #[sea_orm(string_value = "USER_ACCOUNT")]
    UserAccount,
}

/// Who late-activity escalations come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum LateSender {
    /// The account's system sender address.
    #[sea_orm(string_value = "SYSTEM_ACCOUNT")]
    SystemAccount,
    /// The address given in `senderEmail`.
    #[sea_orm(string_value = "EMAIL")]
    Email,
}

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
    pub smtp_security: Security,
    pub smtp_username: Option<String>,
    /// Sealed envelope (`api::crypto`); never leaves the server.
    #[serde(skip_serializing)]
    pub smtp_password: Option<String>,
    pub sender_address: Option<String>,
    pub sender_name: Option<String>,
    pub alert_interval_hours: i32,
    pub alert_sender: AlertSender,
    pub late_interval_hours: i32,
    pub late_sender: LateSender,
    pub late_sender_email: Option<String>,
    pub version: i32,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
