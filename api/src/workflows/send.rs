//! The daily runs of automatic communications (seeds/003), a step of the worker.
//!
//! For each account with automatic actions waiting, [`run_due`] asks the account's calendar
//! whether a run is due (its scheduling time on a business day has come, later than its last
//! run) and records that run — the row `(account, date)` — before sending anything: a second
//! worker's insert finds the row and does nothing. Then every automatic action due by the
//! latest run's date goes out, in batches taken `FOR UPDATE SKIP LOCKED`, each action in the
//! transaction that marks it done and queues what it sends (one outbox row per contact, whose
//! source key is the action and the contact: never queued twice). A worker killed mid-run
//! leaves the rest PLANNED with a due date the run already covers, so the next step of any
//! worker sends them: nothing twice, nothing lost.
//!
//! The sender is resolved in the documented order and never replaced by someone else
//! ([`resolve_sender`]); the recipients by the action's rule ([`recipients_for`]). When either
//! fails the action becomes a to-do of the responsible user with the reason, and Automated
//! Communication Needs Attention is raised for them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use entity::{
    account, contact, contact_assignee, contact_person,
    outbox_message::{self, Channel, Field, Recipient},
    planned_action::{self, Status, Trigger},
    user, user_group, workflow_action,
    workflow_action::{Kind, Recipients, Sender},
    workflow_run,
};
use futures_util::StreamExt;
use minijinja::context;
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use super::{calendar, groups, letters, plan::Fallback, templates};
use crate::{
    error::{ApiError, ApiResult},
    notifications::{
        catalog::NotificationType,
        fanout::{self, AddressedEvent},
    },
    state::AppState,
};

/// Actions per batch of a run.
const BATCH: u64 = 200;

/// What a step of runs did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ran {
    /// Runs started (accounts whose scheduling time came).
    pub runs: usize,
    /// Actions sent (queued for delivery).
    pub sent: usize,
    /// Actions that became to-dos.
    pub todo: usize,
}

/// A recipient an action goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct To {
    pub person: contact_person::Model,
    /// The email address, the phone number, or the postal address's lines joined.
    pub address: String,
}

/// A customer's contact persons, oldest first.
pub async fn persons_of(db: &impl ConnectionTrait, contact_id: Uuid) -> ApiResult<Vec<contact_person::Model>> {
    Ok(contact_person::Entity::find()
        .filter(contact_person::Column::ContactId.eq(contact_id))
        .order_by_asc(contact_person::Column::CreatedAt)
        .order_by_asc(contact_person::Column::Id)
        .all(db)
        .await?)
}

/// Who an action goes to among `persons`, by its rule and its kind (an email needs an
/// address, a text a phone, a letter a postal address); invalid contacts are skipped. An
/// error says why nobody.
pub fn recipients_for(action: &workflow_action::Model, persons: &[contact_person::Model]) -> Result<Vec<To>, (Fallback, String)> {
    if persons.is_empty() {
        return Err((Fallback::NoContacts, "the customer has no contacts".into()));
    }
    let chosen: Vec<&contact_person::Model> = match action.recipients {
        Recipients::MainContact => match persons.iter().find(|p| p.main) {
            Some(p) => vec![p],
            None => return Err((Fallback::NoMainContact, "the customer has no main contact".into())),
        },
        Recipients::AllContacts => persons.iter().collect(),
        Recipients::Position => {
            let wanted = action.recipient_position.as_deref().unwrap_or_default().trim().to_lowercase();
            let with: Vec<_> = persons.iter().filter(|p| p.position.as_deref().is_some_and(|x| x.trim().to_lowercase() == wanted)).collect();
            if with.is_empty() {
                return Err((
                    Fallback::NoPosition,
                    format!("no contact of the customer has the position {:?}", action.recipient_position.as_deref().unwrap_or_default()),
                ));
            }
            with
        }
    };
    let valid: Vec<_> = chosen.iter().filter(|p| !p.invalid).collect();
    if valid.is_empty() {
        let who = if chosen.len() == 1 {
            format!("the contact {} is marked invalid", chosen[0].name)
        } else {
            "every contact it is for is marked invalid".to_string()
        };
        return Err((Fallback::ContactInvalid, who));
    }
    let address = |p: &contact_person::Model| -> Option<String> {
        match action.kind {
            Kind::Email => p.email.clone(),
            Kind::Sms => p.phone.clone(),
            Kind::Letter => crate::crm::contacts::PostalAddress::of(p).map(|a| a.lines().join(", ")),
            Kind::Call | Kind::Task => Some(String::new()),
        }
    };
    let to: Vec<To> = valid.iter().filter_map(|p| address(p).map(|address| To { person: (**p).clone(), address })).collect();
    if to.is_empty() {
        let (code, what) = match action.kind {
            Kind::Sms => (Fallback::NoPhone, "a phone number"),
            Kind::Letter => (Fallback::NoAddress, "a postal address"),
            _ => (Fallback::NoEmail, "an email address"),
        };
        let whose = if valid.len() == 1 {
            format!("the contact {} has no {}", valid[0].name, &what[2..].trim_start_matches("n "))
        } else {
            format!("no contact it is for has {what}")
        };
        return Err((code, whose));
    }
    Ok(to)
}

