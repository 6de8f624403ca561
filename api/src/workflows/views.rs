//! The actions list (seeds/003, Actions > All): planned, sent, to-do, failed and cancelled
//! actions of the account's workflows, filtered; automated ones are marked by their trigger.

use chrono::NaiveDate;
use entity::planned_action::{self, Kind, Status, Trigger};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{auth::Caller, error::ApiResult};

#[derive(Debug, Default)]
pub struct ActionFilter {
    pub trigger: Option<Trigger>,
    pub statuses: Vec<Status>,
    pub kind: Option<Kind>,
    pub contact_id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub due_from: Option<NaiveDate>,
    pub due_to: Option<NaiveDate>,
}

/// The account's planned actions that pass `filter` (users of the account, READ keys).
pub fn list(caller: &Caller, filter: ActionFilter) -> ApiResult<sea_orm::Select<planned_action::Entity>> {
    caller.require_read()?;
    let mut select = planned_action::Entity::find().filter(planned_action::Column::AccountId.eq(caller.account_id));
    if let Some(t) = filter.trigger {
        select = select.filter(planned_action::Column::Trigger.eq(t));
    }
    if !filter.statuses.is_empty() {
        select = select.filter(planned_action::Column::Status.is_in(filter.statuses));
    }
    if let Some(k) = filter.kind {
        select = select.filter(planned_action::Column::Kind.eq(k));
    }
    if let Some(c) = filter.contact_id {
        select = select.filter(planned_action::Column::ContactId.eq(c));
    }
    if let Some(w) = filter.workflow_id {
        select = select.filter(planned_action::Column::WorkflowId.eq(w));
    }
    if let Some(a) = filter.assignee_id {
        select = select.filter(planned_action::Column::AssigneeId.eq(a));
    }
    if let Some(d) = filter.due_from {
        select = select.filter(planned_action::Column::DueOn.gte(d));
    }
    if let Some(d) = filter.due_to {
        select = select.filter(planned_action::Column::DueOn.lte(d));
    }
    Ok(select)
}

/// A customer's communications, newest first: what was sent or done (and what failed), each
/// with its trigger, kind, actual `From:`, recipients and content (users of the account,
/// READ keys).
pub fn timeline(caller: &Caller, contact_id: Uuid) -> ApiResult<sea_orm::Select<planned_action::Entity>> {
    caller.require_read()?;
    Ok(planned_action::Entity::find()
        .filter(planned_action::Column::AccountId.eq(caller.account_id))
        .filter(planned_action::Column::ContactId.eq(contact_id))
        .filter(planned_action::Column::Status.is_in([Status::Sent, Status::Failed])))
}

/// The periods of the team activity dashboard.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    /// Monday to Sunday.
    Week,
    Month,
}

impl Period {
    /// The first day of the period `day` is in.
    pub fn start(self, day: NaiveDate) -> NaiveDate {
        use chrono::Datelike;
        match self {
            Period::Day => day,
            Period::Week => day - chrono::Duration::days(day.weekday().num_days_from_monday() as i64),
            Period::Month => day.with_day(1).unwrap_or(day),
        }
    }
}

/// One line of the team activity dashboard: a user's done actions of a kind in a period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    pub user_id: Uuid,
    pub period_start: NaiveDate,
    pub kind: Kind,
    pub automated: i64,
    pub manual: i64,
}

/// Per user, period (in the account's time zone) and kind: automated and manual actions done
/// between `from` and `to` (local dates, inclusive). Billing emails are left out (seeds/003).
/// Company admins and READ keys.
pub async fn team_activity(db: &impl sea_orm::ConnectionTrait, caller: &Caller, period: Period, from: NaiveDate, to: NaiveDate) -> ApiResult<Vec<Activity>> {
    use std::collections::BTreeMap;
    caller.require_admin_or_read_key()?;
    if to < from || (to - from).num_days() > 366 {
        return Err(crate::error::ApiError::bad_input("to", "a range of at most a year, `to` not before `from`"));
    }
    let account = entity::account::Entity::find_by_id(caller.account_id).one(db).await?.ok_or(crate::error::ApiError::NotFound("account"))?;
    let tz: chrono_tz::Tz = account.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = |d: NaiveDate| tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()).earliest().map(|t| t.with_timezone(&chrono::Utc));
    use chrono::TimeZone;
    let (Some(start), Some(end)) = (local(from), to.succ_opt().and_then(local)) else { return Ok(Vec::new()) };
    let rows = planned_action::Entity::find()
        .filter(planned_action::Column::AccountId.eq(caller.account_id))
        .filter(planned_action::Column::Status.eq(Status::Sent))
        .filter(planned_action::Column::Billing.eq(false))
        .filter(planned_action::Column::DoneAt.gte(start))
        .filter(planned_action::Column::DoneAt.lt(end))
        .all(db)
        .await?;
    let mut counts: BTreeMap<(Uuid, NaiveDate, String), Activity> = BTreeMap::new();
    for r in rows {
        let (Some(user), Some(done)) = (r.sender_user_id.or(r.assignee_id), r.done_at) else { continue };
        let day = done.with_timezone(&tz).date_naive();
        let key = (user, period.start(day), format!("{:?}", r.kind));
        let line = counts.entry(key).or_insert(Activity { user_id: user, period_start: period.start(day), kind: r.kind, automated: 0, manual: 0 });
        match r.trigger {
            Trigger::Automated => line.automated += 1,
            Trigger::Manual => line.manual += 1,
        }
    }
    Ok(counts.into_values().collect())
}
