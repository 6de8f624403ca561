//! Where an archived email was seen: mailbox, folder and UID (under the folder's UIDVALIDITY).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "email_location")]
pub struct Model {
    pub email_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub mailbox_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub folder: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub uidvalidity: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub uid: i64,
    pub account_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
