use async_graphql::{Context, InputObject, Json, Object, Subscription, ID};
use chrono::{DateTime, Utc};
use entity::audit_event;
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

use super::{
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    loaders, parse_id,
    users::{related_user, User},
};
use crate::error::ApiError;

/// One recorded change.
pub struct AuditEvent(pub audit_event::Model);

#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// e.g. `user.updated`, `session.logged_in_as`.
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn object_type(&self) -> &str {
        &self.0.object_type
    }
    async fn object_id(&self) -> ID {
        ID(self.0.object_id.clone())
    }
    /// The user who really acted: the admin, when they were logged in as someone.
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.actor_user_id else { return Ok(None) };
        related_user(ctx, id).await
    }
    /// The user the actor was logged in as.
    async fn impersonated_user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.impersonated_user_id else { return Ok(None) };
        related_user(ctx, id).await
    }
    /// The API key that made the change, if a partner did.
    async fn api_key_id(&self) -> Option<ID> {
        self.0.api_key_id.map(|id| ID(id.to_string()))
    }
    /// The platform operator's key that really acted, when the operator was logged in as
    /// `impersonatedUser` (then `actor` is null).
    async fn operator_key_id(&self) -> Option<ID> {
        self.0.operator_key_id.map(|id| ID(id.to_string()))
    }
    /// The object before the change (null on creation). Secrets never appear here, nor
    /// references the caller may not follow (see `after`).
    async fn before(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Json<serde_json::Value>>> {
        Ok(match &self.0.before {
            Some(object) => Some(Json(readable(ctx, object.clone()).await?)),
            None => None,
        })
    }
    /// The object after the change (null on deletion). A reference to an account or user
    /// that the caller may not read (a sub-account's parent, the parent's people) is null, as
    /// it is through the relations.
    async fn after(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Json<serde_json::Value>>> {
        Ok(match &self.0.after {
            Some(object) => Some(Json(readable(ctx, object.clone()).await?)),
            None => None,
        })
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Fields of recorded objects that name an account, and those that name a user.
const ACCOUNT_REFERENCES: &[&str] = &["account_id", "parent_id"];
const USER_REFERENCES: &[&str] = &["updated_by", "created_by", "user_id", "owner_id"];

/// A recorded object with the references the caller may not follow set to null.
async fn readable(ctx: &Context<'_>, mut object: serde_json::Value) -> async_graphql::Result<serde_json::Value> {
    let Some(fields) = object.as_object_mut() else { return Ok(object) };
    let (db, caller) = (&app(ctx)?.db, caller(ctx)?);
    for (key, value) in fields.iter_mut() {
        let Some(id) = value.as_str().and_then(|v| v.parse::<uuid::Uuid>().ok()) else { continue };
        let visible = if ACCOUNT_REFERENCES.contains(&key.as_str()) {
            id == caller.account_id || crate::crm::accounts::is_visible(db, caller, id).await?
        } else if USER_REFERENCES.contains(&key.as_str()) {
            related_user(ctx, id).await?.is_some()
        } else {
            continue;
        };
        if !visible {
            *value = serde_json::Value::Null;
        }
    }
    Ok(object)
}

#[derive(InputObject, Default)]
pub struct AuditFilter {
    pub object_type: Option<String>,
    pub object_id: Option<ID>,
    pub actor_id: Option<ID>,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The account's audit log, newest first (company admins).
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<AuditEvent>> {
        let filter = filter.unwrap_or_default();
        let filter = crate::audit::AuditFilter {
            object_type: filter.object_type,
            object_id: filter.object_id.map(|id| id.to_string()),
            actor_id: filter.actor_id.as_ref().map(|id| parse_id(id, "filter.actorId")).transpose()?,
        };
        let select = crate::audit::list(caller(ctx)?, filter)?;
        let page =
            paginate(&app(ctx)?.db, select, audit_event::Column::Id, |e| e.id, Order::NewestFirst, PageArgs::new(first, after, last, before), AuditEvent)
                .await?;
        if loaders::wants(ctx, "actor") || loaders::wants(ctx, "impersonatedUser") {
            let users = page.edges.iter().flat_map(|e| [e.node.0.actor_user_id, e.node.0.impersonated_user_id]).flatten().map(loaders::UserId).collect();
            loaders::prefetch(loaders(ctx)?, users).await.map_err(ApiError::from)?;
        }
        Ok(page)
    }
}

#[derive(Default)]
pub struct AuditSubscription;

#[Subscription]
impl AuditSubscription {
    /// Changes to the caller's account as they are committed, from every api and worker
    /// process (company admins). Best effort: the `auditLog` query is the record.
    async fn audit_events(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = AuditEvent>> {
        let caller = caller(ctx)?;
        caller.require_company_admin_user()?;
        let receiver = app(ctx)?.bus.subscribe(&crate::audit::channel(caller.account_id));
        Ok(BroadcastStream::new(receiver).filter_map(|message| async move {
            match message {
                Ok(message) => match serde_json::from_str::<audit_event::Model>(message.as_text().unwrap_or_default()) {
                    Ok(event) => Some(AuditEvent(event)),
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable audit event on the bus");
                        None
                    }
                },
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "audit subscriber fell behind; events skipped");
                    None
                }
            }
        }))
    }
}
