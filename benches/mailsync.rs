//! Mailbox sync throughput: a 10,000-message mailbox on a local Dovecot, archived by Herald's
//! scan (first full archive with linking, then a rescan with nothing new), beside `mbsync`
//! (isync) copying the same mailbox to a Maildir in the same run.
//!
//! One message in five is from a customer (linked by main email, contact email or domain), the
//! rest unmatched; the account scans all email, so every message is archived either way.
//!
//! `cargo bench --bench mailsync` (PostgreSQL at HERALD_BENCH_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; HERALD_BENCH_MESSAGES, default
//! 10000; Dovecot from dovecot-imapd and mbsync from isync).
// Test and benchmark code: a step that fails is a failed run, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/fixtures.rs"]
mod fixtures;

#[path = "../tests/support/dovecot.rs"]
mod dovecot;

use std::time::Instant;

use api::{
    auth::{Caller, Principal},
    bootstrap,
    mailboxes::{self, Connection, NewMailbox, Options, SignIn},
    smtp::Security,
    AppState,
};
use chrono::Utc;
use entity::{email, email_settings, user};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter};
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USER: (&str, &str) = ("ann@acme.example", "bench-secret");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("HERALD_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    let n: usize = std::env::var("HERALD_BENCH_MESSAGES").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let imap = dovecot::TestImap::start(&[USER]).await;
    println!("Dovecot on 127.0.0.1:{}; filling INBOX with {n} messages…", imap.port);
    fill(&imap, n).await?;

    // The peer: mbsync pulling the same mailbox into a Maildir.
    let dir = tempfile::tempdir()?;
    let rc = dir.path().join("mbsyncrc");
    let maildir = dir.path().join("mail");
    std::fs::create_dir_all(&maildir)?;
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount bench\nHost 127.0.0.1\nPort {}\nUser {}\nPass {}\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount bench\n\nMaildirStore local\nPath {m}/\nInbox {m}/INBOX\n\n\
             Channel all\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync Pull\nSyncState *\n",
            imap.port,
            USER.0,
            USER.1,
            m = maildir.display()
        ),
    )?;
    let started = Instant::now();
    let out = tokio::process::Command::new("mbsync").arg("-q").arg("-c").arg(&rc).arg("-a").output().await?;
    anyhow::ensure!(out.status.success(), "mbsync failed: {}", String::from_utf8_lossy(&out.stderr));
    let mbsync_secs = started.elapsed().as_secs_f64();
    let copied = std::fs::read_dir(maildir.join("INBOX/new"))?.count() + std::fs::read_dir(maildir.join("INBOX/cur"))?.count();
    let started = Instant::now();
    let out = tokio::process::Command::new("mbsync").arg("-q").arg("-c").arg(&rc).arg("-a").output().await?;
    anyhow::ensure!(out.status.success(), "mbsync rescan failed");
    let mbsync_rescan = started.elapsed().as_secs_f64();
    println!("mbsync: {copied} in {mbsync_secs:.2} s = {:.0} msg/s; rescan {:.1} ms", copied as f64 / mbsync_secs, mbsync_rescan * 1000.0);

    let schema = fixtures::create_schema(&url, "bench").await?;
    let result = herald(&url, &schema, &imap, n).await;
    fixtures::drop_schema(&url, &schema).await?;
    let (first, rescan, archived, linked) = result?;
    let rate = archived as f64 / first;
    let mbsync_rate = copied as f64 / mbsync_secs;
    println!(
        "herald: {archived} archived ({linked} linked) in {first:.2} s = {rate:.0} msg/s ({:.2} of mbsync); rescan {:.1} ms",
        rate / mbsync_rate,
        rescan * 1000.0
    );
    println!("\n| reader | messages | first sync s | msg/s | rescan ms |\n|---|---:|---:|---:|---:|");
    println!("| mbsync (isync) | {copied} | {mbsync_secs:.2} | {mbsync_rate:.0} | {:.1} |", mbsync_rescan * 1000.0);
    println!("| Herald | {archived} | {first:.2} | {rate:.0} | {:.1} |", rescan * 1000.0);
    imap.stop().await;
    Ok(())
}

