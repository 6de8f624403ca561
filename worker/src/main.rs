/// mimalloc: Herald's request path makes many small, short-lived allocations across worker
/// threads: under glibc's allocator they are a large share of CPU time, under mimalloc's
/// per-thread heaps they are not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Herald's worker: reminders and escalations, delivery of the outbox, mailbox sync.
#[derive(clap::Parser)]
#[command(name = "worker", version, after_help = "Configuration is read from HERALD_* environment variables (docs/operations.md).")]
struct Args {}

fn main() -> anyhow::Result<()> {
    // Before anything else: `--help` and `--version` answer and exit, touching nothing.
    <Args as clap::Parser>::parse();
    api::telemetry::init();
    let config = api::Config::from_env()?;
    worker::runtime(&config)?.block_on(worker::run(config, api::shutdown_signal()))
}
