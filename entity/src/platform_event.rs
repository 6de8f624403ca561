//! The platform's audit log: what operators did (tenants created, paused, deleted), kept
//! apart from the accounts' own logs, which an account's deletion takes with it.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "platform_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub operator_key_id: Uuid,
    /// e.g. `account.created`.
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    pub after: Option<Json>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
