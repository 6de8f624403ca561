//! Who is calling: user tokens (JWT HS256), partners' API keys, and "log in as".
//!
//! A token only names a user; role, account and activity are read from the database on every
//! request, so that demoting or deactivating a user takes effect at once. An impersonation
//! token names the target user in `sub` and the admin in the RFC 8693 `act` claim; it is
//! re-checked the same way (the admin must still be an active company admin over the target's
//! account). A platform operator logged in to a tenant is an `act` too, naming its key: the
//! token dies with the key's revocation.

use std::time::Duration;

use chrono::Utc;
use entity::{account, api_key, user, user::Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Scopes an API key can hold.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiKeyScope {
    /// Read accounts, users, contacts, projects and settings.
    Read,
    /// Create, change and delete them (company-admin rights over the key's account).
    Write,
    /// Publish CRM events for fan-out.
    PublishEvents,
}

/// The authenticated caller of one request or WebSocket connection.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The account everything is scoped to.
    pub account_id: Uuid,
    pub principal: Principal,
    /// When the credentials stop being valid (unix seconds): a user token's `exp`. A
    /// WebSocket authenticated with it is closed then.
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug)]
pub enum Principal {
    User {
        /// The user the request acts as (the impersonated user when logged in as).
        user_id: Uuid,
        role: Role,
        /// Who really acts, when logged in as `user_id`.
        impersonator: Option<Impersonator>,
    },
    ApiKey {
        key_id: Uuid,
        scopes: Vec<ApiKeyScope>,
    },
}

/// Who really acts behind a "log in as".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impersonator {
    /// A company admin of the user's account or of a parent account (their user id).
    Admin(Uuid),
    /// The platform operator, by the id of the operator key it logged in with.
    Operator(Uuid),
}

impl Caller {
    /// True while someone is logged in as the user (an admin or the operator).
    pub fn is_impersonated(&self) -> bool {
        matches!(self.principal, Principal::User { impersonator: Some(_), .. })
    }

    /// The user acted as, if the caller is a user.
    pub fn user_id(&self) -> Option<Uuid> {
        match &self.principal {
            Principal::User { user_id, .. } => Some(*user_id),
            Principal::ApiKey { .. } => None,
        }
    }

    pub fn is_company_admin(&self) -> bool {
        matches!(self.principal, Principal::User { role: Role::CompanyAdmin, .. })
    }

    /// Read access to the account's directory (any user; keys with READ or WRITE).
    pub fn require_read(&self) -> ApiResult<()> {
        match &self.principal {
            Principal::User { .. } => Ok(()),
            Principal::ApiKey { scopes, .. } if scopes.contains(&ApiKeyScope::Read) || scopes.contains(&ApiKeyScope::Write) => Ok(()),
            Principal::ApiKey { .. } => Err(ApiError::forbidden("this API key lacks the READ scope")),
        }
    }

    /// Account-level settings pages and logs: company admins, and API keys with READ.
    pub fn require_admin_or_read_key(&self) -> ApiResult<()> {
        match &self.principal {
            Principal::User { role: Role::CompanyAdmin, .. } => Ok(()),
            Principal::User { .. } => Err(ApiError::forbidden("this needs the COMPANY_ADMIN role")),
            Principal::ApiKey { .. } => self.require_read(),
        }
    }

    /// Account-level changes: company admins, and API keys with WRITE.
    pub fn require_admin_or_write_key(&self) -> ApiResult<()> {
        match &self.principal {
            Principal::User { role: Role::CompanyAdmin, .. } => Ok(()),
            Principal::User { .. } => Err(ApiError::forbidden("this needs the COMPANY_ADMIN role")),
            Principal::ApiKey { scopes, .. } if scopes.contains(&ApiKeyScope::Write) => Ok(()),
            Principal::ApiKey { .. } => Err(ApiError::forbidden("this API key lacks the WRITE scope")),
        }
    }

