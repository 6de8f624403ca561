//! The `api` binary's commands: serve (default), mint a token, bootstrap, print the schema,
//! and manage the secrets keyring.

use std::time::Duration;

use clap::{Parser, Subcommand};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::{bootstrap, config::Config, crypto::Keyring, graphql, secrets, state::AppState};

#[derive(Parser)]
#[command(
    name = "api",
    version,
    about = "Herald's GraphQL API",
    after_help = "Configuration is read from HERALD_* environment variables (docs/operations.md)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print a user token, for development and scripts.
    Token {
        /// The user's id.
        #[arg(long)]
        user: Uuid,
        /// Lifetime in seconds (default HERALD_TOKEN_TTL_SECS).
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
    /// Create the first account and company admin on an empty database, and print a token.
    Bootstrap {
        #[arg(long, default_value = "My company")]
        account_name: String,
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        #[arg(long, default_value = "Administrator")]
        admin_name: String,
        #[arg(long)]
        admin_email: String,
    },
    /// Print the GraphQL schema (SDL); `schema.graphql` is this output.
    Schema,
    /// Print a new keyring entry `id:base64key` for HERALD_SECRET_KEY (put it first to
    /// rotate; keep the old entries so existing secrets stay readable).
    GenerateSecretKey {
        #[arg(long)]
        id: String,
    },
    /// Re-seal every stored secret under the active key of HERALD_SECRET_KEY.
    RotateSecrets,
    /// Create a platform operator key (it provisions tenants: `createAccount`, `tenants`)
    /// and print its secret, shown this once.
    OperatorKey {
        #[arg(long)]
        name: String,
    },
    /// Revoke an operator key at once, and with it every token it logged in to a tenant with.
    RevokeOperatorKey {
        /// The key's id (printed when it was created).
        #[arg(long)]
        id: Uuid,
    },
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => crate::run(config, crate::shutdown_signal()).await,
        Command::Token { user, ttl_secs } => {
            let state = AppState::init(config).await?;
            let found = entity::user::Entity::find_by_id(user).one(&state.db).await?;
            let Some(found) = found.filter(|u| u.active) else {
                anyhow::bail!("no active user {user}");
            };
            let ttl = ttl_secs.map(Duration::from_secs).unwrap_or(state.config.token_ttl);
            println!("{}", state.tokens.mint(found.id, None, ttl));
            Ok(())
        }
        Command::Bootstrap { account_name, time_zone, admin_name, admin_email } => {
            let state = AppState::init(config).await?;
            let first = bootstrap::FirstAdmin { account_name, time_zone, admin_name, admin_email };
            match bootstrap::bootstrap(&state.db, first).await? {
                Some((account, admin)) => {
                    println!("account {} ({})", account.id, account.name);
                    println!("admin   {} ({})", admin.id, admin.email);
                    println!("token   {}", state.tokens.mint(admin.id, None, state.config.token_ttl));
                    Ok(())
                }
                None => anyhow::bail!("the database already has accounts; nothing created"),
            }
        }
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::OperatorKey { name } => {
            let state = AppState::init(config).await?;
            let (key, secret) = crate::platform::mint_key(&state.db, &name).await?;
            println!("Operator key {:?} ({}). Its secret, shown this once:\n\n  {secret}\n", key.name, key.id);
            Ok(())
        }
        Command::RevokeOperatorKey { id } => {
            let state = AppState::init(config).await?;
            let key = crate::platform::revoke_key(&state.db, id).await?;
            println!("Operator key {:?} ({}) revoked.", key.name, key.id);
            Ok(())
        }
        Command::RotateSecrets => {
            let state = AppState::init(config).await?;
            let report = secrets::rotate(&state.db, &state.keyring, secrets::SEALED_COLUMNS).await?;
            println!("{} secrets examined, {} re-sealed under key {:?}", report.examined, report.resealed, state.keyring.active_key_id());
            Ok(())
        }
        Command::GenerateSecretKey { id } => {
            let spec = Keyring::generate_spec(&id);
            Keyring::parse(&spec)?;
            println!("{spec}");
            Ok(())
        }
    }
}
