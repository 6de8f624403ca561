//! Accounts, users, contacts, persons and projects as partners keep them in sync.

use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, TestApp};

const CREATE_CONTACT: &str = "mutation($i: CreateContactInput!) { createContact(input: $i) { contact { id name mainEmail emailDomain assignees { id } } } }";
const ASSIGN: &str = "mutation($i: ContactAssigneesInput!) { assignContact(input: $i) { contact { assignees { id } } } }";
const UNASSIGN: &str = "mutation($i: ContactAssigneesInput!) { unassignContact(input: $i) { contact { assignees { id } } } }";

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect()
}

async fn audit_count(app: &TestApp) -> usize {
    let log = app.admin("{ auditLog(first: 100) { nodes { id } } }", json!({})).await;
    log["auditLog"]["nodes"].as_array().unwrap().len()
}

#[tokio::test]
async fn assignees_keep_their_order_the_first_stays_first() {
    let app = spawn_app().await;
    let (u1, _) = app.user("One", "USER").await;
    let (u2, _) = app.user("Two", "USER").await;
    let (u3, _) = app.user("Three", "USER").await;
    let created =
        app.admin(CREATE_CONTACT, json!({"i": {"kind": "CUSTOMER", "name": "Acme Corp", "mainEmail": "Sales@ACME.example", "assigneeIds": [u1, u2]}})).await;
    let contact = &created["createContact"]["contact"];
    assert_eq!(contact["mainEmail"], "sales@acme.example");
    assert_eq!(contact["emailDomain"], "acme.example");
    assert_eq!(ids(&contact["assignees"]), vec![u1.clone(), u2.clone()]);
    let id = contact["id"].as_str().unwrap();

    let after = app.admin(ASSIGN, json!({"i": {"contactId": id, "userIds": [u3, u1]}})).await;
    assert_eq!(ids(&after["assignContact"]["contact"]["assignees"]), vec![u1.clone(), u2.clone(), u3.clone()]);
    let after = app.admin(UNASSIGN, json!({"i": {"contactId": id, "userIds": [u2]}})).await;
    assert_eq!(ids(&after["unassignContact"]["contact"]["assignees"]), vec![u1.clone(), u3.clone()]);
    let after = app.admin(ASSIGN, json!({"i": {"contactId": id, "userIds": [u2]}})).await;
    assert_eq!(ids(&after["assignContact"]["contact"]["assignees"]), vec![u1.clone(), u3.clone(), u2.clone()]);

    let mine = app.admin("query($u: ID) { contacts(filter: {assignedTo: $u}) { nodes { id } } }", json!({"u": u3})).await;
    assert_eq!(ids(&mine["contacts"]["nodes"]), vec![id.to_string()]);
}

#[tokio::test]
async fn persons_and_projects_hang_off_their_contact() {
    let app = spawn_app().await;
    let customer = app.admin(CREATE_CONTACT, json!({"i": {"kind": "CUSTOMER", "name": "Acme Corp"}})).await;
    let customer = customer["createContact"]["contact"]["id"].as_str().unwrap().to_string();
    let lead = app.admin(CREATE_CONTACT, json!({"i": {"kind": "LEAD", "name": "Maybe Inc"}})).await;
    let lead = lead["createContact"]["contact"]["id"].as_str().unwrap().to_string();

    let person = app
        .admin(
            "mutation($i: CreateContactPersonInput!) { createContactPerson(input: $i) { contactPerson { id name email position invalid contact { id } } } }",
            json!({"i": {"contactId": customer, "name": "Wile E.", "email": "Wile@Acme.example", "position": "Purchasing"}}),
        )
        .await;
    let person = &person["createContactPerson"]["contactPerson"];
    assert_eq!(person["email"], "wile@acme.example");
    assert_eq!(person["contact"]["id"], customer.as_str());
    let person_id = person["id"].as_str().unwrap();
    let updated = app
        .admin(
            "mutation($i: UpdateContactPersonInput!) { updateContactPerson(input: $i) { contactPerson { invalid position } } }",
            json!({"i": {"id": person_id, "invalid": true, "position": null}}),
        )
        .await;
    assert_eq!(updated["updateContactPerson"]["contactPerson"], json!({"invalid": true, "position": null}));

    let project = app
        .admin(
            "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id customer { name } } } }",
            json!({"i": {"name": "Rollout", "customerId": customer}}),
        )
        .await;
    assert_eq!(project["createProject"]["project"]["customer"]["name"], "Acme Corp");
    let for_lead = app
        .gql(
            Some(&app.admin_token),
            "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }",
            json!({"i": {"name": "X", "customerId": lead}}),
        )
        .await;
    assert_eq!(error_code(&for_lead), Some("BAD_USER_INPUT"));
    assert_eq!(for_lead["errors"][0]["extensions"]["field"], "input.customerId");

    let listed = app.admin("query($c: ID!) { contact(id: $c) { persons { name } } }", json!({"c": customer})).await;
    assert_eq!(listed["contact"]["persons"], json!([{"name": "Wile E."}]));

    app.admin("mutation($i: DeleteContactInput!) { deleteContact(input: $i) { deletedContactId } }", json!({"i": {"id": customer}})).await;
    let gone = app.gql(Some(&app.admin_token), "query($c: ID!) { contactPerson(id: $c) { id } }", json!({"c": person_id})).await;
    assert_eq!(error_code(&gone), Some("NOT_FOUND"), "persons go with their contact");
    let detached = app.admin("{ projects { nodes { name customer { id } } } }", json!({})).await;
    assert_eq!(detached["projects"]["nodes"], json!([{"name": "Rollout", "customer": null}]));
}

