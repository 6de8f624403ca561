//! Delivery of the outbox: emails through each account's SMTP server, texts through its SMS
//! gateway.
//!
//! A worker claims a batch of due messages by setting them `SENDING` under a claim token of
//! its own and a lease (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so workers never claim
//! the same message), renews the leases of its claims every third of a lease while it holds
//! them ([`Leases`]), so that a lease can be short and a dead worker's messages are taken over
//! soon after its last renewal, sends
//! them concurrently over pooled connections, and settles each one as soon as its server
//! answers. A message goes past the end of its data only with one of `concurrency` permits,
//! held until its outcome is written, so a worker killed at any moment leaves at most
//! `concurrency` messages accepted by their server but unsettled (as many as it has
//! connections). Those come back when the lease ends and are sent again (the only duplicates
//! possible) with the same Message-ID. Every settle is guarded by the claim token, so a worker
//! that overran its lease cannot overwrite the outcome of the worker that took the message
//! over.
//!
//! Outcomes: accepted → SENT. Held by its account (paused, or no SMTP server, sender address
//! or SMS gateway set) → HELD, the attempt given back, until the change that lifts the reason
//! releases it (`api::outbox`); the company admins are told once. Transient (SMTP 4xx,
//! time-out, lost connection, gateway 429/5xx) → PENDING again after an exponential back-off
//! with jitter, until `max_attempts`. Permanent (SMTP 5xx, gateway 4xx, recipient without an
//! address) → FAILED, and for emails an Email Failed Error notification to the user the
//! message was for, unless it went through a user's own mailbox: that server tells its owner
//! of its bounces itself (seeds/002), so the failure is recorded on the message and the
//! mailbox only.
//!
//! An email goes through the account's SMTP server as the system sender, or, for a reminder
//! whose sender is USER_ACCOUNT, through the activity owner's main mailbox's outgoing side
//! (`compose::sender`); the message records which (`sent_as`, `sender_note`).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use api::{
    activities::{settings, sms as gateway},
    notifications::{
        catalog::NotificationType,
        fanout::{self, AddressedEvent},
    },
    smtp, AppState,
};
use chrono::{DateTime, Utc};
use entity::{
    account, contact, event, mailbox, outbox_message,
    outbox_message::{Channel, Field, Recipient, SentAs, Status},
    user,
};
use futures_util::{future::BoxFuture, stream::FuturesUnordered, FutureExt, StreamExt};
use rand::Rng;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, Value};
use tokio::sync::{mpsc, SemaphorePermit};
use uuid::Uuid;

use crate::{
    compose::{self, ActivityData, Facts, Templates, Via},
    sms,
};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Held for their account (`api::outbox`).
    pub held: usize,
}

enum Outcome {
    /// The account holds it (`api::outbox`): why, and the key under which its company admins
    /// are told once, when they can lift the reason in the settings.
    Held {
        reason: String,
        notice: Option<String>,
    },
    Sent(Route),
    Retry(String, Route),
    Failed(String, Route),
}

/// Which server an attempt went through, and why that one (emails; texts have none).
#[derive(Clone, Debug, Default)]
struct Route {
    sent_as: Option<SentAs>,
    note: Option<String>,
    /// The user's mailbox whose outgoing side it was.
    mailbox: Option<Uuid>,
    /// The address in `From:` (addressed emails: a workflow action records it).
    from: Option<String>,
}

/// The delivery side of a worker: its connection pools live as long as it does.
pub struct Courier {
    app: AppState,
    /// Where claims and outcomes are written (`api::db::connect_outbox`).
    outbox_db: sea_orm::DatabaseConnection,
    templates: Templates,
    http: reqwest::Client,
    /// Per account: the settings version its connections were opened under, and the pool.
    mailers: Mutex<HashMap<Uuid, (i32, Arc<smtp::Mailer>)>>,
    /// Per user mailbox sending as its owner: the settings version and token expiry its
    /// connections were opened with, and the pool.
    mailbox_mailers: Mutex<HashMap<Uuid, MailboxPool>>,
    settler: Settler,
    /// Permits to let a message through to the end of its data (an email) or to its gateway
    /// (a text), each held until the outcome is written: at most this many messages are ever
    /// accepted but unsettled. The envelope of the next message then goes out while the last
    /// outcome is written, instead of its connection idling for the database's part of every
    /// send.
    gate: tokio::sync::Semaphore,
    /// The worker's scheduler's way in (see [`Handoff`]), and this end of it: one stream at a
    /// time takes what was handed over.
    handoff: Handoff,
    handed: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<outbox_message::Model>>>,
    /// Messages claimed and not yet sent or dropped by the running stream (waiting, or their
    /// context loading); what the handoff weighs its room by, with what is handed over.
    held: Arc<AtomicUsize>,
    /// This worker's claims and their leases, renewed by a task of their own.
    leases: Arc<Leases>,
}

type MailboxPool = ((i32, Option<DateTime<Utc>>), Arc<smtp::Mailer>);

/// Connections per user mailbox sending as its owner.
const MAILBOX_CONNECTIONS: usize = 2;

/// Why a user's mailbox cannot send an email now.
enum MailboxUnusable {
    /// Only its owner can fix it (a new sign-in): the system sends instead.
    NeedsSignIn(String),
    /// The provider could not renew its sign-in now: tried again later.
    Later(String),
}

/// The claims a worker holds, each until when, renewed every third of a lease by
/// [`renew_leases`] while any of its messages is still `SENDING`.
///
/// A claim is renewed only while its lease has not run out by this worker's clock: once it
/// has, another worker may have taken its messages, so this one sends none of them (the stream
/// checks [`Leases::lapsed`] before each send) and lets the claim go.
#[derive(Default)]
struct Leases(Mutex<HashMap<Uuid, DateTime<Utc>>>);

impl Leases {
    fn hold(&self, claim: Uuid, until: DateTime<Utc>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(claim, until);
    }

    /// Whether a message of `claim` may no longer be sent at `now` (unknown claims included).
    fn lapsed(&self, claim: Option<Uuid>, now: DateTime<Utc>) -> bool {
        let leases = self.0.lock().unwrap_or_else(|e| e.into_inner());
        claim.and_then(|c| leases.get(&c)).is_none_or(|until| *until <= now)
    }

    /// The claims still held at `now`; those that lapsed are let go.
    fn live(&self, now: DateTime<Utc>) -> Vec<Uuid> {
        let mut leases = self.0.lock().unwrap_or_else(|e| e.into_inner());
        leases.retain(|_, until| *until > now);
        leases.keys().copied().collect()
    }

    /// After a renewal to `until`: the claims that still had messages being sent hold on,
    /// the others are done.
    fn renewed(&self, asked: &[Uuid], still: &HashSet<Uuid>, until: DateTime<Utc>) {
        let mut leases = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for claim in asked {
            if still.contains(claim) {
                leases.insert(*claim, until);
            } else {
                leases.remove(claim);
            }
        }
    }
}

/// Renews the leases of the worker's claims every third of a lease, until the courier goes.
async fn renew_leases(db: sea_orm::DatabaseConnection, leases: std::sync::Weak<Leases>, lease: chrono::Duration) {
    let period = (lease / 3).to_std().unwrap_or(Duration::from_secs(1));
    loop {
        tokio::time::sleep(period).await;
        let Some(held) = leases.upgrade() else { return };
        let now = Utc::now();
        let claims = held.live(now);
        if claims.is_empty() {
            continue;
        }
        let until = micros(now + lease);
        match renew(&db, &claims, until).await {
            Ok(still) => held.renewed(&claims, &still, until),
            // The leases run on; if this goes on they lapse and other workers take over.
            Err(e) => tracing::warn!(error = format!("{e:#}"), claims = claims.len(), "renewing leases failed"),
        }
    }
}

