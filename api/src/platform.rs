//! The platform operator: provisions tenants (top-level accounts) with a key of its own that
//! belongs to no account (`api operator-key`).
//!
//! An operator key never becomes a [`crate::auth::Caller`]: a request that presents one runs
//! with no caller and an [`Operator`] beside it, so every field about an account's data
//! answers UNAUTHENTICATED to it by construction, and only the platform fields accept it.
//! What an operator does is recorded in the platform's own audit log (`platform_event`).

use chrono::Utc;
use entity::{account, operator_key, platform_event, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, Set};
use uuid::Uuid;

use crate::{
    auth::{generate_key, key_parts, records_use, secret_matches},
    bootstrap::{create_tenant, FirstAdmin},
    error::{ApiError, ApiResult},
};

/// Prefix of every operator key, distinct from API keys' (`hk_`).
pub const OPERATOR_KEY_PREFIX: &str = "hop_";

/// The operator behind a request, when it presented a valid operator key.
#[derive(Clone, Debug)]
pub struct Operator(pub operator_key::Model);

/// Creates an operator key; answers it and its secret, which is shown this once.
pub async fn mint_key(db: &DatabaseConnection, name: &str) -> ApiResult<(operator_key::Model, String)> {
    let name = crate::validate::name("name", name)?;
    let new = generate_key(OPERATOR_KEY_PREFIX);
    let key = operator_key::Model { id: new.id, name, secret_hash: new.secret_hash, created_at: Utc::now(), last_used_at: None, revoked_at: None }
        .into_active_model()
        .insert(db)
        .await?;
    Ok((key, new.secret))
}

/// Revokes an operator key (revoking twice keeps the first time). Its tokens into tenants
/// die with it: they are checked against the key on every request.
pub async fn revoke_key(db: &DatabaseConnection, id: Uuid) -> ApiResult<operator_key::Model> {
    let key = operator_key::Entity::find_by_id(id).one(db).await?.ok_or(ApiError::NotFound("operator key"))?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let mut active = key.into_active_model();
    active.revoked_at = Set(Some(Utc::now()));
    Ok(active.update(db).await?)
}

/// The name of an operator key, if it exists.
pub async fn key_name(db: &DatabaseConnection, id: Uuid) -> ApiResult<Option<String>> {
    Ok(operator_key::Entity::find_by_id(id).one(db).await?.map(|k| k.name))
}

/// The tenants: every top-level account.
pub fn tenants() -> sea_orm::Select<account::Entity> {
    account::Entity::find().filter(account::Column::ParentId.is_null())
}

/// The operator a bearer token stands for: `None` when it is not an operator key at all,
/// `Unauthenticated` when it is one that is unknown, revoked or wrong.
pub async fn authenticate(db: &DatabaseConnection, token: &str) -> ApiResult<Option<Operator>> {
    let Some(parts) = key_parts(token, OPERATOR_KEY_PREFIX) else { return Ok(None) };
    let (id, secret_part) = parts?;
    let key = operator_key::Entity::find_by_id(id).filter(operator_key::Column::RevokedAt.is_null()).one(db).await?.ok_or(ApiError::Unauthenticated)?;
    if !secret_matches(secret_part, &key.secret_hash) {
        return Err(ApiError::Unauthenticated);
    }
    let now = Utc::now();
    if records_use(key.last_used_at, now) {
        let mut active = key.clone().into_active_model();
        active.last_used_at = Set(Some(now));
        active.update(db).await?;
    }
    Ok(Some(Operator(key)))
}

/// `createAccount`: a new tenant with its first company admin, audited on the platform.
pub async fn create_account(db: &DatabaseConnection, operator: &Operator, first: FirstAdmin) -> ApiResult<(account::Model, user::Model)> {
    let first = first.checked()?;
    let txn = crate::db::begin_write(db).await?;
    let (account, admin) = create_tenant(&txn, first).await?;
    record(&txn, operator, "account.created", "Account", account.id, serde_json::json!({ "account": account, "admin": admin })).await?;
    txn.commit().await.map_err(ApiError::from)?;
    Ok((account, admin))
}

