//! `schema.graphql` is exactly the SDL the server serves.

use std::path::Path;

#[test]
fn schema_graphql_matches_the_served_schema() {
    let served = api::graphql::sdl();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == served {
        return;
    }
    if std::env::var_os("CI").is_some() {
        panic!("schema.graphql differs from the served schema; regenerate it with:\n\n    cargo run -q -p api -- schema > schema.graphql\n");
    }
    // Locally the file follows the code; the diff shows up in review.
    std::fs::write(&path, served).expect("write schema.graphql");
    eprintln!("schema.graphql was out of date and has been rewritten");
}

/// The GraphQL documents of the typed client example (`docs/client/src/*.graphql`) are valid
/// against the served schema: the example cannot drift from it. (`docs/client/check.sh`,
/// run by CI, also generates its types and runs it against a live server.)
#[tokio::test]
async fn the_client_examples_documents_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/client/src");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "graphql"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    let blocks: Vec<&str> = files.iter().map(String::as_str).collect();
    assert!(!blocks.is_empty(), "docs/client/src has GraphQL documents");
    let schema = api::graphql::build_schema(&api::config::QueryLimits::default());
    for block in blocks {
        let document = async_graphql::parser::parse_query(block).expect("a GraphQL document");
        for (name, operation) in document.operations.iter() {
            let name = name.expect("named operations").to_string();
            let request = async_graphql::Request::new(block).operation_name(&name);
            let response = if operation.node.ty == async_graphql::parser::types::OperationType::Subscription {
                use futures_util::StreamExt;
                schema.execute_stream(request).next().await.expect("a first response")
            } else {
                schema.execute(request).await
            };
            // Without a caller every field refuses, but only after the document passed
            // validation: a field's error has a path, a validation error has none.
            assert!(!response.errors.is_empty(), "{name} ran");
            for error in &response.errors {
                assert!(!error.path.is_empty(), "{name} is not valid against the schema: {}", error.message);
            }
        }
    }
}
