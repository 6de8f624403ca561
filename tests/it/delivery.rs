//! Activity settings, activities, reminders, escalations and the delivery of emails and texts,
//! against a real SMTP server on loopback (aiosmtpd with AUTH) and a local HTTP receiver in
//! the shape of Twilio's API. The worker is driven tick by tick (`Worker::tick_at`), and, for
//! the kill test, run as real `herald` processes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use worker::Worker;

use crate::helpers::{error_code, spawn_with, TestApp, TestSmtp};

const SETTINGS: &str = "activitySettings { version smtp { host port security username passwordSet } senderAddress senderName
    activityAlerts { intervalHours sender } lateResponse { intervalHours sender senderEmail defaultPersons { id name } } }";

async fn app() -> TestApp {
    spawn_with(|c| {
        c.worker.retry_base = Duration::from_millis(200);
        c.worker.max_attempts = 3;
    })
    .await
}

fn settings_input(version: i64, smtp: &TestSmtp, persons: &[&str]) -> Value {
    json!({
        "expectedVersion": version,
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "NONE", "username": smtp.user, "password": smtp.password},
        "senderAddress": "crm@acme.example",
        "senderName": "Acme CRM",
        "activityAlerts": {"intervalHours": 24, "sender": "SYSTEM_ACCOUNT"},
        "lateResponse": {"intervalHours": 2, "sender": "SYSTEM_ACCOUNT", "defaultPersonIds": persons},
    })
}

async fn change_settings(app: &TestApp, input: Value) -> Value {
    app.gql(
        Some(&app.admin_token),
        &format!("mutation($i: ChangeActivitySettingsInput!) {{ changeActivitySettings(input: $i) {{ {SETTINGS} }} }}"),
        json!({"i": input}),
    )
    .await
}

async fn configure(app: &TestApp, smtp: &TestSmtp, persons: &[&str]) {
    let body = change_settings(app, settings_input(0, smtp, persons)).await;
    assert!(body.get("errors").is_none(), "{body:#}");
}

async fn create_activity(app: &TestApp, owner: &str, due: DateTime<Utc>, title: &str) -> Value {
    let data = app
        .admin(
            "mutation($i: CreateActivityInput!) { createActivity(input: $i) { activity { id version reminderAt escalationAt reminderSent escalationSent } } }",
            json!({"i": {"kind": "CALL", "title": title, "ownerId": owner, "dueAt": due}}),
        )
        .await;
    data["createActivity"]["activity"].clone()
}

