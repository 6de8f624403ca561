//! Notifications: the catalogue of types as the settings page reads it.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_settings_page_reads_every_type_with_its_rules() {
    let app = spawn_app().await;
    let (_, token) = app.user("Una", "USER").await;
    let body = app
        .gql(Some(&token), "{ notificationTypes { type label concernsContact stronglyEncouraged requiresAddOn requiresIntegration } }", json!({}))
        .await;
    let types = body["data"]["notificationTypes"].as_array().expect("a list").clone();
    assert_eq!(types.len(), 44);
    let find = |t: &str| -> Value { types.iter().find(|i| i["type"] == t).cloned().unwrap_or_else(|| panic!("{t} missing")) };
    assert_eq!(types[0]["type"], "ACCOUNT_PAUSED", "the settings page's order");
    assert_eq!(
        find("THUMBTACK"),
        json!({"type": "THUMBTACK", "label": "ThumbTack", "concernsContact": true, "stronglyEncouraged": false, "requiresAddOn": null, "requiresIntegration": "THUMBTACK"})
    );
    assert_eq!(find("TEXT_RECEIVED")["requiresAddOn"], "TEXT_MESSAGING");
    assert_eq!(find("EMAIL_FAILED_ERROR")["stronglyEncouraged"], true);
    assert_eq!(find("CLIENT_EXPORT")["concernsContact"], false, "AU switches do not apply to exports");
    for raised in ["ACTIVITY_REMINDER", "LATE_ACTIVITY", "INTEGRATION_REAUTHENTICATION_REQUIRED", "CONTACT_MAPPING_ERROR", "DATA_SYNC_SUMMARY", "INTEGRATION_ENABLED", "INTEGRATION_DISABLED", "AUTOMATED_COMMUNICATION_NEEDS_ATTENTION"] {
        find(raised);
    }
}

const CONTROL: &str = "query($u: ID) { notificationControl(userId: $u) { version user { id } types { type system { enabled source locked applicable } au { enabled applicable } } } }";
const UPDATE: &str = "mutation($i: UpdateNotificationControlInput!) { updateNotificationControl(input: $i) { control { version types { type system { enabled source locked } } } } }";
const DEFAULTS: &str = "mutation($i: UpdateAccountNotificationDefaultsInput!) { updateAccountNotificationDefaults(input: $i) { defaults { version types { type system { enabled source locked } } } } }";

fn switch(control: &Value, kind: &str, name: &str) -> Value {
    control["types"].as_array().unwrap().iter().find(|t| t["type"] == kind).unwrap()[name].clone()
}

#[tokio::test]
async fn control_switches_resolve_default_account_user_with_their_source() {
    let app = spawn_app().await;
    let (bob, bob_token) = app.user("Bob", "USER").await;
    let mine = app.gql(Some(&bob_token), CONTROL, json!({})).await["data"]["notificationControl"].clone();
    assert_eq!(mine["user"]["id"], bob.as_str());
    assert_eq!(mine["version"], 0);
    assert_eq!(switch(&mine, "ACCOUNT_PAUSED", "system"), json!({"enabled": true, "source": "DEFAULT", "locked": false, "applicable": true}));
    assert_eq!(switch(&mine, "NEW_LEAD", "system")["enabled"], false);
    assert_eq!(switch(&mine, "CLIENT_EXPORT", "au"), json!({"enabled": false, "applicable": false}));

    // The admin turns New Lead on for everyone: Bob inherits it.
    app.admin(DEFAULTS, json!({"i": {"changes": [{"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": true}]}})).await;
    let mine = app.gql(Some(&bob_token), CONTROL, json!({})).await["data"]["notificationControl"].clone();
    assert_eq!(switch(&mine, "NEW_LEAD", "system"), json!({"enabled": true, "source": "ACCOUNT", "locked": false, "applicable": true}));

    // Bob opts out, several switches in one change; the version moves.
    let changed = app
        .gql(
            Some(&bob_token),
            UPDATE,
            json!({"i": {"expectedVersion": 0, "changes": [
                {"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": false},
                {"type": "VOICEMAILS", "switch": "TEXT_AU", "enabled": true}
            ]}}),
        )
        .await;
    let control = &changed["data"]["updateNotificationControl"]["control"];
    assert_eq!(control["version"], 1, "{changed}");
    assert_eq!(switch(control, "NEW_LEAD", "system"), json!({"enabled": false, "source": "USER", "locked": false}));

    let stale = app.gql(Some(&bob_token), UPDATE, json!({"i": {"expectedVersion": 0, "changes": [{"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": true}]}})).await;
    assert_eq!(stale["errors"][0]["extensions"]["code"], "CONFLICT");

    // Reset removes Bob's own choices only.
    let reset = app.gql(Some(&bob_token), "mutation { resetNotificationControl(input: {}) { control { version types { type system { enabled source } } } } }", json!({})).await;
    let control = &reset["data"]["resetNotificationControl"]["control"];
    assert_eq!(control["version"], 2);
    assert_eq!(switch(control, "NEW_LEAD", "system"), json!({"enabled": true, "source": "ACCOUNT"}));

    // The admin's own settings were never touched.
    let admin = app.admin(CONTROL, json!({})).await;
    assert_eq!(admin["notificationControl"]["version"], 0);
}

