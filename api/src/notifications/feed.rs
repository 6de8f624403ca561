//! The live feed behind `notificationEvents`: replay from the database what a panel missed,
//! then follow the user's bus channel — with no gap and no duplicate at the seam.
//!
//! Announcements on the bus carry the new rows and the state changes themselves (as values
//! from this process, as JSON from others), so a live panel shows them without a database
//! read — which is what lets one process reach ten thousand open panels at once. The counts
//! after new rows follow them at once, worked out from the counts the feed sent last (a new
//! row adds one to each), and are checked against the database a second later, as the counts
//! of a state change are; after a bumped row, whose earlier state the announcement does not
//! carry, the feed reads them (once per burst of messages). Either way only open panels pay for counts. The database stays the record:
//! on a lagged receiver, a Redis reconnection or a message it cannot read, the feed asks the
//! database for rows past its position, so a lost message costs latency, never a
//! notification. Counts carried by a state change may cross a concurrent change in another
//! process, so a second after such a push the feed checks them and corrects a drift.
//!
//! Positions are UUIDv7s taken by the publishing transaction before it commits, so a row can
//! commit after a later position was already delivered; a catch-up therefore looks back
//! `LOOKBACK` behind its position and drops what it has already sent. A panel that
//! reconnects does the same: the cursor of each row ([`Resume`]) carries what the feed had
//! sent within the look-back window, so that resuming from it replays the window less those
//! rows, and a row that committed late reaches the reconnected panel as it reaches one that
//! stayed connected.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use entity::notification;
use futures_util::Stream;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::{sync::broadcast, time::Instant};
use uuid::Uuid;

use super::{
    panel::channel,
    panel::{Announcement, NotificationCounts, StateChanged},
};
use crate::{bus::Message, error::ApiResult, state::AppState};

/// How far behind its position the feed looks for rows committed late.
const LOOKBACK: Duration = Duration::from_secs(5);
const PAGE: u64 = 500;
/// Quiet time after pushed counts before they are checked against the database.
const VERIFY_AFTER: Duration = Duration::from_secs(1);

pub enum FeedItem {
    /// A new or bumped row, and where the panel stands once it has it.
    Notification(Arc<notification::Model>, Resume),
    State(StateChanged),
    Counts(NotificationCounts),
}

/// Rows of the look-back window a cursor names at most; a burst beyond that raises its floor.
const MAX_RECENT: usize = 64;

/// Where a panel stands, as the cursor of the last row it received says: it has every row at
/// or below `floor`, and the rows in `recent` (those the feed sent within the look-back window
/// below `last`). A plain position (a cursor of `notifications`) is a floor and nothing more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub floor: Option<Uuid>,
    pub last: Uuid,
    pub recent: Vec<Uuid>,
}

impl Resume {
    /// From a plain position: everything up to it.
    pub fn at(position: Uuid) -> Self {
        Self { floor: Some(position), last: position, recent: Vec::new() }
    }

    /// The cursor's bytes, 16 per position: `last`, then `floor` (nil when there is none),
    /// then each of `recent`; `last` alone when it is all there is.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.recent.is_empty() && self.floor == Some(self.last) {
            return self.last.as_bytes().to_vec();
        }
        let mut bytes = Vec::with_capacity(32 + 16 * self.recent.len());
        bytes.extend_from_slice(self.last.as_bytes());
        bytes.extend_from_slice(self.floor.unwrap_or(Uuid::nil()).as_bytes());
        for p in &self.recent {
            bytes.extend_from_slice(p.as_bytes());
        }
        bytes
    }

    /// The inverse of [`Resume::to_bytes`]; 16 bytes are a plain position.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 16 || !bytes.chunks_exact(16).remainder().is_empty() || bytes.len() > 16 * (2 + MAX_RECENT) {
            return None;
        }
        let mut ids = bytes.chunks(16).map(|c| Uuid::from_slice(c).expect("16 bytes"));
        let last = ids.next()?;
        let Some(floor) = ids.next() else { return Some(Self::at(last)) };
        Some(Self { floor: Some(floor).filter(|f| !f.is_nil()), last, recent: ids.collect() })
    }
}

