//! Personal mail accounts signed in with a provider (OAuth2): the browser-less sign-in against
//! a local identity provider, scans over XOAUTH2 on a real Dovecot that checks each token with
//! that provider, refreshing expired tokens, a revoked grant, reconnecting, and the callbacks
//! that must change nothing.

use reqwest::{header::LOCATION, redirect::Policy, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_with, TestApp, TestIdp, TestImap};

const ANN: (&str, &str) = ("ann@acme.example", "ann-imap-password");
/// Herald's callback as registered with the provider. The test's browser is sent here by the
/// provider and goes to the test server instead (a name that resolves nowhere else).
const CALLBACK: &str = "http://herald.test/oauth/callback";
const RETURN: &str = "https://crm.example/settings/mail";
const MAILBOX_FIELDS: &str = "id emailAddress authMethod provider passwordSet connectedAt accessExpiresAt state lastError version outgoing { host }";

async fn spawn_with_provider(idp: &TestIdp) -> TestApp {
    let registration = idp.registration();
    spawn_with(move |c| {
        c.oauth.redirect_url = Some(CALLBACK.into());
        c.oauth.return_urls = vec![RETURN.into()];
        c.oauth.microsoft = Some(registration);
    })
    .await
}

fn message(id: &str, from: &str, subject: &str) -> Vec<u8> {
    format!("Message-ID: <{id}>\r\nFrom: {from}\r\nTo: {}\r\nSubject: {subject}\r\nDate: Sat, 5 Dec 2026 10:00:00 +0000\r\n\r\nHello\r\n", ANN.0).into_bytes()
}

async fn deliver(imap: &TestImap, mail: &[u8]) {
    let mut s = imap.session(ANN.0, ANN.1).await;
    s.append("INBOX", None, None, mail).await.unwrap();
    s.logout().await.unwrap();
}

