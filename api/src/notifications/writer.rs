//! Group commit for published events: concurrent `publishEvent` calls of one process are
//! written together, a batch per transaction, by a few writer tasks.
//!
//! Why: an event costs a dozen statements whatever its size (keys, contacts, users, settings,
//! the panel rows, the outbox), and on a 2-core machine the round trips and commits — not the
//! rows — are what limit throughput. A batch of fifty events costs the same dozen statements
//! as one. Nothing waits on a timer: a writer takes whatever is queued when it becomes free,
//! so an idle server writes each event at once and a busy one writes bigger batches.
//!
//! Each caller still gets its own answer: an input error (a contact of another account) is
//! reported to that caller alone, and should the batch's transaction fail, its events are
//! written again one by one so that one bad event cannot fail its neighbours.

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::fanout::{self, Pending, Published};
use crate::error::{ApiError, ApiResult};

/// Events written in one transaction at most.
const MAX_BATCH: usize = 128;

struct Job {
    pending: Pending,
    reply: oneshot::Sender<ApiResult<Published>>,
}

/// The queue in front of the writer tasks; cheap to clone.
#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<Job>,
}

impl EventWriter {
    /// Starts `writers` writer tasks (at least one) on the current runtime.
    pub fn start(db: DatabaseConnection, collapse_window: Duration, writers: usize) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(dispatch(db, collapse_window, rx, writers.max(1)));
        Self { tx }
    }

    /// Writes one checked event and fans it out; answers once its transaction committed.
    pub(crate) async fn submit(&self, pending: Pending) -> ApiResult<Published> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ApiError::Internal(anyhow::anyhow!("the event writer has stopped"));
        self.tx.send(Job { pending, reply }).await.map_err(|_| stopped())?;
        metrics::gauge!("herald_event_writer_queue").increment(1.0);
        answer.await.map_err(|_| stopped())?
    }
}

/// Hands queued jobs to free writers: a writer's permit is taken before the queue is
/// drained, so that while all writers are busy the next batch keeps growing.
async fn dispatch(db: DatabaseConnection, window: Duration, mut rx: mpsc::Receiver<Job>, writers: usize) {
    let permits = Arc::new(Semaphore::new(writers));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        // The next job and whatever is queued behind it.
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return;
        }
        metrics::gauge!("herald_event_writer_queue").decrement(jobs.len() as f64);
        let db = db.clone();
        tokio::spawn(async move {
            write(&db, window, jobs).await;
            drop(permit);
        });
    }
}

async fn write(db: &DatabaseConnection, window: Duration, jobs: Vec<Job>) {
    let (pending, replies): (Vec<Pending>, Vec<_>) = jobs.into_iter().map(|j| (j.pending, j.reply)).unzip();
    let results = match fanout::write_batch(db, window, &pending).await {
        Ok(results) => results,
        Err(e) if pending.len() > 1 => {
            tracing::warn!(error = %e, events = pending.len(), "a batch of events failed; writing them one by one");
            let mut results = Vec::with_capacity(pending.len());
            for one in pending.chunks(1) {
                results.push(match fanout::write_batch(db, window, one).await {
                    Ok(mut r) => r.pop().expect("one answer per event"),
                    Err(e) => Err(e),
                });
            }
            results
        }
        Err(e) => vec![Err(e)],
    };
    for (reply, result) in replies.into_iter().zip(results) {
        // A caller that went away (a closed HTTP request) still has its event written.
        let _ = reply.send(result);
    }
}
