//! Workflow communications (seeds/003): the calendar, workflows and their actions, customers
//! enrolled, the daily runs driven with `Worker::tick_at` (time is injected: no test sleeps
//! for a scheduling time), the sender rules, the to-do fallback and its regeneration, and the
//! emails themselves against the real SMTP server.

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};
use worker::Worker;

use crate::helpers::{error_code, spawn_app, TestApp, TestSmtp};

fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, mi, 0).unwrap()
}

async fn ok(app: &TestApp, query: &str, vars: Value) -> Value {
    let body = app.gql(Some(&app.admin_token), query, vars).await;
    assert!(body.get("errors").is_none(), "{query}: {body:#}");
    body["data"].clone()
}

async fn use_smtp(app: &TestApp, smtp: &TestSmtp) {
    ok(
        app,
        "mutation($i: ChangeActivitySettingsInput!) { changeActivitySettings(input: $i) { activitySettings { version } } }",
        json!({"i": {
            "expectedVersion": 0,
            "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "NONE", "username": smtp.user, "password": smtp.password},
            "senderAddress": "crm@acme.example",
            "senderName": "Acme CRM",
            "activityAlerts": {"intervalHours": 24, "sender": "SYSTEM_ACCOUNT"},
            "lateResponse": {"intervalHours": 2, "sender": "SYSTEM_ACCOUNT", "defaultPersonIds": []},
        }}),
    )
    .await;
}

async fn set_time_zone(app: &TestApp, tz: &str) {
    ok(app, "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { timeZone } } }", json!({"i": {"timeZone": tz}})).await;
}

/// A contact person as a test writes it: name, email, position, main, invalid.
type Person<'a> = (&'a str, Option<&'a str>, Option<&'a str>, bool, bool);