async fn outbox(app: &TestApp) -> Vec<Value> {
    let data = app
        .admin(
            "{ outboundMessages(first: 100) { edges { node { id channel status attempts lastError messageId sentAt recipient { id email } } } } }",
            json!({}),
        )
        .await;
    data["outboundMessages"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

async fn panel_types(app: &TestApp, token: &str) -> Vec<String> {
    let body = app.gql(Some(token), "{ notifications(first: 50) { edges { node { type title } } } }", json!({})).await;
    body["data"]["notifications"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["type"].as_str().unwrap().to_string()).collect()
}

async fn email_of(app: &TestApp, user_id: &str) -> String {
    let data = app.admin("query($id: ID!) { user(id: $id) { email } }", json!({"id": user_id})).await;
    data["user"]["email"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn settings_page_saves_whole_validates_and_never_shows_the_password() {
    let app = app().await;
    let smtp = TestSmtp::start(&[]).await;
    let (person, _) = app.user("Dana Default", "COMPANY_SUPERVISOR").await;

    // Defaults before the first save.
    let data = app.admin(&format!("{{ {SETTINGS} }}"), json!({})).await;
    let page = &data["activitySettings"];
    assert_eq!(page["version"], 0);
    assert_eq!(page["smtp"], Value::Null);
    assert_eq!(page["activityAlerts"], json!({"intervalHours": 24, "sender": "SYSTEM_ACCOUNT"}));
    assert_eq!(page["lateResponse"]["intervalHours"], 24);

    // Invalid pages are refused as a whole, naming the field.
    let mut bad = settings_input(0, &smtp, &[&person]);
    bad["activityAlerts"]["intervalHours"] = json!(0);
    let body = change_settings(&app, bad).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.activityAlerts.intervalHours");
    let mut bad = settings_input(0, &smtp, &[&person]);
    bad["lateResponse"]["sender"] = json!("EMAIL");
    let body = change_settings(&app, bad).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.lateResponse.senderEmail");
    let mut bad = settings_input(0, &smtp, &[&app.admin_id, &app.admin_id]);
    bad["smtp"]["host"] = json!("mail.example.com");
    let body = change_settings(&app, bad).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.lateResponse.defaultPersonIds");
    let data = app.admin("{ activitySettings { version } }", json!({})).await;
    assert_eq!(data["activitySettings"]["version"], 0, "nothing was half-written");

    // A good page.
    let body = change_settings(&app, settings_input(0, &smtp, &[&person])).await;
    let page = &body["data"]["changeActivitySettings"]["activitySettings"];
    assert_eq!(page["version"], 1, "{body:#}");
    assert_eq!(page["smtp"]["passwordSet"], true);
    assert_eq!(page["smtp"]["security"], "NONE");
    assert_eq!(page["lateResponse"]["defaultPersons"][0]["id"], person.as_str());
    assert!(!body.to_string().contains(&smtp.password), "the password never leaves the server");

    // Encrypted at rest, and not in the audit log.
    let rows = app
        .state
        .db
        .query_all(sea_orm::Statement::from_string(app.state.db.get_database_backend(), "SELECT smtp_password FROM activity_settings".to_string()))
        .await
        .unwrap();
    let stored: String = rows[0].try_get("", "smtp_password").unwrap();
    assert!(stored.starts_with("v1.") && !stored.contains(&smtp.password), "sealed: {stored}");
    let audit = app.admin("{ auditLog(first: 20) { edges { node { action before after } } } }", json!({})).await;
    assert!(audit.to_string().contains("activity_settings.changed"));
    assert!(!audit.to_string().contains(&smtp.password) && !audit.to_string().contains(&stored));

    // A stale version is a conflict; omitting the password keeps it.
    let body = change_settings(&app, settings_input(0, &smtp, &[])).await;
    assert_eq!(error_code(&body), Some("CONFLICT"));
    let mut keep = settings_input(1, &smtp, &[]);
    keep["smtp"].as_object_mut().unwrap().remove("password");
    let body = change_settings(&app, keep).await;
    assert_eq!(body["data"]["changeActivitySettings"]["activitySettings"]["smtp"]["passwordSet"], true, "{body:#}");

    // Reset restores the defaults and keeps the SMTP server.
    let data = app.admin(&format!("mutation {{ resetActivitySettings(input: {{expectedVersion: 2}}) {{ {SETTINGS} }} }}"), json!({})).await;
    let page = &data["resetActivitySettings"]["activitySettings"];
    assert_eq!(page["version"], 3);
    assert_eq!(page["lateResponse"], json!({"intervalHours": 24, "sender": "SYSTEM_ACCOUNT", "senderEmail": null, "defaultPersons": []}));
    assert_eq!(page["smtp"]["host"], "127.0.0.1");
    // With includeSmtp it also forgets the server, its password and the sender.
    let data = app.admin(&format!("mutation {{ resetActivitySettings(input: {{expectedVersion: 3, includeSmtp: true}}) {{ {SETTINGS} }} }}"), json!({})).await;
    let page = &data["resetActivitySettings"]["activitySettings"];
    assert_eq!(
        (page["version"].as_i64(), &page["smtp"], &page["senderAddress"], &page["senderName"]),
        (Some(4), &Value::Null, &Value::Null, &Value::Null),
        "{page:#}"
    );

    // Only company admins see or change the page.
    let (_, user_token) = app.user("Uma User", "USER").await;
    let body = app.gql(Some(&user_token), "{ activitySettings { version } }", json!({})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));
    smtp.stop().await;
}

#[tokio::test]
async fn testing_smtp_settings_says_what_failed() {
    let app = app().await;
    let smtp = TestSmtp::start(&[]).await;
    configure(&app, &smtp, &[]).await;
    let test = "mutation($i: TestSmtpSettingsInput!) { testSmtpSettings(input: $i) { ok failure { reason smtpCode message } } }";

    let data = app.admin(test, json!({"i": {"sendTo": "ops@acme.example"}})).await;
    assert_eq!(data["testSmtpSettings"], json!({"ok": true, "failure": null}));
    let got = smtp.wait_for(1, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec!["ops@acme.example"]);
    assert_eq!(got[0].auth_user.as_deref(), Some("herald"));

    // Wrong password.
    let mut input = settings_input(1, &smtp, &[]);
    input["smtp"]["password"] = json!("wrong");
    change_settings(&app, input).await;
    let data = app.admin(test, json!({"i": {}})).await;
    assert_eq!(data["testSmtpSettings"]["ok"], false);
    assert_eq!(data["testSmtpSettings"]["failure"]["reason"], "AUTHENTICATION", "{data:#}");
    assert_eq!(data["testSmtpSettings"]["failure"]["smtpCode"], 535);

    // Implicit TLS against a plain server.
    let mut input = settings_input(2, &smtp, &[]);
    input["smtp"]["security"] = json!("TLS");
    change_settings(&app, input).await;
    let data = app.admin(test, json!({"i": {}})).await;
    assert_eq!(data["testSmtpSettings"]["failure"]["reason"], "TLS", "{data:#}");

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut input = settings_input(3, &smtp, &[]);
    input["smtp"]["port"] = json!(closed);
    change_settings(&app, input).await;
    let data = app.admin(test, json!({"i": {}})).await;
    assert_eq!(data["testSmtpSettings"]["failure"]["reason"], "CONNECTION_REFUSED", "{data:#}");

    // A name that does not resolve (.invalid never does, RFC 6761).
    let mut input = settings_input(4, &smtp, &[]);
    input["smtp"]["host"] = json!("smtp.herald-test.invalid");
    change_settings(&app, input).await;
    let started = std::time::Instant::now();
    let data = app.admin(test, json!({"i": {}})).await;
    let reason = data["testSmtpSettings"]["failure"]["reason"].as_str().unwrap().to_string();
    assert!(reason == "NAME_RESOLUTION" || (reason == "TIMEOUT" && started.elapsed() < Duration::from_secs(12)), "{data:#}");
    smtp.stop().await;
}

#[tokio::test]
async fn a_due_activity_reminds_its_owner_once_by_email_and_in_the_panel() {
    let app = app().await;
    let smtp = TestSmtp::start(&[]).await;
    configure(&app, &smtp, &[]).await;
    let (owner, owner_token) = app.user("Olga Owner", "USER").await;
    let owner_email = email_of(&app, &owner).await;
    let worker = Worker::new(app.state.clone()).await.unwrap();

    let soon = create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(3), "Call Globex back").await;
    let later = create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(48), "Quarterly review").await;
    assert!(soon["reminderAt"].is_string() && later["reminderAt"].is_string());

    let report = worker.tick().await.unwrap();
    assert_eq!(report.scheduled.reminders, 1, "only the activity due within 24 hours: {report:?}");
    assert_eq!(report.delivered.sent, 1);
    let got = smtp.wait_for(1, 10).await;
    assert_eq!(got.len(), 1);
    let mail = got[0].parsed();
    assert_eq!(got[0].rcpt_tos, vec![owner_email.clone()]);
    assert_eq!(got[0].mail_from, "crm@acme.example");
    assert!(got[0].pipelined, "the server offers PIPELINING: MAIL, RCPT and DATA go out together");
    assert_eq!(mail.from().unwrap().first().unwrap().name(), Some("Acme CRM"));
    assert!(mail.subject().unwrap().starts_with("Call due in 2 hours") && mail.subject().unwrap().ends_with(": Call Globex back"), "{:?}", mail.subject());
    let text = mail.body_text(0).unwrap();
    assert!(text.contains("Hello Olga Owner") && text.contains("\"Call Globex back\" is due in 2 hours"), "{text}");
    assert!(mail.body_html(0).unwrap().contains("<strong>Call Globex back</strong>"));

    // The outbox shows it sent, with the Message-ID the recipient got.
    let messages = outbox(&app).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["status"], "SENT");
    assert_eq!(messages[0]["messageId"].as_str().unwrap(), got[0].message_id());

    // In the owner's panel; the activity says so; nothing is sent twice.
    assert_eq!(panel_types(&app, &owner_token).await, vec!["ACTIVITY_REMINDER"]);
    let data = app.admin("query($id: ID!) { activity(id: $id) { reminderSent reminderAt } }", json!({"id": soon["id"]})).await;
    assert_eq!(data["activity"], json!({"reminderSent": true, "reminderAt": null}));
    let report = worker.tick().await.unwrap();
    assert!(!report.did_work(), "{report:?}");
    assert_eq!(smtp.received().len(), 1);

    // Moving the due time plans a new reminder for the new time.
    let data = app
        .admin(
            "mutation($i: UpdateActivityInput!) { updateActivity(input: $i) { activity { reminderSent reminderAt } } }",
            json!({"i": {"id": soon["id"], "dueAt": Utc::now() + chrono::Duration::hours(5)}}),
        )
        .await;
    assert_eq!(data["updateActivity"]["activity"]["reminderSent"], false);
    worker.tick().await.unwrap();
    assert_eq!(smtp.wait_for(2, 10).await.len(), 2);
    smtp.stop().await;
}

