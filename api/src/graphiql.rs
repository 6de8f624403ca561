//! GraphiQL, served by Herald itself: `GET /graphql` from a browser answers the page, and
//! `/graphiql/{file}` its assets, which are production builds embedded in the binary
//! (`api/assets/graphiql`, refreshed by its `update.sh`). Nothing is loaded from a CDN, so the
//! page works offline, behind a proxy, and under a strict Content-Security-Policy: no inline
//! script, and connections only to this origin.

use axum::{
    extract::Path,
    http::{header, HeaderName, StatusCode},
    response::{IntoResponse, Response},
};

/// The page's policy. Inline styles are allowed because GraphiQL's components set them;
/// fonts and icons are data: URLs inside its stylesheet.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
                      connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset { name: $name, content_type: $content_type, body: include_bytes!(concat!("../assets/graphiql/", $name)) }
    };
}

const ASSETS: &[Asset] = &[
    asset!("graphiql.min.js", "text/javascript; charset=utf-8"),
    asset!("graphiql.min.css", "text/css; charset=utf-8"),
    asset!("react.production.min.js", "text/javascript; charset=utf-8"),
    asset!("react-dom.production.min.js", "text/javascript; charset=utf-8"),
    asset!("herald-graphiql.js", "text/javascript; charset=utf-8"),
    asset!("herald-graphiql.css", "text/css; charset=utf-8"),
];

const PAGE: &str = include_str!("../assets/graphiql/index.html");

/// Headers every GraphiQL response carries.
fn hardened(content_type: &'static str) -> [(HeaderName, &'static str); 4] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ]
}

/// The GraphiQL page.
pub fn page() -> Response {
    (hardened("text/html; charset=utf-8"), [(header::CACHE_CONTROL, "no-cache")], PAGE).into_response()
}

/// `GET /graphiql/{file}`: one of the page's embedded assets.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        // An hour: the names carry no version, and a new Herald may bring new assets.
        Some(asset) => (hardened(asset.content_type), [(header::CACHE_CONTROL, "public, max-age=3600")], asset.body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such GraphiQL asset").into_response(),
    }
}
