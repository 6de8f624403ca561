//! The HTTP server: routes, GraphQL over HTTP, health, readiness and metrics.
//!
//! GraphQL over HTTP follows the GraphQL-over-HTTP specification, hardened on top of what
//! async-graphql offers, because a settings API reached from browsers must not run a change
//! on a cross-site "simple request":
//! - `GET /graphql` runs queries only; a mutation gets 405 with `Allow: POST`.
//! - `POST /graphql` needs `Content-Type: application/json` (else 415); a JSON array
//!   (batch) is refused with 400.
//! - `Accept` picks `application/graphql-response+json` or `application/json` (406 for
//!   neither). With the former a response without `data` (a request error) is a 400; with
//!   the latter it is a 200, as the specification says. No `Accept` means
//!   `application/json`.
//! - Bad or expired credentials get 401 before anything runs; no credentials run the
//!   operation anonymously, where every field answers UNAUTHENTICATED.
//! - Every route has a body limit; oversized bodies get 413 with a GraphQL error body.

use std::{future::Future, net::SocketAddr, sync::OnceLock, time::Instant};

use async_graphql::parser::types::OperationType;
use axum::{
    body::Bytes,
    extract::{rejection::QueryRejection, MatchedPath, Query, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
};

use crate::{
    auth,
    config::Config,
    error::ApiError,
    graphql,
    state::{AppState, StartError},
    ws,
};

pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// A bound, not yet running, server: tests read its port before running it.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let state = AppState::init(config).await?;
        Self::bind(state).await
    }

    pub async fn bind(state: AppState) -> Result<Self, StartError> {
        // The panels this server holds read the new rows other processes announce.
        state.bus.expand(crate::notifications::announce::EVENT_ROWS, std::sync::Arc::new(crate::notifications::announce::EventRowsExpander));
        let addr = state.config.bind;
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let app = router(self.state);
        axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await
    }
}

/// What the routes share: the services, and the schemas built over them once.
#[derive(Clone)]
struct Api {
    app: AppState,
    schemas: graphql::Schemas,
}

impl axum::extract::FromRef<Api> for AppState {
    fn from_ref(api: &Api) -> Self {
        api.app.clone()
    }
}

impl axum::extract::FromRef<Api> for graphql::Schemas {
    fn from_ref(api: &Api) -> Self {
        api.schemas.clone()
    }
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let cors = cors_layer(&state.config);
    let state = Api { schemas: graphql::Schemas::new(&state), app: state };
    let mut router = Router::new()
        .route(
            "/graphql",
            get(|state, headers, params| detached(graphql_get(state, headers, params)))
                .post(|state, headers, body| detached(graphql_post(state, headers, body))),
        )
        .route("/graphql/ws", get(ws::upgrade))
        .route("/graphiql/{file}", get(crate::graphiql::asset))
        .route("/oauth/callback", get(|state, query| detached(oauth_callback(state, query))))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn(track_metrics))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(middleware::from_fn(move |req, next| oversized_as_graphql_error(req, next, max_body)));
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router
}

fn cors_layer(config: &Config) -> Option<CorsLayer> {
    if config.cors_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The media type a GraphQL response is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaType {
    GraphqlResponseJson,
    Json,
}

impl MediaType {
    fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// Picks the response media type from `Accept` (highest q first; q=0 excludes).
#[allow(clippy::result_large_err)] // the error is the response itself, built once per request
fn negotiate(headers: &HeaderMap) -> Result<MediaType, Response> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).filter(|v| !v.trim().is_empty()) else {
        return Ok(MediaType::Json);
    };
    let mut ranges: Vec<(f32, &str)> = accept
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next()?;
            let q = parts.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
            Some((q, media))
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    ranges.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    for (_, media) in ranges {
        match media.to_ascii_lowercase().as_str() {
            GRAPHQL_RESPONSE_JSON => return Ok(MediaType::GraphqlResponseJson),
            // A wildcard is a client that did not say: application/json, as without Accept
            // (GraphQL over HTTP, "SHOULD" for both).
            "application/json" | "application/*" | "*/*" => return Ok(MediaType::Json),
            _ => {}
        }
    }
    Err(error_response(
        StatusCode::NOT_ACCEPTABLE,
        MediaType::Json,
        "BAD_USER_INPUT",
        "Accept must allow application/graphql-response+json or application/json",
    ))
}

fn error_response(status: StatusCode, media: MediaType, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, [(header::CONTENT_TYPE, media.content_type())], body.to_string()).into_response()
}

