//! An account's default for one switch of one notification type, for all its users; a locked
//! default cannot be overridden by a user.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::notification_type::NotificationType;

/// The switches of a notification type on the settings page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Switch {
    /// Shown in the user's panel.
    System,
    /// Shown in the panel only when the user is an assigned user of the event's contact.
    Au,
    /// A text message to the assigned user.
    TextAu,
    /// An email to the assigned user.
    EmailAu,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notification_default")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub notification_type: NotificationType,
    #[sea_orm(primary_key, auto_increment = false)]
    pub switch: Switch,
    pub enabled: bool,
    pub locked: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
