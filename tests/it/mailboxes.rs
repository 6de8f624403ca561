//! Users' IMAP mailboxes against a real Dovecot on loopback: the connection test and what it
//! answers, saving only tested settings, the write-only password, one main mailbox per user,
//! and who may see and change whose mailboxes.

use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, TestApp, TestImap};

const ANN: (&str, &str) = ("ann@acme.example", "ann-secret");
const TEST: &str =
    "mutation($i: TestMailboxConnectionInput!) { testMailboxConnection(input: $i) { ok failure { reason message } folders { path name selectable } } }";
const CREATE: &str = "mutation($i: CreateMailboxInput!) { createMailbox(input: $i) { mailbox { id emailAddress username passwordSet host port security state main directories version user { id } } } }";

fn typed(imap: &TestImap, password: &str) -> Value {
    json!({"emailAddress": ANN.0, "host": "127.0.0.1", "port": imap.port, "security": "NONE", "password": password})
}

async fn panel_types(app: &TestApp, token: &str) -> Vec<String> {
    let body = app.gql(Some(token), "{ notifications(first: 50) { edges { node { type } } } }", json!({})).await;
    body["data"]["notifications"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["type"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_tested_mailbox_is_saved_with_its_folders_and_a_write_only_password() {
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    {
        let mut session = imap.session(ANN.0, ANN.1).await;
        for folder in ["Clients", "Clients.R&AOk-sum&AOk-", "Archive"] {
            session.create(folder).await.unwrap();
        }
        session.logout().await.unwrap();
    }
    let (user, token) = app.user("Ann Inbox", "USER").await;
    // Test Inbox Read is off by default (not a starred type): Ann wants to see it.
    app.switch_on(&token, "TEST_INBOX_READ", "SYSTEM").await;

    let body = app.gql(Some(&token), TEST, json!({"i": typed(&imap, ANN.1)})).await;
    let result = &body["data"]["testMailboxConnection"];
    assert_eq!(result["ok"], true, "{body:#}");
    let folders = result["folders"].as_array().unwrap();
    assert_eq!(folders[0]["path"], "INBOX", "INBOX first: {folders:?}");
    let resume = folders.iter().find(|f| f["path"] == "Clients.R&AOk-sum&AOk-").expect("the UTF-7 folder is listed");
    assert_eq!(resume["name"], "Clients.Résumé", "names are decoded from modified UTF-7");
    assert!(panel_types(&app, &token).await.contains(&"TEST_INBOX_READ".to_string()), "a successful test raises Test Inbox Read");

    let mut input = typed(&imap, ANN.1);
    input["directories"] = json!(["INBOX", "Clients.R&AOk-sum&AOk-"]);
    input["main"] = json!(true);
    let body = app.gql(Some(&token), CREATE, json!({"i": input})).await;
    let mailbox = &body["data"]["createMailbox"]["mailbox"];
    assert_eq!(mailbox["state"], "CONNECTED", "{body:#}");
    assert_eq!(mailbox["passwordSet"], true);
    assert_eq!(mailbox["user"]["id"], user.as_str());
    assert_eq!(mailbox["directories"], json!(["INBOX", "Clients.R&AOk-sum&AOk-"]));
    assert_eq!(mailbox["port"], imap.port);
    assert!(!body.to_string().contains(ANN.1), "the password never comes back");

    // Sealed at rest.
    let rows =
        app.state.db.query_all(sea_orm::Statement::from_string(app.state.db.get_database_backend(), "SELECT password FROM mailbox".to_string())).await.unwrap();
    let stored: String = rows[0].try_get("", "password").unwrap();
    assert!(stored.starts_with("v1.") && !stored.contains(ANN.1));

    // The stored mailbox tests with its stored password.
    let body = app.gql(Some(&token), TEST, json!({"i": {"mailboxId": mailbox["id"]}})).await;
    assert_eq!(body["data"]["testMailboxConnection"]["ok"], true, "{body:#}");
    imap.stop().await;
}

#[tokio::test]
async fn failed_tests_say_why_and_refuse_the_save_unless_told_not_to_test() {
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    let (_, token) = app.user("Ann Inbox", "USER").await;
    let reason = |body: &Value| body["data"]["testMailboxConnection"]["failure"]["reason"].as_str().map(String::from);

    let body = app.gql(Some(&token), TEST, json!({"i": typed(&imap, "wrong")})).await;
    assert_eq!(reason(&body).as_deref(), Some("AUTHENTICATION"), "{body:#}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut input = typed(&imap, ANN.1);
    input["port"] = json!(closed);
    let body = app.gql(Some(&token), TEST, json!({"i": input})).await;
    assert_eq!(reason(&body).as_deref(), Some("CONNECTION_REFUSED"), "{body:#}");

    // Implicit TLS against a plain port, and STARTTLS on a server that does not offer it.
    for security in ["TLS", "STARTTLS"] {
        let mut input = typed(&imap, ANN.1);
        input["security"] = json!(security);
        let body = app.gql(Some(&token), TEST, json!({"i": input})).await;
        assert_eq!(reason(&body).as_deref(), Some("TLS"), "{security}: {body:#}");
    }

    let mut input = typed(&imap, ANN.1);
    input["host"] = json!("imap.herald-test.invalid");
    let body = app.gql(Some(&token), TEST, json!({"i": input})).await;
    let got = reason(&body).unwrap();
    assert!(got == "NAME_RESOLUTION" || got == "TIMEOUT", "{body:#}");

    // Saving untested-bad settings is refused, naming the field to fix.
    let body = app.gql(Some(&token), CREATE, json!({"i": typed(&imap, "wrong")})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.password", "{body:#}");
    let data = app.gql(Some(&token), "{ mailboxes { id } }", json!({})).await;
    assert_eq!(data["data"]["mailboxes"], json!([]), "nothing was saved");

    // …unless told not to test: then it waits as NEW.
    let mut input = typed(&imap, "wrong");
    input["skipTest"] = json!(true);
    let body = app.gql(Some(&token), CREATE, json!({"i": input})).await;
    assert_eq!(body["data"]["createMailbox"]["mailbox"]["state"], "NEW", "{body:#}");
    imap.stop().await;
}

#[tokio::test]
async fn one_main_mailbox_per_user_and_only_owners_and_admins_manage_them() {
    let app = spawn_app().await;
    let (ann, ann_token) = app.user("Ann Inbox", "USER").await;
    let (_, bob_token) = app.user("Bob Other", "USER").await;
    let create = |address: &str| json!({"i": {"emailAddress": address, "host": "imap.acme.example", "security": "TLS", "password": "p", "main": true, "skipTest": true}});
    let first = app.gql(Some(&ann_token), CREATE, create("ann@acme.example")).await["data"]["createMailbox"]["mailbox"].clone();
    let second = app.gql(Some(&ann_token), CREATE, create("ann.private@acme.example")).await["data"]["createMailbox"]["mailbox"].clone();
    assert_eq!((first["port"].as_i64(), second["main"].as_bool()), (Some(993), Some(true)));
    let data = app.gql(Some(&ann_token), "{ mailboxes { emailAddress main } }", json!({})).await;
    assert_eq!(
        data["data"]["mailboxes"],
        json!([{"emailAddress": "ann@acme.example", "main": false}, {"emailAddress": "ann.private@acme.example", "main": true}])
    );

    // The same address twice for one user is a conflict.
    let body = app.gql(Some(&ann_token), CREATE, create("ann@acme.example")).await;
    assert_eq!(error_code(&body), Some("CONFLICT"));

    // Bob sees none of Ann's and cannot change them; the admin can.
    let data = app.gql(Some(&bob_token), "{ mailboxes { id } }", json!({})).await;
    assert_eq!(data["data"]["mailboxes"], json!([]));
    let body = app.gql(Some(&bob_token), "query($id: ID!) { mailbox(id: $id) { id } }", json!({"id": first["id"]})).await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"));
    let update = "mutation($i: UpdateMailboxInput!) { updateMailbox(input: $i) { mailbox { scanActive version state } } }";
    let body = app.gql(Some(&bob_token), update, json!({"i": {"id": first["id"], "scanActive": false}})).await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"));
    let data = app.admin(update, json!({"i": {"id": first["id"], "scanActive": false, "expectedVersion": 1}})).await;
    assert_eq!(data["updateMailbox"]["mailbox"], json!({"scanActive": false, "version": 2, "state": "NEW"}));
    let data = app.admin("query($u: ID) { mailboxes(userId: $u) { id } }", json!({"u": ann})).await;
    assert_eq!(data["mailboxes"].as_array().unwrap().len(), 2);
    let body = app
        .gql(Some(&ann_token), "mutation($i: DeleteMailboxInput!) { deleteMailbox(input: $i) { deletedMailboxId } }", json!({"i": {"id": first["id"]}}))
        .await;
    assert_eq!(body["data"]["deleteMailbox"]["deletedMailboxId"], first["id"]);
}

// --- archiving ----------------------------------------------------------------------------------

const REPORT: &str = "query($f: SyncedEmailFilter) { syncedEmails(first: 100, filter: $f) { nodes { id messageId subject fromAddress to linkedBy headersOnly attachments textBody contact { id name } locations { folder mailbox { id } } } } }";

fn message(id: Option<&str>, from: &str, to: &str, subject: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    let mid = id.map(|i| format!("Message-ID: <{i}>\r\n")).unwrap_or_default();
    format!("{mid}From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n{extra_headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")
        .into_bytes()
}

async fn contact(app: &TestApp, kind: &str, name: &str, main: Option<&str>) -> String {
    let data = app
        .admin(
            "mutation($i: CreateContactInput!) { createContact(input: $i) { contact { id } } }",
            json!({"i": {"kind": kind, "name": name, "mainEmail": main}}),
        )
        .await;
    data["createContact"]["contact"]["id"].as_str().unwrap().to_string()
}

async fn person(app: &TestApp, contact: &str, email: &str) {
    app.admin(
        "mutation($i: CreateContactPersonInput!) { createContactPerson(input: $i) { contactPerson { id } } }",
        json!({"i": {"contactId": contact, "name": "Person", "email": email}}),
    )
    .await;
}

async fn add_mailbox(app: &TestApp, token: &str, imap: &TestImap, extra: Value) -> Value {
    let mut input = typed(imap, ANN.1);
    input["directories"] = json!(["INBOX", "Archive"]);
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    let body = app.gql(Some(token), CREATE, json!({"i": input})).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    body["data"]["createMailbox"]["mailbox"].clone()
}

async fn report(app: &TestApp, filter: Value) -> Vec<Value> {
    app.admin(REPORT, json!({"f": filter})).await["syncedEmails"]["nodes"].as_array().unwrap().clone()
}

fn by_subject<'a>(emails: &'a [Value], subject: &str) -> &'a Value {
    emails.iter().find(|e| e["subject"] == subject).unwrap_or_else(|| panic!("no {subject:?} in {emails:#?}"))
}

#[tokio::test]
async fn a_scan_archives_new_mail_linked_by_the_rules_in_order_without_touching_the_server() {
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    let globex = contact(&app, "CUSTOMER", "Globex", Some("buyer@globex.example")).await;
    let initech = contact(&app, "CUSTOMER", "Initech", Some("info@initech.example")).await;
    person(&app, &initech, "cto@initech.example").await;
    let prospect = contact(&app, "LEAD", "Prospect", Some("hello@prospect.example")).await;
    let lead2 = contact(&app, "LEAD", "Quiet lead", None).await;
    person(&app, &lead2, "boss@quiet.example").await;
    contact(&app, "CUSTOMER", "Shared A", Some("a@shared.example")).await;
    contact(&app, "CUSTOMER", "Shared B", Some("b@shared.example")).await;
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.create("Archive").await.unwrap();
        let me = ANN.0;
        let mails = [
            message(Some("m1@globex"), "buyer@globex.example", me, "main email", "", "Hello"),
            // Both a contact's address and a main email: the main-email rule comes first.
            message(Some("m2@x"), "cto@initech.example", &format!("{me}, buyer@globex.example"), "two rules", "", "Hi"),
            message(Some("m3@initech"), me, "cto@initech.example", "contact email as recipient", "", "Hi"),
            message(Some("m4@p"), "hello@prospect.example", me, "lead main", "", "Hi"),
            message(Some("m5@q"), "boss@quiet.example", me, "lead contact", "", "Hi"),
            message(Some("m6@g"), "someone@globex.example", me, "customer domain", "", "Hi"),
            message(Some("m7@s"), "x@shared.example", me, "shared domain", "", "Hi"),
            message(Some("m8@gm"), "friend@gmail.com", me, "public domain", "", "Hi"),
            message(Some("m9@gm"), "friend@gmail.com", me, "Re: main email", "In-Reply-To: <m1@globex>\r\n", "Thanks"),
            // No Message-ID, and a Latin-1 body.
            b"From: buyer@globex.example\r\nTo: ann@acme.example\r\nSubject: latin\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9 cr\xe8me\r\n".to_vec(),
            b"this is not a mail at all\r\n\r\n\xff\xfe".to_vec(),
        ];
        for m in &mails {
            s.append("INBOX", None, None, m).await.unwrap();
        }
        // The same message in a second folder is stored once.
        s.append("Archive", None, None, &mails[0]).await.unwrap();
        s.logout().await.unwrap();
    }
    let (_, token) = app.user("Ann Inbox", "USER").await;
    add_mailbox(&app, &token, &imap, json!({})).await;
    // Ann wants Email Received in her panel (off by default: not a starred type).
    app.switch_on(&token, "EMAIL_RECEIVED", "SYSTEM").await;

    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    let report_ = worker.tick().await.unwrap();
    assert_eq!(report_.synced.mailboxes, 1, "{report_:?}");
    let emails = report(&app, json!({})).await;
    let linked = |subject: &str| {
        let e = by_subject(&emails, subject);
        (e["contact"]["id"].as_str().map(String::from), e["linkedBy"].as_str().unwrap().to_string())
    };
    assert_eq!(linked("main email"), (Some(globex.clone()), "CUSTOMER_MAIN_EMAIL".into()));
    assert_eq!(linked("two rules"), (Some(globex.clone()), "CUSTOMER_MAIN_EMAIL".into()));
    assert_eq!(linked("contact email as recipient"), (Some(initech.clone()), "CUSTOMER_CONTACT_EMAIL".into()));
    assert_eq!(linked("lead main"), (Some(prospect.clone()), "LEAD_MAIN_EMAIL".into()));
    assert_eq!(linked("lead contact"), (Some(lead2.clone()), "LEAD_CONTACT_EMAIL".into()));
    assert_eq!(linked("customer domain"), (Some(globex.clone()), "CUSTOMER_DOMAIN".into()));
    assert_eq!(linked("Re: main email"), (Some(globex.clone()), "THREAD".into()));
    let latin = by_subject(&emails, "latin");
    assert!(latin["textBody"].as_str().unwrap().contains("Café crème"), "{latin:#}");
    assert!(latin["messageId"].is_null());
    assert!(emails.iter().all(|e| e["subject"] != "shared domain" && e["subject"] != "public domain"), "unmatched mail is not archived without scan-all");
    let main = by_subject(&emails, "main email");
    let mut folders: Vec<_> = main["locations"].as_array().unwrap().iter().map(|l| l["folder"].as_str().unwrap().to_string()).collect();
    folders.sort();
    assert_eq!(folders, vec!["Archive", "INBOX"], "stored once, found in two folders");
    assert_eq!(emails.len(), 8);

    // Read-only: nothing was marked \Seen.
    {
        use futures_util::TryStreamExt;
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.examine("INBOX").await.unwrap();
        let fetched: Vec<_> = s.fetch("1:*", "FLAGS").await.unwrap().try_collect().await.unwrap();
        assert!(fetched.iter().all(|f| !f.flags().any(|fl| matches!(fl, async_imap::types::Flag::Seen))));
        s.logout().await.unwrap();
    }

    // Connecting a mailbox does not announce the mail it already held.
    assert!(!panel_types(&app, &token).await.contains(&"EMAIL_RECEIVED".to_string()));

    // A rescan finds nothing new and archives nothing twice.
    let report_ = worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    assert_eq!((report_.synced.mailboxes, report_.synced.archived), (1, 0), "{report_:?}");
    assert_eq!(report(&app, json!({})).await.len(), 8);
    imap.stop().await;
}

#[tokio::test]
async fn scan_all_manual_links_tombstones_flags_and_huge_messages() {
    let app = crate::helpers::spawn_with(|c| c.worker.mailbox_body_limit = 4_000).await;
    let imap = TestImap::start(&[ANN]).await;
    let globex = contact(&app, "CUSTOMER", "Globex", Some("buyer@globex.example")).await;
    let prospect = contact(&app, "LEAD", "Prospect", Some("hello@prospect.example")).await;
    app.admin("mutation { changeEmailSettings(input: {expectedVersion: 0, scanAll: true}) { emailSettings { scanAll version } } }", json!({})).await;
    let huge_body = "x".repeat(10_000);
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.create("Archive").await.unwrap();
        for m in [
            message(Some("a@1"), "stranger@unknown.example", ANN.0, "stranger", "", "Hi"),
            message(Some("a@2"), "hello@prospect.example", ANN.0, "lead but leads off", "", "Hi"),
            message(Some("a@3"), "buyer@globex.example", ANN.0, "huge", "", &huge_body),
        ] {
            s.append("INBOX", None, None, &m).await.unwrap();
        }
        s.logout().await.unwrap();
    }
    let (ann, token) = app.user("Ann Inbox", "USER").await;
    let mailbox = add_mailbox(&app, &token, &imap, json!({"syncLeads": false})).await;
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    worker.tick().await.unwrap();

    let emails = report(&app, json!({})).await;
    assert_eq!(emails.len(), 3, "scan-all archives unmatched mail too: {emails:#?}");
    assert_eq!(by_subject(&emails, "stranger")["linkedBy"], "NONE");
    assert_eq!(by_subject(&emails, "lead but leads off")["contact"], Value::Null, "no lead links when leads are not synced");
    let huge = by_subject(&emails, "huge");
    assert_eq!((huge["headersOnly"].as_bool(), huge["textBody"].as_str()), (Some(true), None));
    assert_eq!(huge["contact"]["id"], globex.as_str(), "headers are enough to link");
    assert_eq!(report(&app, json!({"linked": false})).await.len(), 2);

    // A manual assignment, audited, and never undone by a scan.
    let stranger = by_subject(&emails, "stranger")["id"].clone();
    let data = app
        .admin(
            "mutation($i: AssignEmailInput!) { assignEmail(input: $i) { email { linkedBy contact { id } } } }",
            json!({"i": {"emailId": stranger, "contactId": prospect}}),
        )
        .await;
    assert_eq!(data["assignEmail"]["email"]["linkedBy"], "MANUAL");
    // Deleted from the archive: the same message in another folder does not bring it back.
    let lead = by_subject(&emails, "lead but leads off")["id"].clone();
    app.admin("mutation($i: DeleteArchivedEmailInput!) { deleteArchivedEmail(input: $i) { deletedEmailId } }", json!({"i": {"emailId": lead}})).await;
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.append("Archive", None, None, message(Some("a@2"), "hello@prospect.example", ANN.0, "lead but leads off", "", "Hi")).await.unwrap();
        s.append("Archive", None, None, message(Some("a@1"), "stranger@unknown.example", ANN.0, "stranger", "", "Hi")).await.unwrap();
        s.logout().await.unwrap();
    }
    worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    let emails = report(&app, json!({})).await;
    assert_eq!(emails.len(), 2, "{emails:#?}");
    assert_eq!(by_subject(&emails, "stranger")["contact"]["id"], prospect.as_str(), "the manual link stands");
    let audit = app.admin("{ auditLog(first: 10) { nodes { action } } }", json!({})).await;
    assert!(audit.to_string().contains("email.assigned") && audit.to_string().contains("email.deleted"));

    // Assigned to a project of Globex's, and found by the report's other filters.
    let project = app
        .admin("mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }", json!({"i": {"name": "Rollout", "customerId": globex}}))
        .await["createProject"]["project"]["id"]
        .clone();
    let huge = by_subject(&emails, "huge")["id"].clone();
    let data = app
        .admin("mutation($i: AssignEmailInput!) { assignEmail(input: $i) { email { project { id } } } }", json!({"i": {"emailId": huge, "projectId": project}}))
        .await;
    assert_eq!(data["assignEmail"]["email"]["project"]["id"], project);
    let subjects = |filter: Value| {
        let app = &app;
        async move {
            let mut found: Vec<String> = report(app, filter).await.iter().map(|e| e["subject"].as_str().unwrap().to_string()).collect();
            found.sort();
            found
        }
    };
    assert_eq!(subjects(json!({"projectId": project})).await, ["huge"]);
    assert_eq!(subjects(json!({"contactId": prospect})).await, ["stranger"]);
    assert_eq!(subjects(json!({"mailboxId": mailbox["id"]})).await, ["huge", "stranger"]);
    assert_eq!(subjects(json!({"userId": ann})).await, ["huge", "stranger"]);
    let (other, _) = app.user("Otto Other", "USER").await;
    assert!(subjects(json!({"userId": other})).await.is_empty());
    // Every message here was sent on 23 November 2026 at 10:00 UTC.
    assert_eq!(subjects(json!({"sentAfter": "2026-11-23T09:00:00Z", "sentBefore": "2026-11-23T11:00:00Z"})).await, ["huge", "stranger"]);
    assert!(subjects(json!({"sentAfter": "2026-11-23T11:00:00Z"})).await.is_empty());
    assert!(subjects(json!({"sentBefore": "2026-11-23T09:00:00Z"})).await.is_empty());
    imap.stop().await;
}

#[tokio::test]
async fn a_refused_login_stops_the_mailbox_and_tells_its_owner_once() {
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    let (_, token) = app.user("Ann Inbox", "USER").await;
    let mut input = typed(&imap, "wrong");
    input["skipTest"] = json!(true);
    let id = app.gql(Some(&token), CREATE, json!({"i": input})).await["data"]["createMailbox"]["mailbox"]["id"].clone();
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    worker.tick().await.unwrap();
    let state = app.gql(Some(&token), "query($id: ID!) { mailbox(id: $id) { state lastError lastScanAt } }", json!({"id": id})).await;
    assert_eq!(state["data"]["mailbox"]["state"], "AUTH_FAILED", "{state:#}");
    let report_ = worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(2)).await.unwrap();
    assert_eq!(report_.synced.mailboxes, 0, "no retries until the settings change");
    let errors = panel_types(&app, &token).await.into_iter().filter(|t| t == "SYSTEM_ERROR_INFORMATION").count();
    assert_eq!(errors, 1);

    // Fixing the password (tested on save) starts it again.
    let data = app
        .gql(Some(&token), "mutation($i: UpdateMailboxInput!) { updateMailbox(input: $i) { mailbox { state } } }", json!({"i": {"id": id, "password": ANN.1}}))
        .await;
    assert_eq!(data["data"]["updateMailbox"]["mailbox"]["state"], "CONNECTED", "{data:#}");
    assert_eq!(worker.tick().await.unwrap().synced.mailboxes, 1);
    imap.stop().await;
}

