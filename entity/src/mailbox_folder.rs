//! Where a scan of one folder of a mailbox stands: the folder's UIDVALIDITY and the last UID
//! archived, so the next scan asks only for what is new.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "mailbox_folder")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub mailbox_id: Uuid,
    /// The server's name of the folder (modified UTF-7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub path: String,
    pub account_id: Uuid,
    pub uidvalidity: i64,
    pub last_uid: i64,
    /// UIDVALIDITY changes seen in a row; too many pause the mailbox.
    pub uidvalidity_changes: i32,
    /// The folder's HIGHESTMODSEQ at the end of the last complete scan, on servers with
    /// CONDSTORE (RFC 7162): unchanged means nothing in the folder changed.
    pub highest_modseq: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
