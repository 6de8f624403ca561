//! The platform operator's fields (see `crate::platform`): tenants, created and listed with an
//! operator key. Nothing else in the schema accepts that key, and these accept nothing else.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::account;

use super::{
    app,
    connection::{paginate, IdConnection, Order, PageArgs},
    Session,
};
use crate::{
    bootstrap::FirstAdmin,
    error::{ApiError, ApiResult},
    platform::{self, Operator},
    session,
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
    /// Every tenant (top-level account), oldest first, a page at a time. Operators only.
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<Tenant>> {
        operator(ctx)?;
        let select = platform::tenants();
        let args = PageArgs::new(first, after, last, before);
        Ok(paginate(&app(ctx)?.db, select, account::Column::Id, |a| a.id, Order::OldestFirst, args, Tenant::from).await?)
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

#[derive(InputObject)]
pub struct OperatorLogInInput {
    /// A tenant or a sub-account.
    pub account_id: ID,
    /// The user to act as; by default the account's primary company admin.
    pub user_id: Option<ID>,
}

/// A user's token for the operator, who acts as that user until it expires or the operator
/// key is revoked. Only the user's id and name: the operator reads the rest with the token.
#[derive(SimpleObject)]
pub struct OperatorLogInPayload {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account_id: ID,
    pub user_id: ID,
    pub user_name: String,
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

    /// Logs the operator in to an account as one of its users (by default its primary company
    /// admin): the only way an operator reads or changes anything inside a tenant. Audited in
    /// the account's log (the operator's key as the actor) and in the platform's.
    async fn operator_log_in(&self, ctx: &Context<'_>, input: OperatorLogInInput) -> async_graphql::Result<OperatorLogInPayload> {
        let operator = operator(ctx)?;
        let account_id = super::parse_id(&input.account_id, "input.accountId")?;
        let user_id = input.user_id.as_ref().map(|id| super::parse_id(id, "input.userId")).transpose()?;
        let done = session::operator_log_in(app(ctx)?, operator, account_id, user_id).await?;
        Ok(OperatorLogInPayload {
            token: done.token,
            expires_at: done.expires_at,
            account_id: ID(done.user.account_id.to_string()),
            user_id: ID(done.user.id.to_string()),
            user_name: done.user.name,
        })
    }

    /// Pauses or resumes a tenant, with what that sets off (Account Paused; held mail
    /// released on resuming). Operators only.
    async fn set_tenant_paused(&self, ctx: &Context<'_>, input: SetTenantPausedInput) -> async_graphql::Result<Tenant> {
        let operator = operator(ctx)?;
        let app = app(ctx)?;
        let id = super::parse_id(&input.account_id, "input.accountId")?;
        let (account, raised) = platform::set_paused(&app.db, operator, id, input.paused).await?;
        crate::notifications::announce(app, &raised).await;
        Ok(account.into())
    }
}