#[tokio::test]
async fn a_rebuilt_folder_resyncs_without_duplicates() {
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    contact(&app, "CUSTOMER", "Globex", Some("buyer@globex.example")).await;
    let mails: Vec<_> = (1..=3).map(|i| message(Some(&format!("r{i}@globex")), "buyer@globex.example", ANN.0, &format!("mail {i}"), "", "Hi")).collect();
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.create("Archive").await.unwrap();
        for m in &mails[..2] {
            s.append("Archive", None, None, m).await.unwrap();
        }
        s.logout().await.unwrap();
    }
    let (_, token) = app.user("Ann Inbox", "USER").await;
    add_mailbox(&app, &token, &imap, json!({})).await;
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    worker.tick().await.unwrap();
    assert_eq!(report(&app, json!({})).await.len(), 2);
    // The folder is deleted and rebuilt (a new UIDVALIDITY) with one more message.
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.delete("Archive").await.unwrap();
        s.create("Archive").await.unwrap();
        for m in &mails {
            s.append("Archive", None, None, m).await.unwrap();
        }
        s.logout().await.unwrap();
    }
    worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    let emails = report(&app, json!({"folder": "Archive"})).await;
    assert_eq!(emails.len(), 3, "{emails:#?}");
    imap.stop().await;
}

