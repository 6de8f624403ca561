//! Integrations with other CRMs (HubSpot, Salesforce, Zoho) and the reports about them
//! (seeds/000). [`recipients`]: who receives the integration reports of an account;
//! [`connections`]: the account's integrations, on or off, and their health; [`settings`]:
//! their settings tabs.
pub mod connections;
pub mod recipients;
pub mod settings;
