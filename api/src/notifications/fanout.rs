//! Events in, notifications out: who sees an event in their panel, and who gets a text or an
//! email about it.
//!
//! For an event of type T in account A, about contact C (optional):
//! - each active user of A gets a panel notification when their System switch for T is on,
//!   or their AU switch is on and they are one of C's assigned users (judged now, when the
//!   event happens);
//! - each assigned user of C gets a text (Text AU, if they have a phone) and an email
//!   (Email AU), queued in the outbox in the same transaction; the worker delivers them;
//! - users of ancestor accounts who roll A up (and whose account has the roll-up add-on) get
//!   a panel notification when their own System switch for T is on.
//!
//! Publishing is idempotent per account and key: a second publish answers the first event and
//! notifies nobody again, even when both race (the unique index decides). Repeated events
//! about the same contact and type within the collapse window fold into the user's existing
//! unread row, bumping its count and moving it to the top.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::{
    account, event, notification, notification_roll_up, outbox_message,
    outbox_message::{Channel, Status},
    user,
};
use sea_orm::{
    sea_query::{LockType, OnConflict},
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    catalog::{info, NotificationType, TypeInfo},
    switches::{AccountLayers, Switch},
};
use crate::{
    crm::add_ons::{add_ons, AddOn},
    error::{ApiError, ApiResult},
};

pub struct NewEvent {
    pub kind: NotificationType,
    /// Defaults to the caller's account; a sub-account of it is allowed.
    pub account_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub title: String,
    pub body: Option<String>,
    pub data: Option<serde_json::Value>,
    pub action_url: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub idempotency_key: String,
}

/// Who publishes: a caller through the API, or Herald itself (the worker's reminders).
#[derive(Clone, Copy, Debug)]
pub enum Publisher {
    User(Uuid),
    ApiKey(Uuid),
    System,
}

pub struct Published {
    pub event: event::Model,
    /// True when the key had been published before: nothing was notified this time.
    pub duplicate: bool,
    pub notifications: Vec<notification::Model>,
    pub outbox: Vec<outbox_message::Model>,
}

/// A checked event waiting for the [writer](super::writer).
pub(crate) struct Pending {
    pub publisher: Publisher,
    pub account: account::Model,
    pub input: NewEvent,
}

/// What became of one event of a batch.
enum Fate {
    /// Refused: the caller gets this error.
    Refused(ApiError),
    /// Its key was published before (or beside) this batch: the stored event answers it.
    Known(Box<event::Model>),
    /// Same key as the batch's event at this index.
    SameAs(usize),
    /// Written by this batch (index into the batch's new events).
    New(usize),
}

