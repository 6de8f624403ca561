use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::telemetry::init();
    let cli = api::cli::Cli::parse();
    let config = api::Config::from_env()?;
    api::cli::run(cli, config).await
}
