//! A person at a customer or lead (the contact's own contacts).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "contact_person")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub contact_id: Uuid,
    pub name: String,
    /// Stored lower-cased.
    pub email: Option<String>,
    pub position: Option<String>,
    /// Marked when mail to this person bounced or the address is known bad.
    pub invalid: bool,
    /// E.164 (`+33612345678`).
    pub phone: Option<String>,
    /// Where letters go: `{line1, line2, postalCode, city, region, country}` (api::workflows).
    pub postal_address: Option<Json>,
    /// The customer's main contact (at most one per contact).
    pub main: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::contact::Entity", from = "Column::ContactId", to = "super::contact::Column::Id")]
    Contact,
}

impl ActiveModelBehavior for ActiveModel {}
