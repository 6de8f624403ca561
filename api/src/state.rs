//! The services every process shares (database, bus, keyring, token issuer, configuration,
//! event writer, counts reader), built once per process and cloned cheaply. Nothing here knows
//! GraphQL: the server builds its schemas over these ([`crate::graphql::Schemas`]).

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::{
    auth::TokenIssuer,
    bus::Bus,
    config::Config,
    crypto::{read_or_create_secret_file, Keyring},
    db,
    notifications::writer::EventWriter,
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
    /// Writes published events and their fan-out, batching concurrent publishes.
    pub events: EventWriter,
    /// Reads the live feeds' panel counts, batching concurrent reads.
    pub counts: crate::notifications::panel::CountsReader,
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
        bus.expand(crate::notifications::fanout::EVENT_ROWS, Arc::new(crate::notifications::fanout::EventRowsExpander));
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
        // SQLite has one writer at a time: a second writing transaction would only fail busy.
        let writers = if db.get_database_backend() == sea_orm::DbBackend::Sqlite { 1 } else { config.event_writers };
        let events = EventWriter::start(db.clone(), config.notification_collapse_window, writers);
        let counts = crate::notifications::panel::CountsReader::start(db.clone());
        Ok(Self { tokens: Arc::new(TokenIssuer::new(jwt_secret.as_bytes())), config: Arc::new(config), db, bus, keyring: Arc::new(keyring), events, counts })
    }
}
