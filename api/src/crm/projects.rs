//! Projects, optionally for one of the account's customers.

use chrono::Utc;
use entity::{contact, contact::ContactKind, project};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    owned::{self, Owned},
    state::AppState,
    validate,
};

impl Owned for project::Entity {
    const NAME: &'static str = "project";
    const OBJECT_TYPE: &'static str = "Project";
    const ACTION: &'static str = "project";
    fn account_column() -> project::Column {
        project::Column::AccountId
    }
}

pub async fn find(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<project::Model> {
    owned::find::<project::Entity>(db, caller, id).await
}

/// A project's customer must be a CUSTOMER (not a lead) of the same account.
async fn ensure_customer(db: &impl ConnectionTrait, account_id: Uuid, id: Uuid) -> ApiResult<()> {
    let found = contact::Entity::find_by_id(id).filter(contact::Column::AccountId.eq(account_id)).one(db).await?;
    match found {
        None => Err(ApiError::bad_input("input.customerId", "customer not found")),
        Some(c) if c.kind != ContactKind::Customer => Err(ApiError::bad_input("input.customerId", "this contact is a lead, not a customer")),
        Some(_) => Ok(()),
    }
}

pub async fn create(app: &AppState, caller: &Caller, name: &str, customer_id: Option<Uuid>) -> ApiResult<project::Model> {
    caller.require_admin_or_write_key()?;
    let name = validate::name("input.name", name)?;
    let mut change = Change::begin(app, caller).await?;
    if let Some(id) = customer_id {
        ensure_customer(change.db(), caller.account_id, id).await?;
    }
    let now = Utc::now();
    let model = project::Model { id: Uuid::now_v7(), account_id: caller.account_id, name, customer_id, created_at: now, updated_at: now }
        .into_active_model()
        .reset_all()
        .insert(change.db())
        .await?;
    change.record(model.account_id, "project.created", "Project", model.id, None::<&()>, Some(&model)).await?;
    change.commit().await?;
    Ok(model)
}

pub async fn update(app: &AppState, caller: &Caller, id: Uuid, name: Option<&str>, customer_id: Option<Option<Uuid>>) -> ApiResult<project::Model> {
    caller.require_admin_or_write_key()?;
    let name = name.map(|n| validate::name("input.name", n)).transpose()?;
    let mut change = Change::begin(app, caller).await?;
    let before = find(change.db(), caller, id).await?;
    let mut row = before.clone().into_active_model();
    if let Some(name) = name {
        row.name = Set(name);
    }
    if let Some(customer) = customer_id {
        if let Some(cid) = customer {
            ensure_customer(change.db(), caller.account_id, cid).await?;
        }
        row.customer_id = Set(customer);
    }
    row.updated_at = Set(Utc::now());
    let after = row.update(change.db()).await?;
    change.record(after.account_id, "project.updated", "Project", after.id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}

pub async fn delete(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<project::Model> {
    owned::delete::<project::Entity>(app, caller, id).await
}

/// The account's projects, those of one customer when given (anyone who may read the account).
pub fn list(caller: &Caller, customer_id: Option<Uuid>) -> ApiResult<sea_orm::Select<project::Entity>> {
    caller.require_read()?;
    let select = project::Entity::find().filter(project::Column::AccountId.eq(caller.account_id));
    Ok(match customer_id {
        Some(customer) => select.filter(project::Column::CustomerId.eq(customer)),
        None => select,
    })
}
