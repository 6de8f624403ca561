//! Optional products an account can have enabled: a leaf that the notification catalogue and
//! the fan-out read without reaching the accounts' use cases.

use entity::account;
use serde::{Deserialize, Serialize};

/// Optional products an account can have enabled.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AddOn {
    /// Users of a parent account see notifications of chosen sub-accounts.
    NotificationRollUp,
    /// IMAP mailbox synchronisation.
    EmailSync,
    /// Text messages (SMS) to assigned users.
    TextMessaging,
}

pub fn add_ons(model: &account::Model) -> Vec<AddOn> {
    serde_json::from_value(model.add_ons.clone()).unwrap_or_default()
}
