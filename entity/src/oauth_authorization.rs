//! An OAuth2 sign-in under way: started by a user for a mailbox, waiting for the provider to
//! call Herald back with a code. The `state` sent to the provider is kept only as its SHA-256,
//! and the PKCE verifier sealed; a row is used at most once and expires within minutes.
use sea_orm::entity::prelude::*;

pub use crate::mailbox::Provider;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_authorization")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub mailbox_id: Uuid,
    /// Who started the sign-in (the owner, or an admin setting the mailbox up).
    pub user_id: Uuid,
    pub provider: Provider,
    /// Hex SHA-256 of the `state` parameter.
    pub state_hash: String,
    /// Sealed envelope (`api::crypto`) of the PKCE code verifier.
    pub pkce_verifier: String,
    /// Where the browser goes once the callback is done (on the configured allow-list).
    pub return_url: String,
    /// Store the grant without first testing the IMAP sign-in with it.
    pub skip_test: bool,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set by the callback that took it: a second callback with the same state is refused.
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