    /// Things only a signed-in company admin may do (API keys, log in as, the audit log):
    /// a partner's key must not mint keys or tokens.
    pub fn require_company_admin_user(&self) -> ApiResult<Uuid> {
        match &self.principal {
            Principal::User { user_id, role: Role::CompanyAdmin, .. } => Ok(*user_id),
            Principal::User { .. } => Err(ApiError::forbidden("this needs the COMPANY_ADMIN role")),
            Principal::ApiKey { .. } => Err(ApiError::forbidden("this needs a signed-in company admin, not an API key")),
        }
    }

    /// A user's own settings: that user, or a company admin of the account.
    pub fn require_self_or_admin(&self, user_id: Uuid) -> ApiResult<()> {
        if self.user_id() == Some(user_id) || self.is_company_admin() {
            return Ok(());
        }
        self.require_admin_or_write_key()
    }

    pub fn require_scope(&self, scope: ApiKeyScope) -> ApiResult<()> {
        match &self.principal {
            Principal::ApiKey { scopes, .. } if !scopes.contains(&scope) => Err(ApiError::forbidden(format!("this API key lacks the {scope:?} scope"))),
            _ => Ok(()),
        }
    }
}

/// Claims of a Herald user token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    /// RFC 8693 actor: the admin (or the operator) who is logged in as `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Actor {
    /// The admin's user id, or the operator key's id.
    pub sub: String,
    /// `sub` is a platform operator's key, not a user.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operator: bool,
}

/// Signs and checks user tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenIssuer {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    pub fn mint(&self, user_id: Uuid, impersonator: Option<Impersonator>, ttl: Duration) -> String {
        let now = Utc::now().timestamp();
        let act = impersonator.map(|actor| match actor {
            Impersonator::Admin(id) => Actor { sub: id.to_string(), operator: false },
            Impersonator::Operator(id) => Actor { sub: id.to_string(), operator: true },
        });
        let claims = Claims { sub: user_id.to_string(), iat: now, exp: now + ttl.as_secs() as i64, act };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing of serializable claims cannot fail")
    }

    fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims)
    }
}

/// Prefix of every API key, so that keys are recognisable in logs and secret scanners.
pub const API_KEY_PREFIX: &str = "hk_";

/// A freshly generated key: the full secret (shown once) and the hash to store.
pub struct NewKey {
    pub id: Uuid,
    pub secret: String,
    pub secret_hash: String,
}

/// A new key `{prefix}{id}_{secret}`: `hk_` for partners' API keys, `hop_` for operator keys.
pub fn generate_key(prefix: &str) -> NewKey {
    let id = Uuid::now_v7();
    let mut random = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut random);
    let secret_part = hex(&random);
    NewKey { id, secret: format!("{prefix}{}_{secret_part}", id.simple()), secret_hash: hash_secret(&secret_part) }
}

/// The id and secret part of a key made by [`generate_key`] with `prefix`; `None` when the
/// token does not carry that prefix, UNAUTHENTICATED when it does but is malformed.
pub(crate) fn key_parts<'t>(token: &'t str, prefix: &str) -> Option<ApiResult<(Uuid, &'t str)>> {
    let rest = token.strip_prefix(prefix)?;
    Some(rest.split_once('_').and_then(|(id, secret_part)| Some((Uuid::parse_str(id).ok()?, secret_part))).ok_or(ApiError::Unauthenticated))
}

/// Whether `secret_part` is the secret whose hash was stored, compared in constant time.
pub(crate) fn secret_matches(secret_part: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_secret(secret_part).as_bytes(), stored_hash.as_bytes())
}

/// Whether a key last used at `last` records a use at `now`: at minute granularity, one
/// write per key per minute, not per request.
pub(crate) fn records_use(last: Option<chrono::DateTime<Utc>>, now: chrono::DateTime<Utc>) -> bool {
    last.is_none_or(|t| now - t > chrono::Duration::minutes(1))
}

