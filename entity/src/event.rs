//! A CRM event published for fan-out. The idempotency key is unique per account: publishing
//! the same key twice answers the first event and notifies nobody again.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::notification_type::NotificationType;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub notification_type: NotificationType,
    pub contact_id: Option<Uuid>,
    pub title: String,
    pub body: Option<String>,
    pub data: Option<Json>,
    pub action_url: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub idempotency_key: String,
    pub created_at: DateTimeUtc,
    pub published_by_user: Option<Uuid>,
    pub published_by_key: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