async fn create_oauth_mailbox(app: &TestApp, token: &str, imap: &TestImap) -> Value {
    let input = json!({
        "emailAddress": ANN.0, "authMethod": "OAUTH2", "provider": "MICROSOFT",
        "host": "127.0.0.1", "port": imap.port, "security": "NONE", "outgoing": null, "main": true,
    });
    let body = app
        .gql(
            Some(token),
            &format!("mutation($i: CreateMailboxInput!) {{ createMailbox(input: $i) {{ mailbox {{ {MAILBOX_FIELDS} }} }} }}"),
            json!({"i": input}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    body["data"]["createMailbox"]["mailbox"].clone()
}

async fn mailbox(app: &TestApp, token: &str, id: &Value) -> Value {
    let body = app.gql(Some(token), &format!("query($id: ID!) {{ mailbox(id: $id) {{ {MAILBOX_FIELDS} }} }}"), json!({"id": id})).await;
    body["data"]["mailbox"].clone()
}

/// `connectMailbox`: the provider's authorization URL.
async fn start(app: &TestApp, token: &str, mailbox: &Value, return_url: &str) -> Value {
    app.gql(
        Some(token),
        "mutation($i: ConnectMailboxInput!) { connectMailbox(input: $i) { authorizationUrl expiresAt } }",
        json!({"i": {"mailboxId": mailbox, "returnUrl": return_url}}),
    )
    .await
}

/// What the browser does: opens the provider's page (which signs in at once and sends it back
/// with a code), and answers the callback URL it was sent to, not yet followed to Herald.
async fn authorize(authorization_url: &str) -> String {
    let browser = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let at_provider = browser.get(authorization_url).send().await.unwrap();
    assert_eq!(at_provider.status(), StatusCode::FOUND);
    at_provider.headers()[LOCATION].to_str().unwrap().to_string()
}

/// Follows the provider's redirect to Herald's callback; answers Herald's status and Location.
async fn callback(app: &TestApp, callback_url: &str) -> (StatusCode, String, String) {
    let browser = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let url = callback_url.replace("http://herald.test", &format!("http://{}", app.addr));
    let answer = browser.get(url).send().await.unwrap();
    let status = answer.status();
    let location = answer.headers().get(LOCATION).map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
    (status, location, answer.text().await.unwrap())
}

/// The whole sign-in: start, the provider, the callback.
async fn connect(app: &TestApp, token: &str, mailbox: &Value) -> (StatusCode, String) {
    let started = start(app, token, mailbox, RETURN).await;
    let url = started["data"]["connectMailbox"]["authorizationUrl"].as_str().unwrap_or_else(|| panic!("{started:#}")).to_string();
    let (status, location, _) = callback(app, &authorize(&url).await).await;
    (status, location)
}

async fn archived(app: &TestApp) -> usize {
    let rows = app.state.db.query_all(sea_orm::Statement::from_string(app.state.db.get_database_backend(), "SELECT id FROM email".to_string())).await.unwrap();
    rows.len()
}

/// Every stored row's text that could ever hold a token.
async fn stored_text(app: &TestApp) -> String {
    let db = &app.state.db;
    let mut all = String::new();
    for table in ["mailbox", "audit_event", "event", "oauth_authorization", "outbox_message"] {
        let rows = db.query_all(sea_orm::Statement::from_string(db.get_database_backend(), format!("SELECT * FROM {table}"))).await.unwrap();
        all.push_str(&format!("{rows:?}"));
    }
    all
}

async fn expire_stored_token(app: &TestApp) {
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    app.state
        .db
        .execute(sea_orm::Statement::from_sql_and_values(
            app.state.db.get_database_backend(),
            match app.state.db.get_database_backend() {
                sea_orm::DbBackend::Postgres => "UPDATE mailbox SET oauth_expires_at = $1",
                _ => "UPDATE mailbox SET oauth_expires_at = ?",
            },
            [past.into()],
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_mailbox_signs_in_with_its_provider_is_scanned_over_xoauth2_and_survives_expiry_and_revocation() {
    let logs = crate::helpers::captured_logs();
    let idp = TestIdp::start().await;
    let imap = TestImap::start_with(&[ANN], Some(&idp.url("/introspect"))).await;
    let app = spawn_with_provider(&idp).await;
    let (_, token) = app.user("Ann Inbox", "USER").await;
    app.admin(
        "mutation($i: CreateContactInput!) { createContact(input: $i) { contact { id } } }",
        json!({"i": {"kind": "CUSTOMER", "name": "Globex", "mainEmail": "buyer@globex.example"}}),
    )
    .await;
    let mut answers = String::new();

    let providers = app.gql(Some(&token), "{ mailProviders { provider configured imapHost } }", json!({})).await;
    assert_eq!(
        providers["data"]["mailProviders"],
        json!([
            {"provider": "MICROSOFT", "configured": true, "imapHost": "outlook.office365.com"},
            {"provider": "GOOGLE", "configured": false, "imapHost": "imap.gmail.com"},
        ])
    );
    let created = create_oauth_mailbox(&app, &token, &imap).await;
    assert_eq!((created["authMethod"].as_str(), created["provider"].as_str(), created["state"].as_str()), (Some("OAUTH2"), Some("MICROSOFT"), Some("NEW")));
    assert_eq!((created["connectedAt"].is_null(), created["passwordSet"].as_bool(), created["outgoing"].is_null()), (true, Some(false), true));
    let id = created["id"].clone();
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    assert_eq!(worker.tick().await.unwrap().synced.mailboxes, 0, "nothing to sign in with yet: not scanned");

    deliver(&imap, &message("first@globex", "buyer@globex.example", "before connecting")).await;
    let started = start(&app, &token, &id, RETURN).await;
    answers.push_str(&started.to_string());
    let url = started["data"]["connectMailbox"]["authorizationUrl"].as_str().unwrap().to_string();
    let sent = reqwest::Url::parse(&url).unwrap();
    assert!(url.starts_with(&idp.url("/authorize")), "{url}");
    let query: std::collections::HashMap<_, _> = sent.query_pairs().into_owned().collect();
    assert_eq!(query.get("code_challenge_method").map(String::as_str), Some("S256"));
    assert_eq!(query.get("login_hint").map(String::as_str), Some(ANN.0));
    assert_eq!(query.get("redirect_uri").map(String::as_str), Some(CALLBACK));
    let (status, location, _) = callback(&app, &authorize(&url).await).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("{RETURN}?herald_mailbox={}&herald_status=connected", id.as_str().unwrap()));
    let connected = mailbox(&app, &token, &id).await;
    answers.push_str(&connected.to_string());
    assert_eq!(connected["state"], "CONNECTED", "the callback tested the new sign-in on the server: {connected:#}");
    assert!(!connected["connectedAt"].is_null() && !connected["accessExpiresAt"].is_null());

    // Scanned over XOAUTH2: Dovecot asked the provider about the token.
    let tick = worker.tick().await.unwrap();
    assert_eq!((tick.synced.mailboxes, tick.synced.archived), (1, 1), "{tick:?}");

    // The access token expires: the worker renews it before the next scan, which signs in
    // with the new one (the provider no longer accepts the old one).
    idp.expire_access_tokens();
    expire_stored_token(&app).await;
    deliver(&imap, &message("second@globex", "buyer@globex.example", "after expiry")).await;
    let tick = worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    assert_eq!((tick.grants.refreshed, idp.refreshes()), (1, 1), "{tick:?}");
    assert_eq!((tick.synced.mailboxes, tick.synced.archived), (1, 1), "{tick:?}");
    let renewed = mailbox(&app, &token, &id).await;
    assert_eq!(renewed["state"], "CONNECTED", "{renewed:#}");

    // Ann takes Herald's access away at her provider: the next renewal is refused, the
    // mailbox waits for a new sign-in, and Ann is told once.
    idp.revoke_user(ANN.0);
    expire_stored_token(&app).await;
    let tick = worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(2)).await.unwrap();
    assert_eq!((tick.grants.revoked, tick.synced.mailboxes), (1, 0), "{tick:?}");
    let stopped = mailbox(&app, &token, &id).await;
    assert_eq!(stopped["state"], "NEEDS_RECONNECTION", "{stopped:#}");
    assert!(stopped["lastError"].as_str().unwrap().contains("sign in again"), "{stopped:#}");
    let tick = worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(3)).await.unwrap();
    assert_eq!((tick.grants, tick.synced.mailboxes), (Default::default(), 0), "nothing is tried until Ann signs in again: {tick:?}");
    let panel = app.gql(Some(&token), "{ notifications(first: 20) { edges { node { type title } } } }", json!({})).await;
    let notices: Vec<&Value> =
        panel["data"]["notifications"]["edges"].as_array().unwrap().iter().filter(|e| e["node"]["type"] == "SYSTEM_ERROR_INFORMATION").collect();
    assert_eq!(notices.len(), 1, "told once: {panel:#}");
    assert!(notices[0]["node"]["title"].as_str().unwrap().contains("sign in again"));

    // Ann signs in again: the scans resume where they stopped, nothing is archived twice.
    deliver(&imap, &message("third@globex", "buyer@globex.example", "while disconnected")).await;
    let (status, location) = connect(&app, &token, &id).await;
    assert_eq!((status, location.contains("herald_status=connected")), (StatusCode::SEE_OTHER, true), "{location}");
    let tick = worker.tick_at(chrono::Utc::now() + chrono::Duration::hours(4)).await.unwrap();
    assert_eq!((tick.synced.mailboxes, tick.synced.archived), (1, 1), "{tick:?}");
    assert_eq!(archived(&app).await, 3);

    // The tokens were sealed at rest and never answered, stored in the clear, audited or
    // logged.
    let secrets = idp.issued_secrets();
    assert!(secrets.len() >= 4, "codes, refresh and access tokens: {secrets:?}");
    let stored = stored_text(&app).await;
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logged.contains("mailbox access token refreshed"), "the server's log was captured");
    for secret in &secrets {
        assert!(!stored.contains(secret.as_str()), "a token or code was stored in the clear");
        assert!(!answers.contains(secret.as_str()), "a token or code was answered");
        assert!(!logged.contains(secret.as_str()), "a token or code was logged");
    }
    let audit = app.admin("{ auditLog(first: 20) { edges { node { action } } } }", json!({})).await;
    assert!(audit.to_string().contains("mailbox.connected"), "{audit:#}");
    imap.stop().await;
    idp.stop();
}

#[tokio::test]
async fn callbacks_that_must_not_connect_store_nothing() {
    let idp = TestIdp::start().await;
    let imap = TestImap::start_with(&[ANN, ("bob@acme.example", "bob-password")], Some(&idp.url("/introspect"))).await;
    let app = spawn_with_provider(&idp).await;
    let (_, ann) = app.user("Ann Inbox", "USER").await;
    let (_, bob) = app.user("Bob Other", "USER").await;
    let mine = create_oauth_mailbox(&app, &ann, &imap).await["id"].clone();
    let unchanged = |m: &Value| m["connectedAt"].is_null() && m["state"] == "NEW";

    // A return URL off the allow-list, however close it looks.
    for bad in ["https://evil.example/settings/mail", "https://crm.example.evil.example/settings/mail", "https://crm.example/other", "javascript:alert(1)"] {
        let body = start(&app, &ann, &mine, bad).await;
        assert_eq!(
            (error_code(&body), body["errors"][0]["extensions"]["field"].as_str()),
            (Some("BAD_USER_INPUT"), Some("input.returnUrl")),
            "{bad}: {body:#}"
        );
    }
    // Bob cannot start a sign-in for Ann's mailbox.
    let body = start(&app, &bob, &mine, RETURN).await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body:#}");
    // A provider the server is not registered with is said to be so, not a failed sign-in.
    let body = app
        .gql(
            Some(&ann),
            "mutation($i: CreateMailboxInput!) { createMailbox(input: $i) { mailbox { id } } }",
            json!({"i": {"emailAddress": "ann@gmail.example", "authMethod": "OAUTH2", "provider": "GOOGLE"}}),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_CONFIGURED"), "{body:#}");

    // A forged state.
    let (status, location, page) = callback(&app, &format!("{CALLBACK}?code=anything&state=forged")).await;
    assert_eq!((status, location.as_str()), (StatusCode::BAD_REQUEST, ""));
    assert!(page.contains("UNKNOWN_STATE"), "{page}");

    // Ann's code with the state of Bob's sign-in: the code was issued for Ann's PKCE challenge.
    let bobs = app
        .gql(
            Some(&bob),
            "mutation($i: CreateMailboxInput!) { createMailbox(input: $i) { mailbox { id } } }",
            json!({"i": {"emailAddress": "bob@acme.example", "authMethod": "OAUTH2", "provider": "MICROSOFT", "host": "127.0.0.1", "port": imap.port, "security": "NONE"}}),
        )
        .await["data"]["createMailbox"]["mailbox"]["id"]
        .clone();
    let ann_url = start(&app, &ann, &mine, RETURN).await["data"]["connectMailbox"]["authorizationUrl"].as_str().unwrap().to_string();
    let bob_url = start(&app, &bob, &bobs, RETURN).await["data"]["connectMailbox"]["authorizationUrl"].as_str().unwrap().to_string();
    let ann_back = reqwest::Url::parse(&authorize(&ann_url).await).unwrap();
    let bob_back = reqwest::Url::parse(&authorize(&bob_url).await).unwrap();
    let param = |u: &reqwest::Url, k: &str| u.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    let crossed = format!("{CALLBACK}?code={}&state={}", param(&ann_back, "code"), param(&bob_back, "state"));
    let (status, location, _) = callback(&app, &crossed).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with(RETURN) && location.contains("herald_status=error&herald_error=CODE_REFUSED"), "{location}");
    assert!(unchanged(&mailbox(&app, &bob, &bobs).await) && unchanged(&mailbox(&app, &ann, &mine).await));
    // That state is spent: replaying the callback is refused before anything else.
    let (status, _, page) = callback(&app, &crossed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("STATE_ALREADY_USED"), "{page}");

    // An authorization code that expired before Herald exchanged it.
    idp.set_code_lifetime(std::time::Duration::ZERO);
    let (status, location) = connect(&app, &ann, &mine).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("herald_error=CODE_REFUSED"), "{location}");
    assert!(unchanged(&mailbox(&app, &ann, &mine).await));
    idp.set_code_lifetime(std::time::Duration::from_secs(600));

    // Signed in at the provider as someone else: the server refuses that token for Ann's
    // mailbox, so nothing is stored.
    let url = start(&app, &ann, &mine, RETURN).await["data"]["connectMailbox"]["authorizationUrl"].as_str().unwrap().to_string();
    let (status, location, _) = callback(&app, &authorize(&format!("{url}&as=bob%40acme.example")).await).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("herald_error=CONNECTION_TEST_FAILED"), "{location}");
    assert!(unchanged(&mailbox(&app, &ann, &mine).await));

    // A good sign-in, replayed: the second use of its state is refused and changes nothing.
    let url = start(&app, &ann, &mine, RETURN).await["data"]["connectMailbox"]["authorizationUrl"].as_str().unwrap().to_string();
    let back = authorize(&url).await;
    let (status, location, _) = callback(&app, &back).await;
    assert_eq!((status, location.contains("herald_status=connected")), (StatusCode::SEE_OTHER, true), "{location}");
    let connected = mailbox(&app, &ann, &mine).await;
    let (status, _, page) = callback(&app, &back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("STATE_ALREADY_USED"), "{page}");
    assert_eq!(mailbox(&app, &ann, &mine).await["version"], connected["version"], "the replay changed nothing");

    let stored = stored_text(&app).await;
    for secret in idp.issued_secrets() {
        assert!(!stored.contains(secret.as_str()), "a token or code was stored in the clear");
    }
    imap.stop().await;
    idp.stop();
}

