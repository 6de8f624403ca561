//! When an activity's reminder and escalation are due: the scheduler's plan, kept on the
//! activity row (`remind_at`, `escalate_at`) so the worker finds due work with an index range.
//!
//! Rules:
//! - reminder at `due − alert interval`, escalation at `due + late interval`;
//! - a completed activity has neither (and is never escalated);
//! - each is sent once per due time: `reminded_for`/`escalated_for` hold the due time it was
//!   sent for, so moving the due time plans a new one, and re-saving settings does not;
//! - an activity written with its due time already past is not reminded, and one written
//!   already past its escalation time is not escalated: whoever entered an overdue activity
//!   knows it is late, and an import of old activities must not flood the default persons.
//!   A change of the intervals, though, re-plans open activities and fires what has become
//!   due at once.

use chrono::{DateTime, Duration, Utc};
use entity::activity;
use sea_orm::{sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::error::ApiResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intervals {
    pub alert_hours: i32,
    pub late_hours: i32,
}

/// The facts about an activity the plan depends on.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    pub due_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub reminded_for: Option<DateTime<Utc>>,
    pub escalated_for: Option<DateTime<Utc>>,
}

impl From<&activity::Model> for Facts {
    fn from(a: &activity::Model) -> Self {
        Self { due_at: a.due_at, completed_at: a.completed_at, reminded_for: a.reminded_for, escalated_for: a.escalated_for }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub remind_at: Option<DateTime<Utc>>,
    pub escalate_at: Option<DateTime<Utc>>,
}

/// How a plan is being made: when the activity itself is written (skips what is already
/// past), or when the account's intervals change (keeps it, so it fires now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occasion {
    ActivityWritten,
    IntervalsChanged,
}

pub fn plan(facts: Facts, intervals: Intervals, now: DateTime<Utc>, occasion: Occasion) -> Plan {
    if facts.completed_at.is_some() {
        return Plan { remind_at: None, escalate_at: None };
    }
    let mut remind_at = (facts.reminded_for != Some(facts.due_at)).then(|| facts.due_at - Duration::hours(intervals.alert_hours.into()));
    let mut escalate_at = (facts.escalated_for != Some(facts.due_at)).then(|| facts.due_at + Duration::hours(intervals.late_hours.into()));
    // A reminder after the due time is pointless whatever the occasion.
    if facts.due_at <= now {
        remind_at = None;
    }
    if occasion == Occasion::ActivityWritten && escalate_at.is_some_and(|at| at <= now) {
        escalate_at = None;
    }
    Plan { remind_at, escalate_at }
}

/// Re-plans every open activity of the account after its intervals changed. Rows whose plan
/// is unchanged are not written.
pub async fn replan_account(db: &impl ConnectionTrait, account_id: Uuid, intervals: Intervals, now: DateTime<Utc>) -> ApiResult<usize> {
    const BATCH: u64 = 1000;
    let mut changed = 0;
    let mut after: Option<Uuid> = None;
    loop {
        let mut select = activity::Entity::find()
            .filter(activity::Column::AccountId.eq(account_id))
            .filter(activity::Column::CompletedAt.is_null())
            .filter(Expr::col(activity::Column::RemindAt).is_not_null().or(Expr::col(activity::Column::EscalateAt).is_not_null()).or(
                // Not yet escalated for its current due time: a longer late interval may
                // bring back an escalation that a shorter one had already made moot.
                Expr::col(activity::Column::EscalatedFor).is_null(),
            ))
            .order_by_asc(activity::Column::Id)
            .limit(BATCH);
        if let Some(id) = after {
            select = select.filter(activity::Column::Id.gt(id));
        }
        let rows = select.all(db).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        for row in &rows {
            let fresh = plan(Facts::from(row), intervals, now, Occasion::IntervalsChanged);
            if fresh.remind_at != row.remind_at || fresh.escalate_at != row.escalate_at {
                activity::Entity::update_many()
                    .col_expr(activity::Column::RemindAt, Expr::value(fresh.remind_at))
                    .col_expr(activity::Column::EscalateAt, Expr::value(fresh.escalate_at))
                    .filter(activity::Column::Id.eq(row.id))
                    .exec(db)
                    .await?;
                changed += 1;
            }
        }
        if (rows.len() as u64) < BATCH {
            break;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z").unwrap().with_timezone(&Utc) + Duration::hours(h)
    }
    const IV: Intervals = Intervals { alert_hours: 24, late_hours: 2 };

    fn open(due: DateTime<Utc>) -> Facts {
        Facts { due_at: due, completed_at: None, reminded_for: None, escalated_for: None }
    }

    #[test]
    fn plans_reminder_before_and_escalation_after_the_due_time() {
        let p = plan(open(at(48)), IV, at(0), Occasion::ActivityWritten);
        assert_eq!(p, Plan { remind_at: Some(at(24)), escalate_at: Some(at(50)) });
    }

    #[test]
    fn due_within_the_alert_interval_is_reminded_at_once() {
        let p = plan(open(at(3)), IV, at(0), Occasion::ActivityWritten);
        assert_eq!(p.remind_at, Some(at(-21)), "a past reminder time is due now");
    }

    #[test]
    fn completed_activities_have_no_plan() {
        let facts = Facts { completed_at: Some(at(0)), ..open(at(5)) };
        assert_eq!(plan(facts, IV, at(0), Occasion::ActivityWritten), Plan { remind_at: None, escalate_at: None });
    }

    #[test]
    fn sent_once_per_due_time() {
        let sent = Facts { reminded_for: Some(at(5)), escalated_for: Some(at(5)), ..open(at(5)) };
        assert_eq!(plan(sent, IV, at(0), Occasion::IntervalsChanged), Plan { remind_at: None, escalate_at: None });
        let moved = Facts { due_at: at(30), ..sent };
        assert_eq!(plan(moved, IV, at(0), Occasion::ActivityWritten), Plan { remind_at: Some(at(6)), escalate_at: Some(at(32)) });
    }

    #[test]
    fn overdue_when_written_is_not_escalated_but_a_settings_change_fires_it() {
        let overdue = open(at(-5));
        assert_eq!(plan(overdue, IV, at(0), Occasion::ActivityWritten), Plan { remind_at: None, escalate_at: None });
        assert_eq!(plan(overdue, IV, at(0), Occasion::IntervalsChanged), Plan { remind_at: None, escalate_at: Some(at(-3)) });
        let late_soon = open(at(-1));
        assert_eq!(plan(late_soon, IV, at(0), Occasion::ActivityWritten).escalate_at, Some(at(1)));
    }
}
