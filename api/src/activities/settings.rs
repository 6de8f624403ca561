//! The activity settings page (seeds/001): the SMTP server, activity alerts, late-response
//! notifications and their default persons, saved together.
//!
//! Decisions where the page is silent:
//! - "Change" replaces the whole page in one transaction, validated together and checked
//!   against `expectedVersion` (0 for a page never saved), like every other settings object.
//! - The SMTP password is write-only: omitted keeps it, `null` clears it, a value replaces it.
//!   It is sealed with the account, table, row and column as associated data.
//! - "Reset" restores the documented defaults of the alert and late-response sections
//!   ([`DEFAULT_ALERT_HOURS`], [`DEFAULT_LATE_HOURS`], system sender, no default persons).
//!   The SMTP server is kept unless asked for too: resetting intervals should not silently
//!   stop every email the account sends.
//! - Intervals are whole hours from 1 to [`MAX_INTERVAL_HOURS`] (a week).
//! - Every change re-plans the account's open activities in the same transaction.

use chrono::Utc;
use entity::{activity_default_person, activity_settings, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use super::plan;
use crate::{
    audit::Change,
    auth::Caller,
    crypto::{Keyring, SecretSlot},
    error::{ApiError, ApiResult},
    smtp::{Security, SmtpServer},
    state::AppState,
    validate,
};

pub const DEFAULT_ALERT_HOURS: i32 = 24;
pub const DEFAULT_LATE_HOURS: i32 = 24;
pub const MAX_INTERVAL_HOURS: i32 = 168;
pub const MAX_DEFAULT_PERSONS: usize = 50;

pub const TABLE: &str = "activity_settings";
pub const PASSWORD_COLUMN: &str = "smtp_password";

pub use entity::activity_settings::{AlertSender, LateSender};

/// The page as the account has it: saved values, or the defaults.
#[derive(Clone, Debug)]
pub struct ActivitySettings {
    pub account_id: Uuid,
    pub row: Option<activity_settings::Model>,
    pub default_person_ids: Vec<Uuid>,
}

impl ActivitySettings {
    pub fn version(&self) -> i32 {
        self.row.as_ref().map_or(0, |r| r.version)
    }
    pub fn alert_interval_hours(&self) -> i32 {
        self.row.as_ref().map_or(DEFAULT_ALERT_HOURS, |r| r.alert_interval_hours)
    }
    pub fn late_interval_hours(&self) -> i32 {
        self.row.as_ref().map_or(DEFAULT_LATE_HOURS, |r| r.late_interval_hours)
    }
    pub fn alert_sender(&self) -> AlertSender {
        self.row.as_ref().map_or(AlertSender::SystemAccount, |r| r.alert_sender)
    }
    pub fn late_sender(&self) -> LateSender {
        self.row.as_ref().map_or(LateSender::SystemAccount, |r| r.late_sender)
    }
    pub fn late_sender_email(&self) -> Option<&str> {
        self.row.as_ref().and_then(|r| r.late_sender_email.as_deref())
    }
    pub fn sender_address(&self) -> Option<&str> {
        self.row.as_ref().and_then(|r| r.sender_address.as_deref())
    }
    pub fn sender_name(&self) -> Option<&str> {
        self.row.as_ref().and_then(|r| r.sender_name.as_deref())
    }
    pub fn has_password(&self) -> bool {
        self.row.as_ref().is_some_and(|r| r.smtp_password.is_some())
    }
    pub fn intervals(&self) -> plan::Intervals {
        plan::Intervals { alert_hours: self.alert_interval_hours(), late_hours: self.late_interval_hours() }
    }

    /// The SMTP server with its password opened, for the worker and `testSmtpSettings`.
    pub fn smtp_server(&self, keyring: &Keyring) -> ApiResult<Option<SmtpServer>> {
        let Some(row) = &self.row else { return Ok(None) };
        let Some(host) = &row.smtp_host else { return Ok(None) };
        let password = match &row.smtp_password {
            Some(envelope) => Some(keyring.open(password_slot(row), envelope).map_err(|e| ApiError::Internal(e.into()))?),
            None => None,
        };
        Ok(Some(SmtpServer {
            host: host.clone(),
            port: row.smtp_port.map(|p| p as u16),
            security: row.smtp_security,
            username: row.smtp_username.clone(),
            credential: password.map(|p| crate::smtp::Credential::Password(p.expose().to_string())),
        }))
    }
}

fn password_slot(row: &activity_settings::Model) -> SecretSlot<'static> {
    SecretSlot { account_id: row.account_id, table: TABLE, row_id: row.id, column: PASSWORD_COLUMN }
}