fn millis(position: Uuid) -> u64 {
    let b = position.as_bytes();
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

/// The lowest position a look-back from `last` reaches.
fn horizon(last: Uuid) -> Uuid {
    floor_v7(millis(last).saturating_sub(LOOKBACK.as_millis() as u64))
}

/// The smallest UUIDv7 of a millisecond: the lower bound of a look-back query.
fn floor_v7(ms: u64) -> Uuid {
    let t = ms.to_be_bytes();
    Uuid::from_bytes([t[2], t[3], t[4], t[5], t[6], t[7], 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0])
}

struct Feed {
    app: AppState,
    user_id: Uuid,
    rx: broadcast::Receiver<Message>,
    /// Highest position delivered.
    last: Option<Uuid>,
    /// The position the client already had when the feed opened (its `after`, or the newest
    /// row then): never delivered again, even inside the look-back window.
    floor: Option<Uuid>,
    /// Positions delivered within the look-back window, to drop repeats.
    sent: HashMap<Uuid, ()>,
    pending: VecDeque<FeedItem>,
    /// The counts last sent, and when to check them against the database.
    counts_sent: Option<NotificationCounts>,
    verify_at: Option<Instant>,
    /// New rows were sent: read and send the counts once the bus has nothing more ready.
    counts_due: bool,
}

impl Feed {
    /// Queues a row unless the client has it already; true when queued.
    fn offer(&mut self, row: Arc<notification::Model>) -> bool {
        if self.floor.is_some_and(|f| row.position <= f) || self.sent.insert(row.position, ()).is_some() {
            return false;
        }
        if self.last.is_none_or(|l| row.position > l) {
            self.last = Some(row.position);
        }
        let resume = self.resume();
        self.pending.push_back(FeedItem::Notification(row, resume));
        true
    }

    /// Where the client stands once it has everything queued so far.
    fn resume(&self) -> Resume {
        let last = self.last.expect("a row was sent");
        let horizon = horizon(last);
        let mut recent: Vec<Uuid> = self.sent.keys().copied().filter(|p| *p >= horizon && self.floor.is_none_or(|f| *p > f)).collect();
        recent.sort_unstable();
        let mut floor = self.floor;
        if recent.len() > MAX_RECENT {
            // The oldest rows of a burst become the floor: only a row committing late below
            // it, within the same burst, could then be missed.
            let dropped = recent.drain(..recent.len() - MAX_RECENT).next_back();
            floor = floor.max(dropped);
        }
        Resume { floor, last, recent }
    }

    /// Forgets delivered positions that no look-back can reach any more.
    fn trim(&mut self) {
        if let Some(last) = self.last {
            let horizon = horizon(last);
            self.sent.retain(|p, _| *p >= horizon);
        }
    }

    fn send_counts(&mut self, counts: NotificationCounts) {
        self.counts_sent = Some(counts);
        self.pending.push_back(FeedItem::Counts(counts));
    }

    /// Rows past `from` (exclusive), oldest first, that were not sent yet.
    async fn catch_up(&mut self, from: Option<Uuid>) -> ApiResult<()> {
        let mut cursor = from;
        loop {
            let mut query = notification::Entity::find().filter(notification::Column::UserId.eq(self.user_id));
            if let Some(c) = cursor {
                query = query.filter(notification::Column::Position.gt(c));
            }
            let db = self.app.db.clone();
            let rows = detached(async move {
                let rows = query.order_by_asc(notification::Column::Position).limit(PAGE).all(&db).await?;
                super::panel::with_content(&db, rows).await
            })
            .await?;
            let full = rows.len() as u64 == PAGE;
            for row in rows {
                cursor = Some(row.position);
                self.offer(Arc::new(row));
            }
            if !full {
                break;
            }
        }
        self.trim();
        Ok(())
    }

    /// Catches up from the database: rows and counts.
    async fn ring(&mut self) -> ApiResult<()> {
        let from = self.last.map(horizon);
        self.catch_up(from).await?;
        self.counts_now().await
    }

    /// Reads and sends the counts: the database's word, so nothing is left to verify.
    async fn counts_now(&mut self) -> ApiResult<()> {
        self.counts_due = false;
        let counts = self.app.counts().read(self.user_id).await?;
        self.send_counts(counts);
        self.verify_at = None;
        Ok(())
    }

    async fn on_message(&mut self, message: &Message) -> ApiResult<()> {
        let parsed;
        let announcement = match message.value::<Announcement>() {
            Some(announcement) => announcement,
            None => match message.as_text().map(serde_json::from_str::<Announcement>) {
                Some(Ok(announcement)) => {
                    parsed = announcement;
                    &parsed
                }
                // A resync, or a message this version cannot read.
                _ => return self.ring().await,
            },
        };
        match announcement {
            Announcement::Rows { rows } => {
                let mut rows = rows.clone();
                rows.sort_by_key(|r| r.position);
                // A new row (count 1) is unseen, unread and not archived: each adds one to
                // every count. A bumped row's earlier state is not in the announcement.
                let all_new = rows.iter().all(|r| r.count == 1);
                let mut added = 0;
                for row in rows {
                    added += u64::from(self.offer(row));
                }
                self.trim();
                match self.counts_sent {
                    // The counts follow the rows at once, without a read; like the counts of a
                    // state change, they are checked against the database a moment later.
                    Some(c) if all_new && !self.counts_due => {
                        if added > 0 {
                            self.send_counts(NotificationCounts { unseen: c.unseen + added, unread: c.unread + added, total: c.total + added });
                            // Not postponed by later rows: a steady stream still gets checked.
                            self.verify_at.get_or_insert_with(|| Instant::now() + VERIFY_AFTER);
                        }
                    }
                    _ => self.counts_due = true,
                }
                Ok(())
            }
            Announcement::State { state, counts } => {
                self.pending.push_back(FeedItem::State(state.clone()));
                self.send_counts(*counts);
                self.verify_at = Some(Instant::now() + VERIFY_AFTER);
                Ok(())
            }
            Announcement::Resync => self.ring().await,
        }
    }

    /// Corrects counts that crossed a concurrent change.
    async fn verify(&mut self) -> ApiResult<()> {
        self.verify_at = None;
        let counts = self.app.counts().read(self.user_id).await?;
        if self.counts_sent != Some(counts) {
            self.send_counts(counts);
        }
        Ok(())
    }
}

/// Runs a read of the feed to its end even when the feed is dropped meanwhile (its panel
/// closed): a statement cancelled half-way cannot go back to the pool, which closes its
/// connection and opens another (see `server::detached` for HTTP requests).
async fn detached<T: Send + 'static>(read: impl std::future::Future<Output = ApiResult<T>> + Send + 'static) -> ApiResult<T> {
    tokio::spawn(read).await.map_err(|e| crate::error::ApiError::Internal(e.into()))?
}

