//! The GraphQL schema: types, resolvers grouped by area and merged, and the per-request
//! context.
//!
//! The schema is built without I/O ([`build_schema`]); each request carries its own data:
//! the [`AppState`], the caller (or none) and a fresh set of DataLoaders. Resolvers are thin:
//! they take the caller, call a service function, and map its result to a GraphQL type.

mod access;
mod accounts;
mod activities;
mod archive;
mod audit;
pub mod connection;
mod contacts;
mod guard;
mod integrations;
pub mod loaders;
mod mailboxes;
mod notifications;
mod panel;
mod platform;
mod projects;
mod users;
mod workflows;

use async_graphql::{Context, MergedObject, MergedSubscription, SDLExportOptions, Schema, ID};
use uuid::Uuid;

use crate::{
    auth::Caller,
    config::QueryLimits,
    error::{ApiError, ApiResult},
    state::AppState,
};

pub use accounts::Account;
pub use users::User;

#[derive(MergedObject, Default)]
pub struct Query(
    accounts::AccountQuery,
    users::UserQuery,
    contacts::ContactQuery,
    projects::ProjectQuery,
    access::AccessQuery,
    audit::AuditQuery,
    activities::ActivityQuery,
    mailboxes::MailboxQuery,
    archive::ArchiveQuery,
    integrations::IntegrationQuery,
    workflows::WorkflowQuery,
    notifications::NotificationQuery,
    notifications::NotificationControlQuery,
    notifications::NotificationRollUpQuery,
    panel::PanelQuery,
    platform::PlatformQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::AccountMutation,
    users::UserMutation,
    contacts::ContactMutation,
    projects::ProjectMutation,
    access::AccessMutation,
    activities::ActivityMutation,
    mailboxes::MailboxMutation,
    archive::ArchiveMutation,
    integrations::IntegrationMutation,
    workflows::WorkflowMutation,
    notifications::NotificationControlMutation,
    notifications::NotificationRollUpMutation,
    panel::PanelMutation,
    panel::PanelStateMutation,
    platform::PlatformMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(audit::AuditSubscription, panel::PanelSubscription);

pub type HeraldSchema = Schema<Query, Mutation, Subscription>;

/// The schema with the usual limits, without services: enough for its SDL and validation.
pub fn build_schema(limits: &QueryLimits) -> HeraldSchema {
    builder(limits).finish()
}

fn builder(limits: &QueryLimits) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_directives(limits.max_directives)
        .limit_recursive_depth(limits.max_depth * 4)
}

/// How deep an introspection query may go. graphql-js's standard introspection query
/// (`getIntrospectionQuery`) nests `ofType` nine levels below a field's arguments, deeper than
/// any operation on data needs; introspection runs on a schema of its own with this bound.
const INTROSPECTION_MAX_DEPTH: usize = 24;

fn introspection_builder(limits: &QueryLimits) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .limit_depth(INTROSPECTION_MAX_DEPTH)
        .limit_complexity(limits.max_complexity)
        .limit_directives(limits.max_directives)
        .limit_recursive_depth(INTROSPECTION_MAX_DEPTH * 4)
        .introspection_only()
}

/// The schemas a server runs operations on, built once when it starts, with the services as
/// their data: the GraphQL layer depends on the services, never the reverse. Introspection
/// runs on a schema of its own: the same types, nothing but introspection, and a depth bound
/// that fits the standard introspection query.
#[derive(Clone)]
pub struct Schemas {
    app: AppState,
    data: HeraldSchema,
    introspection: HeraldSchema,
}

impl Schemas {
    pub fn new(app: &AppState) -> Self {
        let limits = &app.config.limits;
        Self { app: app.clone(), data: builder(limits).data(app.clone()).finish(), introspection: introspection_builder(limits).data(app.clone()).finish() }
    }

    /// The services the schemas run over.
    pub fn app(&self) -> &AppState {
        &self.app
    }

    /// The schema `request` runs on: introspection on its own schema when the caller may
    /// introspect; anything else on the schema with the usual limits, where introspection
    /// is refused to those who may not.
    fn for_request(&self, request: &mut async_graphql::Request, signed_in: bool) -> &HeraldSchema {
        use crate::config::Introspection;
        let allowed = match self.app.config.limits.introspection {
            Introspection::Anyone => true,
            Introspection::SignedIn => signed_in,
            Introspection::Off => false,
        };
        if !allowed {
            *request = std::mem::replace(request, async_graphql::Request::new("")).disable_introspection();
            return &self.data;
        }
        if guard::is_introspection(request) {
            &self.introspection
        } else {
            &self.data
        }
    }
}

