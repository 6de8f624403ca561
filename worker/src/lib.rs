//! Herald's worker: the background side (deliveries, reminders, escalations and mailbox
//! sync arrive with their issues). It shares the api library's configuration, database and
//! bus, so a worker process and an api process agree on everything by construction.
//!
//! The loop is a thin shell around [`Worker::tick`], the one step "run what is due now",
//! which tests drive directly.

use std::{future::Future, time::Duration};

use api::{AppState, Config};

pub struct Worker {
    state: AppState,
    period: Duration,
}

/// What one tick did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub jobs_run: usize,
}

impl Worker {
    pub fn new(state: AppState) -> Self {
        Self { state, period: Duration::from_secs(1) }
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs what is due now. The foundation has no job kinds yet: deliveries, reminders
    /// and mailbox sync add theirs here.
    pub async fn tick(&self) -> anyhow::Result<TickReport> {
        Ok(TickReport::default())
    }

    /// Ticks until `shutdown` completes; a failed tick is logged and retried next period.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut interval = tokio::time::interval(self.period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = interval.tick() => {
                    if let Err(e) = self.tick().await {
                        tracing::error!(error = format!("{e:#}"), "worker tick failed");
                    }
                }
            }
        }
    }
}

/// Connects (running migrations) and works until `shutdown`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let state = AppState::init(config).await?;
    tracing::info!("Herald worker started");
    Worker::new(state).run(shutdown).await;
    Ok(())
}
