//! The actions list: one row per enrolled customer and workflow action, its due date (the
//! account's local date), whether it goes out on its own (AUTOMATED) or is someone's to-do
//! (MANUAL), where it stands, and, once sent, what was sent (From, recipients, content).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::workflow_action::Kind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "ActionTrigger"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Trigger {
    #[sea_orm(string_value = "AUTOMATED")]
    Automated,
    #[sea_orm(string_value = "MANUAL")]
    Manual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "ActionStatus"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Status {
    /// Waiting for its due date (and, when automated, the run of that date).
    #[sea_orm(string_value = "PLANNED")]
    Planned,
    #[sea_orm(string_value = "SENT")]
    Sent,
    /// A person's to do: a manual action due, or an automatic one that could not go out
    /// (`todo_reason` says why).
    #[sea_orm(string_value = "TODO")]
    Todo,
    #[sea_orm(string_value = "FAILED")]
    Failed,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "planned_action")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub enrollment_id: Uuid,
    pub workflow_id: Uuid,
    /// The workflow action it comes from (`None` once that action is deleted).
    pub action_id: Option<Uuid>,
    pub contact_id: Uuid,
    pub position: i32,
    pub kind: Kind,
    pub trigger: Trigger,
    pub status: Status,
    pub due_on: Date,
    /// Whose to-do it is, or who is responsible for it.
    pub assignee_id: Option<Uuid>,
    /// Who it was sent as.
    pub sender_user_id: Option<Uuid>,
    pub todo_reason: Option<String>,
    /// Why an automatic action became a to-do, when it did: `api::workflows::plan::Fallback`.
    pub fallback: Option<String>,
    /// The actual `From:` (emails), as sent.
    pub from_address: Option<String>,
    /// Who it went to: a JSON list of `{name, address}` (an email address, a phone number,
    /// a postal address).
    pub recipients: Option<Json>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub outbox_message_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    pub billing: bool,
    pub done_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
