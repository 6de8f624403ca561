//! Users' IMAP mailboxes (seeds/004): settings, the connection test, and who may see and
//! change them. Archiving (the worker's scans) builds on these.
//!
//! Decisions where the document is silent:
//! - A user manages their own mailboxes; a company admin (or an API key with WRITE) any
//!   user's in the account. Plain users see only their own.
//! - The UI offers Submit only after a successful test, so the API tests on save too —
//!   whenever the connection settings are new or changed — unless `skipTest` is set. A failed
//!   test refuses the save with BAD_USER_INPUT naming the field to fix (the password for a
//!   refused login, the host for a server that cannot be reached, the security for TLS).
//! - Changing the connection settings resets the mailbox's state to NEW: a mailbox stopped by
//!   an authentication failure is retried once its settings change.
//! - Marking a mailbox main unmarks the user's previous main one, in the same transaction.
//! - A successful test raises Test Inbox Read for the mailbox's owner.

use chrono::Utc;
use entity::{mailbox, user};
use sea_orm::{sea_query::Expr, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::{Caller, Principal},
    crypto::SecretSlot,
    error::{ApiError, ApiResult},
    imap::{self, Folder, ImapServer},
    notifications::{
        catalog::NotificationType,
        fanout::{self, AddressedEvent},
    },
    smtp::{Failure, FailureReason, Security},
    state::AppState,
    validate,
};

pub const TABLE: &str = "mailbox";
pub const PASSWORD_COLUMN: &str = "password";
pub const MAX_DIRECTORIES: usize = 200;

fn slot(row: &mailbox::Model) -> SecretSlot<'static> {
    SecretSlot { account_id: row.account_id, table: TABLE, row_id: row.id, column: PASSWORD_COLUMN }
}

/// May the caller manage `owner`'s mailboxes?
fn require_manage(caller: &Caller, owner: Uuid) -> ApiResult<()> {
    match &caller.principal {
        Principal::User { user_id, .. } if *user_id == owner => Ok(()),
        Principal::User { .. } if caller.is_company_admin() => Ok(()),
        Principal::User { .. } => Err(ApiError::forbidden("only the mailbox's owner or a company admin may do this")),
        Principal::ApiKey { .. } => caller.require_admin_or_write_key(),
    }
}

fn may_see(caller: &Caller, owner: Uuid) -> bool {
    match &caller.principal {
        Principal::User { user_id, .. } => *user_id == owner || caller.is_company_admin(),
        Principal::ApiKey { .. } => caller.require_read().is_ok(),
    }
}

/// The mailboxes the caller may see, optionally of one user.
pub async fn list(db: &impl ConnectionTrait, caller: &Caller, user_id: Option<Uuid>) -> ApiResult<Vec<mailbox::Model>> {
    caller.require_read()?;
    let mut select = mailbox::Entity::find().filter(mailbox::Column::AccountId.eq(caller.account_id)).order_by_asc(mailbox::Column::Id);
    let everyone = caller.is_company_admin() || caller.user_id().is_none();
    match (user_id, everyone) {
        (Some(u), _) => select = select.filter(mailbox::Column::UserId.eq(u)),
        (None, false) => select = select.filter(mailbox::Column::UserId.eq(caller.user_id())),
        (None, true) => {}
    }
    let rows = select.all(db).await?;
    Ok(rows.into_iter().filter(|m| may_see(caller, m.user_id)).collect())
}

