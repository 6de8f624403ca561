//! An archived email, stored once per account however many folders and mailboxes hold it,
//! and linked to a customer, lead or project (or none).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Which rule linked an email to its customer or lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LinkedBy {
    /// A customer's main address.
    CustomerMainEmail,
    /// The address of one of a customer's contact persons.
    CustomerContactEmail,
    /// A lead's main address.
    LeadMainEmail,
    /// The address of one of a lead's contact persons.
    LeadContactEmail,
    /// The domain of a customer's addresses.
    CustomerDomain,
    /// A reply in a thread already linked.
    Thread,
    /// Assigned by a user.
    Manual,
    /// Not linked (kept because the mailbox archives everything).
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "email")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    /// `mid:<Message-ID>`, or `sha256:<hex>` of the raw message when it has none.
    pub message_key: String,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    /// Addresses, lower-cased.
    pub to_addresses: Json,
    pub cc_addresses: Json,
    pub sent_at: Option<DateTimeUtc>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    /// `[{"filename", "contentType", "size"}]`.
    pub attachments: Json,
    /// The message as received, unless it was larger than the archive's body limit.
    #[serde(skip_serializing)]
    pub raw: Option<Vec<u8>>,
    /// Larger than the body limit: only its headers were stored.
    pub headers_only: bool,
    pub size: i64,
    pub in_reply_to: Option<String>,
    pub references: Json,
    pub contact_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub linked_by: LinkedBy,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