#[tokio::test]
async fn late_activities_escalate_to_the_default_persons_unless_completed() {
    let app = app().await;
    let smtp = TestSmtp::start(&[]).await;
    let (owner, owner_token) = app.user("Olga Owner", "USER").await;
    let (boss, boss_token) = app.user("Bea Boss", "COMPANY_SUPERVISOR").await;
    let (lead, _) = app.user("Leo Lead", "COMPANY_SUPERVISOR").await;
    configure(&app, &smtp, &[&boss, &lead]).await;
    let worker = Worker::new(app.state.clone()).await.unwrap();

    let due = Utc::now() + chrono::Duration::minutes(30);
    let late = create_activity(&app, &owner, due, "Send the proposal").await;
    let done = create_activity(&app, &owner, due, "Confirm the visit").await;
    app.admin("mutation($i: CompleteActivityInput!) { completeActivity(input: $i) { activity { id } } }", json!({"i": {"id": done["id"]}})).await;

    // Now: the open one is reminded (due within 24 hours); the completed one is not.
    let report = worker.tick().await.unwrap();
    assert_eq!(report.scheduled.reminders, 1);
    assert_eq!(smtp.wait_for(1, 10).await.len(), 1);

    // Two and a half hours later the open one is late (interval 2 h): one email per default
    // person, panel rows for them and for the owner.
    let report = worker.tick_at(due + chrono::Duration::minutes(150)).await.unwrap();
    assert_eq!(report.scheduled.escalations, 1, "{report:?}");
    assert_eq!(report.delivered.sent, 2);
    let got = smtp.wait_for(3, 10).await;
    let escalations: Vec<_> = got.iter().filter(|r| r.parsed().subject().unwrap_or_default().starts_with("Late: Send the proposal")).collect();
    let mut to: Vec<String> = escalations.iter().flat_map(|r| r.rcpt_tos.clone()).collect();
    to.sort();
    let mut expected = vec![email_of(&app, &boss).await, email_of(&app, &lead).await];
    expected.sort();
    assert_eq!(to, expected);
    assert!(escalations[0].parsed().body_text(0).unwrap().contains("Olga Owner's call \"Send the proposal\""));
    assert!(panel_types(&app, &boss_token).await.contains(&"LATE_ACTIVITY".to_string()));
    assert!(panel_types(&app, &owner_token).await.contains(&"LATE_ACTIVITY".to_string()));
    let data = app.admin("query($id: ID!) { activity(id: $id) { escalationSent } }", json!({"id": late["id"]})).await;
    assert_eq!(data["activity"]["escalationSent"], true);

    // Never again, and never for the completed one.
    let report = worker.tick_at(due + chrono::Duration::hours(30)).await.unwrap();
    assert!(!report.did_work(), "{report:?}");
    assert_eq!(smtp.received().len(), 3);
    smtp.stop().await;
}

