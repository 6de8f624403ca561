//! Who am I, API keys, and "log in as".

use async_graphql::{Context, InputObject, Object, ID};
use chrono::{DateTime, Utc};
use entity::{api_key, user};

use super::{
    accounts::Account,
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    loaders, parse_id,
    users::{related_user, User},
};
use crate::{
    api_keys,
    auth::{ApiKeyScope, Caller, Impersonator, Principal},
    crm::accounts,
    error::ApiError,
    session,
};

/// The caller: the user acted as (or the API key), their account, and the admin behind a
/// "log in as".
pub struct Viewer(Caller);

#[Object]
impl Viewer {
    /// The user the request acts as; null for API keys.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.user_id() else { return Ok(None) };
        Ok(loaders(ctx)?.load_one(loaders::UserId(id)).await.map_err(ApiError::from)?.map(User))
    }
    async fn account(&self, ctx: &Context<'_>) -> async_graphql::Result<Account> {
        Ok(Account(accounts::find_visible(&app(ctx)?.db, &self.0, self.0.account_id).await?))
    }
    /// The admin who is logged in as `user`, if any.
    async fn impersonator(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Principal::User { impersonator: Some(Impersonator::Admin(id)), .. } = self.0.principal else { return Ok(None) };
        Ok(loaders(ctx)?.load_one(loaders::UserId(id)).await.map_err(ApiError::from)?.map(User))
    }
    /// The name of the platform operator's key, when the operator is logged in as `user`.
    async fn operator_name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let Principal::User { impersonator: Some(Impersonator::Operator(id)), .. } = self.0.principal else { return Ok(None) };
        Ok(crate::platform::key_name(&app(ctx)?.db, id).await?)
    }
    /// Scopes of the API key, when the caller is one.
    async fn api_key_scopes(&self) -> Option<Vec<ApiKeyScope>> {
        match &self.0.principal {
            Principal::ApiKey { scopes, .. } => Some(scopes.clone()),
            Principal::User { .. } => None,
        }
    }
}

/// A partner's API key. The secret is never shown again after creation.
pub struct ApiKey(pub api_key::Model);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn scopes(&self) -> Vec<ApiKeyScope> {
        api_keys::scopes(&self.0)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn created_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.created_by else { return Ok(None) };
        related_user(ctx, id).await
    }
    /// Last use, at minute granularity.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

#[derive(Default)]
pub struct AccessQuery;

#[Object]
impl AccessQuery {
    /// Who the request acts as.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        Ok(Viewer(caller(ctx)?.clone()))
    }

    /// The account's API keys (company admins).
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] include_revoked: bool,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<ApiKey>> {
        let select = api_keys::list(caller(ctx)?, include_revoked)?;
        Ok(paginate(&app(ctx)?.db, select, api_key::Column::Id, |k| k.id, Order::NewestFirst, PageArgs::new(first, after, last, before), ApiKey).await?)
    }
}

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// What the key is for, e.g. "Zapier sync".
    pub name: String,
    pub scopes: Vec<ApiKeyScope>,
}

#[derive(InputObject)]
pub struct RevokeApiKeyInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct ImpersonateInput {
    /// A user of the admin's account or of one of its sub-accounts.
    pub user_id: ID,
}

#[derive(InputObject)]
pub struct LogInToAccountInput {
    /// One of the admin's sub-accounts (at any depth).
    pub account_id: ID,
}

pub struct CreateApiKeyPayload {
    key: api_key::Model,
    secret: String,
}

#[Object]
impl CreateApiKeyPayload {
    async fn api_key(&self) -> ApiKey {
        ApiKey(self.key.clone())
    }
    /// The key to send as `Authorization: Bearer <secret>`. Shown once: store it now.
    async fn secret(&self) -> &str {
        &self.secret
    }
}

pub struct ApiKeyPayload(api_key::Model);

#[Object]
impl ApiKeyPayload {
    async fn api_key(&self) -> ApiKey {
        ApiKey(self.0.clone())
    }
}

pub struct ImpersonatePayload {
    token: String,
    user: user::Model,
    expires_at: DateTime<Utc>,
}

#[Object]
impl ImpersonatePayload {
    /// A token that acts as `user` everywhere (HTTP and subscriptions) until `expiresAt`.
    async fn token(&self) -> &str {
        &self.token
    }
    async fn user(&self) -> User {
        User(self.user.clone())
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

#[derive(Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// Creates an API key for partners (company admins). The secret is in the payload only.
    async fn create_api_key(&self, ctx: &Context<'_>, input: CreateApiKeyInput) -> async_graphql::Result<CreateApiKeyPayload> {
        let (key, secret) = api_keys::create(app(ctx)?, caller(ctx)?, &input.name, &input.scopes).await?;
        Ok(CreateApiKeyPayload { key, secret })
    }

    /// Revokes an API key at once; revoking twice is harmless.
    async fn revoke_api_key(&self, ctx: &Context<'_>, input: RevokeApiKeyInput) -> async_graphql::Result<ApiKeyPayload> {
        let id = parse_id(&input.id, "input.id")?;
        Ok(ApiKeyPayload(api_keys::revoke(app(ctx)?, caller(ctx)?, id).await?))
    }

    /// "Log in as" a user (company admins). The audit log records the admin as actor.
    async fn impersonate(&self, ctx: &Context<'_>, input: ImpersonateInput) -> async_graphql::Result<ImpersonatePayload> {
        let id = parse_id(&input.user_id, "input.userId")?;
        let done = session::impersonate(app(ctx)?, caller(ctx)?, id).await?;
        Ok(ImpersonatePayload { token: done.token, user: done.user, expires_at: done.expires_at })
    }

    /// The gold "login" button: log in to a sub-account as the account itself, that is as its
    /// primary company admin (`Account.primaryAdmin`), audited like `impersonate`.
    async fn log_in_to_account(&self, ctx: &Context<'_>, input: LogInToAccountInput) -> async_graphql::Result<ImpersonatePayload> {
        let id = parse_id(&input.account_id, "input.accountId")?;
        let done = session::log_in_to_account(app(ctx)?, caller(ctx)?, id).await?;
        Ok(ImpersonatePayload { token: done.token, user: done.user, expires_at: done.expires_at })
    }
}