/// Moves the lease of `claims`' messages still being sent to `until`; answers the claims that
/// had any.
async fn renew(db: &sea_orm::DatabaseConnection, claims: &[Uuid], until: DateTime<Utc>) -> anyhow::Result<HashSet<Uuid>> {
    let backend = db.get_database_backend();
    let statement = match backend {
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "UPDATE outbox_message SET leased_until = $1 WHERE claim_id = ANY($2) AND status = 'SENDING' RETURNING claim_id",
            [until.into(), claims.to_vec().into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE outbox_message SET leased_until = ? WHERE claim_id IN ({}) AND status = 'SENDING' RETURNING claim_id",
                vec!["?"; claims.len()].join(", ")
            ),
            std::iter::once(until.into()).chain(claims.iter().map(|c| (*c).into())),
        ),
    };
    let rows = db.query_all(statement).await?;
    Ok(rows.iter().filter_map(|r| r.try_get::<Uuid>("", "claim_id").ok()).collect())
}

/// Messages the worker's own scheduler queued, already claimed for this worker's courier.
///
/// The scheduler inserts the emails of a step as `SENDING`, leased to this worker, in the
/// transaction that records their events, and hands them over once it has committed: the
/// courier sends them without claiming them again, since a claim would rewrite every row and
/// its index entries a second time. From there on a handed message is a claimed one: if the
/// worker dies, or the lease ends before its turn comes (the stream then skips it), whoever
/// claims next takes it.
///
/// Only while the courier holds fewer than `room` messages (four batches): beyond that the
/// scheduler queues them `PENDING` for any worker, so that one slow SMTP server does not hold
/// more work in one worker than its connections can get through.
#[derive(Clone)]
pub struct Handoff {
    lease: chrono::Duration,
    leases: Arc<Leases>,
    room: usize,
    /// Messages handed over that the courier has not taken yet.
    handed: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    sender: mpsc::UnboundedSender<Vec<outbox_message::Model>>,
}

impl Handoff {
    /// Marks `rows` (about to be inserted) claimed by this worker, if the courier has room for
    /// them; answers whether it did. Hand them over with [`Handoff::deliver`] after the commit.
    pub fn claim(&self, rows: &mut [outbox_message::Model]) -> bool {
        let holding = self.handed.load(Ordering::Acquire) + self.held.load(Ordering::Acquire);
        if rows.is_empty() || holding >= self.room {
            return false;
        }
        let lease = micros(Utc::now() + self.lease);
        let claim = Uuid::now_v7();
        for m in rows.iter_mut() {
            m.status = Status::Sending;
            m.leased_until = Some(lease);
            m.claim_id = Some(claim);
            m.attempts = 1;
        }
        true
    }

    /// Hands committed, claimed rows to the courier.
    pub fn deliver(&self, rows: Vec<outbox_message::Model>) {
        // Held (and renewed) from the commit on: before it the rows were not there to renew.
        if let Some((Some(claim), Some(lease))) = rows.first().map(|m| (m.claim_id, m.leased_until)) {
            self.leases.hold(claim, lease);
        }
        self.handed.fetch_add(rows.len(), Ordering::AcqRel);
        // The courier lives as long as the worker; were it gone, the leases would end.
        let _ = self.sender.send(rows);
    }
}

/// A batch of claimed messages with what sending them needs; `None` when nothing was due.
type Loaded = Option<(Vec<outbox_message::Model>, Context)>;

/// What one batch of messages needs, loaded in a few queries.
struct Context {
    events: HashMap<Uuid, event::Model>,
    users: HashMap<Uuid, user::Model>,
    accounts: HashMap<Uuid, account::Model>,
    contacts: HashMap<Uuid, contact::Model>,
    settings: HashMap<Uuid, settings::ActivitySettings>,
    gateways: HashMap<Uuid, Option<gateway::Gateway>>,
    /// Activity owners' main mailboxes that have an outgoing side, by owner.
    owner_mailboxes: HashMap<Uuid, mailbox::Model>,
}