#[tokio::test]
async fn a_451_is_retried_with_back_off_and_then_delivered() {
    let app = app().await;
    let smtp = TestSmtp::start(&["--fail-first", "1"]).await;
    configure(&app, &smtp, &[]).await;
    let (owner, _) = app.user("Olga Owner", "USER").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(1), "Call back").await;

    let report = worker.tick().await.unwrap();
    assert_eq!((report.delivered.sent, report.delivered.retried), (0, 1), "{report:?}");
    let messages = outbox(&app).await;
    assert_eq!(messages[0]["status"], "PENDING");
    assert_eq!(messages[0]["attempts"], 1);
    assert!(messages[0]["lastError"].as_str().unwrap().contains("451"), "{messages:?}");

    // Not before its back-off; then delivered once, with the same Message-ID.
    let report = worker.tick_at(Utc::now() + chrono::Duration::seconds(5)).await.unwrap();
    assert_eq!(report.delivered.sent, 1, "{report:?}");
    let got = smtp.wait_for(1, 10).await;
    assert_eq!(got.len(), 1);
    let messages = outbox(&app).await;
    assert_eq!((messages[0]["status"].as_str(), messages[0]["attempts"].as_i64()), (Some("SENT"), Some(2)));
    assert_eq!(messages[0]["messageId"].as_str().unwrap(), got[0].message_id());
    smtp.stop().await;
}

/// One reminder to a server started with `server_args`, which refuses it: the message fails
/// for good and its user is told. Answers the message's last error.
async fn refused_reminder(server_args: &[&str]) -> String {
    let app = app().await;
    let smtp = TestSmtp::start(server_args).await;
    configure(&app, &smtp, &[]).await;
    let (owner, owner_token) = app.user("Olga Owner", "USER").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(1), "Call back").await;

    let report = worker.tick().await.unwrap();
    assert_eq!(report.delivered.failed, 1, "{report:?}");
    let messages = outbox(&app).await;
    assert_eq!(messages[0]["status"], "FAILED");
    let types = panel_types(&app, &owner_token).await;
    assert!(types.contains(&"EMAIL_FAILED_ERROR".to_string()), "{types:?}");
    assert!(smtp.received().is_empty());

    // Failed is final: no further attempts.
    let report = worker.tick_at(Utc::now() + chrono::Duration::hours(2)).await.unwrap();
    assert_eq!(report.delivered, worker::delivery::Delivered::default());
    smtp.stop().await;
    messages[0]["lastError"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_550_fails_the_message_and_tells_the_user_it_concerned() {
    let error = refused_reminder(&["--reject"]).await;
    assert!(error.contains("550"), "{error}");
}

#[tokio::test]
async fn a_refused_recipient_in_a_pipelined_envelope_fails_the_message_with_the_servers_reason() {
    // The refusal of RCPT, not the server's complaint about the DATA pipelined behind it.
    let error = refused_reminder(&["--reject-rcpt"]).await;
    assert!(error.contains("550") && error.contains("No such user"), "{error}");
}

#[tokio::test]
async fn a_server_without_pipelining_gets_the_envelope_command_by_command() {
    let app = app().await;
    let smtp = TestSmtp::start(&["--no-pipelining"]).await;
    configure(&app, &smtp, &[]).await;
    let (owner, _) = app.user("Olga Owner", "USER").await;
    let owner_email = email_of(&app, &owner).await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(1), "Call back").await;
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(2), "Send the quote").await;

    let report = worker.tick().await.unwrap();
    assert_eq!(report.delivered.sent, 2, "{report:?}");
    let got = smtp.wait_for(2, 10).await;
    assert_eq!(got.len(), 2);
    for mail in &got {
        assert!(!mail.pipelined, "RCPT and DATA waited for the reply to MAIL");
        assert_eq!(mail.rcpt_tos, vec![owner_email.clone()]);
        assert!(mail.parsed().body_text(0).unwrap().contains("Hello Olga Owner"));
    }
    smtp.stop().await;
}

