//! An account's SMS gateway (a Twilio-compatible REST API): where Text AU messages go.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sms_gateway")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub account_id: Uuid,
    /// Up to the API root, e.g. `https://api.twilio.com`.
    pub base_url: String,
    pub account_sid: String,
    /// Sealed envelope (`api::crypto`); never leaves the server.
    #[serde(skip_serializing)]
    pub auth_token: String,
    pub from_number: String,
    pub version: i32,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