pub async fn find(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<mailbox::Model> {
    caller.require_read()?;
    let found = mailbox::Entity::find_by_id(id).filter(mailbox::Column::AccountId.eq(caller.account_id)).one(db).await?;
    // Another user's mailbox is "not found" to a plain user, like another tenant's.
    found.filter(|m| may_see(caller, m.user_id)).ok_or(ApiError::NotFound("mailbox"))
}

/// The connection settings of a mailbox, as given or stored.
#[derive(Clone, Debug)]
pub struct Connection {
    pub email_address: String,
    pub username: Option<String>,
    pub host: String,
    pub port: Option<i32>,
    pub security: Security,
}

impl Connection {
    fn server(&self, password: &str) -> ImapServer {
        ImapServer {
            host: self.host.clone(),
            port: self.port.map(|p| p as u16),
            security: self.security,
            login: self.username.clone().unwrap_or_else(|| self.email_address.clone()),
            password: password.to_string(),
        }
    }

    fn of(row: &mailbox::Model) -> Self {
        Self { email_address: row.email_address.clone(), username: row.username.clone(), host: row.host.clone(), port: row.port, security: row.security }
    }

    fn checked(mut self) -> ApiResult<Self> {
        self.email_address = validate::email("input.emailAddress", &self.email_address)?;
        self.username = validate::optional_text("input.username", self.username.as_deref())?.filter(|u| *u != self.email_address);
        self.host = validate::host("input.host", &self.host)?;
        if let Some(port) = self.port {
            if !(1..=65535).contains(&port) {
                return Err(ApiError::bad_input("input.port", "a port from 1 to 65535"));
            }
        }
        Ok(self)
    }
}

/// The sync options of a mailbox.
#[derive(Clone, Debug)]
pub struct Options {
    pub scan_active: bool,
    pub sync_clients: bool,
    pub sync_leads: bool,
    pub directories: Vec<String>,
    pub main: bool,
}

fn check_directories(dirs: &[String]) -> ApiResult<Vec<String>> {
    if dirs.len() > MAX_DIRECTORIES {
        return Err(ApiError::bad_input("input.directories", format!("at most {MAX_DIRECTORIES} folders")));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for d in dirs {
        if d.is_empty() || d.len() > 1000 || d.contains(['\r', '\n', '\0']) {
            return Err(ApiError::bad_input("input.directories", "folder paths are 1 to 1000 characters on one line"));
        }
        if seen.insert(d.clone()) {
            out.push(d.clone());
        }
    }
    Ok(out)
}

/// Tests a connection for a save; a failure refuses the save, naming the field to fix.
async fn test_for_save(connection: &Connection, password: &str) -> ApiResult<Vec<Folder>> {
    imap::probe(&connection.server(password)).await.map_err(|f: Failure| {
        let field = match f.reason {
            FailureReason::Authentication => "input.password",
            FailureReason::Tls => "input.security",
            _ => "input.host",
        };
        ApiError::bad_input(field, format!("the connection test failed ({:?}): {}", f.reason, f.message))
    })
}

/// Raises Test Inbox Read for the owner after a successful test.
async fn announce_test(app: &AppState, row_account: Uuid, owner: Uuid, address: &str) -> ApiResult<()> {
    let txn = crate::db::begin_write(&app.db).await?;
    let recorded = fanout::record_addressed(
        &txn,
        vec![AddressedEvent {
            kind: NotificationType::TestInboxRead,
            account_id: row_account,
            contact_id: None,
            title: format!("Inbox {address} read successfully"),
            body: None,
            data: Some(serde_json::json!({ "emailAddress": address })),
            action_url: None,
            occurred_at: Utc::now(),
            idempotency_key: format!("mailbox-test:{owner}:{}", Uuid::now_v7()),
            recipients: vec![owner],
        }],
    )
    .await?;
    txn.commit().await?;
    crate::notifications::announce(app, &recorded.notifications).await;
    Ok(())
}

/// What the audit log keeps of a mailbox: everything but the password.
#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(flatten)]
    row: &'a mailbox::Model,
    password_set: bool,
}

fn snapshot(row: &mailbox::Model) -> Snapshot<'_> {
    Snapshot { row, password_set: row.password.is_some() }
}

async fn unset_other_main(db: &impl ConnectionTrait, user_id: Uuid, except: Uuid) -> ApiResult<()> {
    mailbox::Entity::update_many()
        .col_expr(mailbox::Column::Main, Expr::value(false))
        .filter(mailbox::Column::UserId.eq(user_id))
        .filter(mailbox::Column::Id.ne(except))
        .filter(mailbox::Column::Main.eq(true))
        .exec(db)
        .await?;
    Ok(())
}

pub struct NewMailbox {
    /// Defaults to the caller.
    pub user_id: Option<Uuid>,
    pub connection: Connection,
    pub password: String,
    pub options: Options,
    pub skip_test: bool,
}

