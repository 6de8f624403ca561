use async_graphql::{Context, Enum, InputObject, MaybeUndefined, Object, ID};
use chrono::{DateTime, Utc};
use entity::user;
use uuid::Uuid;

use super::{
    accounts::Account,
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    loaders, parse_id,
};
use crate::{
    crm::{accounts, users as service},
    error::ApiError,
};

/// A user reached through a relation (who changed something, who acted, an owner), shown only
/// when the caller could read that user's account, as `account(id:) { users }` would: a
/// relation tells no more than a look-up by id. Otherwise null.
pub(crate) async fn related_user(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<User>> {
    let Some(user) = loaders(ctx)?.load_one(loaders::UserId(id)).await.map_err(ApiError::from)? else { return Ok(None) };
    let caller = caller(ctx)?;
    let visible = user.account_id == caller.account_id || accounts::is_visible(&app(ctx)?.db, caller, user.account_id).await?;
    Ok(visible.then_some(User(user)))
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Manages the account's settings and users.
    CompanyAdmin,
    BillingAdmin,
    CompanySupervisor,
    User,
}

impl From<user::Role> for Role {
    fn from(role: user::Role) -> Self {
        match role {
            user::Role::CompanyAdmin => Self::CompanyAdmin,
            user::Role::BillingAdmin => Self::BillingAdmin,
            user::Role::CompanySupervisor => Self::CompanySupervisor,
            user::Role::User => Self::User,
        }
    }
}

impl From<Role> for user::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::CompanyAdmin => Self::CompanyAdmin,
            Role::BillingAdmin => Self::BillingAdmin,
            Role::CompanySupervisor => Self::CompanySupervisor,
            Role::User => Self::User,
        }
    }
}

/// A user of the CRM.
pub struct User(pub user::Model);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// E.164, e.g. `+15551234567`; texts to the assigned user go here.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    async fn role(&self) -> Role {
        self.0.role.into()
    }
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The user's account; null when the caller may not see it (an admin of a parent
    /// account named in a sub-account's audit log, say).
    async fn account(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        if !crate::crm::accounts::is_visible(&app(ctx)?.db, caller(ctx)?, self.0.account_id).await? {
            return Ok(None);
        }
        Ok(loaders(ctx)?.load_one(loaders::AccountId(self.0.account_id)).await.map_err(ApiError::from)?.map(Account))
    }
}

#[derive(InputObject, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub active: Option<bool>,
    /// Case-insensitive substring of the name or email.
    pub search: Option<String>,
}

impl UserFilter {
    pub(crate) fn into_service(self) -> service::UserFilter {
        service::UserFilter { role: self.role.map(user::Role::from), active: self.active, search: self.search }
    }
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// Users of the caller's account.
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<User>> {
        let caller = caller(ctx)?;
        caller.require_read()?;
        let select = service::list(caller.account_id, filter.unwrap_or_default().into_service());
        Ok(paginate(&app(ctx)?.db, select, user::Column::Id, |u| u.id, Order::OldestFirst, PageArgs::new(first, after, last, before), User).await?)
    }

    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<User> {
        let id = parse_id(&id, "id")?;
        Ok(User(service::find(&app(ctx)?.db, caller(ctx)?, id).await?))
    }
}

#[derive(InputObject)]
pub struct CreateUserInput {
    /// The caller's account (the default) or one of its sub-accounts: a new sub-account gets
    /// its first company admin this way.
    pub account_id: Option<ID>,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub role: Role,
    #[graphql(default = true)]
    pub active: bool,
}

#[derive(InputObject)]
pub struct UpdateUserInput {
    pub id: ID,
    pub name: Option<String>,
    /// Company admins only.
    pub email: Option<String>,
    /// Null clears it.
    pub phone: MaybeUndefined<String>,
    /// Company admins only.
    pub role: Option<Role>,
    /// Company admins only; a deactivated user can no longer sign in.
    pub active: Option<bool>,
}

#[derive(InputObject)]
pub struct DeleteUserInput {
    pub id: ID,
}

pub struct UserPayload(pub user::Model);

#[Object]
impl UserPayload {
    async fn user(&self) -> User {
        User(self.0.clone())
    }
}

pub struct DeleteUserPayload(pub user::Model);

#[Object]
impl DeleteUserPayload {
    async fn deleted_user_id(&self) -> ID {
        ID(self.0.id.to_string())
    }
}

pub(crate) fn maybe<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> async_graphql::Result<UserPayload> {
        let account_id = input.account_id.as_ref().map(|id| parse_id(id, "input.accountId")).transpose()?;
        let new = service::NewUser { name: input.name, email: input.email, phone: input.phone, role: input.role.into(), active: input.active, account_id };
        Ok(UserPayload(service::create(app(ctx)?, caller(ctx)?, new).await?))
    }

    /// Users may change their own name and phone; the rest needs a company admin.
    async fn update_user(&self, ctx: &Context<'_>, input: UpdateUserInput) -> async_graphql::Result<UserPayload> {
        let patch = service::UserPatch {
            id: parse_id(&input.id, "input.id")?,
            name: input.name,
            email: input.email,
            phone: maybe(input.phone),
            role: input.role.map(Into::into),
            active: input.active,
        };
        Ok(UserPayload(service::update(app(ctx)?, caller(ctx)?, patch).await?))
    }

    async fn delete_user(&self, ctx: &Context<'_>, input: DeleteUserInput) -> async_graphql::Result<DeleteUserPayload> {
        let id = parse_id(&input.id, "input.id")?;
        Ok(DeleteUserPayload(service::delete(app(ctx)?, caller(ctx)?, id).await?))
    }
}
