//! Events in (`publishEvent`) and the user's notification panel.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Json, Object, ID};
use chrono::{DateTime, Utc};
use entity::{event, notification};

use super::{
    accounts::Account,
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    contacts::Contact,
    loaders, parse_id, parse_ids,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use crate::{
    crm::accounts,
    error::ApiError,
    notifications,
    notifications::{
        catalog::NotificationType,
        feed::{FeedItem, Resume},
        panel::{self, NotificationCounts, Selection, StateChange},
        publish::NewEvent,
    },
};

/// A published event.
pub struct Event(event::Model);

#[Object]
impl Event {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> NotificationType {
        self.0.notification_type
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn idempotency_key(&self) -> &str {
        &self.0.idempotency_key
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn account_id(&self) -> ID {
        ID(self.0.account_id.to_string())
    }
}

/// One row of the panel.
pub struct Notification(Arc<notification::Model>);

#[Object]
impl Notification {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> NotificationType {
        self.0.notification_type
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn body(&self) -> Option<&str> {
        self.0.body.as_deref()
    }
    async fn data(&self) -> Option<Json<serde_json::Value>> {
        self.0.data.clone().map(Json)
    }
    /// Where the panel links to, if anywhere.
    async fn action_url(&self) -> Option<&str> {
        self.0.action_url.as_deref()
    }
    /// How many events were folded into this row.
    async fn count(&self) -> i32 {
        self.0.count
    }
    /// The account the event happened in (a sub-account for roll-ups).
    async fn account_id(&self) -> ID {
        ID(self.0.account_id.to_string())
    }
    /// The account, when the viewer may see it.
    async fn account(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        if !accounts::is_visible(&app(ctx)?.db, caller(ctx)?, self.0.account_id).await? {
            return Ok(None);
        }
        Ok(loaders(ctx)?.load_one(loaders::AccountId(self.0.account_id)).await.map_err(ApiError::from)?.map(Account))
    }
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        let Some(id) = self.0.contact_id else { return Ok(None) };
        Ok(loaders(ctx)?.load_one(loaders::ContactId(id)).await.map_err(ApiError::from)?.map(Contact))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The latest event's time.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn seen_at(&self) -> Option<DateTime<Utc>> {
        self.0.seen_at
    }
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.0.archived_at
    }
}

#[derive(InputObject, Default)]
pub struct NotificationFilter {
    pub unread: Option<bool>,
    pub unseen: Option<bool>,
    /// False (the default) hides archived rows; true shows only them.
    pub archived: Option<bool>,
    pub types: Option<Vec<NotificationType>>,
    /// Rows of these accounts only (roll-ups).
    pub account_ids: Option<Vec<ID>>,
    pub contact_id: Option<ID>,
}

#[derive(Default)]
pub struct PanelQuery;

#[Object]
impl PanelQuery {
    /// The panel of the caller (of the user they act as, when logged in as someone), newest
    /// first.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        filter: Option<NotificationFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<Notification>> {
        let user_id = panel::owner(caller(ctx)?)?;
        let filter = filter.unwrap_or_default();
        let filter = panel::PanelFilter {
            unread: filter.unread,
            unseen: filter.unseen,
            archived: filter.archived.unwrap_or(false),
            types: filter.types,
            account_ids: filter.account_ids.as_deref().map(|ids| parse_ids(ids, "filter.accountIds")).transpose()?,
            contact_id: filter.contact_id.as_ref().map(|id| parse_id(id, "filter.contactId")).transpose()?,
        };
        let select = panel::list(user_id, filter);
        let db = &app(ctx)?.db;
        let mut page = paginate(
            db,
            select,
            notification::Column::Position,
            |n| n.position,
            Order::NewestFirst,
            PageArgs::new(first, after, last, before),
            |row| Notification(Arc::new(row)),
        )
        .await?;
        // The rows' content is their events': one read for the page.
        let rows = panel::with_content(db, page.edges.iter().map(|e| (*e.node.0).clone()).collect()).await?;
        for (edge, row) in page.edges.iter_mut().zip(rows) {
            edge.node = Notification(Arc::new(row));
        }
        Ok(page)
    }

    /// The panel's counts, from the database.
    async fn notification_counts(&self, ctx: &Context<'_>) -> async_graphql::Result<NotificationCounts> {
        let user_id = panel::owner(caller(ctx)?)?;
        Ok(panel::counts(&app(ctx)?.db, user_id).await?)
    }
}

#[derive(InputObject)]
pub struct PublishEventInput {
    #[graphql(name = "type")]
    pub kind: NotificationType,
    /// Defaults to the caller's account; a sub-account of it is allowed.
    pub account_id: Option<ID>,
    pub contact_id: Option<ID>,
    pub title: String,
    pub body: Option<String>,
    /// Structured data for the panel: a JSON object of at most 16 KiB (serialised).
    pub data: Option<Json<serde_json::Value>>,
    pub action_url: Option<String>,
    /// Defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The same key twice gives the same event and notifies nobody again.
    pub idempotency_key: String,
}

pub struct PublishEventPayload(crate::notifications::publish::Published);

#[Object]
impl PublishEventPayload {
    async fn event(&self) -> Event {
        Event(self.0.event.clone())
    }
    /// True when this key had been published before (nothing was notified this time).
    async fn duplicate(&self) -> bool {
        self.0.duplicate
    }
    /// Panel rows written (new or folded) by this publish.
    async fn notified(&self) -> i32 {
        self.0.notifications.len() as i32
    }
    /// Texts and emails queued for the worker by this publish.
    async fn queued_messages(&self) -> i32 {
        self.0.outbox.len() as i32
    }
}

#[derive(Default)]
pub struct PanelMutation;

#[Object]
impl PanelMutation {
    /// Publishes a CRM event for fan-out (API keys with PUBLISH_EVENTS, or company admins).
    async fn publish_event(&self, ctx: &Context<'_>, input: PublishEventInput) -> async_graphql::Result<PublishEventPayload> {
        let new = NewEvent {
            kind: input.kind,
            account_id: input.account_id.as_ref().map(|id| parse_id(id, "input.accountId")).transpose()?,
            contact_id: input.contact_id.as_ref().map(|id| parse_id(id, "input.contactId")).transpose()?,
            title: input.title,
            body: input.body,
            data: input.data.map(|Json(v)| v),
            action_url: input.action_url,
            occurred_at: input.occurred_at,
            idempotency_key: input.idempotency_key,
        };
        let caller = caller(ctx)?;
        // The signed-in user's account if authentication read it, taken from the cache only:
        // a load would wait for the loader's batching delay (1 ms) where `publish` reads the
        // account directly (API keys, and operations over WebSocket).
        let own = loaders(ctx)?.get_cached_values::<loaders::AccountId>().remove(&loaders::AccountId(caller.account_id));
        Ok(PublishEventPayload(crate::notifications::publish::publish(app(ctx)?, caller, new, own).await?))
    }
}

#[derive(InputObject)]
pub struct NotificationSelectionInput {
    /// These rows of the caller's panel.
    pub ids: Option<Vec<ID>>,
    /// Every row of the caller's panel.
    #[graphql(default)]
    pub all: bool,
    /// Only while logged in as the user: change their panel anyway (audited, with you as the
    /// actor). Without it a change made as someone else changes nothing of their panel.
    #[graphql(default)]
    pub on_behalf: bool,
}

#[derive(InputObject)]
pub struct ArchiveNotificationsInput {
    pub ids: Option<Vec<ID>>,
    #[graphql(default)]
    pub all: bool,
    /// Every read row.
    #[graphql(default)]
    pub all_read: bool,
    /// Only while logged in as the user: change their panel anyway (audited, with you as the
    /// actor). Without it a change made as someone else changes nothing of their panel.
    #[graphql(default)]
    pub on_behalf: bool,
}

#[derive(InputObject)]
pub struct MarkNotificationsReadInput {
    pub ids: Option<Vec<ID>>,
    #[graphql(default)]
    pub all: bool,
    /// False marks them unread again.
    #[graphql(default = true)]
    pub read: bool,
    /// Only while logged in as the user: change their panel anyway (audited, with you as the
    /// actor). Without it a change made as someone else changes nothing of their panel.
    #[graphql(default)]
    pub on_behalf: bool,
}

fn selection(ids: Option<&[ID]>, all: bool, all_read: bool) -> async_graphql::Result<Selection> {
    match (ids, all, all_read) {
        (Some(ids), false, false) => Ok(Selection::Ids(parse_ids(ids, "input.ids")?)),
        (None, true, false) => Ok(Selection::All),
        (None, false, true) => Ok(Selection::AllRead),
        _ => Err(ApiError::bad_input("input.ids", "give either ids or one of all / allRead").into()),
    }
}

pub struct NotificationStatePayload {
    changed: u64,
    counts: NotificationCounts,
}

#[Object]
impl NotificationStatePayload {
    /// Rows whose state changed.
    async fn changed(&self) -> u64 {
        self.changed
    }
    /// The panel's counts after the change.
    async fn counts(&self) -> NotificationCounts {
        self.counts
    }
}

#[derive(Default)]
pub struct PanelStateMutation;

#[Object]
impl PanelStateMutation {
    /// Marks rows seen (shown in the panel). Like every change of panel state, it changes
    /// nothing while logged in as someone else unless `onBehalf` says so.
    async fn mark_notifications_seen(&self, ctx: &Context<'_>, input: NotificationSelectionInput) -> async_graphql::Result<NotificationStatePayload> {
        let selection = selection(input.ids.as_deref(), input.all, false)?;
        let (changed, counts) = panel::change_state(app(ctx)?, caller(ctx)?, selection, StateChange::Seen, input.on_behalf).await?;
        Ok(NotificationStatePayload { changed, counts })
    }

    /// Marks rows read (which also makes them seen), or unread again.
    async fn mark_notifications_read(&self, ctx: &Context<'_>, input: MarkNotificationsReadInput) -> async_graphql::Result<NotificationStatePayload> {
        let selection = selection(input.ids.as_deref(), input.all, false)?;
        let change = if input.read { StateChange::Read } else { StateChange::Unread };
        let (changed, counts) = panel::change_state(app(ctx)?, caller(ctx)?, selection, change, input.on_behalf).await?;
        Ok(NotificationStatePayload { changed, counts })
    }

    /// Archives rows: some, all, or all read ones.
    async fn archive_notifications(&self, ctx: &Context<'_>, input: ArchiveNotificationsInput) -> async_graphql::Result<NotificationStatePayload> {
        let selection = selection(input.ids.as_deref(), input.all, input.all_read)?;
        let (changed, counts) = panel::change_state(app(ctx)?, caller(ctx)?, selection, StateChange::Archive, input.on_behalf).await?;
        Ok(NotificationStatePayload { changed, counts })
    }

    async fn unarchive_notifications(&self, ctx: &Context<'_>, input: NotificationSelectionInput) -> async_graphql::Result<NotificationStatePayload> {
        let selection = selection(input.ids.as_deref(), input.all, false)?;
        let (changed, counts) = panel::change_state(app(ctx)?, caller(ctx)?, selection, StateChange::Unarchive, input.on_behalf).await?;
        Ok(NotificationStatePayload { changed, counts })
    }
}

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationEventKind {
    /// A new row, or a row bumped by a repeated event (replace it by id).
    Notification,
    /// Rows changed state (seen, read, unread, archived, unarchived): see `state`.
    State,
    /// The panel's counts changed (after new rows or a change of state).
    Counts,
}

/// Rows of the panel that changed state, from any of the user's sessions.
pub struct NotificationStateChange(notifications::panel::StateChanged);

#[Object]
impl NotificationStateChange {
    async fn change(&self) -> StateChange {
        self.0.change
    }
    /// The time set on the rows (`seenAt`, `readAt` or `archivedAt`); null when it was cleared
    /// (UNREAD, UNARCHIVE). A row read while unseen is seen at the same time.
    async fn at(&self) -> Option<DateTime<Utc>> {
        self.0.at
    }
    /// The rows changed: all of them unless `truncated`.
    async fn notification_ids(&self) -> Vec<ID> {
        self.0.ids.iter().map(|id| ID(id.to_string())).collect()
    }
    /// Too many rows changed to name them: re-read the list.
    async fn truncated(&self) -> bool {
        self.0.truncated
    }
}

/// One item of the panel's live feed.
pub struct NotificationEvent(notifications::feed::FeedItem);

#[Object]
impl NotificationEvent {
    async fn kind(&self) -> NotificationEventKind {
        match self.0 {
            FeedItem::Notification(..) => NotificationEventKind::Notification,
            FeedItem::State(_) => NotificationEventKind::State,
            FeedItem::Counts(_) => NotificationEventKind::Counts,
        }
    }
    async fn notification(&self) -> Option<Notification> {
        match &self.0 {
            FeedItem::Notification(row, _) => Some(Notification(row.clone())),
            _ => None,
        }
    }
    /// Pass it as `after` when reconnecting: the feed resumes right after this row, with
    /// every row the panel does not have yet (also rows that committed late, behind it).
    async fn cursor(&self) -> Option<String> {
        match &self.0 {
            FeedItem::Notification(_, resume) => Some(URL_SAFE_NO_PAD.encode(resume.to_bytes())),
            _ => None,
        }
    }
    async fn state(&self) -> Option<NotificationStateChange> {
        match &self.0 {
            FeedItem::State(state) => Some(NotificationStateChange(state.clone())),
            _ => None,
        }
    }
    async fn counts(&self) -> Option<NotificationCounts> {
        match &self.0 {
            FeedItem::Counts(counts) => Some(*counts),
            _ => None,
        }
    }
}

#[derive(Default)]
pub struct PanelSubscription;

#[async_graphql::Subscription]
impl PanelSubscription {
    /// The caller's panel, live (the user they act as, when logged in as someone): new and
    /// bumped rows and the counts. With `after` (a cursor from this feed or from
    /// `notifications`), everything since is replayed first, with no gap and no duplicate.
    async fn notification_events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> async_graphql::Result<impl futures_util::Stream<Item = NotificationEvent>> {
        use futures_util::StreamExt;
        let user_id = panel::owner(caller(ctx)?)?;
        let not_a_cursor = || ApiError::bad_input("after", "not a cursor of this feed");
        let after = after.map(|c| URL_SAFE_NO_PAD.decode(c).ok().and_then(|bytes| Resume::from_bytes(&bytes)).ok_or_else(not_a_cursor)).transpose()?;
        // Boxed: the opening reads would otherwise size the state every open panel keeps.
        let feed = Box::pin(notifications::feed::open(app(ctx)?.clone(), user_id, after)).await?;
        Ok(feed.map(NotificationEvent))
    }
}