impl Courier {
    pub async fn new(app: AppState) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(smtp::TIMEOUT).build()?;
        let pool = app.config.worker.concurrency as u32 + 2;
        let outbox_db = api::db::connect_outbox(&app.config, pool).await?.unwrap_or_else(|| app.db.clone());
        let settler = Settler::start(outbox_db.clone());
        let gate = tokio::sync::Semaphore::new(app.config.worker.concurrency.max(1));
        let (sender, handed) = mpsc::unbounded_channel();
        let held = Arc::new(AtomicUsize::new(0));
        let lease = chrono::Duration::from_std(app.config.worker.lease)?;
        let leases = Arc::new(Leases::default());
        tokio::spawn(renew_leases(outbox_db.clone(), Arc::downgrade(&leases), lease));
        let handoff = Handoff {
            lease,
            leases: leases.clone(),
            room: 4 * app.config.worker.batch as usize,
            handed: Arc::new(AtomicUsize::new(0)),
            held: held.clone(),
            sender,
        };
        Ok(Self {
            app,
            outbox_db,
            templates: Templates::new(),
            http,
            mailers: Mutex::new(HashMap::new()),
            mailbox_mailers: Mutex::new(HashMap::new()),
            settler,
            gate,
            handoff,
            handed: tokio::sync::Mutex::new(handed),
            held,
            leases,
        })
    }

    /// The way for this worker's scheduler to hand over what it queues (see [`Handoff`]).
    pub fn handoff(&self) -> Handoff {
        self.handoff.clone()
    }

    /// Whether messages were handed over and not taken by a stream yet.
    pub fn has_handed(&self) -> bool {
        self.handoff.handed.load(Ordering::Acquire) > 0
    }

    /// Delivers every message due by `now` as one stream of sends: `concurrency` connections
    /// sending, and up to as many messages again whose outcome is being written (see
    /// [`Courier::gate`]), each slot taking the next claimed message as soon as it frees. A batch is
    /// claimed (and its context loaded) once fewer than half a batch of claimed messages wait,
    /// so the next batch is ready before the current one runs dry and no connection idles at
    /// a batch's end (sending batch by batch, each batch's last sends left the other slots
    /// empty until the whole batch was settled). On an error the sends in flight are finished
    /// and settled first; messages claimed but not yet sent wait for their lease to end, as a
    /// dead worker's would.
    ///
    /// `queued` is rung by whoever queues messages while this runs (the worker's scheduler):
    /// the stream then claims again when it runs low, rather than letting every connection
    /// finish and go idle before the next run claims what was queued meanwhile. Without it, a
    /// claim that came back short of a full batch ended the stream. Messages handed over
    /// ([`Handoff`]) go before any claim.
    pub async fn run(&self, now: DateTime<Utc>, queued: Option<&tokio::sync::Notify>) -> anyhow::Result<Delivered> {
        self.stream(now, queued, true).await
    }

    /// Sends what was handed over and not taken yet, claiming nothing: a worker's last step
    /// before it stops, so that what its scheduler queued last does not wait for its lease.
    pub async fn finish_handed(&self) -> anyhow::Result<Delivered> {
        self.stream(Utc::now(), None, false).await
    }

    async fn stream(&self, now: DateTime<Utc>, queued: Option<&tokio::sync::Notify>, claims: bool) -> anyhow::Result<Delivered> {
        let concurrency = self.app.config.worker.concurrency.max(1);
        let full = self.app.config.worker.batch as usize;
        let mut handed = self.handed.lock().await;
        let mut done = Delivered::default();
        let mut failure: Option<anyhow::Error> = None;
        let mut waiting: VecDeque<(outbox_message::Model, Arc<Context>)> = VecDeque::new();
        let mut sending = FuturesUnordered::new();
        let mut claiming = None;
        // Whether more may be due: the stream just started, the last claim was full, or more
        // was queued since.
        let mut more = claims;
        loop {
            while sending.len() < 2 * concurrency {
                let Some((m, ctx)) = waiting.pop_front() else {
                    break;
                };
                self.held.fetch_sub(1, Ordering::AcqRel);
                // A message whose lease ran out while it waited may already be another
                // worker's: leave it to whoever claims it next rather than send it twice.
                if self.leases.lapsed(m.claim_id, Utc::now()) {
                    continue;
                }
                sending.push(self.send(m, ctx));
            }
            if failure.is_none() && claiming.is_none() && waiting.len() < full / 2 {
                if let Ok(batch) = handed.try_recv() {
                    claiming = Some(self.take_handed(batch));
                } else if more {
                    more = false;
                    claiming = Some(self.claim_loaded(now).boxed());
                }
            }
            if sending.is_empty() && (failure.is_some() || (claiming.is_none() && handed.is_empty())) {
                break;
            }
            tokio::select! {
                batch = handed.recv(), if claiming.is_none() && failure.is_none() => {
                    if let Some(batch) = batch {
                        claiming = Some(self.take_handed(batch));
                    }
                }
                claimed = async { claiming.as_mut().expect("a claim is running").await }, if claiming.is_some() && failure.is_none() => {
                    claiming = None;
                    match claimed {
                        Ok(Some((batch, ctx))) => {
                            more |= batch.len() >= full;
                            let ctx = Arc::new(ctx);
                            waiting.extend(batch.into_iter().map(|m| (m, ctx.clone())));
                        }
                        Ok(None) => {}
                        Err(e) => failure = Some(e),
                    }
                }
                _ = async { queued.expect("a wake-up is given").notified().await }, if queued.is_some() && !more && failure.is_none() => {
                    more = true;
                }
                Some(outcome) = sending.next() => match outcome {
                    Ok(Outcome::Sent(_)) => done.sent += 1,
                    Ok(Outcome::Retry(..)) => done.retried += 1,
                    Ok(Outcome::Failed(..)) => done.failed += 1,
                    Ok(Outcome::Held { .. }) => done.held += 1,
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                },
            }
            if failure.is_some() {
                // Finish what is in flight; send nothing more.
                self.held.fetch_sub(waiting.len(), Ordering::AcqRel);
                waiting.clear();
            }
        }
        // What was claimed and is dropped now (a batch whose context was loading when a send
        // failed) waits for its lease; it is no longer held.
        self.held.store(0, Ordering::Release);
        metrics::counter!("herald_outbox_sent_total").increment(done.sent as u64);
        metrics::counter!("herald_outbox_retried_total").increment(done.retried as u64);
        metrics::counter!("herald_outbox_failed_total").increment(done.failed as u64);
        match failure {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// Sends one message and settles its outcome.
    async fn send(&self, m: outbox_message::Model, ctx: Arc<Context>) -> anyhow::Result<Outcome> {
        // A panic while composing or sending fails this message, not the stream (and with it
        // every other message this worker holds).
        let (outcome, passed) = match std::panic::AssertUnwindSafe(self.attempt(&m, &ctx)).catch_unwind().await {
            Ok(attempted) => attempted,
            Err(panic) => {
                let what = crate::panic_message(&*panic);
                tracing::error!(message = %m.id, panic = %what, "sending a message panicked");
                (Outcome::Failed(format!("internal error while composing or sending the message: {what}"), Route::default()), None)
            }
        };
        self.settle(&m, &outcome, &ctx).await?;
        drop(passed);
        Ok(outcome)
    }

    /// Claims a batch and loads what sending it needs; `None` when nothing is due.
    /// Claims what is due by `now` or by the present moment, whichever is later: a stream
    /// outlives the moment it was started at, and what was queued since is due by now.
    async fn claim_loaded(&self, now: DateTime<Utc>) -> anyhow::Result<Loaded> {
        let claimed = claim(&self.app, &self.outbox_db, now.max(Utc::now())).await?;
        let Some(first) = claimed.first() else { return Ok(None) };
        if let (Some(claim), Some(lease)) = (first.claim_id, first.leased_until) {
            self.leases.hold(claim, lease);
        }
        self.held.fetch_add(claimed.len(), Ordering::AcqRel);
        let ctx = self.load(&claimed).await?;
        Ok(Some((claimed, ctx)))
    }

    /// A batch handed over by the scheduler, with what sending it needs. It counts as held
    /// from the moment it is taken off the channel, loaded or not.
    fn take_handed(&self, batch: Vec<outbox_message::Model>) -> BoxFuture<'_, anyhow::Result<Loaded>> {
        self.handoff.handed.fetch_sub(batch.len(), Ordering::AcqRel);
        self.held.fetch_add(batch.len(), Ordering::AcqRel);
        async move {
            let ctx = self.load(&batch).await?;
            Ok(Some((batch, ctx)))
        }
        .boxed()
    }

    async fn load(&self, claimed: &[outbox_message::Model]) -> anyhow::Result<Context> {
        let db = &self.app.db;
        let backend = db.get_database_backend();
        let event_ids: HashSet<Uuid> = claimed.iter().filter_map(|m| m.event_id).collect();
        let events: HashMap<Uuid, event::Model> =
            event::Entity::find().filter(api::db::id_in(backend, event::Column::Id, event_ids)).all(db).await?.into_iter().map(|e| (e.id, e)).collect();
        let mut user_ids: HashSet<Uuid> = claimed.iter().filter_map(|m| m.user_id).collect();
        user_ids.extend(events.values().filter_map(ActivityData::of).map(|a| a.owner_id));
        user_ids.extend(claimed.iter().filter_map(|m| m.sender_user_id));
        let users = user::Entity::find().filter(api::db::id_in(backend, user::Column::Id, user_ids)).all(db).await?.into_iter().map(|u| (u.id, u)).collect();
        let account_ids: HashSet<Uuid> = claimed.iter().map(|m| m.account_id).collect();
        let accounts =
            account::Entity::find().filter(account::Column::Id.is_in(account_ids.iter().copied())).all(db).await?.into_iter().map(|a| (a.id, a)).collect();
        let contact_ids: HashSet<Uuid> = events.values().filter_map(|e| e.contact_id).collect();
        let contacts = contact::Entity::find().filter(contact::Column::Id.is_in(contact_ids)).all(db).await?.into_iter().map(|c| (c.id, c)).collect();
        let mut settings_by_account = HashMap::new();
        let mut gateways = HashMap::new();
        let texting: HashSet<Uuid> = claimed.iter().filter(|m| m.channel == Channel::Text).map(|m| m.account_id).collect();
        for account_id in account_ids {
            settings_by_account.insert(account_id, settings::load(db, account_id).await?);
            if texting.contains(&account_id) {
                let opened = match gateway::load(db, account_id).await? {
                    Some(row) => Some(gateway::open(&row, &self.app.keyring)?),
                    None => None,
                };
                gateways.insert(account_id, opened);
            }
        }
        // Whose own mailbox may send: reminders' owners, and the users addressed emails are
        // sent as (workflow communications).
        let mut owners: HashSet<Uuid> =
            events.values().filter(|e| e.notification_type == NotificationType::ActivityReminder).filter_map(ActivityData::of).map(|a| a.owner_id).collect();
        owners.extend(claimed.iter().filter_map(|m| m.sender_user_id));
        let owner_mailboxes = if owners.is_empty() {
            HashMap::new()
        } else {
            mailbox::Entity::find()
                .filter(api::db::id_in(backend, mailbox::Column::UserId, owners))
                .filter(mailbox::Column::Main.eq(true))
                .filter(mailbox::Column::SmtpHost.is_not_null())
                .all(db)
                .await?
                .into_iter()
                .map(|m| (m.user_id, m))
                .collect()
        };
        Ok(Context { events, users, accounts, contacts, settings: settings_by_account, gateways, owner_mailboxes })
    }

    /// Sends a message; answers the outcome and, when it went past the gate, the permit.
    async fn attempt(&self, m: &outbox_message::Model, ctx: &Context) -> (Outcome, Option<SemaphorePermit<'_>>) {
        if let Some(recipients) = m.addressed() {
            return self.addressed(m, &recipients, ctx).await;
        }
        let (Some(event), Some(recipient), Some(account)) =
            (m.event_id.and_then(|e| ctx.events.get(&e)), m.user_id.and_then(|u| ctx.users.get(&u)), ctx.accounts.get(&m.account_id))
        else {
            return (Outcome::Failed("the event, recipient or account no longer exists".into(), Route::default()), None);
        };
        if !recipient.active {
            return (Outcome::Failed("the recipient was deactivated".into(), Route::default()), None);
        }
        if account.paused {
            return (Outcome::Held { reason: "the account is paused".into(), notice: None }, None);
        }
        let owner = ActivityData::of(event).and_then(|a| ctx.users.get(&a.owner_id));
        let contact = event.contact_id.and_then(|c| ctx.contacts.get(&c));
        let facts = Facts { event, recipient, account, contact, owner };
        match m.channel {
            Channel::Text => self.text(m, &facts, ctx).await,
            Channel::Email => self.email(m, &facts, ctx).await,
        }
    }

    async fn text(&self, m: &outbox_message::Model, facts: &Facts<'_>, ctx: &Context) -> (Outcome, Option<SemaphorePermit<'_>>) {
        let Some(phone) = facts.recipient.phone.as_deref() else {
            return (Outcome::Failed("the recipient has no phone number".into(), Route::default()), None);
        };
        let gateway = match gateway_of(m, ctx) {
            Ok(g) => g,
            Err(held) => return (held, None),
        };
        let body = match self.templates.text(facts) {
            Ok(b) => b,
            Err(e) => return (Outcome::Failed(format!("the text could not be rendered: {e}"), Route::default()), None),
        };
        self.send_text(gateway, phone, &body).await
    }

    /// A text to `phone` through `gateway`.
    async fn send_text(&self, gateway: &gateway::Gateway, phone: &str, body: &str) -> (Outcome, Option<SemaphorePermit<'_>>) {
        let permit = self.gate.acquire().await.expect("the gate is never closed");
        let outcome = match sms::send(&self.http, gateway, phone, body).await {
            Ok(()) => Outcome::Sent(Route::default()),
            Err(f) if f.transient => Outcome::Retry(f.message, Route::default()),
            Err(f) => Outcome::Failed(f.message, Route::default()),
        };
        (outcome, Some(permit))
    }

    async fn email(&self, m: &outbox_message::Model, facts: &Facts<'_>, ctx: &Context) -> (Outcome, Option<SemaphorePermit<'_>>) {
        let Some(settings) = ctx.settings.get(&m.account_id) else {
            return (Outcome::Retry("no activity settings".into(), Route::default()), None);
        };
        let owner_mailbox = facts.owner.and_then(|o| ctx.owner_mailboxes.get(&o.id));
        let mut sender = match compose::sender(settings, facts, owner_mailbox) {
            Ok(Some(sender)) => sender,
            Ok(None) => return (self.held_for_settings(m, settings), None),
            Err(e) => return (Outcome::Failed(e, Route::default()), None),
        };
        // Through the owner's mailbox when the sender says so and it can send; else the system.
        let mut through_mailbox = None;
        if let Via::Mailbox(mailbox) = &sender.via {
            match self.mailbox_mailer(mailbox).await {
                Ok(mailer) => through_mailbox = Some((mailer, Route { sent_as: Some(SentAs::UserMailbox), note: None, mailbox: Some(mailbox.id), from: None })),
                // The owner's sign-in is gone: the system sends, as for an owner without one.
                Err(MailboxUnusable::NeedsSignIn(why)) => {
                    sender = match compose::sender(settings, facts, None) {
                        Ok(Some(mut s)) => {
                            s.note = Some(format!("the activity owner's mailbox cannot send ({why}): sent by the system account, replies to the owner"));
                            s
                        }
                        Ok(None) => return (self.held_for_settings(m, settings), None),
                        Err(e) => return (Outcome::Failed(e, Route::default()), None),
                    };
                }
                Err(MailboxUnusable::Later(why)) => {
                    let route = Route { sent_as: Some(SentAs::UserMailbox), note: None, mailbox: Some(mailbox.id), from: None };
                    return (Outcome::Retry(format!("the activity owner's mailbox cannot send now: {why}"), route), None);
                }
            }
        }
        let (mailer, route) = match through_mailbox {
            Some(chosen) => chosen,
            None => match self.mailer(settings) {
                Ok(Some(t)) => (t, Route { sent_as: Some(SentAs::System), note: sender.note.clone(), mailbox: None, from: None }),
                Ok(None) => return (no_smtp_server(m, settings), None),
                Err(e) => return (Outcome::Retry(format!("the SMTP settings cannot be used: {e}"), Route::default()), None),
            },
        };
        let to = match compose::mailbox("recipient", Some(&facts.recipient.name), &facts.recipient.email) {
            Ok(to) => to,
            Err(e) => return (Outcome::Failed(e, route), None),
        };
        let rendered = match self.templates.email(facts) {
            Ok(r) => r,
            Err(e) => return (Outcome::Failed(format!("the email could not be rendered: {e}"), route), None),
        };
        let message = match compose::message(m.id, &sender, to, rendered, facts.event.occurred_at) {
            Ok(msg) => msg,
            Err(e) => return (Outcome::Failed(format!("the email could not be built: {e}"), route), None),
        };
        let (sent, permit) = mailer.send_gated(&message, &self.gate).await;
        (outcome_of(sent, route), permit)
    }

    /// An addressed message, rendered when queued. An email is one message, To and Cc in its
    /// headers, Bcc in its envelope only, sent by the account's system sender, or as the user
    /// it names (`sender_user_id`): through their main mailbox's outgoing side when it can
    /// send, else by the system with them in `Reply-To:`. A text goes to its one number.
    async fn addressed(&self, m: &outbox_message::Model, recipients: &[Recipient], ctx: &Context) -> (Outcome, Option<SemaphorePermit<'_>>) {
        let Some(account) = ctx.accounts.get(&m.account_id) else {
            return (Outcome::Failed("the account no longer exists".into(), Route::default()), None);
        };
        if account.paused {
            return (Outcome::Held { reason: "the account is paused".into(), notice: None }, None);
        }
        if m.channel == Channel::Text {
            return self.addressed_text(m, recipients, ctx).await;
        }
        let Some(settings) = ctx.settings.get(&m.account_id) else {
            return (Outcome::Retry("no activity settings".into(), Route::default()), None);
        };
        let as_user = m.sender_user_id.and_then(|u| ctx.users.get(&u));
        if m.sender_user_id.is_some() && as_user.is_none() {
            return (Outcome::Failed("the user it is sent as no longer exists".into(), Route::default()), None);
        }
        // Through the user's own mailbox when it can send.
        let mut note = None;
        if let Some((user, mailbox)) = as_user.and_then(|u| ctx.owner_mailboxes.get(&u.id).map(|mb| (u, mb))) {
            match self.mailbox_mailer(mailbox).await {
                Ok(mailer) => {
                    let from = match compose::mailbox("sender", Some(&user.name), &mailbox.email_address) {
                        Ok(f) => f,
                        Err(e) => return (Outcome::Failed(e, Route::default()), None),
                    };
                    let sender = compose::Sender { from, reply_to: None, via: Via::Mailbox(Box::new(mailbox.clone())), note: None };
                    let route = Route { sent_as: Some(SentAs::UserMailbox), note: None, mailbox: Some(mailbox.id), from: Some(mailbox.email_address.clone()) };
                    return self.send_addressed(m, &sender, recipients, &mailer, route).await;
                }
                Err(MailboxUnusable::NeedsSignIn(why)) => {
                    note = Some(format!("the sender's mailbox cannot send ({why}): sent by the system account, replies to the sender"))
                }
                Err(MailboxUnusable::Later(why)) => {
                    let route = Route { sent_as: Some(SentAs::UserMailbox), note: None, mailbox: Some(mailbox.id), from: None };
                    return (Outcome::Retry(format!("the sender's mailbox cannot send now: {why}"), route), None);
                }
            }
        } else if as_user.is_some() {
            note = Some("the sender has no connected outgoing mailbox: sent by the system account, replies to the sender".into());
        }
        let mut sender = match compose::system_sender(settings) {
            Ok(Some(sender)) => sender,
            Ok(None) => return (self.held_for_settings(m, settings), None),
            Err(e) => return (Outcome::Failed(e, Route::default()), None),
        };
        if let Some(user) = as_user {
            // Never the user's address in From through the system's server: replies reach them.
            match compose::mailbox("sender", Some(&user.name), &user.email) {
                Ok(reply_to) => sender.reply_to = Some(reply_to),
                Err(e) => return (Outcome::Failed(e, Route::default()), None),
            }
        }
        let mailer = match self.mailer(settings) {
            Ok(Some(t)) => t,
            Ok(None) => return (no_smtp_server(m, settings), None),
            Err(e) => return (Outcome::Retry(format!("the SMTP settings cannot be used: {e}"), Route::default()), None),
        };
        let route = Route { sent_as: Some(SentAs::System), note, mailbox: None, from: settings.sender_address().map(String::from) };
        self.send_addressed(m, &sender, recipients, &mailer, route).await
    }

    async fn send_addressed(
        &self,
        m: &outbox_message::Model,
        sender: &compose::Sender,
        recipients: &[Recipient],
        mailer: &smtp::Mailer,
        route: Route,
    ) -> (Outcome, Option<SemaphorePermit<'_>>) {
        let rendered = compose::RenderedEmail {
            subject: m.subject.clone().unwrap_or_default(),
            text: m.body_text.clone().unwrap_or_default(),
            html: m.body_html.clone().unwrap_or_default(),
        };
        let message = match compose::addressed_message(m.id, sender, recipients, rendered, m.created_at) {
            Ok(msg) => msg,
            Err(e) => return (Outcome::Failed(e, route), None),
        };
        let (sent, permit) = mailer.send_gated(&message, &self.gate).await;
        (outcome_of(sent, route), permit)
    }

    /// An addressed text: its body to its one number, through the account's SMS gateway.
    async fn addressed_text(&self, m: &outbox_message::Model, recipients: &[Recipient], ctx: &Context) -> (Outcome, Option<SemaphorePermit<'_>>) {
        let Some(phone) = recipients.first().map(|r| r.address.as_str()) else {
            return (Outcome::Failed("the text has no recipient".into(), Route::default()), None);
        };
        match gateway_of(m, ctx) {
            Ok(gateway) => self.send_text(gateway, phone, m.body_text.as_deref().unwrap_or_default()).await,
            Err(held) => (held, None),
        }
    }

    /// An email the system would send, held for what its settings lack: the SMTP server
    /// first, then the sender address.
    fn held_for_settings(&self, m: &outbox_message::Model, settings: &settings::ActivitySettings) -> Outcome {
        match self.mailer(settings) {
            Ok(None) => no_smtp_server(m, settings),
            _ => held(m, settings, "no-sender-address", "no sender address is set in the activity settings"),
        }
    }

    /// The connection pool of a user's mailbox's outgoing side, replaced when its settings or
    /// its access token change.
    async fn mailbox_mailer(&self, mailbox: &mailbox::Model) -> Result<Arc<smtp::Mailer>, MailboxUnusable> {
        let key = (mailbox.version, mailbox.oauth_expires_at);
        if let Some((k, t)) = self.mailbox_mailers.lock().unwrap_or_else(|e| e.into_inner()).get(&mailbox.id) {
            if *k == key {
                return Ok(t.clone());
            }
        }
        let server = match api::mailboxes::smtp_server_of(&self.app, mailbox).await {
            Ok(Some(server)) => server,
            Ok(None) => return Err(MailboxUnusable::NeedsSignIn("it has no outgoing side".into())),
            Err(api::mailboxes::CredentialError::Grant(e)) if e.needs_sign_in() => return Err(MailboxUnusable::NeedsSignIn(e.to_string())),
            Err(e) => return Err(MailboxUnusable::Later(e.to_string())),
        };
        // A user's own server gets a few connections, not a whole account's worth.
        let mailer = Arc::new(smtp::Mailer::new(server, MAILBOX_CONNECTIONS));
        self.mailbox_mailers.lock().unwrap_or_else(|e| e.into_inner()).insert(mailbox.id, (key, mailer.clone()));
        Ok(mailer)
    }

    /// The account's connection pool, replaced when its settings change.
    fn mailer(&self, settings: &settings::ActivitySettings) -> anyhow::Result<Option<Arc<smtp::Mailer>>> {
        let version = settings.version();
        let mut cache = self.mailers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, t)) = cache.get(&settings.account_id) {
            if *v == version {
                return Ok(Some(t.clone()));
            }
        }
        let Some(server) = settings.smtp_server(&self.app.keyring)? else {
            cache.remove(&settings.account_id);
            return Ok(None);
        };
        let mailer = Arc::new(smtp::Mailer::new(server, self.app.config.worker.concurrency));
        cache.insert(settings.account_id, (version, mailer.clone()));
        Ok(Some(mailer))
    }

    async fn settle(&self, m: &outbox_message::Model, outcome: &Outcome, ctx: &Context) -> anyhow::Result<()> {
        let now = Utc::now();
        let db = &self.outbox_db;
        match outcome {
            Outcome::Sent(route) => {
                self.settler.settle(m, Status::Sent, None, now, Some(now), route).await?;
                if let Some(mailbox) = route.mailbox {
                    self.record_send(mailbox, None).await;
                }
            }
            Outcome::Held { reason, notice } => {
                tracing::info!(message = %m.id, reason = %reason, "message held for its account");
                if hold(db, m, reason).await? {
                    if let Some(key) = notice {
                        if let Err(e) = tell_admins(&self.app, m.account_id, key, reason).await {
                            tracing::warn!(error = format!("{e:#}"), account = %m.account_id, "admins not told of held messages");
                        }
                    }
                }
            }
            Outcome::Retry(error, route) if m.attempts < self.app.config.worker.max_attempts => {
                let next = now + backoff(self.app.config.worker.retry_base, m.attempts);
                tracing::info!(message = %m.id, attempts = m.attempts, error = %error, "delivery will be retried");
                self.settler.settle(m, Status::Pending, Some(error.clone()), next, None, route).await?;
                if let Some(mailbox) = route.mailbox {
                    self.record_send(mailbox, Some(error)).await;
                }
            }
            Outcome::Retry(error, route) | Outcome::Failed(error, route) => {
                let error = match outcome {
                    Outcome::Retry(..) => format!("gave up after {} attempts: {error}", m.attempts),
                    _ => error.clone(),
                };
                tracing::warn!(message = %m.id, error = %error, "delivery failed");
                let txn = api::db::begin_write(db).await?;
                let kept = update_claimed(&txn, m, Status::Failed, Some(&error), now, None, route).await?;
                // A user's own server reports its own bounces to them (seeds/002: Email Failed
                // Error is for those not sending through an outside system): the failure is
                // recorded on the message and on the mailbox, with no notification.
                if kept && m.channel == Channel::Email && route.sent_as != Some(SentAs::UserMailbox) {
                    let recorded = fanout::record_addressed(&txn, vec![failure_event(m, &error, ctx)]).await?;
                    txn.commit().await?;
                    api::notifications::announce(&self.app, &recorded.notifications).await;
                } else {
                    txn.commit().await?;
                }
                if let Some(mailbox) = route.mailbox {
                    self.record_send(mailbox, Some(&error)).await;
                }
                self.record_workflow_failure(m, &error).await;
            }
        }
        Ok(())
    }

    /// Records on the workflow action a message was for that it failed, and why (best effort:
    /// the message holds its outcome). The `From:` of a sent one goes with its settle batch.
    async fn record_workflow_failure(&self, m: &outbox_message::Model, error: &str) {
        use sea_orm::sea_query::Expr;
        let Some(action) = workflow_action_of(m) else { return };
        let update = entity::planned_action::Entity::update_many()
            .filter(entity::planned_action::Column::Id.eq(action))
            .col_expr(entity::planned_action::Column::Status, Expr::value(entity::planned_action::Status::Failed))
            .col_expr(entity::planned_action::Column::TodoReason, Expr::value(error.chars().take(1000).collect::<String>()));
        if let Err(e) = update.exec(&self.app.db).await {
            tracing::warn!(message = %m.id, error = %e, "recording the workflow action's outcome failed");
        }
    }

    /// Records on a user's mailbox how its last send went (best effort: the message itself
    /// holds its outcome).
    async fn record_send(&self, mailbox: Uuid, error: Option<&String>) {
        use sea_orm::sea_query::Expr;
        let mut update = mailbox::Entity::update_many().filter(mailbox::Column::Id.eq(mailbox));
        update = match error {
            Some(e) => update
                .col_expr(mailbox::Column::SendError, Expr::value(Some(e.chars().take(1000).collect::<String>())))
                .col_expr(mailbox::Column::SendErrorAt, Expr::value(Some(Utc::now()))),
            // Only a mailbox that had an error is written to.
            None => update
                .col_expr(mailbox::Column::SendError, Expr::value(Option::<String>::None))
                .col_expr(mailbox::Column::SendErrorAt, Expr::value(Option::<DateTime<Utc>>::None))
                .filter(mailbox::Column::SendError.is_not_null()),
        };
        if let Err(e) = update.exec(&self.app.db).await {
            tracing::warn!(mailbox = %mailbox, error = %e, "recording the mailbox's last send failed");
        }
    }
}

