//! Tokens, API keys and "log in as".

use jsonwebtoken::{encode, EncodingKey, Header};
use sea_orm::EntityTrait;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app};

const VIEWER: &str = "{ viewer { user { id name } impersonator { id } apiKeyScopes account { id } } }";

#[tokio::test]
async fn bad_expired_or_foreign_tokens_get_401() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value, secret: &str| encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
    let secret = app.config.jwt_secret.as_ref().unwrap().expose().to_string();
    let cases = [
        ("garbage", "not.a.jwt".to_string()),
        ("expired", sign(json!({"sub": app.admin_id, "exp": now - 3600, "iat": now - 7200}), &secret)),
        ("no exp", sign(json!({"sub": app.admin_id}), &secret)),
        ("other secret", sign(json!({"sub": app.admin_id, "exp": now + 600}), "another-secret-another-secret-another")),
        ("unknown user", sign(json!({"sub": uuid::Uuid::now_v7().to_string(), "exp": now + 600}), &secret)),
        ("unknown api key", format!("hk_{}_{}", uuid::Uuid::now_v7().simple(), "00".repeat(32))),
    ];
    for (what, token) in cases {
        let response = app.http.post(app.url()).bearer_auth(&token).json(&json!({"query": VIEWER})).send().await.unwrap();
        assert_eq!(response.status(), 401, "{what}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{what}");
    }
    let body = app.gql(Some(&app.admin_token), VIEWER, json!({})).await;
    assert_eq!(body["data"]["viewer"]["user"]["id"], app.admin_id.as_str());
}

#[tokio::test]
async fn a_deactivated_user_is_locked_out_at_once() {
    let app = spawn_app().await;
    let (bob, bob_token) = app.user("Bob", "USER").await;
    assert!(app.gql(Some(&bob_token), VIEWER, json!({})).await.get("errors").is_none());
    app.admin("mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { active } } }", json!({"i": {"id": bob, "active": false}})).await;
    let response = app.http.post(app.url()).bearer_auth(&bob_token).json(&json!({"query": VIEWER})).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

const CREATE_KEY: &str = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret apiKey { id name scopes lastUsedAt } } }";

#[tokio::test]
async fn api_keys_are_shown_once_scoped_and_revocable() {
    let app = spawn_app().await;
    let created = app.admin(CREATE_KEY, json!({"i": {"name": "Zapier", "scopes": ["READ"]}})).await;
    let secret = created["createApiKey"]["secret"].as_str().unwrap().to_string();
    let key_id = created["createApiKey"]["apiKey"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("hk_"));

    // The secret is never readable again, and only its hash is stored.
    let listed = app.admin("{ apiKeys { nodes { id name scopes } } }", json!({})).await;
    assert!(!listed.to_string().contains(&secret));
    let stored = entity::api_key::Entity::find_by_id(key_id.parse::<uuid::Uuid>().unwrap()).one(&app.state.db).await.unwrap().unwrap();
    assert!(!stored.secret_hash.is_empty() && !secret.contains(&stored.secret_hash));
    let audit = app.admin("{ auditLog(filter: {objectType: \"ApiKey\"}) { nodes { after } } }", json!({})).await;
    assert!(!audit.to_string().contains(&stored.secret_hash), "the hash stays out of the audit log");

    let viewer = app.gql(Some(&secret), VIEWER, json!({})).await;
    assert_eq!(viewer["data"]["viewer"]["apiKeyScopes"], json!(["READ"]));
    assert_eq!(viewer["data"]["viewer"]["user"], Value::Null);
    let contacts = app.gql(Some(&secret), "{ contacts { nodes { id } } }", json!({})).await;
    assert!(contacts.get("errors").is_none(), "{contacts}");

    let write = app.gql(Some(&secret), "mutation { createContact(input: {kind: LEAD, name: \"Initech\"}) { contact { id } } }", json!({})).await;
    assert_eq!(error_code(&write), Some("FORBIDDEN"), "READ keys cannot write");
    let mint = app.gql(Some(&secret), CREATE_KEY, json!({"i": {"name": "x", "scopes": ["WRITE"]}})).await;
    assert_eq!(error_code(&mint), Some("FORBIDDEN"), "keys cannot mint keys");

    let used = app.admin("{ apiKeys { nodes { lastUsedAt } } }", json!({})).await;
    assert!(used["apiKeys"]["nodes"][0]["lastUsedAt"].is_string(), "last use is recorded");

    app.admin("mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { apiKey { revokedAt } } }", json!({"i": {"id": key_id}})).await;
    let response = app.http.post(app.url()).bearer_auth(&secret).json(&json!({"query": VIEWER})).send().await.unwrap();
    assert_eq!(response.status(), 401, "a revoked key stops working at once");
}