/// A reminder whose sender is the owner's own account goes out through the owner's mailbox's
/// outgoing side, signed in over XOAUTH2 with the mailbox's grant, From the owner's address.
/// Once that grant is revoked, the system account sends it instead, with the owner as
/// Reply-To, and the message says why.
#[tokio::test]
async fn a_user_account_reminder_goes_out_through_the_owners_own_server() {
    let idp = TestIdp::start().await;
    let imap = TestImap::start_with(&[ANN], Some(&idp.url("/introspect"))).await;
    let system_smtp = crate::helpers::TestSmtp::start(&[]).await;
    let introspect = idp.url("/introspect");
    let own_smtp = crate::helpers::TestSmtp::start(&["--oauth-introspect", &introspect]).await;
    let app = spawn_with_provider(&idp).await;
    let (owner, token) = app.user("Olga Owner", "USER").await;
    let settings = json!({
        "expectedVersion": 0,
        "smtp": {"host": "127.0.0.1", "port": system_smtp.port, "security": "NONE", "username": system_smtp.user, "password": system_smtp.password},
        "senderAddress": "crm@acme.example", "senderName": "Acme CRM",
        "activityAlerts": {"intervalHours": 24, "sender": "USER_ACCOUNT"},
        "lateResponse": {"intervalHours": 2, "sender": "SYSTEM_ACCOUNT", "defaultPersonIds": []},
    });
    let saved = app
        .gql(
            Some(&app.admin_token),
            "mutation($i: ChangeActivitySettingsInput!) { changeActivitySettings(input: $i) { activitySettings { version } } }",
            json!({"i": settings}),
        )
        .await;
    assert!(saved.get("errors").is_none(), "{saved:#}");
    let input = json!({
        "emailAddress": ANN.0, "authMethod": "OAUTH2", "provider": "MICROSOFT", "main": true,
        "host": "127.0.0.1", "port": imap.port, "security": "NONE", "scanActive": false,
        "outgoing": {"host": "127.0.0.1", "port": own_smtp.port, "security": "NONE"},
    });
    let body = app
        .gql(
            Some(&token),
            &format!("mutation($i: CreateMailboxInput!) {{ createMailbox(input: $i) {{ mailbox {{ {MAILBOX_FIELDS} }} }} }}"),
            json!({"i": input}),
        )
        .await;
    let id = body["data"]["createMailbox"]["mailbox"]["id"].clone();
    assert_eq!(body["data"]["createMailbox"]["mailbox"]["outgoing"]["host"], "127.0.0.1", "{body:#}");
    let (status, location) = connect(&app, &token, &id).await;
    assert_eq!((status, location.contains("herald_status=connected")), (StatusCode::SEE_OTHER, true), "{location}");
    // The connection test signs in to both sides, and says which failed and why.
    let test = "mutation($i: TestMailboxConnectionInput!) { testMailboxConnection(input: $i) { ok outgoing { ok failure { reason } } } }";
    let tested = app.gql(Some(&token), test, json!({"i": {"mailboxId": id}})).await;
    assert_eq!(tested["data"]["testMailboxConnection"], json!({"ok": true, "outgoing": {"ok": true, "failure": null}}), "{tested:#}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let typed = json!({"i": {"mailboxId": id, "outgoing": {"host": "127.0.0.1", "port": closed, "security": "NONE"}}});
    let tested = app.gql(Some(&token), test, typed).await;
    assert_eq!(
        tested["data"]["testMailboxConnection"],
        json!({"ok": true, "outgoing": {"ok": false, "failure": {"reason": "CONNECTION_REFUSED"}}}),
        "{tested:#}"
    );

    let activity = |title: &str| json!({"i": {"kind": "CALL", "title": title, "ownerId": owner, "dueAt": chrono::Utc::now() + chrono::Duration::minutes(30)}});
    let create = "mutation($i: CreateActivityInput!) { createActivity(input: $i) { activity { id } } }";
    app.admin(create, activity("Call Globex back")).await;
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    let tick = worker.tick().await.unwrap();
    assert_eq!(tick.delivered.sent, 1, "{tick:?}");
    let got = own_smtp.wait_for(1, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].auth_user.as_deref(), Some(ANN.0), "signed in over XOAUTH2 as the mailbox");
    let mail = got[0].parsed();
    let from = mail.from().unwrap().first().unwrap();
    assert_eq!((from.name(), from.address()), (Some("Olga Owner"), Some(ANN.0)));
    assert!(mail.reply_to().is_none() && mail.sender().is_none(), "{}", got[0].raw);
    assert!(system_smtp.received().is_empty());
    let sent = app.admin("{ outboundMessages(first: 5) { edges { node { status sentAs senderNote } } } }", json!({})).await;
    assert_eq!(sent["outboundMessages"]["edges"][0]["node"], json!({"status": "SENT", "sentAs": "USER_MAILBOX", "senderNote": null}));

    // Olga revokes Herald's access: the next reminder cannot go through her server, so the
    // system account sends it, replies to her.
    idp.revoke_user(ANN.0);
    expire_stored_token(&app).await;
    app.admin(create, activity("Send the proposal")).await;
    let tick = worker.tick().await.unwrap();
    assert_eq!(tick.delivered.sent, 1, "{tick:?}");
    let got = system_smtp.wait_for(1, 10).await;
    let mail = got[0].parsed();
    assert_eq!(mail.from().unwrap().first().unwrap().address(), Some("crm@acme.example"));
    assert_eq!(mail.reply_to().unwrap().first().unwrap().name(), Some("Olga Owner"));
    let sent = app.admin("{ outboundMessages(first: 5) { edges { node { sentAs senderNote } } } }", json!({})).await;
    let latest = sent["outboundMessages"]["edges"].as_array().unwrap().iter().find(|e| e["node"]["sentAs"] == "SYSTEM").expect("one sent by the system");
    assert!(latest["node"]["senderNote"].as_str().unwrap().contains("cannot send"), "{sent:#}");
    assert_eq!(mailbox(&app, &token, &id).await["state"], "NEEDS_RECONNECTION");
    assert_eq!(own_smtp.received().len(), 1);
    system_smtp.stop().await;
    own_smtp.stop().await;
    imap.stop().await;
    idp.stop();
}

