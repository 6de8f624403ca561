//! Users' mailboxes (seeds/004): settings, the connection test, and who may see and change
//! them. Archiving (the worker's scans) builds on these; [`connect`] signs a mailbox in with
//! its provider (OAuth2), and [`grant`] keeps that sign-in's access token fresh.
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
//! - A mailbox signs in with a password or with its provider (OAuth2: Microsoft, Google). An
//!   OAuth2 mailbox is saved first (its host defaults to the provider's), then connected
//!   through the provider's sign-in ([`connect`]); it is scanned once connected. Changing its
//!   address, provider or sign-in method drops the grant: the new account must sign in.
//! - The outgoing side (SMTP) is optional. It signs in like the mailbox (the grant, or its
//!   own password, else the mailbox's); an OAuth2 mailbox gets its provider's SMTP server
//!   unless the input says otherwise.

pub mod connect;
pub mod grant;

use chrono::Utc;
use entity::{
    mailbox::{self, AuthMethod, Provider},
    user,
};
use sea_orm::{sea_query::Expr, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::{Caller, Principal},
    crypto::SecretSlot,
    error::{ApiError, ApiResult},
    imap::{self, Credential, Folder, ImapServer},
    notifications::{
        catalog::NotificationType,
        fanout::{self, AddressedEvent},
    },
    smtp::{Failure, FailureReason, Security, SmtpServer},
    state::AppState,
    validate,
};

pub const TABLE: &str = "mailbox";
pub const PASSWORD_COLUMN: &str = "password";
pub const SMTP_PASSWORD_COLUMN: &str = "smtp_password";
pub const REFRESH_TOKEN_COLUMN: &str = "oauth_refresh_token";
pub const ACCESS_TOKEN_COLUMN: &str = "oauth_access_token";
pub const MAX_DIRECTORIES: usize = 200;

/// Where a mailbox's sealed secret `column` lives: envelopes are bound to their row and column.
fn slot(row: &mailbox::Model, column: &'static str) -> SecretSlot<'static> {
    SecretSlot { account_id: row.account_id, table: TABLE, row_id: row.id, column }
}

/// A provider's mail servers: where its mailboxes are read and send, unless told otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderServers {
    pub imap_host: &'static str,
    pub imap_port: u16,
    pub imap_security: Security,
    pub smtp_host: &'static str,
    pub smtp_port: u16,
    pub smtp_security: Security,
}

pub fn provider_servers(provider: Provider) -> ProviderServers {
    match provider {
        Provider::Microsoft => ProviderServers {
            imap_host: "outlook.office365.com",
            imap_port: 993,
            imap_security: Security::Tls,
            smtp_host: "smtp.office365.com",
            smtp_port: 587,
            smtp_security: Security::Starttls,
        },
        Provider::Google => ProviderServers {
            imap_host: "imap.gmail.com",
            imap_port: 993,
            imap_security: Security::Tls,
            smtp_host: "smtp.gmail.com",
            smtp_port: 465,
            smtp_security: Security::Tls,
        },
    }
}

/// A provider the operator has registered Herald with: else NOT_CONFIGURED, not a failed
/// sign-in.
fn require_configured(app: &AppState, provider: Provider) -> ApiResult<()> {
    match app.oauth.is_configured(provider) {
        true => Ok(()),
        false => Err(ApiError::NotConfigured(format!("sign-in with {provider:?} is not configured on this server"))),
    }
}

