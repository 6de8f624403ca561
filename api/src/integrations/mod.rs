//! Integrations with other CRMs (HubSpot, Salesforce, Zoho) and the reports about them
//! (seeds/000). [`recipients`]: who receives the integration reports of an account.
pub mod recipients;
