//! A local OAuth2 identity provider for Herald's tests (included by path): a small axum app on
//! loopback standing in for Microsoft's and Google's, which cannot be reached here. Herald's
//! `oauth2` client, Dovecot's `oauth2` passdb and the test SMTP server all talk to it over
//! real HTTP.
//!
//! - `GET /authorize`: signs in the `login_hint` (or `as`, to sign in as someone else) at once,
//!   no page, and sends the browser to the redirect URI with a code and the state.
//! - `POST /token`: `authorization_code` (client secret, redirect URI and PKCE S256 checked;
//!   a code is used once and lives [`TestIdp::set_code_lifetime`]) and `refresh_token`.
//! - `POST /introspect` (RFC 7662): what Dovecot and the SMTP server ask about a bearer token.
//! - `POST /revoke` (RFC 7009): revokes the grant a token belongs to.
//!
//! The test drives what a real provider does on its own: tokens expiring, a user revoking
//! Herald's access.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Form, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::Engine;
use serde_json::json;
use sha2::Digest;

pub const CLIENT_ID: &str = "herald-test-client";
pub const CLIENT_SECRET: &str = "herald-test-secret";

struct Code {
    user: String,
    redirect_uri: String,
    challenge: String,
    issued: Instant,
    used: bool,
}

struct Grant {
    user: String,
    revoked: bool,
}

struct Access {
    grant: String,
    expires: Instant,
}

#[derive(Default)]
struct Idp {
    codes: HashMap<String, Code>,
    /// By refresh token.
    grants: HashMap<String, Grant>,
    access: HashMap<String, Access>,
    refreshes: usize,
    code_lifetime: Option<Duration>,
    access_lifetime: Option<Duration>,
}

type Shared = Arc<Mutex<Idp>>;

pub struct TestIdp {
    pub port: u16,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl TestIdp {
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/introspect", post(introspect).get(introspect_get))
            .route("/revoke", post(revoke))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the identity provider");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { port, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Herald's registration with this provider, as `HERALD_OAUTH_MICROSOFT_*` would give it.
    pub fn registration(&self) -> api::config::OAuthProvider {
        api::config::OAuthProvider {
            client_id: CLIENT_ID.into(),
            client_secret: Some(api::config::SecretString::new(CLIENT_SECRET)),
            authorize_url: self.url("/authorize"),
            token_url: self.url("/token"),
            revocation_url: Some(self.url("/revoke")),
            scopes: vec!["https://outlook.office.com/IMAP.AccessAsUser.All".into(), "offline_access".into()],
        }
    }

    /// Codes older than this are refused (default: ten minutes).
    pub fn set_code_lifetime(&self, lifetime: Duration) {
        self.lock().code_lifetime = Some(lifetime);
    }

    /// Every access token issued so far stops being valid, as time passing would do.
    pub fn expire_access_tokens(&self) {
        let past = Instant::now() - Duration::from_secs(1);
        for a in self.lock().access.values_mut() {
            a.expires = past;
        }
    }

    /// The user takes Herald's access away: every grant of theirs, and its tokens, stop working.
    pub fn revoke_user(&self, user: &str) {
        for g in self.lock().grants.values_mut().filter(|g| g.user == user) {
            g.revoked = true;
        }
    }

    /// Refresh-token grants answered so far.
    pub fn refreshes(&self) -> usize {
        self.lock().refreshes
    }

    /// Every token and code this provider ever issued (to look for them where they must not be).
    pub fn issued_secrets(&self) -> Vec<String> {
        let idp = self.lock();
        idp.codes.keys().chain(idp.grants.keys()).chain(idp.access.keys()).cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idp> {
        self.state.lock().unwrap()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

fn secret(prefix: &str) -> String {
    format!("{prefix}-{}{}", uuid::Uuid::now_v7().simple(), uuid::Uuid::now_v7().simple())
}

fn oauth_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code, "error_description": format!("test provider: {code}")}))).into_response()
}