/// The account's SMS gateway, or the outcome of a text that waits for one (HELD).
fn gateway_of<'c>(m: &outbox_message::Model, ctx: &'c Context) -> Result<&'c gateway::Gateway, Outcome> {
    match ctx.gateways.get(&m.account_id) {
        Some(Some(gateway)) => Ok(gateway),
        _ => {
            Err(Outcome::Held { notice: Some(format!("outbox-held:{}:no-sms-gateway", m.account_id)), reason: "no SMS gateway is set for the account".into() })
        }
    }
}

/// The workflow action an outbox message was queued for (`workflow-action:<action>:<person>`).
fn workflow_action_of(m: &outbox_message::Model) -> Option<Uuid> {
    m.source_key.as_deref()?.strip_prefix("workflow-action:")?.split(':').next()?.parse().ok()
}

/// What the SMTP server's answer makes of an email's attempt.
fn outcome_of(sent: Result<(), smtp::SendError>, route: Route) -> Outcome {
    match sent {
        Ok(()) => Outcome::Sent(route),
        Err(e) => {
            let failure = smtp::classify(&e);
            if failure.transient {
                Outcome::Retry(failure.message, route)
            } else {
                Outcome::Failed(failure.message, route)
            }
        }
    }
}

/// An email held for want of something in the account's activity settings; its admins are
/// told once per version of the settings.
fn held(m: &outbox_message::Model, settings: &settings::ActivitySettings, what: &str, reason: &str) -> Outcome {
    Outcome::Held { reason: reason.to_string(), notice: Some(format!("outbox-held:{}:{what}:v{}", m.account_id, settings.version())) }
}

