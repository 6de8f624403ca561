//! The header of a notification settings object (a user's Control or Roll-up tab, or an
//! account's defaults for its users): version, last change and who made it. The switches themselves
//! live in `notification_default` and `notification_override`, which store only what differs
//! from the layer below.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notification_setting")]
pub struct Model {
    /// The user (scopes `CONTROL`, `ROLL_UP`) or the account (scope `ACCOUNT_DEFAULTS`) the
    /// settings belong to.
    #[sea_orm(primary_key, auto_increment = false)]
    pub owner_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    pub account_id: Uuid,
    pub version: i32,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
