//! Herald's API: the GraphQL backend of a multi-tenant CRM's notification and
//! communication settings. This library is also what the worker builds on.
//!
//! A tour:
//! - [`config`]: the typed configuration every process reads from `HERALD_*` variables.
//! - [`state`]: what a request needs (database, bus, token issuer, keyring, schema), built
//!   once by [`state::AppState::init`], which also runs migrations.
//! - [`server`]: HTTP routes and the GraphQL-over-HTTP rules; [`ws`]: GraphQL over
//!   WebSocket. [`server::Server`] binds first and runs later, so tests can bind port 0.
//! - [`graphql`]: the schema, resolvers grouped by area, connections and DataLoaders.
//! - [`notifications`]: the notification types (settings and fan-out build on them).
//! - [`crm`], [`api_keys`], [`session`], [`audit`]: the services resolvers call; all SQL
//!   lives there, and every change runs in an [`audit::Change`] (transaction + audit row).
//! - [`auth`]: tokens, API keys, roles; [`error`]: the one error type and its GraphQL codes.
//! - [`crypto`] and [`secrets`]: secrets at rest and key rotation; [`bus`]: pub/sub over Redis or in process.

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
pub mod mailboxes;
pub mod net;
pub mod notifications;
pub mod outbox;
pub mod platform;
pub mod secrets;
pub mod server;
pub mod session;
pub mod smtp;
pub mod state;
pub mod telemetry;
pub mod validate;
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
