//! Integrations with other CRMs (HubSpot, Salesforce, Zoho) and the reports about them
//! (seeds/000). [`recipients`]: who receives the integration reports of an account;
//! [`connections`]: the account's integrations, on or off, and their health; [`settings`]:
//! their settings tabs; [`reports`]: what integration services report, and the alerts by
//! email ([`emails`]) and panel that follow.
pub mod connections;
pub mod emails;
pub mod recipients;
pub mod reports;
pub mod settings;