fn unauthenticated(media: MediaType) -> Response {
    let mut response = error_response(StatusCode::UNAUTHORIZED, media, "UNAUTHENTICATED", "invalid or expired credentials");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// How long a client should wait before retrying an UNAVAILABLE answer.
const RETRY_AFTER_SECS: &str = "1";

/// The database could not be reached: 503 with `Retry-After`, code UNAVAILABLE.
fn unavailable(media: MediaType) -> Response {
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, media, "UNAVAILABLE", "the service is temporarily unavailable: retry in a moment");
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    response
}

/// Who a request is from: a user or API key of an account (or nobody), or a platform
/// operator, whose key is no account's caller (see [`crate::platform`]).
#[allow(clippy::large_enum_variant)] // one per request, consumed at once
enum Credentials {
    Account(Option<auth::Authenticated>),
    Operator(crate::platform::Operator),
}

async fn caller_of(app: &AppState, headers: &HeaderMap, media: MediaType) -> Result<Credentials, Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let bearer = authorization.map(str::trim).map(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v).trim());
    let found = match bearer {
        Some(token) if token.starts_with(crate::platform::OPERATOR_KEY_PREFIX) => {
            crate::platform::authenticate(&app.db, token).await.and_then(|operator| operator.map(Credentials::Operator).ok_or(ApiError::Unauthenticated))
        }
        _ => auth::authenticate_with_user(&app.db, &app.tokens, authorization).await.map(Credentials::Account),
    };
    match found {
        Ok(credentials) => Ok(credentials),
        Err(ApiError::Unauthenticated) => Err(unauthenticated(media)),
        Err(ApiError::Unavailable(cause)) => {
            tracing::warn!(error = format!("{cause:#}"), "database unavailable while authenticating");
            Err(unavailable(media))
        }
        Err(other) => {
            tracing::error!(error = format!("{:#}", anyhow::Error::from(other)), "authentication failed unexpectedly");
            Err(error_response(StatusCode::INTERNAL_SERVER_ERROR, media, "INTERNAL", "internal error"))
        }
    }
}

async fn execute(schemas: &graphql::Schemas, request: async_graphql::Request, credentials: Credentials, media: MediaType) -> Response {
    let response = match credentials {
        Credentials::Operator(operator) => graphql::execute_as_operator(schemas, request, operator).await,
        Credentials::Account(Some(auth::Authenticated { caller, user })) => graphql::execute(schemas, request, Some(caller), user).await,
        Credentials::Account(None) => graphql::execute(schemas, request, None, None).await,
    };
    // A request error (parse, validation, variables) has no `data` at all; field errors
    // carry a path.
    let request_error = response.data == async_graphql::Value::Null && !response.errors.is_empty() && response.errors.iter().all(|e| e.path.is_empty());
    // No data because the database is unreachable: 503 and when to retry (application/json
    // keeps 200 for every well-formed request, as its clients expect).
    let unavailable = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.extensions.as_ref().and_then(|x| x.get("code")) == Some(&async_graphql::Value::from("UNAVAILABLE")));
    let status = match media {
        MediaType::GraphqlResponseJson if unavailable => StatusCode::SERVICE_UNAVAILABLE,
        MediaType::GraphqlResponseJson if request_error => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let body = if request_error {
        // Request errors carry no `data` entry at all.
        serde_json::to_vec(&json!({"errors": response.errors}))
    } else {
        serde_json::to_vec(&response)
    };
    match body {
        Ok(body) if status == StatusCode::SERVICE_UNAVAILABLE => {
            (status, [(header::CONTENT_TYPE, media.content_type()), (header::RETRY_AFTER, RETRY_AFTER_SECS)], body).into_response()
        }
        Ok(body) => (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "response not serializable");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, media, "INTERNAL", "internal error")
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Runs a request's handler to its end even when the client goes away. Dropping it half-way
/// would cancel a database statement in flight, and a connection left mid-statement cannot go
/// back to the pool: it is closed, and the pool opens another. Detached, a request a client
/// gave up on still commits or rolls back, and returns its connection.
async fn detached(handler: impl std::future::Future<Output = Response> + Send + 'static) -> Response {
    match tokio::spawn(handler).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, MediaType::Json, "INTERNAL", "internal error")
        }
    }
}

async fn graphql_post(State(schemas): State<graphql::Schemas>, headers: HeaderMap, body: Bytes) -> Response {
    let media = match negotiate(&headers) {
        Ok(media) => media,
        Err(response) => return response,
    };
    if !is_json(&headers) {
        return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, media, "BAD_USER_INPUT", "Content-Type must be application/json");
    }
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", &format!("malformed JSON body: {e}")),
    };
    if value.is_array() {
        return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", "batched requests are not supported; send one operation per request");
    }
    if !value.get("query").is_some_and(serde_json::Value::is_string) {
        return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", "not a GraphQL request: `query` must be a string");
    }
    let request: async_graphql::Request = match serde_json::from_value(value) {
        Ok(request) => request,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", &format!("not a GraphQL request: {e}")),
    };
    let caller = match caller_of(schemas.app(), &headers, media).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    execute(&schemas, request, caller, media).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