/// What the SMS receiver got: the account in the path, the form, the Authorization header.
pub type Texts = Arc<Mutex<Vec<(String, HashMap<String, String>, String)>>>;

/// A local HTTP receiver in the shape of Twilio's Messages API, recording what it got.
pub async fn sms_receiver(answer: u16) -> (String, Texts) {
    use axum::{extract::State, http::HeaderMap, routing::post, Form, Router};
    let seen: Texts = Arc::default();
    let app = Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(
                move |State(seen): State<Arc<Mutex<Vec<_>>>>,
                      axum::extract::Path(sid): axum::extract::Path<String>,
                      headers: HeaderMap,
                      Form(form): Form<HashMap<String, String>>| async move {
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                    seen.lock().await.push((sid, form, auth));
                    let status = axum::http::StatusCode::from_u16(answer).unwrap();
                    (status, axum::Json(json!({"sid": "SM1", "status": "queued", "code": 21211, "message": "The 'To' number is not valid."})))
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn texts_go_through_the_accounts_sms_gateway() {
    let app = app().await;
    let (url, seen) = sms_receiver(201).await;
    let (owner, owner_token) = app.user("Olga Owner", "USER").await;
    app.admin("mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { id } } }", json!({"i": {"id": owner, "phone": "+33 6 12 34 56 78"}})).await;
    // Olga wants texts for her activity reminders.
    app.switch_on(&owner_token, "ACTIVITY_REMINDER", "TEXT_AU").await;
    let data = app
        .admin(
            "mutation($i: ChangeSmsGatewayInput!) { changeSmsGateway(input: $i) { smsGateway { baseUrl accountSid fromNumber authTokenSet version } } }",
            json!({"i": {"expectedVersion": 0, "baseUrl": url, "accountSid": "AC123", "authToken": "tok-secret", "fromNumber": "+15550001111"}}),
        )
        .await;
    assert_eq!(data["changeSmsGateway"]["smsGateway"]["authTokenSet"], true);
    assert!(!data.to_string().contains("tok-secret"));

    let worker = Worker::new(app.state.clone()).await.unwrap();
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(1), "Call back").await;
    let report = worker.tick().await.unwrap();
    // The text went out; the email is held, since no SMTP server is set.
    assert_eq!((report.delivered.sent, report.delivered.held), (1, 1), "{report:?}");
    let seen = seen.lock().await.clone();
    assert_eq!(seen.len(), 1);
    let (sid, form, auth) = &seen[0];
    assert_eq!(sid, "AC123");
    assert_eq!(form["To"], "+33612345678");
    assert_eq!(form["From"], "+15550001111");
    assert!(form["Body"].starts_with("Acme: Call due soon: Call back"), "{form:?}");
    use base64::Engine;
    assert_eq!(auth, &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("AC123:tok-secret")));
    let texts: Vec<_> = outbox(&app).await.into_iter().filter(|m| m["channel"] == "TEXT").collect();
    assert_eq!(texts[0]["status"], "SENT");
    let emails: Vec<_> = outbox(&app).await.into_iter().filter(|m| m["channel"] == "EMAIL").collect();
    assert!(emails[0]["lastError"].as_str().unwrap().contains("no SMTP server"), "{emails:?}");
}

#[tokio::test]
async fn a_gateway_refusal_fails_the_text() {
    let app = app().await;
    let (url, seen) = sms_receiver(400).await;
    let (owner, owner_token) = app.user("Olga Owner", "USER").await;
    app.admin("mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { id } } }", json!({"i": {"id": owner, "phone": "+33612345678"}})).await;
    app.switch_on(&owner_token, "ACTIVITY_REMINDER", "TEXT_AU").await;
    app.admin(
        "mutation($i: ChangeSmsGatewayInput!) { changeSmsGateway(input: $i) { smsGateway { version } } }",
        json!({"i": {"expectedVersion": 0, "baseUrl": url, "accountSid": "AC123", "authToken": "t", "fromNumber": "+15550001111"}}),
    )
    .await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(1), "Call back").await;
    worker.tick().await.unwrap();
    assert_eq!(seen.lock().await.len(), 1);
    let texts: Vec<_> = outbox(&app).await.into_iter().filter(|m| m["channel"] == "TEXT").collect();
    assert_eq!(texts[0]["status"], "FAILED");
    assert!(texts[0]["lastError"].as_str().unwrap().contains("The 'To' number is not valid."), "{texts:?}");
}