/// The folder's HIGHESTMODSEQ as the server reports it (Dovecot has CONDSTORE).
async fn server_modseq(imap: &TestImap, folder: &str) -> String {
    let mut s = imap.session(ANN.0, ANN.1).await;
    let status = s.status(folder, "(HIGHESTMODSEQ)").await.unwrap();
    s.logout().await.unwrap();
    status.highest_modseq.expect("Dovecot reports HIGHESTMODSEQ").to_string()
}

async fn folder_states(app: &TestApp, token: &str, mailbox: &Value) -> Vec<Value> {
    let body = app
        .gql(
            Some(token),
            "query($id: ID!) { mailbox(id: $id) { folderStates { path name uidValidity lastUid highestModseq lastError updatedAt } } }",
            json!({"id": mailbox["id"]}),
        )
        .await;
    body["data"]["mailbox"]["folderStates"].as_array().unwrap_or_else(|| panic!("{body:#}")).clone()
}

/// On a server with CONDSTORE each folder's HIGHESTMODSEQ is recorded after a complete scan
/// and shown in the folder's state; a change that brings no mail (a flag set by the user's
/// mail client) archives nothing and moves the record on; an unchanged folder is left as it
/// was; new mail is still found.
#[tokio::test]
async fn condstore_records_each_folders_modseq_and_new_mail_is_still_found() {
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    contact(&app, "CUSTOMER", "Globex", Some("buyer@globex.example")).await;
    let mails: Vec<_> = (1..=3).map(|i| message(Some(&format!("c{i}@globex")), "buyer@globex.example", ANN.0, &format!("mail {i}"), "", "Hi")).collect();
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.create("Archive").await.unwrap();
        for m in &mails[..2] {
            s.append("INBOX", None, None, m).await.unwrap();
        }
        s.logout().await.unwrap();
    }
    let (_, token) = app.user("Ann Inbox", "USER").await;
    let mailbox = add_mailbox(&app, &token, &imap, json!({})).await;
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    let done = worker.tick().await.unwrap();
    assert_eq!((done.synced.archived, done.synced.linked), (2, 2), "{done:?}");

    let states = folder_states(&app, &token, &mailbox).await;
    assert_eq!(states.iter().map(|f| f["path"].as_str().unwrap()).collect::<Vec<_>>(), ["Archive", "INBOX"]);
    let inbox = states[1].clone();
    assert_eq!(inbox["lastUid"], "2");
    assert!(inbox["lastError"].is_null());
    assert_eq!(inbox["highestModseq"].as_str().unwrap(), server_modseq(&imap, "INBOX").await);
    assert_eq!(states[0]["highestModseq"].as_str().unwrap(), server_modseq(&imap, "Archive").await);

    // Nothing changed: nothing archived, nothing rewritten.
    let done = worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    assert_eq!((done.synced.mailboxes, done.synced.archived), (1, 0), "{done:?}");
    assert_eq!(folder_states(&app, &token, &mailbox).await[1], inbox, "an unchanged folder is left as it was");

    // The user flags a message in their mail client: the folder changed, but brought no mail.
    {
        use futures_util::TryStreamExt;
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.select("INBOX").await.unwrap();
        let _: Vec<_> = s.uid_store("1", "+FLAGS (\\Flagged)").await.unwrap().try_collect().await.unwrap();
        s.logout().await.unwrap();
    }
    let flagged = server_modseq(&imap, "INBOX").await;
    assert_ne!(flagged, inbox["highestModseq"].as_str().unwrap(), "the server moved the folder's mod-sequence on");
    let done = worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(2)).await.unwrap();
    assert_eq!(done.synced.archived, 0, "{done:?}");
    let after = folder_states(&app, &token, &mailbox).await[1].clone();
    assert_eq!((after["lastUid"].as_str(), after["highestModseq"].as_str()), (Some("2"), Some(flagged.as_str())));

    // New mail is found.
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.append("INBOX", None, None, &mails[2]).await.unwrap();
        s.logout().await.unwrap();
    }
    let done = worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(3)).await.unwrap();
    assert_eq!((done.synced.archived, done.synced.linked), (1, 1), "{done:?}");
    let after = folder_states(&app, &token, &mailbox).await[1].clone();
    assert_eq!(after["lastUid"], "3");
    assert_eq!(after["highestModseq"].as_str().unwrap(), server_modseq(&imap, "INBOX").await);
    assert_eq!(report(&app, json!({})).await.len(), 3);
    imap.stop().await;
}