#[tokio::test]
async fn bad_input_names_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    let (u1, _) = app.user("One", "USER").await;
    let before = audit_count(&app).await;
    let cases = [
        ("mutation { createUser(input: {name: \"X\", email: \"not-an-email\", role: USER}) { user { id } } }", "BAD_USER_INPUT", Some("input.email")),
        ("mutation { createUser(input: {name: \"  \", email: \"x@example.com\", role: USER}) { user { id } } }", "BAD_USER_INPUT", Some("input.name")),
        (
            "mutation { createUser(input: {name: \"X\", email: \"x@example.com\", role: USER, phone: \"12\"}) { user { id } } }",
            "BAD_USER_INPUT",
            Some("input.phone"),
        ),
        ("mutation { updateAccount(input: {timeZone: \"Mars/Olympus\"}) { account { id } } }", "BAD_USER_INPUT", Some("input.timeZone")),
        ("mutation { createUser(input: {name: \"X\", email: \"x@example.com\", role: USER, shoeSize: 9}) { user { id } } }", "BAD_USER_INPUT", None),
        ("mutation { createUser(input: {name: 42, email: \"x@example.com\", role: USER}) { user { id } } }", "BAD_USER_INPUT", None),
        ("mutation { createUser(input: {name: \"X\", email: \"x@example.com\", role: OWNER}) { user { id } } }", "BAD_USER_INPUT", None),
        ("{ contact(id: \"not-a-uuid\") { id } }", "BAD_USER_INPUT", Some("id")),
        ("{ contact(id: \"01900000-0000-7000-8000-000000000000\") { id } }", "NOT_FOUND", None),
        ("{ contacts(first: 1000) { nodes { id } } }", "BAD_USER_INPUT", Some("first")),
        ("{ contacts(after: \"bogus!\") { nodes { id } } }", "BAD_USER_INPUT", Some("after")),
    ];
    for (query, code, field) in cases {
        let body = app.gql(Some(&app.admin_token), query, json!({})).await;
        assert_eq!(error_code(&body), Some(code), "{query}: {body}");
        if let Some(field) = field {
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{query}: {body}");
        }
        assert!(!body["errors"][0]["message"].as_str().unwrap().is_empty());
    }

    // A contact whose assignee list names an unknown user is not created at all.
    let body = app
        .gql(
            Some(&app.admin_token),
            CREATE_CONTACT,
            json!({"i": {"kind": "LEAD", "name": "Half", "assigneeIds": [u1, "01900000-0000-7000-8000-000000000000"]}}),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.assigneeIds");
    let contacts = app.admin("{ contacts { nodes { id } } }", json!({})).await;
    assert_eq!(contacts["contacts"]["nodes"], json!([]));

    let duplicate = app
        .gql(Some(&app.admin_token), "mutation { createUser(input: {name: \"Dup\", email: \"ADMIN@example.com\", role: USER}) { user { id } } }", json!({}))
        .await;
    assert_eq!(error_code(&duplicate), Some("CONFLICT"));
    assert_eq!(audit_count(&app).await, before, "no failed mutation left an audit row");
}

