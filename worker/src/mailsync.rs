//! Mailbox scans: each active mailbox's chosen folders are read incrementally and new mail is
//! archived and linked (`api::archive`).
//!
//! - One worker per mailbox at a time: a scan claims the mailbox with a lease (`FOR UPDATE SKIP
//!   LOCKED` on PostgreSQL).
//! - Read-only: folders are opened with EXAMINE and fetched with BODY.PEEK, so nothing is
//!   marked read on the server.
//! - Incremental and exact: per folder, UIDVALIDITY and the last UID archived. A batch of
//!   messages and the folder's new last UID commit together, so a worker killed mid-scan
//!   loses nothing (the batch is fetched again) and duplicates nothing (the account's unique
//!   message key). A changed UIDVALIDITY restarts the folder from its first message; one that
//!   keeps changing ([`MAX_UIDVALIDITY_CHANGES`] scans in a row) pauses the mailbox.
//! - Headers first: a batch's headers are fetched, messages already archived (seen in another
//!   folder or mailbox) are only located, and only new ones are fetched whole — those above
//!   the body limit as headers only. While one batch is parsed, linked and committed (its own
//!   task), the next is fetched; batches still commit in order.
//! - CONDSTORE where the server has it: a folder's HIGHESTMODSEQ is recorded after a complete
//!   scan, and a later scan that finds it unchanged (one STATUS) does not open the folder.
//!   Without CONDSTORE the stored UIDNEXT does the same after an EXAMINE.
//! - New mail in the inbox raises Email Received for the mailbox's owner by their switches
//!   (System: every message; AU, Text AU, Email AU: mail linked to a contact they are
//!   assigned to), folded per contact; a folder's first sync raises nothing.
//! - A folder that fails is logged on its row and skipped; the others go on. A refused login
//!   stops the mailbox (AUTH_FAILED) until its settings change, and tells its owner once.
//! - An OAuth2 mailbox signs in with a fresh access token (`api::mailboxes::grant`); a grant
//!   the provider no longer accepts stops it (NEEDS_RECONNECTION) until its owner signs in
//!   again, and the scans then resume where they stopped.

use std::{collections::HashSet, sync::Arc};

use api::{
    archive::{self, Directory, Fetched, Place, Policy},
    imap::{self, ImapError},
    mailboxes,
    notifications::{
        catalog::NotificationType,
        fanout::{self, AddressedEvent, OwnEvent},
    },
    AppState,
};
use chrono::{DateTime, Utc};
use entity::{email, mailbox, mailbox_folder};
use futures_util::TryStreamExt;
use sea_orm::{sea_query::Expr, ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, Statement, Value};

/// UIDVALIDITY changes in a row after which a mailbox is paused instead of resynced again.
pub const MAX_UIDVALIDITY_CHANGES: i32 = 3;
/// UIDs per fetch.
const BATCH: u32 = 500;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub mailboxes: usize,
    /// Emails newly archived (linked or not).
    pub archived: usize,
    /// Those of them linked to a record.
    pub linked: usize,
    pub failed_folders: usize,
}

/// New emails of a batch, a folder or a scan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Archived {
    pub archived: usize,
    pub linked: usize,
}

impl std::ops::AddAssign for Archived {
    fn add_assign(&mut self, other: Self) {
        self.archived += other.archived;
        self.linked += other.linked;
    }
}

/// Scans every mailbox due by `now`, one after another.
pub async fn run(app: &AppState, now: DateTime<Utc>) -> anyhow::Result<Synced> {
    let mut total = Synced::default();
    while let Some(mailbox) = claim(app, now).await? {
        let outcome = scan(app, &mailbox).await;
        let report = settle(app, &mailbox, outcome, now).await?;
        total.mailboxes += 1;
        total.archived += report.archived.archived;
        total.linked += report.archived.linked;
        total.failed_folders += report.failed_folders;
    }
    Ok(total)
}

