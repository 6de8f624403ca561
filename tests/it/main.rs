//! Herald's integration tests: one binary (linking one per file costs minutes on two cores),
//! a module per area. Every test starts the real server on a random port.

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
