//! When an account's automatic communications go out: its scheduling time (24-hour "HH:MM",
//! in the account's time zone) on business days, Monday to Friday less its holidays. No row:
//! 08:30 and no holidays.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "communication_calendar")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: Uuid,
    pub scheduling_time: String,
    /// A JSON list of ISO dates, sorted, each once.
    pub holidays: Json,
    pub version: i32,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
