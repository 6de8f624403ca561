//! Configuration: one typed struct read from `HERALD_*` environment variables, shared by the
//! api, the worker and the all-in-one binary.
//!
//! Every variable has one default, written in [`Config::embedded`] and [`WorkerConfig::default`]
//! and documented in docs/operations.md ("Configuration", checked by a test); a value that cannot be
//! used stops start-up with a [`ConfigError`] naming the variable. Secrets are wrapped in
//! [`SecretString`] so that `{:?}` of a config never prints them.

use std::{env, fmt, net::SocketAddr, path::PathBuf, time::Duration};

/// A configuration value that must never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self { var, message: message.into() }
    }
}

/// Who may introspect the schema (`HERALD_INTROSPECTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Introspection {
    /// Anyone, signed in or not (`anyone`, the default: the schema is published as
    /// `schema.graphql` anyway).
    Anyone,
    /// Signed-in callers only (`signed-in`).
    SignedIn,
    /// Nobody (`off`).
    Off,
}

/// Limits applied to every GraphQL operation, whatever the transport.
#[derive(Clone, Debug)]
pub struct QueryLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
    /// `HERALD_INTROSPECTION`.
    pub introspection: Introspection,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self { max_depth: 12, max_complexity: 2_000, max_aliases: 30, max_directives: 10, introspection: Introspection::Anyone }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `HERALD_BIND`: address the HTTP server listens on.
    pub bind: SocketAddr,
    /// `HERALD_DATA_DIR`: where the embedded SQLite file and generated key files live.
    pub data_dir: PathBuf,
    /// `HERALD_DATABASE_URL`: PostgreSQL (production) or SQLite URL. `None` = embedded SQLite
    /// file `herald.db` in the data directory.
    pub database_url: Option<String>,
    /// `HERALD_DATABASE_SCHEMA`: PostgreSQL schema (search path) to use; tests use one each.
    pub database_schema: Option<String>,
    /// `HERALD_DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: u32,
    /// `HERALD_DATABASE_WAIT_MS`: how long a request waits for a PostgreSQL connection (or to
    /// open one) before it answers UNAVAILABLE. SQLite, local, always waits for its writer.
    pub database_wait: Duration,
    /// `HERALD_REDIS_URL`: Redis for cross-process pub/sub. `None` = in-process bus.
    pub redis_url: Option<String>,
    /// `HERALD_BUS_PREFIX`: prefix of every Redis channel, so that several deployments (or
    /// tests) can share one Redis.
    pub bus_prefix: String,
    /// `HERALD_JWT_SECRET`: HS256 secret for user tokens. Embedded mode generates one.
    pub jwt_secret: Option<SecretString>,
    /// `HERALD_SECRET_KEY`: AEAD keyring `id:base64key[,id:base64key…]`, first one active.
    /// Embedded mode generates a key file.
    pub secret_key: Option<SecretString>,
    /// `HERALD_CORS_ORIGINS`: comma-separated origins allowed for CORS and WebSocket upgrades.
    pub cors_origins: Vec<String>,
    /// `HERALD_MAX_BODY_BYTES`: request-body limit on every route.
    pub max_body_bytes: usize,
    /// `HERALD_QUERY_MAX_DEPTH`, `_COMPLEXITY`, `_ALIASES`, `_DIRECTIVES`.
    pub limits: QueryLimits,
    /// `HERALD_WS_INIT_TIMEOUT_SECS`: time a socket has to send `connection_init`.
    pub ws_init_timeout: Duration,
    /// `HERALD_WS_PING_INTERVAL_SECS`: WebSocket ping period; a peer silent for two periods is
    /// dropped.
    pub ws_ping_interval: Duration,
    /// `HERALD_TOKEN_TTL_SECS`: lifetime of tokens minted by `impersonate` and the CLI.
    pub token_ttl: Duration,
    /// `HERALD_NOTIFICATION_COLLAPSE_SECS`: repeated events about one contact and type within
    /// this window fold into one panel row (0 turns folding off).
    pub notification_collapse_window: Duration,
    /// `HERALD_EVENT_WRITERS`: transactions writing published events at once per process (one
    /// on SQLite);
    /// concurrent publishes queue behind them and are written together (group commit).
    pub event_writers: usize,
    /// The worker's knobs (`HERALD_WORKER_*`, `HERALD_DELIVERY_*`).
    pub worker: WorkerConfig,
    /// Mail providers' sign-in (`HERALD_OAUTH_*`).
    pub oauth: OAuthConfig,
}

