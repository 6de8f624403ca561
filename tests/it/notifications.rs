//! Notifications: the catalogue of types as the settings page reads it.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_settings_page_reads_every_type_with_its_rules() {
    let app = spawn_app().await;
    let (_, token) = app.user("Una", "USER").await;
    let body =
        app.gql(Some(&token), "{ notificationTypes { type label concernsContact stronglyEncouraged requiresAddOn requiresIntegration } }", json!({})).await;
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
    for raised in [
        "ACTIVITY_REMINDER",
        "LATE_ACTIVITY",
        "INTEGRATION_REAUTHENTICATION_REQUIRED",
        "CONTACT_MAPPING_ERROR",
        "DATA_SYNC_SUMMARY",
        "INTEGRATION_ENABLED",
        "INTEGRATION_DISABLED",
        "AUTOMATED_COMMUNICATION_NEEDS_ATTENTION",
    ] {
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

    let stale =
        app.gql(Some(&bob_token), UPDATE, json!({"i": {"expectedVersion": 0, "changes": [{"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": true}]}})).await;
    assert_eq!(stale["errors"][0]["extensions"]["code"], "CONFLICT");

    // Reset removes Bob's own choices only.
    let reset = app
        .gql(Some(&bob_token), "mutation { resetNotificationControl(input: {}) { control { version types { type system { enabled source } } } } }", json!({}))
        .await;
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
    let coast =
        app.admin(create, json!({"i": {"name": "West Coast", "parentId": west}})).await["createSubAccount"]["account"]["id"].as_str().unwrap().to_string();
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

const PUBLISH: &str = "mutation($i: PublishEventInput!) { publishEvent(input: $i) { event { id } duplicate notified queuedMessages } }";
const PANEL: &str = "{ notifications { nodes { type title count contact { name } accountId seenAt } } notificationCounts { unseen unread total } }";

async fn contact_for(app: &crate::helpers::TestApp, assignees: &[&str]) -> String {
    let c = app
        .admin(
            "mutation($i: CreateContactInput!) { createContact(input: $i) { contact { id } } }",
            json!({"i": {"kind": "LEAD", "name": "Acme Lead", "assigneeIds": assignees}}),
        )
        .await;
    c["createContact"]["contact"]["id"].as_str().unwrap().to_string()
}

async fn set(app: &crate::helpers::TestApp, token: &str, changes: Value) {
    let body = app.gql(Some(token), UPDATE, json!({"i": {"changes": changes}})).await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn fan_out_follows_system_au_and_assignment() {
    let app = spawn_app().await;
    let (bob, bob_t) = app.user("Bob", "USER").await;
    let (_, carol_t) = app.user("Carol", "USER").await;
    let (_, dave_t) = app.user("Dave", "USER").await;
    app.admin("mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { id } } }", json!({"i": {"id": bob, "phone": "+15551234567"}})).await;
    let contact = contact_for(&app, &[&bob]).await;
    set(&app, &bob_t, json!([{"type": "NEW_LEAD", "switch": "AU", "enabled": true}, {"type": "NEW_LEAD", "switch": "TEXT_AU", "enabled": true}, {"type": "NEW_LEAD", "switch": "EMAIL_AU", "enabled": true}])).await;
    set(&app, &carol_t, json!([{"type": "NEW_LEAD", "switch": "AU", "enabled": true}, {"type": "NEW_LEAD", "switch": "EMAIL_AU", "enabled": true}])).await;
    set(&app, &dave_t, json!([{"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": true}])).await;

    let done = app.admin(PUBLISH, json!({"i": {"type": "NEW_LEAD", "contactId": contact, "title": "New lead: Acme", "idempotencyKey": "lead-1"}})).await;
    assert_eq!(done["publishEvent"]["notified"], 2, "Bob (AU, assigned) and Dave (System): {done}");
    assert_eq!(done["publishEvent"]["queuedMessages"], 2, "a text and an email to Bob only");

    let bob_panel = app.gql(Some(&bob_t), PANEL, json!({})).await["data"].clone();
    assert_eq!(bob_panel["notifications"]["nodes"][0]["title"], "New lead: Acme");
    assert_eq!(bob_panel["notifications"]["nodes"][0]["contact"]["name"], "Acme Lead");
    assert_eq!(bob_panel["notificationCounts"], json!({"unseen": 1, "unread": 1, "total": 1}));
    let carol_panel = app.gql(Some(&carol_t), PANEL, json!({})).await["data"].clone();
    assert_eq!(carol_panel["notifications"]["nodes"], json!([]), "AU without assignment shows nothing");
    let admin_panel = app.admin(PANEL, json!({})).await;
    assert_eq!(admin_panel["notificationCounts"]["total"], 0, "System is off by default for New Lead");

    // A strongly encouraged type reaches everyone by default.
    let all = app.admin(PUBLISH, json!({"i": {"type": "VOICEMAILS", "contactId": contact, "title": "Voicemail", "idempotencyKey": "vm-1"}})).await;
    assert_eq!(all["publishEvent"]["notified"], 4, "the admin, Bob, Carol and Dave");

    // An account default locked off outweighs Dave's own System switch; Bob's AU stays.
    app.admin(DEFAULTS, json!({"i": {"changes": [{"type": "NEW_LEAD", "switch": "SYSTEM", "enabled": false, "locked": true}]}})).await;
    let locked = app.admin(PUBLISH, json!({"i": {"type": "NEW_LEAD", "contactId": contact, "title": "New lead: Beta", "idempotencyKey": "lead-2"}})).await;
    assert_eq!(locked["publishEvent"]["notified"], 1, "Bob only: {locked}");
}

#[tokio::test]
async fn publishing_is_idempotent_and_repeats_fold_into_one_row() {
    let app = spawn_app().await;
    let (bob, bob_t) = app.user("Bob", "USER").await;
    let contact = contact_for(&app, &[&bob]).await;
    let input = json!({"i": {"type": "TEXT_RECEIVED", "contactId": contact, "title": "Text from Acme", "idempotencyKey": "sms-1"}});
    let first = app.admin(PUBLISH, input.clone()).await["publishEvent"].clone();
    let again = app.admin(PUBLISH, input).await["publishEvent"].clone();
    assert_eq!(again["event"]["id"], first["event"]["id"]);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["notified"], 0);
    let panel = app.gql(Some(&bob_t), PANEL, json!({})).await["data"].clone();
    assert_eq!(panel["notifications"]["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(panel["notifications"]["nodes"][0]["count"], 1);

    let another = json!({"type": "TEXT_RECEIVED", "contactId": contact, "title": "Another text", "body": "Call me", "data": {"n": 2}, "actionUrl": "https://crm.example/t/2", "idempotencyKey": "sms-2"});
    app.admin(PUBLISH, json!({ "i": another })).await;
    let panel = app.gql(Some(&bob_t), PANEL, json!({})).await["data"].clone();
    assert_eq!(panel["notifications"]["nodes"].as_array().unwrap().len(), 1, "folded: {panel}");
    assert_eq!(panel["notifications"]["nodes"][0]["count"], 2);
    assert_eq!(panel["notifications"]["nodes"][0]["title"], "Another text");

    // A folded row shows the latest event whole: its body, data and link, or their absence.
    let content = "{ notifications { nodes { count title body data actionUrl } } }";
    let row = app.gql(Some(&bob_t), content, json!({})).await["data"]["notifications"]["nodes"][0].clone();
    assert_eq!(row, json!({"count": 2, "title": "Another text", "body": "Call me", "data": {"n": 2}, "actionUrl": "https://crm.example/t/2"}));
    app.admin(PUBLISH, json!({"i": {"type": "TEXT_RECEIVED", "contactId": contact, "title": "Third text", "idempotencyKey": "sms-3"}})).await;
    let row = app.gql(Some(&bob_t), content, json!({})).await["data"]["notifications"]["nodes"][0].clone();
    assert_eq!(row, json!({"count": 3, "title": "Third text", "body": null, "data": null, "actionUrl": null}));
}

/// Publishes that arrive together are written together (group commit); what each caller and
/// each panel sees must be what publishing them one by one gives.
#[tokio::test]
async fn publishes_at_once_deduplicate_fold_and_fail_alone() {
    let app = spawn_app().await;
    let (bob, bob_t) = app.user("Bob", "USER").await;
    let contact = contact_for(&app, &[&bob]).await;
    let other_contact = {
        // A contact of another tenant: naming it is an input error for that publish alone.
        let (_, other_admin, _) = app.other_tenant().await;
        let c = app.gql(Some(&other_admin), "mutation { createContact(input: {kind: LEAD, name: \"Theirs\"}) { contact { id } } }", json!({})).await;
        c["data"]["createContact"]["contact"]["id"].as_str().unwrap().to_string()
    };
    // 24 publishes at once: 12 keys, each twice, about one contact; one more names a contact
    // of another tenant.
    let mut calls = Vec::new();
    for i in 0..24 {
        let input =
            json!({"i": {"type": "TEXT_RECEIVED", "contactId": contact, "title": format!("Text {}", i % 12), "idempotencyKey": format!("burst-{}", i % 12)}});
        calls.push(app.admin(PUBLISH, input));
    }
    let bad = app.gql(
        Some(&app.admin_token),
        PUBLISH,
        json!({"i": {"type": "TEXT_RECEIVED", "contactId": other_contact, "title": "Not yours", "idempotencyKey": "burst-bad"}}),
    );
    let (answers, bad) = tokio::join!(futures_util::future::join_all(calls), bad);
    assert_eq!(crate::helpers::error_code(&bad), Some("BAD_USER_INPUT"), "{bad}");
    let mut events = std::collections::HashMap::new();
    let mut duplicates = 0;
    for a in &answers {
        let p = &a["publishEvent"];
        assert!(a.get("errors").is_none(), "{a}");
        let event_id = p["event"]["id"].as_str().unwrap().to_string();
        if p["duplicate"] == true {
            duplicates += 1;
            assert_eq!(p["notified"], 0);
        } else {
            assert_eq!(p["notified"], 2, "Text Received is on by default: the admin and Bob: {a}");
        }
        *events.entry(event_id).or_insert(0) += 1;
    }
    assert_eq!(events.len(), 12, "one event per key");
    assert!(events.values().all(|n| *n == 2), "both publishes of a key answer the same event: {events:?}");
    assert_eq!(duplicates, 12);
    let panel = app.gql(Some(&bob_t), PANEL, json!({})).await["data"].clone();
    let nodes = panel["notifications"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "twelve events about one contact fold into one row: {panel}");
    assert_eq!(nodes[0]["count"], 12);
    assert_eq!(panel["notificationCounts"], json!({"unseen": 1, "unread": 1, "total": 1}));
}

/// Publishes about different contacts that queue behind a busy writer go in one transaction
/// (on PostgreSQL their contacts are then read as one array, a lone contact as one value):
/// each reaches its own contact's assignee only, and folds only with its own contact's events.
#[tokio::test]
async fn a_batch_about_several_contacts_keeps_each_to_its_assignees() {
    let app = crate::helpers::spawn_with(|c| c.event_writers = 1).await;
    let mut people = Vec::new();
    for name in ["Ann", "Ben", "Cat"] {
        let (id, token) = app.user(name, "USER").await;
        // New Lead is off by default: only an assignee with AU on gets it.
        set(&app, &token, json!([{"type": "NEW_LEAD", "switch": "AU", "enabled": true}])).await;
        people.push((token, contact_for(&app, &[&id]).await));
    }
    // Ten events about each contact at once: the first is written alone, the others queue
    // behind the one writer and are written in batches that mix the three contacts.
    let calls = (0..30).map(|i| {
        let input = json!({"i": {"type": "NEW_LEAD", "contactId": people[i % 3].1, "title": format!("Lead {i}"), "idempotencyKey": format!("mixed-{i}")}});
        app.admin(PUBLISH, input)
    });
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer["publishEvent"]["notified"], 1, "the contact's assignee alone: {answer}");
    }
    for (k, (token, _)) in people.iter().enumerate() {
        let panel = app.gql(Some(token), PANEL, json!({})).await["data"].clone();
        let nodes = panel["notifications"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 1, "ten events about one contact fold into one row: {panel}");
        assert_eq!(nodes[0]["count"], 10, "{panel}");
        let latest: usize = nodes[0]["title"].as_str().unwrap().trim_start_matches("Lead ").parse().unwrap();
        assert_eq!(latest % 3, k, "the row shows an event about this user's contact: {panel}");
    }
}

#[tokio::test]
async fn roll_ups_bring_sub_account_events_to_parent_users() {
    let app = spawn_app().await;
    let (pat, pat_t) = app.user("Pat", "USER").await;
    let west = app.admin("mutation { createSubAccount(input: {name: \"West\"}) { account { id } } }", json!({})).await["createSubAccount"]["account"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let west_user = app.sub_account_user(&west, "Wes", "USER").await;
    let publish_in_west =
        |key: &'static str| app.admin(PUBLISH, json!({"i": {"type": "SYSTEM_INFORMATION", "accountId": west, "title": "West news", "idempotencyKey": key}}));
    let before = publish_in_west("w-1").await;
    assert_eq!(before["publishEvent"]["notified"], 1, "only Wes, in West: {before}");

    app.admin("mutation { updateAccount(input: {addOns: [NOTIFICATION_ROLL_UP]}) { account { id } } }", json!({})).await;
    app.gql(Some(&pat_t), SET_ROLL_UP, json!({"i": {"subAccountIds": [west]}})).await;
    let after = publish_in_west("w-2").await;
    assert_eq!(after["publishEvent"]["notified"], 2, "Wes and Pat: {after}");
    let panel = app.gql(Some(&pat_t), "query($a: [ID!]) { notifications(filter: {accountIds: $a}) { nodes { title accountId } } }", json!({"a": [west]})).await;
    assert_eq!(panel["data"]["notifications"]["nodes"], json!([{"title": "West news", "accountId": west}]));

    // Without the add-on the saved roll-up brings nothing: the fan-out checks the add-on.
    app.admin("mutation { updateAccount(input: {addOns: []}) { account { id } } }", json!({})).await;
    let gated = publish_in_west("w-gate").await;
    assert_eq!(gated["publishEvent"]["notified"], 1, "Wes only: {gated}");
    app.admin("mutation { updateAccount(input: {addOns: [NOTIFICATION_ROLL_UP]}) { account { id } } }", json!({})).await;

    // Pat turns System Information off: the roll-up follows Pat's own Control settings.
    set(&app, &pat_t, json!([{"type": "SYSTEM_INFORMATION", "switch": "SYSTEM", "enabled": false}])).await;
    let off = publish_in_west("w-3").await;
    assert_eq!(off["publishEvent"]["notified"], 1);
    let _ = (pat, west_user);
}

#[tokio::test]
async fn events_stay_in_their_tenant_and_need_the_publish_scope() {
    let app = spawn_app().await;
    let (_, foreign_token, _) = app.other_tenant().await;
    let (bob, bob_t) = app.user("Bob", "USER").await;
    let contact = contact_for(&app, &[&bob]).await;
    let foreign = app.gql(Some(&foreign_token), PUBLISH, json!({"i": {"type": "VOICEMAILS", "contactId": contact, "title": "x", "idempotencyKey": "k"}})).await;
    assert_eq!(foreign["errors"][0]["extensions"]["field"], "input.contactId");
    let foreign_own = app.gql(Some(&foreign_token), PUBLISH, json!({"i": {"type": "WARNINGS", "title": "Globex warning", "idempotencyKey": "k"}})).await;
    assert_eq!(foreign_own["data"]["publishEvent"]["notified"], 1, "Globex's own admin only");
    assert_eq!(app.gql(Some(&bob_t), PANEL, json!({})).await["data"]["notificationCounts"]["total"], 0);

    let key = |scopes: &'static str| {
        let app = &app;
        async move {
            let q = format!("mutation {{ createApiKey(input: {{name: \"k\", scopes: [{scopes}]}}) {{ secret }} }}");
            app.admin(&q, json!({})).await["createApiKey"]["secret"].as_str().unwrap().to_string()
        }
    };
    let reader = key("READ").await;
    let denied = app.gql(Some(&reader), PUBLISH, json!({"i": {"type": "WARNINGS", "title": "w", "idempotencyKey": "k2"}})).await;
    assert_eq!(denied["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let publisher = key("PUBLISH_EVENTS").await;
    let ok = app.gql(Some(&publisher), PUBLISH, json!({"i": {"type": "WARNINGS", "title": "w", "idempotencyKey": "k2"}})).await;
    assert_eq!(ok["data"]["publishEvent"]["notified"], 2, "{ok}");
    let no_panel = app.gql(Some(&publisher), PANEL, json!({})).await;
    assert_eq!(no_panel["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "an API key has no panel");
}

const STATE: &str = "{ notifications { nodes { id seenAt readAt } } notificationCounts { unseen unread total } }";

#[tokio::test]
async fn panel_states_change_only_the_callers_rows_and_counts_follow() {
    let app = spawn_app().await;
    let (bob, bob_t) = app.user("Bob", "USER").await;
    for key in ["a", "b", "c"] {
        app.admin(PUBLISH, json!({"i": {"type": "WARNINGS", "title": format!("Warning {key}"), "idempotencyKey": key}})).await;
    }
    let panel = app.gql(Some(&bob_t), STATE, json!({})).await["data"].clone();
    assert_eq!(panel["notificationCounts"], json!({"unseen": 3, "unread": 3, "total": 3}));
    let ids: Vec<String> = panel["notifications"]["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_string()).collect();

    // Logged in as Bob, the admin sees Bob's panel without marking it seen.
    let as_bob = app.admin("mutation($i: ImpersonateInput!) { impersonate(input: $i) { token } }", json!({"i": {"userId": bob}})).await["impersonate"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let viewed = app.gql(Some(&as_bob), "mutation { markNotificationsSeen(input: {all: true}) { changed counts { unseen } } }", json!({})).await;
    assert_eq!(viewed["data"]["markNotificationsSeen"], json!({"changed": 0, "counts": {"unseen": 3}}));

    let seen = app.gql(Some(&bob_t), "mutation { markNotificationsSeen(input: {all: true}) { changed counts { unseen unread total } } }", json!({})).await;
    assert_eq!(seen["data"]["markNotificationsSeen"], json!({"changed": 3, "counts": {"unseen": 0, "unread": 3, "total": 3}}));

    let read = app
        .gql(
            Some(&bob_t),
            "mutation($i: MarkNotificationsReadInput!) { markNotificationsRead(input: $i) { counts { unread } } }",
            json!({"i": {"ids": [ids[0]]}}),
        )
        .await;
    assert_eq!(read["data"]["markNotificationsRead"]["counts"]["unread"], 2);
    let archived = app.gql(Some(&bob_t), "mutation { archiveNotifications(input: {allRead: true}) { changed counts { total } } }", json!({})).await;
    assert_eq!(archived["data"]["archiveNotifications"], json!({"changed": 1, "counts": {"total": 2}}));
    let archived_list = app.gql(Some(&bob_t), "{ notifications(filter: {archived: true}) { nodes { id } } }", json!({})).await;
    assert_eq!(archived_list["data"]["notifications"]["nodes"], json!([{"id": ids[0]}]));

    // Another user's row is NOT_FOUND, and nothing of the request is applied.
    let admin_row = app.admin("{ notifications(first: 1) { nodes { id } } }", json!({})).await["notifications"]["nodes"][0]["id"].clone();
    let cross = app
        .gql(
            Some(&bob_t),
            "mutation($i: NotificationSelectionInput!) { unarchiveNotifications(input: $i) { changed } }",
            json!({"i": {"ids": [ids[0], admin_row]}}),
        )
        .await;
    assert_eq!(cross["errors"][0]["extensions"]["code"], "NOT_FOUND");
    assert_eq!(app.gql(Some(&bob_t), STATE, json!({})).await["data"]["notificationCounts"]["total"], 2);

    // As Bob, the admin changes nothing of his panel by reading, archiving or unarchiving it...
    for mutation in [
        "mutation { markNotificationsRead(input: {all: true}) { changed } }",
        "mutation { archiveNotifications(input: {all: true}) { changed } }",
        "mutation { unarchiveNotifications(input: {all: true}) { changed } }",
    ] {
        let body = app.gql(Some(&as_bob), mutation, json!({})).await;
        assert_eq!(body["data"].as_object().unwrap().values().next().unwrap()["changed"], 0, "{mutation}: {body}");
    }
    assert_eq!(app.gql(Some(&bob_t), STATE, json!({})).await["data"]["notificationCounts"], json!({"unseen": 0, "unread": 2, "total": 2}));
    // ...unless the request says it acts on his behalf: then it is done, and audited with the
    // admin as actor.
    let read_all = app.gql(Some(&as_bob), "mutation { markNotificationsRead(input: {all: true, onBehalf: true}) { changed } }", json!({})).await;
    assert_eq!(read_all["data"]["markNotificationsRead"]["changed"], 2, "{read_all}");
    let log = app.admin("{ auditLog(first: 1) { nodes { action actor { id } impersonatedUser { id } } } }", json!({})).await;
    assert_eq!(log["auditLog"]["nodes"][0]["action"], "notifications.changed");
    assert_eq!(log["auditLog"]["nodes"][0]["actor"]["id"], app.admin_id.as_str());
}

/// Panel rows have no foreign key to their user on PostgreSQL (migration 000008): deleting
/// the user must take their rows, and later events must not address them.
#[tokio::test]
async fn a_deleted_users_panel_rows_go_with_them() {
    use entity::notification;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    let app = spawn_app().await;
    let (bob, bob_t) = app.user("Bob", "USER").await;
    let news = json!({"i": {"type": "SYSTEM_INFORMATION", "title": "Maintenance tonight", "body": "22:00 to 23:00", "data": {"window": "22-23"}, "idempotencyKey": "maint-1"}});
    assert_eq!(app.admin(PUBLISH, news).await["publishEvent"]["notified"], 2, "the admin and Bob");
    let panel = app.gql(Some(&bob_t), "{ notifications { nodes { title body data contact { name } } } }", json!({})).await;
    assert_eq!(
        panel["data"]["notifications"]["nodes"],
        json!([{"title": "Maintenance tonight", "body": "22:00 to 23:00", "data": {"window": "22-23"}, "contact": null}])
    );

    app.admin("mutation($i: DeleteUserInput!) { deleteUser(input: $i) { deletedUserId } }", json!({"i": {"id": bob}})).await;
    let bob_id: uuid::Uuid = bob.parse().unwrap();
    let left = notification::Entity::find().filter(notification::Column::UserId.eq(bob_id)).count(&app.state.db).await.unwrap();
    assert_eq!(left, 0, "Bob's rows went with him");
    let later = json!({"i": {"type": "SYSTEM_INFORMATION", "title": "Maintenance done", "idempotencyKey": "maint-2"}});
    assert_eq!(app.admin(PUBLISH, later).await["publishEvent"]["notified"], 1, "the admin only");
}

#[tokio::test]
async fn an_events_data_is_bounded() {
    let app = spawn_app().await;
    let publish = |data: Value, key: &str| {
        app.gql(Some(&app.admin_token), PUBLISH, json!({"i": {"type": "WARNINGS", "title": "Disk almost full", "idempotencyKey": key, "data": data}}))
    };
    let fits = publish(json!({"detail": "x".repeat(15 * 1024)}), "fits").await;
    assert!(fits.get("errors").is_none(), "{fits}");
    let large = publish(json!({"detail": "x".repeat(900 * 1024)}), "large").await;
    assert_eq!(crate::helpers::error_code(&large), Some("BAD_USER_INPUT"), "{large}");
    assert_eq!(large["errors"][0]["extensions"]["field"], "input.data");
    assert!(large["errors"][0]["message"].as_str().unwrap().contains("16 KiB"), "{large}");
}

/// An event's content is stored once, with the event, however many panels show it; each
/// panel still shows it, from the list, after a fold, and in a feed's catch-up.
#[tokio::test]
async fn an_events_content_is_stored_once_and_every_panel_shows_it() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let (_, bob) = app.user("Bob", "USER").await;
    let (_, carol) = app.user("Carol", "USER").await;
    let body = "Disk 93% full on db-7";
    let data = json!({"host": "db-7", "percent": 93});
    let event =
        json!({"i": {"type": "WARNINGS", "title": "Disk almost full", "body": body, "data": data, "actionUrl": "/hosts/db-7", "idempotencyKey": "disk-1"}});
    app.admin(PUBLISH, event).await;

    let stored = app.state.db.query_all(sea_orm::Statement::from_string(app.state.db.get_database_backend(), "SELECT * FROM notification")).await.unwrap();
    assert!(stored.len() >= 3, "the admin's, Bob's and Carol's rows");
    for row in &stored {
        for column in row.column_names() {
            assert!(!["title", "body", "data", "action_url"].contains(&column.as_str()), "a panel row keeps a copy of its event's {column}");
        }
    }
    for token in [&bob, &carol] {
        let panel = app.gql(Some(token), "{ notifications { nodes { title body data actionUrl } } }", json!({})).await;
        assert_eq!(
            panel["data"]["notifications"]["nodes"],
            json!([{"title": "Disk almost full", "body": body, "data": data, "actionUrl": "/hosts/db-7"}]),
            "{panel}"
        );
    }
}

/// Duplicate Client (seed 002): a duplicate of an existing contact was submitted; the AU text
/// and email go to the original contact's assigned user, whom the event is about.
#[tokio::test]
async fn duplicate_client_reaches_the_original_contacts_assigned_user() {
    let app = spawn_app().await;
    let (bob, bob_t) = app.user("Bob", "USER").await;
    let (_, carol_t) = app.user("Carol", "USER").await;
    app.admin("mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { id } } }", json!({"i": {"id": bob, "phone": "+15551234567"}})).await;
    let original = contact_for(&app, &[&bob]).await;
    for token in [&bob_t, &carol_t] {
        set(&app, token, json!([{"type": "DUPLICATE_CLIENT", "switch": "AU", "enabled": true}, {"type": "DUPLICATE_CLIENT", "switch": "TEXT_AU", "enabled": true}, {"type": "DUPLICATE_CLIENT", "switch": "EMAIL_AU", "enabled": true}])).await;
    }
    let done = app
        .admin(PUBLISH, json!({"i": {"type": "DUPLICATE_CLIENT", "contactId": original, "title": "Duplicate of Acme Lead submitted", "data": {"duplicateEmail": "buyer@acme.example"}, "idempotencyKey": "dup-1"}}))
        .await;
    // A starred type: in every panel by System; the texts and emails are the AU ones.
    assert_eq!(done["publishEvent"]["queuedMessages"], 2, "a text and an email to Bob: {done}");
    let outbox = app.admin("{ outboundMessages(first: 10) { nodes { channel recipient { id } } } }", json!({})).await;
    let mut got: Vec<(String, String)> = outbox["outboundMessages"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["channel"].as_str().unwrap().into(), m["recipient"]["id"].as_str().unwrap().into()))
        .collect();
    got.sort();
    assert_eq!(got, vec![("EMAIL".to_string(), bob.clone()), ("TEXT".to_string(), bob.clone())], "nothing to Carol, who is not assigned");
}
