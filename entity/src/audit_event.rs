//! One change made through the API: who (the real actor, the user they were logged in as,
//! or the API key), what (object and action) and the state before and after.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    /// The user who really acted (the admin, when logged in as someone).
    pub actor_user_id: Option<Uuid>,
    /// The user the actor was logged in as, when impersonating.
    pub impersonated_user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    /// The platform operator's key that really acted, when an operator was logged in as
    /// `impersonated_user_id` (then `actor_user_id` is null).
    pub operator_key_id: Option<Uuid>,
    /// Verb in the past tense, e.g. `user.updated`.
    pub action: String,
    pub object_type: String,
    pub object_id: String,
    pub before: Option<Json>,
    pub after: Option<Json>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