/// Writes a batch of events and their fan-out in one transaction; one answer per event, in
/// order. An `Err` means the transaction failed and nothing of the batch was written.
pub(crate) async fn write_batch(db: &DatabaseConnection, collapse_window: Duration, batch: &[Pending]) -> ApiResult<Vec<ApiResult<Published>>> {
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;

    // Contacts (each must belong to its event's account) and their assignees; on PostgreSQL
    // the same statement first takes the fold locks of the batch's events about a contact.
    let contact_ids: Vec<Uuid> = unique(batch.iter().filter_map(|p| p.input.contact_id));
    let fold_keys: Vec<i32> = match collapse_window.is_zero() {
        true => Vec::new(),
        false => batch.iter().filter_map(|p| p.input.contact_id.map(|c| fold_lock_key(p.account.id, p.input.kind, c))).collect(),
    };
    let (contact_account, assignees) = contacts_locking_folds(&txn, &contact_ids, fold_keys).await?;

    // Keys twice within the batch: the first one is written, the others answer it.
    let mut fates = Vec::with_capacity(batch.len());
    let mut first_of_key: HashMap<(Uuid, String), usize> = HashMap::new();
    let mut events: Vec<event::Model> = Vec::new();
    for (i, p) in batch.iter().enumerate() {
        let key = (p.account.id, p.input.idempotency_key.trim().to_string());
        if let Some(contact_id) = p.input.contact_id {
            if contact_account.get(&contact_id) != Some(&p.account.id) {
                fates.push(Fate::Refused(ApiError::bad_input("input.contactId", "not a contact of the event's account")));
                continue;
            }
        }
        if let Some(&first) = first_of_key.get(&key) {
            fates.push(Fate::SameAs(first));
            continue;
        }
        first_of_key.insert(key.clone(), i);
        fates.push(Fate::New(events.len()));
        events.push(new_event(p, key.1, now));
    }
    if !events.is_empty() {
        // The unique index decides which keys are new: a key published before, or by another
        // transaction meanwhile (this insert waits for it to commit), is skipped, and the
        // event it names is read back in its place. Reading the keys first would cost every
        // publish a statement that finds nothing almost every time.
        // In key order, as every writer does, so that two batches sharing keys queue behind
        // each other instead of deadlocking.
        let mut ordered = events.clone();
        ordered.sort_by(|a, b| (a.account_id, &a.idempotency_key).cmp(&(b.account_id, &b.idempotency_key)));
        let inserted = event::Entity::insert_many(ordered.into_iter().map(|e| e.into_active_model().reset_all()))
            .on_conflict(OnConflict::columns([event::Column::AccountId, event::Column::IdempotencyKey]).do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?;
        if inserted != events.len() as u64 {
            let mut stored: HashMap<(Uuid, String), event::Model> = HashMap::new();
            for e in event::Entity::find()
                .filter(event::Column::AccountId.is_in(unique(events.iter().map(|e| e.account_id))))
                .filter(event::Column::IdempotencyKey.is_in(events.iter().map(|e| e.idempotency_key.clone())))
                .all(&txn)
                .await?
            {
                stored.insert((e.account_id, e.idempotency_key.clone()), e);
            }
            let mut kept = Vec::new();
            for fate in fates.iter_mut() {
                if let Fate::New(n) = *fate {
                    let event = &events[n];
                    *fate = match stored.remove(&(event.account_id, event.idempotency_key.clone())) {
                        Some(e) if e.id == event.id => {
                            kept.push(e);
                            Fate::New(kept.len() - 1)
                        }
                        Some(e) => Fate::Known(Box::new(e)),
                        // Written by a transaction that has since been undone by a deletion.
                        None => Fate::Refused(ApiError::Conflict("event published concurrently".into())),
                    };
                }
            }
            events = kept;
        }
    }

    // Only a sub-account can be rolled up: a batch of top-level accounts reads no picks.
    let sub_accounts: Vec<Uuid> = unique(batch.iter().filter(|p| p.account.parent_id.is_some()).map(|p| p.account.id));
    let written = fan_out(&txn, &events, &assignees, &sub_accounts, collapse_window).await?;
    txn.commit().await?;

    let mut answers: Vec<ApiResult<Published>> = Vec::with_capacity(batch.len());
    let mut written = written.into_iter().map(Some).collect::<Vec<_>>();
    for fate in fates {
        answers.push(match fate {
            Fate::Refused(e) => Err(e),
            Fate::Known(event) => Ok(duplicate(*event)),
            Fate::SameAs(first) => match &answers[first] {
                Ok(p) => Ok(duplicate(p.event.clone())),
                Err(_) => Err(ApiError::Conflict("event published concurrently".into())),
            },
            Fate::New(n) => {
                let (notifications, outbox) = written[n].take().expect("one fan-out per event");
                Ok(Published { event: events[n].clone(), duplicate: false, notifications, outbox })
            }
        });
    }
    Ok(answers)
}

fn duplicate(event: event::Model) -> Published {
    Published { event, duplicate: true, notifications: Vec::new(), outbox: Vec::new() }
}

fn unique<T: Eq + std::hash::Hash + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

fn new_event(p: &Pending, key: String, now: DateTime<Utc>) -> event::Model {
    let (published_by_user, published_by_key) = match p.publisher {
        Publisher::User(id) => (Some(id), None),
        Publisher::ApiKey(id) => (None, Some(id)),
        Publisher::System => (None, None),
    };
    let input = &p.input;
    event::Model {
        id: Uuid::now_v7(),
        account_id: p.account.id,
        notification_type: input.kind,
        contact_id: input.contact_id,
        title: input.title.trim().to_string(),
        body: input.body.clone(),
        data: input.data.clone(),
        action_url: input.action_url.clone(),
        occurred_at: input.occurred_at.unwrap_or(now),
        idempotency_key: key,
        created_at: now,
        published_by_user,
        published_by_key,
    }
}

/// Panel rows and outbox messages written for one event.
type Written = (Vec<notification::Model>, Vec<outbox_message::Model>);

/// Who gets what, for every event of a batch, written in its transaction: the same
/// statements whatever the batch's size.
async fn fan_out(
    txn: &DatabaseTransaction,
    events: &[event::Model],
    assignees: &HashMap<Uuid, Vec<Uuid>>,
    sub_accounts: &[Uuid],
    collapse_window: Duration,
) -> ApiResult<Vec<Written>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let kinds: Vec<NotificationType> = unique(events.iter().map(|e| e.notification_type));
    let accounts: Vec<Uuid> = unique(events.iter().map(|e| e.account_id));
    let mut layers = AccountLayers::load_defaults(txn, &accounts, &kinds).await?;
    // Who can receive: where one of the batch's types is in every panel by default, every
    // user of the account; elsewhere only the assignees of the events' contacts and the users
    // who turned the type on. An event about one lead in an account of thousands then reads
    // a handful of users and overrides instead of all of them: reading users and overrides
    // are publishEvent's costliest statements, and their cost grows with the rows read.
    let everyone: Vec<Uuid> = unique(events.iter().filter(|e| layers[&e.account_id].system_by_default(info(e.notification_type))).map(|e| e.account_id));
    let mut some: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for event in events.iter().filter(|e| !everyone.contains(&e.account_id)) {
        let listed = some.entry(event.account_id).or_default();
        if let Some(contact_id) = event.contact_id.filter(|_| info(event.notification_type).concerns_contact) {
            listed.extend(assignees.get(&contact_id).into_iter().flatten().copied());
        }
    }
    AccountLayers::load_overrides(txn, &mut layers, &kinds, &everyone, &some).await?;
    let mut users: HashMap<Uuid, Vec<user::Model>> = HashMap::new();
    let mut found = Vec::new();
    if !everyone.is_empty() {
        found.extend(recipients(txn, user::Entity::find().filter(user::Column::AccountId.is_in(everyone.clone()))).await?);
    }
    let candidates: Vec<Uuid> = unique(some.iter().flat_map(|(account, listed)| listed.iter().copied().chain(layers[account].users_with_overrides())));
    for chunk in candidates.chunks(1000) {
        found.extend(
            recipients(
                txn,
                user::Entity::find().filter(user::Column::Id.is_in(chunk.iter().copied())).filter(user::Column::AccountId.is_in(some.keys().copied())),
            )
            .await?,
        );
    }
    for u in found {
        users.entry(u.account_id).or_default().push(u);
    }
    let roll_ups = RollUps::load(txn, sub_accounts, &kinds).await?;

    let mut panels: Vec<Vec<Uuid>> = Vec::with_capacity(events.len());
    let mut outbox: Vec<Vec<outbox_message::Model>> = Vec::with_capacity(events.len());
    for event in events {
        let (mut panel, mut messages) = (Vec::new(), Vec::new());
        let type_info = info(event.notification_type);
        let layers = &layers[&event.account_id];
        let assigned: HashSet<Uuid> = match event.contact_id {
            Some(contact_id) if type_info.concerns_contact => assignees.get(&contact_id).into_iter().flatten().copied().collect(),
            _ => HashSet::new(),
        };
        for user in users.get(&event.account_id).into_iter().flatten() {
            let is_assigned = assigned.contains(&user.id);
            let system = layers.enabled(user.id, type_info, Switch::System);
            let au = is_assigned && layers.enabled(user.id, type_info, Switch::Au);
            if system || au {
                panel.push(user.id);
            }
            if is_assigned {
                if layers.enabled(user.id, type_info, Switch::TextAu) && user.phone.is_some() {
                    messages.push(outbox_row(event, user.id, Channel::Text));
                }
                if layers.enabled(user.id, type_info, Switch::EmailAu) {
                    messages.push(outbox_row(event, user.id, Channel::Email));
                }
            }
        }
        panel.extend(roll_ups.recipients(event.account_id, type_info));
        panels.push(unique(panel.into_iter()));
        outbox.push(messages);
    }

    let rows = write_panels(txn, events, &panels, collapse_window).await?;
    insert_outbox(txn, &outbox.iter().flatten().cloned().collect::<Vec<_>>()).await?;
    Ok(rows.into_iter().zip(outbox).collect())
}