/// A customer with its persons, assigned to `assignees` in that order.
async fn customer(app: &TestApp, name: &str, persons: &[Person<'_>], assignees: &[&str]) -> (String, Vec<String>) {
    let c =
        ok(app, "mutation($i: CreateContactInput!) { createContact(input: $i) { contact { id } } }", json!({"i": {"kind": "CUSTOMER", "name": name}})).await;
    let id = c["createContact"]["contact"]["id"].as_str().unwrap().to_string();
    let mut person_ids = Vec::new();
    for (pname, email, position, main, invalid) in persons {
        let p = ok(
            app,
            "mutation($i: CreateContactPersonInput!) { createContactPerson(input: $i) { contactPerson { id } } }",
            json!({"i": {"contactId": id, "name": pname, "email": email, "position": position, "main": main, "invalid": invalid}}),
        )
        .await;
        person_ids.push(p["createContactPerson"]["contactPerson"]["id"].as_str().unwrap().to_string());
    }
    if !assignees.is_empty() {
        ok(app, "mutation($i: ContactAssigneesInput!) { assignContact(input: $i) { contact { id } } }", json!({"i": {"contactId": id, "userIds": assignees}}))
            .await;
    }
    (id, person_ids)
}

const WORKFLOW: &str = "workflow { id version actions { id kind name delayDays sendAutomatically sender } }";

async fn create_workflow(app: &TestApp, actions: Value) -> Value {
    let body = app
        .gql(
            Some(&app.admin_token),
            &format!("mutation($i: CreateWorkflowInput!) {{ createWorkflow(input: $i) {{ {WORKFLOW} }} }}"),
            json!({"i": {"name": "Dunning", "actions": actions}}),
        )
        .await;
    body
}

async fn enroll(app: &TestApp, workflow: &str, contact: &str, on: &str) {
    ok(
        app,
        "mutation($i: EnrollInWorkflowInput!) { enrollInWorkflow(input: $i) { enrollment { id } } }",
        json!({"i": {"workflowId": workflow, "contactId": contact, "enrolledOn": on}}),
    )
    .await;
}

const ACTIONS: &str = "plannedActions(first: 100) { nodes { id kind trigger automated status dueOn reason fallback fromAddress subject body recipients { name address } assignee { name } sender { name } contact { name } } }";

async fn actions(app: &TestApp) -> Vec<Value> {
    ok(app, &format!("{{ {ACTIONS} }}"), json!({})).await["plannedActions"]["nodes"].as_array().unwrap().clone()
}

fn email_action(name: &str, delay: i64, sender: Value) -> Value {
    let mut a = json!({"kind": "EMAIL", "name": name, "delayDays": delay, "delayFrom": "PREVIOUS_ACTION",
        "subjectTemplate": "Invoice for {{ customer.name }}",
        "bodyTemplate": "Dear {{ contact.name }},\n\nYour invoice is due on {{ action.due_date }}.\n\n{{ sender.name }}, {{ account.name }}",
        "recipients": "MAIN_CONTACT", "sendAutomatically": true});
    for (k, v) in sender.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

/// Automatic emails go out at the scheduling time in the account's zone on business days:
/// not before, once, a holiday's action with the next business day's run, from the system
/// with the assigned user in Reply-To (no mailbox of theirs), to the main contact only.
#[tokio::test]
async fn automatic_emails_go_out_at_the_scheduling_time_on_business_days() {
    let app = spawn_app().await;
    let smtp = TestSmtp::start(&[]).await;
    use_smtp(&app, &smtp).await;
    set_time_zone(&app, "Europe/Paris").await;
    let (ann, _) = app.user("Ann Assigned", "USER").await;
    let cal = ok(
        &app,
        "mutation($i: ChangeCommunicationCalendarInput!) { changeCommunicationCalendar(input: $i) { schedulingTime holidays timeZone version } }",
        json!({"i": {"expectedVersion": 0, "schedulingTime": "08:30", "holidays": ["2026-12-25"]}}),
    )
    .await;
    assert_eq!(cal["changeCommunicationCalendar"], json!({"schedulingTime": "08:30", "holidays": ["2026-12-25"], "timeZone": "Europe/Paris", "version": 1}));
    let (globex, _) = customer(
        &app,
        "Globex",
        &[
            ("Bob Buyer", Some("bob@globex.example"), Some("Purchasing"), true, false),
            ("Carol CFO", Some("carol@globex.example"), Some("Finance"), false, false),
        ],
        &[&ann],
    )
    .await;
    let created = create_workflow(
        &app,
        json!([email_action("First reminder", 0, json!({"sender": "ASSIGNED_USER"})), email_action("Second reminder", 1, json!({"sender": "ASSIGNED_USER"})),
               {"kind": "CALL", "name": "Call the buyer", "delayDays": 2}]),
    )
    .await;
    let workflow = created["data"]["createWorkflow"]["workflow"]["id"].as_str().unwrap_or_else(|| panic!("{created:#}")).to_string();
    // Thursday 24 December 2026; Friday is a holiday.
    enroll(&app, &workflow, &globex, "2026-12-24").await;
    let listed = actions(&app).await;
    let plan: Vec<(&str, &str, &str, &str)> = listed
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), a["trigger"].as_str().unwrap(), a["status"].as_str().unwrap(), a["dueOn"].as_str().unwrap()))
        .collect();
    assert_eq!(
        plan,
        vec![("EMAIL", "AUTOMATED", "PLANNED", "2026-12-24"), ("EMAIL", "AUTOMATED", "PLANNED", "2026-12-25"), ("CALL", "MANUAL", "TODO", "2026-12-27")],
        "{listed:#?}"
    );

    let worker = Worker::new(app.state.clone()).await.unwrap();
    // 08:29 in Paris (UTC+1): nothing of Thursday's yet (an account that never ran catches
    // up with Wednesday's run, which has nothing due).
    assert_eq!(worker.tick_at(utc(2026, 12, 24, 7, 29)).await.unwrap().workflows.sent, 0);
    let at_830 = worker.tick_at(utc(2026, 12, 24, 7, 30)).await.unwrap();
    assert_eq!((at_830.workflows.runs, at_830.workflows.sent), (1, 1), "{at_830:?}");
    let again = worker.tick_at(utc(2026, 12, 24, 9, 0)).await.unwrap();
    assert_eq!((again.workflows.runs, again.workflows.sent), (0, 0), "once a day");
    // The holiday and the weekend: no run.
    for t in [utc(2026, 12, 25, 8, 0), utc(2026, 12, 26, 8, 0), utc(2026, 12, 27, 8, 0)] {
        assert_eq!(worker.tick_at(t).await.unwrap().workflows.sent, 0, "{t}");
    }
    let monday = worker.tick_at(utc(2026, 12, 28, 7, 30)).await.unwrap();
    assert_eq!((monday.workflows.runs, monday.workflows.sent), (1, 1), "Friday's (a holiday) goes on Monday: {monday:?}");

    let got = smtp.wait_for(2, 20).await;
    assert_eq!(got.len(), 2);
    let first = got[0].parsed();
    assert_eq!(got[0].rcpt_tos, vec!["bob@globex.example"], "the main contact only");
    assert_eq!(first.subject(), Some("Invoice for Globex"));
    assert_eq!(first.from().and_then(|f| f.first()).and_then(|a| a.address()), Some("crm@acme.example"), "the system: Ann has no mailbox");
    let reply_to = first.reply_to().and_then(|r| r.first()).and_then(|a| a.address()).unwrap().to_string();
    assert!(reply_to.starts_with("ann-assigned-"), "replies go to the assigned user: {reply_to}");
    let text = first.body_text(0).unwrap().to_string();
    assert!(text.contains("Dear Bob Buyer,") && text.contains("due on 24 December 2026") && text.contains("Ann Assigned, "), "{text}");

    let listed = actions(&app).await;
    let sent: Vec<&Value> = listed.iter().filter(|a| a["status"] == "SENT").collect();
    assert_eq!(sent.len(), 2, "{listed:#?}");
    assert_eq!(sent[0]["fromAddress"], "crm@acme.example", "the actual From");
    assert_eq!(sent[0]["recipients"], json!([{"name": "Bob Buyer", "address": "bob@globex.example"}]));
    assert_eq!(sent[0]["sender"]["name"], "Ann Assigned");
    let automated_only = ok(&app, "{ plannedActions(filter: {trigger: MANUAL}) { nodes { kind } } }", json!({})).await;
    assert_eq!(automated_only["plannedActions"]["nodes"], json!([{"kind": "CALL"}]));
}

