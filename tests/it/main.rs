//! Herald's integration tests: one binary (each test binary links all of Herald, so one per
//! file would link it once per file), a module per area. Every test starts the real server
//! on a random port.

mod auth;
mod crm;
mod delivery;
mod embedded;
mod graphiql;
mod helpers;
mod http;
mod mailboxes;
mod migrations;
mod notifications;
mod outages;
mod schema;
mod tenancy;
mod ws;
