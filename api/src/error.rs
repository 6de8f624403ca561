//! The api crate's one error type and its one mapping to GraphQL errors.
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

/// The one mapping to GraphQL errors, applied to every response by the schema's guard
/// extension. Resolvers simply `?` an [`ApiError`]: async-graphql keeps it as the error's
/// source, and here it becomes `extensions.code` (and `extensions.field`). Errors raised by
/// async-graphql itself (parse and validation errors, argument coercion) carry no source and
/// no code; they are all the client's input, so they become `BAD_USER_INPUT`.
pub fn ensure_code(mut err: async_graphql::ServerError) -> async_graphql::ServerError {
    let (code, field) = match err.source::<ApiError>() {
        Some(api) => {
            match api {
                ApiError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
                ApiError::Unavailable(cause) => tracing::warn!(error = format!("{cause:#}"), "database unavailable"),
                _ => {}
            }
            let field = match api {
                ApiError::BadUserInput { field, .. } => Some(field.clone()),
                _ => None,
            };
            (api.code(), field)
        }
        None if err.extensions.as_ref().is_some_and(|ext| ext.get("code").is_some()) => return err,
        None => ("BAD_USER_INPUT", None),
    };
    let mut ext = err.extensions.take().unwrap_or_default();
    ext.set("code", code);
    if let Some(field) = field {
        ext.set("field", field);
    }
    err.extensions = Some(ext);
    err
}
