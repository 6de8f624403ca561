//! Herald's integration tests: one binary (each test binary links all of Herald, so one per
//! file would link it once per file), a module per area. Every test starts the real server
//! on a random port.
// Test and benchmark code: a step that fails is a failed run, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

mod auth;
mod crm;
mod delivery;
mod embedded;
mod graphiql;
mod helpers;
mod http;
mod integrations;
mod mail_accounts;
mod mailboxes;
mod migrations;
mod notifications;
mod outages;
mod schema;
mod tenancy;
mod workflows;
mod ws;
