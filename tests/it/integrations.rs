//! Integrations and their reports: the system reports recipients settings (seeds/000) and who
//! receives a report.

use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, TestApp};

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