/// The active users among `users`, who may get panel rows from this transaction. On
/// PostgreSQL they are read `FOR KEY SHARE`, the lock a foreign key would take row by row:
/// panel rows have no key to their user (migration 000008), and this keeps a user from being
/// deleted between being chosen and getting the row.
async fn recipients(txn: &DatabaseTransaction, users: sea_orm::Select<user::Entity>) -> ApiResult<Vec<user::Model>> {
    let mut users = users.filter(user::Column::Active.eq(true));
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        users = users.lock(LockType::KeyShare);
    }
    Ok(users.all(txn).await?)
}

/// Who rolls up the batch's accounts: users of ancestor accounts who picked them, are
/// active, and whose own account has the roll-up add-on; with their own layers, since only
/// the types enabled in the roll-up user's Control reach their panel.
#[derive(Default)]
struct RollUps {
    by_sub_account: HashMap<Uuid, Vec<(Uuid, Uuid)>>,
    layers: HashMap<Uuid, AccountLayers>,
}

impl RollUps {
    async fn load(txn: &DatabaseTransaction, sub_accounts: &[Uuid], kinds: &[NotificationType]) -> ApiResult<Self> {
        if sub_accounts.is_empty() {
            return Ok(Self::default());
        }
        let picks =
            notification_roll_up::Entity::find().filter(notification_roll_up::Column::SubAccountId.is_in(sub_accounts.iter().copied())).all(txn).await?;
        if picks.is_empty() {
            return Ok(Self::default());
        }
        let parents: Vec<Uuid> = unique(picks.iter().map(|r| r.account_id));
        let with_add_on: HashSet<Uuid> = account::Entity::find()
            .filter(account::Column::Id.is_in(parents.clone()))
            .all(txn)
            .await?
            .into_iter()
            .filter(|a| add_ons(a).contains(&AddOn::NotificationRollUp))
            .map(|a| a.id)
            .collect();
        let active: HashSet<Uuid> = recipients(txn, user::Entity::find().filter(user::Column::Id.is_in(unique(picks.iter().map(|r| r.user_id)))))
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        let mut by_sub_account: HashMap<Uuid, Vec<(Uuid, Uuid)>> = HashMap::new();
        for pick in picks.into_iter().filter(|r| with_add_on.contains(&r.account_id) && active.contains(&r.user_id)) {
            by_sub_account.entry(pick.sub_account_id).or_default().push((pick.user_id, pick.account_id));
        }
        let layers = AccountLayers::load_many(txn, &parents, kinds).await?;
        Ok(Self { by_sub_account, layers })
    }