/// Who sends: the action's user; the first active member of its group (all members), or the
/// first active member assigned to the customer (assigned members, in assignment order); the
/// customer's first assigned user. Never anyone else: an error says why nobody.
pub fn resolve_sender(
    action: &workflow_action::Model,
    users: &HashMap<Uuid, user::Model>,
    assignees: &[Uuid],
    group_members: &[Uuid],
) -> Result<user::Model, String> {
    let active = |id: &Uuid| users.get(id).filter(|u| u.active).cloned();
    match action.sender {
        Some(Sender::User) => match action.sender_user_id {
            Some(id) => active(&id).ok_or_else(|| "the sending user is deactivated".to_string()),
            None => Err("the sending user was deleted".into()),
        },
        Some(Sender::GroupAll) => {
            if action.sender_group_id.is_none() {
                return Err("the sending group was deleted".into());
            }
            group_members.iter().find_map(active).ok_or_else(|| "the sending group has no active member".to_string())
        }
        Some(Sender::GroupAssigned) => {
            if action.sender_group_id.is_none() {
                return Err("the sending group was deleted".into());
            }
            assignees
                .iter()
                .filter(|a| group_members.contains(a))
                .find_map(active)
                .ok_or_else(|| "no active member of the sending group is assigned to the customer".to_string())
        }
        Some(Sender::AssignedUser) => match assignees.first() {
            Some(first) => active(first).ok_or_else(|| "the customer's first assigned user is deactivated".to_string()),
            None => Err("the customer has no assigned user".into()),
        },
        None => Err("the action has no sender".into()),
    }
}

/// Runs what is due at `now` for every account: starts the runs whose time came, then sends
/// the automatic actions their runs cover.
pub async fn run_due(app: &AppState, now: DateTime<Utc>) -> ApiResult<Ran> {
    let db = &app.db;
    let mut ran = Ran::default();
    // Accounts with automatic actions waiting that could be due (a day ahead of UTC covers
    // every time zone).
    let horizon = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    let accounts: Vec<Uuid> = planned_action::Entity::find()
        .select_only()
        .column(planned_action::Column::AccountId)
        .distinct()
        .filter(planned_action::Column::Status.eq(Status::Planned))
        .filter(planned_action::Column::Trigger.eq(Trigger::Automated))
        .filter(planned_action::Column::DueOn.lte(horizon))
        .into_tuple()
        .all(db)
        .await?;
    // Accounts side by side: each is a few round trips per batch, so one alone leaves the
    // database waiting on this process. SQLite has one writer.
    let lanes = if db.get_database_backend() == DbBackend::Postgres { ACCOUNT_LANES } else { 1 };
    // An account whose last look found nothing to do is looked at again a little later, not
    // at every poll: its actions due later today or tomorrow would otherwise cost a few
    // statements each poll until their run comes.
    let accounts: Vec<Uuid> = {
        let quiet = quiet_accounts().lock().unwrap_or_else(|e| e.into_inner());
        accounts.into_iter().filter(|a| quiet.get(a).is_none_or(|until| *until <= now)).collect()
    };
    let mut runs = futures_util::stream::iter(accounts).map(|account_id| run_account(app, account_id, now)).buffer_unordered(lanes);
    while let Some(done) = runs.next().await {
        let done = done?;
        ran.runs += done.runs;
        ran.sent += done.sent;
        ran.todo += done.todo;
    }
    Ok(ran)
}