/// Two `herald` processes deliver 200 reminders; one is killed with SIGKILL mid-batch. Every
/// message arrives; a duplicate is possible only for the one message the killed worker had in
/// flight (concurrency 1), and carries the same Message-ID. PostgreSQL only: SQLite runs one
/// worker.
#[tokio::test]
async fn two_workers_one_killed_mid_batch_deliver_every_message() {
    if std::env::var("HERALD_TEST_DATABASE_URL").map_or(true, |v| v.is_empty()) {
        eprintln!("skipped on SQLite: several workers need PostgreSQL (CI runs this on PostgreSQL)");
        return;
    }
    const N: usize = 200;
    let app = app().await;
    let smtp = TestSmtp::start(&["--delay-ms", "15"]).await;
    configure(&app, &smtp, &[]).await;
    let (owner, _) = app.user("Olga Owner", "USER").await;
    for i in 0..N {
        create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(1), &format!("Call #{i}")).await;
    }

    let spawn = || {
        app.spawn_herald(&[
            ("HERALD_WORKER_POLL_MS", "100"),
            ("HERALD_WORKER_BATCH", "20"),
            ("HERALD_DELIVERY_CONCURRENCY", "1"),
            ("HERALD_DELIVERY_LEASE_SECS", "2"),
        ])
    };
    let (mut a, _dir_a) = spawn();
    let (mut b, _dir_b) = spawn();

    // Kill one worker once deliveries are under way.
    let got = smtp.wait_for(N / 4, 60).await;
    assert!(got.len() >= N / 4, "deliveries started ({} so far)", got.len());
    a.start_kill().unwrap();
    a.wait().await.unwrap();

    // The survivor finishes, taking over the killed worker's claims when their lease ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let sent = entity::outbox_message::Entity::find().filter(entity::outbox_message::Column::Status.eq("SENT")).count(&app.state.db).await.unwrap();
        if sent as usize == N || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.start_kill().unwrap();
    let got = smtp.received();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.message_id()).or_default() += 1;
    }
    let duplicates: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!("received {} messages, {} distinct, duplicates: {duplicates:?}", got.len(), per_id.len());
    assert_eq!(per_id.len(), N, "every reminder arrived");
    assert!(duplicates.len() <= 1 && duplicates.iter().all(|(_, n)| **n == 2), "at most the one in-flight message twice: {duplicates:?}");
    let events = entity::event::Entity::find().filter(entity::event::Column::NotificationType.eq("ACTIVITY_REMINDER")).count(&app.state.db).await.unwrap();
    assert_eq!(events as usize, N, "one reminder per activity, even with two schedulers");
    let statuses: Vec<Value> = outbox(&app).await.iter().map(|m| m["status"].clone()).collect();
    assert!(statuses.iter().all(|s| s == "SENT"), "{statuses:?}");
    smtp.stop().await;
}

#[tokio::test]
async fn a_name_that_cannot_be_a_header_is_refused_and_fails_only_its_own_message() {
    let app = app().await;
    let smtp = TestSmtp::start(&[]).await;
    configure(&app, &smtp, &[]).await;
    let (mallory, mallory_token) = app.user("Mallory", "USER").await;
    let (olga, _) = app.user("Olga Owner", "USER").await;
    let injected = "Mallory\r\nBcc: x@evil.example";

    // A user cannot give themselves a name that would add a header, nor an admin the sender.
    let renamed = app
        .gql(
            Some(&mallory_token),
            "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { name } } }",
            json!({"i": {"id": mallory, "name": injected}}),
        )
        .await;
    assert_eq!(error_code(&renamed), Some("BAD_USER_INPUT"), "{renamed:#}");
    assert_eq!(renamed["errors"][0]["extensions"]["field"], "input.name");
    let mut input = settings_input(1, &smtp, &[]);
    input["senderName"] = json!("Acme\nBcc: x@evil.example");
    let refused = change_settings(&app, input).await;
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"), "{refused:#}");
    assert_eq!(refused["errors"][0]["extensions"]["field"], "input.senderName");

    // A name stored before names were checked: her reminder fails with a reason, Olga's goes.
    let update = entity::user::Entity::update_many()
        .col_expr(entity::user::Column::Name, sea_orm::sea_query::Expr::value(injected))
        .filter(entity::user::Column::Id.eq(mallory.parse::<uuid::Uuid>().unwrap()));
    update.exec(&app.state.db).await.unwrap();
    create_activity(&app, &mallory, Utc::now() + chrono::Duration::hours(3), "Call Globex back").await;
    create_activity(&app, &olga, Utc::now() + chrono::Duration::hours(3), "Call Initech back").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    let report = worker.tick().await.unwrap();
    assert_eq!((report.delivered.sent, report.delivered.failed), (1, 1), "{report:?}");
    let got = smtp.wait_for(1, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec![email_of(&app, &olga).await]);
    let messages = outbox(&app).await;
    let failed = messages.iter().find(|m| m["recipient"]["id"] == json!(mallory)).expect("Mallory's message");
    assert_eq!(failed["status"], "FAILED");
    let reason = failed["lastError"].as_str().unwrap();
    assert!(reason.contains("recipient") && reason.contains("control character"), "{reason}");
    assert!(messages.iter().any(|m| m["recipient"]["id"] == json!(olga) && m["status"] == "SENT"), "{messages:#?}");

    // The worker goes on: a later reminder is delivered.
    create_activity(&app, &olga, Utc::now() + chrono::Duration::hours(4), "Call Hooli back").await;
    assert_eq!(worker.tick().await.unwrap().delivered.sent, 1);
    assert_eq!(smtp.wait_for(2, 10).await.len(), 2);
    smtp.stop().await;
}

/// What an operator watches of a worker: its own `/metrics` and `/healthz`, with the outbox's
/// depth and the age of its oldest due message, and the mailbox scans' lag.
#[tokio::test]
async fn a_worker_serves_the_gauges_of_the_work_waiting() {
    let app = app().await;
    // The server answers 451 at first: the reminder's email is due again after a back-off.
    let smtp = TestSmtp::start(&["--fail-first", "5"]).await;
    configure(&app, &smtp, &[]).await;
    let (owner, _) = app.user("Olga Owner", "USER").await;
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(3), "Call Globex back").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    let report = worker.tick().await.unwrap();
    assert_eq!(report.delivered.retried, 1, "{report:?}");

    let later = Utc::now() + chrono::Duration::minutes(10);
    worker::gauges::sample(&app.state, later).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(worker::serve_metrics(listener));
    assert_eq!(app.http.get(format!("{base}/healthz")).send().await.unwrap().text().await.unwrap(), "ok");
    let metrics = app.http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |series: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("herald_outbox_messages{status=\"pending\"}") >= 1.0);
    let overdue = value("herald_outbox_oldest_due_seconds");
    assert!((500.0..=600.0).contains(&overdue), "ten minutes on, the email has waited some 9-10 minutes past its retry: {overdue}");
    value("herald_mailbox_scan_lag_seconds");
    assert!(value("herald_outbox_retried_total") >= 1.0);
    smtp.stop().await;
}

