//! What integration services report about an account's integrations, and the alerts that
//! follow: by email to the account's report recipients (whatever their switches: they are a
//! duty roster, [`super::recipients`]), with the BCC, and as panel rows by each user's
//! switches.
//!
//! Alerts follow state, not volume:
//! - **Connection problems** (re-authentication required, a failing connection) change the
//!   integration's health; the change alerts once, however many reports repeat it, and the
//!   way back to CONNECTED (a restored report, or a sync run that completed) sends one
//!   "resolved" email.
//! - **Contact mapping errors** are kept per record ([`entity::integration_mapping_error`]):
//!   the first error that needs telling opens a window (the report settings' minutes); when it
//!   ends, the worker ([`close_due_windows`]) sends one email listing every record still
//!   failing that was not told yet. A record already told is told again only after
//!   [`REMIND_AFTER`], if still failing; a record reported fixed is closed.
//! - **A data sync summary** is one email per run.
//!
//! Each report is idempotent by its key (per integration): the same key again answers what
//! the first did and changes nothing; the same key with another report is a conflict. Reports
//! run under the integration's row lock, so two at once are judged one after the other.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::{
    account, integration,
    integration::Health,
    integration_alert_window as window, integration_mapping_error as mapping, integration_report,
    integration_report::Kind,
    outbox_message::{self, Channel, Field, Recipient},
    user,
};
use minijinja::{context, Value};
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    emails::{self, Common, Deadline, Template},
    recipients,
    settings::SyncObject,
};
use crate::{
    audit::Change,
    auth::{ApiKeyScope, Caller, Principal},
    error::{ApiError, ApiResult},
    notifications::{
        catalog::NotificationType,
        fanout::{self, AddressedEvent},
    },
    state::AppState,
};

/// A record still failing is listed again after this long.
pub const REMIND_AFTER: Duration = Duration::hours(24);
/// Records listed in one email at most; the rest are counted ("and 140 more").
pub const MAX_LISTED: usize = 100;
/// Errors in one report at most.
pub const MAX_ERRORS: usize = 1000;

// --- what a report says --------------------------------------------------------------------------

