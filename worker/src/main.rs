/// mimalloc: Herald's request path makes many small, short-lived allocations across worker
/// threads, where glibc's allocator spent a quarter of the benchmark's CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    api::telemetry::init();
    let config = api::Config::from_env()?;
    // As many runtime threads as configured (`HERALD_WORKER_THREADS`, one by default).
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(config.worker.threads).enable_all().build()?;
    runtime.block_on(worker::run(config, api::shutdown_signal()))
}
