//! A schema extension that applies, on every transport, what async-graphql's own limits do
//! not: a cap on aliases (an "alias bomb" asks one expensive field hundreds of times under
//! different names), and a stable `extensions.code` on the errors async-graphql raises itself.

use std::sync::Arc;

use async_graphql::{
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
    Response, ServerError, ServerResult, Variables,
};
use futures_util::{stream::BoxStream, StreamExt};

use crate::error::ensure_code;

pub struct Guard {
    pub max_aliases: usize,
}

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension { max_aliases: self.max_aliases })
    }
}

struct GuardExtension {
    max_aliases: usize,
}

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

fn with_codes(mut response: Response) -> Response {
    response.errors = response.errors.into_iter().map(ensure_code).collect();
    response
}

#[async_trait::async_trait]
impl Extension for GuardExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(&self, ctx: &ExtensionContext<'_>, stream: BoxStream<'s, Response>, next: NextSubscribe<'_>) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(with_codes).boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases: usize = document.operations.iter().map(|(_, op)| count_aliases(&op.node.selection_set.node)).sum::<usize>()
            + document.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum::<usize>();
        if aliases > self.max_aliases {
            return Err(ServerError::new(format!("Query has {aliases} aliases; the limit is {}", self.max_aliases), None));
        }
        Ok(document)
    }
}