/// Re-authentication required, or a failing connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionProblem {
    pub integration_id: Uuid,
    pub idempotency_key: String,
    /// Which connection (a portal, an org, a user's grant).
    pub connection: String,
    pub reason: String,
    /// Reconnection steps, or corrective actions.
    pub actions: Vec<String>,
    /// By when it must be fixed (required for re-authentication).
    pub deadline: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRestored {
    pub integration_id: Uuid,
    pub idempotency_key: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MappingError {
    pub object: SyncObject,
    pub record_id: String,
    pub record_name: Option<String>,
    /// The CRM field concerned, if one.
    pub field: Option<String>,
    pub error: String,
    pub tips: Vec<String>,
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MappingRecord {
    pub object: SyncObject,
    pub record_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MappingErrors {
    pub integration_id: Uuid,
    pub idempotency_key: String,
    pub errors: Vec<MappingError>,
    /// Records that map again (their errors are closed).
    pub resolved: Vec<MappingRecord>,
    /// By when the records should be fixed (the next sync that would drop them, say).
    pub deadline: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub object: SyncObject,
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub skipped: i32,
    pub failed: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncWarning {
    pub object: Option<SyncObject>,
    pub message: String,
    pub count: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    pub action: String,
    pub deadline: Option<DateTime<Utc>>,
}

/// One completed sync run; the idempotency key names the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncSummary {
    pub integration_id: Uuid,
    pub idempotency_key: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub operations: Vec<Operation>,
    pub warnings: Vec<SyncWarning>,
    pub follow_ups: Vec<FollowUp>,
}

/// A problem of an integration as it stands (`integration.problems`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub kind: ProblemKind,
    pub connection: Option<String>,
    pub reason: String,
    pub actions: Vec<String>,
    pub deadline: Option<DateTime<Utc>>,
    pub since: DateTime<Utc>,
    /// Contact mapping errors: records failing.
    pub records: Option<i32>,
}

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProblemKind {
    ReauthenticationRequired,
    ConnectionError,
    ContactMappingErrors,
}

pub fn problems(row: &integration::Model) -> Vec<Problem> {
    serde_json::from_value(row.problems.clone()).unwrap_or_default()
}

/// What a report did.
#[derive(Clone, Debug)]
pub struct Answer {
    pub integration: integration::Model,
    /// The key was reported before: nothing changed this time.
    pub duplicate: bool,
    /// Whether it raised an alert.
    pub alerted: bool,
    /// The email it queued (or, for a duplicate, the first one queued), if any.
    pub email: Option<outbox_message::Model>,
}

// --- checks ----------------------------------------------------------------------------------

/// Integration services report with API keys that may publish events (or WRITE); company
/// admins may too (a CRM's own integration page).
fn require_reporter(caller: &Caller) -> ApiResult<()> {
    match &caller.principal {
        Principal::ApiKey { scopes, .. } if scopes.contains(&ApiKeyScope::PublishEvents) || scopes.contains(&ApiKeyScope::Write) => Ok(()),
        Principal::ApiKey { .. } => Err(ApiError::forbidden("this API key lacks the PUBLISH_EVENTS scope")),
        Principal::User { .. } => caller.require_admin_or_write_key(),
    }
}

fn text(field: &str, value: &str, max: usize) -> ApiResult<()> {
    let len = value.trim().chars().count();
    if len == 0 || len > max {
        return Err(ApiError::bad_input(field, format!("give 1 to {max} characters")));
    }
    Ok(())
}

fn texts(field: &str, values: &[String], max_items: usize) -> ApiResult<()> {
    if values.len() > max_items {
        return Err(ApiError::bad_input(field, format!("at most {max_items} entries")));
    }
    for (i, v) in values.iter().enumerate() {
        text(&format!("{field}[{i}]"), v, 1000)?;
    }
    Ok(())
}

// --- the common flow -------------------------------------------------------------------------

/// A report being received: its transaction (with the audit), the integration locked, its
/// account, the report's row.
struct Receiving<'a> {
    app: &'a AppState,
    change: Change<'a>,
    integration: integration::Model,
    /// Loaded when an email needs it.
    account: Option<account::Model>,
    report: integration_report::Model,
    now: DateTime<Utc>,
    notifications: Vec<entity::notification::Model>,
}

enum Begun<'a> {
    Duplicate(Box<Answer>),
    New(Box<Receiving<'a>>),
}

async fn begin<'a>(app: &'a AppState, caller: &'a Caller, integration_id: Uuid, kind: Kind, key: &str, payload: serde_json::Value) -> ApiResult<Begun<'a>> {
    require_reporter(caller)?;
    text("input.idempotencyKey", key, 200)?;
    let change = Change::begin(app, caller).await?;
    // Locked: reports of one integration are judged one after the other (and against the
    // worker closing a window), so a state changes once.
    let integration = integration::Entity::find_by_id(integration_id)
        .filter(integration::Column::AccountId.eq(caller.account_id))
        .lock_exclusive()
        .one(change.db())
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    let now = Utc::now();
    let report = integration_report::Model {
        id: Uuid::now_v7(),
        account_id: caller.account_id,
        integration_id,
        kind,
        idempotency_key: key.trim().to_string(),
        payload: payload.clone(),
        alerted: false,
        received_at: now,
    };
    // The key's row first: a key seen before inserts nothing, and is answered from its row.
    let inserted = integration_report::Entity::insert(report.clone().into_active_model())
        .on_conflict(OnConflict::columns([integration_report::Column::IntegrationId, integration_report::Column::IdempotencyKey]).do_nothing().to_owned())
        .exec_without_returning(change.db())
        .await?;
    if inserted == 0 {
        let known = integration_report::Entity::find()
            .filter(integration_report::Column::IntegrationId.eq(integration_id))
            .filter(integration_report::Column::IdempotencyKey.eq(key.trim()))
            .one(change.db())
            .await?
            .ok_or(ApiError::NotFound("report"))?;
        if known.kind != kind || known.payload != payload {
            return Err(ApiError::Conflict(format!("the idempotency key {:?} was used for another report of this integration", key.trim())));
        }
        let email = outbox_message::Entity::find()
            .filter(outbox_message::Column::AccountId.eq(caller.account_id))
            .filter(outbox_message::Column::SourceKey.eq(report_source(&known)))
            .one(change.db())
            .await?;
        return Ok(Begun::Duplicate(Box::new(Answer { integration, duplicate: true, alerted: known.alerted, email })));
    }
    Ok(Begun::New(Box::new(Receiving { app, change, integration, account: None, report, now, notifications: Vec::new() })))
}

/// The source key of the email a report queues.
fn report_source(report: &integration_report::Model) -> String {
    format!("integration-report:{}", report.id)
}

impl Receiving<'_> {
    /// Writes the integration's new state (version bumped), audited as `action`.
    async fn save(&mut self, after: integration::Model, action: &str) -> ApiResult<()> {
        let before = self.integration.clone();
        let mut after = after;
        after.version = before.version + 1;
        after.updated_at = self.now;
        let saved = integration::Entity::update(after.into_active_model().reset_all()).exec(self.change.db()).await?;
        self.change.record(saved.account_id, action, "Integration", saved.id, Some(&before), Some(&saved)).await?;
        self.integration = saved;
        Ok(())
    }

    /// Raises `kind` for the account's users (a panel row by their switches).
    async fn raise(&mut self, kind: NotificationType, title: String, body: Option<String>) -> ApiResult<()> {
        let event = integration_event(&self.integration, kind, title, body, self.now, format!("integration-report:{}", self.report.id));
        let recorded = record_for_account(self.change.db(), event).await?;
        self.notifications.extend(recorded);
        Ok(())
    }

    async fn account(&mut self) -> ApiResult<account::Model> {
        if self.account.is_none() {
            self.account = account::Entity::find_by_id(self.integration.account_id).one(self.change.db()).await?;
        }
        self.account.clone().ok_or(ApiError::NotFound("account"))
    }

    async fn email(&mut self, template: Template, deadline: Deadline, actions: Vec<String>, fields: Value) -> ApiResult<Option<outbox_message::Model>> {
        let account = self.account().await?;
        let common = common(&account, &self.integration, self.now, deadline, actions);
        queue(self.change.db(), &account, template, &common, fields, report_source(&self.report)).await
    }

    async fn finish(self, alerted: bool, email: Option<outbox_message::Model>) -> ApiResult<Answer> {
        if alerted {
            integration_report::Entity::update_many()
                .col_expr(integration_report::Column::Alerted, Expr::value(true))
                .filter(integration_report::Column::Id.eq(self.report.id))
                .exec(self.change.db())
                .await?;
        }
        self.change.commit().await?;
        crate::notifications::announce(self.app, &self.notifications).await;
        Ok(Answer { integration: self.integration, duplicate: false, alerted, email })
    }
}

