//! The all-in-one server: API and worker in one process, on embedded defaults.

/// mimalloc: Herald's request path makes many small, short-lived allocations across worker
/// threads: under glibc's allocator they are a large share of CPU time, under mimalloc's
/// per-thread heaps they are not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The all-in-one Herald server: the GraphQL API and the worker in one process.
#[derive(clap::Parser)]
#[command(
    name = "herald",
    version,
    after_help = "Configuration is read from HERALD_* environment variables (docs/operations.md); on a new \
                  embedded database the first account and its admin's token are printed."
)]
struct Args {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else: `--help` and `--version` answer and exit, touching nothing.
    <Args as clap::Parser>::parse();
    api::telemetry::init();
    let config = api::Config::from_env()?;
    herald::run(config, api::shutdown_signal()).await
}