#[tokio::test]
async fn account_settings_are_version_checked_and_audited() {
    let app = spawn_app().await;
    let account = app.admin("{ account { version updatedBy { id } } }", json!({})).await;
    assert_eq!(account["account"]["version"], 1);
    let update = "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { name timeZone version updatedAt updatedBy { id } addOns } } }";
    let changed =
        app.admin(update, json!({"i": {"expectedVersion": 1, "name": "Acme Inc", "timeZone": "Europe/Paris", "addOns": ["NOTIFICATION_ROLL_UP"]}})).await;
    let account = &changed["updateAccount"]["account"];
    assert_eq!(account["version"], 2);
    assert_eq!(account["timeZone"], "Europe/Paris");
    assert_eq!(account["updatedBy"]["id"], app.admin_id.as_str());
    assert_eq!(account["addOns"], json!(["NOTIFICATION_ROLL_UP"]));

    let stale = app.gql(Some(&app.admin_token), update, json!({"i": {"expectedVersion": 1, "name": "Lost update"}})).await;
    assert_eq!(error_code(&stale), Some("CONFLICT"));
    let now = app.admin("{ account { name version } }", json!({})).await;
    assert_eq!(now["account"], json!({"name": "Acme Inc", "version": 2}));

    let log = app.admin("{ auditLog(first: 1) { nodes { action objectType before after } } }", json!({})).await;
    let entry = &log["auditLog"]["nodes"][0];
    assert_eq!(entry["action"], "account.updated");
    assert_eq!(entry["before"]["name"], "Acme");
    assert_eq!(entry["after"]["name"], "Acme Inc");

    let (_, user_token) = app.user("Plain", "USER").await;
    let denied = app.gql(Some(&user_token), update, json!({"i": {"name": "Mine now"}})).await;
    assert_eq!(error_code(&denied), Some("FORBIDDEN"));
}

#[tokio::test]
async fn users_edit_their_own_profile_but_not_their_role() {
    let app = spawn_app().await;
    let (bob, bob_token) = app.user("Bob", "USER").await;
    let update = "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { name phone role } } }";
    let own = app.gql(Some(&bob_token), update, json!({"i": {"id": bob, "name": "Robert", "phone": "+1 555 123 4567"}})).await;
    assert_eq!(own["data"]["updateUser"]["user"], json!({"name": "Robert", "phone": "+15551234567", "role": "USER"}));
    let promote = app.gql(Some(&bob_token), update, json!({"i": {"id": bob, "role": "COMPANY_ADMIN"}})).await;
    assert_eq!(error_code(&promote), Some("FORBIDDEN"));
    let other = app.gql(Some(&bob_token), update, json!({"i": {"id": app.admin_id, "name": "Hacked"}})).await;
    assert_eq!(error_code(&other), Some("FORBIDDEN"));
}

#[tokio::test]
async fn the_last_company_admin_cannot_be_removed() {
    let app = spawn_app().await;
    let demote = app
        .gql(
            Some(&app.admin_token),
            "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { role } } }",
            json!({"i": {"id": app.admin_id, "role": "USER"}}),
        )
        .await;
    assert_eq!(error_code(&demote), Some("CONFLICT"));
    let delete =
        app.gql(Some(&app.admin_token), "mutation($i: DeleteUserInput!) { deleteUser(input: $i) { deletedUserId } }", json!({"i": {"id": app.admin_id}})).await;
    assert_eq!(error_code(&delete), Some("CONFLICT"));
    let me = app.admin("{ viewer { user { role } } }", json!({})).await;
    assert_eq!(me["viewer"]["user"]["role"], "COMPANY_ADMIN");
}

#[tokio::test]
async fn connections_page_forwards_and_backwards_by_cursor() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.admin(CREATE_CONTACT, json!({"i": {"kind": "LEAD", "name": format!("Lead {i}")}})).await;
    }
    let page = "query($f: Int, $a: String, $l: Int, $b: String) { contacts(first: $f, after: $a, last: $l, before: $b) { edges { cursor node { name } } pageInfo { hasNextPage hasPreviousPage endCursor startCursor } } }";
    let names =
        |v: &Value| -> Vec<String> { v["contacts"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["name"].as_str().unwrap().to_string()).collect() };
    let first = app.admin(page, json!({"f": 2})).await;
    assert_eq!(names(&first), ["Lead 0", "Lead 1"]);
    assert_eq!(first["contacts"]["pageInfo"]["hasNextPage"], true);
    let cursor = first["contacts"]["pageInfo"]["endCursor"].clone();
    let second = app.admin(page, json!({"f": 2, "a": cursor})).await;
    assert_eq!(names(&second), ["Lead 2", "Lead 3"]);
    let cursor = second["contacts"]["pageInfo"]["endCursor"].clone();
    let third = app.admin(page, json!({"f": 2, "a": cursor})).await;
    assert_eq!(names(&third), ["Lead 4"]);
    assert_eq!(third["contacts"]["pageInfo"]["hasNextPage"], false);

    let last = app.admin(page, json!({"l": 2})).await;
    assert_eq!(names(&last), ["Lead 3", "Lead 4"]);
    assert_eq!(last["contacts"]["pageInfo"]["hasPreviousPage"], true);
    let before = last["contacts"]["pageInfo"]["startCursor"].clone();
    let earlier = app.admin(page, json!({"l": 2, "b": before})).await;
    assert_eq!(names(&earlier), ["Lead 1", "Lead 2"]);
}

