//! What every operation goes through on every transport, besides async-graphql's own depth,
//! complexity and directive limits: a cap on aliases (an "alias bomb" asks one expensive
//! field hundreds of times under different names), and the one mapping of errors to
//! `extensions.code`.
//!
//! This is deliberately not an async-graphql `Extension`: any registered extension wraps
//! every field resolution in an extra future, a cost paid per field by every operation,
//! where this guard runs once per operation. The document parsed here is the one execution
//! uses.

use async_graphql::{
    parser::types::{OperationType, Selection, SelectionSet},
    Request, Response, ServerError,
};

use crate::error::ApiError;

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set.node),
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Refuses a document with more than `max` aliases. The parsed document stays in the request,
/// so execution does not parse it again; a document that does not parse passes, and
/// execution reports the parse error itself.
pub fn check_aliases(request: &mut Request, max: usize) -> Result<(), ServerError> {
    let Ok(document) = request.parsed_query() else { return Ok(()) };
    let aliases: usize = document.operations.iter().map(|(_, op)| count_aliases(&op.node.selection_set.node)).sum::<usize>()
        + document.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum::<usize>();
    if aliases > max {
        return Err(ServerError::new(format!("Query has {aliases} aliases; the limit is {max}"), None));
    }
    Ok(())
}

/// Whether the operation to run reads nothing but the schema: a query whose root fields are
/// all introspection (`__schema`, `__type`, `__typename`), as the schema fetches of GraphiQL,
/// graphql-codegen, Apollo and Postman are.
pub fn is_introspection(request: &mut Request) -> bool {
    let name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else { return false };
    let mut operations = document.operations.iter();
    let operation = match name {
        Some(name) => operations.find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => operations.next().filter(|_| document.operations.iter().count() == 1),
    };
    let Some((_, operation)) = operation else { return false };
    let roots = &operation.node.selection_set.node.items;
    operation.node.ty == OperationType::Query
        && !roots.is_empty()
        && roots.iter().all(|root| matches!(&root.node, Selection::Field(field) if field.node.name.node.starts_with("__")))
}

/// Gives every error of a response its `extensions.code`.
pub fn with_codes(mut response: Response) -> Response {
    response.errors = response.errors.into_iter().map(ensure_code).collect();
    response
}

/// The one mapping to GraphQL errors, applied to every response by the schema's guard
/// extension. Resolvers simply `?` an [`ApiError`]: async-graphql keeps it as the error's
/// source, and here it becomes `extensions.code` (and `extensions.field`). Errors raised by
/// async-graphql itself (parse and validation errors, argument coercion) carry no source and
/// no code; they are all the client's input, so they become `BAD_USER_INPUT`.
fn ensure_code(mut err: async_graphql::ServerError) -> async_graphql::ServerError {
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