fn no_smtp_server(m: &outbox_message::Model, settings: &settings::ActivitySettings) -> Outcome {
    held(m, settings, "no-smtp-server", "no SMTP server is set in the activity settings")
}

/// Marks a claimed message HELD, giving back the attempt its claim counted, if this worker
/// still holds it.
async fn hold(db: &sea_orm::DatabaseConnection, m: &outbox_message::Model, reason: &str) -> anyhow::Result<bool> {
    use sea_orm::sea_query::Expr;
    let result = give_back(m)
        .col_expr(outbox_message::Column::Status, Expr::value(Status::Held))
        .col_expr(outbox_message::Column::Attempts, Expr::col(outbox_message::Column::Attempts).sub(1))
        .col_expr(outbox_message::Column::LastError, Expr::value(format!("held: {reason}")))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// An update of a message this worker claimed that gives its lease and claim back, applied
/// only while the message is still this claim's.
fn give_back(m: &outbox_message::Model) -> sea_orm::UpdateMany<outbox_message::Entity> {
    use sea_orm::sea_query::Expr;
    outbox_message::Entity::update_many()
        .col_expr(outbox_message::Column::LeasedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(outbox_message::Column::ClaimId, Expr::value(Option::<Uuid>::None))
        .filter(outbox_message::Column::Id.eq(m.id))
        .filter(outbox_message::Column::Status.eq(Status::Sending))
        .filter(outbox_message::Column::ClaimId.eq(m.claim_id))
}

/// Tells the account's company admins, once per `key`, that its messages are held and why.
async fn tell_admins(app: &AppState, account_id: Uuid, key: &str, reason: &str) -> anyhow::Result<()> {
    let txn = api::db::begin_write(&app.db).await?;
    let told = event::Entity::find().filter(event::Column::AccountId.eq(account_id)).filter(event::Column::IdempotencyKey.eq(key)).one(&txn).await?;
    if told.is_some() {
        return Ok(());
    }
    let admins: Vec<Uuid> = user::Entity::find()
        .filter(user::Column::AccountId.eq(account_id))
        .filter(user::Column::Role.eq(user::Role::CompanyAdmin))
        .filter(user::Column::Active.eq(true))
        .all(&txn)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let event = AddressedEvent {
        kind: NotificationType::SystemErrorInformation,
        account_id,
        contact_id: None,
        title: format!("Messages are held: {reason}"),
        body: Some("Emails and texts wait, without using their attempts, and go out once the settings are completed.".into()),
        data: None,
        action_url: None,
        occurred_at: Utc::now(),
        idempotency_key: key.to_string(),
        recipients: admins,
        email: false,
    };
    let recorded = fanout::record_addressed(&txn, vec![event]).await?;
    txn.commit().await?;
    api::notifications::announce(app, &recorded.notifications).await;
    Ok(())
}

/// The Email Failed Error notification to the user an email was for (the users among an
/// addressed email's recipients).
fn failure_event(m: &outbox_message::Model, error: &str, ctx: &Context) -> AddressedEvent {
    let event = m.event_id.and_then(|e| ctx.events.get(&e));
    let about = m.subject.clone().or_else(|| event.map(|e| e.title.clone())).unwrap_or_else(|| "a notification".into());
    let recipients = match m.user_id {
        Some(user) => vec![user],
        None => m.addressed().unwrap_or_default().iter().filter(|r| r.field != Field::Bcc).filter_map(|r| r.user_id).collect(),
    };
    AddressedEvent {
        kind: NotificationType::EmailFailedError,
        account_id: m.account_id,
        contact_id: event.and_then(|e| e.contact_id),
        title: format!("An email could not be sent: {about}"),
        body: Some(error.chars().take(1000).collect()),
        data: Some(serde_json::json!({ "outboundMessageId": m.id, "eventId": m.event_id, "messageId": smtp::message_id(m.id) })),
        action_url: None,
        occurred_at: Utc::now(),
        idempotency_key: format!("outbox:{}:failed", m.id),
        recipients,
        email: false,
    }
}

/// `base · 2^(attempt−1)`, capped at an hour, ±25 % jitter so that a recovering server is
/// not hit by every retry at once.
fn backoff(base: Duration, attempt: i32) -> chrono::Duration {
    let exp = base.as_millis() as f64 * 2f64.powi((attempt - 1).clamp(0, 20));
    let capped = exp.min(3_600_000.0);
    let jittered = capped * rand::thread_rng().gen_range(0.75..1.25);
    chrono::Duration::milliseconds(jittered as i64)
}

/// Lease times are stored to the microsecond (PostgreSQL's precision), so that a lease read
/// back compares equal to the one written.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Claims up to a batch of due messages for this worker: first those whose lease ended (their
/// worker died or overran), then those pending and due, oldest first.
///
/// Each of the two is its own ordered walk of its partial index (`ix_outbox_leased`,
/// `ix_outbox_due`) that stops at the batch's size, and the claimed rows are then updated by
/// primary key. A single `WHERE (pending and due) OR (leased and expired) ORDER BY
/// next_attempt_at` would read every due message and sort them for each batch (and join the
/// whole table to find them again), so a claim's cost would grow with the backlog; the walks
/// keep it to the batch's size.
async fn claim(app: &AppState, db: &sea_orm::DatabaseConnection, now: DateTime<Utc>) -> anyhow::Result<Vec<outbox_message::Model>> {
    let backend = db.get_database_backend();
    let lease = micros(now + chrono::Duration::from_std(app.config.worker.lease)?);
    let token = Uuid::now_v7();
    let limit = app.config.worker.batch as i64;
    let statement = match backend {
        // `SKIP LOCKED` in each walk, so that workers claiming together take different rows.
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "WITH expired AS (SELECT id FROM outbox_message WHERE status = 'SENDING' AND leased_until < $2 \
                ORDER BY leased_until LIMIT $3 FOR UPDATE SKIP LOCKED), \
              due AS (SELECT id FROM outbox_message WHERE status = 'PENDING' AND next_attempt_at <= $2 \
                ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE outbox_message SET status = 'SENDING', leased_until = $1, claim_id = $4, attempts = attempts + 1 \
             WHERE id = ANY(ARRAY(SELECT id FROM expired UNION ALL SELECT id FROM due LIMIT $3)) \
             RETURNING *",
            [lease.into(), now.into(), limit.into(), token.into()],
        ),
        // SQLite has one writer (one worker), and numbers `?` by position.
        _ => Statement::from_sql_and_values(
            backend,
            "UPDATE outbox_message SET status = 'SENDING', leased_until = ?, claim_id = ?, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM ( \
               SELECT id FROM (SELECT id FROM outbox_message WHERE status = 'SENDING' AND leased_until < ? ORDER BY leased_until LIMIT ?) \
               UNION ALL \
               SELECT id FROM (SELECT id FROM outbox_message WHERE status = 'PENDING' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?)) \
             LIMIT ?) \
             RETURNING *",
            [lease.into(), token.into(), now.into(), limit.into(), now.into(), limit.into(), limit.into()],
        ),
    };
    Ok(outbox_message::Entity::find().from_raw_sql(statement).all(db).await?)
}

/// Settles written together. Concurrent sends queue their outcomes (sent, or pending again)
/// for one writer task, which writes whatever is queued, up to [`SETTLE_BATCH`], in one
/// statement. Each send waits for its own outcome to be written before its sender takes the
/// next message, so a worker killed at any moment leaves unsettled only the messages then in
/// flight, as if each outcome were its own statement; but one statement per outcome would be
/// most of PostgreSQL's work in a burst of deliveries.
struct Settler {
    queue: tokio::sync::mpsc::Sender<Settle>,
}

/// Outcomes per statement: 8 parameters each, 1,024 in all, well under SQLite's 32,766.
const SETTLE_BATCH: usize = 128;

struct Settle {
    id: Uuid,
    claim: Option<Uuid>,
    status: Status,
    error: Option<String>,
    next_attempt_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    sent_as: Option<SentAs>,
    sender_note: Option<String>,
    /// A workflow action sent: its id and the `From:` it went out with, written with the
    /// batch (not a statement of its own per message).
    workflow_from: Option<(Uuid, String)>,
    /// Whether this worker still held the message; an error message if the write failed.
    written: tokio::sync::oneshot::Sender<Result<bool, BatchFailed>>,
}

impl Settler {
    /// Starts the writer; it ends when the courier (the last sender) goes.
    fn start(db: sea_orm::DatabaseConnection) -> Self {
        let (queue, mut pending) = tokio::sync::mpsc::channel::<Settle>(SETTLE_BATCH * 4);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(SETTLE_BATCH);
            // The next outcome and whatever is queued behind it.
            while pending.recv_many(&mut batch, SETTLE_BATCH).await > 0 {
                match write_settles(&db, &batch).await {
                    Ok(kept) => {
                        for s in batch.drain(..) {
                            let _ = s.written.send(Ok(kept.contains(&s.id)));
                        }
                    }
                    Err(e) => {
                        let failed = BatchFailed(Arc::new(e));
                        for s in batch.drain(..) {
                            let _ = s.written.send(Err(failed.clone()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Writes the outcome of a claimed message, if this worker still holds it (its claim is
    /// still the message's), and waits until it is written.
    async fn settle(
        &self,
        m: &outbox_message::Model,
        status: Status,
        error: Option<String>,
        next_attempt_at: DateTime<Utc>,
        sent_at: Option<DateTime<Utc>>,
        route: &Route,
    ) -> anyhow::Result<bool> {
        let (written, answer) = tokio::sync::oneshot::channel();
        let workflow_from = match (status, &route.from) {
            (Status::Sent, Some(from)) => workflow_action_of(m).map(|action| (action, from.clone())),
            _ => None,
        };
        let settle = Settle {
            id: m.id,
            claim: m.claim_id,
            status,
            error,
            next_attempt_at,
            sent_at,
            sent_as: route.sent_as,
            sender_note: route.note.clone(),
            workflow_from,
            written,
        };
        self.queue.send(settle).await.map_err(|_| anyhow::anyhow!("the outcome writer has stopped"))?;
        let kept = answer.await.map_err(|_| anyhow::anyhow!("the outcome writer has stopped"))??;
        if !kept {
            tracing::warn!(message = %m.id, "lease lost before the outcome was written: another worker took the message over");
        }
        Ok(kept)
    }
}

/// The outcome writer's failure, shared by every message of the batch it was writing.
#[derive(Debug, Clone, thiserror::Error)]
#[error("writing a batch of outcomes")]
struct BatchFailed(#[source] Arc<sea_orm::DbErr>);

/// One statement for a batch of outcomes; answers the ids this worker still held.
///
/// A row is this worker's while its claim token is the one this worker's claim wrote: only a
/// claim sets one and every settle clears it, so the token alone says who holds the message
/// (the lease only says until when, and is renewed meanwhile). The rows are found by primary
/// key only: matching on `status = 'SENDING'` too makes PostgreSQL's planner, when its
/// statistics show the table all PENDING, scan every SENDING entry of the status index
/// (in-flight rows and the dead versions of those already settled) and hash-join them for
/// each statement, at a cost per settled message that grows with those entries.
async fn write_settles(db: &sea_orm::DatabaseConnection, batch: &[Settle]) -> Result<HashSet<Uuid>, sea_orm::DbErr> {
    let statement = match db.get_database_backend() {
        DbBackend::Postgres => settles_unnest(batch),
        backend => settles_values(backend, batch),
    };
    let rows = db.query_all(statement).await?;
    let kept: HashSet<Uuid> = rows.iter().filter_map(|r| r.try_get::<Uuid>("", "id").ok()).collect();
    let sent: Vec<&(Uuid, String)> = batch.iter().filter(|s| kept.contains(&s.id)).filter_map(|s| s.workflow_from.as_ref()).collect();
    if !sent.is_empty() {
        db.execute(workflow_froms(db.get_database_backend(), &sent)).await?;
    }
    Ok(kept)
}

/// The `From:` of each workflow action just sent, in one statement.
fn workflow_froms(backend: DbBackend, sent: &[&(Uuid, String)]) -> Statement {
    match backend {
        DbBackend::Postgres => {
            use sea_orm::sea_query::ArrayType as T;
            let mut v = api::db::Unnest::new();
            v.column("pid", T::Uuid, sent.iter().map(|(id, _)| (*id).into())).column("from_address", T::String, sent.iter().map(|(_, f)| f.clone().into()));
            let sql = format!("UPDATE planned_action SET from_address = v.from_address FROM {} WHERE planned_action.id = v.pid", v.source("v"));
            Statement::from_sql_and_values(backend, sql, v.into_values())
        }
        _ => {
            let tuples = vec!["(?, ?)"; sent.len()].join(", ");
            let values: Vec<Value> = sent.iter().flat_map(|(id, f)| [(*id).into(), f.clone().into()]).collect();
            let sql = format!(
                "WITH v (pid, from_address) AS (VALUES {tuples}) UPDATE planned_action SET from_address = v.from_address FROM v WHERE planned_action.id = v.pid"
            );
            Statement::from_sql_and_values(backend, sql, values)
        }
    }
}

/// PostgreSQL: the outcomes as one array per column ([`api::db::Unnest`]: the same statement
/// text whatever the batch's size, so one prepared plan, a nested loop over the primary key).
fn settles_unnest(batch: &[Settle]) -> Statement {
    use sea_orm::sea_query::ArrayType as T;
    let mut v = api::db::Unnest::new();
    // A message without a claim is no claim of this worker's; the nil token matches none.
    v.column("mid", T::Uuid, batch.iter().map(|s| s.id.into()))
        .column("claim", T::Uuid, batch.iter().map(|s| s.claim.unwrap_or_default().into()))
        .column("status", T::String, batch.iter().map(|s| s.status.into()))
        .nullable("last_error", T::String, String::new().into(), batch.iter().map(|s| s.error.clone().map(Into::into)))
        .column("next_attempt_at", T::ChronoDateTimeUtc, batch.iter().map(|s| s.next_attempt_at.into()))
        .nullable("sent_at", T::ChronoDateTimeUtc, DateTime::UNIX_EPOCH.into(), batch.iter().map(|s| s.sent_at.map(Into::into)))
        .nullable("sent_as", T::String, String::new().into(), batch.iter().map(|s| s.sent_as.map(Into::into)))
        .nullable("sender_note", T::String, String::new().into(), batch.iter().map(|s| s.sender_note.clone().map(Into::into)));
    let sql = format!(
        "UPDATE outbox_message SET status = v.status, last_error = {}, next_attempt_at = v.next_attempt_at, sent_at = {}, \
         sent_as = {}, sender_note = {}, leased_until = NULL, claim_id = NULL \
         FROM {} WHERE outbox_message.id = v.mid AND outbox_message.claim_id = v.claim \
         RETURNING outbox_message.id",
        v.value("v", "last_error"),
        v.value("v", "sent_at"),
        v.value("v", "sent_as"),
        v.value("v", "sender_note"),
        v.source("v"),
    );
    Statement::from_sql_and_values(DbBackend::Postgres, sql, v.into_values())
}

/// SQLite: `UPDATE … FROM (VALUES …)` (SQLite ≥ 3.33).
fn settles_values(backend: DbBackend, batch: &[Settle]) -> Statement {
    let mut values: Vec<Value> = Vec::with_capacity(batch.len() * 8);
    let mut tuples = Vec::with_capacity(batch.len());
    for s in batch {
        tuples.push("(?, ?, ?, ?, ?, ?, ?, ?)");
        values.extend([
            s.id.into(),
            s.claim.into(),
            s.status.into(),
            s.error.clone().into(),
            s.next_attempt_at.into(),
            s.sent_at.into(),
            s.sent_as.map(|a| sea_orm::ActiveEnum::to_value(&a)).into(),
            s.sender_note.clone().into(),
        ]);
    }
    let sql = format!(
        "WITH v (mid, claim, status, last_error, next_attempt_at, sent_at, sent_as, sender_note) AS (VALUES {}) \
         UPDATE outbox_message SET status = v.status, last_error = v.last_error, next_attempt_at = v.next_attempt_at, \
         sent_at = v.sent_at, sent_as = v.sent_as, sender_note = v.sender_note, leased_until = NULL, claim_id = NULL \
         FROM v WHERE outbox_message.id = v.mid AND outbox_message.claim_id = v.claim \
         RETURNING id",
        tuples.join(", ")
    );
    Statement::from_sql_and_values(backend, sql, values)
}

/// Writes the outcome of a claimed message, if this worker still holds it. Answers whether it
/// did.
async fn update_claimed(
    db: &impl ConnectionTrait,
    m: &outbox_message::Model,
    status: Status,
    error: Option<&str>,
    next_attempt_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    route: &Route,
) -> anyhow::Result<bool> {
    use sea_orm::sea_query::Expr;
    let result = give_back(m)
        .col_expr(outbox_message::Column::Status, Expr::value(status))
        .col_expr(outbox_message::Column::LastError, Expr::value(error.map(String::from)))
        .col_expr(outbox_message::Column::NextAttemptAt, Expr::value(next_attempt_at))
        .col_expr(outbox_message::Column::SentAt, Expr::value(sent_at))
        .col_expr(outbox_message::Column::SentAs, Expr::value(route.sent_as))
        .col_expr(outbox_message::Column::SenderNote, Expr::value(route.note.clone()))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        tracing::warn!(message = %m.id, "lease lost before the outcome was written: another worker took the message over");
    }
    Ok(result.rows_affected > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(30);
        for attempt in 1..=4 {
            let expected = 30_000.0 * 2f64.powi(attempt - 1);
            let got = backoff(base, attempt).num_milliseconds() as f64;
            assert!((expected * 0.75..=expected * 1.25).contains(&got), "attempt {attempt}: {got} ms");
        }
        assert!(backoff(base, 30).num_milliseconds() <= 4_500_000);
    }
}
