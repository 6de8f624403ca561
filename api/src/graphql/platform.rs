//! The platform operator's fields (see `crate::platform`): tenants, created and listed with an
//! operator key. Nothing else in the schema accepts that key, and these accept nothing else.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::account;

use super::{app, Session};
use crate::{
    bootstrap::FirstAdmin,
    error::{ApiError, ApiResult},
    platform::{self, Operator},
};

/// The operator behind the request, if it presented an operator key.
pub(crate) struct OperatorSession(pub Option<Operator>);

fn operator<'a>(ctx: &Context<'a>) -> ApiResult<&'a Operator> {
    if let Ok(OperatorSession(Some(operator))) = ctx.data::<OperatorSession>() {
        return Ok(operator);
    }
    match ctx.data::<Session>() {
        Ok(Session(Some(_))) => Err(ApiError::forbidden("this needs an operator key (api operator-key)")),
        _ => Err(ApiError::Unauthenticated),
    }
}

/// A tenant as the operator sees it: nothing of its data.
#[derive(SimpleObject)]
pub struct Tenant {
    pub id: ID,
    pub name: String,
    pub time_zone: String,
    pub paused: bool,
    pub created_at: DateTime<Utc>,
}

impl From<account::Model> for Tenant {
    fn from(a: account::Model) -> Self {
        Self { id: ID(a.id.to_string()), name: a.name, time_zone: a.time_zone, paused: a.paused, created_at: a.created_at }
    }
}

#[derive(Default)]
pub struct PlatformQuery;

#[Object]
impl PlatformQuery {
    /// Every tenant (top-level account), oldest first. Operators only.
    async fn tenants(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Tenant>> {
        operator(ctx)?;
        Ok(platform::accounts(&app(ctx)?.db).await?.into_iter().map(Tenant::from).collect())
    }
}

#[derive(InputObject)]
pub struct CreateAccountInput {
    pub name: String,
    /// An IANA time zone.
    #[graphql(default = "UTC")]
    pub time_zone: String,
    /// The account's first company admin.
    pub admin_name: String,
    pub admin_email: String,
}

#[derive(SimpleObject)]
pub struct CreateAccountPayload {
    pub tenant: Tenant,
    /// The first company admin's id (mint them a token with `api token --user`).
    pub admin_id: ID,
}

#[derive(InputObject)]
pub struct SetTenantPausedInput {
    pub account_id: ID,
    pub paused: bool,
}

#[derive(InputObject)]
pub struct DeleteAccountInput {
    pub account_id: ID,
    /// Also delete its sub-accounts (at any depth); without it an account that has some is
    /// refused (CONFLICT).
    #[graphql(default)]
    pub cascade: bool,
}

#[derive(SimpleObject)]
pub struct DeleteAccountPayload {
    /// The account and, with `cascade`, its sub-accounts.
    pub deleted_account_ids: Vec<ID>,
}

#[derive(Default)]
pub struct PlatformMutation;

#[Object]
impl PlatformMutation {
    /// A new tenant with its first company admin, audited in the platform's log. Operators only.
    async fn create_account(&self, ctx: &Context<'_>, input: CreateAccountInput) -> async_graphql::Result<CreateAccountPayload> {
        let operator = operator(ctx)?;
        let first = FirstAdmin { account_name: input.name, time_zone: input.time_zone, admin_name: input.admin_name, admin_email: input.admin_email };
        let (account, admin) = platform::create_account(&app(ctx)?.db, operator, first).await?;
        Ok(CreateAccountPayload { tenant: account.into(), admin_id: ID(admin.id.to_string()) })
    }

    /// Deletes an account (a tenant or a sub-account) with every row it owns, in one
    /// transaction, audited on the platform's log. Operators only.
    async fn delete_account(&self, ctx: &Context<'_>, input: DeleteAccountInput) -> async_graphql::Result<DeleteAccountPayload> {
        let operator = operator(ctx)?;
        let id = super::parse_id(&input.account_id, "input.accountId")?;
        let deleted = platform::delete_account(&app(ctx)?.db, operator, id, input.cascade).await?;
        Ok(DeleteAccountPayload { deleted_account_ids: deleted.into_iter().map(|id| ID(id.to_string())).collect() })
    }

    /// Pauses or resumes a tenant, with what that sets off (Account Paused; held mail
    /// released on resuming). Operators only.
    async fn set_tenant_paused(&self, ctx: &Context<'_>, input: SetTenantPausedInput) -> async_graphql::Result<Tenant> {
        let operator = operator(ctx)?;
        let app = app(ctx)?;
        let id = super::parse_id(&input.account_id, "input.accountId")?;
        let (account, raised) = platform::set_paused(&app.db, operator, id, input.paused).await?;
        crate::notifications::fanout::announce(app, &raised).await;
        Ok(account.into())
    }
}