    fn recipients<'a>(&'a self, sub_account: Uuid, type_info: &'a TypeInfo) -> impl Iterator<Item = Uuid> + 'a {
        self.by_sub_account
            .get(&sub_account)
            .into_iter()
            .flatten()
            .filter(move |(user, parent)| self.layers.get(parent).is_some_and(|l| l.enabled(*user, type_info, Switch::System)))
            .map(|(user, _)| *user)
    }
}

fn outbox_row(event: &event::Model, user_id: Uuid, channel: Channel) -> outbox_message::Model {
    outbox_message::Model {
        id: Uuid::now_v7(),
        account_id: event.account_id,
        event_id: Some(event.id),
        user_id: Some(user_id),
        channel,
        status: Status::Pending,
        attempts: 0,
        last_error: None,
        created_at: event.created_at,
        next_attempt_at: event.created_at,
        leased_until: None,
        claim_id: None,
        sent_at: None,
        sent_as: None,
        sender_note: None,
        recipients: None,
        subject: None,
        body_text: None,
        body_html: None,
        source_key: None,
        sender_user_id: None,
    }
}

/// A new, unread panel row for `user_id` about `event`.
fn panel_row(event: &event::Model, user_id: Uuid, position: Uuid) -> notification::Model {
    notification::Model {
        id: Uuid::now_v7(),
        position,
        user_id,
        account_id: event.account_id,
        event_id: event.id,
        notification_type: event.notification_type,
        contact_id: event.contact_id,
        title: event.title.clone(),
        body: event.body.clone(),
        data: event.data.clone(),
        action_url: event.action_url.clone(),
        count: 1,
        created_at: event.created_at,
        occurred_at: event.occurred_at,
        seen_at: None,
        read_at: None,
        archived_at: None,
    }
}

/// A panel row (stored, or new in this batch) that later events of the batch may fold into.
struct Open {
    row: notification::Model,
    stored: bool,
    /// Events of this batch folded into the row.
    bumps: i32,
}

/// Namespace of the fold locks among PostgreSQL's advisory locks.
const FOLD_LOCK_SPACE: i32 = 0x4845_5244; // "HERD"

/// The fold lock of events of one type about one contact in one account.
///
/// Fold locks serialise the writers that may fold into the same rows. Two writers (two event
/// writer tasks, or two processes) each looking for a row to fold an event about the same
/// contact and type into would, if neither saw the other's uncommitted row, both insert one:
/// two rows where there should be one. Each batch therefore takes a transaction lock per
/// (account, type, contact) of its events, in a fixed order and before it writes anything,
/// so that writers queue rather than deadlock; batches about other contacts are not held up.
/// Hash collisions only make two unrelated batches wait for each other. SQLite has one writer
/// at a time.
fn fold_lock_key(account_id: Uuid, notification_type: NotificationType, contact_id: Uuid) -> i32 {
    let digest = Sha256::new()
        .chain_update(account_id.as_bytes())
        .chain_update(sea_orm::ActiveEnum::to_value(&notification_type).as_bytes())
        .chain_update(contact_id.as_bytes())
        .finalize();
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Contacts and assignees of a batch: each contact's account, and its assigned users in
/// order. On PostgreSQL the statement first takes the batch's fold locks ([`fold_lock_key`]),
/// so that a publish about a contact pays one round trip for the three.
async fn contacts_locking_folds(
    txn: &DatabaseTransaction,
    contact_ids: &[Uuid],
    mut fold_keys: Vec<i32>,
) -> ApiResult<(HashMap<Uuid, Uuid>, HashMap<Uuid, Vec<Uuid>>)> {
    let mut contact_account: HashMap<Uuid, Uuid> = HashMap::new();
    let mut assignees: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    if contact_ids.is_empty() {
        return Ok((contact_account, assignees));
    }
    let backend = txn.get_database_backend();
    let statement = match backend {
        sea_orm::DbBackend::Postgres => {
            fold_keys.sort_unstable();
            fold_keys.dedup();
            // The locks are a materialised CTE joined to every row, taken in key order before
            // the first contact row is produced (and not at all when no contact matches: then
            // no event of the batch can fold).
            const LOCKS: &str = "WITH fold_lock AS MATERIALIZED (SELECT count(pg_advisory_xact_lock($1, k)) AS locks FROM (SELECT unnest($2::int4[]) AS k ORDER BY 1) AS ordered) \
                 SELECT c.id AS contact_id, c.account_id, a.user_id FROM fold_lock CROSS JOIN contact c LEFT JOIN contact_assignee a ON a.contact_id = c.id";
            // One contact (every publish of an idle server) is compared as one value: the
            // statement then keeps its generic plan, two primary-key lookups. With an array
            // PostgreSQL plans every execution again, a cost every publish would pay, since
            // its generic plan, guessing ten contacts, would scan a small contact table.
            match contact_ids {
                [one] => sea_orm::Statement::from_sql_and_values(
                    backend,
                    format!("{LOCKS} WHERE c.id = $3 ORDER BY a.position"),
                    [FOLD_LOCK_SPACE.into(), fold_keys.into(), (*one).into()],
                ),
                _ => sea_orm::Statement::from_sql_and_values(
                    backend,
                    format!("{LOCKS} WHERE c.id = ANY($3::uuid[]) ORDER BY c.id, a.position"),
                    [FOLD_LOCK_SPACE.into(), fold_keys.into(), contact_ids.to_vec().into()],
                ),
            }
        }
        _ => {
            let marks = vec!["?"; contact_ids.len()].join(", ");
            sea_orm::Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT c.id AS contact_id, c.account_id, a.user_id FROM contact c LEFT JOIN contact_assignee a ON a.contact_id = c.id \
                     WHERE c.id IN ({marks}) ORDER BY c.id, a.position"
                ),
                contact_ids.iter().map(|id| (*id).into()),
            )
        }
    };
    for row in txn.query_all(statement).await? {
        let contact_id: Uuid = row.try_get("", "contact_id")?;
        contact_account.insert(contact_id, row.try_get("", "account_id")?);
        if let Some(user_id) = row.try_get::<Option<Uuid>>("", "user_id")? {
            assignees.entry(contact_id).or_default().push(user_id);
        }
    }
    Ok((contact_account, assignees))
}

