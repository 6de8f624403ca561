//! Accounts and sub-accounts.
//!
//! A caller sees their own account. Company admins (and WRITE keys) also see and manage the
//! sub-accounts below it, at any depth: that is what roll-ups and "log in as" need. Nobody
//! sees upwards or sideways.

use chrono::Utc;
use entity::account;
use sea_orm::{sea_query::Expr, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::{account_is_within, Caller},
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

pub use super::add_ons::{add_ons, AddOn};

fn add_ons_json(list: &[AddOn]) -> serde_json::Value {
    let mut list = list.to_vec();
    list.sort_by_key(|a| *a as u8);
    list.dedup();
    serde_json::to_value(list).expect("add-on codes serialize")
}

/// Company admins and WRITE keys manage the sub-accounts below their account.
fn manages_descendants(caller: &Caller) -> bool {
    caller.require_admin_or_write_key().is_ok()
}

/// Whether the caller may see account `id` (no query for the caller's own account).
pub async fn is_visible(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<bool> {
    Ok(id == caller.account_id || (manages_descendants(caller) && account_is_within(db, id, caller.account_id).await?))
}

/// The account `id` if the caller may see it; otherwise NOT_FOUND.
pub async fn find_visible(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<account::Model> {
    caller.require_read()?;
    if !is_visible(db, caller, id).await? {
        return Err(ApiError::NotFound("account"));
    }
    account::Entity::find_by_id(id).one(db).await?.ok_or(ApiError::NotFound("account"))
}

/// Every account below `account_id`, at any depth (breadth first, bounded like the walk up).
pub async fn descendants(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<Vec<account::Model>> {
    let mut found = Vec::new();
    let mut level = vec![account_id];
    for _ in 0..32 {
        if level.is_empty() {
            break;
        }
        let children = account::Entity::find().filter(account::Column::ParentId.is_in(level)).all(db).await?;
        level = children.iter().map(|a| a.id).collect();
        found.extend(children);
    }
    Ok(found)
}

pub struct NewSubAccount {
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub time_zone: Option<String>,
    pub paused: bool,
    pub add_ons: Vec<AddOn>,
}

pub async fn create_sub_account(app: &AppState, caller: &Caller, input: NewSubAccount) -> ApiResult<account::Model> {
    caller.require_admin_or_write_key()?;
    let name = validate::name("input.name", &input.name)?;
    let mut change = Change::begin(app, caller).await?;
    let parent = find_visible(change.db(), caller, input.parent_id.unwrap_or(caller.account_id)).await?;
    let time_zone = match &input.time_zone {
        Some(tz) => validate::time_zone("input.timeZone", tz)?,
        None => parent.time_zone.clone(),
    };
    let now = Utc::now();
    let model = account::Model {
        id: Uuid::now_v7(),
        name,
        parent_id: Some(parent.id),
        time_zone,
        paused: input.paused,
        add_ons: add_ons_json(&input.add_ons),
        version: 1,
        created_at: now,
        updated_at: now,
        updated_by: caller.user_id(),
        primary_admin_id: None,
    };
    let model = model.into_active_model().reset_all().insert(change.db()).await?;
    change.record(model.id, "account.created", "Account", model.id, None::<&account::Model>, Some(&model)).await?;
    change.commit().await?;
    Ok(model)
}

pub struct AccountPatch {
    pub id: Option<Uuid>,
    pub expected_version: Option<i32>,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub paused: Option<bool>,
    pub add_ons: Option<Vec<AddOn>>,
    /// `Some(None)` clears the designation.
    pub primary_admin_id: Option<Option<Uuid>>,
}

/// Changes account settings; with `expected_version`, only if nobody changed them since.
pub async fn update_account(app: &AppState, caller: &Caller, patch: AccountPatch) -> ApiResult<account::Model> {
    caller.require_admin_or_write_key()?;
    let name = patch.name.as_deref().map(|n| validate::name("input.name", n)).transpose()?;
    let time_zone = patch.time_zone.as_deref().map(|tz| validate::time_zone("input.timeZone", tz)).transpose()?;
    let mut change = Change::begin(app, caller).await?;
    let before = find_visible(change.db(), caller, patch.id.unwrap_or(caller.account_id)).await?;
    let expected = patch.expected_version.unwrap_or(before.version);
    let mut update = account::Entity::update_many()
        .col_expr(account::Column::Version, Expr::col(account::Column::Version).add(1))
        .col_expr(account::Column::UpdatedAt, Expr::value(Utc::now()))
        .col_expr(account::Column::UpdatedBy, Expr::value(caller.user_id()));
    if let Some(name) = name {
        update = update.col_expr(account::Column::Name, Expr::value(name));
    }
    if let Some(tz) = time_zone {
        update = update.col_expr(account::Column::TimeZone, Expr::value(tz));
    }
    if let Some(paused) = patch.paused {
        update = update.col_expr(account::Column::Paused, Expr::value(paused));
    }
    if let Some(list) = &patch.add_ons {
        update = update.col_expr(account::Column::AddOns, Expr::value(add_ons_json(list)));
    }
    if let Some(primary) = patch.primary_admin_id {
        if let Some(id) = primary {
            let admin = entity::user::Entity::find_by_id(id).one(change.db()).await?;
            if !admin.is_some_and(|u| u.account_id == before.id && u.active && u.role == entity::user::Role::CompanyAdmin) {
                return Err(ApiError::bad_input("input.primaryAdminId", "an active company admin of the account"));
            }
        }
        update = update.col_expr(account::Column::PrimaryAdminId, Expr::value(primary));
    }
    // The version predicate makes the check and the write one atomic statement.
    let result = update.filter(account::Column::Id.eq(before.id)).filter(account::Column::Version.eq(expected)).exec(change.db()).await?;
    if result.rows_affected == 0 {
        return Err(ApiError::Conflict(format!(
            "the account settings changed since version {expected} (now version {}); reload and try again",
            before.version
        )));
    }
    let after = account::Entity::find_by_id(before.id).one(change.db()).await?.ok_or(ApiError::NotFound("account"))?;
    change.record(after.id, "account.updated", "Account", after.id, Some(&before), Some(&after)).await?;
    let raised = paused_or_resumed(change.db(), &before, &after).await?;
    change.commit().await?;
    if let Some(raised) = raised {
        crate::notifications::announce(app, &raised.notifications).await;
    }
    Ok(after)
}

/// What pausing or resuming an account sets off, in the transaction that changed it: active
/// to paused raises Account Paused for the account's users whose switches say so (announce
/// the answer after the commit); paused to active releases its held messages.
pub async fn paused_or_resumed(
    txn: &sea_orm::DatabaseTransaction,
    before: &account::Model,
    after: &account::Model,
) -> ApiResult<Option<crate::notifications::fanout::RecordedBatch>> {
    match (before.paused, after.paused) {
        (false, true) => Ok(Some(raise_paused(txn, after).await?)),
        (true, false) => {
            crate::outbox::release_held(txn, after.id, Utc::now()).await?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// The company admin "log in to account" acts as: the designated one while they are an active
/// company admin of the account, else its longest-standing active company admin.
pub async fn primary_admin(db: &impl ConnectionTrait, account: &account::Model) -> ApiResult<Option<entity::user::Model>> {
    use entity::user;
    use sea_orm::QueryOrder;
    let admins = user::Entity::find()
        .filter(user::Column::AccountId.eq(account.id))
        .filter(user::Column::Role.eq(user::Role::CompanyAdmin))
        .filter(user::Column::Active.eq(true))
        .order_by_asc(user::Column::CreatedAt)
        .order_by_asc(user::Column::Id)
        .all(db)
        .await?;
    let designated = account.primary_admin_id.and_then(|id| admins.iter().find(|u| u.id == id).cloned());
    Ok(designated.or_else(|| admins.into_iter().next()))
}

/// Account Paused for the users of `account` (their switches decide who sees it).
async fn raise_paused(txn: &sea_orm::DatabaseTransaction, account: &account::Model) -> ApiResult<crate::notifications::fanout::RecordedBatch> {
    use crate::notifications::{catalog::NotificationType, fanout};
    let users: Vec<Uuid> = entity::user::Entity::find()
        .filter(entity::user::Column::AccountId.eq(account.id))
        .filter(entity::user::Column::Active.eq(true))
        .select_only()
        .column(entity::user::Column::Id)
        .into_tuple()
        .all(txn)
        .await?;
    let event = fanout::AddressedEvent {
        kind: NotificationType::AccountPaused,
        account_id: account.id,
        contact_id: None,
        title: format!("Account {} was paused", account.name),
        body: None,
        data: Some(serde_json::json!({ "accountId": account.id })),
        action_url: None,
        occurred_at: account.updated_at,
        idempotency_key: format!("account:{}:paused:v{}", account.id, account.version),
        recipients: users,
        email: false,
    };
    fanout::record_addressed(txn, vec![event]).await
}

/// The direct sub-accounts of an account (the caller's visibility of it is checked first).
pub fn children(account_id: Uuid) -> sea_orm::Select<account::Entity> {
    account::Entity::find().filter(account::Column::ParentId.eq(account_id))
}