/// Pauses or resumes a tenant (as `updateAccount(paused)` does, with the same consequences),
/// audited on the platform. Answers the account and the panel rows to announce.
pub async fn set_paused(
    db: &DatabaseConnection,
    operator: &Operator,
    account_id: Uuid,
    paused: bool,
) -> ApiResult<(account::Model, Vec<entity::notification::Model>)> {
    let txn = crate::db::begin_write(db).await?;
    let before = account::Entity::find_by_id(account_id).filter(account::Column::ParentId.is_null()).one(&txn).await?.ok_or(ApiError::NotFound("tenant"))?;
    let mut active = before.clone().into_active_model();
    active.paused = Set(paused);
    active.version = Set(before.version + 1);
    active.updated_at = Set(Utc::now());
    active.updated_by = Set(None);
    let after = active.update(&txn).await?;
    let raised = crate::crm::accounts::paused_or_resumed(&txn, &before, &after).await?;
    if before.paused != paused {
        let action = if paused { "account.paused" } else { "account.resumed" };
        record(&txn, operator, action, "Account", after.id, serde_json::json!({ "paused": paused })).await?;
    }
    txn.commit().await.map_err(ApiError::from)?;
    Ok((after, raised.map(|r| r.notifications).unwrap_or_default()))
}

/// Tables of an account's rows, children before the rows they point at.
pub const ACCOUNT_TABLES: &[&str] = &[
    "email_location",
    "email_tombstone",
    "email",
    "mailbox_folder",
    "oauth_authorization",
    "mailbox",
    "letter_document",
    "workflow_run",
    "planned_action",
    "enrollment",
    "workflow_action",
    "workflow",
    "communication_calendar",
    "user_group_member",
    "user_group",
    "outbox_message",
    "notification",
    "event",
    "activity_default_person",
    "activity",
    "activity_settings",
    "contact_assignee",
    "contact_person",
    "project",
    "contact",
    "api_key",
    "notification_override",
    "notification_setting",
    "notification_default",
    "notification_roll_up",
    "email_settings",
    "sms_gateway",
    "report_recipient",
    "report_settings",
    "integration_report",
    "integration_mapping_error",
    "integration_alert_window",
    "integration",
    "audit_event",
    "\"user\"",
];

/// Deletes an account with every row it owns (its secrets, settings, panel, outbox and
/// archive among them) in one transaction, and its sub-accounts' when `cascade`; refuses
/// while it has sub-accounts otherwise. Roll-ups that named a deleted account go too. The
/// platform's log keeps the record. Answers the ids of the accounts deleted.
pub async fn delete_account(db: &DatabaseConnection, operator: &Operator, account_id: Uuid, cascade: bool) -> ApiResult<Vec<Uuid>> {
    let txn = crate::db::begin_write(db).await?;
    let account = account::Entity::find_by_id(account_id).one(&txn).await?.ok_or(ApiError::NotFound("account"))?;
    let below = crate::crm::accounts::descendants(&txn, account.id).await?;
    if !below.is_empty() && !cascade {
        return Err(ApiError::Conflict(format!("the account has {} sub-account(s): delete them first, or ask to cascade", below.len())));
    }
    let ids: Vec<Uuid> = std::iter::once(account.id).chain(below.iter().map(|a| a.id)).collect();
    let backend = txn.get_database_backend();
    let (any, values): (String, Vec<sea_orm::Value>) = match backend {
        sea_orm::DbBackend::Postgres => ("= ANY($1)".into(), vec![ids.clone().into()]),
        _ => (format!("IN ({})", vec!["?"; ids.len()].join(", ")), ids.iter().map(|id| (*id).into()).collect()),
    };
    let delete =
        |table: &str, column: &str| sea_orm::Statement::from_sql_and_values(backend, format!("DELETE FROM {table} WHERE {column} {any}"), values.clone());
    // Parent users' roll-ups of a deleted sub-account.
    txn.execute(delete("notification_roll_up", "sub_account_id")).await?;
    for table in ACCOUNT_TABLES {
        txn.execute(delete(table, "account_id")).await?;
    }
    // Deepest first (`ids` is breadth first): a sub-account's row points at its parent's.
    for id in ids.iter().rev() {
        txn.execute(sea_orm::Statement::from_sql_and_values(
            backend,
            format!("DELETE FROM account WHERE id = {}", if backend == sea_orm::DbBackend::Postgres { "$1" } else { "?" }),
            [(*id).into()],
        ))
        .await?;
    }
    record(&txn, operator, "account.deleted", "Account", account.id, serde_json::json!({ "name": account.name, "accounts": ids })).await?;
    txn.commit().await.map_err(ApiError::from)?;
    Ok(ids)
}

pub(crate) async fn record(
    db: &impl ConnectionTrait,
    operator: &Operator,
    action: &str,
    object_type: &str,
    object_id: Uuid,
    after: serde_json::Value,
) -> ApiResult<()> {
    platform_event::Model {
        id: Uuid::now_v7(),
        operator_key_id: operator.0.id,
        action: action.into(),
        object_type: object_type.into(),
        object_id: object_id.to_string(),
        after: Some(after),
        created_at: Utc::now(),
    }
    .into_active_model()
    .insert(db)
    .await?;
    Ok(())
}
