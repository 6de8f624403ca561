//! A partner's API key. Only a SHA-256 hash of the secret is stored: the key is 256 bits of
//! randomness, so a slow password hash would add latency to every request and no security.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "api_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    /// Hex SHA-256 of the secret part of the key.
    #[serde(skip_serializing, default)]
    pub secret_hash: String,
    /// JSON array of scope codes: `READ`, `WRITE`, `PUBLISH_EVENTS`.
    pub scopes: Json,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
