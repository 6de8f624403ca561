//! Integrations and their reports: the system reports recipients settings (seeds/000) and who
//! receives a report.

use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, TestApp, TestSmtp};

const SETTINGS: &str = "reportSettings { roles users { id name } bcc version }";
const RECIPIENTS: &str = "{ reportRecipients { user { name } email byRole added } }";

async fn change(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql(Some(token), &format!("mutation($i: ChangeReportSettingsInput!) {{ changeReportSettings(input: $i) {{ {SETTINGS} }} }}"), json!({"i": input})).await
}

fn names(recipients: &Value) -> Vec<(String, bool, bool)> {
    recipients["reportRecipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["user"]["name"].as_str().unwrap().to_string(), r["byRole"].as_bool().unwrap(), r["added"].as_bool().unwrap()))
        .collect()
}

#[tokio::test]
async fn report_recipients_are_the_roles_and_the_added_users_active_and_once() {
    let app = spawn_app().await;
    let admin = app.admin_token.clone();
    let defaults = app.admin(&format!("{{ {SETTINGS} }}"), json!({})).await;
    assert_eq!(defaults["reportSettings"], json!({"roles": ["COMPANY_ADMIN"], "users": [], "bcc": null, "version": 0}));
    let who = app.admin(RECIPIENTS, json!({})).await;
    assert_eq!(who["reportRecipients"].as_array().unwrap().len(), 1, "the bootstrap admin: {who:#}");
    assert_eq!(who["reportRecipients"][0]["byRole"], true);

    app.user("Bea Billing", "BILLING_ADMIN").await;
    let (sam, _) = app.user("Sam Super", "COMPANY_SUPERVISOR").await;
    let (uma, uma_token) = app.user("Uma User", "USER").await;
    let (gone, _) = app.user("Gil Gone", "BILLING_ADMIN").await;
    app.admin("mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { id } } }", json!({"i": {"id": gone, "active": false}})).await;

    let saved = change(
        &app,
        &admin,
        json!({"expectedVersion": 0, "roles": ["BILLING_ADMIN", "COMPANY_SUPERVISOR"], "userIds": [uma, sam, uma], "bcc": " Escalations@Acme.example "}),
    )
    .await;
    let s = &saved["data"]["changeReportSettings"]["reportSettings"];
    assert_eq!(s["roles"], json!(["BILLING_ADMIN", "COMPANY_SUPERVISOR"]), "{saved:#}");
    assert_eq!(s["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect::<Vec<_>>(), vec![uma.as_str(), sam.as_str()]);
    assert_eq!((s["bcc"].as_str(), s["version"].as_i64()), (Some("escalations@acme.example"), Some(1)));
    let who = app.admin(RECIPIENTS, json!({})).await;
    assert_eq!(
        names(&who),
        vec![("Bea Billing".into(), true, false), ("Sam Super".into(), true, true), ("Uma User".into(), false, true)],
        "active members of the roles (not Gil, deactivated), then the added users, each once: {who:#}"
    );

    // Bad input, each refused with its field and nothing saved.
    let other_user = app.other_tenant().await.0;
    for (input, field) in [
        (json!({"expectedVersion": 1, "roles": ["USER"]}), "input.roles"),
        (json!({"expectedVersion": 1, "roles": [], "bcc": "not an address"}), "input.bcc"),
        (json!({"expectedVersion": 1, "roles": [], "userIds": [other_user]}), "input.userIds"),
    ] {
        let body = change(&app, &admin, input).await;
        assert_eq!((error_code(&body), body["errors"][0]["extensions"]["field"].as_str()), (Some("BAD_USER_INPUT"), Some(field)), "{body:#}");
    }
    let body = change(&app, &admin, json!({"expectedVersion": 0, "roles": []})).await;
    assert_eq!(error_code(&body), Some("CONFLICT"), "a stale version: {body:#}");
    let body = change(&app, &uma_token, json!({"expectedVersion": 1, "roles": []})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body:#}");
    assert_eq!(app.admin(&format!("{{ {SETTINGS} }}"), json!({})).await["reportSettings"]["version"], 1, "nothing was saved");

    // Reset restores the defaults; both changes are audited.
    let reset = app.admin(&format!("mutation {{ resetReportSettings(input: {{expectedVersion: 1}}) {{ {SETTINGS} }} }}"), json!({})).await;
    assert_eq!(reset["resetReportSettings"]["reportSettings"], json!({"roles": ["COMPANY_ADMIN"], "users": [], "bcc": null, "version": 2}));
    let audit = app.admin("{ auditLog(first: 10, filter: {objectType: \"ReportSettings\"}) { nodes { action } } }", json!({})).await;
    assert_eq!(audit["auditLog"]["nodes"], json!([{"action": "report_settings.reset"}, {"action": "report_settings.changed"}]), "{audit:#}");
}

const INTEGRATION: &str = "id enabled features health tabs version settings { sync { direction frequencyMinutes objects conflictRule } mapping { crmField property direction } filters { field operator value } communication { logEmails logCalls logMeetings logNotes logTexts } }";

async fn integration_call(app: &TestApp, mutation: &str, input: Value) -> Value {
    let name = mutation.split('(').next().unwrap();
    let input_type = format!("{}{}Input", name[..1].to_uppercase(), &name[1..]);
    app.gql(Some(&app.admin_token), &format!("mutation($i: {input_type}!) {{ {name}(input: $i) {{ integration {{ {INTEGRATION} }} }} }}"), json!({"i": input}))
        .await
}

fn full_settings() -> Value {
    json!({
        "sync": {"direction": "FROM_INTEGRATION", "frequencyMinutes": 60, "objects": ["CONTACTS", "DEALS"], "conflictRule": "CRM_WINS"},
        "mapping": [
            {"crmField": "NAME", "property": "firstname", "direction": "BOTH"},
            {"crmField": "MAIN_EMAIL", "property": "email", "direction": "TO_INTEGRATION"},
            {"crmField": "VALID", "property": "hs_email_optout", "direction": "FROM_INTEGRATION"},
        ],
        "filters": [{"field": "KIND", "operator": "EQUALS", "value": "CUSTOMER"}],
        "communication": {"logEmails": true, "logCalls": false, "logMeetings": true, "logNotes": false, "logTexts": false},
    })
}

/// An integration is added off with the recommended settings, turned on with its features
/// (raising Integration Enabled), its tabs saved together (every error naming its tab and
/// field, nothing saved) and reset one at a time, saying what changed.
#[tokio::test]
async fn integrations_turn_on_and_off_and_their_tabs_save_together_and_reset() {
    let app = spawn_app().await;
    app.switch_on(&app.admin_token, "INTEGRATION_ENABLED", "SYSTEM").await;
    app.switch_on(&app.admin_token, "INTEGRATION_DISABLED", "SYSTEM").await;
    let created = integration_call(&app, "createIntegration", json!({"provider": "HUBSPOT", "features": ["SYNC"]})).await;
    let hubspot = &created["data"]["createIntegration"]["integration"];
    assert_eq!((hubspot["enabled"].as_bool(), hubspot["health"].as_str()), (Some(false), Some("DISABLED")), "{created:#}");
    assert_eq!(hubspot["tabs"], json!(["SYNC", "CONTACT_PROPERTY_MAPPING"]));
    assert_eq!(
        hubspot["settings"]["mapping"],
        json!([{"crmField": "NAME", "property": "firstname", "direction": "BOTH"}, {"crmField": "MAIN_EMAIL", "property": "email", "direction": "BOTH"}])
    );
    let id = hubspot["id"].clone();
    let again = integration_call(&app, "createIntegration", json!({"provider": "HUBSPOT"})).await;
    assert_eq!(error_code(&again), Some("CONFLICT"));
    let properties = app.admin("{ integrationProperties(provider: HUBSPOT) { name valueType } }", json!({})).await;
    assert!(properties.to_string().contains("hs_email_optout"), "{properties:#}");

    let on = integration_call(
        &app,
        "setIntegrationEnabled",
        json!({"id": id, "expectedVersion": 1, "enabled": true, "features": ["SYNC", "FILTERS", "COMMUNICATION"]}),
    )
    .await;
    let on = &on["data"]["setIntegrationEnabled"]["integration"];
    assert_eq!((on["health"].as_str(), on["version"].as_i64()), (Some("CONNECTED"), Some(2)));
    assert_eq!(on["tabs"], json!(["SYNC", "CONTACT_PROPERTY_MAPPING", "FILTERS", "COMMUNICATION"]));
    let panel = app.admin("{ notifications(first: 10) { edges { node { type title } } } }", json!({})).await;
    assert!(panel.to_string().contains("INTEGRATION_ENABLED"), "{panel:#}");

    // Bad tabs: each names its tab and field, and nothing is saved.
    let broken = |path: &str, value: Value| {
        let mut s = full_settings();
        let mut at = &mut s;
        let parts: Vec<&str> = path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            at = match p.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*p],
            };
        }
        let last = parts[parts.len() - 1];
        match last.parse::<usize>() {
            Ok(i) => at[i] = value,
            Err(_) => at[last] = value,
        }
        s
    };
    for (settings, field) in [
        (broken("mapping.0.property", json!("nope")), "input.settings.mapping[0].property"),
        (broken("mapping.1.crmField", json!("NAME")), "input.settings.mapping[1].crmField"),
        (broken("mapping.2.crmField", json!("MAIN_EMAIL")), "input.settings.mapping[2].crmField"),
        (broken("mapping.2.property", json!("email")), "input.settings.mapping[2].property"),
        (broken("sync.frequencyMinutes", json!(1)), "input.settings.sync.frequencyMinutes"),
        (broken("filters.0.value", Value::Null), "input.settings.filters[0].value"),
    ] {
        let body = integration_call(&app, "saveIntegrationSettings", json!({"id": id, "expectedVersion": 2, "settings": settings})).await;
        assert_eq!((error_code(&body), body["errors"][0]["extensions"]["field"].as_str()), (Some("BAD_USER_INPUT"), Some(field)), "{body:#}");
    }
    let saved = integration_call(&app, "saveIntegrationSettings", json!({"id": id, "expectedVersion": 2, "settings": full_settings()})).await;
    let saved = &saved["data"]["saveIntegrationSettings"]["integration"];
    assert_eq!((saved["version"].as_i64(), &saved["settings"]), (Some(3), &full_settings()), "nothing was saved before: {saved:#}");

    // Reset, one tab at a time, says what changed.
    let reset =
        "mutation($i: ResetIntegrationTabInput!) { resetIntegrationTab(input: $i) { changed integration { version settings { sync { frequencyMinutes } } } } }";
    let body = app.admin(reset, json!({"i": {"id": id, "expectedVersion": 3, "tab": "SYNC"}})).await;
    assert_eq!(body["resetIntegrationTab"]["changed"], json!(["direction", "frequencyMinutes", "objects", "conflictRule"]));
    assert_eq!(body["resetIntegrationTab"]["integration"]["settings"]["sync"]["frequencyMinutes"], 15);
    let body = app.admin(reset, json!({"i": {"id": id, "expectedVersion": 4, "tab": "COMMUNICATION"}})).await;
    assert_eq!(body["resetIntegrationTab"]["changed"], json!(["logCalls", "logMeetings"]));
    let body = app.gql(Some(&app.admin_token), reset, json!({"i": {"id": id, "expectedVersion": 5, "tab": "CONTACT_PROPERTY_MAPPING"}})).await;
    assert_eq!((error_code(&body), body["errors"][0]["extensions"]["field"].as_str()), (Some("BAD_USER_INPUT"), Some("input.tab")));

    // Off, with FILTERS gone: its tab is no longer offered, its rules are dropped.
    let off =
        integration_call(&app, "setIntegrationEnabled", json!({"id": id, "expectedVersion": 5, "enabled": false, "features": ["SYNC", "COMMUNICATION"]})).await;
    let off = &off["data"]["setIntegrationEnabled"]["integration"];
    assert_eq!((off["health"].as_str(), &off["tabs"]), (Some("DISABLED"), &json!(["SYNC", "CONTACT_PROPERTY_MAPPING", "COMMUNICATION"])));
    assert_eq!(off["settings"]["filters"], json!([]));
    let body = app.gql(Some(&app.admin_token), reset, json!({"i": {"id": id, "expectedVersion": 6, "tab": "FILTERS"}})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "FILTERS is off: {body:#}");
    let panel = app.admin("{ notifications(first: 10) { edges { node { type } } } }", json!({})).await;
    assert!(panel.to_string().contains("INTEGRATION_DISABLED"), "{panel:#}");
    let audit = app.admin("{ auditLog(first: 20, filter: {objectType: \"Integration\"}) { nodes { action } } }", json!({})).await;
    assert_eq!(audit["auditLog"]["nodes"].as_array().unwrap().len(), 6, "created, enabled, saved, two resets, disabled: {audit:#}");
}

// --- reports by email, against the real SMTP server ----------------------------------------------

const REPORT: &str = "integration { id health version problems { kind connection reason actions deadline records } } duplicate alerted email { id subject sourceKey recipients { field address userId } }";

fn smtp_settings(smtp: &TestSmtp) -> Value {
    json!({
        "expectedVersion": 0,
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "NONE", "username": smtp.user, "password": smtp.password},
        "senderAddress": "crm@acme.example",
        "senderName": "Acme CRM",
        "activityAlerts": {"intervalHours": 24, "sender": "SYSTEM_ACCOUNT"},
        "lateResponse": {"intervalHours": 2, "sender": "SYSTEM_ACCOUNT", "defaultPersonIds": []},
    })
}

