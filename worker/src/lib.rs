//! Herald's worker: activity reminders and escalations, and delivery of the outbox (emails
//! and texts). It shares the api library's configuration, database and bus, so a worker
//! process and an api process agree on everything by construction.
//!
//! The loop is a thin shell around [`Worker::tick`], the one step "run what is due now",
//! which tests drive directly. Several workers may run at once on PostgreSQL (see
//! [`scheduler`] and [`delivery`] for how they share work); on SQLite run one.

pub mod compose;
pub mod delivery;
pub mod scheduler;
pub mod sms;

use std::future::Future;

use api::{AppState, Config};
use chrono::Utc;

pub struct Worker {
    state: AppState,
    courier: delivery::Courier,
}

/// What one tick did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub scheduled: scheduler::Scheduled,
    pub delivered: delivery::Delivered,
}

impl TickReport {
    pub fn did_work(&self) -> bool {
        *self != Self::default()
    }
}

impl Worker {
    pub async fn new(state: AppState) -> anyhow::Result<Self> {
        Ok(Self { courier: delivery::Courier::new(state.clone()).await?, state })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs what is due now: reminders and escalations first (they queue emails), then the
    /// outbox.
    pub async fn tick(&self) -> anyhow::Result<TickReport> {
        self.tick_at(Utc::now()).await
    }

    /// [`Self::tick`] as if it were `now`: tests move time forward with it instead of
    /// sleeping through intervals and back-offs.
    pub async fn tick_at(&self, now: chrono::DateTime<Utc>) -> anyhow::Result<TickReport> {
        let scheduled = scheduler::run(&self.state, now).await?;
        // What the scheduler just queued is due at its own clock reading, a moment after `now`.
        let delivered = self.courier.run(now.max(Utc::now())).await?;
        Ok(TickReport { scheduled, delivered })
    }

    /// Ticks until `shutdown` completes: at once again after a tick that found work, else
    /// after the poll interval. A failed tick is logged and retried next period. Shutdown
    /// waits for the running tick, so no claimed message is abandoned to its lease.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let period = self.state.config.worker.poll_interval;
        loop {
            let pause = match self.tick().await {
                Ok(report) if report.did_work() => {
                    tracing::debug!(?report, "worker tick");
                    std::time::Duration::ZERO
                }
                Ok(_) => period,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "worker tick failed");
                    period
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Connects (running migrations) and works until `shutdown`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let state = AppState::init(config).await?;
    tracing::info!("Herald worker started");
    Worker::new(state).await?.run(shutdown).await;
    Ok(())
}