/// Appends `n` messages to INBOX over IMAP.
async fn fill(imap: &dovecot::TestImap, n: usize) -> anyhow::Result<()> {
    let mut session = imap.session(USER.0, USER.1).await;
    let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(25);
    for i in 0..n {
        let from = match i % 5 {
            0 => format!("buyer{}@customer{}.example", i % 7, i % 50),
            _ => format!("someone{i}@elsewhere{}.example", i % 300),
        };
        let raw = format!(
            "Message-ID: <bench-{i}@herald.test>\r\nFrom: {from}\r\nTo: {}\r\nSubject: Message {i}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{filler}\r\n",
            USER.0
        );
        session.append("INBOX", None, None, raw).await?;
    }
    session.logout().await?;
    Ok(())
}

async fn herald(url: &str, schema: &str, imap: &dovecot::TestImap, n: usize) -> anyhow::Result<(f64, f64, u64, u64)> {
    let dir = tempfile::tempdir()?;
    let config = fixtures::config(dir.path(), "bench", Some((url, schema)));
    let state = AppState::init(config).await?;
    let (account, admin) = bootstrap::bootstrap(&state.db, bootstrap::FirstAdmin::default()).await?.expect("fresh schema");
    // Fifty customers with a main email, a domain and a contact.
    for c in 0..50 {
        let now = Utc::now();
        let id = Uuid::now_v7();
        entity::contact::Entity::insert(
            entity::contact::Model {
                id,
                account_id: account.id,
                kind: entity::contact::ContactKind::Customer,
                name: format!("Customer {c}"),
                main_email: Some(format!("buyer0@customer{c}.example")),
                email_domain: Some(format!("customer{c}.example")),
                valid: true,
                created_at: now,
                updated_at: now,
            }
            .into_active_model(),
        )
        .exec(&state.db)
        .await?;
    }
    email_settings::Entity::insert(
        email_settings::Model { account_id: account.id, scan_all: true, version: 1, updated_at: Utc::now(), updated_by: None }.into_active_model(),
    )
    .exec(&state.db)
    .await?;
    let owner = user::Entity::find_by_id(admin.id).one(&state.db).await?.expect("admin");
    let caller = Caller { account_id: account.id, principal: Principal::User { user_id: owner.id, role: owner.role, impersonator: None }, expires_at: None };
    let created = mailboxes::create(
        &state,
        &caller,
        NewMailbox {
            user_id: None,
            connection: Connection {
                email_address: USER.0.into(),
                username: None,
                host: "127.0.0.1".into(),
                port: Some(imap.port.into()),
                security: Security::None,
            },
            sign_in: SignIn::Password(USER.1.into()),
            outgoing: None,
            options: Options { scan_active: true, sync_clients: true, sync_leads: true, directories: vec!["INBOX".into()], main: true },
            skip_test: true,
        },
    )
    .await?;
    let started = Instant::now();
    let first = worker::mailsync::run(&state, Utc::now()).await?;
    let first_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(first.mailboxes == 1, "the mailbox was scanned");
    let archived = email::Entity::find().count(&state.db).await?;
    anyhow::ensure!(archived as usize == n, "archived {archived} of {n}");
    let linked = email::Entity::find().filter(email::Column::ContactId.is_not_null()).count(&state.db).await?;

    // The rescan: the mailbox is due again and nothing is new.
    let later = Utc::now() + chrono::Duration::hours(1);
    let started = Instant::now();
    let again = worker::mailsync::run(&state, later).await?;
    let rescan_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(again.mailboxes == 1 && again.archived == 0, "the rescan found nothing new: {again:?}");
    let _ = created;
    Ok((first_secs, rescan_secs, archived, linked))
}
