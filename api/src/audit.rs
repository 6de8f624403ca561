//! The audit log, and [`Change`]: the unit of work every mutation runs in.
//!
//! A mutation opens a `Change`, writes through `change.db()`, records what it changed with
//! `change.record(..)`, and commits. The audit rows are written in the same transaction as
//! the change itself — a change is never applied without its audit row, nor the reverse —
//! and they are announced on the bus only after the commit, so that nobody is told about a
//! change that was rolled back.

use chrono::Utc;
use entity::audit_event;
use sea_orm::{ActiveModelTrait, DatabaseTransaction, IntoActiveModel};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    auth::{Caller, Impersonator, Principal},
    error::{ApiError, ApiResult},
    state::AppState,
};

/// Bus channel of an account's audit events.
pub fn channel(account_id: Uuid) -> String {
    format!("audit:{account_id}")
}

pub struct Change<'a> {
    app: &'a AppState,
    caller: &'a Caller,
    txn: DatabaseTransaction,
    recorded: Vec<audit_event::Model>,
}

impl<'a> Change<'a> {
    pub async fn begin(app: &'a AppState, caller: &'a Caller) -> ApiResult<Self> {
        Ok(Self { app, caller, txn: crate::db::begin_write(&app.db).await?, recorded: Vec::new() })
    }

    pub fn db(&self) -> &DatabaseTransaction {
        &self.txn
    }

    pub fn caller(&self) -> &Caller {
        self.caller
    }

    /// Records one change of one object in the account the object belongs to.
    pub async fn record(
        &mut self,
        account_id: Uuid,
        action: &str,
        object_type: &str,
        object_id: Uuid,
        before: Option<&impl Serialize>,
        after: Option<&impl Serialize>,
    ) -> ApiResult<()> {
        let (actor_user_id, impersonated_user_id, api_key_id, operator_key_id) = match &self.caller.principal {
            Principal::User { user_id, impersonator: Some(Impersonator::Admin(admin)), .. } => (Some(*admin), Some(*user_id), None, None),
            Principal::User { user_id, impersonator: Some(Impersonator::Operator(key)), .. } => (None, Some(*user_id), None, Some(*key)),
            Principal::User { user_id, impersonator: None, .. } => (Some(*user_id), None, None, None),
            Principal::ApiKey { key_id, .. } => (None, None, Some(*key_id), None),
        };
        let event = audit_event::Model {
            id: Uuid::now_v7(),
            account_id,
            actor_user_id,
            impersonated_user_id,
            api_key_id,
            operator_key_id,
            action: action.to_string(),
            object_type: object_type.to_string(),
            object_id: object_id.to_string(),
            before: snapshot(before)?,
            after: snapshot(after)?,
            created_at: Utc::now(),
        };
        let event = event.into_active_model().reset_all().insert(&self.txn).await?;
        self.recorded.push(event);
        Ok(())
    }

    /// Commits, then announces the recorded events (best effort: the log is the record).
    pub async fn commit(self) -> ApiResult<()> {
        self.txn.commit().await?;
        for event in &self.recorded {
            match serde_json::to_string(event) {
                Ok(payload) => self.app.bus.publish(&channel(event.account_id), &payload),
                Err(e) => tracing::warn!(error = %e, "audit event not serializable"),
            }
        }
        Ok(())
    }
}

fn snapshot(value: Option<&impl Serialize>) -> ApiResult<Option<serde_json::Value>> {
    value.map(serde_json::to_value).transpose().map_err(|e| ApiError::Internal(e.into()))
}

/// Which audit events a list shows.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub actor_id: Option<Uuid>,
}

/// The account's audit log, filtered (signed-in company admins).
pub fn list(caller: &Caller, filter: AuditFilter) -> ApiResult<sea_orm::Select<audit_event::Entity>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    caller.require_company_admin_user()?;
    let mut select = audit_event::Entity::find().filter(audit_event::Column::AccountId.eq(caller.account_id));
    if let Some(t) = filter.object_type {
        select = select.filter(audit_event::Column::ObjectType.eq(t));
    }
    if let Some(id) = filter.object_id {
        select = select.filter(audit_event::Column::ObjectId.eq(id));
    }
    if let Some(actor) = filter.actor_id {
        select = select.filter(audit_event::Column::ActorUserId.eq(actor));
    }
    Ok(select)
}
