//! The services every process shares (database, bus, keyring, token issuer, configuration,
//! event writer, counts reader), built once per process and cloned cheaply. Nothing here knows
//! GraphQL: the server builds its schemas over these ([`crate::graphql::Schemas`]).

use std::sync::{Arc, OnceLock};

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::{
    auth::TokenIssuer,
    bus::Bus,
    config::Config,
    crypto::{read_or_create_secret_file, Keyring},
    db,
    notifications::{counts::CountsReader, writer::EventWriter},
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub bus: Bus,
    /// Behind `Arc`s, like everything here: a state is cloned into every request and every
    /// open subscription, and the issuer's validation sets and the keyring's ciphers are hash
    /// tables that would otherwise be copied into every open panel.
    pub tokens: Arc<TokenIssuer>,
    pub keyring: Arc<Keyring>,
    /// The mail providers' OAuth2 endpoints, for personal mail accounts.
    pub oauth: Arc<crate::oauth::Providers>,
    /// Writes published events and their fan-out, batching concurrent publishes; started on
    /// first use ([`AppState::events`]), so a worker, which publishes none, never starts it.
    events: Arc<OnceLock<EventWriter>>,
    /// Reads the live feeds' panel counts, batching concurrent reads; started on first use.
    counts: Arc<OnceLock<CountsReader>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("bus: {0}")]
    Bus(#[from] crate::bus::BusError),
    #[error("secrets: {0}")]
    Secrets(#[from] crate::crypto::CryptoError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

impl AppState {
    /// Connects to the database (running pending migrations) and the bus, and loads secrets.
    pub async fn init(config: Config) -> Result<Self, StartError> {
        let db = db::connect(&config).await?;
        db::migrate(&db).await?;
        let bus = match &config.redis_url {
            Some(url) => Bus::redis(url, &config.bus_prefix).await?,
            None => Bus::local(),
        };
        let jwt_secret = match &config.jwt_secret {
            Some(secret) => secret.expose().to_string(),
            None => read_or_create_secret_file(&config.data_dir.join("herald.jwt"), || {
                use base64::Engine;
                let mut bytes = [0u8; 48];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
                base64::engine::general_purpose::STANDARD.encode(bytes)
            })?,
        };
        let keyring = match &config.secret_key {
            Some(spec) => Keyring::parse(spec.expose())?,
            None => Keyring::load_or_create_file(&config.data_dir.join("herald.key"))?,
        };
        Ok(Self::from_parts(Arc::new(config), db, bus, TokenIssuer::new(jwt_secret.as_bytes()), keyring))
    }

    /// A state from services built elsewhere (tests and tools that connect their own way).
    pub fn from_parts(config: Arc<Config>, db: DatabaseConnection, bus: Bus, tokens: TokenIssuer, keyring: Keyring) -> Self {
        let oauth = Arc::new(crate::oauth::Providers::new(&config.oauth));
        Self { config, db, bus, tokens: Arc::new(tokens), keyring: Arc::new(keyring), oauth, events: Arc::default(), counts: Arc::default() }
    }

    /// The event writer, started on the current runtime the first time it is asked for.
    pub fn events(&self) -> &EventWriter {
        self.events.get_or_init(|| {
            // SQLite has one writer at a time: a second writing transaction would only fail busy.
            let writers = if self.db.get_database_backend() == sea_orm::DbBackend::Sqlite { 1 } else { self.config.event_writers };
            EventWriter::start(self.db.clone(), self.config.notification_collapse_window, writers)
        })
    }

    /// The counts reader, started on the current runtime the first time it is asked for.
    pub fn counts(&self) -> &CountsReader {
        self.counts.get_or_init(|| CountsReader::start(self.db.clone()))
    }
}