/// Signing in to mail providers with OAuth2 (personal mail accounts).
#[derive(Clone, Debug, Default)]
pub struct OAuthConfig {
    /// `HERALD_OAUTH_REDIRECT_URL`: Herald's callback as the providers know it (registered
    /// with each), ending in `/oauth/callback`.
    pub redirect_url: Option<String>,
    /// `HERALD_OAUTH_RETURN_URLS`: comma-separated URL prefixes the browser may be sent back to
    /// after the callback (the CRM's pages).
    pub return_urls: Vec<String>,
    /// `HERALD_OAUTH_MICROSOFT_*`: set when `HERALD_OAUTH_MICROSOFT_CLIENT_ID` is.
    pub microsoft: Option<OAuthProvider>,
    /// `HERALD_OAUTH_GOOGLE_*`: set when `HERALD_OAUTH_GOOGLE_CLIENT_ID` is.
    pub google: Option<OAuthProvider>,
}

/// Herald's registration with one provider, and where the provider's endpoints are (a
/// national cloud, or a test's identity provider, moves them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthProvider {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub authorize_url: String,
    pub token_url: String,
    /// Where a grant is revoked when its mailbox is deleted (Microsoft has none).
    pub revocation_url: Option<String>,
    pub scopes: Vec<String>,
}

/// The public endpoints and scopes of the providers, used unless configured otherwise.
pub mod providers {
    pub const MICROSOFT_AUTHORIZE_URL: &str = "https://login.microsoftonline.com/common/oauth2/v2.0/authorize";
    pub const MICROSOFT_TOKEN_URL: &str = "https://login.microsoftonline.com/common/oauth2/v2.0/token";
    /// IMAP and SMTP as the signed-in user, and a refresh token (`offline_access`).
    pub const MICROSOFT_SCOPES: &str = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access";
    pub const GOOGLE_AUTHORIZE_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
    pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
    pub const GOOGLE_REVOCATION_URL: &str = "https://oauth2.googleapis.com/revoke";
    /// Gmail's one scope for IMAP and SMTP.
    pub const GOOGLE_SCOPES: &str = "https://mail.google.com/";
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// `HERALD_WORKER_POLL_MS`: how often an idle worker looks for due work.
    pub poll_interval: Duration,
    /// `HERALD_WORKER_BATCH`: reminders planned, or messages claimed, per step.
    pub batch: u64,
    /// `HERALD_DELIVERY_CONCURRENCY`: messages in flight at once per worker (and SMTP
    /// connections per account's server).
    pub concurrency: usize,
    /// `HERALD_DELIVERY_LEASE_SECS`: how long a claimed message stays a worker's unless the
    /// worker renews it, which it does every third of it while it works: a worker that dies
    /// gives its messages back this long after its last renewal.
    pub lease: Duration,
    /// `HERALD_MAILBOX_LEASE_SECS`: how long a mailbox being scanned stays a worker's.
    pub mailbox_lease: Duration,
    /// `HERALD_DELIVERY_MAX_ATTEMPTS`: transient failures before a message is given up.
    pub max_attempts: i32,
    /// `HERALD_DELIVERY_RETRY_BASE_MS`: first retry delay; doubled per attempt (capped at an
    /// hour), with ±25 % jitter.
    pub retry_base: Duration,
    /// `HERALD_MAILBOX_SCAN_SECS`: how often each active mailbox is scanned.
    pub mailbox_scan_interval: Duration,
    /// `HERALD_MAILBOX_BODY_LIMIT_BYTES`: larger messages are archived headers-only.
    pub mailbox_body_limit: u64,
    /// `HERALD_WORKER_THREADS`: runtime threads of a worker process (`cargo run -p worker`;
    /// the all-in-one server keeps tokio's default). One by default: a worker's work is
    /// waiting on its database and mail servers, and on a small machine, where PostgreSQL
    /// runs beside it, a second thread mostly adds wake-ups between the two threads and sends
    /// no faster (see docs/benchmarks.md, "Delivery"). Scale out with more worker processes;
    /// they share the work through the database.
    pub threads: usize,
    /// `HERALD_WORKER_METRICS_BIND`: where a worker process serves `/metrics` and `/healthz`
    /// (`off`: nowhere). The all-in-one server's are the API's.
    pub metrics_bind: Option<SocketAddr>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(1000),
            batch: 500,
            concurrency: 32,
            lease: Duration::from_secs(15),
            mailbox_lease: Duration::from_secs(120),
            max_attempts: 10,
            retry_base: Duration::from_secs(30),
            mailbox_scan_interval: Duration::from_secs(300),
            mailbox_body_limit: 10 * 1024 * 1024,
            threads: 1,
            metrics_bind: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
        }
    }
}

