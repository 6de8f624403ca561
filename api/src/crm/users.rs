//! Users of an account.
//!
//! Emails are unique within an account (lower-cased). An account always keeps at least one
//! active company admin: a change that would leave none is refused with CONFLICT, because
//! nobody could then manage the account's settings.

use chrono::Utc;
use entity::{contact_assignee, notification, user, user::Role};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

/// The user `id` of the caller's account; otherwise NOT_FOUND.
impl crate::owned::Owned for user::Entity {
    const NAME: &'static str = "user";
    const OBJECT_TYPE: &'static str = "User";
    const ACTION: &'static str = "user";
    fn account_column() -> user::Column {
        user::Column::AccountId
    }
}

pub async fn find(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<user::Model> {
    crate::owned::find::<user::Entity>(db, caller, id).await
}

async fn ensure_email_free(db: &impl ConnectionTrait, account_id: Uuid, email: &str, except: Option<Uuid>) -> ApiResult<()> {
    let mut query = user::Entity::find().filter(user::Column::AccountId.eq(account_id)).filter(user::Column::Email.eq(email));
    if let Some(id) = except {
        query = query.filter(user::Column::Id.ne(id));
    }
    if query.count(db).await? > 0 {
        return Err(ApiError::Conflict(format!("input.email: a user with email {email} already exists in this account")));
    }
    Ok(())
}

async fn ensure_an_admin_remains(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<()> {
    let admins = user::Entity::find()
        .filter(user::Column::AccountId.eq(account_id))
        .filter(user::Column::Role.eq(Role::CompanyAdmin))
        .filter(user::Column::Active.eq(true))
        .count(db)
        .await?;
    if admins == 0 {
        return Err(ApiError::Conflict("the account must keep at least one active company admin".into()));
    }
    Ok(())
}

pub struct NewUser {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub role: Role,
    pub active: bool,
    /// Defaults to the caller's account.
    pub account_id: Option<Uuid>,
}

/// Creates a user in the caller's account, or in one of its sub-accounts (at any depth), such
/// as a new sub-account's first company admin.
pub async fn create(app: &AppState, caller: &Caller, input: NewUser) -> ApiResult<user::Model> {
    caller.require_admin_or_write_key()?;
    let name = validate::name("input.name", &input.name)?;
    let email = validate::email("input.email", &input.email)?;
    let phone = input.phone.as_deref().map(|p| validate::phone("input.phone", p)).transpose()?;
    let account_id = input.account_id.unwrap_or(caller.account_id);
    let mut change = Change::begin(app, caller).await?;
    if !super::accounts::is_visible(change.db(), caller, account_id).await? {
        return Err(ApiError::NotFound("account"));
    }
    ensure_email_free(change.db(), account_id, &email, None).await?;
    let now = Utc::now();
    let model = user::Model { id: Uuid::now_v7(), account_id, name, email, phone, role: input.role, active: input.active, created_at: now, updated_at: now }
        .into_active_model()
        .reset_all()
        .insert(change.db())
        .await?;
    // Recorded in the new user's account and, for a sub-account's, in the caller's too.
    change.record(model.account_id, "user.created", "User", model.id, None::<&user::Model>, Some(&model)).await?;
    if model.account_id != caller.account_id {
        change.record(caller.account_id, "user.created", "User", model.id, None::<&user::Model>, Some(&model)).await?;
    }
    change.commit().await?;
    Ok(model)
}

pub struct UserPatch {
    pub id: Uuid,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `Some(None)` clears the phone.
    pub phone: Option<Option<String>>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// Users may change their own name and phone; email, role and activity are the admin's.
pub async fn update(app: &AppState, caller: &Caller, patch: UserPatch) -> ApiResult<user::Model> {
    let admin_fields = patch.email.is_some() || patch.role.is_some() || patch.active.is_some();
    if admin_fields {
        caller.require_admin_or_write_key()?;
    } else {
        caller.require_self_or_admin(patch.id)?;
    }
    let name = patch.name.as_deref().map(|n| validate::name("input.name", n)).transpose()?;
    let email = patch.email.as_deref().map(|e| validate::email("input.email", e)).transpose()?;
    let phone = match &patch.phone {
        Some(Some(p)) => Some(Some(validate::phone("input.phone", p)?)),
        Some(None) => Some(None),
        None => None,
    };
    let mut change = Change::begin(app, caller).await?;
    let before = find(change.db(), caller, patch.id).await?;
    let mut row = before.clone().into_active_model();
    if let Some(name) = name {
        row.name = Set(name);
    }
    if let Some(email) = email {
        ensure_email_free(change.db(), before.account_id, &email, Some(before.id)).await?;
        row.email = Set(email);
    }
    if let Some(phone) = phone {
        row.phone = Set(phone);
    }
    if let Some(role) = patch.role {
        row.role = Set(role);
    }
    if let Some(active) = patch.active {
        row.active = Set(active);
    }
    row.updated_at = Set(Utc::now());
    let after = row.update(change.db()).await?;
    if before.role == Role::CompanyAdmin && before.active && (after.role != Role::CompanyAdmin || !after.active) {
        ensure_an_admin_remains(change.db(), after.account_id).await?;
    }
    change.record(after.account_id, "user.updated", "User", after.id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}

pub async fn delete(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<user::Model> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let before = find(change.db(), caller, id).await?;
    contact_assignee::Entity::delete_many().filter(contact_assignee::Column::UserId.eq(id)).exec(change.db()).await?;
    user::Entity::delete_by_id(before.id).exec(change.db()).await?;
    // Their panel rows have no foreign key to cascade from on PostgreSQL (migration 000008).
    // After the user's row: deleting it waits for the fan-outs that chose them (they hold it
    // `FOR KEY SHARE`), so their rows are committed by now and go too.
    notification::Entity::delete_many().filter(notification::Column::UserId.eq(id)).exec(change.db()).await?;
    ensure_an_admin_remains(change.db(), before.account_id).await?;
    change.record(before.account_id, "user.deleted", "User", before.id, Some(&before), None::<&user::Model>).await?;
    change.commit().await?;
    Ok(before)
}

/// Which users a list shows.
#[derive(Debug, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub active: Option<bool>,
    /// Case-insensitive substring of the name or email.
    pub search: Option<String>,
}

/// The users of `account_id` that pass `filter`; the caller's right to read that account is
/// checked before.
pub fn list(account_id: Uuid, filter: UserFilter) -> sea_orm::Select<user::Entity> {
    use sea_orm::sea_query::{Expr, Func, LikeExpr};
    let mut select = user::Entity::find().filter(user::Column::AccountId.eq(account_id));
    if let Some(role) = filter.role {
        select = select.filter(user::Column::Role.eq(role));
    }
    if let Some(active) = filter.active {
        select = select.filter(user::Column::Active.eq(active));
    }
    if let Some(search) = filter.search.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        select = select.filter(
            sea_orm::Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(user::Column::Name))).like(LikeExpr::new(pattern.clone()).escape('\\')))
                .add(user::Column::Email.like(LikeExpr::new(pattern).escape('\\'))),
        );
    }
    select
}
