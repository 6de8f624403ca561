//! The email archive: parsing what a mailbox scan fetched, linking it to a customer or lead,
//! and storing it once per account.
//!
//! Linking, in this order (seeds/004 and issue 5):
//! 1. the thread: a reply (`In-Reply-To`, `References`) to an archived, linked email is linked
//!    like that email;
//! 2. the address rules, over the sender and all recipients, first rule first: customer main
//!    email, customer's contact (person) email, lead main email, lead's contact email,
//!    customer domain. Customers only when the mailbox syncs clients, leads only when it syncs
//!    leads. Public mail providers' domains and the account's own domains (its users'
//!    addresses) never match by domain, and a domain shared by several customers matches none.
//!
//! Mail that matches nothing is archived unlinked only when the account scans all email.
//! A tombstoned email (deleted from the archive) is never archived again.

pub mod report;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{contact, contact::ContactKind, contact_person, email, email_location, email_settings, email_tombstone, user};
use mail_parser::MimeHeaders;
use sea_orm::{sea_query::OnConflict, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiResult;

/// Domains of public mail providers: an address there says nothing about a company.
pub const PUBLIC_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "ymail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "outlook.com",
    "live.com",
    "msn.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "mail.com",
    "yandex.ru",
    "yandex.com",
    "mail.ru",
    "zoho.com",
    "fastmail.com",
    "hey.com",
    "qq.com",
    "163.com",
    "126.com",
    "free.fr",
    "orange.fr",
    "laposte.net",
    "t-online.de",
    "comcast.net",
    "verizon.net",
    "att.net",
    "btinternet.com",
];

pub use entity::email::LinkedBy;

/// The account's customers and leads by address and domain, loaded once per scan.
#[derive(Debug, Default)]
pub struct Directory {
    customer_main: HashMap<String, Uuid>,
    customer_person: HashMap<String, Uuid>,
    lead_main: HashMap<String, Uuid>,
    lead_person: HashMap<String, Uuid>,
    /// `None` when several customers share the domain.
    customer_domain: HashMap<String, Option<Uuid>>,
    own_domains: HashSet<String>,
}

