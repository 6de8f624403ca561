/// mimalloc: Herald's request path makes many small, short-lived allocations across worker
/// threads, where glibc's allocator spent a quarter of the benchmark's CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    api::telemetry::init();
    let config = api::Config::from_env()?;
    worker::runtime(&config)?.block_on(worker::run(config, api::shutdown_signal()))
}