/// Writes the panel rows of a batch: each event either adds a row for a user, or folds into
/// that user's recent unread row about the same contact and type (bumping its count and
/// moving it to the top). Events fold in batch order, also into rows the batch itself made.
async fn write_panels(
    txn: &DatabaseTransaction,
    events: &[event::Model],
    panels: &[Vec<Uuid>],
    collapse_window: Duration,
) -> ApiResult<Vec<Vec<notification::Model>>> {
    let window = chrono::Duration::from_std(collapse_window).unwrap_or(chrono::Duration::zero());
    let folding = !collapse_window.is_zero();
    type Key = (Uuid, NotificationType, Uuid);
    let mut open: HashMap<Key, Open> = HashMap::new();
    let foldable: Vec<usize> = (0..events.len()).filter(|&i| folding && events[i].contact_id.is_some() && !panels[i].is_empty()).collect();
    if !foldable.is_empty() {
        // The batch holds the fold locks of these events (`contacts_locking_folds`).
        let users: Vec<Uuid> = unique(foldable.iter().flat_map(|&i| panels[i].iter().copied()));
        let kinds: Vec<NotificationType> = unique(foldable.iter().map(|&i| events[i].notification_type));
        let contacts: Vec<Uuid> = unique(foldable.iter().filter_map(|&i| events[i].contact_id));
        let cutoff = foldable.iter().map(|&i| events[i].occurred_at).min().expect("not empty") - window;
        // Bounded statements: SQLite allows 32,766 parameters per statement.
        for chunk in users.chunks(1000) {
            let rows = notification::Entity::find()
                .filter(notification::Column::UserId.is_in(chunk.iter().copied()))
                .filter(notification::Column::NotificationType.is_in(kinds.clone()))
                .filter(notification::Column::ContactId.is_in(contacts.clone()))
                .filter(notification::Column::ReadAt.is_null())
                .filter(notification::Column::ArchivedAt.is_null())
                .filter(notification::Column::OccurredAt.gte(cutoff))
                .order_by_asc(notification::Column::Position)
                .all(txn)
                .await?;
            for row in rows {
                let key = (row.user_id, row.notification_type, row.contact_id.expect("filtered on contact"));
                open.insert(key, Open { row, stored: true, bumps: 0 }); // the latest row per key wins
            }
        }
    }

    let mut written = Vec::with_capacity(events.len());
    // Rows no later event can fold into: rows about no contact, and rows left behind when a
    // later event fell outside their window.
    let mut closed: Vec<Open> = Vec::new();
    for (event, users) in events.iter().zip(panels) {
        // Rows touched by one event share its position (positions are unique per user).
        let position = Uuid::now_v7();
        let mut rows = Vec::with_capacity(users.len());
        for &user_id in users {
            let Some(contact_id) = event.contact_id.filter(|_| folding) else {
                let row = panel_row(event, user_id, position);
                rows.push(row.clone());
                closed.push(Open { row, stored: false, bumps: 0 });
                continue;
            };
            let key = (user_id, event.notification_type, contact_id);
            match open.get_mut(&key) {
                Some(o) if o.row.occurred_at >= event.occurred_at - window => {
                    let row = &mut o.row;
                    row.count += 1;
                    row.position = position;
                    row.event_id = event.id;
                    row.title = event.title.clone();
                    row.body = event.body.clone();
                    row.data = event.data.clone();
                    row.action_url = event.action_url.clone();
                    row.occurred_at = event.occurred_at;
                    // New activity on the row: it is news again for the badge.
                    row.seen_at = None;
                    o.bumps += 1;
                    rows.push(row.clone());
                }
                _ => {
                    let row = panel_row(event, user_id, position);
                    rows.push(row.clone());
                    closed.extend(open.insert(key, Open { row, stored: false, bumps: 0 }));
                }
            }
        }
        written.push(rows);
    }
    closed.extend(open.into_values());

    // Stored rows folded by the batch: one statement for them all.
    let mut folded: Vec<(&notification::Model, i32)> = closed.iter().filter(|o| o.stored && o.bumps > 0).map(|o| (&o.row, o.bumps)).collect();
    // Row locks in id order in every writer (see the events' insert above).
    folded.sort_by_key(|(row, _)| row.id);
    for chunk in folded.chunks(1000) {
        fold_stored(txn, chunk).await?;
    }
    let inserts: Vec<notification::Model> = closed.into_iter().filter(|o| !o.stored).map(|o| o.row).collect();
    insert_new_rows(txn, events, inserts).await?;
    Ok(written)
}