/// The SHA-256 of a secret, hex: what is stored in its place.
pub(crate) fn hash_secret(secret_part: &str) -> String {
    hex(&Sha256::digest(secret_part.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A caller with, for users, the rows authentication read (to prime the request's loaders).
pub struct Authenticated {
    pub caller: Caller,
    pub user: Option<(user::Model, account::Model)>,
}

/// Resolves an `Authorization` header value to a caller.
pub async fn authenticate(db: &DatabaseConnection, issuer: &TokenIssuer, authorization: Option<&str>) -> ApiResult<Option<Caller>> {
    Ok(authenticate_with_user(db, issuer, authorization).await?.map(|a| a.caller))
}

/// As [`authenticate`], also returning the user row it read.
///
/// `Ok(None)`: no credentials (anonymous). `Err(Unauthenticated)`: credentials that are not
/// valid — the HTTP layer answers 401 for those rather than running the operation.
pub async fn authenticate_with_user(db: &DatabaseConnection, issuer: &TokenIssuer, authorization: Option<&str>) -> ApiResult<Option<Authenticated>> {
    let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim();
    if token.starts_with(API_KEY_PREFIX) {
        return authenticate_api_key(db, token).await.map(|caller| Some(Authenticated { caller, user: None }));
    }
    let claims = issuer.verify(token).map_err(|_| ApiError::Unauthenticated)?;
    let user_id = Uuid::parse_str(&claims.sub).map_err(|_| ApiError::Unauthenticated)?;
    // The user with their account in one statement: nearly every operation needs both.
    let (user, account) = match user::Entity::find_by_id(user_id).find_also_related(account::Entity).one(db).await? {
        Some((user, Some(account))) if user.active => (user, account),
        _ => return Err(ApiError::Unauthenticated),
    };
    let impersonator = match claims.act {
        None => None,
        Some(actor) => {
            let actor_id = Uuid::parse_str(&actor.sub).map_err(|_| ApiError::Unauthenticated)?;
            if actor.operator {
                // Any tenant's user, for as long as the operator's key stands.
                let key = entity::operator_key::Entity::find_by_id(actor_id).one(db).await?;
                if key.is_none_or(|k| k.revoked_at.is_some()) {
                    return Err(ApiError::Unauthenticated);
                }
                Some(Impersonator::Operator(actor_id))
            } else {
                let admin = user::Entity::find_by_id(actor_id).one(db).await?.ok_or(ApiError::Unauthenticated)?;
                if !admin.active || admin.role != Role::CompanyAdmin || !account_is_within(db, user.account_id, admin.account_id).await? {
                    return Err(ApiError::Unauthenticated);
                }
                Some(Impersonator::Admin(actor_id))
            }
        }
    };
    let caller =
        Caller { account_id: user.account_id, principal: Principal::User { user_id: user.id, role: user.role, impersonator }, expires_at: Some(claims.exp) };
    Ok(Some(Authenticated { caller, user: Some((user, account)) }))
}

async fn authenticate_api_key(db: &DatabaseConnection, token: &str) -> ApiResult<Caller> {
    let (id, secret_part) = key_parts(token, API_KEY_PREFIX).ok_or(ApiError::Unauthenticated)??;
    let key = api_key::Entity::find_by_id(id).filter(api_key::Column::RevokedAt.is_null()).one(db).await?.ok_or(ApiError::Unauthenticated)?;
    if !secret_matches(secret_part, &key.secret_hash) {
        return Err(ApiError::Unauthenticated);
    }
    let scopes: Vec<ApiKeyScope> = serde_json::from_value(key.scopes.clone()).map_err(|e| ApiError::Internal(e.into()))?;
    let now = Utc::now();
    if records_use(key.last_used_at, now) {
        let mut active: api_key::ActiveModel = key.clone().into();
        active.last_used_at = Set(Some(now));
        active.update(db).await?;
    }
    Ok(Caller { account_id: key.account_id, principal: Principal::ApiKey { key_id: key.id, scopes }, expires_at: None })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `account_id` is `ancestor_id` or one of its sub-accounts (at any depth).
pub async fn account_is_within(db: &impl sea_orm::ConnectionTrait, account_id: Uuid, ancestor_id: Uuid) -> ApiResult<bool> {
    let mut current = Some(account_id);
    // Bounded walk: the tree is shallow, and a cycle must never hang a request.
    for _ in 0..32 {
        match current {
            None => return Ok(false),
            Some(id) if id == ancestor_id => return Ok(true),
            Some(id) => {
                current = account::Entity::find_by_id(id).one(db).await?.and_then(|a| a.parent_id);
            }
        }
    }
    Ok(false)
}