#[tokio::test]
async fn a_locked_switch_cannot_be_overridden() {
    let app = spawn_app().await;
    let (_, bob_token) = app.user("Bob", "USER").await;
    app.admin(DEFAULTS, json!({"i": {"changes": [{"type": "EMAIL_FAILED_ERROR", "switch": "SYSTEM", "enabled": true, "locked": true}]}})).await;
    let mine = app.gql(Some(&bob_token), CONTROL, json!({})).await["data"]["notificationControl"].clone();
    assert_eq!(switch(&mine, "EMAIL_FAILED_ERROR", "system"), json!({"enabled": true, "source": "ACCOUNT", "locked": true, "applicable": true}));
    let refused = app
        .gql(Some(&bob_token), UPDATE, json!({"i": {"changes": [{"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": true}, {"type": "EMAIL_FAILED_ERROR", "switch": "SYSTEM", "enabled": false}]}}))
        .await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let mine = app.gql(Some(&bob_token), CONTROL, json!({})).await["data"]["notificationControl"].clone();
    assert_eq!(mine["version"], 0, "nothing of the refused change was written");
    assert_eq!(switch(&mine, "NEW_LEAD", "system")["enabled"], false);
}

#[tokio::test]
async fn control_input_errors_name_the_change() {
    let app = spawn_app().await;
    let cases = [
        (json!([{"type": "CLIENT_EXPORT", "switch": "AU", "enabled": true}]), "input.changes[0].switch"),
        (json!([{"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": true, "locked": true}]), "input.changes[0].locked"),
        (json!([{"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": true}, {"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": false}]), "input.changes[1]"),
        (json!([]), "input.changes"),
    ];
    for (changes, field) in cases {
        let body = app.gql(Some(&app.admin_token), UPDATE, json!({"i": {"changes": changes}})).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn logged_in_as_a_user_the_admin_sees_and_changes_that_users_settings() {
    let app = spawn_app().await;
    let (bob, _) = app.user("Bob", "USER").await;
    let done = app.admin("mutation($i: ImpersonateInput!) { impersonate(input: $i) { token } }", json!({"i": {"userId": bob}})).await;
    let as_bob = done["impersonate"]["token"].as_str().unwrap().to_string();
    let mine = app.gql(Some(&as_bob), CONTROL, json!({})).await;
    assert_eq!(mine["data"]["notificationControl"]["user"]["id"], bob.as_str(), "the user's settings, not the admin's");
    app.gql(Some(&as_bob), UPDATE, json!({"i": {"changes": [{"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": true}]}})).await;
    let log = app.admin("{ auditLog(first: 1) { nodes { action objectId actor { id } impersonatedUser { id } } } }", json!({})).await;
    let entry = &log["auditLog"]["nodes"][0];
    assert_eq!(entry["action"], "notification_control.updated");
    assert_eq!(entry["objectId"], bob.as_str());
    assert_eq!(entry["actor"]["id"], app.admin_id.as_str());
    assert_eq!(entry["impersonatedUser"]["id"], bob.as_str());
    let admin_own = app.admin(CONTROL, json!({})).await;
    assert_eq!(admin_own["notificationControl"]["version"], 0);
}

const ROLL_UP: &str = "query($u: ID) { notificationRollUp(userId: $u) { version user { id } subAccounts { name } availableSubAccounts { name } } }";
const SET_ROLL_UP: &str = "mutation($i: UpdateNotificationRollUpInput!) { updateNotificationRollUp(input: $i) { rollUp { version subAccounts { name } } } }";

#[tokio::test]
async fn roll_up_needs_the_add_on_and_offers_only_sub_accounts() {
    let app = spawn_app().await;
    let (_, bob_token) = app.user("Bob", "USER").await;
    let refused = app.gql(Some(&bob_token), ROLL_UP, json!({})).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("Roll-up add-on"), "{refused}");

    let create = "mutation($i: CreateSubAccountInput!) { createSubAccount(input: $i) { account { id } } }";
    let west = app.admin(create, json!({"i": {"name": "West"}})).await["createSubAccount"]["account"]["id"].as_str().unwrap().to_string();
    let coast = app.admin(create, json!({"i": {"name": "West Coast", "parentId": west}})).await["createSubAccount"]["account"]["id"].as_str().unwrap().to_string();
    let (_, _, foreign_account) = app.other_tenant().await;
    app.admin("mutation { updateAccount(input: {addOns: [NOTIFICATION_ROLL_UP]}) { account { id } } }", json!({})).await;

    let tab = app.gql(Some(&bob_token), ROLL_UP, json!({})).await["data"]["notificationRollUp"].clone();
    assert_eq!(tab["version"], 0);
    assert_eq!(tab["subAccounts"], json!([]));
    assert_eq!(tab["availableSubAccounts"], json!([{"name": "West"}, {"name": "West Coast"}]));

    let set = app.gql(Some(&bob_token), SET_ROLL_UP, json!({"i": {"subAccountIds": [coast], "expectedVersion": 0}})).await;
    assert_eq!(set["data"]["updateNotificationRollUp"]["rollUp"], json!({"version": 1, "subAccounts": [{"name": "West Coast"}]}), "{set}");

    for bad in [foreign_account, app.account_id.clone()] {
        let body = app.gql(Some(&bob_token), SET_ROLL_UP, json!({"i": {"subAccountIds": [west, bad]}})).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "input.subAccountIds[1]");
    }
    let stale = app.gql(Some(&bob_token), SET_ROLL_UP, json!({"i": {"subAccountIds": [west], "expectedVersion": 0}})).await;
    assert_eq!(stale["errors"][0]["extensions"]["code"], "CONFLICT");
    let tab = app.gql(Some(&bob_token), ROLL_UP, json!({})).await["data"]["notificationRollUp"].clone();
    assert_eq!(tab["subAccounts"], json!([{"name": "West Coast"}]), "refused changes wrote nothing");
}