/// May the caller manage `owner`'s mailboxes?
pub(crate) fn require_manage(caller: &Caller, owner: Uuid) -> ApiResult<()> {
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
    fn server(&self, credential: Credential) -> ImapServer {
        ImapServer { host: self.host.clone(), port: self.port.map(|p| p as u16), security: self.security, login: self.login().to_string(), credential }
    }

    /// What the servers know the mailbox by: the username, or else the address.
    pub fn login(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.email_address)
    }

    /// An empty host is the provider's.
    fn or_provider(mut self, provider: Option<Provider>) -> Self {
        if let (true, Some(p)) = (self.host.trim().is_empty(), provider) {
            let servers = provider_servers(p);
            self.host = servers.imap_host.to_string();
            self.port = self.port.or(Some(servers.imap_port.into()));
            self.security = servers.imap_security;
        }
        self
    }

    fn of(row: &mailbox::Model) -> Self {
        Self { email_address: row.email_address.clone(), username: row.username.clone(), host: row.host.clone(), port: row.port, security: row.security }
    }

    fn checked(mut self) -> ApiResult<Self> {
        self.email_address = validate::email("input.emailAddress", &self.email_address)?;
        self.username = validate::optional_text("input.username", self.username.as_deref())?.filter(|u| *u != self.email_address);
        if self.host.trim().is_empty() {
            return Err(ApiError::bad_input("input.host", "give the IMAP server's host name"));
        }
        self.host = validate::host("input.host", &self.host)?;
        check_port("input.port", self.port)?;
        Ok(self)
    }
}

fn check_port(field: &str, port: Option<i32>) -> ApiResult<()> {
    match port {
        Some(p) if !(1..=65535).contains(&p) => Err(ApiError::bad_input(field, "a port from 1 to 65535")),
        _ => Ok(()),
    }
}

fn check_password(field: &str, password: &str) -> ApiResult<()> {
    if password.is_empty() || password.len() > 1024 {
        return Err(ApiError::bad_input(field, "1 to 1024 characters"));
    }
    Ok(())
}

/// How a new mailbox signs in.
#[derive(Clone, Debug)]
pub enum SignIn {
    Password(String),
    /// Through the provider's sign-in, once the mailbox is saved ([`connect`]).
    OAuth2(Provider),
}

/// A mailbox's outgoing side (SMTP). `password` is write-only: `None` on an update keeps the
/// stored one; a mailbox without one of its own sends with its grant or its password.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub host: String,
    pub port: Option<i32>,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Outgoing {
    fn checked(mut self) -> ApiResult<Self> {
        self.host = validate::host("input.outgoing.host", &self.host)?;
        check_port("input.outgoing.port", self.port)?;
        self.username = validate::optional_text("input.outgoing.username", self.username.as_deref())?;
        if let Some(p) = &self.password {
            check_password("input.outgoing.password", p)?;
        }
        Ok(self)
    }

    fn of_provider(provider: Provider) -> Self {
        let servers = provider_servers(provider);
        Self { host: servers.smtp_host.into(), port: Some(servers.smtp_port.into()), security: servers.smtp_security, username: None, password: None }
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
async fn test_for_save(connection: &Connection, credential: Credential) -> ApiResult<Vec<Folder>> {
    let secret_field = match credential {
        Credential::Password(_) => "input.password",
        Credential::AccessToken(_) => "input.emailAddress",
    };
    imap::probe(&connection.server(credential)).await.map_err(|f: Failure| {
        let field = match f.reason {
            FailureReason::Authentication => secret_field,
            FailureReason::Tls => "input.security",
            _ => "input.host",
        };
        ApiError::bad_input(field, format!("the connection test failed ({:?}): {}", f.reason, f.message))
    })
}

/// Raises Test Inbox Read for the owner after a successful test.
pub(crate) async fn announce_test(app: &AppState, row_account: Uuid, owner: Uuid, address: &str) -> ApiResult<()> {
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
            email: false,
        }],
    )
    .await?;
    txn.commit().await?;
    crate::notifications::announce(app, &recorded.notifications).await;
    Ok(())
}

/// What the audit log keeps of a mailbox: everything but its secrets (passwords and tokens
/// are `skip_serializing` on the row), and whether each is set.
#[derive(Serialize)]
pub(crate) struct Snapshot<'a> {
    #[serde(flatten)]
    row: &'a mailbox::Model,
    password_set: bool,
    smtp_password_set: bool,
    oauth_granted: bool,
}