impl Directory {
    pub async fn load(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<Self> {
        let mut d = Directory::default();
        let contacts = contact::Entity::find().filter(contact::Column::AccountId.eq(account_id)).filter(contact::Column::Valid.eq(true)).all(db).await?;
        let kinds: HashMap<Uuid, ContactKind> = contacts.iter().map(|c| (c.id, c.kind)).collect();
        // Ids ascend with creation (UUIDv7): on a tie the oldest record wins.
        let mut sorted = contacts;
        sorted.sort_by_key(|c| c.id);
        for c in &sorted {
            if let Some(main) = &c.main_email {
                let map = if c.kind == ContactKind::Customer { &mut d.customer_main } else { &mut d.lead_main };
                map.entry(main.to_lowercase()).or_insert(c.id);
            }
            if c.kind == ContactKind::Customer {
                if let Some(domain) = &c.email_domain {
                    d.customer_domain
                        .entry(domain.to_lowercase())
                        .and_modify(|v| {
                            if *v != Some(c.id) {
                                *v = None
                            }
                        })
                        .or_insert(Some(c.id));
                }
            }
        }
        let mut persons = contact_person::Entity::find()
            .filter(contact_person::Column::AccountId.eq(account_id))
            .filter(contact_person::Column::Invalid.eq(false))
            .all(db)
            .await?;
        persons.sort_by_key(|p| p.id);
        for p in persons {
            let (Some(address), Some(kind)) = (p.email.as_ref(), kinds.get(&p.contact_id)) else { continue };
            let map = if *kind == ContactKind::Customer { &mut d.customer_person } else { &mut d.lead_person };
            map.entry(address.to_lowercase()).or_insert(p.contact_id);
        }
        let users = user::Entity::find().filter(user::Column::AccountId.eq(account_id)).all(db).await?;
        d.own_domains = users.iter().filter_map(|u| u.email.rsplit_once('@').map(|(_, dom)| dom.to_lowercase())).collect();
        Ok(d)
    }

    /// The first rule that matches any of `addresses` (sender first), as (contact, rule).
    pub fn link(&self, addresses: &[String], customers: bool, leads: bool) -> Option<(Uuid, LinkedBy)> {
        let by_map = |map: &HashMap<String, Uuid>| addresses.iter().find_map(|a| map.get(a).copied());
        if customers {
            if let Some(id) = by_map(&self.customer_main) {
                return Some((id, LinkedBy::CustomerMainEmail));
            }
            if let Some(id) = by_map(&self.customer_person) {
                return Some((id, LinkedBy::CustomerContactEmail));
            }
        }
        if leads {
            if let Some(id) = by_map(&self.lead_main) {
                return Some((id, LinkedBy::LeadMainEmail));
            }
            if let Some(id) = by_map(&self.lead_person) {
                return Some((id, LinkedBy::LeadContactEmail));
            }
        }
        if customers {
            for address in addresses {
                let Some((_, domain)) = address.rsplit_once('@') else { continue };
                if PUBLIC_DOMAINS.contains(&domain) || self.own_domains.contains(domain) {
                    continue;
                }
                if let Some(Some(id)) = self.customer_domain.get(domain) {
                    return Some((*id, LinkedBy::CustomerDomain));
                }
            }
        }
        None
    }
}

/// The key an email is stored under: its Message-ID, else a hash of its bytes.
pub fn message_key(message_id: Option<&str>, raw: &[u8]) -> String {
    match message_id.map(str::trim).filter(|m| !m.is_empty()) {
        Some(id) => format!("mid:{}", id.trim_start_matches('<').trim_end_matches('>')),
        None => format!("sha256:{:x}", Sha256::digest(raw)),
    }
}

/// A message as a scan fetched it: the whole of it, or its header only when it is larger than
/// the body limit.
pub struct Fetched {
    pub uid: i64,
    pub size: i64,
    pub bytes: Vec<u8>,
    pub headers_only: bool,
}

/// What the archive keeps of a message.
pub struct Parsed {
    pub key: String,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: serde_json::Value,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

impl Parsed {
    /// Sender first, then recipients: the order the address rules look at them.
    pub fn addresses(&self) -> Vec<String> {
        self.from_address.iter().cloned().chain(self.to.iter().cloned()).chain(self.cc.iter().cloned()).collect()
    }
}

fn addresses_of(list: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    list.map(|a| a.iter().filter_map(|addr| addr.address().map(|s| s.trim().to_lowercase())).collect()).unwrap_or_default()
}

/// Parses a fetched message. Malformed and non-UTF-8 messages parse as far as they go (mail-
/// parser is lenient and decodes legacy charsets); what cannot be read is left empty.
pub fn parse(fetched: &Fetched) -> Parsed {
    let message = mail_parser::MessageParser::default().parse(&fetched.bytes);
    let Some(m) = message else {
        return Parsed {
            key: message_key(None, &fetched.bytes),
            message_id: None,
            subject: None,
            from_address: None,
            from_name: None,
            to: Vec::new(),
            cc: Vec::new(),
            sent_at: None,
            text: None,
            html: None,
            attachments: json!([]),
            in_reply_to: None,
            references: Vec::new(),
        };
    };
    let message_id = m.message_id().map(|s| s.to_string());
    let from = m.from().and_then(|a| a.first());
    let attachments: Vec<_> = m
        .attachments()
        .map(|a| {
            json!({
                "filename": a.attachment_name(),
                "contentType": a.content_type().map(|c| match c.subtype() { Some(s) => format!("{}/{}", c.ctype(), s), None => c.ctype().to_string() }),
                "size": a.len(),
            })
        })
        .collect();
    let ids = |h: &mail_parser::HeaderValue<'_>| -> Vec<String> {
        match h {
            mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
            mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
            _ => Vec::new(),
        }
    };
    Parsed {
        key: message_key(message_id.as_deref(), &fetched.bytes),
        message_id,
        subject: m.subject().map(String::from),
        from_address: from.and_then(|f| f.address()).map(|a| a.trim().to_lowercase()),
        from_name: from.and_then(|f| f.name()).map(String::from),
        to: addresses_of(m.to()),
        cc: addresses_of(m.cc()),
        sent_at: m.date().and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
        text: if fetched.headers_only { None } else { m.body_text(0).map(|t| t.into_owned()) },
        html: if fetched.headers_only { None } else { m.body_html(0).map(|t| t.into_owned()) },
        attachments: if fetched.headers_only { json!([]) } else { json!(attachments) },
        in_reply_to: ids(m.in_reply_to()).into_iter().next(),
        references: ids(m.references()),
    }
}

/// The ids of the account's archived emails with these keys (without loading the emails).
pub async fn keys_to_ids(db: &impl ConnectionTrait, account_id: Uuid, keys: Vec<String>) -> ApiResult<HashMap<String, Uuid>> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(500) {
        let rows = email::Entity::find()
            .select_only()
            .columns([email::Column::MessageKey, email::Column::Id])
            .filter(email::Column::AccountId.eq(account_id))
            .filter(email::Column::MessageKey.is_in(chunk.iter().cloned()))
            .into_tuple::<(String, Uuid)>()
            .all(db)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// How a mailbox links: its sync flags, and the account's scan-all setting.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub customers: bool,
    pub leads: bool,
    pub scan_all: bool,
}

pub async fn scan_all(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<bool> {
    Ok(email_settings::Entity::find_by_id(account_id).one(db).await?.is_some_and(|s| s.scan_all))
}

/// Where the messages of a batch were found.
pub struct Place<'a> {
    pub account_id: Uuid,
    pub mailbox_id: Uuid,
    pub folder: &'a str,
    pub uidvalidity: i64,
}

/// What storing a batch did.
#[derive(Debug, Default)]
pub struct Stored {
    /// Emails newly archived (linked or not).
    pub new: Vec<email::Model>,
}

impl Stored {
    /// Those of the new emails that are linked to a record.
    pub fn linked(&self) -> usize {
        self.new.iter().filter(|e| e.contact_id.is_some() || e.project_id.is_some()).count()
    }
}

/// Stores a batch of fetched messages of one folder in `txn`: new ones once per account,
/// every one's location.
pub async fn store(txn: &impl ConnectionTrait, place: &Place<'_>, fetched: Vec<Fetched>, directory: &Directory, policy: Policy) -> ApiResult<Stored> {
    if fetched.is_empty() {
        return Ok(Stored::default());
    }
    let parsed: Vec<(Fetched, Parsed)> = fetched
        .into_iter()
        .map(|f| {
            let p = parse(&f);
            (f, p)
        })
        .collect();
    let keys: Vec<String> = parsed.iter().map(|(_, p)| p.key.clone()).collect();
    let existing: HashMap<String, Uuid> = keys_to_ids(txn, place.account_id, keys.clone()).await?;
    let tombstoned: HashSet<String> = email_tombstone::Entity::find()
        .filter(email_tombstone::Column::AccountId.eq(place.account_id))
        .filter(email_tombstone::Column::MessageKey.is_in(keys))
        .all(txn)
        .await?
        .into_iter()
        .map(|t| t.message_key)
        .collect();
    // Threads: the links of the archived messages these reply to.
    let parents: HashSet<String> =
        parsed.iter().flat_map(|(_, p)| p.in_reply_to.iter().chain(p.references.iter()).map(|id| message_key(Some(id), b""))).collect();
    let thread_links: HashMap<String, (Option<Uuid>, Option<Uuid>)> = if parents.is_empty() {
        HashMap::new()
    } else {
        email::Entity::find()
            .select_only()
            .columns([email::Column::MessageKey, email::Column::ContactId, email::Column::ProjectId])
            .filter(email::Column::AccountId.eq(place.account_id))
            .filter(email::Column::MessageKey.is_in(parents))
            .into_tuple::<(String, Option<Uuid>, Option<Uuid>)>()
            .all(txn)
            .await?
            .into_iter()
            .filter(|(_, c, p)| c.is_some() || p.is_some())
            .map(|(k, c, p)| (k, (c, p)))
            .collect()
    };

    let mut thread_links = thread_links;
    let now = Utc::now();
    let mut new_emails: Vec<email::Model> = Vec::new();
    let mut seen_in_batch: HashMap<String, Uuid> = HashMap::new();
    let mut locations = Vec::new();
    for (f, p) in parsed {
        if tombstoned.contains(&p.key) {
            continue;
        }
        let id = match existing.get(&p.key).or(seen_in_batch.get(&p.key)) {
            Some(id) => *id,
            None => {
                let thread = p.in_reply_to.iter().chain(p.references.iter().rev()).find_map(|id| thread_links.get(&message_key(Some(id), b"")).copied());
                let (contact_id, project_id, linked_by) = match thread {
                    Some((c, pr)) => (c, pr, LinkedBy::Thread),
                    None => match directory.link(&p.addresses(), policy.customers, policy.leads) {
                        Some((c, rule)) => (Some(c), None, rule),
                        None => (None, None, LinkedBy::None),
                    },
                };
                if linked_by == LinkedBy::None && !policy.scan_all {
                    continue;
                }
                let id = Uuid::now_v7();
                new_emails.push(email::Model {
                    id,
                    account_id: place.account_id,
                    message_key: p.key.clone(),
                    message_id: p.message_id,
                    subject: p.subject,
                    from_address: p.from_address,
                    from_name: p.from_name,
                    to_addresses: json!(p.to),
                    cc_addresses: json!(p.cc),
                    sent_at: p.sent_at,
                    text_body: p.text,
                    html_body: p.html,
                    attachments: p.attachments,
                    raw: (!f.headers_only).then(|| f.bytes.clone()),
                    headers_only: f.headers_only,
                    size: f.size,
                    in_reply_to: p.in_reply_to,
                    references: json!(p.references),
                    contact_id,
                    project_id,
                    linked_by,
                    created_at: now,
                });
                seen_in_batch.insert(p.key.clone(), id);
                // A reply later in the same batch follows this one.
                if contact_id.is_some() || project_id.is_some() {
                    thread_links.insert(p.key.clone(), (contact_id, project_id));
                }
                id
            }
        };
        locations.push(email_location::Model {
            email_id: id,
            mailbox_id: place.mailbox_id,
            folder: place.folder.to_string(),
            uidvalidity: place.uidvalidity,
            uid: f.uid,
            account_id: place.account_id,
        });
    }
    // Another worker may archive the same message (another mailbox of the account) at the same
    // moment: the unique key decides, and the loser's locations point at the winner's row.
    for chunk in new_emails.chunks(100) {
        email::Entity::insert_many(chunk.iter().cloned().map(sea_orm::IntoActiveModel::into_active_model))
            .on_conflict(OnConflict::columns([email::Column::AccountId, email::Column::MessageKey]).do_nothing().to_owned())
            .exec_without_returning(txn)
            .await?;
    }
    let mut stored = Vec::with_capacity(new_emails.len());
    if !new_emails.is_empty() {
        let winners = keys_to_ids(txn, place.account_id, new_emails.iter().map(|e| e.message_key.clone()).collect()).await?;
        for e in new_emails {
            match winners.get(&e.message_key) {
                Some(id) if *id == e.id => stored.push(e),
                Some(winner) => {
                    for l in locations.iter_mut().filter(|l| l.email_id == e.id) {
                        l.email_id = *winner;
                    }
                }
                None => {}
            }
        }
    }
    for chunk in locations.chunks(500) {
        email_location::Entity::insert_many(chunk.iter().cloned().map(sea_orm::IntoActiveModel::into_active_model))
            .on_conflict(
                OnConflict::columns([
                    email_location::Column::MailboxId,
                    email_location::Column::Folder,
                    email_location::Column::Uidvalidity,
                    email_location::Column::Uid,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(Stored { new: stored })
}

/// New emails after which a bulk load considers refreshing the archive's statistics.
const REFRESH_AFTER: usize = 1000;

/// Keeps PostgreSQL's statistics of the archive in step with a bulk load.
///
/// The key look-ups of a scan are planned from the statistics. A first sync into a young
/// archive outgrows them within seconds, long before autovacuum's next round, and the
/// planner, still believing the table nearly empty, reads every email of the account to
/// answer each look-up, so every batch of the sync gets slower as the archive grows.
/// A load that has more than doubled the table (and added at least [`REFRESH_AFTER`]) runs
/// ANALYZE once; from then on the planner scales the estimate with the table's size.
#[derive(Debug)]
pub struct Statistics {
    /// The table's row estimate when the load began; `None` where there is nothing to keep
    /// (SQLite plans these look-ups on the unique index regardless).
    rows_at_start: Option<f64>,
    inserted: usize,
    refreshed: bool,
}

impl Statistics {
    pub async fn read(db: &impl ConnectionTrait) -> ApiResult<Self> {
        let rows_at_start = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                let row = db
                    .query_one(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        "SELECT reltuples::float8 AS n FROM pg_class WHERE oid = to_regclass('email')",
                    ))
                    .await?;
                // Never analyzed: -1.
                Some(row.and_then(|r| r.try_get::<f64>("", "n").ok()).unwrap_or(0.0).max(0.0))
            }
            _ => None,
        };
        Ok(Self { rows_at_start, inserted: 0, refreshed: false })
    }

    /// Counts `n` newly archived emails, and refreshes the statistics when they are stale.
    /// Best effort: a database user that may not ANALYZE (not the tables' owner) only loses
    /// the speed, never the scan.
    pub async fn archived(&mut self, db: &impl ConnectionTrait, n: usize) {
        let Some(rows) = self.rows_at_start else { return };
        self.inserted += n;
        if !self.refreshed && self.inserted >= REFRESH_AFTER && self.inserted as f64 > rows {
            self.refreshed = true;
            match db.execute_unprepared("ANALYZE email, email_location").await {
                Ok(_) => tracing::debug!(inserted = self.inserted, rows_before = rows, "archive statistics refreshed during a bulk load"),
                Err(e) => tracing::warn!(error = %e, "could not refresh the archive's statistics; scans go on, slower"),
            }
        }
    }
}

/// The project an archived email is linked to (in the email's account).
pub async fn project_of(db: &impl ConnectionTrait, email: &email::Model, project_id: Uuid) -> ApiResult<Option<entity::project::Model>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    Ok(entity::project::Entity::find_by_id(project_id).filter(entity::project::Column::AccountId.eq(email.account_id)).one(db).await?)
}

/// Where an archived email was found: every mailbox and folder (the caller keeps those it
/// may see).
pub async fn locations(db: &impl ConnectionTrait, email: &email::Model) -> ApiResult<Vec<email_location::Model>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    Ok(email_location::Entity::find().filter(email_location::Column::EmailId.eq(email.id)).all(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> Directory {
        let (globex, initech, lead, shared_a, shared_b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(4), Uuid::from_u128(5));
        let mut d = Directory::default();
        d.customer_main.insert("buyer@globex.example".into(), globex);
        d.customer_person.insert("cto@initech.example".into(), initech);
        d.lead_main.insert("hello@prospect.example".into(), lead);
        d.customer_domain.insert("globex.example".into(), Some(globex));
        d.customer_domain.insert("gmail.com".into(), Some(initech));
        d.customer_domain.insert("shared.example".into(), None);
        d.own_domains.insert("acme.example".into());
        let _ = (shared_a, shared_b);
        d
    }

    #[test]
    fn rules_apply_in_order_over_sender_and_recipients() {
        let d = directory();
        let a = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // A contact's email beats a main email of another record only by rule order.
        assert_eq!(
            d.link(&a(&["me@acme.example", "cto@initech.example", "buyer@globex.example"]), true, true),
            Some((Uuid::from_u128(1), LinkedBy::CustomerMainEmail))
        );
        assert_eq!(d.link(&a(&["me@acme.example", "cto@initech.example"]), true, true), Some((Uuid::from_u128(2), LinkedBy::CustomerContactEmail)));
        assert_eq!(d.link(&a(&["hello@prospect.example"]), true, true), Some((Uuid::from_u128(3), LinkedBy::LeadMainEmail)));
        assert_eq!(d.link(&a(&["hello@prospect.example"]), true, false), None, "leads only when syncing leads");
        assert_eq!(d.link(&a(&["buyer@globex.example"]), false, true), None, "customers only when syncing clients");
        assert_eq!(d.link(&a(&["someone@globex.example"]), true, true), Some((Uuid::from_u128(1), LinkedBy::CustomerDomain)));
        assert_eq!(d.link(&a(&["someone@gmail.com"]), true, true), None, "public providers never match by domain");
        assert_eq!(d.link(&a(&["someone@shared.example"]), true, true), None, "a shared domain matches none");
        assert_eq!(d.link(&a(&["colleague@acme.example"]), true, true), None);
    }

    #[test]
    fn keys_prefer_the_message_id_and_fall_back_to_a_hash() {
        assert_eq!(message_key(Some("<abc@x>"), b"1"), "mid:abc@x");
        assert_eq!(message_key(Some("abc@x"), b"2"), "mid:abc@x");
        assert!(message_key(None, b"raw").starts_with("sha256:"));
        assert_eq!(message_key(None, b"raw"), message_key(Some("  "), b"raw"));
    }
}