fn provider_label(p: integration::Provider) -> &'static str {
    match p {
        integration::Provider::Hubspot => "HubSpot",
        integration::Provider::Salesforce => "Salesforce",
        integration::Provider::Zoho => "Zoho",
    }
}

fn common(account: &account::Model, row: &integration::Model, now: DateTime<Utc>, deadline: Deadline, actions: Vec<String>) -> Common {
    Common { account: account.name.clone(), provider: provider_label(row.provider), time_zone: account.time_zone.clone(), occurred_at: now, deadline, actions }
}

fn integration_event(row: &integration::Model, kind: NotificationType, title: String, body: Option<String>, now: DateTime<Utc>, key: String) -> AddressedEvent {
    AddressedEvent {
        kind,
        account_id: row.account_id,
        contact_id: None,
        title,
        body,
        data: Some(serde_json::json!({ "integrationId": row.id, "provider": row.provider })),
        action_url: None,
        occurred_at: now,
        idempotency_key: key,
        recipients: Vec::new(),
        email: false,
    }
}

/// Records an integration event for every active user of its account: a panel row by their
/// switches (these types concern no contact, so the System switch decides). No roll-up: an
/// account's integrations are its own admins' work.
async fn record_for_account(txn: &DatabaseTransaction, mut event: AddressedEvent) -> ApiResult<Vec<entity::notification::Model>> {
    event.recipients = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::AccountId.eq(event.account_id))
        .filter(user::Column::Active.eq(true))
        .into_tuple()
        .all(txn)
        .await?;
    Ok(fanout::record_addressed(txn, vec![event]).await?.notifications)
}

/// Queues a report email to the account's report recipients (To) and its BCC, rendered now;
/// `None` when the account has nobody to send it to.
async fn queue(
    txn: &DatabaseTransaction,
    account: &account::Model,
    template: Template,
    common: &Common,
    fields: Value,
    source_key: String,
) -> ApiResult<Option<outbox_message::Model>> {
    let (settings, people) = recipients::recipients(txn, account.id).await?;
    if people.is_empty() {
        tracing::warn!(account = %account.id, source = %source_key, "a report email has no recipient: the account's report roles have no active member");
        return Ok(None);
    }
    let email = emails::render(template, common, fields).map_err(|e| ApiError::Internal(anyhow::anyhow!(e).context("rendering a report email")))?;
    let mut list: Vec<Recipient> =
        people.into_iter().map(|r| Recipient { field: Field::To, address: r.user.email, name: Some(r.user.name), user_id: Some(r.user.id) }).collect();
    if let Some(bcc) = settings.bcc {
        list.push(Recipient { field: Field::Bcc, address: bcc, name: None, user_id: None });
    }
    let now = Utc::now();
    let row = crate::outbox::Addressed {
        channel: Channel::Email,
        recipients: list,
        subject: Some(email.subject),
        text: email.text,
        html: Some(email.html),
        source_key,
        sender_user_id: None,
    }
    .row(account.id, now)?;
    Ok(Some(row.into_active_model().reset_all().insert(txn).await?))
}

// --- connection problems ---------------------------------------------------------------------

/// Re-authentication required: the integration is REAUTH_REQUIRED until restored; alerted
/// once on the change.
pub async fn reauthentication_required(app: &AppState, caller: &Caller, input: ConnectionProblem) -> ApiResult<Answer> {
    if input.deadline.is_none() {
        return Err(ApiError::bad_input("input.deadline", "give the deadline by which the connection must be authorised again"));
    }
    if input.actions.is_empty() {
        return Err(ApiError::bad_input("input.steps", "give the reconnection steps"));
    }
    connection_problem(app, caller, input, ProblemKind::ReauthenticationRequired).await
}

/// A failing connection: ERROR until restored; alerted once on the change.
pub async fn connection_error(app: &AppState, caller: &Caller, input: ConnectionProblem) -> ApiResult<Answer> {
    connection_problem(app, caller, input, ProblemKind::ConnectionError).await
}