/// Leases follow the work: a worker renews the lease of what it holds while it sends, so a
/// lease can be short (a dead worker's messages are soon taken over: see the kill test) and
/// yet a slow send past it is not taken over and sent again by another worker.
#[tokio::test]
async fn a_slow_send_outlasts_its_lease_and_no_other_worker_takes_it_over() {
    let app = spawn_with(|c| c.worker.lease = Duration::from_secs(1)).await;
    // The server takes 2.5 s to accept a message: two and a half leases.
    let smtp = TestSmtp::start(&["--delay-ms", "2500"]).await;
    configure(&app, &smtp, &[]).await;
    let (owner, _) = app.user("Olga Owner", "USER").await;
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(3), "Call Globex back").await;
    let (first, second) = (Worker::new(app.state.clone()).await.unwrap(), Worker::new(app.state.clone()).await.unwrap());
    let meanwhile = async {
        // Past the first claim's original lease, while its send is under way.
        tokio::time::sleep(Duration::from_millis(1700)).await;
        second.tick().await.unwrap()
    };
    let (sent, taken) = tokio::join!(first.tick(), meanwhile);
    assert_eq!(sent.unwrap().delivered.sent, 1);
    assert_eq!(taken.delivered, worker::delivery::Delivered::default(), "the second worker took over a message being sent");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(smtp.received().len(), 1, "sent once");
    assert_eq!(outbox(&app).await[0]["status"], "SENT");
    smtp.stop().await;
}

async fn pause(app: &TestApp, paused: bool) {
    let body = app.admin("mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { paused } } }", json!({"i": {"paused": paused}})).await;
    assert_eq!(body["updateAccount"]["account"]["paused"], paused);
}

/// A paused account's mail is held, not failed: it waits without using attempts, and goes out
/// when the account is resumed; a reminder whose activity fell due meanwhile is dropped.
#[tokio::test]
async fn a_paused_accounts_mail_waits_and_goes_out_when_it_is_resumed() {
    let app = app().await;
    let smtp = TestSmtp::start(&[]).await;
    configure(&app, &smtp, &[]).await;
    let (owner, owner_token) = app.user("Olga Owner", "USER").await;
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(3), "Call Globex back").await;
    create_activity(&app, &owner, Utc::now() + chrono::Duration::seconds(2), "Call Initech now").await;
    // Both reminders are queued; then the account is paused before they go.
    worker::scheduler::run(&app.state, Utc::now()).await.unwrap();
    pause(&app, true).await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    assert_eq!(worker.tick().await.unwrap().delivered.held, 2);
    // Hours later (past when retries would have run out) they still wait, unspent: holding a
    // message spends none of its attempts.
    let report = worker.tick_at(Utc::now() + chrono::Duration::hours(4)).await.unwrap();
    assert_eq!(report.delivered, worker::delivery::Delivered::default(), "held messages are not claimed again");
    for m in outbox(&app).await {
        assert_eq!((m["status"].as_str(), m["attempts"].as_i64()), (Some("HELD"), Some(0)), "{m}");
        assert_eq!(m["lastError"], "held: the account is paused");
    }
    assert!(!panel_types(&app, &owner_token).await.contains(&"EMAIL_FAILED_ERROR".to_string()));

    // Resumed after the second activity fell due: the first reminder goes, the second is dropped.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    pause(&app, false).await;
    assert_eq!(worker.tick().await.unwrap().delivered.sent, 1);
    assert_eq!(smtp.wait_for(1, 10).await.len(), 1);
    let messages = outbox(&app).await;
    assert!(messages.iter().any(|m| m["status"] == "SENT"), "{messages:#?}");
    let dropped = messages.iter().find(|m| m["status"] == "FAILED").expect("the late reminder");
    assert!(dropped["lastError"].as_str().unwrap().contains("due before"), "{dropped}");
    smtp.stop().await;
}