/// A send refused by the owner's own server fails the message and is recorded on the mailbox,
/// without Email Failed Error: that server reports its bounces to its owner itself.
#[tokio::test]
async fn a_refusal_by_the_owners_server_is_recorded_not_notified() {
    let idp = TestIdp::start().await;
    let imap = TestImap::start_with(&[ANN], Some(&idp.url("/introspect"))).await;
    let system_smtp = crate::helpers::TestSmtp::start(&[]).await;
    let introspect = idp.url("/introspect");
    let own_smtp = crate::helpers::TestSmtp::start(&["--oauth-introspect", &introspect, "--reject"]).await;
    let app = spawn_with_provider(&idp).await;
    let (owner, token) = app.user("Olga Owner", "USER").await;
    app.switch_on(&token, "EMAIL_FAILED_ERROR", "SYSTEM").await;
    let settings = json!({
        "expectedVersion": 0,
        "smtp": {"host": "127.0.0.1", "port": system_smtp.port, "security": "NONE", "username": system_smtp.user, "password": system_smtp.password},
        "senderAddress": "crm@acme.example",
        "activityAlerts": {"intervalHours": 24, "sender": "USER_ACCOUNT"},
        "lateResponse": {"intervalHours": 2, "sender": "SYSTEM_ACCOUNT", "defaultPersonIds": []},
    });
    let saved = app
        .gql(
            Some(&app.admin_token),
            "mutation($i: ChangeActivitySettingsInput!) { changeActivitySettings(input: $i) { activitySettings { version } } }",
            json!({"i": settings}),
        )
        .await;
    assert!(saved.get("errors").is_none(), "{saved:#}");
    let input = json!({
        "emailAddress": ANN.0, "authMethod": "OAUTH2", "provider": "MICROSOFT", "main": true, "scanActive": false,
        "host": "127.0.0.1", "port": imap.port, "security": "NONE",
        "outgoing": {"host": "127.0.0.1", "port": own_smtp.port, "security": "NONE"},
    });
    let id = app.gql(Some(&token), "mutation($i: CreateMailboxInput!) { createMailbox(input: $i) { mailbox { id } } }", json!({"i": input})).await["data"]
        ["createMailbox"]["mailbox"]["id"]
        .clone();
    assert_eq!(connect(&app, &token, &id).await.0, StatusCode::SEE_OTHER);
    app.admin(
        "mutation($i: CreateActivityInput!) { createActivity(input: $i) { activity { id } } }",
        json!({"i": {"kind": "CALL", "title": "Call Globex back", "ownerId": owner, "dueAt": chrono::Utc::now() + chrono::Duration::minutes(30)}}),
    )
    .await;
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    let tick = worker.tick().await.unwrap();
    assert_eq!(tick.delivered.failed, 1, "a 550 fails at once: {tick:?}");
    let sent = app.admin("{ outboundMessages(first: 5) { edges { node { status sentAs lastError } } } }", json!({})).await;
    let node = &sent["outboundMessages"]["edges"][0]["node"];
    assert_eq!((node["status"].as_str(), node["sentAs"].as_str()), (Some("FAILED"), Some("USER_MAILBOX")), "{sent:#}");
    assert!(node["lastError"].as_str().unwrap().contains("550"), "{sent:#}");
    let outgoing = app.gql(Some(&token), "query($id: ID!) { mailbox(id: $id) { outgoing { lastError lastErrorAt } } }", json!({"id": id})).await;
    assert!(outgoing["data"]["mailbox"]["outgoing"]["lastError"].as_str().unwrap().contains("550"), "{outgoing:#}");
    let panel = app.gql(Some(&token), "{ notifications(first: 20) { edges { node { type } } } }", json!({})).await;
    assert!(!panel.to_string().contains("EMAIL_FAILED_ERROR"), "{panel:#}");
    assert!(system_smtp.received().is_empty() && own_smtp.received().is_empty());
    system_smtp.stop().await;
    own_smtp.stop().await;
    imap.stop().await;
    idp.stop();
}

