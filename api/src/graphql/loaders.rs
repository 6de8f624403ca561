//! Request-scoped DataLoaders with typed keys: every relation field of a list resolves in one
//! statement per level of nesting, whatever the page size.
//!
//! Loaders fetch by id without a tenant predicate: they only follow relations of objects the
//! resolvers already scoped to the caller, and the relations never cross accounts except to
//! visible ancestors and descendants.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{account, contact, contact_assignee, contact_person, user};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccountId(pub Uuid);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserId(pub Uuid);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContactId(pub Uuid);
/// The ordered assigned users of a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AssigneesOf(pub Uuid);
/// The persons of a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PersonsOf(pub Uuid);

#[derive(Clone, Debug, thiserror::Error)]
#[error("dataloader: {0}")]
pub struct LoadError(Arc<DbErr>);

impl From<LoadError> for ApiError {
    fn from(err: LoadError) -> Self {
        let unavailable = crate::db::is_unavailable(&err.0);
        let cause = anyhow::Error::new(err);
        if unavailable {
            ApiError::Unavailable(cause)
        } else {
            ApiError::Internal(cause)
        }
    }
}

impl From<DbErr> for LoadError {
    fn from(err: DbErr) -> Self {
        Self(Arc::new(err))
    }
}

pub struct Db(pub DatabaseConnection);

/// Request-scoped, with a cache: a row loaded once per request (or fed from
/// authentication) is not loaded again.
pub type Loaders = DataLoader<Db, HashMapCache>;

pub fn loaders(db: DatabaseConnection) -> Loaders {
    DataLoader::with_cache(Db(db), tokio::spawn, HashMapCache::default())
}

/// The loaders of one operation, made when a resolver first needs them.
///
/// Most operations, and every idle subscription, never load a relation, so none is made until
/// one is needed: a loader held by an open panel would keep its connection handle, a lock and,
/// once its caches are cleared after a result, an empty cache per key type
/// (`DataLoader::clear` creates what it clears) for as long as the panel stays open. A
/// subscription [`forget`](Self::forget)s its loaders after each result instead, so that the
/// next result shows current rows and nothing is kept while it waits.
#[derive(Default)]
pub struct OperationLoaders(std::sync::Mutex<Option<Arc<Loaders>>>);

impl OperationLoaders {
    /// Loaders already made (and primed, say with the signed-in user's rows).
    pub fn with(loaders: Loaders) -> Self {
        Self(std::sync::Mutex::new(Some(Arc::new(loaders))))
    }

    /// The operation's loaders, made on first use.
    pub fn get(&self, db: &DatabaseConnection) -> Arc<Loaders> {
        self.0.lock().expect("loaders lock").get_or_insert_with(|| Arc::new(loaders(db.clone()))).clone()
    }

    /// Drops the loaders and everything they cached; resolvers still running keep theirs.
    pub fn forget(&self) {
        self.0.lock().expect("loaders lock").take();
    }
}

/// Loads the relations of a whole page at once, before its items are resolved, when the
/// selection asks for them (look-ahead). Each item's `load_one` then hits the cache: the
/// same single statement as batching, but without the batch task, whose batching delay runs
/// on a shared timer thread that, under load, stretches it far beyond its setting: a page's
/// relations must not wait on it (see docs/benchmarks.md, "Settings page"). The batching
/// loader still covers every other path.
pub async fn prefetch<K>(loaders: Arc<Loaders>, keys: Vec<K>) -> Result<(), LoadError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    Db: Loader<K, Error = LoadError>,
{
    let keys: Vec<K> = keys.into_iter().collect::<std::collections::HashSet<K>>().into_iter().collect();
    if keys.is_empty() {
        return Ok(());
    }
    let values = loaders.loader().load(&keys).await?;
    loaders.feed_many(values).await;
    Ok(())
}

/// Whether a connection field's selection asks for `field` on its nodes.
pub fn wants(ctx: &async_graphql::Context<'_>, field: &str) -> bool {
    let look = ctx.look_ahead();
    look.field("nodes").field(field).exists() || look.field("edges").field("node").field(field).exists()
}

fn ids<K: Copy>(keys: &[K], id: impl Fn(K) -> Uuid) -> Vec<Uuid> {
    keys.iter().map(|k| id(*k)).collect()
}

impl Loader<AccountId> for Db {
    type Value = account::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[AccountId]) -> Result<HashMap<AccountId, Self::Value>, Self::Error> {
        let rows = account::Entity::find().filter(account::Column::Id.is_in(ids(keys, |k| k.0))).all(&self.0).await?;
        Ok(rows.into_iter().map(|r| (AccountId(r.id), r)).collect())
    }
}

impl Loader<UserId> for Db {
    type Value = user::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, Self::Value>, Self::Error> {
        let rows = user::Entity::find().filter(user::Column::Id.is_in(ids(keys, |k| k.0))).all(&self.0).await?;
        Ok(rows.into_iter().map(|r| (UserId(r.id), r)).collect())
    }
}

impl Loader<ContactId> for Db {
    type Value = contact::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[ContactId]) -> Result<HashMap<ContactId, Self::Value>, Self::Error> {
        let rows = contact::Entity::find().filter(contact::Column::Id.is_in(ids(keys, |k| k.0))).all(&self.0).await?;
        Ok(rows.into_iter().map(|r| (ContactId(r.id), r)).collect())
    }
}

impl Loader<AssigneesOf> for Db {
    /// Shared, because the loader hands each requester its own copy of the value.
    type Value = Arc<[user::Model]>;
    type Error = LoadError;

    async fn load(&self, keys: &[AssigneesOf]) -> Result<HashMap<AssigneesOf, Self::Value>, Self::Error> {
        // One statement: the link rows joined to their users, in assignment order.
        let rows = contact_assignee::Entity::find()
            .filter(contact_assignee::Column::ContactId.is_in(ids(keys, |k| k.0)))
            .order_by_asc(contact_assignee::Column::ContactId)
            .order_by_asc(contact_assignee::Column::Position)
            .find_also_related(user::Entity)
            .all(&self.0)
            .await?;
        let mut out: HashMap<AssigneesOf, Vec<user::Model>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for (link, user) in rows {
            if let Some(user) = user {
                out.entry(AssigneesOf(link.contact_id)).or_default().push(user);
            }
        }
        Ok(out.into_iter().map(|(k, v)| (k, Arc::from(v))).collect())
    }
}

impl Loader<PersonsOf> for Db {
    type Value = Arc<[contact_person::Model]>;
    type Error = LoadError;

    async fn load(&self, keys: &[PersonsOf]) -> Result<HashMap<PersonsOf, Self::Value>, Self::Error> {
        let rows = contact_person::Entity::find()
            .filter(contact_person::Column::ContactId.is_in(ids(keys, |k| k.0)))
            .order_by_asc(contact_person::Column::Id)
            .all(&self.0)
            .await?;
        let mut out: HashMap<PersonsOf, Vec<contact_person::Model>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for person in rows {
            out.entry(PersonsOf(person.contact_id)).or_default().push(person);
        }
        Ok(out.into_iter().map(|(k, v)| (k, Arc::from(v))).collect())
    }
}