/// When no sender resolves or the contacts do not allow it, the action becomes a to-do of the
/// responsible user with the reason (and a panel row for them); correcting the contacts makes
/// it automatic again, due the next business day, and it goes out then.
#[tokio::test]
async fn an_action_that_cannot_go_out_becomes_a_todo_and_comes_back_when_contacts_are_fixed() {
    let app = spawn_app().await;
    let smtp = TestSmtp::start(&[]).await;
    use_smtp(&app, &smtp).await;
    let (ann, ann_token) = app.user("Ann Assigned", "USER").await;
    app.switch_on(&ann_token, "AUTOMATED_COMMUNICATION_NEEDS_ATTENTION", "SYSTEM").await;
    // Initech: its main contact is invalid. Hooli: nobody has the position Finance.
    let (initech, initech_persons) = customer(&app, "Initech", &[("Peter", Some("peter@initech.example"), None, true, true)], &[&ann]).await;
    let created = create_workflow(&app, json!([email_action("Reminder", 0, json!({"sender": "ASSIGNED_USER"}))])).await;
    let workflow = created["data"]["createWorkflow"]["workflow"]["id"].as_str().unwrap_or_else(|| panic!("{created:#}")).to_string();
    enroll(&app, &workflow, &initech, "2026-12-07").await;

    let worker = Worker::new(app.state.clone()).await.unwrap();
    let ran = worker.tick_at(utc(2026, 12, 7, 8, 30)).await.unwrap();
    assert_eq!((ran.workflows.sent, ran.workflows.todo), (0, 1), "{ran:?}");
    let listed = actions(&app).await;
    let todo = &listed[0];
    assert_eq!(
        (todo["status"].as_str(), todo["trigger"].as_str(), todo["fallback"].as_str()),
        (Some("TODO"), Some("MANUAL"), Some("CONTACT_INVALID")),
        "{todo:#}"
    );
    assert!(todo["reason"].as_str().unwrap().contains("Peter is marked invalid"), "{todo:#}");
    assert_eq!(todo["assignee"]["name"], "Ann Assigned");
    let panel = app.gql(Some(&ann_token), "{ notifications(first: 10) { edges { node { type title } } } }", json!({})).await;
    assert_eq!(panel["data"]["notifications"]["edges"][0]["node"]["type"], "AUTOMATED_COMMUNICATION_NEEDS_ATTENTION", "{panel:#}");

    // The contact is corrected on Monday afternoon: automatic again, due Tuesday.
    ok(
        &app,
        "mutation($i: UpdateContactPersonInput!) { updateContactPerson(input: $i) { contactPerson { id } } }",
        json!({"i": {"id": initech_persons[0], "invalid": false}}),
    )
    .await;
    let listed = actions(&app).await;
    assert_eq!(
        (listed[0]["status"].as_str(), listed[0]["trigger"].as_str(), listed[0]["fallback"].as_str()),
        (Some("PLANNED"), Some("AUTOMATED"), None),
        "{listed:#?}"
    );
    let due: chrono::NaiveDate = listed[0]["dueOn"].as_str().unwrap().parse().unwrap();
    assert!(due > Utc::now().date_naive(), "the next business day: {due}");
    let ran = worker.tick_at(Utc::now() + chrono::Duration::days(4)).await.unwrap();
    assert_eq!(ran.workflows.sent, 1, "{ran:?}");
    let got = smtp.wait_for(1, 20).await;
    assert_eq!(got[0].rcpt_tos, vec!["peter@initech.example"]);
}

/// Every sender rule, and the reasons nobody can send, against the real fan of users.
#[tokio::test]
async fn senders_resolve_in_the_documented_order_and_never_fall_to_someone_else() {
    let app = spawn_app().await;
    let smtp = TestSmtp::start(&[]).await;
    use_smtp(&app, &smtp).await;
    let (ann, _) = app.user("Ann Assigned", "USER").await;
    let (bo, _) = app.user("Bo Second", "USER").await;
    let (gia, _) = app.user("Gia Group", "USER").await;
    let (sam, _) = app.user("Sam Specific", "USER").await;
    let group = ok(
        &app,
        "mutation($i: CreateUserGroupInput!) { createUserGroup(input: $i) { userGroup { id } } }",
        json!({"i": {"name": "Billing desk", "memberIds": [gia, bo]}}),
    )
    .await;
    let group = group["createUserGroup"]["userGroup"]["id"].as_str().unwrap().to_string();
    let empty =
        ok(&app, "mutation($i: CreateUserGroupInput!) { createUserGroup(input: $i) { userGroup { id } } }", json!({"i": {"name": "Nobody", "memberIds": []}}))
            .await;
    let empty = empty["createUserGroup"]["userGroup"]["id"].as_str().unwrap().to_string();
    let person = |n: &str| (n.to_string(), format!("{}@customer.example", n.to_lowercase()));
    let mut cases = Vec::new();
    for (label, sender, assignees, expect) in [
        ("specific", json!({"sender": "USER", "senderUserId": sam}), vec![ann.clone()], Ok("Sam Specific")),
        ("group, all", json!({"sender": "GROUP_ALL", "senderGroupId": group}), vec![ann.clone()], Ok("Gia Group")),
        ("group, assigned", json!({"sender": "GROUP_ASSIGNED", "senderGroupId": group}), vec![ann.clone(), bo.clone()], Ok("Bo Second")),
        (
            "group, none assigned",
            json!({"sender": "GROUP_ASSIGNED", "senderGroupId": group}),
            vec![ann.clone()],
            Err("no active member of the sending group is assigned"),
        ),
        ("empty group", json!({"sender": "GROUP_ALL", "senderGroupId": empty}), vec![ann.clone()], Err("the sending group has no active member")),
        ("assigned first", json!({"sender": "ASSIGNED_USER"}), vec![bo.clone(), ann.clone()], Ok("Bo Second")),
        ("unassigned", json!({"sender": "ASSIGNED_USER"}), vec![], Err("the customer has no assigned user")),
    ] {
        let (name, email) = person(&label.replace([' ', ','], ""));
        let assignees: Vec<&str> = assignees.iter().map(String::as_str).collect();
        let (contact, _) = customer(&app, label, &[(&name, Some(&email), None, true, false)], &assignees).await;
        let created = create_workflow(&app, json!([email_action("Reminder", 0, sender)])).await;
        let workflow = created["data"]["createWorkflow"]["workflow"]["id"].as_str().unwrap_or_else(|| panic!("{label}: {created:#}")).to_string();
        enroll(&app, &workflow, &contact, "2026-12-07").await;
        cases.push((label, expect));
    }
    let worker = Worker::new(app.state.clone()).await.unwrap();
    worker.tick_at(utc(2026, 12, 7, 9, 0)).await.unwrap();
    let listed = actions(&app).await;
    for (label, expect) in cases {
        let row = listed.iter().find(|a| a["contact"]["name"] == label).unwrap_or_else(|| panic!("{label}"));
        match expect {
            Ok(sender) => assert_eq!((row["status"].as_str(), row["sender"]["name"].as_str()), (Some("SENT"), Some(sender)), "{label}: {row:#}"),
            Err(reason) => {
                assert_eq!((row["status"].as_str(), row["fallback"].as_str()), (Some("TODO"), Some("NO_SENDER")), "{label}: {row:#}");
                assert!(row["reason"].as_str().unwrap().contains(reason), "{label}: {row:#}");
            }
        }
    }
}

