//! GraphQL for users' mailboxes: settings, the connection test, and connecting through a
//! provider's sign-in.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{
    mailbox::{self, AuthMethod, Provider},
    mailbox_folder,
};

use super::{
    app, caller, parse_id,
    users::{maybe, related_user, User},
};
use crate::{
    error::ApiError,
    imap::{self, Folder},
    mailboxes::{self as service, Connection, MailboxPatch, NewMailbox, Options, Outgoing, SignIn, TestInput},
    smtp::{self, FailureReason, Security},
};

pub struct Mailbox(pub mailbox::Model);

#[Object]
impl Mailbox {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        related_user(ctx, self.0.user_id).await
    }
    async fn email_address(&self) -> &str {
        &self.0.email_address
    }
    /// The login, when it differs from the address.
    async fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }
    /// How the mailbox signs in to its servers.
    async fn auth_method(&self) -> AuthMethod {
        self.0.auth_method
    }
    /// The password is write-only: this says whether one is stored.
    async fn password_set(&self) -> bool {
        self.0.password.is_some()
    }
    /// OAuth2 mailboxes: whose sign-in they use.
    async fn provider(&self) -> Option<Provider> {
        self.0.oauth_provider
    }
    /// OAuth2 mailboxes: when the owner last signed in with the provider (null: not connected
    /// yet). The tokens themselves never leave the server.
    async fn connected_at(&self) -> Option<DateTime<Utc>> {
        self.0.oauth_connected_at
    }
    /// OAuth2 mailboxes: when the current access token expires (Herald renews it before).
    async fn access_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.oauth_expires_at
    }
    /// The outgoing side (SMTP), when the mailbox sends as its owner.
    async fn outgoing(&self) -> Option<MailboxOutgoing> {
        let row = &self.0;
        let host = row.smtp_host.clone()?;
        let security = row.smtp_security.unwrap_or(Security::Starttls);
        Some(MailboxOutgoing {
            host,
            port: row.smtp_port.unwrap_or(smtp::default_port(security).into()),
            security,
            username: row.smtp_username.clone(),
            password_set: row.smtp_password.is_some(),
            last_error: row.send_error.clone(),
            last_error_at: row.send_error_at,
        })
    }
    async fn host(&self) -> &str {
        &self.0.host
    }
    async fn port(&self) -> i32 {
        self.0.port.unwrap_or(imap::default_port(self.0.security).into())
    }
    async fn security(&self) -> Security {
        self.0.security
    }
    async fn scan_active(&self) -> bool {
        self.0.scan_active
    }
    async fn sync_clients(&self) -> bool {
        self.0.sync_clients
    }
    async fn sync_leads(&self) -> bool {
        self.0.sync_leads
    }
    /// Folders to sync, as the server names them.
    async fn directories(&self) -> Vec<String> {
        serde_json::from_value(self.0.directories.clone()).unwrap_or_default()
    }
    /// The mailbox shown in the Email module (at most one per user).
    async fn main(&self) -> bool {
        self.0.main
    }
    async fn state(&self) -> entity::mailbox::State {
        self.0.state
    }
    async fn last_scan_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_scan_at
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// Where the scans of each synced folder stand: one entry per folder scanned at least
    /// once, by path. A folder that failed says why here while the others go on.
    async fn folder_states(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MailboxFolderState>> {
        let rows = crate::mailboxes::folder_states(&app(ctx)?.db, self.0.id).await?;
        Ok(rows.into_iter().map(MailboxFolderState::from).collect())
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A mailbox's outgoing side: what sends as its owner (the USER_ACCOUNT sender).
#[derive(SimpleObject)]
pub struct MailboxOutgoing {
    host: String,
    port: i32,
    security: Security,
    /// Null: the mailbox's login.
    username: Option<String>,
    /// Whether it has a password of its own (else it signs in like the mailbox: with the
    /// provider's grant, or the mailbox's password). Write-only.
    password_set: bool,
    /// Why the last send through it failed (cleared by the next one that works).
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
}

/// How the scans of one folder stand. IMAP's UIDs, UIDVALIDITY and mod-sequences are
/// unsigned and may exceed GraphQL's 32-bit Int: they are given as decimal strings.
#[derive(SimpleObject)]
pub struct MailboxFolderState {
    /// The server's name (modified UTF-7).
    path: String,
    /// The name as people read it.
    name: String,
    uid_validity: String,
    /// The last UID archived: the next scan asks for what comes after it.
    last_uid: String,
    /// The folder's HIGHESTMODSEQ after the last complete scan, on servers with CONDSTORE:
    /// while it is unchanged, a scan does not open the folder. Null without CONDSTORE.
    highest_modseq: Option<String>,
    /// Why the last scan of this folder failed (cleared by the next one that works).
    last_error: Option<String>,
    updated_at: DateTime<Utc>,
}

impl From<mailbox_folder::Model> for MailboxFolderState {
    fn from(f: mailbox_folder::Model) -> Self {
        Self {
            name: utf7_imap::decode_utf7_imap(f.path.clone()),
            path: f.path,
            uid_validity: f.uidvalidity.to_string(),
            last_uid: f.last_uid.to_string(),
            highest_modseq: f.highest_modseq.map(|m| m.to_string()),
            last_error: f.last_error,
            updated_at: f.updated_at,
        }
    }
}

/// A folder on the server.
#[derive(SimpleObject)]
pub struct MailboxFolder {
    /// The server's name (modified UTF-7): what `directories` takes.
    path: String,
    /// The name as people read it.
    name: String,
    delimiter: Option<String>,
    /// False for containers that hold folders but no mail.
    selectable: bool,
}

impl From<Folder> for MailboxFolder {
    fn from(f: Folder) -> Self {
        Self { path: f.path, name: f.name, delimiter: f.delimiter, selectable: f.selectable }
    }
}

#[derive(SimpleObject)]
pub struct ConnectionFailure {
    reason: FailureReason,
    message: String,
}

#[derive(SimpleObject)]
pub struct TestMailboxConnectionPayload {
    /// The IMAP side signed in and listed its folders.
    ok: bool,
    failure: Option<ConnectionFailure>,
    /// The server's folders, when the test passed.
    folders: Vec<MailboxFolder>,
    /// The outgoing side (SMTP), when the mailbox has one (or one was typed): signed in, or
    /// why not. Null when there is none.
    outgoing: Option<OutgoingTest>,
}

#[derive(SimpleObject)]
pub struct OutgoingTest {
    ok: bool,
    failure: Option<ConnectionFailure>,
}

/// A mailbox's outgoing side (SMTP).
#[derive(InputObject, Clone)]
pub struct MailboxOutgoingInput {
    pub host: String,
    /// Defaults: 587 for STARTTLS, 465 for TLS, 25 otherwise.
    pub port: Option<i32>,
    #[graphql(default_with = "Security::Starttls")]
    pub security: Security,
    /// Null: the mailbox's login.
    pub username: Option<String>,
    /// Write-only; null signs in like the mailbox (its provider's grant, or its password).
    /// On an update, omitted keeps the stored one.
    pub password: Option<String>,
}

/// Omitted: as it is (or the default); null: none; a value: that one.
fn outgoing_of(input: MaybeUndefined<MailboxOutgoingInput>) -> Option<Option<Outgoing>> {
    match input {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(o) => Some(Some(o.into())),
    }
}

impl From<MailboxOutgoingInput> for Outgoing {
    fn from(o: MailboxOutgoingInput) -> Self {
        Self { host: o.host, port: o.port, security: o.security, username: o.username, password: o.password }
    }
}

#[derive(InputObject)]
pub struct CreateMailboxInput {
    /// Whose mailbox (defaults to the caller; company admins and API keys may name anyone in
    /// the account).
    pub user_id: Option<ID>,
    pub email_address: String,
    /// Only when the login differs from the address.
    pub username: Option<String>,
    /// PASSWORD (give `password`) or OAUTH2 (give `provider`, then connect the mailbox with
    /// `connectMailbox`).
    #[graphql(default_with = "AuthMethod::Password")]
    pub auth_method: AuthMethod,
    /// Write-only; required with PASSWORD.
    pub password: Option<String>,
    /// Required with OAUTH2.
    pub provider: Option<Provider>,
    /// Required with PASSWORD; defaults to the provider's IMAP server with OAUTH2.
    pub host: Option<String>,
    /// Defaults: 993 for TLS, 143 otherwise (the provider's with OAUTH2).
    pub port: Option<i32>,
    #[graphql(default_with = "Security::Tls")]
    pub security: Security,
    /// The outgoing side. Omitted: none for PASSWORD, the provider's SMTP server for OAUTH2;
    /// null: none.
    pub outgoing: MaybeUndefined<MailboxOutgoingInput>,
    #[graphql(default = true)]
    pub scan_active: bool,
    #[graphql(default = true)]
    pub sync_clients: bool,
    #[graphql(default = true)]
    pub sync_leads: bool,
    #[graphql(default)]
    pub directories: Vec<String>,
    #[graphql(default = false)]
    pub main: bool,
    /// Save without testing the connection first (the UI always tests).
    #[graphql(default = false)]
    pub skip_test: bool,
}

#[derive(InputObject)]
pub struct UpdateMailboxInput {
    pub id: ID,
    pub expected_version: Option<i32>,
    pub email_address: Option<String>,
    /// Null: log in with the address.
    pub username: MaybeUndefined<String>,
    /// Write-only; omitted keeps the stored one. Giving one makes an OAUTH2 mailbox a
    /// PASSWORD one.
    pub password: Option<String>,
    /// Switch how the mailbox signs in: OAUTH2 needs `provider` (and then `connectMailbox`),
    /// PASSWORD needs `password` unless one is stored.
    pub auth_method: Option<AuthMethod>,
    pub provider: Option<Provider>,
    /// Null removes the outgoing side.
    pub outgoing: MaybeUndefined<MailboxOutgoingInput>,
    pub host: Option<String>,
    /// Null: the security's default port.
    pub port: MaybeUndefined<i32>,
    pub security: Option<Security>,
    pub scan_active: Option<bool>,
    pub sync_clients: Option<bool>,
    pub sync_leads: Option<bool>,
    pub directories: Option<Vec<String>>,
    pub main: Option<bool>,
    /// Save changed connection settings without testing them first.
    #[graphql(default = false)]
    pub skip_test: bool,
}

#[derive(InputObject)]
pub struct DeleteMailboxInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct ConnectMailboxInput {
    /// An OAUTH2 mailbox the caller may manage.
    pub mailbox_id: ID,
    /// Where the browser comes back to after the provider's sign-in, with `herald_status`
    /// (`connected` or `error`), `herald_mailbox` and `herald_error` in its query. Must start
    /// with one of the server's allowed return URLs.
    pub return_url: String,
    /// Store the sign-in without first testing it on the IMAP server.
    #[graphql(default = false)]
    pub skip_test: bool,
}

#[derive(SimpleObject)]
pub struct ConnectMailboxPayload {
    /// Send the browser here: the provider's sign-in page.
    authorization_url: String,
    /// The sign-in must be completed by then.
    expires_at: DateTime<Utc>,
}

/// A mail provider, and whether this server can sign mailboxes in with it.
#[derive(SimpleObject)]
pub struct MailProviderInfo {
    provider: Provider,
    /// False when the operator has not registered Herald with the provider: its mailboxes
    /// cannot be connected here.
    configured: bool,
    imap_host: String,
    smtp_host: String,
}

/// Test a stored mailbox (`mailboxId`), settings typed into the form (all of `emailAddress`,
/// `host`, `security` and `password`), or a stored mailbox with some settings changed.
#[derive(InputObject, Default)]
pub struct TestMailboxConnectionInput {
    pub mailbox_id: Option<ID>,
    /// Whose inbox (for a mailbox not saved yet; defaults to the caller).
    pub user_id: Option<ID>,
    pub email_address: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<i32>,
    pub security: Option<Security>,
    /// An outgoing side to test (a stored mailbox's own is tested when this is omitted).
    pub outgoing: Option<MailboxOutgoingInput>,
}

#[derive(SimpleObject)]
pub struct MailboxPayload {
    mailbox: Mailbox,
}

#[derive(SimpleObject)]
pub struct DeleteMailboxPayload {
    deleted_mailbox_id: ID,
}

#[derive(Default)]
pub struct MailboxQuery;

#[Object]
impl MailboxQuery {
    /// Mailboxes: the caller's own, or (company admins, API keys) anyone's in the account.
    async fn mailboxes(&self, ctx: &Context<'_>, user_id: Option<ID>) -> async_graphql::Result<Vec<Mailbox>> {
        let user_id = user_id.as_ref().map(|u| parse_id(u, "userId")).transpose()?;
        Ok(service::list(&app(ctx)?.db, caller(ctx)?, user_id).await?.into_iter().map(Mailbox).collect())
    }

    async fn mailbox(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Mailbox> {
        let id = parse_id(&id, "id")?;
        Ok(Mailbox(service::find(&app(ctx)?.db, caller(ctx)?, id).await?))
    }

    /// The mail providers mailboxes can sign in with, and which this server is set up for.
    async fn mail_providers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MailProviderInfo>> {
        caller(ctx)?.require_read()?;
        let app = app(ctx)?;
        Ok([Provider::Microsoft, Provider::Google]
            .into_iter()
            .map(|provider| {
                let servers = service::provider_servers(provider);
                MailProviderInfo {
                    provider,
                    configured: app.oauth.is_configured(provider),
                    imap_host: servers.imap_host.into(),
                    smtp_host: servers.smtp_host.into(),
                }
            })
            .collect())
    }
}

/// The sign-in a create or update asks for, from its method, password and provider.
fn sign_in(method: Option<AuthMethod>, password: Option<String>, provider: Option<Provider>) -> async_graphql::Result<Option<SignIn>> {
    Ok(match (method, password, provider) {
        (Some(AuthMethod::Oauth2), None, Some(p)) => Some(SignIn::OAuth2(p)),
        (Some(AuthMethod::Oauth2), Some(_), _) => return Err(ApiError::bad_input("input.password", "an OAUTH2 mailbox has no password").into()),
        (Some(AuthMethod::Oauth2), None, None) => return Err(ApiError::bad_input("input.provider", "give the provider to sign in with").into()),
        (_, _, Some(_)) if method != Some(AuthMethod::Oauth2) => {
            return Err(ApiError::bad_input("input.provider", "a provider goes with authMethod OAUTH2").into())
        }
        (Some(AuthMethod::Password), Some(p), _) => Some(SignIn::Password(p)),
        (Some(AuthMethod::Password), None, _) => return Err(ApiError::bad_input("input.password", "give the password to sign in with").into()),
        (None, Some(p), _) => Some(SignIn::Password(p)),
        (None, None, _) => None,
    })
}

#[derive(Default)]
pub struct MailboxMutation;

#[Object]
impl MailboxMutation {
    /// Adds a mailbox, after a successful connection test unless `skipTest`.
    async fn create_mailbox(&self, ctx: &Context<'_>, input: CreateMailboxInput) -> async_graphql::Result<MailboxPayload> {
        let Some(sign_in) = sign_in(Some(input.auth_method), input.password, input.provider)? else {
            return Err(ApiError::bad_input("input.password", "give the password to sign in with").into());
        };
        if matches!(sign_in, SignIn::Password(_)) && input.host.is_none() {
            return Err(ApiError::bad_input("input.host", "give the IMAP server's host name").into());
        }
        let new = NewMailbox {
            user_id: input.user_id.as_ref().map(|u| parse_id(u, "input.userId")).transpose()?,
            connection: Connection {
                email_address: input.email_address,
                username: input.username,
                host: input.host.unwrap_or_default(),
                port: input.port,
                security: input.security,
            },
            sign_in,
            outgoing: outgoing_of(input.outgoing),
            options: Options {
                scan_active: input.scan_active,
                sync_clients: input.sync_clients,
                sync_leads: input.sync_leads,
                directories: input.directories,
                main: input.main,
            },
            skip_test: input.skip_test,
        };
        Ok(MailboxPayload { mailbox: Mailbox(service::create(app(ctx)?, caller(ctx)?, new).await?) })
    }

    /// Changes a mailbox; changed connection settings are tested first unless `skipTest`.
    async fn update_mailbox(&self, ctx: &Context<'_>, input: UpdateMailboxInput) -> async_graphql::Result<MailboxPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let sign_in = sign_in(input.auth_method, input.password.clone(), input.provider)?;
        let patch = MailboxPatch {
            expected_version: input.expected_version,
            email_address: input.email_address,
            username: maybe(input.username),
            password: input.password,
            host: input.host,
            port: maybe(input.port),
            security: input.security,
            scan_active: input.scan_active,
            sync_clients: input.sync_clients,
            sync_leads: input.sync_leads,
            directories: input.directories,
            main: input.main,
            sign_in,
            outgoing: outgoing_of(input.outgoing),
            skip_test: input.skip_test,
        };
        Ok(MailboxPayload { mailbox: Mailbox(service::update(app(ctx)?, caller(ctx)?, id, patch).await?) })
    }

    /// Starts connecting an OAUTH2 mailbox through its provider's sign-in: send the browser to
    /// `authorizationUrl`; the provider brings it back to Herald, which stores the sign-in
    /// (after testing it on the IMAP server) and sends the browser on to `returnUrl`.
    async fn connect_mailbox(&self, ctx: &Context<'_>, input: ConnectMailboxInput) -> async_graphql::Result<ConnectMailboxPayload> {
        let id = parse_id(&input.mailbox_id, "input.mailboxId")?;
        let started = service::connect::start(app(ctx)?, caller(ctx)?, id, &input.return_url, input.skip_test).await?;
        Ok(ConnectMailboxPayload { authorization_url: started.authorization_url, expires_at: started.expires_at })
    }

    async fn delete_mailbox(&self, ctx: &Context<'_>, input: DeleteMailboxInput) -> async_graphql::Result<DeleteMailboxPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let deleted = service::delete(app(ctx)?, caller(ctx)?, id).await?;
        Ok(DeleteMailboxPayload { deleted_mailbox_id: ID(deleted.id.to_string()) })
    }

    /// Logs in and lists the folders, and signs in to the outgoing side if there is one, in at
    /// most 10 s each. A failure is an answer (`ok: false` and why, per side), not an error. A
    /// success of the IMAP side raises Test Inbox Read for the mailbox's owner.
    async fn test_mailbox_connection(&self, ctx: &Context<'_>, input: TestMailboxConnectionInput) -> async_graphql::Result<TestMailboxConnectionPayload> {
        let mailbox_id = input.mailbox_id.as_ref().map(|m| parse_id(m, "input.mailboxId")).transpose()?;
        let user_id = input.user_id.as_ref().map(|u| parse_id(u, "input.userId")).transpose()?;
        let stored = match mailbox_id {
            Some(id) => Some(service::find(&app(ctx)?.db, caller(ctx)?, id).await?),
            None => None,
        };
        // Typed settings override the stored ones field by field.
        let typed = input.email_address.is_some() || input.host.is_some() || input.security.is_some() || input.port.is_some() || input.username.is_some();
        let connection = match (typed, &stored) {
            (false, _) => None,
            (true, stored) => {
                let base = stored.as_ref();
                let email_address = input.email_address.or(base.map(|m| m.email_address.clone()));
                let host = input.host.or(base.map(|m| m.host.clone()));
                let security = input.security.or(base.map(|m| m.security));
                match (email_address, host, security) {
                    (Some(email_address), Some(host), Some(security)) => Some(Connection {
                        email_address,
                        username: input.username.or(base.and_then(|m| m.username.clone())),
                        host,
                        port: input.port.or(base.and_then(|m| m.port)),
                        security,
                    }),
                    _ => return Err(ApiError::bad_input("input", "give emailAddress, host and security (or a mailboxId)").into()),
                }
            }
        };
        let outgoing = input.outgoing.map(Outgoing::from);
        let tested = service::test(app(ctx)?, caller(ctx)?, TestInput { mailbox_id, connection, password: input.password, user_id, outgoing }).await?;
        let failure = |f: crate::smtp::Failure| ConnectionFailure { reason: f.reason, message: f.message };
        let outgoing = tested.outgoing.map(|o| match o {
            Ok(()) => OutgoingTest { ok: true, failure: None },
            Err(f) => OutgoingTest { ok: false, failure: Some(failure(f)) },
        });
        Ok(match tested.incoming {
            Ok(folders) => TestMailboxConnectionPayload { ok: true, failure: None, folders: folders.into_iter().map(MailboxFolder::from).collect(), outgoing },
            Err(f) => TestMailboxConnectionPayload { ok: false, failure: Some(failure(f)), folders: Vec::new(), outgoing },
        })
    }
}