async fn authorize(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (Some(redirect_uri), Some(state_param)) = (q.get("redirect_uri"), q.get("state")) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri and state are required").into_response();
    };
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("response_type").map(String::as_str) != Some("code")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "unknown client, or no PKCE S256 challenge").into_response();
    }
    let user = q.get("as").or(q.get("login_hint")).cloned().unwrap_or_default();
    let code = secret("code");
    state.lock().unwrap().codes.insert(
        code.clone(),
        Code { user, redirect_uri: redirect_uri.clone(), challenge: q.get("code_challenge").cloned().unwrap_or_default(), issued: Instant::now(), used: false },
    );
    let mut location = reqwest::Url::parse(redirect_uri).expect("a redirect URL");
    location.query_pairs_mut().append_pair("code", &code).append_pair("state", state_param);
    (StatusCode::FOUND, [(header::LOCATION, location.to_string())]).into_response()
}

/// Client authentication: HTTP Basic (the `oauth2` crate's default) or the form's fields.
fn client_ok(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (id, secret) = match basic {
        Some(pair) => {
            let (id, secret) = pair.split_once(':').unwrap_or((&pair, ""));
            (id.to_string(), secret.to_string())
        }
        None => (form.get("client_id").cloned().unwrap_or_default(), form.get("client_secret").cloned().unwrap_or_default()),
    };
    id == CLIENT_ID && secret == CLIENT_SECRET
}

async fn token(State(state): State<Shared>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    if !client_ok(&headers, &form) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let mut idp = state.lock().unwrap();
    let refresh_token = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code_lifetime = idp.code_lifetime.unwrap_or(Duration::from_secs(600));
            let Some(code) = form.get("code").and_then(|c| idp.codes.get_mut(c)) else { return oauth_error("invalid_grant") };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
            if code.used || code.issued.elapsed() > code_lifetime || Some(&code.redirect_uri) != form.get("redirect_uri") || challenge != code.challenge {
                return oauth_error("invalid_grant");
            }
            code.used = true;
            let user = code.user.clone();
            let refresh = secret("rt");
            idp.grants.insert(refresh.clone(), Grant { user, revoked: false });
            refresh
        }
        Some("refresh_token") => {
            let Some(refresh) = form.get("refresh_token").filter(|r| idp.grants.get(*r).is_some_and(|g| !g.revoked)).cloned() else {
                return oauth_error("invalid_grant");
            };
            idp.refreshes += 1;
            refresh
        }
        _ => return oauth_error("unsupported_grant_type"),
    };
    let lifetime = idp.access_lifetime.unwrap_or(Duration::from_secs(3600));
    let access = secret("at");
    idp.access.insert(access.clone(), Access { grant: refresh_token.clone(), expires: Instant::now() + lifetime });
    let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": lifetime.as_secs(), "scope": "imap smtp"});
    if form.get("grant_type").map(String::as_str) == Some("authorization_code") {
        body["refresh_token"] = json!(refresh_token);
    }
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn inspect(state: &Shared, token: &str) -> serde_json::Value {
    let idp = state.lock().unwrap();
    let found = idp.access.get(token).filter(|a| a.expires > Instant::now()).and_then(|a| idp.grants.get(&a.grant)).filter(|g| !g.revoked);
    match found {
        Some(grant) => json!({"active": true, "username": grant.user, "client_id": CLIENT_ID, "token_type": "Bearer", "scope": "imap smtp"}),
        None => json!({"active": false}),
    }
}

async fn introspect(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Json<serde_json::Value> {
    Json(inspect(&state, form.get("token").map(String::as_str).unwrap_or_default()))
}

/// Dovecot's `introspection_mode = auth`: the token as a bearer header.
async fn introspect_get(State(state): State<Shared>, headers: HeaderMap) -> Json<serde_json::Value> {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
    Json(inspect(&state, token))
}

async fn revoke(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> StatusCode {
    let mut idp = state.lock().unwrap();
    let token = form.get("token").cloned().unwrap_or_default();
    let grant = if idp.grants.contains_key(&token) { Some(token) } else { idp.access.get(&token).map(|a| a.grant.clone()) };
    if let Some(g) = grant.and_then(|g| idp.grants.get_mut(&g)) {
        g.revoked = true;
    }
    StatusCode::OK
}
