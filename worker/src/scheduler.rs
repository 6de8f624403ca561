//! Activity reminders and late-activity escalations, as planned on the activity rows
//! (`api::activities::plan`).
//!
//! One step takes a batch of activities whose reminder (or escalation) time has come, and in
//! one transaction records an event per activity (ACTIVITY_REMINDER to the owner, or
//! LATE_ACTIVITY to the default persons and the owner) through the fan-out, queues the emails
//! (to the owner; to each default person), and marks the activities done for their current
//! due time. Exactly once, with several workers: on PostgreSQL the batch is read `FOR UPDATE
//! SKIP LOCKED`, so two workers never take the same activity, and the mark commits with the
//! event; the event's idempotency key (activity, kind, due time) is a second lock on the door.
//! SQLite has one writer at a time and runs one worker.

use std::collections::{HashMap, HashSet};

use api::{
    activities::settings,
    notifications::{
        catalog::NotificationType,
        fanout::{self, AddressedEvent},
    },
    AppState,
};
use chrono::{DateTime, Utc};
use entity::{account, activity, outbox_message, user};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, Statement};
use uuid::Uuid;

use crate::{compose::ActivityData, delivery::Handoff};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Reminder,
    Escalation,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    pub reminders: usize,
    pub escalations: usize,
    /// Reminders dropped because the activity was already due when its turn came.
    pub skipped: usize,
}

/// Runs every reminder and escalation due by `now`, batch after batch.
pub async fn run(app: &AppState, now: DateTime<Utc>) -> anyhow::Result<Scheduled> {
    let mut total = Scheduled::default();
    for kind in [Kind::Reminder, Kind::Escalation] {
        loop {
            let (step, taken) = step(app, kind, now, None).await?;
            total.reminders += step.reminders;
            total.escalations += step.escalations;
            total.skipped += step.skipped;
            if (taken as u64) < app.config.worker.batch {
                break;
            }
        }
    }
    Ok(total)
}