/// The feed of `user_id`'s panel. With `after`, everything the client does not have first.
pub async fn open(app: AppState, user_id: Uuid, after: Option<Resume>) -> ApiResult<impl Stream<Item = FeedItem>> {
    // Subscribe before reading, so that nothing committed from now on can fall between.
    let rx = app.bus.subscribe(&channel(user_id));
    let mut feed = Feed {
        app,
        user_id,
        rx,
        last: None,
        floor: None,
        sent: HashMap::new(),
        pending: VecDeque::new(),
        counts_sent: None,
        verify_at: None,
        counts_due: false,
    };
    match after {
        Some(after) => {
            // The look-back window below the client's last row, less what it has of it.
            let from = after.floor.max(Some(horizon(after.last)));
            feed.last = Some(after.last);
            feed.floor = after.floor;
            feed.sent = after.recent.into_iter().map(|p| (p, ())).collect();
            feed.catch_up(from).await?;
        }
        None => {
            // Live only: start from the newest row there is.
            let db = feed.app.db.clone();
            let newest = detached(async move {
                Ok(notification::Entity::find().filter(notification::Column::UserId.eq(user_id)).order_by_desc(notification::Column::Position).one(&db).await?)
            })
            .await?;
            if let Some(row) = newest {
                feed.last = Some(row.position);
                feed.floor = Some(row.position);
            }
        }
    }
    let counts = feed.app.counts().read(user_id).await?;
    feed.send_counts(counts);
    feed.sent.shrink_to_fit();
    // An open panel mostly waits: the database work of a wake-up is boxed, so that the idle
    // future (what each of ten thousand panels holds) stays small.
    Ok(futures_util::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(item) = feed.pending.pop_front() {
                return Some((item, feed));
            }
            // Whatever the bus has ready is taken before the counts are read: a burst of
            // rows costs one read.
            let outcome = match feed.rx.try_recv() {
                Ok(payload) => Some(Box::pin(feed.on_message(&payload)).await),
                Err(broadcast::error::TryRecvError::Lagged(_)) => Some(Box::pin(feed.ring()).await),
                Err(broadcast::error::TryRecvError::Closed) => return None,
                Err(broadcast::error::TryRecvError::Empty) if feed.counts_due => Some(Box::pin(feed.counts_now()).await),
                Err(broadcast::error::TryRecvError::Empty) => None,
            };
            if let Some(outcome) = outcome {
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, "notification feed could not read the database; will retry on the next message");
                }
                continue;
            }
            let verify_at = feed.verify_at;
            let outcome = tokio::select! {
                message = feed.rx.recv() => match message {
                    Ok(payload) => Box::pin(feed.on_message(&payload)).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => Box::pin(feed.ring()).await,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(verify_at.unwrap_or_else(Instant::now)), if verify_at.is_some() => Box::pin(feed.verify()).await,
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "notification feed could not read the database; will retry on the next message");
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

    #[test]
    fn a_cursor_says_where_the_panel_stands() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for resume in [Resume::at(a), Resume { floor: Some(a), last: c, recent: vec![b, c] }, Resume { floor: None, last: c, recent: vec![c] }] {
            assert_eq!(Resume::from_bytes(&resume.to_bytes()), Some(resume.clone()));
        }
        assert_eq!(Resume::at(a).to_bytes().len(), 16, "a plain position, as `notifications` gives");
        assert_eq!(Resume::from_bytes(&[0; 15]), None);
    }
}
