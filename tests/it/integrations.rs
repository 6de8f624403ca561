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
