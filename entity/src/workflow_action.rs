//! One step of a workflow: what kind, when it falls due, its content, to whom, and whether
//! and as whom it is sent automatically.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "WorkflowActionKind"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Kind {
    #[sea_orm(string_value = "EMAIL")]
    Email,
    #[sea_orm(string_value = "CALL")]
    Call,
    #[sea_orm(string_value = "SMS")]
    Sms,
    #[sea_orm(string_value = "TASK")]
    Task,
    #[sea_orm(string_value = "LETTER")]
    Letter,
}

impl Kind {
    /// Emails, texts and letters can go out on their own; calls and tasks are people's work.
    pub fn can_send_automatically(self) -> bool {
        matches!(self, Kind::Email | Kind::Sms | Kind::Letter)
    }
}

/// What an action's delay counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "WorkflowDelayFrom"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum DelayFrom {
    /// The day the customer entered the workflow.
    #[sea_orm(string_value = "ENROLLMENT")]
    Enrollment,
    /// The previous action's due day.
    #[sea_orm(string_value = "PREVIOUS_ACTION")]
    PreviousAction,
}

/// Which of the customer's contacts an action is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "WorkflowRecipients"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Recipients {
    #[sea_orm(string_value = "MAIN_CONTACT")]
    MainContact,
    #[sea_orm(string_value = "ALL_CONTACTS")]
    AllContacts,
    /// The contacts whose position is `recipient_position`.
    #[sea_orm(string_value = "POSITION")]
    Position,
}

/// Who sends an automatic action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "WorkflowSender"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Sender {
    /// `sender_user_id`.
    #[sea_orm(string_value = "USER")]
    User,
    /// The first active member of `sender_group_id`.
    #[sea_orm(string_value = "GROUP_ALL")]
    GroupAll,
    /// The first active member of `sender_group_id` assigned to the customer.
    #[sea_orm(string_value = "GROUP_ASSIGNED")]
    GroupAssigned,
    /// The customer's assigned user (the first assigned when several).
    #[sea_orm(string_value = "ASSIGNED_USER")]
    AssignedUser,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "workflow_action")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub workflow_id: Uuid,
    /// 0-based, unique per workflow.
    pub position: i32,
    pub kind: Kind,
    pub name: String,
    pub delay_days: i32,
    pub delay_from: DelayFrom,
    pub subject_template: Option<String>,
    pub body_template: Option<String>,
    pub recipients: Recipients,
    pub recipient_position: Option<String>,
    pub send_automatically: bool,
    pub sender: Option<Sender>,
    pub sender_user_id: Option<Uuid>,
    pub sender_group_id: Option<Uuid>,
    /// An invoice email: left out of the team activity analytics (seeds/003).
    pub billing: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
