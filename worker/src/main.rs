#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::telemetry::init();
    let config = api::Config::from_env()?;
    worker::run(config, api::shutdown_signal()).await
}