/// Accounts run at once on PostgreSQL.
const ACCOUNT_LANES: usize = 4;

/// How long an account that had nothing to do is left alone (never past its next scheduling
/// time). Short: actions a killed worker left behind wait at most this long.
const QUIET: chrono::Duration = chrono::Duration::seconds(10);

/// Accounts with nothing to do, until when (this process's own notes).
fn quiet_accounts() -> &'static std::sync::Mutex<HashMap<Uuid, DateTime<Utc>>> {
    static QUIET_UNTIL: std::sync::OnceLock<std::sync::Mutex<HashMap<Uuid, DateTime<Utc>>>> = std::sync::OnceLock::new();
    QUIET_UNTIL.get_or_init(Default::default)
}

/// One account: starts its run if one is due, then sends what its latest run covers.
async fn run_account(app: &AppState, account_id: Uuid, now: DateTime<Utc>) -> ApiResult<Ran> {
    let db = &app.db;
    let mut ran = Ran::default();
    let Some(account) = account::Entity::find_by_id(account_id).one(db).await? else { return Ok(ran) };
    if account.paused {
        return Ok(ran);
    }
    let (cal, _) = calendar::load(db, &account).await?;
    let last = calendar::last_run(db, account_id).await?;
    if let Some(day) = cal.due_run(now, last) {
        let row = workflow_run::Model { account_id, run_on: day, started_at: now, finished_at: None, sent: 0, todo: 0 };
        let inserted = workflow_run::Entity::insert(row.into_active_model())
            .on_conflict(OnConflict::columns([workflow_run::Column::AccountId, workflow_run::Column::RunOn]).do_nothing().to_owned())
            .exec_without_returning(db)
            .await?;
        ran.runs += inserted as usize;
    }
    let Some(covered) = (if ran.runs > 0 { cal.due_run(now, last) } else { calendar::last_run(db, account_id).await? }) else { return Ok(ran) };
    loop {
        let (sent, todo, taken) = send_batch(app, &account, covered, now).await?;
        ran.sent += sent;
        ran.todo += todo;
        if taken < BATCH as usize {
            break;
        }
    }
    if ran == Ran::default() {
        let mut quiet = quiet_accounts().lock().unwrap_or_else(|e| e.into_inner());
        quiet.retain(|_, until| *until > now);
        // Never past the account's next scheduling time.
        quiet.insert(account_id, (now + QUIET).min(cal.next_run(now)));
    }
    if ran.sent + ran.todo > 0 {
        workflow_run::Entity::update_many()
            .col_expr(workflow_run::Column::FinishedAt, Expr::value(now))
            .col_expr(workflow_run::Column::Sent, Expr::col(workflow_run::Column::Sent).add(ran.sent as i32))
            .col_expr(workflow_run::Column::Todo, Expr::col(workflow_run::Column::Todo).add(ran.todo as i32))
            .filter(workflow_run::Column::AccountId.eq(account_id))
            .filter(workflow_run::Column::RunOn.eq(covered))
            .exec(db)
            .await?;
    }
    Ok(ran)
}