pub async fn create(app: &AppState, caller: &Caller, input: NewMailbox) -> ApiResult<mailbox::Model> {
    let owner = match (input.user_id, caller.user_id()) {
        (Some(u), _) | (None, Some(u)) => u,
        (None, None) => return Err(ApiError::bad_input("input.userId", "an API key must say whose mailbox this is")),
    };
    require_manage(caller, owner)?;
    let connection = input.connection.checked()?;
    if input.password.is_empty() || input.password.len() > 1024 {
        return Err(ApiError::bad_input("input.password", "1 to 1024 characters"));
    }
    let directories = check_directories(&input.options.directories)?;
    let owner_row = user::Entity::find_by_id(owner).filter(user::Column::AccountId.eq(caller.account_id)).one(&app.db).await?;
    if owner_row.is_none() {
        return Err(ApiError::bad_input("input.userId", "not a user of this account"));
    }
    let tested = !input.skip_test;
    if tested {
        test_for_save(&connection, &input.password).await?;
    }

    let mut change = Change::begin(app, caller).await?;
    let now = Utc::now();
    let mut row = mailbox::Model {
        id: Uuid::now_v7(),
        account_id: caller.account_id,
        user_id: owner,
        email_address: connection.email_address.clone(),
        username: connection.username.clone(),
        password: None,
        host: connection.host.clone(),
        port: connection.port,
        security: connection.security,
        scan_active: input.options.scan_active,
        sync_clients: input.options.sync_clients,
        sync_leads: input.options.sync_leads,
        directories: serde_json::json!(directories),
        main: input.options.main,
        state: if tested { mailbox::State::Connected } else { mailbox::State::New },
        last_scan_at: None,
        last_error: None,
        owner_notified_of_auth_failure: false,
        next_scan_at: input.options.scan_active.then_some(now),
        scan_leased_until: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    row.password = Some(app.keyring.seal(slot(&row), &input.password));
    if row.main {
        unset_other_main(change.db(), owner, row.id).await?;
    }
    let row = match row.into_active_model().reset_all().insert(change.db()).await {
        Ok(row) => row,
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            return Err(ApiError::Conflict("this user already has a mailbox with this address".into()))
        }
        Err(e) => return Err(e.into()),
    };
    change.record(row.account_id, "mailbox.created", "Mailbox", row.id, None::<&()>, Some(&snapshot(&row))).await?;
    change.commit().await?;
    if tested {
        announce_test(app, row.account_id, row.user_id, &row.email_address).await?;
    }
    Ok(row)
}

/// A partial update; `None` leaves a field as it is.
#[derive(Default)]
pub struct MailboxPatch {
    pub expected_version: Option<i32>,
    pub email_address: Option<String>,
    pub username: Option<Option<String>>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<Option<i32>>,
    pub security: Option<Security>,
    pub scan_active: Option<bool>,
    pub sync_clients: Option<bool>,
    pub sync_leads: Option<bool>,
    pub directories: Option<Vec<String>>,
    pub main: Option<bool>,
    pub skip_test: bool,
}

pub async fn update(app: &AppState, caller: &Caller, id: Uuid, patch: MailboxPatch) -> ApiResult<mailbox::Model> {
    let before = find(&app.db, caller, id).await?;
    require_manage(caller, before.user_id)?;
    if let Some(expected) = patch.expected_version {
        if expected != before.version {
            return Err(ApiError::Conflict(format!("the mailbox changed since version {expected} (now {}): reload and try again", before.version)));
        }
    }
    let old = Connection::of(&before);
    let mut connection = old.clone();
    if let Some(a) = &patch.email_address {
        connection.email_address = a.clone();
    }
    if let Some(u) = &patch.username {
        connection.username = u.clone();
    }
    if let Some(h) = &patch.host {
        connection.host = h.clone();
    }
    if let Some(p) = patch.port {
        connection.port = p;
    }
    if let Some(s) = patch.security {
        connection.security = s;
    }
    let connection = connection.checked()?;
    if patch.password.as_ref().is_some_and(|p| p.is_empty() || p.len() > 1024) {
        return Err(ApiError::bad_input("input.password", "1 to 1024 characters"));
    }
    let directories = patch.directories.as_deref().map(check_directories).transpose()?;
    let reconnects = patch.password.is_some()
        || connection.email_address != old.email_address
        || connection.username != old.username
        || connection.host != old.host
        || connection.port != old.port
        || connection.security != old.security;
    let tested = reconnects && !patch.skip_test;
    if tested {
        let password = match &patch.password {
            Some(p) => p.clone(),
            None => open_password(app, &before)?,
        };
        test_for_save(&connection, &password).await?;
    }

    let mut change = Change::begin(app, caller).await?;
    let mut row = before.clone();
    row.email_address = connection.email_address;
    row.username = connection.username;
    row.host = connection.host;
    row.port = connection.port;
    row.security = connection.security;
    if let Some(p) = &patch.password {
        row.password = Some(app.keyring.seal(slot(&row), p));
    }
    if let Some(v) = patch.scan_active {
        row.scan_active = v;
    }
    if let Some(v) = patch.sync_clients {
        row.sync_clients = v;
    }
    if let Some(v) = patch.sync_leads {
        row.sync_leads = v;
    }
    if let Some(d) = directories {
        row.directories = serde_json::json!(d);
    }
    if let Some(m) = patch.main {
        row.main = m;
    }
    if reconnects {
        // New settings deserve a new try, and a new notice if they fail too.
        row.state = if tested { mailbox::State::Connected } else { mailbox::State::New };
        row.last_error = None;
        row.owner_notified_of_auth_failure = false;
    }
    if row.main && !before.main {
        unset_other_main(change.db(), row.user_id, row.id).await?;
    }
    // Scan soon after any change that could make a scan find something new.
    row.next_scan_at = row.scan_active.then(Utc::now);
    row.version += 1;
    row.updated_at = Utc::now();
    let after = match mailbox::Entity::update(row.into_active_model().reset_all()).filter(mailbox::Column::Version.eq(before.version)).exec(change.db()).await {
        Ok(after) => after,
        Err(sea_orm::DbErr::RecordNotUpdated) => return Err(ApiError::Conflict("the mailbox was changed meanwhile: reload and try again".into())),
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            return Err(ApiError::Conflict("this user already has a mailbox with this address".into()))
        }
        Err(e) => return Err(e.into()),
    };
    change.record(after.account_id, "mailbox.updated", "Mailbox", after.id, Some(&snapshot(&before)), Some(&snapshot(&after))).await?;
    change.commit().await?;
    if tested {
        announce_test(app, after.account_id, after.user_id, &after.email_address).await?;
    }
    Ok(after)
}