#[tokio::test]
async fn sub_accounts_are_listed_and_managed_by_the_parent_admin() {
    let app = spawn_app().await;
    let create = "mutation($i: CreateSubAccountInput!) { createSubAccount(input: $i) { account { id name timeZone addOns } } }";
    let west = app.admin(create, json!({"i": {"name": "West", "addOns": ["EMAIL_SYNC"]}})).await;
    assert_eq!(west["createSubAccount"]["account"]["timeZone"], "UTC", "inherits the parent's time zone");
    let west_id = west["createSubAccount"]["account"]["id"].as_str().unwrap();
    let deeper = app.admin(create, json!({"i": {"name": "West Coast", "parentId": west_id}})).await;
    let deeper_id = deeper["createSubAccount"]["account"]["id"].as_str().unwrap();
    let tree = app.admin("{ account { subAccounts { nodes { name subAccounts { nodes { id } } } } } }", json!({})).await;
    assert_eq!(tree["account"]["subAccounts"]["nodes"][0]["name"], "West");
    assert_eq!(tree["account"]["subAccounts"]["nodes"][0]["subAccounts"]["nodes"][0]["id"], deeper_id);
    let paused = app
        .admin("mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { paused version } } }", json!({"i": {"id": deeper_id, "paused": true}}))
        .await;
    assert_eq!(paused["updateAccount"]["account"], json!({"paused": true, "version": 2}));
}

#[tokio::test]
async fn relations_of_a_page_load_in_one_statement_per_level() {
    let app = spawn_app().await;
    let (u1, _) = app.user("One", "USER").await;
    let (u2, _) = app.user("Two", "USER").await;
    for i in 0..12 {
        let c = app.admin(CREATE_CONTACT, json!({"i": {"kind": "CUSTOMER", "name": format!("C{i}"), "assigneeIds": [u1, u2]}})).await;
        let id = c["createContact"]["contact"]["id"].as_str().unwrap().to_string();
        app.admin(
            "mutation($i: CreateContactPersonInput!) { createContactPerson(input: $i) { contactPerson { id } } }",
            json!({"i": {"contactId": id, "name": "P"}}),
        )
        .await;
    }
    let page = |n: usize| format!("{{ contacts(first: {n}) {{ nodes {{ name assignees {{ name account {{ name }} }} persons {{ name }} }} }} }}");
    let small = app.statements_for(&page(2)).await;
    let large = app.statements_for(&page(12)).await;
    assert_eq!(small, large, "statements grow with the page size (N+1)");
    // Authentication (the user with their account, which also serves `assignees.account`),
    // the page, the assignees of the whole page (one join), the persons of the whole page.
    assert_eq!(large, 4);
}

/// Seed 002's Account Paused: switching the account from active to paused raises it for its
/// users whose switches say so; a change that pauses nothing raises nothing.
#[tokio::test]
async fn pausing_an_account_raises_account_paused() {
    let app = spawn_app().await;
    app.switch_on(&app.admin_token, "ACCOUNT_PAUSED", "SYSTEM").await;
    let pause =
        |paused: bool| app.admin("mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { paused } } }", json!({"i": {"paused": paused}}));
    let panel = || async {
        let data = app.admin("{ notifications { nodes { type title } } }", json!({})).await;
        data["notifications"]["nodes"].as_array().unwrap().iter().filter(|n| n["type"] == "ACCOUNT_PAUSED").cloned().collect::<Vec<_>>()
    };
    assert_eq!(pause(true).await["updateAccount"]["account"]["paused"], true);
    let raised = panel().await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["title"], "Account Acme was paused");
    pause(true).await; // already paused
    pause(false).await; // resumed
    assert_eq!(panel().await.len(), 1, "only a change from active to paused raises it");
}
