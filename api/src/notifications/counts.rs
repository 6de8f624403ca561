//! A panel's counts (unseen, unread, total), read for one user or, for the live feeds, for
//! many at once by the [`CountsReader`].

use std::collections::HashMap;

use entity::notification;
use sea_orm::{sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

#[derive(async_graphql::SimpleObject, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationCounts {
    /// Not yet shown in the panel: the badge.
    pub unseen: u64,
    pub unread: u64,
    /// All rows not archived.
    pub total: u64,
}

/// The counts of one user's panel, in one statement.
pub async fn counts(db: &impl ConnectionTrait, user_id: Uuid) -> ApiResult<NotificationCounts> {
    Ok(counts_of(db, &[user_id]).await?.remove(&user_id).unwrap_or_default())
}

/// Users per statement of [`CountsReader`].
const COUNTS_BATCH: usize = 500;

/// Reads panel counts for many users in one statement, for the live feeds. When one
/// account-wide event reaches ten thousand open panels, each reads its counts; one statement
/// each would be ten thousand reads competing with the frames being sent. Requests that
/// arrive while a read runs are answered together by the next one. A read starts after the
/// requests it answers arrived, so it sees whatever was committed before each caller asked.
#[derive(Clone)]
pub struct CountsReader {
    queue: tokio::sync::mpsc::Sender<(Uuid, tokio::sync::oneshot::Sender<Result<NotificationCounts, SharedFailure>>)>,
}

/// A failed read, shared by every request it answered; read as the error it was (an
/// unreachable database stays UNAVAILABLE).
type SharedFailure = std::sync::Arc<ApiError>;

fn unshared(failure: SharedFailure) -> ApiError {
    let cause = anyhow::anyhow!("{:#}", anyhow::Error::from(std::sync::Arc::clone(&failure)));
    match &*failure {
        ApiError::Unavailable(_) => ApiError::Unavailable(cause),
        _ => ApiError::Internal(cause),
    }
}

impl CountsReader {
    /// Starts the reader on the current runtime; it ends with the last clone.
    pub fn start(db: sea_orm::DatabaseConnection) -> Self {
        let (queue, mut requests) =
            tokio::sync::mpsc::channel::<(Uuid, tokio::sync::oneshot::Sender<Result<NotificationCounts, SharedFailure>>)>(COUNTS_BATCH * 8);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(COUNTS_BATCH);
            // The next request and whatever is queued behind it.
            while requests.recv_many(&mut batch, COUNTS_BATCH).await > 0 {
                let users: Vec<Uuid> = batch.iter().map(|(u, _)| *u).collect();
                match counts_of(&db, &users).await {
                    Ok(found) => {
                        for (user, answer) in batch.drain(..) {
                            let _ = answer.send(Ok(found.get(&user).copied().unwrap_or_default()));
                        }
                    }
                    Err(e) => {
                        let failure = std::sync::Arc::new(e);
                        for (_, answer) in batch.drain(..) {
                            let _ = answer.send(Err(failure.clone()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    pub async fn read(&self, user_id: Uuid) -> ApiResult<NotificationCounts> {
        let stopped = || ApiError::Internal(anyhow::anyhow!("the counts reader has stopped"));
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.queue.send((user_id, answer)).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?.map_err(unshared)
    }
}

/// The counts of several users' panels in one statement (users without rows are absent).
async fn counts_of(db: &impl ConnectionTrait, users: &[Uuid]) -> ApiResult<HashMap<Uuid, NotificationCounts>> {
    let rows: Vec<(Uuid, i64, i64, i64)> = notification::Entity::find()
        .select_only()
        .column(notification::Column::UserId)
        .column_as(Expr::cust("COUNT(CASE WHEN seen_at IS NULL THEN 1 END)"), "unseen")
        .column_as(Expr::cust("COUNT(CASE WHEN read_at IS NULL THEN 1 END)"), "unread")
        .column_as(Expr::cust("COUNT(*)"), "total")
        .filter(notification::Column::UserId.is_in(users.iter().copied()))
        .filter(notification::Column::ArchivedAt.is_null())
        .group_by(notification::Column::UserId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(user, unseen, unread, total)| (user, NotificationCounts { unseen: unseen as u64, unread: unread as u64, total: total as u64 }))
        .collect())
}
