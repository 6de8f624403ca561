//! Herald's worker: activity reminders and escalations, delivery of the outbox (emails and
//! texts), mailbox scans, and renewing mailboxes' OAuth2 sign-ins before they expire. It shares the api library's configuration, database and bus, so a worker
//! process and an api process agree on everything by construction.
//!
//! The loop is a thin shell around [`Worker::tick`], the one step "run what is due now",
//! which tests drive directly. Several workers may run at once on PostgreSQL (see
//! [`scheduler`] and [`delivery`] for how they share work); on SQLite run one.

pub mod compose;
pub mod delivery;
pub mod gauges;
pub mod mailsync;
pub mod scheduler;
pub mod sms;

use std::future::Future;

use api::{AppState, Config};
use chrono::Utc;
use futures_util::FutureExt;
use sea_orm::{ConnectionTrait, DbBackend};

/// Scheduler steps a worker runs side by side on PostgreSQL (SQLite has one writer).
const SCHEDULER_LANES: usize = 2;
/// OAuth2 grants a worker refreshes per step, soonest expiry first.
const GRANTS_PER_STEP: u64 = 50;
/// How often a worker samples the gauges of the work waiting ([`gauges`]).
const GAUGE_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Worker {
    state: AppState,
    courier: delivery::Courier,
}

/// What one tick did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub scheduled: scheduler::Scheduled,
    pub delivered: delivery::Delivered,
    pub synced: mailsync::Synced,
    pub grants: api::mailboxes::grant::Refreshed,
    /// Contact mapping error emails queued as their windows ended.
    pub reports: usize,
    /// Workflow runs started and the automatic actions they sent or turned into to-dos.
    pub workflows: api::workflows::send::Ran,
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

    /// Runs what is due now: reminders, escalations, the integration report windows and the
    /// workflow runs first (they queue emails and texts), then the outbox.
    pub async fn tick(&self) -> anyhow::Result<TickReport> {
        self.tick_at(Utc::now()).await
    }

    /// [`Self::tick`] as if it were `now`: tests move time forward with it instead of
    /// sleeping through intervals and back-offs.
    pub async fn tick_at(&self, now: chrono::DateTime<Utc>) -> anyhow::Result<TickReport> {
        let scheduled = scheduler::run(&self.state, now).await?;
        let reports = api::integrations::reports::close_due_windows(&self.state, now).await?;
        let workflows = api::workflows::send::run_due(&self.state, now).await?;
        let delivered = self.courier.run(now, None).await?;
        let grants = api::mailboxes::grant::refresh_due(&self.state, now, GRANTS_PER_STEP).await?;
        let synced = mailsync::run(&self.state, now).await?;
        Ok(TickReport { scheduled, delivered, synced, grants, reports, workflows })
    }

    /// Works until `shutdown` completes. The scheduler and the courier run side by side, so
    /// deliveries start with the first batch of reminders rather than after the last; the
    /// scheduler wakes the courier when it queues emails. Each loop goes again at once after a
    /// step that found work, else after the poll interval; a failed step is logged and tried
    /// again next period. Shutdown lets the running steps finish, so no claimed message is
    /// abandoned to its lease.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let queued = tokio::sync::Notify::new();
        let period = self.state.config.worker.poll_interval;
        // One batch of each kind per step, waking the courier after each. On PostgreSQL two
        // steps run side by side (their batches are taken `SKIP LOCKED`, so they never share
        // an activity): a step is mostly round trips to the database, and one alone leaves a
        // core idle while the courier waits for what it queues. The emails a step queues go
        // straight to this worker's courier, already claimed, while it has room for them
        // (`delivery::Handoff`).
        let lanes = if self.state.db.get_database_backend() == DbBackend::Postgres { SCHEDULER_LANES } else { 1 };
        let handoff = self.courier.handoff();
        let schedule = futures_util::future::join_all((0..lanes).map(|_| {
            repeat("scheduler", period, stopping.clone(), None, || async {
                let mut taken = 0;
                for kind in [scheduler::Kind::Reminder, scheduler::Kind::Escalation] {
                    let (done, n) = scheduler::step(&self.state, kind, Utc::now(), Some(&handoff)).await?;
                    if done.reminders + done.escalations > 0 {
                        queued.notify_one();
                    }
                    taken += n;
                }
                Ok(taken > 0)
            })
        }));
        let deliver = repeat("delivery", period, stopping.clone(), Some(&queued), || async {
            Ok(self.courier.run(Utc::now(), Some(&queued)).await? != delivery::Delivered::default())
        });
        let sync = repeat("mailbox sync", period, stopping.clone(), None, || async { Ok(mailsync::run(&self.state, Utc::now()).await?.mailboxes > 0) });
        let grants = repeat("grant refresh", period, stopping.clone(), None, || async {
            let done = api::mailboxes::grant::refresh_due(&self.state, Utc::now(), GRANTS_PER_STEP).await?;
            Ok(done.refreshed + done.revoked == GRANTS_PER_STEP as usize)
        });
        let reports = repeat("report windows", period, stopping.clone(), None, || async {
            let queued_now = api::integrations::reports::close_due_windows(&self.state, Utc::now()).await?;
            if queued_now > 0 {
                queued.notify_one();
            }
            Ok(queued_now > 0)
        });
        let workflows = repeat("workflow runs", period, stopping.clone(), None, || async {
            let ran = api::workflows::send::run_due(&self.state, Utc::now()).await?;
            if ran.sent > 0 {
                queued.notify_one();
            }
            Ok(false)
        });
        let sample = repeat("gauges", GAUGE_PERIOD, stopping.clone(), None, || async {
            gauges::sample(&self.state, Utc::now()).await?;
            Ok(false)
        });
        let work = async { tokio::join!(schedule, deliver, sync, grants, reports, workflows, sample) };
        tokio::pin!(work, shutdown);
        tokio::select! {
            _ = &mut work => {}
            _ = &mut shutdown => {
                let _ = stop.send(true);
                work.await;
            }
        }
        // What the scheduler handed over last, after the courier's last stream ended.
        if self.courier.has_handed() {
            if let Err(e) = self.courier.finish_handed().await {
                tracing::error!(error = format!("{e:#}"), "worker delivery of the last handed-over messages failed");
            }
        }
    }
}

