//! The window in which an integration's contact mapping errors are gathered into one email:
//! opened by the first error that needs telling, closed (and its email queued) by the worker
//! once `closes_at` has passed. At most one open window per integration.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "integration_alert_window")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub integration_id: Uuid,
    pub opened_at: DateTimeUtc,
    pub closes_at: DateTimeUtc,
    /// When the worker closed it; `None` while open.
    pub closed_at: Option<DateTimeUtc>,
    /// How many records its email listed.
    pub records: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
