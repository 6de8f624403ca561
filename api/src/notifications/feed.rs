//! The live feed behind `notificationEvents`: replay from the database what a panel missed,
//! then follow the user's bus channel — with no gap and no duplicate at the seam.
//!
//! The bus is only a doorbell. On every ring (and on a lagged receiver) the feed asks the
//! database for rows past its position, so a message lost between processes costs latency,
//! never a notification. Positions are UUIDv7s taken by the publishing transaction before it
//! commits, so a row can commit after a later position was already delivered; the feed
//! therefore looks back `LOOKBACK` behind its position and drops what it has already sent.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use entity::notification;
use futures_util::Stream;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::{
    fanout::channel,
    panel::{counts, NotificationCounts},
};
use crate::{error::ApiResult, state::AppState};

/// How far behind its position the feed looks for rows committed late.
const LOOKBACK: Duration = Duration::from_secs(5);
const PAGE: u64 = 500;

pub enum FeedItem {
    Notification(notification::Model),
    Counts(NotificationCounts),
}

fn millis(position: Uuid) -> u64 {
    let b = position.as_bytes();
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

/// The smallest UUIDv7 of a millisecond: the lower bound of a look-back query.
fn floor_v7(ms: u64) -> Uuid {
    let t = ms.to_be_bytes();
    Uuid::from_bytes([t[2], t[3], t[4], t[5], t[6], t[7], 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0])
}

struct Feed {
    app: AppState,
    user_id: Uuid,
    rx: broadcast::Receiver<Arc<str>>,
    /// Highest position delivered.
    last: Option<Uuid>,
    /// The position the client already had when the feed opened (its `after`, or the newest
    /// row then): never delivered again, even inside the look-back window.
    floor: Option<Uuid>,
    /// Positions delivered within the look-back window, to drop repeats.
    sent: HashMap<Uuid, ()>,
    pending: VecDeque<FeedItem>,
}

impl Feed {
    /// Rows past `from` (exclusive), oldest first, that were not sent yet.
    async fn catch_up(&mut self, from: Option<Uuid>) -> ApiResult<()> {
        let mut cursor = from;
        loop {
            let mut query = notification::Entity::find().filter(notification::Column::UserId.eq(self.user_id));
            if let Some(c) = cursor {
                query = query.filter(notification::Column::Position.gt(c));
            }
            let rows = query.order_by_asc(notification::Column::Position).limit(PAGE).all(&self.app.db).await?;
            let full = rows.len() as u64 == PAGE;
            for row in rows {
                cursor = Some(row.position);
                if self.floor.is_some_and(|f| row.position <= f) || self.sent.insert(row.position, ()).is_some() {
                    continue;
                }
                if self.last.is_none_or(|l| row.position > l) {
                    self.last = Some(row.position);
                }
                self.pending.push_back(FeedItem::Notification(row));
            }
            if !full {
                break;
            }
        }
        if let Some(last) = self.last {
            let horizon = floor_v7(millis(last).saturating_sub(LOOKBACK.as_millis() as u64));
            self.sent.retain(|p, _| *p >= horizon);
        }
        Ok(())
    }

    async fn ring(&mut self) -> ApiResult<()> {
        let from = self.last.map(|l| floor_v7(millis(l).saturating_sub(LOOKBACK.as_millis() as u64)));
        self.catch_up(from).await?;
        self.pending.push_back(FeedItem::Counts(counts(&self.app.db, self.user_id).await?));
        Ok(())
    }
}

/// The feed of `user_id`'s panel. With `after`, everything past that position first.
pub async fn open(app: AppState, user_id: Uuid, after: Option<Uuid>) -> ApiResult<impl Stream<Item = FeedItem>> {
    // Subscribe before reading, so that nothing committed from now on can fall between.
    let rx = app.bus.subscribe(&channel(user_id));
    let mut feed = Feed { app, user_id, rx, last: None, floor: None, sent: HashMap::new(), pending: VecDeque::new() };
    match after {
        Some(after) => {
            feed.last = Some(after);
            feed.floor = Some(after);
            feed.catch_up(Some(after)).await?;
        }
        None => {
            // Live only: start from the newest row there is.
            let newest = notification::Entity::find()
                .filter(notification::Column::UserId.eq(user_id))
                .order_by_desc(notification::Column::Position)
                .one(&feed.app.db)
                .await?;
            if let Some(row) = newest {
                feed.last = Some(row.position);
                feed.floor = Some(row.position);
            }
        }
    }
    feed.pending.push_back(FeedItem::Counts(counts(&feed.app.db, user_id).await?));
    Ok(futures_util::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(item) = feed.pending.pop_front() {
                return Some((item, feed));
            }
            match feed.rx.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(e) = feed.ring().await {
                        tracing::warn!(error = %e, "notification feed catch-up failed; will retry on the next ring");
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_back_bound_sorts_before_every_position_of_its_millisecond() {
        let p = Uuid::now_v7();
        let floor = floor_v7(millis(p));
        assert!(floor <= p);
        assert_eq!(millis(floor), millis(p));
        assert!(floor_v7(millis(p) - 1) < floor);
    }
}
