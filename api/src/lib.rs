//! Herald's API: the GraphQL backend of a multi-tenant CRM's notification and
//! communication settings. This library is also what the worker builds on.
//!
//! A tour, by layer. Nothing below the transport imports the `graphql` module or the
//! server (some service types derive async-graphql's traits, so that resolvers return them
//! as they are).
//!
//! 1. Transport: [`server`] (HTTP routes, GraphQL over HTTP, GraphiQL) and [`ws`] (GraphQL
//!    over WebSocket); [`server::Server`] binds first and runs later, so tests can bind port 0.
//!    [`graphql`]: the schemas (built once by the server over the services), thin resolvers
//!    grouped by area, connections and DataLoaders, and the one mapping of [`error::ApiError`]
//!    to GraphQL error codes. [`cli`]: the `api` binary's commands.
//! 2. Use cases: [`crm`], [`activities`], [`mailboxes`], [`integrations`] (and their
//!    reports), [`workflows`] (automatic communications), [`archive`], [`api_keys`],
//!    [`session`], [`platform`], [`notifications`] (publishing, the Control and Roll-up
//!    settings, the panel and its feed); every change runs in an [`audit::Change`]
//!    (transaction + audit row); [`owned`] finds and deletes an account's rows within the
//!    caller's account only.
//! 3. Engines the use cases and the worker share: the fan-out ([`notifications::fanout`]) and
//!    the switches it resolves ([`notifications::switches`]), announcing new rows to open
//!    panels ([`notifications::announce`]), the archive's linking rules, delivery planning
//!    ([`activities::plan`]), the [`outbox`], the integration report windows
//!    ([`integrations::reports::close_due_windows`]) and the workflow runs
//!    ([`workflows::send::run_due`]).
//! 4. Infrastructure: [`db`] (connections, migrations, the write lock, array statements),
//!    [`bus`] (pub/sub over Redis or in process), [`crypto`] and [`secrets`] (secrets at rest,
//!    key rotation), [`smtp`], [`imap`], [`oauth`] (mail providers' sign-in), [`auth`] (tokens, keys, roles), [`telemetry`].
//! 5. [`state::AppState`]: those services, built once per process by
//!    [`state::AppState::init`] (which also runs migrations); [`config`]: the typed
//!    configuration from `HERALD_*` variables; [`error`]: the one error type.
//!
//! Below all of it, the `entity` crate: the rows, and the typed states of their columns.

pub mod activities;
pub mod api_keys;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod bus;
pub mod cli;
pub mod config;
pub mod crm;
pub mod crypto;
pub mod db;
pub mod error;
mod graphiql;
pub mod graphql;
pub mod imap;
pub mod integrations;
pub mod mailboxes;
pub mod net;
pub mod notifications;
pub mod oauth;
pub mod outbox;
pub mod owned;
pub mod platform;
pub mod secrets;
pub mod server;
pub mod session;
pub mod smtp;
pub mod state;
pub mod telemetry;
pub mod validate;
pub mod workflows;
pub mod ws;

use std::future::Future;

pub use config::Config;
pub use server::Server;
pub use state::{AppState, StartError};

/// Runs the API until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let server = Server::build(config).await?;
    tracing::info!(address = %server.local_addr(), "Herald API listening");
    server.run(shutdown).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