/// Takes up to a batch of `account`'s automatic actions due by `covered` and sends them, in
/// one transaction; answers (sent, to-dos, taken).
async fn send_batch(app: &AppState, account: &account::Model, covered: NaiveDate, now: DateTime<Utc>) -> ApiResult<(usize, usize, usize)> {
    let txn = crate::db::begin_write(&app.db).await?;
    let backend = txn.get_database_backend();
    let taken: Vec<planned_action::Model> = match backend {
        DbBackend::Postgres => {
            planned_action::Entity::find()
                .from_raw_sql(Statement::from_sql_and_values(
                    backend,
                    "SELECT * FROM planned_action WHERE account_id = $1 AND status = 'PLANNED' AND \"trigger\" = 'AUTOMATED' AND due_on <= $2 \
                     ORDER BY due_on, id LIMIT $3 FOR UPDATE SKIP LOCKED",
                    [account.id.into(), covered.into(), (BATCH as i64).into()],
                ))
                .all(&txn)
                .await?
        }
        _ => {
            planned_action::Entity::find()
                .filter(planned_action::Column::AccountId.eq(account.id))
                .filter(planned_action::Column::Status.eq(Status::Planned))
                .filter(planned_action::Column::Trigger.eq(Trigger::Automated))
                .filter(planned_action::Column::DueOn.lte(covered))
                .order_by_asc(planned_action::Column::DueOn)
                .order_by_asc(planned_action::Column::Id)
                .limit(BATCH)
                .all(&txn)
                .await?
        }
    };
    if taken.is_empty() {
        txn.commit().await?;
        return Ok((0, 0, 0));
    }
    let facts = Facts::load(&txn, account, &taken).await?;
    let (mut sent, mut todo) = (0, 0);
    // The batch is written in a few statements: its messages, its actions' new state, the
    // to-dos' notifications.
    let (mut messages, mut updated, mut events) = (Vec::new(), Vec::with_capacity(taken.len()), Vec::new());
    for row in &taken {
        match facts.outcome(row) {
            Ok(out) => {
                let (queued, after) = out.prepare(&txn, account, row, now).await?;
                messages.extend(queued);
                updated.push(after);
                sent += 1;
            }
            Err((fallback, reason)) => {
                let responsible = facts.responsible(row);
                let mut after = row.clone();
                after.trigger = Trigger::Manual;
                after.status = Status::Todo;
                after.fallback = Some(fallback.code().to_string());
                after.todo_reason = Some(reason.clone());
                after.assignee_id = responsible.or(row.assignee_id);
                after.version += 1;
                after.updated_at = now;
                if let Some(user) = after.assignee_id {
                    let name = facts.contacts.get(&row.contact_id).map(|c| c.name.clone()).unwrap_or_default();
                    events.push(AddressedEvent {
                        kind: NotificationType::AutomatedCommunicationNeedsAttention,
                        account_id: account.id,
                        contact_id: Some(row.contact_id),
                        title: format!("{:?} to {name} could not go out automatically: it is a to-do", row.kind),
                        body: Some(reason),
                        data: Some(serde_json::json!({ "plannedActionId": row.id, "fallback": fallback.code() })),
                        action_url: None,
                        occurred_at: now,
                        idempotency_key: format!("workflow-todo:{}:v{}", row.id, after.version),
                        recipients: vec![user],
                        email: false,
                    });
                }
                updated.push(after);
                todo += 1;
            }
        }
    }
    crate::db::insert_all::<outbox_message::Entity>(&txn, &messages).await?;
    let conflict = OnConflict::column(planned_action::Column::Id)
        .update_columns([
            planned_action::Column::Trigger,
            planned_action::Column::Status,
            planned_action::Column::AssigneeId,
            planned_action::Column::SenderUserId,
            planned_action::Column::TodoReason,
            planned_action::Column::Fallback,
            planned_action::Column::FromAddress,
            planned_action::Column::Recipients,
            planned_action::Column::Subject,
            planned_action::Column::Body,
            planned_action::Column::OutboxMessageId,
            planned_action::Column::DocumentId,
            planned_action::Column::DoneAt,
            planned_action::Column::Version,
            planned_action::Column::UpdatedAt,
        ])
        .to_owned();
    planned_action::Entity::insert_many(updated.into_iter().map(|r| r.into_active_model())).on_conflict(conflict).exec_without_returning(&txn).await?;
    let notifications = if events.is_empty() { Vec::new() } else { fanout::record_addressed(&txn, events).await?.notifications };
    txn.commit().await?;
    crate::notifications::announce(app, &notifications).await;
    Ok((sent, todo, taken.len()))
}

/// What sending a batch needs, loaded in a few queries.
struct Facts {
    account: account::Model,
    actions: HashMap<Uuid, workflow_action::Model>,
    contacts: HashMap<Uuid, contact::Model>,
    persons: HashMap<Uuid, Vec<contact_person::Model>>,
    assignees: HashMap<Uuid, Vec<Uuid>>,
    members: HashMap<Uuid, Vec<Uuid>>,
    users: HashMap<Uuid, user::Model>,
}