/// Changing a workflow re-plans what is not done yet; a deleted action's planned rows are
/// cancelled; done ones stay as they were.
#[tokio::test]
async fn changing_a_workflow_replans_the_actions_not_done() {
    let app = spawn_app().await;
    let (ann, _) = app.user("Ann Assigned", "USER").await;
    let (globex, _) = customer(&app, "Globex", &[("Bob", Some("bob@globex.example"), None, true, false)], &[&ann]).await;
    let created = create_workflow(
        &app,
        json!([email_action("One", 0, json!({"sender": "ASSIGNED_USER"})), email_action("Two", 3, json!({"sender": "ASSIGNED_USER"})), {"kind": "TASK", "name": "Check", "delayDays": 1}]),
    )
    .await;
    let wf = &created["data"]["createWorkflow"]["workflow"];
    let (workflow, ids) =
        (wf["id"].as_str().unwrap().to_string(), wf["actions"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect::<Vec<_>>());
    enroll(&app, &workflow, &globex, "2026-12-07").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    worker.tick_at(utc(2026, 12, 7, 9, 0)).await.unwrap();

    // "Two" waits 5 days now, the task goes.
    let body = app
        .gql(
            Some(&app.admin_token),
            &format!("mutation($i: UpdateWorkflowInput!) {{ updateWorkflow(input: $i) {{ {WORKFLOW} }} }}"),
            json!({"i": {"id": workflow, "expectedVersion": 1, "name": "Dunning", "active": true,
                "actions": [{"id": ids[0], "kind": "EMAIL", "name": "One", "subjectTemplate": "Hello", "bodyTemplate": "Hi", "sendAutomatically": true, "sender": "ASSIGNED_USER"},
                            {"id": ids[1], "kind": "EMAIL", "name": "Two", "delayDays": 5, "subjectTemplate": "Hello", "bodyTemplate": "Hi", "sendAutomatically": true, "sender": "ASSIGNED_USER"}]}}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let listed = actions(&app).await;
    let plan: Vec<(&str, &str, &str)> =
        listed.iter().map(|a| (a["kind"].as_str().unwrap(), a["status"].as_str().unwrap(), a["dueOn"].as_str().unwrap())).collect();
    assert_eq!(plan, vec![("EMAIL", "SENT", "2026-12-07"), ("EMAIL", "PLANNED", "2026-12-12"), ("TASK", "CANCELLED", "2026-12-11")], "{listed:#?}");
}

/// Bad input is refused with its field, and nothing is half-saved.
#[tokio::test]
async fn bad_workflows_and_calendars_are_refused_with_their_field() {
    let app = spawn_app().await;
    let other_user = app.other_tenant().await.0;
    for (actions, field) in [
        (json!([{"kind": "EMAIL", "name": "x", "subjectTemplate": "Hi {{ customer.nickname }}", "bodyTemplate": "b"}]), "input.actions[0].subjectTemplate"),
        (json!([{"kind": "EMAIL", "name": "x", "subjectTemplate": "s", "bodyTemplate": "{{ contact.name "}]), "input.actions[0].bodyTemplate"),
        (json!([{"kind": "EMAIL", "name": "x", "subjectTemplate": "s", "bodyTemplate": "b", "recipients": "POSITION"}]), "input.actions[0].recipientPosition"),
        (json!([{"kind": "CALL", "name": "x", "sendAutomatically": true, "sender": "ASSIGNED_USER"}]), "input.actions[0].sendAutomatically"),
        (json!([{"kind": "SMS", "name": "x", "bodyTemplate": "b", "sendAutomatically": true}]), "input.actions[0].sender"),
        (
            json!([{"kind": "SMS", "name": "x", "bodyTemplate": "b", "sendAutomatically": true, "sender": "USER", "senderUserId": other_user}]),
            "input.actions[0].senderUserId",
        ),
        (json!([{"kind": "EMAIL", "name": "x", "subjectTemplate": "s", "bodyTemplate": "b", "delayDays": -1}]), "input.actions[0].delayDays"),
    ] {
        let body = create_workflow(&app, actions).await;
        assert_eq!((error_code(&body), body["errors"][0]["extensions"]["field"].as_str()), (Some("BAD_USER_INPUT"), Some(field)), "{body:#}");
    }
    let unknown_kind = create_workflow(&app, json!([{"kind": "FAX", "name": "x"}])).await;
    assert!(unknown_kind["errors"][0]["message"].as_str().unwrap().contains("FAX"), "{unknown_kind:#}");
    assert_eq!(ok(&app, "{ workflows { id } }", json!({})).await["workflows"], json!([]), "nothing half-saved");

    let calendar = "mutation($i: ChangeCommunicationCalendarInput!) { changeCommunicationCalendar(input: $i) { version } }";
    for (input, field) in [
        (json!({"expectedVersion": 0, "schedulingTime": "25:00"}), "input.schedulingTime"),
        (json!({"expectedVersion": 0, "schedulingTime": "08:30", "holidays": ["2026-12-25", "2026-12-25"]}), "input.holidays[1]"),
    ] {
        let body = app.gql(Some(&app.admin_token), calendar, json!({"i": input})).await;
        assert_eq!(body["errors"][0]["extensions"]["field"].as_str(), Some(field), "{body:#}");
    }
    let body = app.gql(Some(&app.admin_token), "mutation { updateAccount(input: {timeZone: \"Mars/Olympus\"}) { account { timeZone } } }", json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body:#}");

    let c = ok(&app, "mutation { createContact(input: {kind: CUSTOMER, name: \"Globex\"}) { contact { id } } }", json!({})).await;
    let body = app
        .gql(
            Some(&app.admin_token),
            "mutation($i: CreateContactPersonInput!) { createContactPerson(input: $i) { contactPerson { id } } }",
            json!({"i": {"contactId": c["createContact"]["contact"]["id"], "name": "Bob", "phone": "call me"}}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.phone", "{body:#}");
}

/// Texts go to the contacts' phones through the SMS gateway, one per phone; the timeline shows
/// every communication with its trigger, From and content; a to-do completed by hand counts as
/// manual in the team activity, billing emails not at all.
#[tokio::test]
async fn texts_timeline_and_team_activity() {
    let app = spawn_app().await;
    let smtp = TestSmtp::start(&[]).await;
    use_smtp(&app, &smtp).await;
    let (url, seen) = crate::delivery::sms_receiver(201).await;
    ok(
        &app,
        "mutation($i: ChangeSmsGatewayInput!) { changeSmsGateway(input: $i) { smsGateway { version } } }",
        json!({"i": {"expectedVersion": 0, "baseUrl": url, "accountSid": "AC1", "authToken": "tok", "fromNumber": "+15550001111"}}),
    )
    .await;
    let (ann, ann_token) = app.user("Ann Assigned", "USER").await;
    let (globex, persons) = customer(
        &app,
        "Globex",
        &[("Bob Buyer", Some("bob@globex.example"), Some("Buyer"), true, false), ("Carol Buyer", Some("carol@globex.example"), Some("buyer"), false, false)],
        &[&ann],
    )
    .await;
    for (person, phone) in persons.iter().zip(["+33 6 11 22 33 44", "+1 (415) 555-0100"]) {
        ok(
            &app,
            "mutation($i: UpdateContactPersonInput!) { updateContactPerson(input: $i) { contactPerson { phone } } }",
            json!({"i": {"id": person, "phone": phone}}),
        )
        .await;
    }
    let created = create_workflow(
        &app,
        json!([
            {"kind": "SMS", "name": "Text the buyers", "bodyTemplate": "{{ contact.name }}, your invoice from {{ account.name }} is due.", "recipients": "POSITION", "recipientPosition": "Buyer", "sendAutomatically": true, "sender": "ASSIGNED_USER"},
            {"kind": "EMAIL", "name": "Invoice", "subjectTemplate": "Invoice", "bodyTemplate": "Attached.", "sendAutomatically": true, "sender": "ASSIGNED_USER", "billing": true},
            {"kind": "CALL", "name": "Call Bob"}
        ]),
    )
    .await;
    let workflow = created["data"]["createWorkflow"]["workflow"]["id"].as_str().unwrap_or_else(|| panic!("{created:#}")).to_string();
    enroll(&app, &workflow, &globex, "2026-12-07").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    let ran = worker.tick_at(utc(2026, 12, 7, 9, 0)).await.unwrap();
    assert_eq!(ran.workflows.sent, 2, "{ran:?}");
    let texts = seen.lock().await.clone();
    let mut to: Vec<String> = texts.iter().map(|(_, form, _)| form["To"].clone()).collect();
    to.sort();
    assert_eq!(to, vec!["+14155550100", "+33611223344"], "both buyers (the position ignores case), normalised numbers");
    assert!(texts.iter().any(|(_, form, _)| form["Body"].starts_with("Carol Buyer, your invoice from")), "{texts:?}");

    // Ann makes the call.
    let listed = actions(&app).await;
    let call = listed.iter().find(|a| a["kind"] == "CALL").unwrap()["id"].as_str().unwrap().to_string();
    let done = app
        .gql(
            Some(&ann_token),
            "mutation($i: CompletePlannedActionInput!) { completePlannedAction(input: $i) { plannedAction { status } } }",
            json!({"i": {"id": call}}),
        )
        .await;
    assert_eq!(done["data"]["completePlannedAction"]["plannedAction"]["status"], "SENT", "{done:#}");

    let timeline = ok(
        &app,
        "query($c: ID!) { customerTimeline(contactId: $c) { nodes { kind automated fromAddress subject body recipients { address } } } }",
        json!({"c": globex}),
    )
    .await;
    let nodes = timeline["customerTimeline"]["nodes"].as_array().unwrap();
    let kinds: Vec<(&str, bool)> = nodes.iter().map(|n| (n["kind"].as_str().unwrap(), n["automated"].as_bool().unwrap())).collect();
    assert_eq!(kinds, vec![("CALL", false), ("EMAIL", true), ("SMS", true)], "newest first: {timeline:#}");
    assert_eq!(nodes[2]["recipients"].as_array().unwrap().len(), 2);

    let today = Utc::now().date_naive();
    let activity = ok(
        &app,
        "query($f: NaiveDate!, $t: NaiveDate!) { teamActivity(period: MONTH, from: $f, to: $t) { user { name } kind automated manual } }",
        json!({"f": "2026-12-01", "t": today.max(chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap())}),
    )
    .await;
    let mut lines: Vec<(String, String, i64, i64)> = activity["teamActivity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["user"]["name"].as_str().unwrap().to_string(),
                l["kind"].as_str().unwrap().to_string(),
                l["automated"].as_i64().unwrap(),
                l["manual"].as_i64().unwrap(),
            )
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![("Ann Assigned".into(), "CALL".into(), 0, 1), ("Ann Assigned".into(), "SMS".into(), 1, 0)],
        "the billing email is left out: {activity:#}"
    );
}

/// The scheduling time follows each account's zone, across a daylight-saving change.
#[tokio::test]
async fn the_scheduling_time_follows_the_time_zone_across_daylight_saving() {
    let app = spawn_app().await;
    let smtp = TestSmtp::start(&[]).await;
    use_smtp(&app, &smtp).await;
    let (ann, _) = app.user("Ann Assigned", "USER").await;
    let (c, _) = customer(&app, "Globex", &[("Bob", Some("bob@globex.example"), None, true, false)], &[&ann]).await;
    let created = create_workflow(
        &app,
        json!([
            email_action("One", 0, json!({"sender": "ASSIGNED_USER"})),
            email_action("Two", 3, json!({"sender": "ASSIGNED_USER"})),
            email_action("Three", 1, json!({"sender": "ASSIGNED_USER"}))
        ]),
    )
    .await;
    let workflow = created["data"]["createWorkflow"]["workflow"]["id"].as_str().unwrap().to_string();
    let worker = Worker::new(app.state.clone()).await.unwrap();
    let sent_at = |t: DateTime<Utc>| {
        let w = &worker;
        async move { w.tick_at(t).await.unwrap().workflows.sent }
    };
    // New York: Friday 6 March 2026 is EST (UTC-5): 08:30 is 13:30 UTC.
    set_time_zone(&app, "America/New_York").await;
    enroll(&app, &workflow, &c, "2026-03-06").await;
    assert_eq!(sent_at(utc(2026, 3, 6, 13, 29)).await, 0);
    assert_eq!(sent_at(utc(2026, 3, 6, 13, 30)).await, 1);
    // "Two" falls on Monday 9 March, after the change to EDT (UTC-4): 12:30 UTC.
    assert_eq!(sent_at(utc(2026, 3, 9, 12, 29)).await, 0);
    assert_eq!(sent_at(utc(2026, 3, 9, 12, 30)).await, 1);
    // Tokyo (UTC+9, no daylight saving): Tuesday 10 March 08:30 is 23:30 UTC on Monday.
    set_time_zone(&app, "Asia/Tokyo").await;
    assert_eq!(sent_at(utc(2026, 3, 9, 23, 29)).await, 0);
    assert_eq!(sent_at(utc(2026, 3, 9, 23, 30)).await, 1);
    assert_eq!(smtp.wait_for(3, 20).await.len(), 3);
}

/// A letter goes out as a PDF kept for download: opened, its text is the letter.
#[tokio::test]
async fn letters_are_rendered_to_pdf_and_kept_for_download() {
    let app = spawn_app().await;
    let (ann, _) = app.user("Ann Assigned", "USER").await;
    let (globex, persons) = customer(&app, "Globex", &[("Bob Buyer", None, None, true, false)], &[&ann]).await;
    let created = create_workflow(
        &app,
        json!([{"kind": "LETTER", "name": "Formal notice", "subjectTemplate": "Formal notice: invoice overdue",
                "bodyTemplate": "Dear {{ contact.name }},\n\nOur invoice to {{ customer.name }} is overdue. Please pay within eight days.\n\nRegards,\n{{ sender.name }}",
                "sendAutomatically": true, "sender": "ASSIGNED_USER"}]),
    )
    .await;
    let workflow = created["data"]["createWorkflow"]["workflow"]["id"].as_str().unwrap_or_else(|| panic!("{created:#}")).to_string();
    enroll(&app, &workflow, &globex, "2026-12-07").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    // No postal address: a to-do.
    let ran = worker.tick_at(utc(2026, 12, 7, 9, 0)).await.unwrap();
    assert_eq!(ran.workflows.todo, 1, "{ran:?}");
    assert_eq!(actions(&app).await[0]["fallback"], "NO_ADDRESS");
    ok(
        &app,
        "mutation($i: UpdateContactPersonInput!) { updateContactPerson(input: $i) { contactPerson { id } } }",
        json!({"i": {"id": persons[0], "postalAddress": {"line1": "12 rue de la Paix", "postalCode": "75002", "city": "Paris", "country": "fr"}}}),
    )
    .await;
    let ran = worker.tick_at(Utc::now() + chrono::Duration::days(4)).await.unwrap();
    assert_eq!(ran.workflows.sent, 1, "{ran:?}");
    let listed = ok(&app, "{ plannedActions { nodes { status recipients { address } letters { fileName sizeBytes contentBase64 } } } }", json!({})).await;
    let action = &listed["plannedActions"]["nodes"][0];
    assert_eq!(action["status"], "SENT");
    assert_eq!(action["recipients"][0]["address"], "12 rue de la Paix, 75002 Paris, FR");
    let letter = &action["letters"][0];
    assert!(letter["fileName"].as_str().unwrap().ends_with("Bob-Buyer.pdf"), "{letter:#}");
    use base64::Engine;
    let pdf = base64::engine::general_purpose::STANDARD.decode(letter["contentBase64"].as_str().unwrap()).unwrap();
    assert_eq!(pdf.len() as i64, letter["sizeBytes"].as_i64().unwrap());
    let doc = lopdf::Document::load_mem(&pdf).expect("a PDF a reader opens");
    let text = doc.extract_text(&[1]).unwrap();
    for wanted in [
        "Acme",
        "Ann Assigned",
        "Bob Buyer",
        "12 rue de la Paix",
        "75002 Paris",
        "Formal notice: invoice overdue",
        "Dear Bob Buyer,",
        "Our invoice to Globex is overdue.",
    ] {
        assert!(text.contains(wanted), "{wanted:?} in {text:?}");
    }
}

/// Two `herald` processes run the same account's day; one is killed with SIGKILL while the run
/// is half done. The survivor sends the rest: every action exactly once (one outbox message
/// per action, one run for the date), every email arrives. PostgreSQL only: SQLite runs one
/// worker.
#[tokio::test]
async fn two_workers_one_killed_mid_run_send_every_action_once() {
    use sea_orm::{ColumnTrait, QueryFilter};
    use std::collections::HashMap;
    if std::env::var("HERALD_TEST_DATABASE_URL").map_or(true, |v| v.is_empty()) {
        eprintln!("skipped on SQLite: several workers need PostgreSQL (CI runs this on PostgreSQL)");
        return;
    }
    const N: usize = 2000;
    let app = spawn_app().await;
    let smtp = TestSmtp::start(&[]).await;
    use_smtp(&app, &smtp).await;
    let (ann, _) = app.user("Ann Assigned", "USER").await;
    let created = create_workflow(&app, json!([email_action("Reminder", 0, json!({"sender": "ASSIGNED_USER"}))])).await;
    let wf = &created["data"]["createWorkflow"]["workflow"];
    let (workflow, action): (uuid::Uuid, uuid::Uuid) = (wf["id"].as_str().unwrap().parse().unwrap(), wf["actions"][0]["id"].as_str().unwrap().parse().unwrap());
    let account: uuid::Uuid = app.account_id.parse().unwrap();
    let ann: uuid::Uuid = ann.parse().unwrap();
    // N customers enrolled ten days ago, written straight to the database: the run for the
    // last business day covers them all.
    let now = Utc::now();
    let on = now.date_naive() - chrono::Duration::days(10);
    let (mut contacts, mut persons, mut assignees, mut enrollments, mut planned) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        let contact = uuid::Uuid::now_v7();
        contacts.push(entity::contact::Model {
            id: contact,
            account_id: account,
            kind: entity::contact::ContactKind::Customer,
            name: format!("Customer {i}"),
            main_email: None,
            email_domain: None,
            valid: true,
            created_at: now,
            updated_at: now,
        });
        persons.push(entity::contact_person::Model {
            id: uuid::Uuid::now_v7(),
            account_id: account,
            contact_id: contact,
            name: format!("Buyer {i}"),
            email: Some(format!("buyer{i}@customer.example")),
            position: None,
            invalid: false,
            phone: None,
            postal_address: None,
            main: true,
            created_at: now,
            updated_at: now,
        });
        assignees.push(entity::contact_assignee::Model { contact_id: contact, user_id: ann, account_id: account, position: 0, assigned_at: now });
        let enrollment = uuid::Uuid::now_v7();
        enrollments.push(entity::enrollment::Model {
            id: enrollment,
            account_id: account,
            workflow_id: workflow,
            contact_id: contact,
            enrolled_on: on,
            status: entity::enrollment::Status::Active,
            created_at: now,
            ended_at: None,
        });
        planned.push(entity::planned_action::Model {
            id: uuid::Uuid::now_v7(),
            account_id: account,
            enrollment_id: enrollment,
            workflow_id: workflow,
            action_id: Some(action),
            contact_id: contact,
            position: 0,
            kind: entity::planned_action::Kind::Email,
            trigger: entity::planned_action::Trigger::Automated,
            status: entity::planned_action::Status::Planned,
            due_on: on,
            assignee_id: Some(ann),
            sender_user_id: None,
            todo_reason: None,
            fallback: None,
            from_address: None,
            recipients: None,
            subject: None,
            body: None,
            outbox_message_id: None,
            document_id: None,
            billing: false,
            done_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        });
    }
    let db = &app.state.db;
    api::db::insert_all::<entity::contact::Entity>(db, &contacts).await.unwrap();
    api::db::insert_all::<entity::contact_person::Entity>(db, &persons).await.unwrap();
    api::db::insert_all::<entity::contact_assignee::Entity>(db, &assignees).await.unwrap();
    api::db::insert_all::<entity::enrollment::Entity>(db, &enrollments).await.unwrap();
    api::db::insert_all::<entity::planned_action::Entity>(db, &planned).await.unwrap();

    let spawn = || app.spawn_herald(&[("HERALD_WORKER_POLL_MS", "50"), ("HERALD_DELIVERY_CONCURRENCY", "1"), ("HERALD_DELIVERY_LEASE_SECS", "2")]);
    let (mut a, _dir_a) = spawn();
    let (mut b, _dir_b) = spawn();
    let sent = || async {
        entity::planned_action::Entity::find().filter(entity::planned_action::Column::Status.eq(entity::planned_action::Status::Sent)).count(db).await.unwrap()
            as usize
    };
    // Kill one as soon as the run is under way.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while sent().await == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let at_kill = sent().await;
    eprintln!("killed one worker with {at_kill} of {N} actions sent");
    assert!(at_kill < N, "the kill came mid-run");

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let delivered = entity::outbox_message::Entity::find().filter(entity::outbox_message::Column::Status.eq("SENT")).count(db).await.unwrap() as usize;
        if (sent().await == N && delivered == N) || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.start_kill().unwrap();
    assert_eq!(sent().await, N, "every action sent");
    let queued = entity::outbox_message::Entity::find().filter(entity::outbox_message::Column::SourceKey.like("workflow-action:%")).count(db).await.unwrap();
    assert_eq!(queued as usize, N, "one message per action: none queued twice");
    let runs = entity::workflow_run::Entity::find().filter(entity::workflow_run::Column::AccountId.eq(account)).count(db).await.unwrap();
    assert_eq!(runs, 1, "one run for the date");
    let got = smtp.wait_for(N, 30).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.message_id()).or_default() += 1;
    }
    let duplicates: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(per_id.len(), N, "every email arrived");
    // Delivery's own bound: the one message the killed worker's connection had in flight.
    assert!(duplicates.len() <= 1, "at most the killed worker's in-flight message twice: {duplicates:?}");
    smtp.stop().await;
}

/// A sender with a connected mailbox sends as themselves, through their own server, From
/// their address; the action records that From.
#[tokio::test]
async fn a_sender_with_an_outgoing_mailbox_sends_from_it() {
    let app = spawn_app().await;
    let system = TestSmtp::start(&[]).await;
    use_smtp(&app, &system).await;
    let own = TestSmtp::start(&[]).await;
    let (ann, _) = app.user("Ann Assigned", "USER").await;
    ok(
        &app,
        "mutation($i: CreateMailboxInput!) { createMailbox(input: $i) { mailbox { id } } }",
        json!({"i": {"userId": ann, "emailAddress": "ann@own.example", "host": "imap.own.example", "security": "TLS", "password": "p", "main": true,
                     "scanActive": false, "skipTest": true,
                     "outgoing": {"host": "127.0.0.1", "port": own.port, "security": "NONE", "username": own.user, "password": own.password}}}),
    )
    .await;
    let (globex, _) = customer(&app, "Globex", &[("Bob Buyer", Some("bob@globex.example"), None, true, false)], &[&ann]).await;
    let created = create_workflow(&app, json!([email_action("Reminder", 0, json!({"sender": "ASSIGNED_USER"}))])).await;
    let workflow = created["data"]["createWorkflow"]["workflow"]["id"].as_str().unwrap().to_string();
    enroll(&app, &workflow, &globex, "2026-12-07").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    worker.tick_at(utc(2026, 12, 7, 9, 0)).await.unwrap();
    let got = own.wait_for(1, 20).await;
    assert_eq!(got.len(), 1, "through Ann's own server");
    assert!(system.received().is_empty(), "not through the system's");
    let parsed = got[0].parsed();
    assert_eq!(parsed.from().and_then(|f| f.first()).and_then(|a| a.address()), Some("ann@own.example"));
    assert_eq!(parsed.from().and_then(|f| f.first()).and_then(|a| a.name()), Some("Ann Assigned"));
    assert!(parsed.reply_to().is_none());
    assert_eq!(got[0].rcpt_tos, vec!["bob@globex.example"]);
    assert_eq!(actions(&app).await[0]["fromAddress"], "ann@own.example", "the actual From");
    let sent = ok(&app, "{ outboundMessages(first: 5) { nodes { sentAs senderNote } } }", json!({})).await;
    assert_eq!(sent["outboundMessages"]["nodes"][0]["sentAs"], "USER_MAILBOX", "{sent:#}");
}

/// A worker that was down from Wednesday to Monday noon catches up with one run, Monday's,
/// sending what fell due meanwhile, not one run per missed day.
#[tokio::test]
async fn a_worker_that_was_down_catches_up_with_one_run() {
    let app = spawn_app().await;
    let smtp = TestSmtp::start(&[]).await;
    use_smtp(&app, &smtp).await;
    let (ann, _) = app.user("Ann Assigned", "USER").await;
    let (globex, _) = customer(&app, "Globex", &[("Bob", Some("bob@globex.example"), None, true, false)], &[&ann]).await;
    let created = create_workflow(
        &app,
        json!([
            email_action("Wednesday", 0, json!({"sender": "ASSIGNED_USER"})),
            email_action("Thursday", 1, json!({"sender": "ASSIGNED_USER"})),
            email_action("Friday", 1, json!({"sender": "ASSIGNED_USER"})),
            email_action("Monday", 3, json!({"sender": "ASSIGNED_USER"})),
            email_action("Tuesday", 1, json!({"sender": "ASSIGNED_USER"}))
        ]),
    )
    .await;
    let workflow = created["data"]["createWorkflow"]["workflow"]["id"].as_str().unwrap().to_string();
    enroll(&app, &workflow, &globex, "2026-12-09").await;
    let worker = Worker::new(app.state.clone()).await.unwrap();
    let wednesday = worker.tick_at(utc(2026, 12, 9, 9, 0)).await.unwrap();
    assert_eq!((wednesday.workflows.runs, wednesday.workflows.sent), (1, 1));
    // Down until Monday noon.
    let monday = worker.tick_at(utc(2026, 12, 14, 12, 0)).await.unwrap();
    assert_eq!((monday.workflows.runs, monday.workflows.sent), (1, 3), "one run sends Thursday's, Friday's and Monday's: {monday:?}");
    let runs = entity::workflow_run::Entity::find().count(&app.state.db).await.unwrap();
    assert_eq!(runs, 2, "Wednesday's and Monday's, none for the missed days");
    let listed = actions(&app).await;
    assert_eq!(listed.iter().filter(|a| a["status"] == "PLANNED").count(), 1, "Tuesday's waits");
}