async fn connection_problem(app: &AppState, caller: &Caller, input: ConnectionProblem, kind: ProblemKind) -> ApiResult<Answer> {
    text("input.connection", &input.connection, 200)?;
    text("input.reason", &input.reason, 2000)?;
    texts(if kind == ProblemKind::ReauthenticationRequired { "input.steps" } else { "input.actions" }, &input.actions, 20)?;
    let report_kind = match kind {
        ProblemKind::ReauthenticationRequired => Kind::ReauthenticationRequired,
        _ => Kind::ConnectionError,
    };
    let payload = serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.into()))?;
    let mut r = match begin(app, caller, input.integration_id, report_kind, &input.idempotency_key, payload).await? {
        Begun::Duplicate(answer) => return Ok(*answer),
        Begun::New(r) => r,
    };
    let health = match kind {
        ProblemKind::ReauthenticationRequired => Health::ReauthRequired,
        _ => Health::Error,
    };
    let problem = Problem {
        kind,
        connection: Some(input.connection.trim().to_string()),
        reason: input.reason.trim().to_string(),
        actions: input.actions.clone(),
        deadline: input.deadline,
        since: r.now,
        records: None,
    };
    let mut list = problems(&r.integration);
    let current = list.iter().position(|p| p.kind == kind);
    // A disabled integration is nobody's problem now; its state is kept for when it is on.
    if !r.integration.enabled || r.integration.health == health {
        // The same state again: its details refreshed (a new deadline, say), nobody told.
        if let Some(i) = current {
            list[i] = Problem { since: list[i].since, ..problem };
            let mut after = r.integration.clone();
            after.problems = serde_json::to_value(&list).map_err(|e| ApiError::Internal(e.into()))?;
            r.save(after, "integration.problem_updated").await?;
        }
        return r.finish(false, None).await;
    }
    list.retain(|p| !matches!(p.kind, ProblemKind::ReauthenticationRequired | ProblemKind::ConnectionError));
    list.insert(0, problem.clone());
    let mut after = r.integration.clone();
    after.health = health;
    after.problems = serde_json::to_value(&list).map_err(|e| ApiError::Internal(e.into()))?;
    r.save(after, "integration.health_changed").await?;
    let provider = provider_label(r.integration.provider);
    let (template, deadline, notification, title) = match kind {
        ProblemKind::ReauthenticationRequired => (
            Template::ReauthenticationRequired,
            Deadline::At(input.deadline.unwrap_or(r.now)),
            NotificationType::IntegrationReauthenticationRequired,
            format!("{provider}: re-authentication required ({})", problem.connection.as_deref().unwrap_or_default()),
        ),
        _ => (
            Template::ConnectionError,
            input.deadline.map(Deadline::At).unwrap_or(Deadline::None("none set (fix it as soon as you can: nothing is synchronised meanwhile)")),
            NotificationType::SystemErrorInformation,
            format!("{provider}: connection failing ({})", problem.connection.as_deref().unwrap_or_default()),
        ),
    };
    r.raise(notification, title, Some(problem.reason.clone())).await?;
    let fields = context! { connection => problem.connection, reason => problem.reason };
    let email = r.email(template, deadline, input.actions, fields).await?;
    r.finish(true, email).await
}

/// The connection works again: CONNECTED, and one "resolved" email if it was failing.
pub async fn connection_restored(app: &AppState, caller: &Caller, input: ConnectionRestored) -> ApiResult<Answer> {
    let payload = serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.into()))?;
    let mut r = match begin(app, caller, input.integration_id, Kind::ConnectionRestored, &input.idempotency_key, payload).await? {
        Begun::Duplicate(answer) => return Ok(*answer),
        Begun::New(r) => r,
    };
    let restored = restore(&mut r).await?;
    r.finish(restored.is_some(), restored.flatten()).await
}

/// Back to CONNECTED if the integration had a connection problem: the problem cleared, a
/// "resolved" email queued. `None` when there was nothing to resolve; `Some(None)` when the
/// account had nobody to email.
async fn restore(r: &mut Receiving<'_>) -> ApiResult<Option<Option<outbox_message::Model>>> {
    if !r.integration.enabled || !matches!(r.integration.health, Health::ReauthRequired | Health::Error) {
        return Ok(None);
    }
    let mut list = problems(&r.integration);
    let gone = list.iter().find(|p| matches!(p.kind, ProblemKind::ReauthenticationRequired | ProblemKind::ConnectionError)).cloned();
    list.retain(|p| !matches!(p.kind, ProblemKind::ReauthenticationRequired | ProblemKind::ConnectionError));
    let mut after = r.integration.clone();
    after.health = Health::Connected;
    after.problems = serde_json::to_value(&list).map_err(|e| ApiError::Internal(e.into()))?;
    r.save(after, "integration.health_changed").await?;
    let provider = provider_label(r.integration.provider);
    let connection = gone.as_ref().and_then(|p| p.connection.clone()).unwrap_or_else(|| provider.to_string());
    let (what, since) = match &gone {
        Some(p) if p.kind == ProblemKind::ReauthenticationRequired => ("re-authentication required".to_string(), p.since),
        Some(p) => (format!("connection failing: {}", p.reason), p.since),
        None => ("connection problem".to_string(), r.now),
    };
    r.raise(NotificationType::SystemInformation, format!("{provider}: resolved, {connection} works again"), Some(what.clone())).await?;
    let account = r.account().await?;
    let c = common(&account, &r.integration, r.now, Deadline::None("none (no action is required)"), Vec::new());
    let fields = context! { connection => connection, problem => what, since => c.local(since), lasted => emails::span(r.now - since) };
    Ok(Some(queue(r.change.db(), &account, Template::ConnectionRestored, &c, fields, format!("{}:resolved", report_source(&r.report))).await?))
}