/// Saves activity settings that send through `smtp` as crm@acme.example.
async fn use_smtp(app: &TestApp, smtp: &TestSmtp) {
    let body = app
        .gql(
            Some(&app.admin_token),
            "mutation($i: ChangeActivitySettingsInput!) { changeActivitySettings(input: $i) { activitySettings { version } } }",
            json!({"i": smtp_settings(smtp)}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body:#}");
}

/// An account with an SMTP server, report recipients (company admins and billing admins, Uma
/// added by name, a BCC), an integration service's key (PUBLISH_EVENTS) and HubSpot, on.
struct Reporting {
    app: TestApp,
    smtp: TestSmtp,
    key: String,
    integration: String,
    /// The addresses the reports go To: the admin, Bea (billing admin), Uma (added).
    to: Vec<String>,
    /// Uma, added by name, with her switches as they come.
    uma: String,
    uma_token: String,
    /// Sam, a company supervisor: not a recipient.
    sam: String,
}

async fn reporting(window_minutes: i64) -> Reporting {
    reporting_with(window_minutes, &[]).await
}

/// [`reporting`] with the SMTP server started with `smtp_args`.
async fn reporting_with(window_minutes: i64, smtp_args: &[&str]) -> Reporting {
    let app = spawn_app().await;
    let smtp = TestSmtp::start(smtp_args).await;
    use_smtp(&app, &smtp).await;
    app.user("Bea Billing", "BILLING_ADMIN").await;
    let (sam, _) = app.user("Sam Super", "COMPANY_SUPERVISOR").await;
    let (uma, uma_token) = app.user("Uma User", "USER").await;
    let body = change(
        &app,
        &app.admin_token,
        json!({"expectedVersion": 0, "roles": ["COMPANY_ADMIN", "BILLING_ADMIN"], "userIds": [uma], "bcc": "escalations@acme.example",
               "mappingErrorWindowMinutes": window_minutes}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let who = app.admin(RECIPIENTS, json!({})).await;
    let to: Vec<String> = who["reportRecipients"].as_array().unwrap().iter().map(|r| r["email"].as_str().unwrap().to_string()).collect();
    assert_eq!(to.len(), 3, "{who:#}");
    let key = app.admin("mutation { createApiKey(input: {name: \"HubSpot sync service\", scopes: [PUBLISH_EVENTS]}) { secret } }", json!({})).await
        ["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let created = integration_call(&app, "createIntegration", json!({"provider": "HUBSPOT", "features": ["SYNC"]})).await;
    let integration = created["data"]["createIntegration"]["integration"]["id"].as_str().unwrap().to_string();
    let on = integration_call(&app, "setIntegrationEnabled", json!({"id": integration, "expectedVersion": 1, "enabled": true})).await;
    assert!(on.get("errors").is_none(), "{on:#}");
    Reporting { app, smtp, key, integration, to, uma, uma_token, sam }
}

impl Reporting {
    async fn report(&self, mutation: &str, input: Value) -> Value {
        let name = mutation;
        let input_type = match name {
            "reportIntegrationReauthenticationRequired" => "ReauthenticationRequiredInput",
            "reportIntegrationConnectionError" => "ConnectionErrorInput",
            "reportIntegrationConnectionRestored" => "ConnectionRestoredInput",
            "reportContactMappingErrors" => "ContactMappingErrorsInput",
            "reportDataSyncSummary" => "DataSyncSummaryInput",
            other => panic!("no report {other}"),
        };
        let mut input = input;
        input["integrationId"] = json!(self.integration);
        self.app.gql(Some(&self.key), &format!("mutation($i: {input_type}!) {{ {name}(input: $i) {{ {REPORT} }} }}"), json!({"i": input})).await
    }

    async fn deliver(&self, at: chrono::DateTime<chrono::Utc>) -> worker::TickReport {
        let worker = worker::Worker::new(self.app.state.clone()).await.unwrap();
        worker.tick_at(at).await.unwrap()
    }
}

fn reauth(key: &str) -> Value {
    json!({"idempotencyKey": key, "connection": "HubSpot portal 4471", "reason": "The refresh token was revoked in HubSpot.",
           "steps": ["Open Settings > Integrations > HubSpot and click Reconnect.", "Sign in as a HubSpot super admin."],
           "deadline": "2026-12-08T17:00:00Z"})
}

fn header_addresses(m: &crate::helpers::Received, header: &str) -> Vec<String> {
    let parsed = m.parsed();
    let list = match header {
        "To" => parsed.to(),
        "Cc" => parsed.cc(),
        _ => parsed.bcc(),
    };
    list.map(|a| a.iter().filter_map(|x| x.address().map(|s| s.to_lowercase())).collect()).unwrap_or_default()
}

/// Report emails go to the recipients by role and by name, the BCC in the envelope only; a
/// connection that keeps failing is emailed once and its recovery once more; a data sync
/// summary once per run; turning the integration on and off emails too.
#[tokio::test]
async fn integration_alerts_follow_state_and_reach_the_recipients_with_the_bcc() {
    let r = reporting(15).await;
    let app = &r.app;
    for kind in ["INTEGRATION_REAUTHENTICATION_REQUIRED", "DATA_SYNC_SUMMARY"] {
        app.switch_on(&app.admin_token, kind, "SYSTEM").await;
    }

    let first = r.report("reportIntegrationReauthenticationRequired", reauth("hs-auth-1")).await;
    let first = &first["data"]["reportIntegrationReauthenticationRequired"];
    assert_eq!((first["alerted"].as_bool(), first["duplicate"].as_bool()), (Some(true), Some(false)), "{first:#}");
    assert_eq!(first["integration"]["health"], "REAUTH_REQUIRED");
    assert_eq!(first["integration"]["problems"][0]["kind"], "REAUTHENTICATION_REQUIRED");
    assert_eq!(first["integration"]["problems"][0]["deadline"], "2026-12-08T17:00:00+00:00");
    let fields: Vec<&str> = first["email"]["recipients"].as_array().unwrap().iter().map(|x| x["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["TO", "TO", "TO", "BCC"], "{first:#}");

    // The same failure again, under other keys: no second alert. The same key: a duplicate.
    for key in ["hs-auth-2", "hs-auth-3"] {
        let again = r.report("reportIntegrationReauthenticationRequired", reauth(key)).await;
        assert_eq!(again["data"]["reportIntegrationReauthenticationRequired"]["alerted"], false, "{again:#}");
    }
    let replay = r.report("reportIntegrationReauthenticationRequired", reauth("hs-auth-1")).await;
    let replay = &replay["data"]["reportIntegrationReauthenticationRequired"];
    assert_eq!((replay["duplicate"].as_bool(), replay["alerted"].as_bool()), (Some(true), Some(true)));
    assert_eq!(replay["email"]["id"], first["email"]["id"], "a replay answers the first email");

    // Recovery: one "resolved" email; a second restored report changes nothing.
    let restored = r.report("reportIntegrationConnectionRestored", json!({"idempotencyKey": "hs-ok-1"})).await;
    let restored = &restored["data"]["reportIntegrationConnectionRestored"];
    assert_eq!((restored["alerted"].as_bool(), restored["integration"]["health"].as_str()), (Some(true), Some("CONNECTED")), "{restored:#}");
    assert_eq!(restored["integration"]["problems"], json!([]));
    let again = r.report("reportIntegrationConnectionRestored", json!({"idempotencyKey": "hs-ok-2"})).await;
    assert_eq!(again["data"]["reportIntegrationConnectionRestored"]["alerted"], false);

    // A sync summary: one email per run, whatever the replays.
    let run = json!({"idempotencyKey": "run-2026-12-06T10", "startedAt": "2026-12-06T10:00:00Z", "finishedAt": "2026-12-06T10:04:00Z",
        "operations": [{"object": "CONTACTS", "created": 12, "updated": 340, "skipped": 2}, {"object": "DEALS", "created": 3, "updated": 9, "deleted": 1, "failed": 4}],
        "warnings": [{"object": "DEALS", "message": "4 deals reference a pipeline stage that no longer exists", "count": 4}],
        "followUps": [{"action": "Map the deleted pipeline stage to an existing one", "deadline": "2026-12-07T12:00:00Z"}]});
    for _ in 0..2 {
        let summary = r.report("reportDataSyncSummary", run.clone()).await;
        assert!(summary.get("errors").is_none(), "{summary:#}");
    }

    let version = app.admin("query($id: ID!) { integration(id: $id) { version } }", json!({"id": r.integration})).await["integration"]["version"].clone();
    let off = integration_call(app, "setIntegrationEnabled", json!({"id": r.integration, "expectedVersion": version, "enabled": false})).await;
    assert!(off.get("errors").is_none(), "{off:#}");

    r.deliver(chrono::Utc::now()).await;
    let got = r.smtp.wait_for(5, 20).await;
    let subjects: Vec<String> = got.iter().map(|m| m.parsed().subject().unwrap_or_default().to_string()).collect();
    assert_eq!(got.len(), 5, "enabled, re-authentication, resolved, one summary, disabled: {subjects:#?}");
    let mut expected_rcpt: Vec<String> = r.to.iter().map(|a| a.to_lowercase()).collect();
    expected_rcpt.push("escalations@acme.example".into());
    expected_rcpt.sort();
    for m in &got {
        let mut rcpt: Vec<String> = m.rcpt_tos.iter().map(|a| a.to_lowercase()).collect();
        rcpt.sort();
        assert_eq!(rcpt, expected_rcpt, "every report reaches the recipients and the BCC");
        let mut to = header_addresses(m, "To");
        to.sort();
        let mut wanted_to: Vec<String> = r.to.iter().map(|a| a.to_lowercase()).collect();
        wanted_to.sort();
        assert_eq!(to, wanted_to);
        assert!(!m.raw.to_lowercase().contains("escalations@acme.example"), "the BCC is in no header: {}", m.raw);
        assert!(!m.raw.contains("sam-super"), "a supervisor is not a recipient here");
        assert_eq!(m.parsed().from().and_then(|f| f.first()).and_then(|a| a.address()).map(str::to_string), Some("crm@acme.example".to_string()));
        let text = m.parsed().body_text(0).unwrap().to_string();
        assert!(text.contains("Deadline: ") && text.contains("Recommended actions:"), "{text}");
    }
    let by_subject =
        |needle: &str| got.iter().find(|m| m.parsed().subject().unwrap_or_default().contains(needle)).unwrap_or_else(|| panic!("{needle}: {subjects:#?}"));
    let reauth_mail = by_subject("Action required: reconnect HubSpot");
    let text = reauth_mail.parsed().body_text(0).unwrap().to_string();
    assert!(text.contains("Deadline: Tue 8 Dec 2026, 17:00 UTC"), "the deadline in the account's zone: {text}");
    assert!(text.contains("1. Open Settings > Integrations > HubSpot and click Reconnect."), "{text}");
    assert!(text.contains("The refresh token was revoked in HubSpot."));
    let resolved = by_subject("Resolved: HubSpot connection");
    assert!(resolved.parsed().body_text(0).unwrap().contains("re-authentication required"));
    let summary = by_subject("HubSpot sync completed with warnings: 365 changed, 4 failed");
    let text = summary.parsed().body_text(0).unwrap().to_string();
    assert!(text.contains("Deals: 3 created, 9 updated, 1 deleted, 4 FAILED") && text.contains("Map the deleted pipeline stage"), "{text}");
    assert!(text.contains("Deadline: Mon 7 Dec 2026, 12:00 UTC"), "the earliest follow-up's deadline: {text}");
    by_subject("HubSpot integration enabled");
    let disabled = by_subject("HubSpot integration disabled");
    assert!(disabled.parsed().body_html(0).unwrap().contains("turned off by"));

    // The panels follow each user's switches: the admin's has one row per state change and
    // run (System Information, for the recovery, is on by default); Uma got every email, but
    // her Data Sync Summary switch is off by default, so no row for it.
    let panel = |token: String| async move {
        let body = app.gql(Some(&token), "{ notifications(first: 50) { edges { node { type } } } }", json!({})).await;
        body["data"]["notifications"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["type"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let mut admin_rows = panel(app.admin_token.clone()).await;
    admin_rows.sort();
    assert_eq!(admin_rows, vec!["DATA_SYNC_SUMMARY", "INTEGRATION_REAUTHENTICATION_REQUIRED", "SYSTEM_INFORMATION"], "the resolved one too (on by default)");
    let mut uma_rows = panel(r.uma_token.clone()).await;
    uma_rows.sort();
    assert_eq!(uma_rows, vec!["INTEGRATION_REAUTHENTICATION_REQUIRED", "SYSTEM_INFORMATION"], "her Data Sync Summary switch is off: no row, yet the email");

    // The outbox shows them as sent, addressed.
    let sent = app.admin("{ outboundMessages(first: 20) { nodes { status subject recipient { id } recipients { field } } } }", json!({})).await;
    let nodes = sent["outboundMessages"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5, "{sent:#}");
    assert!(nodes.iter().all(|n| n["status"] == "SENT" && n["recipient"].is_null() && n["recipients"].as_array().unwrap().len() == 4), "{sent:#}");
    let filtered = |id: String| async move {
        let body = app.admin("query($id: ID!) { outboundMessages(first: 20, filter: {recipientId: $id}) { nodes { id } } }", json!({"id": id})).await;
        body["outboundMessages"]["nodes"].as_array().unwrap().len()
    };
    assert_eq!(filtered(r.uma.clone()).await, 5, "the emails that name Uma");
    assert_eq!(filtered(r.sam.clone()).await, 0);
}

/// Mapping errors are kept per record and emailed as one list when the window ends: a record
/// reported twice is listed once, a record fixed meanwhile is not listed, a record already
/// told is not told again, and a new one opens the next window.
#[tokio::test]
async fn contact_mapping_errors_are_grouped_into_one_email_per_window() {
    let r = reporting(10).await;
    let error = |id: &str, text: &str| {
        json!({"object": "CONTACTS", "recordId": id, "recordName": format!("Contact {id}"), "field": "MAIN_EMAIL", "error": text,
               "tips": ["HubSpot rejects addresses without a domain."], "actions": ["Correct the email address in the CRM."]})
    };
    let t0 = chrono::Utc::now();
    let a = r.report("reportContactMappingErrors", json!({"idempotencyKey": "m-1", "errors": [error("901", "bad email"), error("902", "bad email")]})).await;
    assert_eq!(a["data"]["reportContactMappingErrors"]["alerted"], true, "the first error opens the window: {a:#}");
    assert!(a["data"]["reportContactMappingErrors"]["email"].is_null(), "the email waits for the window's end");
    let b =
        r.report("reportContactMappingErrors", json!({"idempotencyKey": "m-2", "errors": [error("902", "duplicate email"), error("903", "bad email")]})).await;
    assert_eq!(b["data"]["reportContactMappingErrors"]["alerted"], false, "the window is open already: {b:#}");
    r.report("reportContactMappingErrors", json!({"idempotencyKey": "m-3", "resolved": [{"object": "CONTACTS", "recordId": "903"}]})).await;

    assert_eq!(r.deliver(t0 + chrono::Duration::minutes(5)).await.reports, 0, "the window is still open");
    assert_eq!(r.deliver(t0 + chrono::Duration::minutes(11)).await.reports, 1);
    assert_eq!(r.deliver(t0 + chrono::Duration::minutes(12)).await.reports, 0, "closed once");
    let got = r.smtp.wait_for(2, 20).await;
    let mapping: Vec<_> = got.iter().filter(|m| m.parsed().subject().unwrap_or_default().contains("could not be mapped")).collect();
    assert_eq!(mapping.len(), 1, "{:#?}", got.iter().map(|m| m.parsed().subject().unwrap_or_default().to_string()).collect::<Vec<_>>());
    let text = mapping[0].parsed().body_text(0).unwrap().to_string();
    assert!(mapping[0].parsed().subject().unwrap().contains("2 records could not be mapped with HubSpot"), "{text}");
    assert!(text.contains("Contact Contact 901 (id 901), field MAIN_EMAIL"), "{text}");
    assert!(text.contains("Contact Contact 902 (id 902), field MAIN_EMAIL, reported 2 times") && text.contains("Error: duplicate email"), "{text}");
    assert!(!text.contains("903"), "fixed before the window ended: {text}");
    assert!(text.contains("Fix: Correct the email address in the CRM."));
    assert!(mapping[0].rcpt_tos.iter().any(|a| a == "escalations@acme.example"));

    // 902 again: told already, nothing new. 904, and 903 failing again after its fix: a new
    // window, its own email, 903 counted afresh.
    let d = r.report("reportContactMappingErrors", json!({"idempotencyKey": "m-4", "errors": [error("902", "duplicate email")]})).await;
    assert_eq!(d["data"]["reportContactMappingErrors"]["alerted"], false, "{d:#}");
    let e =
        r.report("reportContactMappingErrors", json!({"idempotencyKey": "m-5", "errors": [error("903", "bad email again"), error("904", "bad email")]})).await;
    assert_eq!(e["data"]["reportContactMappingErrors"]["alerted"], true, "{e:#}");
    let problems = &e["data"]["reportContactMappingErrors"]["integration"]["problems"];
    assert_eq!((problems[0]["kind"].as_str(), problems[0]["records"].as_i64()), (Some("CONTACT_MAPPING_ERRORS"), Some(4)), "901 to 904: {problems:#}");
    assert_eq!(r.deliver(chrono::Utc::now() + chrono::Duration::minutes(11)).await.reports, 1);
    let got = r.smtp.wait_for(3, 20).await;
    let last = got.last().unwrap().parsed().body_text(0).unwrap().to_string();
    assert!(last.contains("id 903") && last.contains("id 904") && !last.contains("id 901") && !last.contains("id 902"), "{last}");
    assert!(!last.contains("reported 2 times"), "903 starts afresh: {last}");

    let listed =
        r.app.admin("query($id: ID!) { integration(id: $id) { mappingErrors { recordId occurrences alertedAt } } }", json!({"id": r.integration})).await;
    let ids: Vec<&str> = listed["integration"]["mappingErrors"].as_array().unwrap().iter().map(|m| m["recordId"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["901", "902", "903", "904"], "{listed:#}");
}

/// Bad reports are refused with their field, and change nothing.
#[tokio::test]
async fn bad_reports_are_refused_and_change_nothing() {
    let r = reporting(15).await;
    let before = r.app.admin("query($id: ID!) { integration(id: $id) { version health } }", json!({"id": r.integration})).await;
    let mut no_steps = reauth("k-1");
    no_steps["steps"] = json!([]);
    let body = r.report("reportIntegrationReauthenticationRequired", no_steps).await;
    assert_eq!((error_code(&body), body["errors"][0]["extensions"]["field"].as_str()), (Some("BAD_USER_INPUT"), Some("input.steps")), "{body:#}");
    let body =
        r.report("reportContactMappingErrors", json!({"idempotencyKey": "k-2", "errors": [{"object": "CONTACTS", "recordId": " ", "error": "x"}]})).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.errors[0].recordId", "{body:#}");
    let body = r.report("reportContactMappingErrors", json!({"idempotencyKey": "k-2", "errors": [{"object": "PLANETS", "recordId": "1", "error": "x"}]})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("PLANETS"), "an unknown object: {body:#}");
    let body = r
        .report(
            "reportDataSyncSummary",
            json!({"idempotencyKey": "k-3", "startedAt": "2026-12-06T10:00:00Z", "finishedAt": "2026-12-06T09:00:00Z", "operations": [{"object": "CONTACTS"}]}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.finishedAt", "{body:#}");

    // A key used for another report.
    assert!(r
        .report("reportIntegrationConnectionError", json!({"idempotencyKey": "k-4", "connection": "portal", "reason": "503"}))
        .await
        .get("errors")
        .is_none());
    let body = r.report("reportIntegrationConnectionError", json!({"idempotencyKey": "k-4", "connection": "portal", "reason": "timeout"})).await;
    assert_eq!(error_code(&body), Some("CONFLICT"), "{body:#}");

    // Another account's integration: not found, without saying whose.
    let (_, other_admin, _) = r.app.other_tenant().await;
    let theirs = r.app.gql(Some(&other_admin), "mutation { createIntegration(input: {provider: ZOHO}) { integration { id } } }", json!({})).await;
    let theirs = theirs["data"]["createIntegration"]["integration"]["id"].as_str().unwrap().to_string();
    let mut input = reauth("k-5");
    input["integrationId"] = json!(theirs);
    let body = r
        .app
        .gql(
            Some(&r.key),
            &format!("mutation($i: ReauthenticationRequiredInput!) {{ reportIntegrationReauthenticationRequired(input: $i) {{ {REPORT} }} }}"),
            json!({"i": input}),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body:#}");

    // A key without PUBLISH_EVENTS or WRITE.
    let read = r.app.admin("mutation { createApiKey(input: {name: \"reader\", scopes: [READ]}) { secret } }", json!({})).await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let mut input = reauth("k-6");
    input["integrationId"] = json!(r.integration);
    let body = r
        .app
        .gql(
            Some(&read),
            &format!("mutation($i: ReauthenticationRequiredInput!) {{ reportIntegrationReauthenticationRequired(input: $i) {{ {REPORT} }} }}"),
            json!({"i": input}),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body:#}");

    let after = r.app.admin("query($id: ID!) { integration(id: $id) { version health } }", json!({"id": r.integration})).await;
    assert_eq!(after["integration"]["health"], "ERROR", "only the one valid report changed it");
    assert_eq!(after["integration"]["version"].as_i64(), before["integration"]["version"].as_i64().map(|v| v + 1));
    let window = r.app.admin("{ reportSettings { mappingErrorWindowMinutes } }", json!({})).await;
    assert_eq!(window["reportSettings"]["mappingErrorWindowMinutes"], 15);
    let body = change(&r.app, &r.app.admin_token, json!({"expectedVersion": 1, "roles": ["COMPANY_ADMIN"], "mappingErrorWindowMinutes": 0})).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.mappingErrorWindowMinutes", "{body:#}");
}

/// A report email queued before the account has an SMTP server waits, without using its
/// attempts, and goes out once the settings are saved; nothing is lost.
#[tokio::test]
async fn report_emails_wait_for_the_smtp_server_and_then_go_out() {
    let app = spawn_app().await;
    let created = integration_call(&app, "createIntegration", json!({"provider": "ZOHO"})).await;
    let id = created["data"]["createIntegration"]["integration"]["id"].as_str().unwrap().to_string();
    integration_call(&app, "setIntegrationEnabled", json!({"id": id, "expectedVersion": 1, "enabled": true})).await;
    let worker = worker::Worker::new(app.state.clone()).await.unwrap();
    let ticked = worker.tick().await.unwrap();
    assert_eq!(ticked.delivered.held, 1, "{ticked:?}");
    let held = app.admin("{ outboundMessages(first: 5) { nodes { status attempts subject lastError } } }", json!({})).await;
    let node = &held["outboundMessages"]["nodes"][0];
    assert_eq!((node["status"].as_str(), node["attempts"].as_i64()), (Some("HELD"), Some(0)), "{held:#}");
    assert_eq!(node["subject"].as_str().map(|s| s.contains("Zoho integration enabled")), Some(true), "{held:#}");

    let smtp = TestSmtp::start(&[]).await;
    use_smtp(&app, &smtp).await;
    worker.tick().await.unwrap();
    let got = smtp.wait_for(1, 20).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].parsed().subject().unwrap().contains("Zoho integration enabled"));
}

/// A report email the server refuses for good is FAILED, and the users it was for (To, not the
/// BCC) are told in their panel; nothing is retried.
#[tokio::test]
async fn a_refused_report_email_fails_and_tells_its_recipients() {
    let r = reporting_with(15, &["--reject"]).await;
    let (_, bea_token) = {
        let who = r.app.admin("{ reportRecipients { user { id name } } }", json!({})).await;
        let bea = who["reportRecipients"].as_array().unwrap().iter().find(|x| x["user"]["name"] == "Bea Billing").unwrap()["user"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        (bea.clone(), r.app.token_for(&bea))
    };
    r.report("reportIntegrationReauthenticationRequired", reauth("hs-auth-1")).await;
    let ticked = r.deliver(chrono::Utc::now()).await;
    assert!(ticked.delivered.failed >= 1, "{ticked:?}");
    let sent = r.app.admin("{ outboundMessages(first: 10) { nodes { status subject lastError } } }", json!({})).await;
    let reauth_mail =
        sent["outboundMessages"]["nodes"].as_array().unwrap().iter().find(|n| n["subject"].as_str().unwrap().contains("reconnect")).unwrap().clone();
    assert_eq!(reauth_mail["status"], "FAILED", "{sent:#}");
    assert!(reauth_mail["lastError"].as_str().unwrap().contains("550"), "{sent:#}");
    let panel = r.app.gql(Some(&bea_token), "{ notifications(first: 10) { edges { node { type title } } } }", json!({})).await;
    let types: Vec<&str> = panel["data"]["notifications"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"EMAIL_FAILED_ERROR"), "Bea, a To recipient, is told: {panel:#}");
    let later = r.deliver(chrono::Utc::now() + chrono::Duration::hours(2)).await;
    assert_eq!(later.delivered.failed + later.delivered.sent + later.delivered.retried, 0, "failed is final: {later:?}");
}