impl Facts {
    async fn load(db: &impl ConnectionTrait, account: &account::Model, rows: &[planned_action::Model]) -> ApiResult<Self> {
        let action_ids: HashSet<Uuid> = rows.iter().filter_map(|r| r.action_id).collect();
        let actions: HashMap<Uuid, workflow_action::Model> =
            workflow_action::Entity::find().filter(workflow_action::Column::Id.is_in(action_ids)).all(db).await?.into_iter().map(|a| (a.id, a)).collect();
        let contact_ids: HashSet<Uuid> = rows.iter().map(|r| r.contact_id).collect();
        let contacts = contact::Entity::find().filter(contact::Column::Id.is_in(contact_ids.clone())).all(db).await?.into_iter().map(|c| (c.id, c)).collect();
        let mut persons: HashMap<Uuid, Vec<contact_person::Model>> = HashMap::new();
        for p in contact_person::Entity::find()
            .filter(contact_person::Column::ContactId.is_in(contact_ids.clone()))
            .order_by_asc(contact_person::Column::CreatedAt)
            .order_by_asc(contact_person::Column::Id)
            .all(db)
            .await?
        {
            persons.entry(p.contact_id).or_default().push(p);
        }
        let mut assignees: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for a in contact_assignee::Entity::find()
            .filter(contact_assignee::Column::ContactId.is_in(contact_ids))
            .order_by_asc(contact_assignee::Column::Position)
            .all(db)
            .await?
        {
            assignees.entry(a.contact_id).or_default().push(a.user_id);
        }
        let mut members = HashMap::new();
        for group in actions.values().filter_map(|a| a.sender_group_id).collect::<HashSet<_>>() {
            if user_group::Entity::find_by_id(group).one(db).await?.is_some() {
                members.insert(group, groups::members_of(db, group).await?);
            }
        }
        let mut user_ids: HashSet<Uuid> = assignees.values().flatten().copied().collect();
        user_ids.extend(members.values().flatten().copied());
        user_ids.extend(actions.values().filter_map(|a| a.sender_user_id));
        let users = user::Entity::find().filter(user::Column::Id.is_in(user_ids)).all(db).await?.into_iter().map(|u| (u.id, u)).collect();
        Ok(Self { account: account.clone(), actions, contacts, persons, assignees, members, users })
    }

    /// Whose to-do an action becomes: its sender if one resolves, else the customer's first
    /// assigned user.
    fn responsible(&self, row: &planned_action::Model) -> Option<Uuid> {
        let assignees = self.assignees.get(&row.contact_id).map(Vec::as_slice).unwrap_or_default();
        row.action_id.and_then(|a| self.actions.get(&a)).and_then(|a| self.sender(a, row).ok()).map(|u| u.id).or_else(|| assignees.first().copied())
    }

    fn sender(&self, action: &workflow_action::Model, row: &planned_action::Model) -> Result<user::Model, String> {
        let assignees = self.assignees.get(&row.contact_id).map(Vec::as_slice).unwrap_or_default();
        let members = action.sender_group_id.and_then(|g| self.members.get(&g)).map(Vec::as_slice).unwrap_or_default();
        resolve_sender(action, &self.users, assignees, members)
    }

    /// What an action sends, or why it cannot.
    fn outcome(&self, row: &planned_action::Model) -> Result<Send, (Fallback, String)> {
        let action = row.action_id.and_then(|a| self.actions.get(&a)).ok_or((Fallback::NoSender, "the workflow action was deleted".to_string()))?;
        let sender = self.sender(action, row).map_err(|why| (Fallback::NoSender, why))?;
        let persons = self.persons.get(&row.contact_id).map(Vec::as_slice).unwrap_or_default();
        let to = recipients_for(action, persons)?;
        let customer = self.contacts.get(&row.contact_id);
        // Each contact gets a message of their own, rendered with their fields.
        let mut messages = Vec::with_capacity(to.len());
        for t in to {
            let p = &t.person;
            let ctx = context! {
                customer => context! { name => customer.map(|c| c.name.clone()), email => customer.and_then(|c| c.main_email.clone()) },
                contact => context! { name => p.name, email => p.email, position => p.position, phone => p.phone },
                sender => context! { name => sender.name, email => sender.email },
                account => context! { name => self.account.name },
                action => context! { due_date => row.due_on.format("%-d %B %Y").to_string() },
            };
            let render = |t: &Option<String>| -> Result<String, (Fallback, String)> {
                t.as_deref()
                    .map(|s| templates::render(s, &ctx))
                    .transpose()
                    .map(Option::unwrap_or_default)
                    .map_err(|e| (Fallback::NoSender, format!("the template could not be rendered: {e}")))
            };
            let subject = render(&action.subject_template)?.split_whitespace().collect::<Vec<_>>().join(" ");
            let body = render(&action.body_template)?;
            messages.push(Rendered { to: t, subject, body });
        }
        Ok(Send { kind: action.kind, sender, messages })
    }
}

