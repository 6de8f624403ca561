//! A user's own value for one switch of one notification type (only where it differs from
//! inheriting the account's default or the built-in one).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::notification_default::{NotificationType, Switch};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notification_override")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub notification_type: NotificationType,
    #[sea_orm(primary_key, auto_increment = false)]
    pub switch: Switch,
    pub account_id: Uuid,
    pub enabled: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