async fn claim(app: &AppState, now: DateTime<Utc>) -> anyhow::Result<Option<mailbox::Model>> {
    let backend = app.db.get_database_backend();
    let lease = now + chrono::Duration::from_std(app.config.worker.mailbox_lease)?;
    let (p, lock) = match backend {
        DbBackend::Postgres => (["$1", "$2"], " FOR UPDATE SKIP LOCKED"),
        _ => (["?", "?"], ""),
    };
    let sql = format!(
        "UPDATE mailbox SET scan_leased_until = {lease} WHERE id IN (SELECT id FROM mailbox \
           WHERE scan_active AND next_scan_at <= {now} AND (scan_leased_until IS NULL OR scan_leased_until < {now}) \
           ORDER BY next_scan_at LIMIT 1{lock}) RETURNING *",
        lease = p[0],
        now = p[1],
    );
    let values: Vec<Value> = match backend {
        DbBackend::Postgres => vec![lease.into(), now.into()],
        _ => vec![lease.into(), now.into(), now.into()],
    };
    Ok(mailbox::Entity::find().from_raw_sql(Statement::from_sql_and_values(backend, sql, values)).one(&app.db).await?)
}

struct Scanned {
    archived: Archived,
    failed_folders: usize,
    /// Set when a folder's UIDVALIDITY keeps changing.
    pause: Option<String>,
}

async fn scan(app: &AppState, mailbox: &mailbox::Model) -> Result<Scanned, ScanError> {
    let server = mailboxes::server_of(app, mailbox).await.map_err(|e| match e {
        mailboxes::CredentialError::Grant(g) => ScanError::Grant(g),
        mailboxes::CredentialError::Api(a) => ScanError::Storage(a),
    })?;
    let mut session = imap::connect(&server).await?;
    let condstore = imap::has_condstore(&mut session).await?;
    let directory = Arc::new(Directory::load(&app.db, mailbox.account_id).await?);
    let policy = Policy { customers: mailbox.sync_clients, leads: mailbox.sync_leads, scan_all: archive::scan_all(&app.db, mailbox.account_id).await? };
    let mut folders: Vec<String> = serde_json::from_value(mailbox.directories.clone()).unwrap_or_default();
    if folders.is_empty() {
        folders.push("INBOX".into());
    }
    let mut report = Scanned { archived: Archived::default(), failed_folders: 0, pause: None };
    let mut statistics = archive::Statistics::read(&app.db).await?;
    for folder in folders {
        let scan = FolderScan { app, mailbox, folder: &folder, directory: &directory, policy, condstore };
        match scan.run(&mut session, &mut statistics).await {
            Ok(FolderOutcome::Done(n)) => report.archived += n,
            Ok(FolderOutcome::UidvalidityUnstable) => {
                report.pause =
                    Some(format!("the UIDVALIDITY of {folder:?} changed {MAX_UIDVALIDITY_CHANGES} scans in a row: paused to avoid resyncing forever"));
                break;
            }
            // A lost connection or a storage failure ends the scan; an IMAP error skips the folder.
            Err(e @ ScanError::Imap(ImapError::Imap { source: async_imap::error::Error::ConnectionLost, .. } | ImapError::Timeout(_))) => return Err(e),
            Err(e @ (ScanError::Storage(_) | ScanError::Task(_) | ScanError::Grant(_))) => return Err(e),
            Err(ScanError::Imap(e)) => {
                tracing::warn!(mailbox = %mailbox.id, folder = %folder, error = %e, "folder scan failed; the others go on");
                report.failed_folders += 1;
                mailbox_folder::Entity::update_many()
                    .col_expr(mailbox_folder::Column::LastError, Expr::value(Some(e.to_string())))
                    .filter(mailbox_folder::Column::MailboxId.eq(mailbox.id))
                    .filter(mailbox_folder::Column::Path.eq(folder.clone()))
                    .exec(&app.db)
                    .await?;
            }
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), session.logout()).await;
    Ok(report)
}

