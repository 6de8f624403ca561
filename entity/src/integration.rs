//! An account's integration with another CRM (seeds/000): on or off, its features, its health
//! as its integration service last reported it, and its settings tabs.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "IntegrationProvider"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Provider {
    #[sea_orm(string_value = "HUBSPOT")]
    Hubspot,
    #[sea_orm(string_value = "SALESFORCE")]
    Salesforce,
    #[sea_orm(string_value = "ZOHO")]
    Zoho,
}

/// How the integration stands, as its integration service last reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "IntegrationHealth"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
pub enum Health {
    #[sea_orm(string_value = "CONNECTED")]
    Connected,
    /// The connection lost its authorization: someone must connect it again.
    #[sea_orm(string_value = "REAUTH_REQUIRED")]
    ReauthRequired,
    #[sea_orm(string_value = "ERROR")]
    Error,
    /// Turned off.
    #[sea_orm(string_value = "DISABLED")]
    Disabled,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "integration")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub provider: Provider,
    pub enabled: bool,
    /// Features: data sync, sync filters, communication logging.
    pub sync_enabled: bool,
    pub filters_enabled: bool,
    pub communication_enabled: bool,
    pub health: Health,
    pub last_sync_at: Option<DateTimeUtc>,
    /// The problems its integration service reported and that are not resolved yet.
    pub problems: Json,
    /// The settings tabs (`api::integrations::settings::Tabs`).
    pub settings: Json,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