/// The SDL the server serves, sorted so that diffs of `schema.graphql` stay readable.
pub fn sdl() -> String {
    build_schema(&QueryLimits::default()).sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_arguments().sorted_enum_items())
}

/// The caller of the request, or none when no credentials were presented.
#[derive(Clone, Debug)]
pub struct Session(pub Option<Caller>);

pub(crate) fn app<'a>(ctx: &Context<'a>) -> ApiResult<&'a AppState> {
    ctx.data::<AppState>().map_err(|_| ApiError::Internal(anyhow::anyhow!("AppState missing from request data")))
}

pub(crate) fn caller<'a>(ctx: &Context<'a>) -> ApiResult<&'a Caller> {
    match ctx.data::<Session>() {
        Ok(Session(Some(caller))) => Ok(caller),
        _ => Err(ApiError::Unauthenticated),
    }
}

pub(crate) fn loaders(ctx: &Context<'_>) -> ApiResult<std::sync::Arc<loaders::Loaders>> {
    let missing = |what: &str| ApiError::Internal(anyhow::anyhow!("{what} missing from request data"));
    let loaders = ctx.data::<std::sync::Arc<loaders::OperationLoaders>>().map_err(|_| missing("DataLoaders"))?;
    let app = ctx.data::<AppState>().map_err(|_| missing("application state"))?;
    Ok(loaders.get(&app.db))
}

/// Parses a GraphQL `ID` argument; `field` names it in the error.
pub(crate) fn parse_id(id: &ID, field: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| ApiError::bad_input(field, format!("{:?} is not an id", id.as_str())))
}

pub(crate) fn parse_ids(ids: &[ID], field: &str) -> ApiResult<Vec<Uuid>> {
    ids.iter().map(|id| parse_id(id, field)).collect()
}

/// Adds what each request needs to a GraphQL request (the services are the schema's data).
fn prepare(request: async_graphql::Request, caller: Option<Caller>, loaders: std::sync::Arc<loaders::OperationLoaders>) -> async_graphql::Request {
    request.data(Session(caller)).data(loaders)
}

/// Runs one operation for an operator (see [`crate::platform`]): no caller, so only the
/// platform's fields accept it.
pub async fn execute_as_operator(schemas: &Schemas, request: async_graphql::Request, operator: crate::platform::Operator) -> async_graphql::Response {
    let request = request.data(platform::OperatorSession(Some(operator)));
    execute(schemas, request, None, None).await
}

/// Runs one operation for `caller`. `signed_in` is the caller's user and account rows when
/// the transport just read them (authentication does): they prime the loaders.
pub async fn execute(
    schemas: &Schemas,
    mut request: async_graphql::Request,
    caller: Option<Caller>,
    signed_in: Option<(entity::user::Model, entity::account::Model)>,
) -> async_graphql::Response {
    let app = &schemas.app;
    if let Err(error) = guard::check_aliases(&mut request, app.config.limits.max_aliases) {
        return guard::with_codes(async_graphql::Response::from_errors(vec![error]));
    }
    let loaders = match signed_in {
        Some((user, account)) => {
            let loaders = loaders::loaders(app.db.clone());
            loaders.feed_one(loaders::UserId(user.id), user).await;
            loaders.feed_one(loaders::AccountId(account.id), account).await;
            loaders::OperationLoaders::with(loaders)
        }
        None => loaders::OperationLoaders::default(),
    };
    let schema = schemas.for_request(&mut request, caller.is_some());
    guard::with_codes(schema.execute(prepare(request, caller, std::sync::Arc::new(loaders))).await)
}

/// Runs one operation as a stream of results (subscriptions, and any operation over
/// WebSocket).
pub fn execute_stream(
    schemas: &Schemas,
    mut request: async_graphql::Request,
    caller: Option<Caller>,
) -> futures_util::stream::BoxStream<'static, async_graphql::Response> {
    use futures_util::StreamExt;
    if let Err(error) = guard::check_aliases(&mut request, schemas.app.config.limits.max_aliases) {
        let response = guard::with_codes(async_graphql::Response::from_errors(vec![error]));
        return futures_util::stream::once(async move { response }).boxed();
    }
    // A subscription lives for hours: its loaders forget what they loaded after each result,
    // so that every item shows current names and the cache does not grow with the stream.
    let loaders = std::sync::Arc::new(loaders::OperationLoaders::default());
    let schema = schemas.for_request(&mut request, caller.is_some());
    let request = prepare(request, caller, loaders.clone());
    schema
        .execute_stream(request)
        .map(move |response| {
            loaders.forget();
            guard::with_codes(response)
        })
        .boxed()
}