impl Config {
    /// Embedded defaults: SQLite in `data_dir`, in-process bus, generated secrets.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            database_url: None,
            database_schema: None,
            database_max_connections: 16,
            database_wait: Duration::from_millis(1000),
            redis_url: None,
            bus_prefix: "herald".into(),
            jwt_secret: None,
            secret_key: None,
            cors_origins: Vec::new(),
            max_body_bytes: 1024 * 1024,
            limits: QueryLimits::default(),
            ws_init_timeout: Duration::from_secs(5),
            ws_ping_interval: Duration::from_secs(20),
            token_ttl: Duration::from_secs(3600),
            notification_collapse_window: Duration::from_secs(300),
            event_writers: 2,
            worker: WorkerConfig::default(),
            oauth: OAuthConfig::default(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let data_dir = var("HERALD_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let mut config = Self::embedded(data_dir);
        if let Some(bind) = var("HERALD_BIND") {
            config.bind = bind.parse().map_err(|e| ConfigError::new("HERALD_BIND", format!("not a socket address ({e}): {bind:?}")))?;
        }
        config.database_url = var("HERALD_DATABASE_URL");
        if let Some(url) = &config.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:")) {
                return Err(ConfigError::new("HERALD_DATABASE_URL", "must start with postgres://, postgresql:// or sqlite:"));
            }
        }
        config.database_schema = var("HERALD_DATABASE_SCHEMA");
        config.database_max_connections = number(&var, "HERALD_DATABASE_MAX_CONNECTIONS", config.database_max_connections)?;
        config.database_wait = Duration::from_millis(number(&var, "HERALD_DATABASE_WAIT_MS", config.database_wait.as_millis() as u64)?);
        config.redis_url = var("HERALD_REDIS_URL");
        if let Some(url) = &config.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::new("HERALD_REDIS_URL", "must start with redis:// or rediss://"));
            }
        }
        if let Some(prefix) = var("HERALD_BUS_PREFIX") {
            config.bus_prefix = prefix;
        }
        config.jwt_secret = var("HERALD_JWT_SECRET").map(SecretString::new);
        if let Some(secret) = &config.jwt_secret {
            if secret.expose().len() < 32 {
                return Err(ConfigError::new("HERALD_JWT_SECRET", "must be at least 32 characters"));
            }
        }
        config.secret_key = var("HERALD_SECRET_KEY").map(SecretString::new);
        if let Some(key) = &config.secret_key {
            crate::crypto::Keyring::parse(key.expose()).map_err(|e| ConfigError::new("HERALD_SECRET_KEY", e.to_string()))?;
        }
        if config.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
            // Generated secrets live in files next to an embedded database; a production
            // deployment with several processes must share them explicitly.
            if config.jwt_secret.is_none() {
                return Err(ConfigError::new("HERALD_JWT_SECRET", "is required with a PostgreSQL HERALD_DATABASE_URL"));
            }
            if config.secret_key.is_none() {
                return Err(ConfigError::new("HERALD_SECRET_KEY", "is required with a PostgreSQL HERALD_DATABASE_URL"));
            }
        }
        if let Some(origins) = var("HERALD_CORS_ORIGINS") {
            config.cors_origins = origins.split(',').map(str::trim).filter(|o| !o.is_empty()).map(String::from).collect();
            if let Some(bad) = config.cors_origins.iter().find(|o| !(o.starts_with("http://") || o.starts_with("https://"))) {
                return Err(ConfigError::new("HERALD_CORS_ORIGINS", format!("origin {bad:?} must start with http:// or https://")));
            }
        }
        config.max_body_bytes = number(&var, "HERALD_MAX_BODY_BYTES", config.max_body_bytes)?;
        config.limits.max_depth = number(&var, "HERALD_QUERY_MAX_DEPTH", config.limits.max_depth)?;
        config.limits.max_complexity = number(&var, "HERALD_QUERY_MAX_COMPLEXITY", config.limits.max_complexity)?;
        config.limits.max_aliases = number(&var, "HERALD_QUERY_MAX_ALIASES", config.limits.max_aliases)?;
        config.limits.max_directives = number(&var, "HERALD_QUERY_MAX_DIRECTIVES", config.limits.max_directives)?;
        if let Some(who) = var("HERALD_INTROSPECTION") {
            config.limits.introspection = match who.trim().to_ascii_lowercase().as_str() {
                "anyone" => Introspection::Anyone,
                "signed-in" => Introspection::SignedIn,
                "off" => Introspection::Off,
                _ => return Err(ConfigError::new("HERALD_INTROSPECTION", format!("anyone, signed-in or off, not {who:?}"))),
            };
        }
        config.ws_init_timeout = Duration::from_secs(number(&var, "HERALD_WS_INIT_TIMEOUT_SECS", config.ws_init_timeout.as_secs())?);
        config.ws_ping_interval = Duration::from_secs(number(&var, "HERALD_WS_PING_INTERVAL_SECS", config.ws_ping_interval.as_secs())?);
        config.token_ttl = Duration::from_secs(number(&var, "HERALD_TOKEN_TTL_SECS", config.token_ttl.as_secs())?);
        if let Some(raw) = var("HERALD_NOTIFICATION_COLLAPSE_SECS") {
            let secs: u64 =
                raw.trim().parse().map_err(|e| ConfigError::new("HERALD_NOTIFICATION_COLLAPSE_SECS", format!("not a number of seconds ({e}): {raw:?}")))?;
            config.notification_collapse_window = Duration::from_secs(secs);
        }
        config.event_writers = number(&var, "HERALD_EVENT_WRITERS", config.event_writers)?;
        if config.event_writers == 0 {
            return Err(ConfigError::new("HERALD_EVENT_WRITERS", "must be at least 1"));
        }
        let w = &mut config.worker;
        w.poll_interval = Duration::from_millis(number(&var, "HERALD_WORKER_POLL_MS", w.poll_interval.as_millis() as u64)?);
        w.batch = number(&var, "HERALD_WORKER_BATCH", w.batch)?;
        w.concurrency = number(&var, "HERALD_DELIVERY_CONCURRENCY", w.concurrency)?;
        w.lease = Duration::from_secs(number(&var, "HERALD_DELIVERY_LEASE_SECS", w.lease.as_secs())?);
        if w.lease < Duration::from_secs(1) {
            return Err(ConfigError::new("HERALD_DELIVERY_LEASE_SECS", "must be at least 1"));
        }
        w.mailbox_lease = Duration::from_secs(number(&var, "HERALD_MAILBOX_LEASE_SECS", w.mailbox_lease.as_secs())?);
        w.max_attempts = number(&var, "HERALD_DELIVERY_MAX_ATTEMPTS", w.max_attempts)?;
        w.retry_base = Duration::from_millis(number(&var, "HERALD_DELIVERY_RETRY_BASE_MS", w.retry_base.as_millis() as u64)?);
        w.mailbox_scan_interval = Duration::from_secs(number(&var, "HERALD_MAILBOX_SCAN_SECS", w.mailbox_scan_interval.as_secs())?);
        w.mailbox_body_limit = number(&var, "HERALD_MAILBOX_BODY_LIMIT_BYTES", w.mailbox_body_limit)?;
        w.threads = number(&var, "HERALD_WORKER_THREADS", w.threads)?;
        match var("HERALD_WORKER_METRICS_BIND") {
            Some(off) if off.trim().eq_ignore_ascii_case("off") => w.metrics_bind = None,
            Some(bind) => {
                w.metrics_bind =
                    Some(bind.parse().map_err(|e| ConfigError::new("HERALD_WORKER_METRICS_BIND", format!("not a socket address or off ({e}): {bind:?}")))?)
            }
            None => {}
        }
        config.oauth = OAuthConfig::read(&var)?;
        Ok(config)
    }

    /// The database URL to connect to: the configured one, or the embedded SQLite file.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("herald.db").display()),
        }
    }
}