#[tokio::test]
async fn a_folder_whose_uidvalidity_keeps_changing_pauses_the_mailbox() {
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    let (_, token) = app.user("Ann Inbox", "USER").await;
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.create("Archive").await.unwrap();
        s.logout().await.unwrap();
    }
    let mailbox = add_mailbox(&app, &token, &imap, json!({})).await;
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    let mut at = chrono::Utc::now();
    worker.tick_at(at).await.unwrap();
    for _ in 0..worker::mailsync::MAX_UIDVALIDITY_CHANGES {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.delete("Archive").await.unwrap();
        s.create("Archive").await.unwrap();
        s.logout().await.unwrap();
        at += chrono::Duration::hours(1);
        worker.tick_at(at).await.unwrap();
    }
    let data = app.gql(Some(&token), "query($id: ID!) { mailbox(id: $id) { state lastError } }", json!({"id": mailbox["id"]})).await;
    assert_eq!(data["data"]["mailbox"]["state"], "PAUSED", "{data:#}");
    assert!(data["data"]["mailbox"]["lastError"].as_str().unwrap().contains("UIDVALIDITY"));
    at += chrono::Duration::hours(1);
    assert_eq!(worker.tick_at(at).await.unwrap().synced.mailboxes, 0, "a paused mailbox is not scanned");
    imap.stop().await;
}