async fn graphql_get(State(schemas): State<graphql::Schemas>, headers: HeaderMap, params: Result<Query<GetParams>, QueryRejection>) -> Response {
    let params = params.ok().map(|Query(p)| p);
    let Some(query) = params.as_ref().and_then(|p| p.query.clone()) else {
        if wants_html(&headers) {
            return crate::graphiql::page();
        }
        let media = negotiate(&headers).unwrap_or(MediaType::Json);
        return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", "query parameter missing");
    };
    let params = params.expect("query came from params");
    let media = match negotiate(&headers) {
        Ok(media) => media,
        Err(response) => return response,
    };
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name.clone() {
        request = request.operation_name(name);
    }
    for (field, raw) in [("variables", &params.variables), ("extensions", &params.extensions)] {
        if let Some(raw) = raw {
            let parsed: serde_json::Value = match serde_json::from_str(raw) {
                Ok(v) => v,
                Err(e) => return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", &format!("{field} is not JSON: {e}")),
            };
            if field == "variables" {
                request = request.variables(async_graphql::Variables::from_json(parsed));
            } else if let Ok(ext) = serde_json::from_value(parsed) {
                request.extensions = ext;
            }
        }
    }
    if operation_type(&mut request, params.operation_name.as_deref()).is_some_and(|t| t != OperationType::Query) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            media,
            "BAD_USER_INPUT",
            "only queries may be sent with GET; send mutations and subscriptions with POST",
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let caller = match caller_of(schemas.app(), &headers, media).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    execute(&schemas, request, caller, media).await
}

/// The type of the operation a document would run; `None` when it does not parse or the
/// operation is ambiguous (execution then reports the error). The parsed document stays in
/// the request for execution.
fn operation_type(request: &mut async_graphql::Request, operation_name: Option<&str>) -> Option<OperationType> {
    let document = request.parsed_query().ok()?;
    let mut operations = document.operations.iter();
    match operation_name {
        Some(name) => operations.find(|(n, _)| n.map(|n| n.as_str()) == Some(name)).map(|(_, op)| op.node.ty),
        None => {
            let (_, first) = operations.next()?;
            // Several operations and no name: refuse at execution, but never run a mutation.
            if operations.any(|(_, op)| op.node.ty != OperationType::Query) {
                return Some(OperationType::Mutation);
            }
            Some(first.node.ty)
        }
    }
}

/// Ready when the database answers within [`READY_TIMEOUT`]. The bus's state is reported but
/// does not make a process unready: it is best effort, and Redis being down affects every
/// replica alike, so taking them all out of the load balancer would only add an outage.
/// Where a mail provider sends the browser back after its sign-in
/// ([`crate::mailboxes::connect`]): on to the flow's return URL (303), or an error page when
/// the link names no flow that may finish (400). Never cached: the query holds a code.
async fn oauth_callback(State(app): State<AppState>, query: axum::extract::Query<crate::mailboxes::connect::Callback>) -> Response {
    let finished = crate::mailboxes::connect::finish(&app, query.0).await;
    let no_store = (header::CACHE_CONTROL, "no-store");
    match (finished.redirect(), &finished.outcome) {
        (Some(location), _) => (StatusCode::SEE_OTHER, [(header::LOCATION, location.as_str()), no_store]).into_response(),
        (None, Err(e)) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), no_store],
            format!("Herald could not connect the mailbox: {e} ({}).\n", e.code()),
        )
            .into_response(),
        (None, Ok(_)) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), no_store], "The mailbox is connected.\n").into_response(),
    }
}

async fn readyz(State(app): State<AppState>) -> Response {
    let database = match tokio::time::timeout(READY_TIMEOUT, app.db.execute_unprepared("SELECT 1")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", READY_TIMEOUT.as_millis())),
    };
    let status = if database.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "database": database.err().unwrap_or_else(|| "ok".into()),
        "bus": app.bus.state().as_str(),
    });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// The process-wide Prometheus recorder (installed once, even with many servers in a test).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed by an embedding program: keep ours local.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

async fn metrics() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics_handle().render()).into_response()
}

async fn track_metrics(request: Request, next: Next) -> Response {
    metrics_handle();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [("route", route), ("method", method), ("status", response.status().as_u16().to_string())];
    metrics::counter!("herald_http_requests_total", &labels).increment(1);
    metrics::histogram!("herald_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The body limit's plain-text 413 becomes a GraphQL error a client can read.
async fn oversized_as_graphql_error(request: Request, next: Next, limit: usize) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let media = MediaType::Json;
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, media, "BAD_USER_INPUT", &format!("request body exceeds {limit} bytes"));
    }
    response
}