// --- data sync summaries ---------------------------------------------------------------------

/// A completed sync run: one email per run; the integration's last sync moves on, and a
/// connection problem is over (a run completed), with its "resolved" email.
pub async fn data_sync_summary(app: &AppState, caller: &Caller, input: SyncSummary) -> ApiResult<Answer> {
    if input.finished_at < input.started_at {
        return Err(ApiError::bad_input("input.finishedAt", "a run finishes after it starts"));
    }
    if input.operations.is_empty() || input.operations.len() > 20 {
        return Err(ApiError::bad_input("input.operations", "give 1 to 20 objects' operations"));
    }
    for (i, o) in input.operations.iter().enumerate() {
        if [o.created, o.updated, o.deleted, o.skipped, o.failed].iter().any(|n| *n < 0) {
            return Err(ApiError::bad_input(format!("input.operations[{i}]"), "counts are 0 or more"));
        }
    }
    if input.warnings.len() > 100 {
        return Err(ApiError::bad_input("input.warnings", "at most 100 warnings"));
    }
    for (i, w) in input.warnings.iter().enumerate() {
        text(&format!("input.warnings[{i}].message"), &w.message, 1000)?;
    }
    if input.follow_ups.len() > 20 {
        return Err(ApiError::bad_input("input.followUps", "at most 20 follow-ups"));
    }
    for (i, f) in input.follow_ups.iter().enumerate() {
        text(&format!("input.followUps[{i}].action"), &f.action, 1000)?;
    }
    let payload = serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.into()))?;
    let mut r = match begin(app, caller, input.integration_id, Kind::DataSyncSummary, &input.idempotency_key, payload).await? {
        Begun::Duplicate(answer) => return Ok(*answer),
        Begun::New(r) => r,
    };
    restore(&mut r).await?;
    let mut after = r.integration.clone();
    after.last_sync_at = Some(after.last_sync_at.map_or(input.finished_at, |t| t.max(input.finished_at)));
    r.save(after, "integration.synced").await?;

    let provider = provider_label(r.integration.provider);
    let failed: i32 = input.operations.iter().map(|o| o.failed).sum();
    let changed: i32 = input.operations.iter().map(|o| o.created + o.updated + o.deleted).sum();
    r.raise(
        NotificationType::DataSyncSummary,
        format!("{provider} sync completed: {changed} changed{}", if failed > 0 { format!(", {failed} failed") } else { String::new() }),
        None,
    )
    .await?;
    let account = r.account().await?;
    let c = common(&account, &r.integration, r.now, Deadline::None(""), Vec::new());
    let actions: Vec<String> = input
        .follow_ups
        .iter()
        .map(|f| match f.deadline {
            Some(d) => format!("{} (by {})", f.action.trim(), c.local(d)),
            None => f.action.trim().to_string(),
        })
        .collect();
    let deadline = match input.follow_ups.iter().filter_map(|f| f.deadline).min() {
        Some(d) => Deadline::At(d),
        None if actions.is_empty() => Deadline::None("none (no action is required)"),
        None => Deadline::None("none set (at your convenience)"),
    };
    let label = |o: SyncObject| format!("{o:?}");
    let operations: Vec<Value> = input
        .operations
        .iter()
        .map(|o| context! { object => label(o.object), created => o.created, updated => o.updated, deleted => o.deleted, skipped => o.skipped, failed => o.failed })
        .collect();
    let warnings: Vec<Value> =
        input.warnings.iter().map(|w| context! { object => w.object.map(label), message => w.message.trim(), count => w.count }).collect();
    let fields = context! {
        operations => operations,
        warnings => warnings,
        totals => context! { changed => changed, failed => failed },
        started => c.local(input.started_at),
        finished => c.local(input.finished_at),
        duration => emails::span(input.finished_at - input.started_at),
    };
    let email = r.email(Template::DataSyncSummary, deadline, actions, fields).await?;
    r.finish(true, email).await
}

// --- contact mapping errors ------------------------------------------------------------------

