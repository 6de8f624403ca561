//! How a connection to a mail server (SMTP or IMAP) is secured: stored on the activity
//! settings (their SMTP server) and on mailboxes (their IMAP server).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required); default port 587.
    #[sea_orm(string_value = "STARTTLS")]
    Starttls,
    /// TLS from the first byte ("SMTPS"); default port 465.
    #[sea_orm(string_value = "TLS")]
    Tls,
    /// No encryption; default port 25. Only for servers on a trusted network.
    #[sea_orm(string_value = "NONE")]
    None,
}
