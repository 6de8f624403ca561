//! GraphQL over HTTP: the specification's status codes and the hardening on top of it.

use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_with};

const VIEWER: &str = "{ viewer { user { name } } }";

#[tokio::test]
async fn get_runs_queries_but_refuses_mutations_with_405() {
    let app = spawn_app().await;
    let response = app.http.get(app.url()).query(&[("query", VIEWER)]).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["user"]["name"], "Administrator");

    let mutation = r#"mutation { createUser(input: {name: "Eve", email: "eve@example.com", role: USER}) { user { id } } }"#;
    let response = app.http.get(app.url()).query(&[("query", mutation)]).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let users = app.admin("{ users { nodes { email } } }", json!({})).await;
    assert!(!users.to_string().contains("eve@example.com"), "the mutation must not have run");
}

#[tokio::test]
async fn a_post_that_is_not_json_is_refused_with_415() {
    let app = spawn_app().await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"] {
        let body = json!({"query": VIEWER}).to_string();
        let response = app.post_raw(&[("content-type", content_type), ("authorization", &format!("Bearer {}", app.admin_token))], body).await;
        assert_eq!(response.status(), 415, "{content_type}");
    }
}

#[tokio::test]
async fn accept_selects_the_media_type_and_its_status_codes() {
    let app = spawn_app().await;
    let invalid = json!({"query": "{ noSuchField }"}).to_string();

    let response = app.post_raw(&[("content-type", "application/json"), ("accept", "application/graphql-response+json")], invalid.clone()).await;
    assert_eq!(response.status(), 400, "a request error is a 4xx with graphql-response+json");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/graphql-response+json"));
    let body: Value = response.json().await.unwrap();
    assert!(body.get("data").is_none(), "request errors carry no data entry");
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));

    let response = app.post_raw(&[("content-type", "application/json"), ("accept", "application/json")], invalid).await;
    assert_eq!(response.status(), 200, "application/json answers 200 for a well-formed request");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));

    let response = app.post_raw(&[("content-type", "application/json"), ("accept", "text/plain")], json!({"query": VIEWER}).to_string()).await;
    assert_eq!(response.status(), 406);

    // No Accept, or a wildcard: application/json (the spec's two SHOULDs).
    for accept in [None, Some("*/*"), Some("application/*")] {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(accept.map(|a| ("accept", a)));
        let response = app.post_raw(&headers, json!({"query": VIEWER}).to_string()).await;
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{accept:?}");
    }

    // A field error keeps `data` (null) and answers 200 with either media type.
    let response =
        app.post_raw(&[("content-type", "application/json"), ("accept", "application/graphql-response+json")], json!({"query": VIEWER}).to_string()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"], Value::Null);
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn malformed_bodies_get_clear_errors() {
    let app = spawn_app().await;
    let cases: [(&str, &str); 4] = [
        ("{\"query\": ", "malformed JSON"),
        ("[{\"query\": \"{ viewer { user { id } } }\"}, {\"query\": \"{ viewer { user { id } } }\"}]", "batched"),
        ("{\"variables\": {}}", "not a GraphQL request"),
        ("{\"query\": 42}", "not a GraphQL request"),
    ];
    for (body, message) in cases {
        let response = app.post_raw(&[("content-type", "application/json")], body.to_string()).await;
        assert_eq!(response.status(), 400, "{body}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(error_code(&json), Some("BAD_USER_INPUT"), "{body}");
        assert!(json["errors"][0]["message"].as_str().unwrap().contains(message), "{json}");
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_on_every_route() {
    let app = spawn_with(|c| c.max_body_bytes = 4096).await;
    let big = json!({"query": VIEWER, "variables": {"pad": "x".repeat(10_000)}}).to_string();
    let response = app.post_raw(&[("content-type", "application/json")], big.clone()).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    let response = app.http.post(format!("http://{}/healthz", app.addr)).body(big).send().await.unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn depth_alias_and_complexity_limits_refuse_abusive_queries() {
    let app = spawn_app().await;
    let aliases: String = (0..40).map(|i| format!("a{i}: viewer {{ user {{ id }} }} ")).collect();
    let body = app.gql(Some(&app.admin_token), &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("aliases"), "{body}");

    let nested =
        "{ viewer { account { users { nodes { account { users { nodes { account { users { nodes { account { users { nodes { id } } } } } } } } } } } } } }";
    let body = app.gql(Some(&app.admin_token), nested, json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().to_lowercase().contains("nested"), "{body}");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    let base = format!("http://{}", app.addr);
    assert_eq!(app.http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    let ready = app.http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    let bus = if crate::helpers::redis_url().is_some() { "connected" } else { "local" };
    assert_eq!(body, json!({"database": "ok", "bus": bus}));
    app.admin(VIEWER, json!({})).await;
    let metrics = app.http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("herald_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/graphql\""), "{metrics}");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = spawn_with(|c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(allowed.headers().get("access-control-allow-origin").unwrap(), "https://app.example.com");
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

/// graphql-js's `getIntrospectionQuery()`, as GraphiQL, graphql-codegen, Apollo and Postman
/// send it to fetch a schema.
const INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType } directives { name description locations args { ...InputValue } } } }
  fragment FullType on __Type { kind name description
    fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
    inputFields { ...InputValue } interfaces { ...TypeRef }
    enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
  fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
  fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } } }";

#[tokio::test]
async fn the_standard_introspection_query_passes_and_stays_bounded() {
    let app = spawn_app().await;
    for token in [Some(app.admin_token.as_str()), None] {
        let body = app.gql(token, INTROSPECTION, json!({})).await;
        assert!(body.get("errors").is_none(), "{}", body["errors"]);
        let types = body["data"]["__schema"]["types"].as_array().unwrap();
        assert!(types.iter().any(|t| t["name"] == "Notification"), "anonymous too, by default");
    }
    // Still bounded: an introspection query far deeper than any tool sends is refused, and
    // the depth limit of operations on data is unchanged (see the test above).
    let deep = format!("{{ __schema {{ types {{ {}name{} }} }} }}", "ofType { ".repeat(40), " }".repeat(40));
    let body = app.gql(Some(&app.admin_token), &deep, json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    // An introspection field does not smuggle a data field past the limits.
    let mixed = format!(
        "{{ __typename {} }}",
        "viewer { account { users { nodes { account { users { nodes { account { users { nodes { account { users { nodes { id } } } } } } } } } } } }"
    );
    assert_eq!(error_code(&app.gql(Some(&app.admin_token), &mixed, json!({})).await), Some("BAD_USER_INPUT"));

    // Production may keep it to signed-in callers.
    let guarded = spawn_with(|c| c.limits.introspection = api::config::Introspection::SignedIn).await;
    assert!(guarded.gql(Some(&guarded.admin_token), INTROSPECTION, json!({})).await.get("errors").is_none());
    let anonymous = guarded.gql(None, INTROSPECTION, json!({})).await;
    assert!(anonymous["data"].is_null() || anonymous.get("errors").is_some(), "{anonymous}");
    assert!(anonymous.get("errors").is_some(), "{anonymous}");
}
