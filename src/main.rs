//! The all-in-one server: API and worker in one process, on embedded defaults.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::telemetry::init();
    let config = api::Config::from_env()?;
    herald::run(config, api::shutdown_signal()).await
}