impl OAuthConfig {
    fn read(var: &impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        use providers::*;
        let url = |name: &'static str, default: Option<&str>| -> Result<Option<String>, ConfigError> {
            match var(name) {
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => Ok(Some(u.trim().to_string())),
                Some(u) => Err(ConfigError::new(name, format!("not an http(s) URL: {u:?}"))),
                None => Ok(default.map(String::from)),
            }
        };
        let provider = |id: &'static str,
                        secret: &'static str,
                        authorize: (&'static str, &str),
                        token: (&'static str, &str),
                        revocation: (&'static str, Option<&str>),
                        scopes: (&'static str, &str)|
         -> Result<Option<OAuthProvider>, ConfigError> {
            let Some(client_id) = var(id) else { return Ok(None) };
            Ok(Some(OAuthProvider {
                client_id: client_id.trim().to_string(),
                client_secret: var(secret).map(SecretString::new),
                authorize_url: url(authorize.0, Some(authorize.1))?.unwrap_or_default(),
                token_url: url(token.0, Some(token.1))?.unwrap_or_default(),
                revocation_url: url(revocation.0, revocation.1)?,
                scopes: var(scopes.0).unwrap_or_else(|| scopes.1.to_string()).split_whitespace().map(String::from).collect(),
            }))
        };
        let config = Self {
            redirect_url: url("HERALD_OAUTH_REDIRECT_URL", None)?,
            return_urls: var("HERALD_OAUTH_RETURN_URLS")
                .map(|v| v.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect())
                .unwrap_or_default(),
            microsoft: provider(
                "HERALD_OAUTH_MICROSOFT_CLIENT_ID",
                "HERALD_OAUTH_MICROSOFT_CLIENT_SECRET",
                ("HERALD_OAUTH_MICROSOFT_AUTHORIZE_URL", MICROSOFT_AUTHORIZE_URL),
                ("HERALD_OAUTH_MICROSOFT_TOKEN_URL", MICROSOFT_TOKEN_URL),
                ("HERALD_OAUTH_MICROSOFT_REVOCATION_URL", None),
                ("HERALD_OAUTH_MICROSOFT_SCOPES", MICROSOFT_SCOPES),
            )?,
            google: provider(
                "HERALD_OAUTH_GOOGLE_CLIENT_ID",
                "HERALD_OAUTH_GOOGLE_CLIENT_SECRET",
                ("HERALD_OAUTH_GOOGLE_AUTHORIZE_URL", GOOGLE_AUTHORIZE_URL),
                ("HERALD_OAUTH_GOOGLE_TOKEN_URL", GOOGLE_TOKEN_URL),
                ("HERALD_OAUTH_GOOGLE_REVOCATION_URL", Some(GOOGLE_REVOCATION_URL)),
                ("HERALD_OAUTH_GOOGLE_SCOPES", GOOGLE_SCOPES),
            )?,
        };
        if let Some(bad) = config.return_urls.iter().find(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
            return Err(ConfigError::new("HERALD_OAUTH_RETURN_URLS", format!("{bad:?} must start with http:// or https://")));
        }
        if (config.microsoft.is_some() || config.google.is_some()) && config.redirect_url.is_none() {
            return Err(ConfigError::new("HERALD_OAUTH_REDIRECT_URL", "is required once a provider's client id is set"));
        }
        Ok(config)
    }
}

fn number<T>(var: &impl Fn(&'static str) -> Option<String>, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => {
            let value: T = raw.trim().parse().map_err(|e| ConfigError::new(name, format!("not a number ({e}): {raw:?}")))?;
            if value < T::from(1) {
                return Err(ConfigError::new(name, "must be at least 1"));
            }
            Ok(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_mode() {
        let config = read(&[]).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert!(config.database_url.is_none() && config.redis_url.is_none());
        assert!(config.effective_database_url().starts_with("sqlite://"));
        assert_eq!(config.worker.threads, 1);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("HERALD_BIND", "localhost")], "HERALD_BIND"),
            (&[("HERALD_DATABASE_URL", "mysql://x")], "HERALD_DATABASE_URL"),
            (&[("HERALD_REDIS_URL", "127.0.0.1:6379")], "HERALD_REDIS_URL"),
            (&[("HERALD_JWT_SECRET", "short")], "HERALD_JWT_SECRET"),
            (&[("HERALD_SECRET_KEY", "k1:nope")], "HERALD_SECRET_KEY"),
            (&[("HERALD_MAX_BODY_BYTES", "lots")], "HERALD_MAX_BODY_BYTES"),
            (&[("HERALD_QUERY_MAX_DEPTH", "0")], "HERALD_QUERY_MAX_DEPTH"),
            (&[("HERALD_WORKER_THREADS", "0")], "HERALD_WORKER_THREADS"),
            (&[("HERALD_CORS_ORIGINS", "app.example.com")], "HERALD_CORS_ORIGINS"),
            (&[("HERALD_DATABASE_URL", "postgres://localhost/herald")], "HERALD_JWT_SECRET"),
        ];
        for (vars, name) in cases {
            let err = read(vars).unwrap_err();
            assert_eq!(err.var, *name, "{vars:?}");
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let config = read(&[("HERALD_JWT_SECRET", "a-very-long-secret-that-must-not-leak-0123")]).unwrap();
        assert!(!format!("{config:?}").contains("must-not-leak"));
    }

    /// docs/operations.md's configuration table names every variable the code reads, and each
    /// default it writes in backticks is the code's: setting a variable to its documented
    /// default changes nothing.
    #[test]
    fn the_documented_defaults_are_the_codes() {
        let doc = include_str!("../../docs/operations.md");
        let rows: Vec<(&str, &str)> = doc
            .lines()
            .filter_map(|line| {
                let mut cells = line.strip_prefix("| `")?.splitn(3, '|');
                let name = cells.next()?.trim().trim_end_matches('`');
                Some((name, cells.next()?.trim()))
            })
            .filter(|(name, _)| name.starts_with("HERALD_"))
            .collect();
        let source = include_str!("config.rs");
        let read_here: std::collections::BTreeSet<&str> =
            source.split('"').filter(|s| s.len() > 7 && s.starts_with("HERALD_") && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')).collect();
        for name in &read_here {
            assert!(rows.iter().any(|(n, _)| n == name), "{name} is read but not in docs/operations.md");
        }
        let base = format!("{:?}", read(&[]).unwrap());
        let mut checked = 0;
        for (name, default) in rows {
            let Some(value) = default.strip_prefix('`').and_then(|d| d.split('`').next()) else { continue };
            if !read_here.contains(name) {
                continue; // read elsewhere (HERALD_LOG, HERALD_LOG_FORMAT: telemetry)
            }
            let with = read(&[(name, value)]).unwrap_or_else(|e| panic!("{name}={value}: {e}"));
            assert_eq!(format!("{with:?}"), base, "{name}: the documented default `{value}` is not the code's");
            checked += 1;
        }
        assert!(checked >= 25, "only {checked} defaults were checked");
    }
}
