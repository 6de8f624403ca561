//! The header of a notification settings object (a user's Control or Roll-up tab, or an
//! account's defaults for its users): version, last change and who made it. The switches themselves
//! live in `notification_default` and `notification_override`, which store only what differs
//! from the layer below.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Which settings object a header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scope {
    /// A user's Control tab (owner: the user).
    Control,
    /// An account's defaults for its users (owner: the account).
    AccountDefaults,
    /// A user's Roll-up tab (owner: the user).
    RollUp,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notification_setting")]
pub struct Model {
    /// The user or the account the settings belong to (see [`Scope`]).
    #[sea_orm(primary_key, auto_increment = false)]
    pub owner_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: Scope,
    pub account_id: Uuid,
    pub version: i32,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