/// Without an SMTP server (and so without a sender address: the settings require one with the
/// other), emails wait with a clear state and the company admins are told once; completing the
/// settings sends them.
#[tokio::test]
async fn without_an_smtp_server_mail_waits_and_the_admins_are_told_once() {
    let app = app().await;
    let smtp = TestSmtp::start(&[]).await;
    let mut input = settings_input(0, &smtp, &[]);
    input["smtp"] = Value::Null;
    input["senderAddress"] = Value::Null;
    let saved = change_settings(&app, input).await;
    assert!(saved.get("errors").is_none(), "{saved:#}");
    let (owner, _) = app.user("Olga Owner", "USER").await;
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(3), "Call Globex back").await;
    create_activity(&app, &owner, Utc::now() + chrono::Duration::hours(4), "Call Initech back").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    assert_eq!(worker.tick().await.unwrap().delivered.held, 2);
    let messages = outbox(&app).await;
    assert!(messages.iter().all(|m| m["status"] == "HELD" && m["lastError"] == "held: no SMTP server is set in the activity settings"), "{messages:#?}");
    let told = panel_types(&app, &app.admin_token).await.iter().filter(|t| *t == "SYSTEM_ERROR_INFORMATION").count();
    assert_eq!(told, 1, "told once for both messages");

    let completed = change_settings(&app, settings_input(1, &smtp, &[])).await;
    assert!(completed.get("errors").is_none(), "{completed:#}");
    assert_eq!(worker.tick().await.unwrap().delivered.sent, 2);
    assert_eq!(smtp.wait_for(2, 10).await.len(), 2);
    smtp.stop().await;
}

/// The senders as a recipient's mail program shows them: a reminder with sender USER_ACCOUNT
/// whose owner has no mailbox that sends is From the system address with the owner as
/// Reply-To (never a From its server cannot vouch for), and says so on the message; an
/// escalation with sender EMAIL is From the address given.
#[tokio::test]
async fn user_account_and_email_senders_as_received() {
    let app = app().await;
    let smtp = TestSmtp::start(&[]).await;
    let (owner, _) = app.user("Olga Owner", "USER").await;
    let (boss, _) = app.user("Bea Boss", "COMPANY_SUPERVISOR").await;
    let mut input = settings_input(0, &smtp, &[&boss]);
    input["activityAlerts"]["sender"] = json!("USER_ACCOUNT");
    input["lateResponse"]["sender"] = json!("EMAIL");
    input["lateResponse"]["senderEmail"] = json!("escalations@acme.example");
    let saved = change_settings(&app, input).await;
    assert!(saved.get("errors").is_none(), "{saved:#}");
    let worker = Worker::new(app.state.clone()).await.unwrap();
    let due = Utc::now() + chrono::Duration::minutes(30);
    create_activity(&app, &owner, due, "Send the proposal").await;

    worker.tick().await.unwrap();
    let reminder = smtp.wait_for(1, 10).await.remove(0);
    let mail = reminder.parsed();
    let from = mail.from().unwrap().first().unwrap();
    assert_eq!((from.name(), from.address()), (Some("Acme CRM"), Some("crm@acme.example")));
    let reply_to = mail.reply_to().unwrap().first().unwrap();
    assert_eq!((reply_to.name(), reply_to.address()), (Some("Olga Owner"), Some(email_of(&app, &owner).await.as_str())));
    assert!(mail.sender().is_none(), "{}", reminder.raw);
    assert_eq!(reminder.mail_from, "crm@acme.example", "the envelope is the system address's");
    let recorded = app.admin("{ outboundMessages(first: 5) { edges { node { sentAs senderNote } } } }", json!({})).await;
    let node = &recorded["outboundMessages"]["edges"][0]["node"];
    assert_eq!(node["sentAs"], "SYSTEM", "{recorded:#}");
    assert!(node["senderNote"].as_str().unwrap().contains("no connected outgoing mailbox"), "{recorded:#}");

    worker.tick_at(due + chrono::Duration::minutes(150)).await.unwrap();
    let got = smtp.wait_for(2, 10).await;
    let escalation = got.iter().find(|r| r.parsed().subject().unwrap_or_default().starts_with("Late:")).expect("the escalation");
    let mail = escalation.parsed();
    assert_eq!(mail.from().unwrap().first().unwrap().address(), Some("escalations@acme.example"));
    assert!(mail.sender().is_none(), "{}", escalation.raw);
    smtp.stop().await;
}