pub(crate) fn snapshot(row: &mailbox::Model) -> Snapshot<'_> {
    Snapshot { row, password_set: row.password.is_some(), smtp_password_set: row.smtp_password.is_some(), oauth_granted: row.oauth_refresh_token.is_some() }
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
    /// An empty host is the provider's (OAuth2 mailboxes).
    pub connection: Connection,
    pub sign_in: SignIn,
    /// `None`: none, or the provider's for an OAuth2 mailbox (`Some(None)`: none at all).
    pub outgoing: Option<Option<Outgoing>>,
    pub options: Options,
    pub skip_test: bool,
}

pub async fn create(app: &AppState, caller: &Caller, input: NewMailbox) -> ApiResult<mailbox::Model> {
    let owner = match (input.user_id, caller.user_id()) {
        (Some(u), _) | (None, Some(u)) => u,
        (None, None) => return Err(ApiError::bad_input("input.userId", "an API key must say whose mailbox this is")),
    };
    require_manage(caller, owner)?;
    let provider = match &input.sign_in {
        SignIn::Password(p) => {
            check_password("input.password", p)?;
            None
        }
        SignIn::OAuth2(provider) => Some(*provider),
    };
    let connection = input.connection.or_provider(provider).checked()?;
    let outgoing = match input.outgoing {
        Some(o) => o,
        None => provider.map(Outgoing::of_provider),
    }
    .map(Outgoing::checked)
    .transpose()?;
    let directories = check_directories(&input.options.directories)?;
    let owner_row = user::Entity::find_by_id(owner).filter(user::Column::AccountId.eq(caller.account_id)).one(&app.db).await?;
    if owner_row.is_none() {
        return Err(ApiError::bad_input("input.userId", "not a user of this account"));
    }
    if let Some(p) = provider {
        require_configured(app, p)?;
    }
    // An OAuth2 mailbox has nothing to sign in with until its owner connects it.
    let tested = !input.skip_test && provider.is_none();
    if let (true, SignIn::Password(password)) = (tested, &input.sign_in) {
        test_for_save(&connection, Credential::Password(password.clone())).await?;
    }

    let mut change = Change::begin(app, caller).await?;
    let now = Utc::now();
    let mut row = mailbox::Model {
        id: Uuid::now_v7(),
        account_id: caller.account_id,
        user_id: owner,
        email_address: connection.email_address.clone(),
        username: connection.username.clone(),
        auth_method: if provider.is_some() { AuthMethod::Oauth2 } else { AuthMethod::Password },
        password: None,
        oauth_provider: provider,
        oauth_refresh_token: None,
        oauth_access_token: None,
        oauth_expires_at: None,
        oauth_refresh_leased_until: None,
        oauth_connected_at: None,
        host: connection.host.clone(),
        port: connection.port,
        security: connection.security,
        scan_active: input.options.scan_active,
        sync_clients: input.options.sync_clients,
        sync_leads: input.options.sync_leads,
        directories: serde_json::json!(directories),
        main: input.options.main,
        smtp_host: None,
        smtp_port: None,
        smtp_security: None,
        smtp_username: None,
        smtp_password: None,
        send_error: None,
        send_error_at: None,
        state: if tested { mailbox::State::Connected } else { mailbox::State::New },
        last_scan_at: None,
        last_error: None,
        owner_notified_of_auth_failure: false,
        next_scan_at: (input.options.scan_active && provider.is_none()).then_some(now),
        scan_leased_until: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    if let SignIn::Password(password) = &input.sign_in {
        row.password = Some(app.keyring.seal(slot(&row, PASSWORD_COLUMN), password));
    }
    set_outgoing(app, &mut row, outgoing);
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
    /// Switch to a password (`SignIn::Password`) or to a provider's sign-in.
    pub sign_in: Option<SignIn>,
    /// `Some(None)` removes the outgoing side.
    pub outgoing: Option<Option<Outgoing>>,
    pub skip_test: bool,
}

/// Sets (or removes) a row's outgoing side; a password not given keeps the stored one.
fn set_outgoing(app: &AppState, row: &mut mailbox::Model, outgoing: Option<Outgoing>) {
    match outgoing {
        Some(o) => {
            row.smtp_host = Some(o.host);
            row.smtp_port = o.port;
            row.smtp_security = Some(o.security);
            row.smtp_username = o.username;
            if let Some(p) = o.password {
                row.smtp_password = Some(app.keyring.seal(slot(row, SMTP_PASSWORD_COLUMN), &p));
            }
        }
        None => {
            row.smtp_host = None;
            row.smtp_port = None;
            row.smtp_security = None;
            row.smtp_username = None;
            row.smtp_password = None;
        }
    }
    row.send_error = None;
    row.send_error_at = None;
}

/// Forgets a row's grant (the account it was for is no longer the mailbox's).
fn drop_grant(row: &mut mailbox::Model) {
    row.oauth_refresh_token = None;
    row.oauth_access_token = None;
    row.oauth_expires_at = None;
    row.oauth_refresh_leased_until = None;
    row.oauth_connected_at = None;
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
    // The sign-in after the patch: a new password alone keeps (or makes) it a password one.
    let (auth_method, provider, password) = match (&patch.sign_in, &patch.password) {
        (Some(SignIn::OAuth2(p)), _) => (AuthMethod::Oauth2, Some(*p), None),
        (Some(SignIn::Password(p)), _) | (None, Some(p)) => (AuthMethod::Password, None, Some(p.clone())),
        (None, None) => (before.auth_method, before.oauth_provider, None),
    };
    let connection = connection.or_provider(provider).checked()?;
    if let Some(p) = &password {
        check_password("input.password", p)?;
    }
    if auth_method == AuthMethod::Password && password.is_none() && before.password.is_none() {
        return Err(ApiError::bad_input("input.password", "give the password to sign in with"));
    }
    if let Some(p) = provider.filter(|p| Some(*p) != before.oauth_provider) {
        require_configured(app, p)?;
    }
    let outgoing = patch.outgoing.clone().map(|o| o.map(Outgoing::checked).transpose()).transpose()?;
    let directories = patch.directories.as_deref().map(check_directories).transpose()?;
    let account_changed = connection.email_address != old.email_address || connection.username != old.username;
    // The grant is for one account of one provider.
    let drops_grant = before.oauth_refresh_token.is_some() && (auth_method != AuthMethod::Oauth2 || provider != before.oauth_provider || account_changed);
    let reconnects = password.is_some()
        || auth_method != before.auth_method
        || drops_grant
        || account_changed
        || connection.host != old.host
        || connection.port != old.port
        || connection.security != old.security;
    // Without a new password the mailbox signs in as stored, unless it waits for a grant.
    let credential = match &password {
        Some(p) => Some(Credential::Password(p.clone())),
        None if auth_method == AuthMethod::Oauth2 && (drops_grant || before.oauth_refresh_token.is_none()) => None,
        None => match credential_of(app, &before).await {
            Ok(c) => Some(c),
            Err(CredentialError::Grant(e)) => return Err(ApiError::bad_input("input", format!("the mailbox's sign-in with its provider cannot be used: {e}"))),
            Err(CredentialError::Api(e)) => return Err(e),
        },
    };
    let tested = reconnects && !patch.skip_test && credential.is_some();
    if let (true, Some(credential)) = (tested, credential) {
        test_for_save(&connection, credential).await?;
    }

    let mut change = Change::begin(app, caller).await?;
    let mut row = before.clone();
    row.email_address = connection.email_address;
    row.username = connection.username;
    row.host = connection.host;
    row.port = connection.port;
    row.security = connection.security;
    row.auth_method = auth_method;
    row.oauth_provider = provider;
    match (&password, auth_method) {
        (Some(p), _) => row.password = Some(app.keyring.seal(slot(&row, PASSWORD_COLUMN), p)),
        (None, AuthMethod::Oauth2) => row.password = None,
        (None, AuthMethod::Password) => {}
    }
    if drops_grant {
        drop_grant(&mut row);
    }
    if let Some(o) = outgoing {
        set_outgoing(app, &mut row, o);
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
    // Scan soon after any change that could make a scan find something new; an OAuth2
    // mailbox only once it has a grant, and not while its grant waits for a new sign-in.
    row.next_scan_at = (row.scan_active && can_scan(&row)).then(Utc::now);
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
    if drops_grant {
        revoke_grant(app, &before).await;
    }
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
    revoke_grant(app, &before).await;
    Ok(before)
}

/// Whether the worker may scan the mailbox: it has something to sign in with.
pub fn can_scan(row: &mailbox::Model) -> bool {
    match row.auth_method {
        AuthMethod::Password => row.password.is_some(),
        AuthMethod::Oauth2 => row.oauth_refresh_token.is_some() && row.state != mailbox::State::NeedsReconnection,
    }
}

/// Tells the provider that Herald no longer holds a grant it dropped (where the provider
/// takes revocations). Best effort: the grant is gone from Herald either way.
async fn revoke_grant(app: &AppState, row: &mailbox::Model) {
    let (Some(provider), Some(envelope)) = (row.oauth_provider, &row.oauth_refresh_token) else { return };
    let Ok(token) = app.keyring.open(slot(row, REFRESH_TOKEN_COLUMN), envelope) else { return };
    if let Err(e) = app.oauth.revoke(provider, token.expose()).await {
        tracing::warn!(mailbox = %row.id, error = %e, "the provider did not take the grant's revocation");
    }
}

/// Why a mailbox's servers cannot be signed in to right now.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Grant(#[from] grant::GrantError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The mailbox's IMAP server with its credential: the password opened, or a fresh access
/// token (refreshed first if it is about to expire).
pub async fn server_of(app: &AppState, row: &mailbox::Model) -> Result<ImapServer, CredentialError> {
    Ok(Connection::of(row).server(credential_of(app, row).await?))
}

/// What the stored mailbox signs in with: its password opened, or a fresh access token.
async fn credential_of(app: &AppState, row: &mailbox::Model) -> Result<Credential, CredentialError> {
    Ok(match row.auth_method {
        AuthMethod::Password => Credential::Password(open_password(app, row)?),
        AuthMethod::Oauth2 => Credential::AccessToken(grant::access_token(app, row).await?),
    })
}

/// The mailbox's outgoing side with its credential (`None` when it has none): its own
/// password, else the grant (a fresh access token) or the mailbox's password.
pub async fn smtp_server_of(app: &AppState, row: &mailbox::Model) -> Result<Option<SmtpServer>, CredentialError> {
    let Some(host) = &row.smtp_host else { return Ok(None) };
    let credential = match (&row.smtp_password, row.auth_method) {
        (Some(envelope), _) => Credential::Password(open(app, row, SMTP_PASSWORD_COLUMN, envelope)?),
        (None, AuthMethod::Oauth2) => Credential::AccessToken(grant::access_token(app, row).await?),
        (None, AuthMethod::Password) => Credential::Password(open_password(app, row)?),
    };
    Ok(Some(SmtpServer {
        host: host.clone(),
        port: row.smtp_port.map(|p| p as u16),
        security: row.smtp_security.unwrap_or(Security::Starttls),
        username: Some(row.smtp_username.clone().unwrap_or_else(|| Connection::of(row).login().to_string())),
        credential: Some(credential),
    }))
}

/// A sealed secret of the row, opened.
fn open(app: &AppState, row: &mailbox::Model, column: &'static str, envelope: &str) -> ApiResult<String> {
    Ok(app.keyring.open(slot(row, column), envelope).map_err(|e| ApiError::Internal(e.into()))?.expose().to_string())
}

fn open_password(app: &AppState, row: &mailbox::Model) -> ApiResult<String> {
    let envelope = row.password.as_ref().ok_or_else(|| ApiError::bad_input("input.password", "no password is stored: give one"))?;
    open(app, row, PASSWORD_COLUMN, envelope)
}

/// What `testMailboxConnection` is asked to test: a stored mailbox, settings typed into the
/// form (for a mailbox not saved yet), or a stored one with some settings changed.
pub struct TestInput {
    pub mailbox_id: Option<Uuid>,
    pub connection: Option<Connection>,
    pub password: Option<String>,
    /// Whose inbox it is, for the Test Inbox Read notice (defaults to the caller).
    pub user_id: Option<Uuid>,
    /// An outgoing side typed into the form (else the stored mailbox's, if it has one).
    pub outgoing: Option<Outgoing>,
}

/// What `testMailboxConnection` found, side by side.
pub struct Tested {
    /// IMAP: the folders, or why the sign-in or listing failed.
    pub incoming: Result<Vec<Folder>, Failure>,
    /// SMTP, when there is an outgoing side: signed in, or why not.
    pub outgoing: Option<Result<(), Failure>>,
}

/// Logs in and lists the folders, and signs in to the outgoing side if there is one (at most
/// 10 s each); a failure is an answer, not an error.
pub async fn test(app: &AppState, caller: &Caller, input: TestInput) -> ApiResult<Tested> {
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
    let grant_failure =
        |e: grant::GrantError| Failure { reason: FailureReason::Authentication, smtp_code: None, message: e.to_string(), transient: !e.needs_sign_in() };
    let credential = match (&input.password, &stored) {
        (Some(p), _) => Ok(Credential::Password(p.clone())),
        (None, Some(m)) => match credential_of(app, m).await {
            Ok(c) => Ok(c),
            Err(CredentialError::Grant(e)) => Err(grant_failure(e)),
            Err(CredentialError::Api(e)) => return Err(e),
        },
        (None, None) => return Err(ApiError::bad_input("input.password", "give the password")),
    };
    let outgoing = match (input.outgoing.map(Outgoing::checked).transpose()?, &stored) {
        (Some(typed), _) => {
            // Typed without a password of its own: it signs in as the mailbox would.
            let credential = match (&typed.password, &credential) {
                (Some(p), _) => Ok(Credential::Password(p.clone())),
                (None, Ok(c)) => Ok(c.clone()),
                (None, Err(f)) => Err(f.clone()),
            };
            let username = Some(typed.username.clone().unwrap_or_else(|| connection.login().to_string()));
            Some(credential.map(|c| SmtpServer {
                host: typed.host,
                port: typed.port.map(|p| p as u16),
                security: typed.security,
                username,
                credential: Some(c),
            }))
        }
        (None, Some(m)) => match smtp_server_of(app, m).await {
            Ok(server) => server.map(Ok),
            Err(CredentialError::Grant(e)) => Some(Err(grant_failure(e))),
            Err(CredentialError::Api(e)) => return Err(e),
        },
        (None, None) => None,
    };
    let incoming = match credential {
        Ok(credential) => imap::probe(&connection.server(credential)).await,
        Err(failure) => Err(failure),
    };
    let outgoing = match outgoing {
        Some(Ok(server)) => Some(crate::smtp::probe(&server, None, None).await),
        Some(Err(failure)) => Some(Err(failure)),
        None => None,
    };
    if incoming.is_ok() {
        announce_test(app, caller.account_id, owner, &connection.email_address).await?;
    }
    Ok(Tested { incoming, outgoing })
}

/// Where the scans of a mailbox's folders stand, by path (the mailbox was read by a caller
/// allowed to see it).
pub async fn folder_states(db: &impl ConnectionTrait, mailbox_id: Uuid) -> ApiResult<Vec<entity::mailbox_folder::Model>> {
    use entity::mailbox_folder;
    Ok(mailbox_folder::Entity::find().filter(mailbox_folder::Column::MailboxId.eq(mailbox_id)).order_by_asc(mailbox_folder::Column::Path).all(db).await?)
}