/// Records the errors (one row per record) and closes the resolved ones; opens the
/// integration's window if a record needs telling. The email goes when the window ends
/// ([`close_due_windows`]).
pub async fn mapping_errors(app: &AppState, caller: &Caller, input: MappingErrors) -> ApiResult<Answer> {
    if input.errors.is_empty() && input.resolved.is_empty() {
        return Err(ApiError::bad_input("input.errors", "give at least one error or one resolved record"));
    }
    if input.errors.len() > MAX_ERRORS || input.resolved.len() > MAX_ERRORS {
        return Err(ApiError::bad_input("input.errors", format!("at most {MAX_ERRORS} errors and {MAX_ERRORS} resolved records per report")));
    }
    for (i, e) in input.errors.iter().enumerate() {
        text(&format!("input.errors[{i}].recordId"), &e.record_id, 200)?;
        if let Some(name) = &e.record_name {
            text(&format!("input.errors[{i}].recordName"), name, 300)?;
        }
        if let Some(field) = &e.field {
            text(&format!("input.errors[{i}].field"), field, 100)?;
        }
        text(&format!("input.errors[{i}].error"), &e.error, 2000)?;
        texts(&format!("input.errors[{i}].tips"), &e.tips, 10)?;
        texts(&format!("input.errors[{i}].actions"), &e.actions, 10)?;
    }
    for (i, e) in input.resolved.iter().enumerate() {
        text(&format!("input.resolved[{i}].recordId"), &e.record_id, 200)?;
    }
    let payload = serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.into()))?;
    let r = match begin(app, caller, input.integration_id, Kind::ContactMappingErrors, &input.idempotency_key, payload).await? {
        Begun::Duplicate(answer) => return Ok(*answer),
        Begun::New(r) => r,
    };
    let (txn, now, row) = (r.change.db(), r.now, r.integration.clone());

    // One row per record, the last of the report winning, in the order they came.
    let mut latest: Vec<((String, String), &MappingError)> = Vec::with_capacity(input.errors.len());
    let mut at: HashMap<(String, String), usize> = HashMap::new();
    for e in &input.errors {
        let k = (object_name(e.object), e.record_id.trim().to_string());
        match at.get(&k) {
            Some(i) => latest[*i].1 = e,
            None => {
                at.insert(k.clone(), latest.len());
                latest.push((k, e));
            }
        }
    }
    let resolved: Vec<(String, String)> = input.resolved.iter().map(|m| (object_name(m.object), m.record_id.trim().to_string())).collect();
    for chunk in resolved.chunks(200) {
        mapping::Entity::update_many()
            .col_expr(mapping::Column::ResolvedAt, Expr::value(now))
            .filter(mapping::Column::IntegrationId.eq(row.id))
            .filter(mapping::Column::ResolvedAt.is_null())
            .filter(records_in(chunk))
            .exec(txn)
            .await?;
    }
    let failing: Vec<(String, String)> = latest.iter().map(|(k, _)| k.clone()).filter(|k| !resolved.contains(k)).collect();
    let rows: Vec<mapping::Model> = latest
        .into_iter()
        .filter(|(k, _)| !resolved.contains(k))
        .map(|((object, record_id), e)| mapping::Model {
            id: Uuid::now_v7(),
            account_id: row.account_id,
            integration_id: row.id,
            object_type: object,
            record_id,
            record_name: e.record_name.as_ref().map(|n| n.trim().to_string()),
            field: e.field.as_ref().map(|f| f.trim().to_string()),
            error: e.error.trim().to_string(),
            tips: serde_json::json!(e.tips),
            actions: serde_json::json!(e.actions),
            deadline: input.deadline,
            occurrences: 1,
            first_reported_at: now,
            last_reported_at: now,
            alerted_at: None,
            resolved_at: None,
        })
        .collect();
    // 500 rows of 17 values: within SQLite's 32,766 parameters. A record failing still
    // counts one more report; one fixed before (resolved) starts afresh, as a new record.
    let reopened =
        |then: &str, otherwise: &str| Expr::cust(format!("CASE WHEN integration_mapping_error.resolved_at IS NULL THEN {then} ELSE {otherwise} END"));
    for chunk in rows.chunks(500) {
        let conflict = OnConflict::columns([mapping::Column::IntegrationId, mapping::Column::ObjectType, mapping::Column::RecordId])
            .update_columns([
                mapping::Column::RecordName,
                mapping::Column::Field,
                mapping::Column::Error,
                mapping::Column::Tips,
                mapping::Column::Actions,
                mapping::Column::Deadline,
                mapping::Column::LastReportedAt,
            ])
            .values([
                (mapping::Column::Occurrences, reopened("integration_mapping_error.occurrences + 1", "1")),
                (mapping::Column::FirstReportedAt, reopened("integration_mapping_error.first_reported_at", "excluded.first_reported_at")),
                (mapping::Column::AlertedAt, reopened("integration_mapping_error.alerted_at", "NULL")),
                (mapping::Column::ResolvedAt, Expr::cust("NULL")),
            ])
            .to_owned();
        mapping::Entity::insert_many(chunk.iter().cloned().map(|m| m.into_active_model())).on_conflict(conflict).exec_without_returning(txn).await?;
    }

    // A window opens when a record of this report needs telling: not told yet, or told long
    // enough ago and still failing. (Any other record that needs telling has opened one
    // already: records are told only by a window's end.)
    let mut untold = false;
    for chunk in failing.chunks(200) {
        untold |= mapping::Entity::find().filter(open_untold(row.id, now)).filter(records_in(chunk)).one(txn).await?.is_some();
        if untold {
            break;
        }
    }
    let mut opened = false;
    if untold {
        let open = window::Entity::find().filter(window::Column::IntegrationId.eq(row.id)).filter(window::Column::ClosedAt.is_null()).one(txn).await?;
        if open.is_none() {
            let minutes = entity::report_settings::Entity::find_by_id(row.account_id)
                .one(txn)
                .await?
                .map_or(recipients::DEFAULT_WINDOW_MINUTES, |s| s.mapping_error_window_minutes);
            let w = window::Model {
                id: Uuid::now_v7(),
                account_id: row.account_id,
                integration_id: row.id,
                opened_at: now,
                closes_at: now + Duration::minutes(minutes as i64),
                closed_at: None,
                records: 0,
            };
            w.into_active_model().reset_all().insert(txn).await?;
            opened = true;
        }
    }
    // The integration row is left as it is: a storm of reports must not move its version
    // under an admin editing its settings. Its problems count the records when read.
    r.finish(opened, None).await
}