#[tokio::test]
async fn write_keys_change_data_and_are_named_in_the_audit_log() {
    let app = spawn_app().await;
    let created = app.admin(CREATE_KEY, json!({"i": {"name": "CRM sync", "scopes": ["WRITE"]}})).await;
    let secret = created["createApiKey"]["secret"].as_str().unwrap();
    let key_id = created["createApiKey"]["apiKey"]["id"].as_str().unwrap();
    let body = app.gql(Some(secret), "mutation { createContact(input: {kind: LEAD, name: \"Initech\"}) { contact { id name } } }", json!({})).await;
    assert_eq!(body["data"]["createContact"]["contact"]["name"], "Initech", "{body}");
    let log = app.admin("{ auditLog(first: 1) { nodes { action apiKeyId actor { id } } } }", json!({})).await;
    assert_eq!(log["auditLog"]["nodes"][0]["action"], "contact.created");
    assert_eq!(log["auditLog"]["nodes"][0]["apiKeyId"], key_id);
    assert_eq!(log["auditLog"]["nodes"][0]["actor"], Value::Null);
}

const IMPERSONATE: &str = "mutation($i: ImpersonateInput!) { impersonate(input: $i) { token user { id } expiresAt } }";

#[tokio::test]
async fn log_in_as_acts_as_the_user_and_audits_the_admin() {
    let app = spawn_app().await;
    let (bob, _) = app.user("Bob", "USER").await;
    let done = app.admin(IMPERSONATE, json!({"i": {"userId": bob}})).await;
    let token = done["impersonate"]["token"].as_str().unwrap().to_string();

    let viewer = app.gql(Some(&token), VIEWER, json!({})).await;
    assert_eq!(viewer["data"]["viewer"]["user"]["id"], bob.as_str(), "the token is Bob");
    assert_eq!(viewer["data"]["viewer"]["impersonator"]["id"], app.admin_id.as_str());

    // As Bob, admin-only operations are refused: the admin's rights do not come along.
    let keys = app.gql(Some(&token), "{ apiKeys { nodes { id } } }", json!({})).await;
    assert_eq!(error_code(&keys), Some("FORBIDDEN"));
    let again = app.gql(Some(&token), IMPERSONATE, json!({"i": {"userId": app.admin_id}})).await;
    assert_eq!(error_code(&again), Some("FORBIDDEN"));

    // What the admin changes as Bob is recorded with the admin as actor.
    let renamed =
        app.gql(Some(&token), "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { name } } }", json!({"i": {"id": bob, "name": "Robert"}})).await;
    assert_eq!(renamed["data"]["updateUser"]["user"]["name"], "Robert", "{renamed}");
    let log = app.admin("{ auditLog(first: 2) { nodes { action actor { id } impersonatedUser { id } } } }", json!({})).await;
    let latest = &log["auditLog"]["nodes"][0];
    assert_eq!(latest["action"], "user.updated");
    assert_eq!(latest["actor"]["id"], app.admin_id.as_str());
    assert_eq!(latest["impersonatedUser"]["id"], bob.as_str());
    assert_eq!(log["auditLog"]["nodes"][1]["action"], "session.logged_in_as");

    // Demoting the admin ends every session they opened as someone else.
    let (other_admin, other_token) = app.user("Second admin", "COMPANY_ADMIN").await;
    let done = app.gql(Some(&other_token), IMPERSONATE, json!({"i": {"userId": bob}})).await;
    let token = done["data"]["impersonate"]["token"].as_str().unwrap().to_string();
    app.admin("mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { role } } }", json!({"i": {"id": other_admin, "role": "USER"}})).await;
    let response = app.http.post(app.url()).bearer_auth(&token).json(&json!({"query": VIEWER})).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn log_in_as_reaches_sub_accounts_but_never_upwards() {
    let app = spawn_app().await;
    let sub = app
        .admin(
            "mutation { createSubAccount(input: {name: \"Acme West\", timeZone: \"America/Los_Angeles\"}) { account { id parent { id } timeZone } } }",
            json!({}),
        )
        .await;
    let sub_id = sub["createSubAccount"]["account"]["id"].as_str().unwrap().to_string();
    assert_eq!(sub["createSubAccount"]["account"]["parent"]["id"], app.account_id.as_str());

    // The sub-account's first company admin, created by the parent's admin.
    let sub_user = app.sub_account_user(&sub_id, "West admin", "COMPANY_ADMIN").await;
    let listed = app.admin("query($id: ID) { account(id: $id) { users { nodes { id } } } }", json!({"id": sub_id})).await;
    assert_eq!(listed["account"]["users"]["nodes"][0]["id"], sub_user.as_str(), "parent admins pick sub-account users");

    let done = app.admin(IMPERSONATE, json!({"i": {"userId": sub_user}})).await;
    let token = done["impersonate"]["token"].as_str().unwrap();
    let viewer = app.gql(Some(token), VIEWER, json!({})).await;
    assert_eq!(viewer["data"]["viewer"]["account"]["id"], sub_id.as_str());

    // The sub-account's own admin cannot log in as the parent's admin, nor see the parent.
    let sub_token = app.token_for(&sub_user);
    let up = app.gql(Some(&sub_token), IMPERSONATE, json!({"i": {"userId": app.admin_id}})).await;
    assert_eq!(error_code(&up), Some("NOT_FOUND"));
    let parent = app.gql(Some(&sub_token), "query($id: ID) { account(id: $id) { name } }", json!({"id": app.account_id})).await;
    assert_eq!(error_code(&parent), Some("NOT_FOUND"));
    let own = app.gql(Some(&sub_token), "{ account { name parent { id } } }", json!({})).await;
    assert_eq!(own["data"]["account"]["parent"], Value::Null, "the parent stays hidden: {own}");
}

/// Seed 002's gold "login" button: a parent's company admin logs in to a sub-account as the
/// account, that is as its primary company admin (designated, else the longest-standing one),
/// audited as the parent's admin; never upwards, never for a plain user.
#[tokio::test]
async fn log_in_to_account_acts_as_its_primary_company_admin() {
    let app = spawn_app().await;
    let sub = app.admin("mutation { createSubAccount(input: {name: \"Acme West\"}) { account { id } } }", json!({})).await;
    let sub_id = sub["createSubAccount"]["account"]["id"].as_str().unwrap().to_string();
    const LOG_IN: &str = "mutation($i: LogInToAccountInput!) { logInToAccount(input: $i) { token user { id } } }";
    let none = app.gql(Some(&app.admin_token), LOG_IN, json!({"i": {"accountId": sub_id}})).await;
    assert_eq!(error_code(&none), Some("BAD_USER_INPUT"), "no admin to act as yet: {none}");

    let first = app.sub_account_user(&sub_id, "West admin", "COMPANY_ADMIN").await;
    let second = app.sub_account_user(&sub_id, "West deputy", "COMPANY_ADMIN").await;
    let done = app.admin(LOG_IN, json!({"i": {"accountId": sub_id}})).await;
    assert_eq!(done["logInToAccount"]["user"]["id"], first.as_str(), "the longest-standing admin");
    let token = done["logInToAccount"]["token"].as_str().unwrap();
    let viewer = app.gql(Some(token), "{ viewer { user { id } account { id } impersonator { id } } }", json!({})).await;
    assert_eq!(viewer["data"]["viewer"], json!({"user": {"id": first}, "account": {"id": sub_id}, "impersonator": {"id": app.admin_id}}));

    // The account designates its primary admin; logging in then acts as them.
    let designated = app
        .admin(
            "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { primaryAdmin { id } } } }",
            json!({"i": {"id": sub_id, "primaryAdminId": second}}),
        )
        .await;
    assert_eq!(designated["updateAccount"]["account"]["primaryAdmin"]["id"], second.as_str());
    assert_eq!(app.admin(LOG_IN, json!({"i": {"accountId": sub_id}})).await["logInToAccount"]["user"]["id"], second.as_str());
    let log = app.admin("{ auditLog(first: 1) { nodes { action actor { id } } } }", json!({})).await;
    assert_eq!(log["auditLog"]["nodes"][0], json!({"action": "session.logged_in_as", "actor": {"id": app.admin_id}}));

    // Not upwards, not into one's own account, not for a plain user.
    let up = app.gql(Some(&app.token_for(&first)), LOG_IN, json!({"i": {"accountId": app.account_id}})).await;
    assert_eq!(error_code(&up), Some("NOT_FOUND"), "{up}");
    let own = app.gql(Some(&app.admin_token), LOG_IN, json!({"i": {"accountId": app.account_id}})).await;
    assert_eq!(error_code(&own), Some("BAD_USER_INPUT"), "{own}");
    let (_, plain) = app.user("Plain", "USER").await;
    assert_eq!(error_code(&app.gql(Some(&plain), LOG_IN, json!({"i": {"accountId": sub_id}})).await), Some("FORBIDDEN"));
    let not_admin = app
        .gql(
            Some(&app.admin_token),
            "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { id } } }",
            json!({"i": {"id": sub_id, "primaryAdminId": app.admin_id}}),
        )
        .await;
    assert_eq!(error_code(&not_admin), Some("BAD_USER_INPUT"), "only an admin of the account itself: {not_admin}");
}