/// Inserts new panel rows. On PostgreSQL a row that is still exactly its event's (count 1:
/// nothing later in the batch folded into it) travels as its id, position, user and the
/// index of its event, and what its rows share (account, type, contact, times) travels once
/// per event, joined back to its rows by PostgreSQL. The content is not stored with the rows
/// at all: it is the event's.
async fn insert_new_rows(txn: &DatabaseTransaction, events: &[event::Model], rows: Vec<notification::Model>) -> ApiResult<()> {
    if txn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(crate::db::insert_all::<notification::Entity>(txn, &rows).await?);
    }
    let index: HashMap<Uuid, usize> = events.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    let (pristine, folded): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.count == 1 && index.contains_key(&r.event_id));
    crate::db::insert_all::<notification::Entity>(txn, &folded).await?;
    if !pristine.is_empty() {
        txn.execute(rows_of_events(events, &index, &pristine)).await?;
    }
    Ok(())
}

/// [`insert_new_rows`]'s statement for rows that are their event's: the rows' arrays joined
/// on the event's ordinal to the events' arrays (two function scans: the plan cannot turn
/// into a scan of a table).
fn rows_of_events(events: &[event::Model], index: &HashMap<Uuid, usize>, rows: &[notification::Model]) -> sea_orm::Statement {
    use sea_orm::sea_query::ArrayType as T;

    use crate::db::Unnest;
    let mut r = Unnest::new();
    r.column("id", T::Uuid, rows.iter().map(|r| r.id.into()))
        .column("position", T::Uuid, rows.iter().map(|r| r.position.into()))
        .column("user_id", T::Uuid, rows.iter().map(|r| r.user_id.into()))
        .column("n", T::BigInt, rows.iter().map(|r| (index[&r.event_id] as i64 + 1).into()));
    let mut e = Unnest::after(r.parameters());
    e.column("account_id", T::Uuid, events.iter().map(|e| e.account_id.into()))
        .column("event_id", T::Uuid, events.iter().map(|e| e.id.into()))
        .column("notification_type", T::String, events.iter().map(|e| e.notification_type.into()))
        .nullable("contact_id", T::Uuid, Uuid::nil().into(), events.iter().map(|e| e.contact_id.map(Into::into)))
        .column("created_at", T::ChronoDateTimeUtc, events.iter().map(|e| e.created_at.into()))
        .column("occurred_at", T::ChronoDateTimeUtc, events.iter().map(|e| e.occurred_at.into()));
    let sql = format!(
        "INSERT INTO notification (id, position, user_id, account_id, event_id, notification_type, contact_id, count, created_at, occurred_at) \
         SELECT r.id, r.position, r.user_id, e.account_id, e.event_id, e.notification_type, {}, 1, e.created_at, e.occurred_at \
         FROM {} JOIN {} ON e.n = r.n",
        e.value("e", "contact_id"),
        r.source("r"),
        e.source_numbered("e", "n"),
    );
    let mut values = r.into_values();
    values.extend(e.into_values());
    sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values)
}

/// Bumps stored rows, each to its own values, in one statement: a busy batch folds into
/// thousands of rows, and one statement per event would cost a round trip and a plan each.
///
/// On PostgreSQL the values travel as one array per column into `UPDATE … FROM unnest(…)`, as
/// [`crate::db::insert_all`]'s rows do: twelve parameters whatever the number of rows, one
/// prepared statement. As `UPDATE … FROM (VALUES …)` (which SQLite ≥ 3.33 gets) a thousand
/// rows are nine thousand parameters and a statement of their own for every length, parsed
/// and planned afresh each time.
async fn fold_stored(txn: &DatabaseTransaction, rows: &[(&notification::Model, i32)]) -> ApiResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute(fold_unnest(rows)).await?;
        return Ok(());
    }
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(rows.len() * 5);
    for (row, bumps) in rows {
        values.extend([row.id.into(), (*bumps).into(), row.position.into(), row.event_id.into(), row.occurred_at.into()]);
    }
    let sql = format!(
        "WITH v (id, bumps, position, event_id, occurred_at) AS (VALUES {}) \
         UPDATE notification SET count = notification.count + v.bumps, position = v.position, event_id = v.event_id, \
         occurred_at = v.occurred_at, seen_at = NULL \
         FROM v WHERE notification.id = v.id",
        vec!["(?, ?, ?, ?, ?)"; rows.len()].join(", ")
    );
    txn.execute(sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Sqlite, sql, values)).await?;
    Ok(())
}