/// Two workers tick at the same moment over two mailboxes: each mailbox is scanned by one of
/// them only (the claim is a lease taken with SKIP LOCKED), and every message is archived once.
/// PostgreSQL only: SQLite is the embedded mode with one worker (one writer at a time).
#[tokio::test]
async fn workers_ticking_at_once_never_scan_one_mailbox_twice() {
    if std::env::var("HERALD_TEST_DATABASE_URL").map_or(true, |v| v.is_empty()) {
        eprintln!("skipped on SQLite: concurrent workers need PostgreSQL (CI runs this on PostgreSQL)");
        return;
    }
    const BEN: (&str, &str) = ("ben@acme.example", "ben-secret");
    const N: usize = 300;
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN, BEN]).await;
    app.admin("mutation { changeEmailSettings(input: {expectedVersion: 0, scanAll: true}) { emailSettings { version } } }", json!({})).await;
    for (who, secret) in [ANN, BEN] {
        let mut s = imap.session(who, secret).await;
        s.create("Archive").await.unwrap();
        for i in 0..N {
            let m = message(Some(&format!("{i}.{who}")), &format!("someone{i}@elsewhere.example"), who, &format!("mail {i}"), "", "Hello");
            s.append("INBOX", None, None, m).await.unwrap();
        }
        s.logout().await.unwrap();
    }
    let (_, ann) = app.user("Ann Inbox", "USER").await;
    add_mailbox(&app, &ann, &imap, json!({})).await;
    let (_, ben) = app.user("Ben Inbox", "USER").await;
    let mut input = typed(&imap, BEN.1);
    input["emailAddress"] = json!(BEN.0);
    input["directories"] = json!(["INBOX"]);
    let body = app.gql(Some(&ben), CREATE, json!({"i": input})).await;
    assert!(body.get("errors").is_none(), "{body:#}");

    let (one, two) = (worker::Worker::new(app.state.clone()).await.unwrap(), worker::Worker::new(app.state.clone()).await.unwrap());
    let now = chrono::Utc::now() + chrono::Duration::hours(1);
    let (a, b) = tokio::join!(one.tick_at(now), two.tick_at(now));
    let (a, b) = (a.unwrap().synced, b.unwrap().synced);
    assert_eq!(a.mailboxes + b.mailboxes, 2, "each mailbox scanned once: {a:?} {b:?}");
    use sea_orm::{EntityTrait, PaginatorTrait};
    assert_eq!(entity::email::Entity::find().count(&app.state.db).await.unwrap() as usize, 2 * N);
    assert_eq!(entity::email_location::Entity::find().count(&app.state.db).await.unwrap() as usize, 2 * N);
    // Nothing is due again until the next scan interval: a third tick scans nothing.
    assert_eq!(one.tick_at(now).await.unwrap().synced.mailboxes, 0);
    imap.stop().await;
}