/// Why a scan failed: the mail server, whose failure is the mailbox's state, or Herald's own
/// storage of what it read, which is no fault of the mailbox and is logged with its cause.
#[derive(Debug, thiserror::Error)]
enum ScanError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    /// The mailbox's OAuth2 grant gave no access token (revoked, or the provider is down).
    #[error(transparent)]
    Grant(mailboxes::grant::GrantError),
    #[error("storing the archive: {0}")]
    Storage(#[source] api::error::ApiError),
    #[error("storing the archive: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<api::error::ApiError> for ScanError {
    fn from(e: api::error::ApiError) -> Self {
        Self::Storage(e)
    }
}

impl From<sea_orm::DbErr> for ScanError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Storage(e.into())
    }
}

enum FolderOutcome {
    Done(Archived),
    UidvalidityUnstable,
}

fn imap_err(step: &'static str) -> impl FnOnce(async_imap::error::Error) -> ImapError {
    move |source| ImapError::Imap { step, source }
}

/// One folder of one scan.
struct FolderScan<'a> {
    app: &'a AppState,
    mailbox: &'a mailbox::Model,
    folder: &'a str,
    directory: &'a Arc<Directory>,
    policy: Policy,
    /// The server has CONDSTORE (RFC 7162).
    condstore: bool,
}

