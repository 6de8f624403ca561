//! A record an integration cannot map, one row per integration, object and record: its state,
//! not each report of it. Open from its first report until reported fixed; listed in a grouped
//! email once (`alerted_at`), and again only after the reminder interval if still open.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "integration_mapping_error")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub integration_id: Uuid,
    /// CONTACTS, COMPANIES, DEALS or ACTIVITIES (`SyncObject`).
    pub object_type: String,
    /// The record's id at the integration.
    pub record_id: String,
    pub record_name: Option<String>,
    /// The CRM field the error is about, if one.
    pub field: Option<String>,
    pub error: String,
    /// Troubleshooting tips and corrective actions, as lists of strings.
    pub tips: Json,
    pub actions: Json,
    pub deadline: Option<DateTimeUtc>,
    /// Reports of it while open.
    pub occurrences: i32,
    pub first_reported_at: DateTimeUtc,
    pub last_reported_at: DateTimeUtc,
    pub alerted_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
