//! A CRM activity (call, meeting, task…) with a due time, kept in sync by the CRM and partners.
//!
//! `remind_at` and `escalate_at` are the scheduler's plan, recomputed whenever the due time,
//! the completion or the account's intervals change, so that the worker's scans are index
//! ranges. `reminded_for` and `escalated_for` hold the due time a reminder or escalation was
//! sent for: each is sent once per activity, kind and due time.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What kind of activity it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum), graphql(name = "ActivityKind"))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Call,
    Meeting,
    Task,
    Email,
    Appointment,
    Other,
}

impl Kind {
    /// How emails and the panel name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Call => "Call",
            Self::Meeting => "Meeting",
            Self::Task => "Task",
            Self::Email => "Email",
            Self::Appointment => "Appointment",
            Self::Other => "Activity",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "activity")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    /// The CRM's own id, unique per account, for idempotent upserts.
    pub external_id: Option<String>,
    pub kind: Kind,
    pub title: String,
    pub owner_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub due_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    pub remind_at: Option<DateTimeUtc>,
    pub escalate_at: Option<DateTimeUtc>,
    pub reminded_for: Option<DateTimeUtc>,
    pub escalated_for: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