/// Two sign-ins that find the same expired token at once renew it once: the second waits for
/// the first's refresh (a provider that rotates refresh tokens would otherwise revoke one).
#[tokio::test]
async fn sign_ins_racing_for_an_expired_token_renew_it_once() {
    use sea_orm::EntityTrait;
    let idp = TestIdp::start().await;
    let imap = TestImap::start_with(&[ANN], Some(&idp.url("/introspect"))).await;
    let app = spawn_with_provider(&idp).await;
    let (_, token) = app.user("Ann Inbox", "USER").await;
    let id = create_oauth_mailbox(&app, &token, &imap).await["id"].clone();
    assert_eq!(connect(&app, &token, &id).await.0, StatusCode::SEE_OTHER);
    idp.expire_access_tokens();
    expire_stored_token(&app).await;
    let row = entity::mailbox::Entity::find_by_id(id.as_str().unwrap().parse::<uuid::Uuid>().unwrap()).one(&app.state.db).await.unwrap().unwrap();
    let (a, b, c) = tokio::join!(
        api::mailboxes::grant::access_token(&app.state, &row),
        api::mailboxes::grant::access_token(&app.state, &row),
        api::mailboxes::grant::access_token(&app.state, &row),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a == b && b == c, "all three sign in with the one renewed token");
    assert_eq!(idp.refreshes(), 1);
    imap.stop().await;
    idp.stop();
}
