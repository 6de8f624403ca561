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