fn object_name(o: SyncObject) -> String {
    serde_json::to_value(o).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| format!("{o:?}"))
}

/// `(object_type, record_id)` is one of `records`.
fn records_in(records: &[(String, String)]) -> Condition {
    records.iter().fold(Condition::any(), |c, (object, id)| {
        c.add(Condition::all().add(mapping::Column::ObjectType.eq(object.as_str())).add(mapping::Column::RecordId.eq(id.as_str())))
    })
}

/// Open errors of `integration_id` that need telling at `now`.
fn open_untold(integration_id: Uuid, now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(mapping::Column::IntegrationId.eq(integration_id))
        .add(mapping::Column::ResolvedAt.is_null())
        .add(Condition::any().add(mapping::Column::AlertedAt.is_null()).add(mapping::Column::AlertedAt.lte(now - REMIND_AFTER)))
}

/// The integration's problems as they stand: its connection problem as reported, then, if
/// records cannot be mapped now, how many, since when, the earliest deadline.
pub async fn current_problems(db: &impl ConnectionTrait, row: &integration::Model) -> ApiResult<Vec<Problem>> {
    let mut list = problems(row);
    list.retain(|p| p.kind != ProblemKind::ContactMappingErrors);
    let open = mapping::Entity::find().filter(mapping::Column::IntegrationId.eq(row.id)).filter(mapping::Column::ResolvedAt.is_null());
    let failing = open.clone().count(db).await?;
    if failing > 0 {
        let oldest = open.clone().order_by_asc(mapping::Column::FirstReportedAt).one(db).await?;
        let deadline = open.filter(mapping::Column::Deadline.is_not_null()).order_by_asc(mapping::Column::Deadline).one(db).await?.and_then(|m| m.deadline);
        list.push(Problem {
            kind: ProblemKind::ContactMappingErrors,
            connection: None,
            reason: format!("{failing} {} cannot be mapped", if failing == 1 { "record" } else { "records" }),
            actions: vec!["Fix each record listed in the contact mapping errors email (or in mappingErrors); the next sync retries them.".into()],
            deadline,
            since: oldest.map_or(row.updated_at, |m| m.first_reported_at),
            records: Some(failing as i32),
        });
    }
    Ok(list)
}