/// A `herald` process is killed with SIGKILL while it archives a large mailbox; another one
/// finishes the scan once the lease has ended. Every message is archived exactly once.
/// PostgreSQL only (two processes on one database).
#[tokio::test]
async fn a_worker_killed_mid_scan_loses_and_duplicates_nothing() {
    if std::env::var("HERALD_TEST_DATABASE_URL").map_or(true, |v| v.is_empty()) {
        eprintln!("skipped on SQLite: two processes need PostgreSQL (CI runs this on PostgreSQL)");
        return;
    }
    const N: usize = 3000;
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    app.admin("mutation { changeEmailSettings(input: {expectedVersion: 0, scanAll: true}) { emailSettings { version } } }", json!({})).await;
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.create("Archive").await.unwrap();
        for i in 0..N {
            let m = message(Some(&format!("k{i}@herald")), &format!("someone{i}@elsewhere.example"), ANN.0, &format!("mail {i}"), "", &"x".repeat(500));
            s.append("INBOX", None, None, m).await.unwrap();
        }
        s.logout().await.unwrap();
    }
    let (_, token) = app.user("Ann Inbox", "USER").await;
    add_mailbox(&app, &token, &imap, json!({})).await;
    let count = || async { sea_orm::PaginatorTrait::count(entity::email::Entity::find(), &app.state.db).await.unwrap() as usize };
    use sea_orm::EntityTrait;
    let spawn = || app.spawn_herald(&[("HERALD_WORKER_POLL_MS", "100"), ("HERALD_MAILBOX_LEASE_SECS", "2")]);
    let (mut first, _d1) = spawn();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while count().await == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let at_kill = count().await;
    assert!(at_kill > 0 && at_kill < N, "killed mid-scan ({at_kill} of {N} archived)");

    let (mut second, _d2) = spawn();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    while count().await < N && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    second.start_kill().unwrap();
    assert_eq!(count().await, N, "every message archived once");
    let locations = sea_orm::PaginatorTrait::count(entity::email_location::Entity::find(), &app.state.db).await.unwrap() as usize;
    assert_eq!(locations, N, "and found once");
    imap.stop().await;
}