/// One recipient's message.
struct Rendered {
    to: To,
    subject: String,
    body: String,
}

/// An action ready to go.
struct Send {
    kind: Kind,
    sender: user::Model,
    messages: Vec<Rendered>,
}

impl Send {
    /// What the action queues (one email or text per contact, each under a source key of the
    /// action and the contact: never queued twice) and its new state, SENT with what it sent.
    /// Letters are posted here.
    async fn prepare(
        self,
        db: &DatabaseTransaction,
        account: &account::Model,
        row: &planned_action::Model,
        now: DateTime<Utc>,
    ) -> ApiResult<(Vec<outbox_message::Model>, planned_action::Model)> {
        let recipients =
            serde_json::json!(self.messages.iter().map(|m| serde_json::json!({ "name": m.to.person.name, "address": m.to.address })).collect::<Vec<_>>());
        let channel = match self.kind {
            Kind::Email => Channel::Email,
            Kind::Sms => Channel::Text,
            Kind::Letter => {
                let document = self.post(db, account, row, now).await?;
                return Ok((Vec::new(), self.done(row, recipients, None, document, now)));
            }
            // Calls and tasks are never automatic (refused when the workflow is saved).
            Kind::Call | Kind::Task => {
                return Err(ApiError::Internal(anyhow::anyhow!("a {:?} action cannot be sent automatically", self.kind)));
            }
        };
        let email = channel == Channel::Email;
        let mut queued = Vec::with_capacity(self.messages.len());
        for m in &self.messages {
            let to = Recipient { field: Field::To, address: m.to.address.clone(), name: Some(m.to.person.name.clone()), user_id: None };
            let message = crate::outbox::Addressed {
                channel,
                recipients: vec![to],
                subject: email.then(|| m.subject.clone()),
                text: m.body.clone(),
                html: email.then(|| templates::html_of(&m.body)),
                source_key: format!("workflow-action:{}:{}", row.id, m.to.person.id),
                sender_user_id: Some(self.sender.id),
            };
            queued.push(message.row(row.account_id, now)?);
        }
        let after = self.done(row, recipients, queued.first().map(|m| m.id), None, now);
        Ok((queued, after))
    }

    /// Letters: one per contact, rendered to PDF and handed to the postal provider.
    async fn post(&self, db: &DatabaseTransaction, account: &account::Model, row: &planned_action::Model, now: DateTime<Utc>) -> ApiResult<Option<Uuid>> {
        let mut document = None;
        for m in &self.messages {
            let letter = letters::Letter {
                from_organisation: account.name.clone(),
                from_name: self.sender.name.clone(),
                to_name: m.to.person.name.clone(),
                address_lines: crate::crm::contacts::PostalAddress::of(&m.to.person).map(|a| a.lines()).unwrap_or_default(),
                date: row.due_on.max(now.date_naive()),
                subject: Some(m.subject.clone()).filter(|s| !s.is_empty()),
                body: m.body.clone(),
            };
            let pdf = letters::render(&letter);
            let id = letters::provider().post(db, row.account_id, row.id, &letter, pdf, now).await?;
            document.get_or_insert(id);
        }
        Ok(document)
    }