/// One batch of one kind: answers what it did and how many activities it took. With a
/// `handoff`, the emails it queues go to that courier already claimed, when it has room.
pub async fn step(app: &AppState, kind: Kind, now: DateTime<Utc>, handoff: Option<&Handoff>) -> anyhow::Result<(Scheduled, usize)> {
    let txn = api::db::begin_write(&app.db).await?;
    let due = take_due(&txn, kind, now, app.config.worker.batch).await?;
    if due.is_empty() {
        return Ok((Scheduled::default(), 0));
    }

    let account_ids: HashSet<Uuid> = due.iter().map(|a| a.account_id).collect();
    let accounts: HashMap<Uuid, account::Model> =
        account::Entity::find().filter(account::Column::Id.is_in(account_ids.iter().copied())).all(&txn).await?.into_iter().map(|a| (a.id, a)).collect();
    let mut persons: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    if kind == Kind::Escalation {
        for account_id in &account_ids {
            persons.insert(*account_id, settings::load(&txn, *account_id).await?.default_person_ids);
        }
    }

    let mut report = Scheduled::default();
    let mut events = Vec::new();
    // Who gets an email about each event, by idempotency key.
    let mut emails: HashMap<String, Vec<Uuid>> = HashMap::new();
    for a in &due {
        if kind == Kind::Reminder && a.due_at <= now {
            report.skipped += 1;
            continue;
        }
        let Some(account) = accounts.get(&a.account_id) else { continue };
        // Paused accounts send nothing; their activities are marked so nothing piles up.
        if account.paused {
            report.skipped += 1;
            continue;
        }
        let tz: chrono_tz::Tz = account.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let due_local = a.due_at.with_timezone(&tz).format("%a %-d %b %Y, %H:%M %Z");
        let label = a.kind.label();
        let data = ActivityData { activity_id: a.id, kind: a.kind, title: a.title.clone(), due_at: a.due_at, owner_id: a.owner_id };
        let (notification, title, body, recipients, mailed) = match kind {
            Kind::Reminder => {
                (NotificationType::ActivityReminder, format!("{label} due soon: {}", a.title), format!("Due {due_local}"), vec![a.owner_id], vec![a.owner_id])
            }
            Kind::Escalation => {
                let defaults = persons.get(&a.account_id).cloned().unwrap_or_default();
                let mut everyone = defaults.clone();
                everyone.push(a.owner_id);
                (NotificationType::LateActivity, format!("Late: {}", a.title), format!("{label} was due {due_local} and is not completed"), everyone, defaults)
            }
        };
        let key = format!("activity:{}:{}:{}", a.id, if kind == Kind::Reminder { "reminder" } else { "escalation" }, a.due_at.timestamp_millis());
        emails.insert(key.clone(), mailed);
        events.push(AddressedEvent {
            kind: notification,
            account_id: a.account_id,
            contact_id: a.contact_id,
            title,
            body: Some(body),
            data: Some(serde_json::json!({ "activity": data })),
            action_url: None,
            occurred_at: now,
            idempotency_key: key,
            recipients,
            email: false,
        });
        match kind {
            Kind::Reminder => report.reminders += 1,
            Kind::Escalation => report.escalations += 1,
        }
    }

    let recorded = fanout::record_addressed(&txn, events).await?;
    // Emails only to users still active (a default person may have left since).
    let mailed: HashSet<Uuid> = emails.values().flatten().copied().collect();
    let mut active: HashSet<Uuid> = HashSet::new();
    for chunk in mailed.into_iter().collect::<Vec<_>>().chunks(1000) {
        let ids = api::db::id_in(txn.get_database_backend(), user::Column::Id, chunk.iter().copied());
        let found = user::Entity::find().filter(ids).filter(user::Column::Active.eq(true)).all(&txn).await?;
        active.extend(found.into_iter().map(|u| u.id));
    }
    let mut outbox: Vec<outbox_message::Model> = Vec::new();
    for event in &recorded.events {
        for user_id in emails.get(&event.idempotency_key).into_iter().flatten().filter(|u| active.contains(u)) {
            outbox.push(fanout::email_row(event, *user_id));
        }
    }
    let handed = handoff.is_some_and(|h| h.claim(&mut outbox));
    fanout::insert_outbox(&txn, &outbox).await?;

    txn.commit().await?;
    if let Some(handoff) = handoff.filter(|_| handed) {
        handoff.deliver(outbox);
    }
    api::notifications::announce(app, &recorded.notifications).await;
    metrics::counter!("herald_activity_alerts_total", "kind" => if kind == Kind::Reminder { "reminder" } else { "escalation" })
        .increment(recorded.events.len() as u64);
    Ok((report, due.len()))
}

/// Takes up to `limit` activities whose `kind` of alert is due by `now` and marks them done for
/// their current due time, in one statement: the rows come back as they are now (the alert
/// time cleared, `…_for` set to the due time). On PostgreSQL they are chosen
/// `FOR UPDATE SKIP LOCKED`, so that workers stepping together take different activities,
/// and the mark commits or rolls back with the events the step records.
async fn take_due(txn: &DatabaseTransaction, kind: Kind, now: DateTime<Utc>, limit: u64) -> anyhow::Result<Vec<activity::Model>> {
    let (at, done_for) = match kind {
        Kind::Reminder => ("remind_at", "reminded_for"),
        Kind::Escalation => ("escalate_at", "escalated_for"),
    };
    let backend = txn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "UPDATE activity SET {at} = NULL, {done_for} = due_at \
             WHERE id = ANY(ARRAY(SELECT id FROM activity WHERE {at} <= $1 AND completed_at IS NULL ORDER BY {at} LIMIT $2 FOR UPDATE SKIP LOCKED)) \
             RETURNING *"
        ),
        _ => format!(
            "UPDATE activity SET {at} = NULL, {done_for} = due_at \
             WHERE id IN (SELECT id FROM activity WHERE {at} <= ? AND completed_at IS NULL ORDER BY {at} LIMIT ?) \
             RETURNING *"
        ),
    };
    let statement = Statement::from_sql_and_values(backend, sql, [now.into(), (limit as i64).into()]);
    Ok(activity::Entity::find().from_raw_sql(statement).all(txn).await?)
}
