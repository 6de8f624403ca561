//! A CRM account (a company). Accounts form a tree through `parent_id` (sub-accounts).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "account")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub parent_id: Option<Uuid>,
    /// IANA time-zone name, validated on write (chrono-tz).
    pub time_zone: String,
    pub paused: bool,
    /// Enabled add-ons as a JSON array of add-on codes, e.g. `["NOTIFICATION_ROLL_UP"]`.
    pub add_ons: Json,
    /// Optimistic-concurrency version of the account's settings; bumped on every update.
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
    /// The company admin "log in to account" acts as, when the account designated one; else
    /// its longest-standing active company admin.
    pub primary_admin_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "Entity", from = "Column::ParentId", to = "Column::Id")]
    Parent,
    #[sea_orm(has_many = "super::user::Entity")]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