/// A first sync is a bulk load: once it has more than doubled the archive (and added at least
/// a thousand emails) it refreshes PostgreSQL's statistics, so that the planner stops
/// treating the table as empty (it read every email of the account for each key look-up).
#[tokio::test]
async fn a_bulk_load_refreshes_the_archive_statistics() {
    if std::env::var("HERALD_TEST_DATABASE_URL").map_or(true, |v| v.is_empty()) {
        eprintln!("skipped on SQLite: table statistics are PostgreSQL's (CI runs this on PostgreSQL)");
        return;
    }
    let app = spawn_app().await;
    let db = &app.state.db;
    let reltuples = || async {
        db.query_one(sea_orm::Statement::from_string(db.get_database_backend(), "SELECT reltuples::float8 AS n FROM pg_class WHERE oid = to_regclass('email')"))
            .await
            .unwrap()
            .unwrap()
            .try_get::<f64>("", "n")
            .unwrap()
    };
    assert_eq!(reltuples().await, -1.0, "a new archive has never been analyzed");
    let mut statistics = api::archive::Statistics::read(db).await.unwrap();
    statistics.archived(db, 999).await;
    assert_eq!(reltuples().await, -1.0, "not below a thousand new emails");
    statistics.archived(db, 1).await;
    assert_eq!(reltuples().await, 0.0, "analyzed: the table is (still) empty");
}

/// A mailbox that does not sync clients leaves customers' mail out of the archive (leads' is
/// still archived and linked); an inactive mailbox is not scanned at all.
#[tokio::test]
async fn sync_clients_off_leaves_customers_unlinked_and_an_inactive_mailbox_is_not_scanned() {
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    contact(&app, "CUSTOMER", "Globex", Some("buyer@globex.example")).await;
    let prospect = contact(&app, "LEAD", "Prospect", Some("hello@prospect.example")).await;
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.create("Archive").await.unwrap();
        for m in [
            message(Some("c1@g"), "buyer@globex.example", ANN.0, "from a customer", "", "Hi"),
            message(Some("l1@p"), "hello@prospect.example", ANN.0, "from a lead", "", "Hi"),
        ] {
            s.append("INBOX", None, None, &m).await.unwrap();
        }
        s.logout().await.unwrap();
    }
    let (_, token) = app.user("Ann Inbox", "USER").await;
    let mailbox = add_mailbox(&app, &token, &imap, json!({"syncClients": false, "scanActive": false})).await;
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    assert_eq!(worker.tick().await.unwrap().synced.mailboxes, 0, "an inactive mailbox is not scanned");
    assert!(report(&app, json!({})).await.is_empty());

    let update = "mutation($i: UpdateMailboxInput!) { updateMailbox(input: $i) { mailbox { scanActive } } }";
    let body = app.gql(Some(&token), update, json!({"i": {"id": mailbox["id"], "scanActive": true, "expectedVersion": mailbox["version"]}})).await;
    assert_eq!(body["data"]["updateMailbox"]["mailbox"]["scanActive"], true, "{body:#}");
    assert_eq!(worker.tick().await.unwrap().synced.mailboxes, 1);
    let emails = report(&app, json!({})).await;
    assert!(emails.iter().all(|e| e["subject"] != "from a customer"), "customers' mail is not synced with syncClients off: {emails:#?}");
    assert_eq!(by_subject(&emails, "from a lead")["contact"]["id"], prospect.as_str());
}