/// [`fold_stored`]'s statement on PostgreSQL: one array per column. A bumped row takes its new
/// event's content by pointing at it (`event_id`).
fn fold_unnest(rows: &[(&notification::Model, i32)]) -> sea_orm::Statement {
    use sea_orm::sea_query::ArrayType as T;

    let mut v = crate::db::Unnest::new();
    v.column("id", T::Uuid, rows.iter().map(|(r, _)| r.id.into()))
        .column("bumps", T::Int, rows.iter().map(|(_, bumps)| (*bumps).into()))
        .column("position", T::Uuid, rows.iter().map(|(r, _)| r.position.into()))
        .column("event_id", T::Uuid, rows.iter().map(|(r, _)| r.event_id.into()))
        .column("occurred_at", T::ChronoDateTimeUtc, rows.iter().map(|(r, _)| r.occurred_at.into()));
    let sql = format!(
        "UPDATE notification SET count = notification.count + v.bumps, position = v.position, event_id = v.event_id, \
         occurred_at = v.occurred_at, seen_at = NULL \
         FROM {} WHERE notification.id = v.id",
        v.source("v")
    );
    sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, v.into_values())
}

/// An event about specific people (an activity's owner, the escalation's default persons),
/// recorded by Herald itself.
pub struct AddressedEvent {
    pub kind: NotificationType,
    pub account_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub title: String,
    pub body: Option<String>,
    pub data: Option<serde_json::Value>,
    pub action_url: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub idempotency_key: String,
    pub recipients: Vec<Uuid>,
    /// Also an email to each recipient whose Email AU switch for the type is on (sent through
    /// the account's system sender). Reminders leave it off: their activity settings decide.
    pub email: bool,
}

pub struct RecordedBatch {
    pub events: Vec<event::Model>,
    pub notifications: Vec<notification::Model>,
    pub outbox: Vec<outbox_message::Model>,
}

/// Records addressed events in `txn`, in a few statements for the whole batch: the worker's
/// reminders and escalations, which come by the thousand when a busy hour falls due.
///
/// An addressed event reaches only its recipients, and among them the active users of the
/// event's account: a panel row when their System or AU switch for the type is on (the event
/// is theirs, as if they were assigned), a text when Text AU is on and they have a phone.
/// Emails are the caller's to queue ([`email_row`]) unless it asks for them by switch
/// ([`AddressedEvent::email`]): the activity settings decide a reminder's. It
/// does not roll up (a manager does not want every reminder of a sub-account) and does not
/// fold (two reminders are about two activities).
pub async fn record_addressed(txn: &DatabaseTransaction, batch: Vec<AddressedEvent>) -> ApiResult<RecordedBatch> {
    let now = Utc::now();
    let accounts: Vec<Uuid> = unique(batch.iter().map(|e| e.account_id));
    let layers = AccountLayers::load_many(txn, &accounts, &unique(batch.iter().map(|e| e.kind))).await?;
    let mut active: HashMap<Uuid, HashMap<Uuid, user::Model>> = HashMap::new();
    let recipient_ids: HashSet<Uuid> = batch.iter().flat_map(|e| e.recipients.iter().copied()).collect();
    for chunk in recipient_ids.into_iter().collect::<Vec<_>>().chunks(500) {
        let users = recipients(txn, user::Entity::find().filter(crate::db::id_in(txn.get_database_backend(), user::Column::Id, chunk.iter().copied()))).await?;
        for u in users {
            active.entry(u.account_id).or_default().insert(u.id, u);
        }
    }
    let mut events = Vec::with_capacity(batch.len());
    let mut notifications = Vec::new();
    let mut outbox = Vec::new();
    for input in batch {
        let type_info = info(input.kind);
        let event = event::Model {
            id: Uuid::now_v7(),
            account_id: input.account_id,
            notification_type: input.kind,
            contact_id: input.contact_id,
            title: input.title,
            body: input.body,
            data: input.data,
            action_url: input.action_url,
            occurred_at: input.occurred_at,
            idempotency_key: input.idempotency_key,
            created_at: now,
            published_by_user: None,
            published_by_key: None,
        };
        let layers = &layers[&input.account_id];
        let users = active.get(&input.account_id);
        let mut seen = HashSet::new();
        for user_id in input.recipients.into_iter().filter(|u| seen.insert(*u)) {
            let Some(user) = users.and_then(|u| u.get(&user_id)) else { continue };
            if layers.enabled(user_id, type_info, Switch::System) || layers.enabled(user_id, type_info, Switch::Au) {
                notifications.push(panel_row(&event, user_id, Uuid::now_v7()));
            }
            if layers.enabled(user_id, type_info, Switch::TextAu) && user.phone.is_some() {
                outbox.push(outbox_row(&event, user_id, Channel::Text));
            }
            if input.email && layers.enabled(user_id, type_info, Switch::EmailAu) {
                outbox.push(outbox_row(&event, user_id, Channel::Email));
            }
        }
        events.push(event);
    }
    crate::db::insert_all::<event::Entity>(txn, &events).await?;
    crate::db::insert_all::<notification::Entity>(txn, &notifications).await?;
    insert_outbox(txn, &outbox).await?;
    Ok(RecordedBatch { events, notifications, outbox })
}

