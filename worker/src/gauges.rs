//! What an operator watches of the work waiting in the database, sampled by each worker
//! process: the outbox's depth by state and the age of its oldest due message, and how far
//! behind the mailbox scans are. Counters of what was done (`herald_outbox_sent_total`,
//! `herald_mailbox_scans_total`, …) are recorded where it is done.
//!
//! Each query reads a partial index of the work still to do (migrations 000009, 000010), so
//! a sample stays cheap however much history the tables hold.

use chrono::{DateTime, Utc};
use entity::outbox_message::Status;
use sea_orm::{ConnectionTrait, Statement};

use api::AppState;

/// Sets the gauges from the database as of `now`.
pub async fn sample(app: &AppState, now: DateTime<Utc>) -> anyhow::Result<()> {
    let db = &app.db;
    let backend = db.get_database_backend();
    let depth = db
        .query_all(Statement::from_string(
            backend,
            "SELECT status, count(*) AS n, min(next_attempt_at) AS oldest FROM outbox_message WHERE status IN ('PENDING', 'SENDING') GROUP BY status",
        ))
        .await?;
    let (mut pending, mut sending, mut oldest_due) = (0i64, 0i64, None::<DateTime<Utc>>);
    for row in depth {
        let n: i64 = row.try_get("", "n")?;
        match row.try_get::<Status>("", "status")? {
            Status::Pending => {
                pending = n;
                oldest_due = row.try_get("", "oldest")?;
            }
            _ => sending = n,
        }
    }
    metrics::gauge!("herald_outbox_messages", "status" => "pending").set(pending as f64);
    metrics::gauge!("herald_outbox_messages", "status" => "sending").set(sending as f64);
    let overdue = oldest_due.filter(|t| *t <= now).map_or(0.0, |t| (now - t).num_milliseconds() as f64 / 1000.0);
    metrics::gauge!("herald_outbox_oldest_due_seconds").set(overdue);

    let lag = db
        .query_one(Statement::from_string(backend, "SELECT min(next_scan_at) AS due FROM mailbox WHERE scan_active AND next_scan_at IS NOT NULL"))
        .await?
        .map(|row| row.try_get::<Option<DateTime<Utc>>>("", "due"))
        .transpose()?
        .flatten();
    let behind = lag.filter(|t| *t <= now).map_or(0.0, |t| (now - t).num_milliseconds() as f64 / 1000.0);
    metrics::gauge!("herald_mailbox_scan_lag_seconds").set(behind);
    Ok(())
}