impl FolderScan<'_> {
    async fn run(&self, session: &mut imap::Session, statistics: &mut archive::Statistics) -> Result<FolderOutcome, ScanError> {
        let (app, mailbox, folder) = (self.app, self.mailbox, self.folder);
        let stored = mailbox_folder::Entity::find_by_id((mailbox.id, folder.to_string())).one(&app.db).await?;
        // With CONDSTORE one STATUS tells whether anything in the folder changed since the
        // last complete scan (new mail raises HIGHESTMODSEQ): if not, the folder is not even
        // opened.
        let modseq = if self.condstore {
            let status = session.status(folder, "(UIDVALIDITY HIGHESTMODSEQ)").await.map_err(imap_err("reading the folder's status"))?;
            let unchanged = stored.as_ref().is_some_and(|s| {
                status.highest_modseq.is_some()
                    && s.highest_modseq == status.highest_modseq.map(modseq_to_i64)
                    && status.uid_validity.map(i64::from) == Some(s.uidvalidity)
                    && s.uidvalidity_changes == 0
                    && s.last_error.is_none()
            });
            if unchanged {
                return Ok(FolderOutcome::Done(Archived::default()));
            }
            status.highest_modseq.map(modseq_to_i64)
        } else {
            None
        };
        let opened = session.examine(folder).await.map_err(imap_err("opening the folder"))?;
        let uidvalidity = i64::from(opened.uid_validity.unwrap_or(0));
        let uid_next = opened.uid_next.map(i64::from);
        let now = Utc::now();
        // Email Received is for mail arriving in the inbox: not for what a folder held before
        // its first sync (or a resync after its UIDVALIDITY changed).
        let announce = folder.eq_ignore_ascii_case("INBOX") && stored.as_ref().is_some_and(|s| s.uidvalidity == uidvalidity);
        let mut state = match stored {
            // Stable again: the count of changes in a row starts over.
            Some(mut s) if s.uidvalidity == uidvalidity => {
                if s.uidvalidity_changes != 0 {
                    s.uidvalidity_changes = 0;
                    s = s.into_active_model().reset_all().update(&app.db).await?;
                }
                s
            }
            Some(mut s) => {
                // The folder was rebuilt on the server: its UIDs mean other messages now. Start
                // over; the account's message keys keep this from storing anything twice.
                s.uidvalidity_changes += 1;
                if s.uidvalidity_changes >= MAX_UIDVALIDITY_CHANGES {
                    return Ok(FolderOutcome::UidvalidityUnstable);
                }
                tracing::info!(mailbox = %mailbox.id, folder, "UIDVALIDITY changed: resyncing the folder");
                s.uidvalidity = uidvalidity;
                s.last_uid = 0;
                s.highest_modseq = None;
                s.updated_at = now;
                s.into_active_model().reset_all().update(&app.db).await?
            }
            None => {
                mailbox_folder::Model {
                    mailbox_id: mailbox.id,
                    path: folder.to_string(),
                    account_id: mailbox.account_id,
                    uidvalidity,
                    last_uid: 0,
                    uidvalidity_changes: 0,
                    highest_modseq: None,
                    last_error: None,
                    updated_at: now,
                }
                .into_active_model()
                .reset_all()
                .insert(&app.db)
                .await?
            }
        };

        // Fetching and storing overlap: while one batch is parsed, linked and committed, the
        // next is fetched. Batches still commit one after another, each with its position.
        let mut storing: Option<tokio::task::JoinHandle<Result<Archived, ScanError>>> = None;
        let fetched = self.fetch_all(session, &mut state, Opened { uid_next, uidvalidity, announce }, &mut storing, statistics).await;
        let last_batch = match storing {
            Some(last) => last.await?,
            None => Ok(Archived::default()),
        };
        let mut archived = fetched?;
        archived += last_batch?;
        // Only a complete scan records the folder's HIGHESTMODSEQ (as read before fetching:
        // mail that arrived since raised it, so the next scan looks again).
        if modseq.is_some() && modseq != state.highest_modseq {
            mailbox_folder::Entity::update_many()
                .col_expr(mailbox_folder::Column::HighestModseq, Expr::value(modseq))
                .col_expr(mailbox_folder::Column::LastError, Expr::value(Option::<String>::None))
                .col_expr(mailbox_folder::Column::UpdatedAt, Expr::value(Utc::now()))
                .filter(mailbox_folder::Column::MailboxId.eq(mailbox.id))
                .filter(mailbox_folder::Column::Path.eq(folder))
                .exec(&app.db)
                .await?;
        }
        Ok(FolderOutcome::Done(archived))
    }

    /// Fetches the folder's new messages batch by batch, handing each to a store task (after
    /// the previous one finished). Answers what the finished store tasks archived.
    async fn fetch_all(
        &self,
        session: &mut imap::Session,
        state: &mut mailbox_folder::Model,
        opened: Opened,
        storing: &mut Option<tokio::task::JoinHandle<Result<Archived, ScanError>>>,
        statistics: &mut archive::Statistics,
    ) -> Result<Archived, ScanError> {
        let Opened { uid_next, uidvalidity, announce } = opened;
        let (app, mailbox) = (self.app, self.mailbox);
        let mut archived = Archived::default();
        loop {
            if uid_next.is_some_and(|next| state.last_uid + 1 >= next) {
                break; // nothing new since the last scan
            }
            let from = state.last_uid + 1;
            let to = from + i64::from(BATCH) - 1;
            let headers: Vec<(i64, i64, Vec<u8>)> = session
                .uid_fetch(format!("{from}:{to}"), "(UID RFC822.SIZE BODY.PEEK[HEADER])")
                .await
                .map_err(imap_err("fetching headers"))?
                .try_collect::<Vec<_>>()
                .await
                .map_err(imap_err("fetching headers"))?
                .iter()
                .filter_map(|f| Some((i64::from(f.uid?), i64::from(f.size.unwrap_or(0)), f.header()?.to_vec())))
                .filter(|(uid, _, _)| *uid >= from)
                .collect();
            if headers.is_empty() && uid_next.is_none() {
                break;
            }
            // Up to the end of the range, or of the folder as EXAMINE saw it.
            let highest = match uid_next {
                Some(next) => to.min(next - 1),
                None => headers.iter().map(|h| h.0).max().unwrap_or(state.last_uid),
            };
            // Which are new to the account: those need their bodies (if not too large). A
            // message of the batch still being stored looks new here; storing finds it.
            let keys: Vec<String> = headers.iter().map(|(_, _, h)| key_of_header(h)).collect();
            let known: HashSet<String> = archive::keys_to_ids(&app.db, mailbox.account_id, keys.iter().filter(|k| k.starts_with("mid:")).cloned().collect())
                .await?
                .into_keys()
                .collect();
            let limit = app.config.worker.mailbox_body_limit as i64;
            let wanted: Vec<i64> =
                headers.iter().zip(&keys).filter(|((_, size, _), key)| !known.contains(*key) && *size <= limit).map(|((uid, _, _), _)| *uid).collect();
            let mut bodies = std::collections::HashMap::new();
            if !wanted.is_empty() {
                let set = wanted.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(",");
                let fetched: Vec<_> = session
                    .uid_fetch(set, "(UID BODY.PEEK[])")
                    .await
                    .map_err(imap_err("fetching messages"))?
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(imap_err("fetching messages"))?;
                for f in fetched {
                    if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                        bodies.insert(i64::from(uid), body.to_vec());
                    }
                }
            }
            let batch: Vec<Fetched> = headers
                .into_iter()
                .map(|(uid, size, header)| match bodies.remove(&uid) {
                    Some(bytes) => Fetched { uid, size, bytes, headers_only: false },
                    None => Fetched { uid, size, headers_only: size > limit, bytes: header },
                })
                .collect();
            if let Some(previous) = storing.take() {
                let done = previous.await??;
                statistics.archived(&app.db, done.archived).await;
                archived += done;
            }
            let job = StoreBatch {
                app: app.clone(),
                mailbox: mailbox.clone(),
                folder: self.folder.to_string(),
                uidvalidity,
                directory: self.directory.clone(),
                policy: self.policy,
                batch,
                highest,
                announce,
            };
            *storing = Some(tokio::spawn(job.run()));
            state.last_uid = highest;
        }
        Ok(archived)
    }
}