/// Runs `step` until told to stop: again at once after work, else after `period` (or when
/// `wake` is notified).
async fn repeat<F, Fut>(name: &str, period: std::time::Duration, mut stop: tokio::sync::watch::Receiver<bool>, wake: Option<&tokio::sync::Notify>, step: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        // A step that panics is logged and tried again next period, as a failed one is: the
        // other loops of the worker go on meanwhile.
        let pause = match std::panic::AssertUnwindSafe(step()).catch_unwind().await {
            Ok(Ok(true)) => continue,
            Ok(Ok(false)) => period,
            Ok(Err(e)) => {
                tracing::error!(error = format!("{e:#}"), "worker {name} step failed");
                period
            }
            Err(panic) => {
                tracing::error!(panic = %panic_message(&*panic), "worker {name} step panicked");
                period
            }
        };
        let woken = async {
            match wake {
                Some(notify) => notify.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(pause) => {}
            _ = woken => {}
        }
    }
}

/// What a caught panic said, for the log and the message's `lastError`.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".into(),
    }
}

/// The runtime a worker process runs on: `config.worker.threads` threads
/// (`HERALD_WORKER_THREADS`, one by default).
pub fn runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(config.worker.threads).enable_all().build()
}

/// Connects (running migrations), serves `/metrics` and `/healthz` on
/// `config.worker.metrics_bind`, and works until `shutdown`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let metrics = match config.worker.metrics_bind {
        Some(bind) => Some(tokio::net::TcpListener::bind(bind).await.map_err(|e| anyhow::anyhow!("HERALD_WORKER_METRICS_BIND {bind}: {e}"))?),
        None => None,
    };
    let state = AppState::init(config).await?;
    if let Some(listener) = metrics {
        tracing::info!(address = %listener.local_addr()?, "worker metrics listening");
        tokio::spawn(serve_metrics(listener));
    }
    tracing::info!("Herald worker started");
    Worker::new(state).await?.run(shutdown).await;
    Ok(())
}

/// A worker process's own `/metrics` (Prometheus text) and `/healthz`.
pub async fn serve_metrics(listener: tokio::net::TcpListener) {
    use axum::{http::header, routing::get, Router};
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(|| async { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], api::server::metrics_handle().render()) }));
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "worker metrics server stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A step that panics is logged and run again next period; the loops beside it go on.
    #[tokio::test]
    async fn a_panicking_step_neither_ends_its_loop_nor_stalls_the_others() {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let (panicky, steady) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let period = std::time::Duration::from_millis(10);
        let first = repeat("panicky", period, stopping.clone(), None, || async {
            if panicky.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                panic!("a bug in one step");
            }
            Ok(false)
        });
        let second = repeat("steady", period, stopping, None, || async {
            if steady.fetch_add(1, Ordering::SeqCst) >= 10 {
                let _ = stop.send(true);
            }
            Ok(false)
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), async { tokio::join!(first, second) }).await.expect("both loops end when told");
        assert!(panicky.load(Ordering::SeqCst) >= 3, "the panicking step ran again after each panic");
        assert!(steady.load(Ordering::SeqCst) > 10);
    }
}