pub async fn load(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<ActivitySettings> {
    let row = activity_settings::Entity::find().filter(activity_settings::Column::AccountId.eq(account_id)).one(db).await?;
    let default_person_ids = activity_default_person::Entity::find()
        .filter(activity_default_person::Column::AccountId.eq(account_id))
        .order_by_asc(activity_default_person::Column::Position)
        .all(db)
        .await?
        .into_iter()
        .map(|p| p.user_id)
        .collect();
    Ok(ActivitySettings { account_id, row, default_person_ids })
}

/// The settings page for the caller's account: company admins and API keys with READ.
pub async fn get(app: &AppState, caller: &Caller) -> ApiResult<ActivitySettings> {
    caller.require_admin_or_read_key()?;
    load(&app.db, caller.account_id).await
}

/// What the page's SMTP section says; `password` as described in the module docs.
pub struct SmtpInput {
    pub host: String,
    pub port: Option<i32>,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<Option<String>>,
}

pub struct ChangeInput {
    pub expected_version: i32,
    /// `None` removes the SMTP server (emails then wait until one is configured).
    pub smtp: Option<SmtpInput>,
    pub sender_address: Option<String>,
    pub sender_name: Option<String>,
    pub alert_interval_hours: i32,
    pub alert_sender: AlertSender,
    pub late_interval_hours: i32,
    pub late_sender: LateSender,
    pub late_sender_email: Option<String>,
    pub default_person_ids: Vec<Uuid>,
}

fn interval(field: &str, hours: i32) -> ApiResult<i32> {
    if !(1..=MAX_INTERVAL_HOURS).contains(&hours) {
        return Err(ApiError::bad_input(field, format!("give a whole number of hours from 1 to {MAX_INTERVAL_HOURS}")));
    }
    Ok(hours)
}

/// Checks the default persons: distinct active users of the account, at most
/// [`MAX_DEFAULT_PERSONS`].
async fn check_persons(db: &impl ConnectionTrait, account_id: Uuid, ids: &[Uuid]) -> ApiResult<()> {
    const FIELD: &str = "input.lateResponse.defaultPersonIds";
    if ids.len() > MAX_DEFAULT_PERSONS {
        return Err(ApiError::bad_input(FIELD, format!("at most {MAX_DEFAULT_PERSONS} default persons")));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(i) = ids.iter().position(|id| !seen.insert(*id)) {
        return Err(ApiError::bad_input(FIELD, format!("entry {} lists a user already listed", i + 1)));
    }
    let found: std::collections::HashSet<Uuid> = user::Entity::find()
        .filter(user::Column::AccountId.eq(account_id))
        .filter(user::Column::Active.eq(true))
        .filter(user::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    // By position, not id: an id from another tenant is not echoed back.
    if let Some(i) = ids.iter().position(|id| !found.contains(id)) {
        return Err(ApiError::bad_input(FIELD, format!("entry {} is not an active user of this account", i + 1)));
    }
    Ok(())
}

/// "Change": validates the whole page, checks the version, saves it, re-plans the account's
/// open activities, and records one audit event — all in one transaction.
pub async fn change(app: &AppState, caller: &Caller, input: ChangeInput) -> ApiResult<ActivitySettings> {
    caller.require_admin_or_write_key()?;
    let alert_hours = interval("input.activityAlerts.intervalHours", input.alert_interval_hours)?;
    let late_hours = interval("input.lateResponse.intervalHours", input.late_interval_hours)?;
    let sender_address = input.sender_address.as_deref().map(|a| validate::email("input.senderAddress", a)).transpose()?;
    let sender_name = validate::optional_text("input.senderName", input.sender_name.as_deref())?;
    let late_sender_email = match (input.late_sender, input.late_sender_email.as_deref()) {
        (LateSender::Email, Some(address)) => Some(validate::email("input.lateResponse.senderEmail", address)?),
        (LateSender::Email, None) => return Err(ApiError::bad_input("input.lateResponse.senderEmail", "give the address late notifications are sent from")),
        (LateSender::SystemAccount, _) => None,
    };
    let smtp = match &input.smtp {
        Some(s) => {
            let host = validate::host("input.smtp.host", &s.host)?;
            if let Some(port) = s.port {
                if !(1..=65535).contains(&port) {
                    return Err(ApiError::bad_input("input.smtp.port", "a port from 1 to 65535"));
                }
            }
            let username = validate::optional_text("input.smtp.username", s.username.as_deref())?;
            if let Some(Some(password)) = &s.password {
                if password.is_empty() || password.len() > 1024 {
                    return Err(ApiError::bad_input("input.smtp.password", "1 to 1024 characters, or null to remove the password"));
                }
            }
            if sender_address.is_none() {
                return Err(ApiError::bad_input("input.senderAddress", "emails need a sender address when an SMTP server is set"));
            }
            Some((host, username))
        }
        None => None,
    };

    let mut change = Change::begin(app, caller).await?;
    let before = load(change.db(), caller.account_id).await?;
    if before.version() != input.expected_version {
        return Err(ApiError::Conflict(format!(
            "the activity settings changed since version {} (now {}): reload and try again",
            input.expected_version,
            before.version()
        )));
    }
    check_persons(change.db(), caller.account_id, &input.default_person_ids).await?;

    let now = Utc::now();
    let mut row = before.row.clone().unwrap_or_else(|| activity_settings::Model {
        id: Uuid::now_v7(),
        account_id: caller.account_id,
        smtp_host: None,
        smtp_port: None,
        smtp_security: Security::Starttls,
        smtp_username: None,
        smtp_password: None,
        sender_address: None,
        sender_name: None,
        alert_interval_hours: DEFAULT_ALERT_HOURS,
        alert_sender: AlertSender::SystemAccount,
        late_interval_hours: DEFAULT_LATE_HOURS,
        late_sender: LateSender::SystemAccount,
        late_sender_email: None,
        version: 0,
        updated_at: now,
        updated_by: None,
    });
    match (&input.smtp, smtp) {
        (Some(s), Some((host, username))) => {
            row.smtp_host = Some(host);
            row.smtp_port = s.port;
            row.smtp_security = s.security;
            row.smtp_username = username;
            match &s.password {
                None => {}
                Some(None) => row.smtp_password = None,
                Some(Some(password)) => row.smtp_password = Some(app.keyring.seal(password_slot(&row), password)),
            }
        }
        _ => {
            row.smtp_host = None;
            row.smtp_port = None;
            row.smtp_username = None;
            row.smtp_password = None;
        }
    }
    row.sender_address = sender_address;
    row.sender_name = sender_name;
    row.alert_interval_hours = alert_hours;
    row.alert_sender = input.alert_sender;
    row.late_interval_hours = late_hours;
    row.late_sender = input.late_sender;
    row.late_sender_email = late_sender_email;
    let after = save(change.db(), row, before.row.is_some(), caller.user_id(), &input.default_person_ids).await?;
    plan::replan_account(change.db(), caller.account_id, after.intervals(), now).await?;
    // Messages held for a missing sender or server try again under the new settings.
    crate::outbox::release_held(change.db(), caller.account_id, now).await?;
    change
        .record(caller.account_id, "activity_settings.changed", "ActivitySettings", caller.account_id, Some(&snapshot(&before)), Some(&snapshot(&after)))
        .await?;
    change.commit().await?;
    Ok(after)
}

/// "Reset": the documented defaults for alerts and late responses; the SMTP server and
/// sender too when `include_smtp`.
pub async fn reset(app: &AppState, caller: &Caller, expected_version: i32, include_smtp: bool) -> ApiResult<ActivitySettings> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let before = load(change.db(), caller.account_id).await?;
    if before.version() != expected_version {
        return Err(ApiError::Conflict(format!(
            "the activity settings changed since version {expected_version} (now {}): reload and try again",
            before.version()
        )));
    }
    let now = Utc::now();
    let after = match before.row.clone() {
        None => before.clone(),
        Some(mut row) => {
            row.alert_interval_hours = DEFAULT_ALERT_HOURS;
            row.alert_sender = AlertSender::SystemAccount;
            row.late_interval_hours = DEFAULT_LATE_HOURS;
            row.late_sender = LateSender::SystemAccount;
            row.late_sender_email = None;
            if include_smtp {
                row.smtp_host = None;
                row.smtp_port = None;
                row.smtp_security = Security::Starttls;
                row.smtp_username = None;
                row.smtp_password = None;
                row.sender_address = None;
                row.sender_name = None;
            }
            save(change.db(), row, true, caller.user_id(), &[]).await?
        }
    };
    plan::replan_account(change.db(), caller.account_id, after.intervals(), now).await?;
    change
        .record(caller.account_id, "activity_settings.reset", "ActivitySettings", caller.account_id, Some(&snapshot(&before)), Some(&snapshot(&after)))
        .await?;
    change.commit().await?;
    Ok(after)
}

async fn save(txn: &DatabaseTransaction, mut row: activity_settings::Model, exists: bool, by: Option<Uuid>, persons: &[Uuid]) -> ApiResult<ActivitySettings> {
    let read_version = row.version;
    row.version += 1;
    row.updated_at = Utc::now();
    row.updated_by = by;
    let account_id = row.account_id;
    let stale = || ApiError::Conflict("the activity settings were changed by someone else meanwhile: reload and try again".into());
    // Compare-and-swap on the version read: of two concurrent changes, one wins.
    let saved = if exists {
        match activity_settings::Entity::update(row.into_active_model().reset_all()).filter(activity_settings::Column::Version.eq(read_version)).exec(txn).await
        {
            Ok(saved) => saved,
            Err(sea_orm::DbErr::RecordNotUpdated) => return Err(stale()),
            Err(e) => return Err(e.into()),
        }
    } else {
        match row.into_active_model().reset_all().insert(txn).await {
            Ok(saved) => saved,
            Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => return Err(stale()),
            Err(e) => return Err(e.into()),
        }
    };
    activity_default_person::Entity::delete_many().filter(activity_default_person::Column::AccountId.eq(account_id)).exec(txn).await?;
    if !persons.is_empty() {
        let rows = persons
            .iter()
            .enumerate()
            .map(|(i, user_id)| activity_default_person::Model { account_id, user_id: *user_id, position: i as i32 }.into_active_model());
        activity_default_person::Entity::insert_many(rows).exec(txn).await?;
    }
    Ok(ActivitySettings { account_id, row: Some(saved), default_person_ids: persons.to_vec() })
}

/// What the audit log keeps of the page: everything but the password, which it only says
/// is set.
#[derive(Serialize)]
struct Snapshot<'a> {
    settings: Option<&'a activity_settings::Model>,
    smtp_password_set: bool,
    default_person_ids: &'a [Uuid],
}

fn snapshot(s: &ActivitySettings) -> serde_json::Value {
    serde_json::to_value(Snapshot { settings: s.row.as_ref(), smtp_password_set: s.has_password(), default_person_ids: &s.default_person_ids })
        .unwrap_or_default()
}

/// `testSmtpSettings`: probes the saved SMTP server (company admins, API keys with WRITE),
/// sending a test message to `send_to` when given. A failure of the server is an answer
/// (`Err` inside `Ok`), not an error: errors are what the caller must fix first.
pub async fn test_smtp(app: &AppState, caller: &Caller, send_to: Option<&str>) -> ApiResult<Result<(), crate::smtp::Failure>> {
    caller.require_admin_or_write_key()?;
    let send_to = send_to.map(|a| validate::email("input.sendTo", a)).transpose()?;
    let settings = load(&app.db, caller.account_id).await?;
    let Some(server) = settings.smtp_server(&app.keyring)? else {
        return Err(ApiError::bad_input("input", "no SMTP server is saved: change the activity settings first"));
    };
    // A sender name saved before names were checked may not fit a header: say so.
    let from = settings
        .sender_address()
        .map(|a| crate::smtp::mailbox(settings.sender_name(), a))
        .transpose()
        .map_err(|e| ApiError::bad_input("input", format!("the saved sender cannot be used: {e}")))?;
    let to = send_to.map(|a| crate::smtp::mailbox(None, &a)).transpose().map_err(|e| ApiError::bad_input("input.sendTo", e.to_string()))?;
    Ok(crate::smtp::probe(&server, from, to).await)
}