/// What opening a folder told, for fetching from it.
struct Opened {
    uid_next: Option<i64>,
    uidvalidity: i64,
    /// Whether its new mail raises Email Received ([`StoreBatch::announce`]).
    announce: bool,
}

/// Modification sequences are below 2^63 (RFC 7162 §7).
fn modseq_to_i64(m: u64) -> i64 {
    i64::try_from(m).unwrap_or(i64::MAX)
}

/// A fetched batch on its way into the archive, owned so that it can be stored while the next
/// one is fetched.
struct StoreBatch {
    app: AppState,
    mailbox: mailbox::Model,
    folder: String,
    uidvalidity: i64,
    directory: Arc<Directory>,
    policy: Policy,
    batch: Vec<Fetched>,
    /// The folder's last UID once this batch is stored.
    highest: i64,
    /// Whether its new mail raises Email Received: new mail in the inbox, once the folder's
    /// first sync is done (connecting a mailbox does not announce the years of mail in it).
    announce: bool,
}

impl StoreBatch {
    /// Stores the batch and the folder's new position in one transaction, then tells the
    /// owner of new linked mail.
    async fn run(self) -> Result<Archived, ScanError> {
        let Self { app, mailbox, folder, uidvalidity, directory, policy, batch, highest, announce } = self;
        let txn = api::db::begin_write(&app.db).await?;
        let place = Place { account_id: mailbox.account_id, mailbox_id: mailbox.id, folder: &folder, uidvalidity };
        let stored = archive::store(&txn, &place, batch, &directory, policy).await?;
        mailbox_folder::Entity::update_many()
            .col_expr(mailbox_folder::Column::LastUid, Expr::value(highest))
            .col_expr(mailbox_folder::Column::LastError, Expr::value(Option::<String>::None))
            .col_expr(mailbox_folder::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(mailbox_folder::Column::MailboxId.eq(mailbox.id))
            .filter(mailbox_folder::Column::Path.eq(folder.as_str()))
            .exec(&txn)
            .await?;
        let events: Vec<OwnEvent> = match announce {
            true => stored.new.iter().map(|e| received(&mailbox, e)).collect(),
            false => Vec::new(),
        };
        let recorded = fanout::record_own(&txn, events, app.config.notification_collapse_window).await?;
        txn.commit().await?;
        api::notifications::announce(&app, &recorded.notifications).await;
        Ok(Archived { archived: stored.new.len(), linked: stored.linked() })
    }
}

/// The key of a message from its header alone (Message-ID); messages without one are keyed
/// by their content once fetched.
fn key_of_header(header: &[u8]) -> String {
    let id = mail_parser::MessageParser::default().parse_headers(header).and_then(|m| m.message_id().map(String::from));
    match id {
        Some(id) => archive::message_key(Some(&id), header),
        None => String::new(),
    }
}

/// Email Received for the mailbox's owner (`fanout::record_own` decides by their switches).
fn received(mailbox: &mailbox::Model, e: &email::Model) -> OwnEvent {
    OwnEvent {
        kind: NotificationType::EmailReceived,
        account_id: mailbox.account_id,
        contact_id: e.contact_id,
        title: format!("Email from {}: {}", e.from_name.clone().or(e.from_address.clone()).unwrap_or_default(), e.subject.clone().unwrap_or_default()),
        data: Some(serde_json::json!({ "emailId": e.id, "mailboxId": mailbox.id })),
        occurred_at: Utc::now(),
        idempotency_key: format!("email:{}:received:{}", e.id, mailbox.user_id),
        user_id: mailbox.user_id,
    }
}

struct Report {
    archived: Archived,
    failed_folders: usize,
}

/// Records the scan's outcome on the mailbox and gives the lease back.
/// `now` is the scan's notion of time (the tick's), so a scan never schedules the next one
/// before the moment it ran for.
async fn settle(app: &AppState, mailbox: &mailbox::Model, outcome: Result<Scanned, ScanError>, now: DateTime<Utc>) -> anyhow::Result<Report> {
    let next = now + chrono::Duration::from_std(app.config.worker.mailbox_scan_interval)?;
    let mut row = mailbox.clone().into_active_model();
    row.scan_leased_until = sea_orm::Set(None);
    row.last_scan_at = sea_orm::Set(Some(now));
    let mut notify_auth_failure = false;
    let mut auth_message = None;
    let report = match outcome {
        Ok(Scanned { archived, failed_folders, pause: None }) => {
            metrics::counter!("herald_mailbox_scans_total", "outcome" => "ok").increment(1);
            metrics::counter!("herald_mailbox_folder_failures_total").increment(failed_folders as u64);
            row.state = sea_orm::Set(mailbox::State::Connected);
            row.last_error = sea_orm::Set(None);
            row.next_scan_at = sea_orm::Set(Some(next));
            Report { archived, failed_folders }
        }
        Ok(Scanned { archived, failed_folders, pause: Some(why) }) => {
            metrics::counter!("herald_mailbox_scans_total", "outcome" => "paused").increment(1);
            row.state = sea_orm::Set(mailbox::State::Paused);
            row.last_error = sea_orm::Set(Some(why));
            row.next_scan_at = sea_orm::Set(None);
            Report { archived, failed_folders }
        }
        Err(e @ (ScanError::Storage(_) | ScanError::Task(_))) => {
            // Herald's side failed, not the mailbox's: the cause goes to the log, the owner
            // sees that the scan will be tried again.
            tracing::error!(mailbox = %mailbox.id, error = format!("{:#}", anyhow::Error::from(e)), "mailbox scan could not store what it read");
            metrics::counter!("herald_mailbox_scans_total", "outcome" => "storage_error").increment(1);
            row.state = sea_orm::Set(mailbox::State::Error);
            row.last_error = sea_orm::Set(Some("Herald could not store this mailbox's mail; the next scan tries again".into()));
            row.next_scan_at = sea_orm::Set(Some(next));
            Report { archived: Archived::default(), failed_folders: 0 }
        }
        Err(ScanError::Grant(e)) if e.needs_sign_in() => {
            // The grant's refresh already stopped the mailbox and told its owner.
            metrics::counter!("herald_mailbox_scans_total", "outcome" => "needs_reconnection").increment(1);
            row.state = sea_orm::Set(mailbox::State::NeedsReconnection);
            row.last_error = sea_orm::Set(Some(e.to_string()));
            row.next_scan_at = sea_orm::Set(None);
            Report { archived: Archived::default(), failed_folders: 0 }
        }
        Err(ScanError::Grant(e)) => {
            metrics::counter!("herald_mailbox_scans_total", "outcome" => "error").increment(1);
            row.state = sea_orm::Set(mailbox::State::Error);
            row.last_error = sea_orm::Set(Some(e.to_string()));
            row.next_scan_at = sea_orm::Set(Some(next));
            Report { archived: Archived::default(), failed_folders: 0 }
        }
        Err(ScanError::Imap(e)) => {
            let failure = imap::classify(&e);
            let outcome = if failure.reason == api::smtp::FailureReason::Authentication { "auth_failed" } else { "error" };
            metrics::counter!("herald_mailbox_scans_total", "outcome" => outcome).increment(1);
            row.last_error = sea_orm::Set(Some(failure.message.clone()));
            if failure.reason == api::smtp::FailureReason::Authentication {
                // No retries until the settings change (which resets the state).
                row.state = sea_orm::Set(mailbox::State::AuthFailed);
                row.next_scan_at = sea_orm::Set(None);
                notify_auth_failure = !mailbox.owner_notified_of_auth_failure;
                auth_message = Some(failure.message.clone());
                row.owner_notified_of_auth_failure = sea_orm::Set(true);
            } else {
                row.state = sea_orm::Set(mailbox::State::Error);
                row.next_scan_at = sea_orm::Set(Some(next));
            }
            Report { archived: Archived::default(), failed_folders: 0 }
        }
    };
    let txn = api::db::begin_write(&app.db).await?;
    // Only if the settings did not change meanwhile (a change resets state and schedule).
    let updated = mailbox::Entity::update_many()
        .set(row)
        .filter(mailbox::Column::Id.eq(mailbox.id))
        .filter(mailbox::Column::Version.eq(mailbox.version))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        mailbox::Entity::update_many()
            .col_expr(mailbox::Column::ScanLeasedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(mailbox::Column::Id.eq(mailbox.id))
            .exec(&txn)
            .await?;
    }
    let mut notifications = Vec::new();
    if notify_auth_failure && updated.rows_affected > 0 {
        let event = AddressedEvent {
            kind: NotificationType::SystemErrorInformation,
            account_id: mailbox.account_id,
            contact_id: None,
            title: match mailbox.auth_method {
                mailbox::AuthMethod::Password => format!("Mailbox {} refused the login: update its password", mailbox.email_address),
                mailbox::AuthMethod::Oauth2 => format!("Mailbox {} refused the sign-in: connect it again", mailbox.email_address),
            },
            body: auth_message,
            data: Some(serde_json::json!({ "mailboxId": mailbox.id })),
            action_url: None,
            occurred_at: now,
            idempotency_key: format!("mailbox:{}:auth-failed:v{}", mailbox.id, mailbox.version),
            recipients: vec![mailbox.user_id],
            email: false,
        };
        notifications = fanout::record_addressed(&txn, vec![event]).await?.notifications;
    }
    txn.commit().await?;
    api::notifications::announce(app, &notifications).await;
    Ok(report)
}