    /// The action SENT, with what it sent.
    fn done(
        &self,
        row: &planned_action::Model,
        recipients: serde_json::Value,
        outbox_id: Option<Uuid>,
        document: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> planned_action::Model {
        let first = self.messages.first();
        let mut after = row.clone();
        after.status = Status::Sent;
        after.sender_user_id = Some(self.sender.id);
        after.from_address = Some(self.sender.email.clone());
        after.recipients = Some(recipients);
        after.subject = first.map(|m| m.subject.clone()).filter(|s| !s.is_empty());
        after.body = first.map(|m| m.body.clone());
        after.outbox_message_id = outbox_id;
        after.document_id = document;
        after.done_at = Some(now);
        after.version += 1;
        after.updated_at = now;
        after
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use entity::user::Role;

    use super::*;

    fn action(kind: Kind, recipients: Recipients, position: Option<&str>) -> workflow_action::Model {
        workflow_action::Model {
            id: Uuid::now_v7(),
            account_id: Uuid::nil(),
            workflow_id: Uuid::nil(),
            position: 0,
            kind,
            name: "a".into(),
            delay_days: 0,
            delay_from: workflow_action::DelayFrom::Enrollment,
            subject_template: None,
            body_template: None,
            recipients,
            recipient_position: position.map(String::from),
            send_automatically: true,
            sender: Some(Sender::AssignedUser),
            sender_user_id: None,
            sender_group_id: None,
            billing: false,
        }
    }

    fn person(name: &str, email: Option<&str>, position: Option<&str>, main: bool, invalid: bool) -> contact_person::Model {
        contact_person::Model {
            id: Uuid::now_v7(),
            account_id: Uuid::nil(),
            contact_id: Uuid::nil(),
            name: name.into(),
            email: email.map(String::from),
            position: position.map(String::from),
            invalid,
            phone: None,
            postal_address: None,
            main,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn reason(r: Result<Vec<To>, (Fallback, String)>) -> Fallback {
        r.map(|_| ()).expect_err("a fallback").0
    }

    #[test]
    fn every_recipient_fallback_has_its_reason() {
        let email = |r, p| action(Kind::Email, r, p);
        assert_eq!(reason(recipients_for(&email(Recipients::MainContact, None), &[])), Fallback::NoContacts);
        let bob = person("Bob", Some("bob@x.example"), Some("Buyer"), false, false);
        assert_eq!(reason(recipients_for(&email(Recipients::MainContact, None), std::slice::from_ref(&bob))), Fallback::NoMainContact);
        let main_invalid = person("Ann", Some("ann@x.example"), None, true, true);
        assert_eq!(reason(recipients_for(&email(Recipients::MainContact, None), &[main_invalid, bob.clone()])), Fallback::ContactInvalid);
        assert_eq!(reason(recipients_for(&email(Recipients::Position, Some("Finance")), std::slice::from_ref(&bob))), Fallback::NoPosition);
        let no_email = person("Cy", None, None, true, false);
        assert_eq!(reason(recipients_for(&email(Recipients::MainContact, None), &[no_email])), Fallback::NoEmail);
        assert_eq!(reason(recipients_for(&action(Kind::Sms, Recipients::AllContacts, None), std::slice::from_ref(&bob))), Fallback::NoPhone);
        assert_eq!(reason(recipients_for(&action(Kind::Letter, Recipients::AllContacts, None), std::slice::from_ref(&bob))), Fallback::NoAddress);
        // Invalid ones are skipped while others remain; positions ignore case.
        let invalid = person("Dee", Some("dee@x.example"), Some("buyer"), false, true);
        let to = recipients_for(&email(Recipients::Position, Some("BUYER")), &[bob, invalid]).unwrap();
        assert_eq!(to.iter().map(|t| t.address.as_str()).collect::<Vec<_>>(), vec!["bob@x.example"]);
    }

    fn user(name: &str, active: bool) -> user::Model {
        user::Model {
            id: Uuid::now_v7(),
            account_id: Uuid::nil(),
            name: name.into(),
            email: format!("{}@acme.example", name.to_lowercase()),
            phone: None,
            role: Role::User,
            active,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_deactivated_first_assignee_is_not_replaced_by_the_second() {
        let (first, second) = (user("First", false), user("Second", true));
        let users: HashMap<Uuid, user::Model> = [(first.id, first.clone()), (second.id, second.clone())].into();
        let a = action(Kind::Email, Recipients::MainContact, None);
        let e = resolve_sender(&a, &users, &[first.id, second.id], &[]).unwrap_err();
        assert!(e.contains("first assigned user is deactivated"), "{e}");
        let mut by_user = a.clone();
        by_user.sender = Some(Sender::User);
        by_user.sender_user_id = None;
        assert!(resolve_sender(&by_user, &users, &[], &[]).unwrap_err().contains("deleted"));
    }
}
