use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};
use chrono::{DateTime, Utc};
use entity::{account, user};

use super::{
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    parse_id,
    users::{User, UserFilter},
};
use crate::crm::accounts::{self as service, AddOn};

/// A CRM account (company). Sub-accounts hang below a parent account.
pub struct Account(pub account::Model);

#[Object]
impl Account {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// IANA time zone, e.g. `Europe/Paris`: schedules run at the account's local time.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    /// A paused account raises an Account Paused notification and sends nothing.
    async fn paused(&self) -> bool {
        self.0.paused
    }
    async fn add_ons(&self) -> Vec<AddOn> {
        service::add_ons(&self.0)
    }
    /// Settings version; pass it as `expectedVersion` to update safely.
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Who changed the settings last (null for changes by API keys or the system).
    async fn updated_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.updated_by else { return Ok(None) };
        super::users::related_user(ctx, id).await
    }
    /// Whom "log in to account" acts as: the designated primary company admin, else the
    /// account's longest-standing active company admin.
    async fn primary_admin(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        self.ensure_visible(ctx).await?;
        Ok(service::primary_admin(&app(ctx)?.db, &self.0).await?.map(User))
    }
    /// The parent account, when the caller may see it.
    async fn parent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        let Some(parent_id) = self.0.parent_id else { return Ok(None) };
        match service::find_visible(&app(ctx)?.db, caller(ctx)?, parent_id).await {
            Ok(parent) => Ok(Some(Account(parent))),
            Err(crate::error::ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    /// Direct sub-accounts.
    async fn sub_accounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<Account>> {
        self.ensure_visible(ctx).await?;
        let select = crate::crm::accounts::children(self.0.id);
        Ok(paginate(&app(ctx)?.db, select, account::Column::Id, |a| a.id, Order::OldestFirst, PageArgs::new(first, after, last, before), Account).await?)
    }
    /// Users of this account (admins use it to pick whom to log in as in sub-accounts).
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<User>> {
        self.ensure_visible(ctx).await?;
        let select = crate::crm::users::list(self.0.id, filter.unwrap_or_default().into_service());
        Ok(paginate(&app(ctx)?.db, select, user::Column::Id, |u| u.id, Order::OldestFirst, PageArgs::new(first, after, last, before), User).await?)
    }
}

impl Account {
    /// Lists hang off an account only for callers who may see it, however it was reached.
    async fn ensure_visible(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        if service::is_visible(&app(ctx)?.db, caller(ctx)?, self.0.id).await? {
            Ok(())
        } else {
            Err(crate::error::ApiError::NotFound("account").into())
        }
    }
}

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The caller's account, or a sub-account of it (company admins).
    async fn account(&self, ctx: &Context<'_>, id: Option<ID>) -> async_graphql::Result<Account> {
        let caller = caller(ctx)?;
        let id = id.map(|id| parse_id(&id, "id")).transpose()?.unwrap_or(caller.account_id);
        Ok(Account(service::find_visible(&app(ctx)?.db, caller, id).await?))
    }
}

#[derive(InputObject)]
pub struct CreateSubAccountInput {
    /// Defaults to the caller's account.
    pub parent_id: Option<ID>,
    pub name: String,
    /// Defaults to the parent's time zone.
    pub time_zone: Option<String>,
    #[graphql(default)]
    pub paused: bool,
    #[graphql(default)]
    pub add_ons: Vec<AddOn>,
}

#[derive(InputObject)]
pub struct UpdateAccountInput {
    /// Defaults to the caller's account.
    pub id: Option<ID>,
    /// The version the change is based on; CONFLICT when the account changed since.
    pub expected_version: Option<i32>,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub paused: Option<bool>,
    /// Replaces the enabled add-ons.
    pub add_ons: Option<Vec<AddOn>>,
    /// The company admin "log in to account" acts as (an active company admin of the
    /// account); null clears it, and the longest-standing active company admin is used.
    pub primary_admin_id: MaybeUndefined<ID>,
}

pub struct AccountPayload {
    pub model: account::Model,
}

#[Object]
impl AccountPayload {
    async fn account(&self) -> Account {
        Account(self.model.clone())
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates a sub-account below the caller's account (or below one of its sub-accounts).
    async fn create_sub_account(&self, ctx: &Context<'_>, input: CreateSubAccountInput) -> async_graphql::Result<AccountPayload> {
        let parent_id = input.parent_id.as_ref().map(|id| parse_id(id, "input.parentId")).transpose()?;
        let model = service::create_sub_account(
            app(ctx)?,
            caller(ctx)?,
            service::NewSubAccount { parent_id, name: input.name, time_zone: input.time_zone, paused: input.paused, add_ons: input.add_ons },
        )
        .await?;
        Ok(AccountPayload { model })
    }

    /// Changes account settings (company admins).
    async fn update_account(&self, ctx: &Context<'_>, input: UpdateAccountInput) -> async_graphql::Result<AccountPayload> {
        let id = input.id.as_ref().map(|id| parse_id(id, "input.id")).transpose()?;
        let model = service::update_account(
            app(ctx)?,
            caller(ctx)?,
            service::AccountPatch {
                id,
                expected_version: input.expected_version,
                name: input.name,
                time_zone: input.time_zone,
                paused: input.paused,
                add_ons: input.add_ons,
                primary_admin_id: match input.primary_admin_id {
                    MaybeUndefined::Value(id) => Some(Some(parse_id(&id, "input.primaryAdminId")?)),
                    MaybeUndefined::Null => Some(None),
                    MaybeUndefined::Undefined => None,
                },
            },
        )
        .await?;
        Ok(AccountPayload { model })
    }
}
