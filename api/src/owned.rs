//! Rows that belong to one account: found, and deleted, only within the caller's account.
//!
//! Another account's row is NOT_FOUND exactly like a missing one, so that an id tells a
//! foreign caller nothing. The tenancy predicate of such lookups is written here once.

use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PrimaryKeyTrait, QueryFilter};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// An entity whose every row carries the account it belongs to.
pub trait Owned: EntityTrait {
    /// The row's name in NOT_FOUND, e.g. "contact person".
    const NAME: &'static str;
    /// Its object type in the audit log, e.g. "ContactPerson".
    const OBJECT_TYPE: &'static str;
    /// The prefix of its audit actions, e.g. "contact_person" (`contact_person.deleted`).
    const ACTION: &'static str;

    fn account_column() -> Self::Column;

    /// Deletes what hangs off the row before the row itself (explicitly, not only through
    /// ON DELETE CASCADE: SQLite enforces foreign keys per connection).
    fn delete_dependents(_txn: &DatabaseTransaction, _id: Uuid) -> impl std::future::Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }
}

/// The row `id` of the caller's account (anyone who may read the account).
pub async fn find<E>(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<E::Model>
where
    E: Owned,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<Uuid>,
{
    caller.require_read()?;
    E::find_by_id(id).filter(E::account_column().eq(caller.account_id)).one(db).await?.ok_or(ApiError::NotFound(E::NAME))
}

/// Deletes the row `id` of the caller's account, and what hangs off it, in one audited
/// transaction (company admins, API keys with WRITE). Answers the row as it was.
pub async fn delete<E>(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<E::Model>
where
    E: Owned,
    E::Model: Serialize,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<Uuid>,
{
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let before = find::<E>(change.db(), caller, id).await?;
    E::delete_dependents(change.db(), id).await?;
    E::delete_by_id(id).exec(change.db()).await?;
    change.record(caller.account_id, &format!("{}.deleted", E::ACTION), E::OBJECT_TYPE, id, Some(&before), None::<&()>).await?;
    change.commit().await?;
    Ok(before)
}
