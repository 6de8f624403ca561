/// mimalloc: Herald's request path makes many small, short-lived allocations across worker
/// threads: under glibc's allocator they are a large share of CPU time, under mimalloc's
/// per-thread heaps they are not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::telemetry::init();
    let cli = api::cli::Cli::parse();
    let config = api::Config::from_env()?;
    api::cli::run(cli, config).await
}