/// A scan that cannot store what it read fails as Herald's storage, not as the mail server:
/// the mailbox says the next scan tries again, and it does, archiving everything.
#[tokio::test]
async fn a_storage_failure_during_a_scan_is_reported_as_storage_and_retried() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    contact(&app, "CUSTOMER", "Globex", Some("buyer@globex.example")).await;
    {
        let mut s = imap.session(ANN.0, ANN.1).await;
        s.append("INBOX", None, None, message(Some("m1@globex"), "buyer@globex.example", ANN.0, "kept", "", "Hello")).await.unwrap();
        s.logout().await.unwrap();
    }
    let (_, token) = app.user("Ann Inbox", "USER").await;
    let mailbox = add_mailbox(&app, &token, &imap, json!({"directories": ["INBOX"]})).await;
    // The archive's table is away while the worker scans.
    app.state.db.execute_unprepared("ALTER TABLE email_location RENAME TO email_location_away").await.unwrap();
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    worker.tick().await.unwrap();
    let query = "query($id: ID!) { mailbox(id: $id) { state lastError } }";
    let state = app.gql(Some(&token), query, json!({"id": mailbox["id"]})).await;
    assert_eq!(state["data"]["mailbox"]["state"], "ERROR", "{state:#}");
    let error = state["data"]["mailbox"]["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("could not store") && !error.contains("archiving"), "the mailbox is not blamed: {error}");

    app.state.db.execute_unprepared("ALTER TABLE email_location_away RENAME TO email_location").await.unwrap();
    let report = worker.tick_at(chrono::Utc::now() + chrono::Duration::minutes(10)).await.unwrap();
    assert_eq!(report.synced.archived, 1, "the next scan archives the message");
    let state = app.gql(Some(&token), query, json!({"id": mailbox["id"]})).await;
    assert_eq!(state["data"]["mailbox"]["state"], "CONNECTED", "{state:#}");
    imap.stop().await;
}

/// Email Received as the Control matrix means it: for new mail arriving in the inbox (not the
/// mail a mailbox held before its first sync), with System on for every new message, with AU
/// on only for mail linked to a contact the owner is assigned to, and Email AU only then too;
/// a burst from one customer folds into one panel row.
#[tokio::test]
async fn email_received_follows_the_owners_switches_and_folds_per_contact() {
    let app = spawn_app().await;
    let imap = TestImap::start(&[ANN]).await;
    let (ann, token) = app.user("Ann Inbox", "USER").await;
    let assigned = |name: &str, email: &str| json!({"i": {"kind": "CUSTOMER", "name": name, "mainEmail": email, "assigneeIds": [ann.clone()]}});
    let create = "mutation($i: CreateContactInput!) { createContact(input: $i) { contact { id } } }";
    let globex = app.admin(create, assigned("Globex", "buyer@globex.example")).await["createContact"]["contact"]["id"].as_str().unwrap().to_string();
    contact(&app, "CUSTOMER", "Initech", Some("info@initech.example")).await;
    deliver(&imap, &message(Some("old@globex"), "buyer@globex.example", ANN.0, "held before connecting", "", "Hi")).await;
    add_mailbox(&app, &token, &imap, json!({"directories": ["INBOX"]})).await;
    app.switch_on(&token, "EMAIL_RECEIVED", "AU").await;
    app.switch_on(&token, "EMAIL_RECEIVED", "EMAIL_AU").await;
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    let mut at = chrono::Utc::now();
    let mut scan = || {
        at += chrono::Duration::hours(1);
        at
    };
    assert_eq!(worker.tick_at(scan()).await.unwrap().synced.archived, 1);
    let rows = received_rows(&app, &token).await;
    assert!(rows.is_empty(), "the first sync announces nothing: {rows:#?}");

    // AU: mail from her customer only, two messages in one row; none for Initech's.
    for (id, from) in [("a@globex", "buyer@globex.example"), ("b@globex", "buyer@globex.example"), ("c@initech", "info@initech.example")] {
        deliver(&imap, &message(Some(id), from, ANN.0, id, "", "Hi")).await;
    }
    assert_eq!(worker.tick_at(scan()).await.unwrap().synced.archived, 3);
    let rows = received_rows(&app, &token).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!((rows[0]["contact"]["id"].as_str(), rows[0]["count"].as_i64()), (Some(globex.as_str()), Some(2)));
    let emails = |app: &TestApp| {
        let app = app.state.db.clone();
        async move {
            let rows = app
                .query_all(sea_orm::Statement::from_string(app.get_database_backend(), "SELECT id FROM outbox_message WHERE channel = 'EMAIL'".to_string()))
                .await
                .unwrap();
            rows.len()
        }
    };
    assert_eq!(emails(&app).await, 2, "Email AU: an email per message about her own customer");

    // System: every new message, hers or not.
    app.switch_on(&token, "EMAIL_RECEIVED", "SYSTEM").await;
    deliver(&imap, &message(Some("d@initech"), "info@initech.example", ANN.0, "from initech", "", "Hi")).await;
    worker.tick_at(scan()).await.unwrap();
    let rows = received_rows(&app, &token).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(emails(&app).await, 2, "no email about a contact she is not assigned to");
    imap.stop().await;
}

async fn deliver(imap: &TestImap, mail: &[u8]) {
    let mut s = imap.session(ANN.0, ANN.1).await;
    s.append("INBOX", None, None, mail).await.unwrap();
    s.logout().await.unwrap();
}

async fn received_rows(app: &TestApp, token: &str) -> Vec<Value> {
    let body = app.gql(Some(token), "{ notifications(first: 50) { edges { node { type count contact { id } } } } }", json!({})).await;
    body["data"]["notifications"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).filter(|n| n["type"] == "EMAIL_RECEIVED").collect()
}