/// An event about one user's own things (mail arriving in their mailbox), judged as a
/// published event is, but for that user alone: a panel row when their System switch for the
/// type is on, or their AU switch and they are one of the contact's assigned users; a text
/// (Text AU) and an email (Email AU) only when assigned. Events about the same contact and
/// type fold into the user's unread row within `collapse_window`, as published ones do, so a
/// burst of mail from one customer is one row. No roll-up: it is nobody else's mail.
pub struct OwnEvent {
    pub kind: NotificationType,
    pub account_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub title: String,
    pub data: Option<serde_json::Value>,
    pub occurred_at: DateTime<Utc>,
    pub idempotency_key: String,
    pub user_id: Uuid,
}

/// Records [`OwnEvent`]s in `txn` (taking their fold locks first, as a publish does).
pub async fn record_own(txn: &DatabaseTransaction, batch: Vec<OwnEvent>, collapse_window: Duration) -> ApiResult<RecordedBatch> {
    if batch.is_empty() {
        return Ok(RecordedBatch { events: Vec::new(), notifications: Vec::new(), outbox: Vec::new() });
    }
    let now = Utc::now();
    let contact_ids: Vec<Uuid> = unique(batch.iter().filter_map(|e| e.contact_id));
    let fold_keys: Vec<i32> = match collapse_window.is_zero() {
        true => Vec::new(),
        false => batch.iter().filter_map(|e| e.contact_id.map(|c| fold_lock_key(e.account_id, e.kind, c))).collect(),
    };
    let (_, assignees) = contacts_locking_folds(txn, &contact_ids, fold_keys).await?;
    let accounts: Vec<Uuid> = unique(batch.iter().map(|e| e.account_id));
    let layers = AccountLayers::load_many(txn, &accounts, &unique(batch.iter().map(|e| e.kind))).await?;
    let owners: Vec<Uuid> = unique(batch.iter().map(|e| e.user_id));
    let users: HashMap<Uuid, user::Model> =
        recipients(txn, user::Entity::find().filter(crate::db::id_in(txn.get_database_backend(), user::Column::Id, owners)))
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
    let mut events = Vec::with_capacity(batch.len());
    let mut panels = Vec::with_capacity(batch.len());
    let mut outbox = Vec::new();
    for input in batch {
        let event = event::Model {
            id: Uuid::now_v7(),
            account_id: input.account_id,
            notification_type: input.kind,
            contact_id: input.contact_id,
            title: input.title,
            body: None,
            data: input.data,
            action_url: None,
            occurred_at: input.occurred_at,
            idempotency_key: input.idempotency_key,
            created_at: now,
            published_by_user: None,
            published_by_key: None,
        };
        let mut panel = Vec::new();
        if let Some(user) = users.get(&input.user_id).filter(|u| u.account_id == input.account_id) {
            let (type_info, layers) = (info(input.kind), &layers[&input.account_id]);
            let assigned = input.contact_id.and_then(|c| assignees.get(&c)).is_some_and(|a| a.contains(&user.id));
            if layers.enabled(user.id, type_info, Switch::System) || (assigned && layers.enabled(user.id, type_info, Switch::Au)) {
                panel.push(user.id);
            }
            if assigned && layers.enabled(user.id, type_info, Switch::TextAu) && user.phone.is_some() {
                outbox.push(outbox_row(&event, user.id, Channel::Text));
            }
            if assigned && layers.enabled(user.id, type_info, Switch::EmailAu) {
                outbox.push(outbox_row(&event, user.id, Channel::Email));
            }
        }
        panels.push(panel);
        events.push(event);
    }
    crate::db::insert_all::<event::Entity>(txn, &events).await?;
    // A row that several events folded into is announced once, as it stands last.
    let mut notifications: Vec<notification::Model> = Vec::new();
    for row in write_panels(txn, &events, &panels, collapse_window).await?.into_iter().flatten() {
        notifications.retain(|n| n.id != row.id);
        notifications.push(row);
    }
    insert_outbox(txn, &outbox).await?;
    Ok(RecordedBatch { events, notifications, outbox })
}

/// An email to `user_id` about `event`, for callers that decide emails themselves.
pub fn email_row(event: &event::Model, user_id: Uuid) -> outbox_message::Model {
    outbox_row(event, user_id, Channel::Email)
}

pub async fn insert_outbox(txn: &DatabaseTransaction, rows: &[outbox_message::Model]) -> ApiResult<()> {
    Ok(crate::db::insert_all::<outbox_message::Entity>(txn, rows).await?)
}
