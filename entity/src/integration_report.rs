//! A report an integration service sent about one of the account's integrations (re-authentication
//! required, a connection error or its end, contact mapping errors, a data sync summary), kept
//! under its idempotency key: the same key again is answered from here and changes nothing.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What a report says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "IntegrationReportKind"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum Kind {
    #[sea_orm(string_value = "REAUTHENTICATION_REQUIRED")]
    ReauthenticationRequired,
    #[sea_orm(string_value = "CONNECTION_ERROR")]
    ConnectionError,
    #[sea_orm(string_value = "CONNECTION_RESTORED")]
    ConnectionRestored,
    #[sea_orm(string_value = "CONTACT_MAPPING_ERRORS")]
    ContactMappingErrors,
    #[sea_orm(string_value = "DATA_SYNC_SUMMARY")]
    DataSyncSummary,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "integration_report")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub integration_id: Uuid,
    pub kind: Kind,
    /// Unique per integration.
    pub idempotency_key: String,
    /// The report as received.
    pub payload: Json,
    /// Whether it raised an alert (an email queued).
    pub alerted: bool,
    pub received_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
