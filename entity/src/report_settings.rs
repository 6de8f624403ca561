//! An account's system reports recipients (seeds/000): which roles receive integration
//! reports, and the BCC every report carries. The users added to them are
//! [`crate::report_recipient`] rows. No row: the defaults (company admins, no BCC).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "report_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: Uuid,
    pub billing_admins: bool,
    pub company_admins: bool,
    pub company_supervisors: bool,
    pub bcc: Option<String>,
    /// Contact mapping errors reported within this many minutes go out as one email.
    pub mapping_error_window_minutes: i32,
    pub version: i32,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
