//! Users' IMAP mailboxes against a real Dovecot on loopback: the connection test and what it
//! answers, saving only tested settings, the write-only password, one main mailbox per user,
//! and who may see and change whose mailboxes.

use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, TestApp, TestImap};

const ANN: (&str, &str) = ("ann@acme.example", "ann-secret");
const TEST: &str = "mutation($i: TestMailboxConnectionInput!) { testMailboxConnection(input: $i) { ok failure { reason message } folders { path name selectable } } }";
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
    let body = app
        .gql(
            Some(&token),
            "mutation($i: UpdateNotificationControlInput!) { updateNotificationControl(input: $i) { control { version } } }",
            json!({"i": {"changes": [{"type": "TEST_INBOX_READ", "switch": "SYSTEM", "enabled": true}]}}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body:#}");

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
    let rows = app
        .state
        .db
        .query_all(sea_orm::Statement::from_string(app.state.db.get_database_backend(), "SELECT password FROM mailbox".to_string()))
        .await
        .unwrap();
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
    let create = |address: &str| {
        json!({"i": {"emailAddress": address, "host": "imap.acme.example", "security": "TLS", "password": "p", "main": true, "skipTest": true}})
    };
    let first = app.gql(Some(&ann_token), CREATE, create("ann@acme.example")).await["data"]["createMailbox"]["mailbox"].clone();
    let second = app.gql(Some(&ann_token), CREATE, create("ann.private@acme.example")).await["data"]["createMailbox"]["mailbox"].clone();
    assert_eq!((first["port"].as_i64(), second["main"].as_bool()), (Some(993), Some(true)));
    let data = app.gql(Some(&ann_token), "{ mailboxes { emailAddress main } }", json!({})).await;
    assert_eq!(data["data"]["mailboxes"], json!([{"emailAddress": "ann@acme.example", "main": false}, {"emailAddress": "ann.private@acme.example", "main": true}]));

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
    let body = app.gql(Some(&ann_token), "mutation($i: DeleteMailboxInput!) { deleteMailbox(input: $i) { deletedMailboxId } }", json!({"i": {"id": first["id"]}})).await;
    assert_eq!(body["data"]["deleteMailbox"]["deletedMailboxId"], first["id"]);
}
