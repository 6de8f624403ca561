//! The api crate's one error type. Its one mapping to GraphQL errors is at the GraphQL
//! boundary (`graphql::guard::ensure_code`).
//!
//! Policy: a client sees a stable `extensions.code` and a message written for it. Expected
//! failures (bad input, missing rights, stale versions) carry their own message; anything
//! unexpected becomes `INTERNAL` with a generic message, and its cause chain is logged here,
//! once, never sent.
//!
//! Objects of another tenant are reported exactly like objects that do not exist
//! (`NOT_FOUND`), so that an id tells a foreign caller nothing.

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `UNAUTHENTICATED`: no valid token or API key was presented.
    #[error("authentication required")]
    Unauthenticated,
    /// `FORBIDDEN`: the caller is known but lacks the role or scope; the reason says which.
    #[error("{0}")]
    Forbidden(String),
    /// `NOT_FOUND`: no such object in the caller's account.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// `BAD_USER_INPUT`: `field` names the offending input field (dotted path).
    #[error("{message}")]
    BadUserInput { field: String, message: String },
    /// `CONFLICT`: a stale `expectedVersion`, or a uniqueness rule.
    #[error("{0}")]
    Conflict(String),
    /// `NOT_CONFIGURED`: the request needs something the operator has not set up on this
    /// server (a mail provider's sign-in, say); no input of the caller's can fix it.
    #[error("{0}")]
    NotConfigured(String),
    /// `UNAVAILABLE`: the database cannot be reached now; retry after a moment (HTTP 503 with
    /// `Retry-After` where the transport allows a status). The cause is logged, not sent.
    #[error("the service is temporarily unavailable: retry in a moment")]
    Unavailable(#[source] anyhow::Error),
    /// `INTERNAL`: anything unexpected; the client sees only "internal error".
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadUserInput { field: field.into(), message: message.into() }
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::Forbidden(reason.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::BadUserInput { .. } => "BAD_USER_INPUT",
            Self::Conflict(_) => "CONFLICT",
            Self::NotConfigured(_) => "NOT_CONFIGURED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        if crate::db::is_unavailable(&err) {
            Self::Unavailable(err.into())
        } else {
            Self::Internal(err.into())
        }
    }
}

impl From<anyhow::Error> for ApiError {
    /// An unexpected failure, unless a database error in its chain says the database is
    /// unreachable.
    fn from(err: anyhow::Error) -> Self {
        if err.chain().any(|cause| cause.downcast_ref::<sea_orm::DbErr>().is_some_and(crate::db::is_unavailable)) {
            Self::Unavailable(err)
        } else {
            Self::Internal(err)
        }
    }
}

impl From<sea_orm::TransactionError<ApiError>> for ApiError {
    fn from(err: sea_orm::TransactionError<ApiError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(api) => api,
        }
    }
}
