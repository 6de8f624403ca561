//! Logging: `tracing` to stdout, filtered by `HERALD_LOG` (default `info`), as JSON lines
//! when `HERALD_LOG_FORMAT=json` (what log shippers want in production).
//!
//! No secret reaches the log at any level. Herald's own events never carry one (secrets are
//! [`crate::config::SecretString`]s or sealed); the libraries' protocol traces are another
//! matter, so the targets in [`SECRET_BEARING`] are dropped whatever `HERALD_LOG` asks for.

use tracing_subscriber::{filter::filter_fn, fmt, fmt::MakeWriter, prelude::*, EnvFilter};

/// Log targets whose events can carry credentials: async-imap's stream traces every command
/// as written, `LOGIN "user" "password"` and `AUTHENTICATE` tokens included.
const SECRET_BEARING: &[&str] = &["async_imap::imap_stream"];

/// Whether events of `target` may be written at all.
fn may_log(target: &str) -> bool {
    !SECRET_BEARING.iter().any(|t| target.starts_with(t))
}

/// Adds one to a gauge for as long as it lives: open sockets, running operations.
pub struct Held(&'static str);

impl Held {
    pub fn new(gauge: &'static str) -> Self {
        metrics::gauge!(gauge).increment(1.0);
        Self(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

pub fn init() {
    let filter = EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let json = std::env::var("HERALD_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    init_with(filter, json, std::io::stdout);
}

/// The process's logging through `filter` into `writer` (tests read what a server logged).
/// A second call is harmless: the first subscriber stays.
pub fn init_with<W>(filter: EnvFilter, json: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter).with(filter_fn(|meta| may_log(meta.target())));
    let layer = fmt::layer().with_target(false).with_writer(writer);
    let _ = if json { registry.with(layer.json()).try_init() } else { registry.with(layer).try_init() };
}