pub async fn delete(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<mailbox::Model> {
    let before = find(&app.db, caller, id).await?;
    require_manage(caller, before.user_id)?;
    let mut change = Change::begin(app, caller).await?;
    mailbox::Entity::delete_by_id(id).exec(change.db()).await?;
    change.record(before.account_id, "mailbox.deleted", "Mailbox", before.id, Some(&snapshot(&before)), None::<&()>).await?;
    change.commit().await?;
    Ok(before)
}

/// The mailbox's server with its password opened, for the worker's scans.
pub fn server_of(app: &AppState, row: &mailbox::Model) -> ApiResult<ImapServer> {
    Ok(Connection::of(row).server(&open_password(app, row)?))
}

fn open_password(app: &AppState, row: &mailbox::Model) -> ApiResult<String> {
    let envelope = row.password.as_ref().ok_or_else(|| ApiError::bad_input("input.password", "no password is stored: give one"))?;
    Ok(app.keyring.open(slot(row), envelope).map_err(|e| ApiError::Internal(e.into()))?.expose().to_string())
}

/// What `testMailboxConnection` is asked to test: a stored mailbox, settings typed into the
/// form (for a mailbox not saved yet), or a stored one with some settings changed.
pub struct TestInput {
    pub mailbox_id: Option<Uuid>,
    pub connection: Option<Connection>,
    pub password: Option<String>,
    /// Whose inbox it is, for the Test Inbox Read notice (defaults to the caller).
    pub user_id: Option<Uuid>,
}

/// Logs in and lists the folders (at most 10 s); a failure is an answer, not an error.
pub async fn test(app: &AppState, caller: &Caller, input: TestInput) -> ApiResult<Result<Vec<Folder>, Failure>> {
    let stored = match input.mailbox_id {
        Some(id) => Some(find(&app.db, caller, id).await?),
        None => None,
    };
    let owner = match (&stored, input.user_id, caller.user_id()) {
        (Some(m), _, _) => m.user_id,
        (None, Some(u), _) | (None, None, Some(u)) => u,
        (None, None, None) => return Err(ApiError::bad_input("input.userId", "an API key must say whose mailbox this is")),
    };
    require_manage(caller, owner)?;
    let connection = match (input.connection, &stored) {
        (Some(c), _) => c.checked()?,
        (None, Some(m)) => Connection::of(m),
        (None, None) => return Err(ApiError::bad_input("input", "give a mailboxId or the connection settings")),
    };
    let password = match (input.password, &stored) {
        (Some(p), _) => p,
        (None, Some(m)) => open_password(app, m)?,
        (None, None) => return Err(ApiError::bad_input("input.password", "give the password")),
    };
    let outcome = imap::probe(&connection.server(&password)).await;
    if outcome.is_ok() {
        announce_test(app, caller.account_id, owner, &connection.email_address).await?;
    }
    Ok(outcome)
}

/// Where the scans of a mailbox's folders stand, by path (the mailbox was read by a caller
/// allowed to see it).
pub async fn folder_states(db: &impl ConnectionTrait, mailbox_id: Uuid) -> ApiResult<Vec<entity::mailbox_folder::Model>> {
    use entity::mailbox_folder;
    Ok(mailbox_folder::Entity::find().filter(mailbox_folder::Column::MailboxId.eq(mailbox_id)).order_by_asc(mailbox_folder::Column::Path).all(db).await?)
}