/// The records an integration cannot map now, oldest first (company admins, READ keys).
pub async fn open_errors(db: &impl ConnectionTrait, caller: &Caller, integration_id: Uuid, limit: u64) -> ApiResult<Vec<mapping::Model>> {
    caller.require_admin_or_read_key()?;
    Ok(mapping::Entity::find()
        .filter(mapping::Column::AccountId.eq(caller.account_id))
        .filter(mapping::Column::IntegrationId.eq(integration_id))
        .filter(mapping::Column::ResolvedAt.is_null())
        .order_by_asc(mapping::Column::FirstReportedAt)
        .order_by_asc(mapping::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Closes the mapping-error windows that ended by `now`, each in its own transaction: one
/// email listing the records still failing that need telling (and a Contact Mapping Error
/// panel row by switches). Answers how many emails were queued. Called by the worker; safe
/// with several workers (a window is closed by whoever marks it first).
pub async fn close_due_windows(app: &AppState, now: DateTime<Utc>) -> ApiResult<usize> {
    let due = window::Entity::find()
        .filter(window::Column::ClosedAt.is_null())
        .filter(window::Column::ClosesAt.lte(now))
        .order_by_asc(window::Column::ClosesAt)
        .limit(100)
        .all(&app.db)
        .await?;
    let mut queued = 0;
    for w in due {
        let txn = crate::db::begin_write(&app.db).await?;
        // The integration's lock first, as reports take it, then the window.
        let Some(row) = integration::Entity::find_by_id(w.integration_id).lock_exclusive().one(&txn).await? else { continue };
        let closed = window::Entity::update_many()
            .col_expr(window::Column::ClosedAt, Expr::value(now))
            .filter(window::Column::Id.eq(w.id))
            .filter(window::Column::ClosedAt.is_null())
            .exec(&txn)
            .await?;
        if closed.rows_affected == 0 {
            continue;
        }
        let Some(account) = account::Entity::find_by_id(w.account_id).one(&txn).await? else { continue };
        let total = mapping::Entity::find().filter(open_untold(row.id, now)).count(&txn).await? as usize;
        let mut notifications = Vec::new();
        if total > 0 {
            let listed = mapping::Entity::find()
                .filter(open_untold(row.id, now))
                .order_by_asc(mapping::Column::FirstReportedAt)
                .limit(MAX_LISTED as u64)
                .all(&txn)
                .await?;
            mapping::Entity::update_many().col_expr(mapping::Column::AlertedAt, Expr::value(now)).filter(open_untold(row.id, now)).exec(&txn).await?;
            window::Entity::update_many().col_expr(window::Column::Records, Expr::value(total as i32)).filter(window::Column::Id.eq(w.id)).exec(&txn).await?;
            let provider = provider_label(row.provider);
            let event = integration_event(
                &row,
                NotificationType::ContactMappingError,
                format!("{provider}: {total} {} could not be mapped", if total == 1 { "record" } else { "records" }),
                None,
                now,
                format!("mapping-window:{}", w.id),
            );
            notifications = record_for_account(&txn, event).await?;
            let deadline = listed
                .iter()
                .filter_map(|m| m.deadline)
                .min()
                .map(Deadline::At)
                .unwrap_or(Deadline::None("before the next sync, which skips these records until they are fixed"));
            let mut actions: Vec<String> = Vec::new();
            for m in &listed {
                for a in serde_json::from_value::<Vec<String>>(m.actions.clone()).unwrap_or_default() {
                    if !actions.contains(&a) && actions.len() < 10 {
                        actions.push(a);
                    }
                }
            }
            actions.push("Records fixed in either system are retried by the next sync; this list is sent again after 24 hours for those still failing.".into());
            let c = common(&account, &row, now, deadline, actions);
            let records: Vec<Value> = listed
                .iter()
                .map(|m| {
                    context! {
                        object => singular(&m.object_type),
                        record_id => m.record_id,
                        name => m.record_name,
                        field => m.field,
                        error => m.error,
                        tips => serde_json::from_value::<Vec<String>>(m.tips.clone()).unwrap_or_default(),
                        actions => serde_json::from_value::<Vec<String>>(m.actions.clone()).unwrap_or_default(),
                        occurrences => m.occurrences,
                    }
                })
                .collect();
            let fields = context! {
                total => total,
                records => records,
                more => total.saturating_sub(listed.len()),
                window => format!("reported from {} to {}", c.local(w.opened_at), c.local(w.closes_at.min(now))),
            };
            if queue(&txn, &account, Template::ContactMappingErrors, &c, fields, format!("mapping-window:{}", w.id)).await?.is_some() {
                queued += 1;
            }
        }
        txn.commit().await?;
        crate::notifications::announce(app, &notifications).await;
    }
    Ok(queued)
}

fn singular(object: &str) -> &'static str {
    match object {
        "CONTACTS" => "Contact",
        "COMPANIES" => "Company",
        "DEALS" => "Deal",
        "ACTIVITIES" => "Activity",
        _ => "Record",
    }
}

// --- enabled and disabled --------------------------------------------------------------------

/// The "integration enabled" / "integration disabled" email and event, in the transaction
/// that turned it on or off. `by` names who did.
pub async fn toggled(
    txn: &DatabaseTransaction,
    row: &integration::Model,
    by: &str,
) -> ApiResult<(Vec<entity::notification::Model>, Option<outbox_message::Model>)> {
    let Some(account) = account::Entity::find_by_id(row.account_id).one(txn).await? else { return Ok((Vec::new(), None)) };
    let provider = provider_label(row.provider);
    let (kind, verb, template) = if row.enabled {
        (NotificationType::IntegrationEnabled, "enabled", Template::IntegrationEnabled)
    } else {
        (NotificationType::IntegrationDisabled, "disabled", Template::IntegrationDisabled)
    };
    let key = format!("integration:{}:{verb}:v{}", row.id, row.version);
    let event = integration_event(row, kind, format!("{provider} integration {verb} by {by}"), None, row.updated_at, key.clone());
    let notifications = record_for_account(txn, event).await?;
    let actions: Vec<String> = if row.enabled {
        vec![
            format!("Review the {provider} integration's settings: sync direction and frequency, contact property mapping, filters."),
            "Make sure the report recipients (Account > Report settings) are the people who should hear of sync problems.".into(),
        ]
    } else {
        vec![format!("If this was not intended, turn the {provider} integration on again (Settings > Integrations).")]
    };
    let mut features = Vec::new();
    for (on, name) in [(row.sync_enabled, "sync"), (row.filters_enabled, "filters"), (row.communication_enabled, "communication")] {
        if on {
            features.push(name);
        }
    }
    let c = common(&account, row, row.updated_at, Deadline::None("none (no action is required)"), actions);
    let email = queue(txn, &account, template, &c, context! { by => by, features => features }, key).await?;
    Ok((notifications, email))
}
