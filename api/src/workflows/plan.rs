//! Customers in workflows and their planned actions (the actions list).
//!
//! Enrolling a customer plans one row per workflow action: its due date counts `delay_days`
//! from the enrollment date or from the previous action's due date; an action that can go out
//! on its own and is marked so is AUTOMATED and PLANNED, the others are MANUAL to-dos of the
//! customer's first assigned user. A due date on or before the account's last run moves to
//! the day after it: a run that has happened does not come back, and the next one sends it.
//!
//! Saving a workflow re-plans ([`replan`]) every active enrollment's actions not done yet;
//! correcting a customer's contacts turns its contact-related to-dos back into automatic
//! actions due the next business day ([`contacts_changed`]).

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::{
    account, contact, contact_assignee, enrollment,
    enrollment::Status as EnrollmentStatus,
    planned_action::{self, Status, Trigger},
    workflow_action::{self, DelayFrom},
};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::{calendar, definitions::Workflow};
use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// Why an automatic action became a to-do. The contact-related ones clear when the
/// customer's contacts are corrected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    NoContacts,
    NoMainContact,
    ContactInvalid,
    NoPosition,
    NoEmail,
    NoPhone,
    NoAddress,
    NoSender,
}

impl Fallback {
    pub fn code(self) -> &'static str {
        match self {
            Fallback::NoContacts => "NO_CONTACTS",
            Fallback::NoMainContact => "NO_MAIN_CONTACT",
            Fallback::ContactInvalid => "CONTACT_INVALID",
            Fallback::NoPosition => "NO_POSITION",
            Fallback::NoEmail => "NO_EMAIL",
            Fallback::NoPhone => "NO_PHONE",
            Fallback::NoAddress => "NO_ADDRESS",
            Fallback::NoSender => "NO_SENDER",
        }
    }

    pub fn about_contacts(code: &str) -> bool {
        code != Fallback::NoSender.code()
    }
}

/// The due dates of a workflow's actions for an enrollment on `enrolled_on`, in order;
/// `fixed` holds the due dates of actions already done (they anchor the ones after them).
pub fn due_dates(actions: &[workflow_action::Model], enrolled_on: NaiveDate, fixed: &HashMap<Uuid, NaiveDate>) -> Vec<NaiveDate> {
    let mut previous = enrolled_on;
    actions
        .iter()
        .map(|a| {
            let due = match fixed.get(&a.id) {
                Some(d) => *d,
                None => {
                    let base = match a.delay_from {
                        DelayFrom::Enrollment => enrolled_on,
                        DelayFrom::PreviousAction => previous,
                    };
                    base + Duration::days(a.delay_days as i64)
                }
            };
            previous = due;
            due
        })
        .collect()
}

fn trigger_of(a: &workflow_action::Model) -> Trigger {
    if a.send_automatically && a.kind.can_send_automatically() {
        Trigger::Automated
    } else {
        Trigger::Manual
    }
}

/// The customer's first assigned user, if any.
pub async fn first_assignee(db: &impl ConnectionTrait, contact_id: Uuid) -> ApiResult<Option<Uuid>> {
    Ok(contact_assignee::Entity::find()
        .filter(contact_assignee::Column::ContactId.eq(contact_id))
        .order_by_asc(contact_assignee::Column::Position)
        .one(db)
        .await?
        .map(|a| a.user_id))
}

/// The first date a new automatic action may fall due: the day after the last run.
async fn open_from(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<Option<NaiveDate>> {
    Ok(calendar::last_run(db, account_id).await?.and_then(|d| d.succ_opt()))
}

fn new_row(e: &enrollment::Model, a: &workflow_action::Model, due_on: NaiveDate, assignee: Option<Uuid>, now: DateTime<Utc>) -> planned_action::Model {
    let trigger = trigger_of(a);
    planned_action::Model {
        id: Uuid::now_v7(),
        account_id: e.account_id,
        enrollment_id: e.id,
        workflow_id: e.workflow_id,
        action_id: Some(a.id),
        contact_id: e.contact_id,
        position: a.position,
        kind: a.kind,
        trigger,
        status: if trigger == Trigger::Automated { Status::Planned } else { Status::Todo },
        due_on,
        assignee_id: assignee,
        sender_user_id: None,
        todo_reason: None,
        fallback: None,
        from_address: None,
        recipients: None,
        subject: None,
        body: None,
        outbox_message_id: None,
        document_id: None,
        billing: a.billing,
        done_at: None,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// Plans (or re-plans) an enrollment's actions not yet done against `actions`.
async fn plan_enrollment(db: &impl ConnectionTrait, e: &enrollment::Model, actions: &[workflow_action::Model], now: DateTime<Utc>) -> ApiResult<()> {
    let rows = planned_action::Entity::find().filter(planned_action::Column::EnrollmentId.eq(e.id)).all(db).await?;
    let done = |r: &planned_action::Model| matches!(r.status, Status::Sent | Status::Failed | Status::Cancelled) || r.done_at.is_some();
    let fixed: HashMap<Uuid, NaiveDate> = rows.iter().filter(|r| done(r)).filter_map(|r| r.action_id.map(|a| (a, r.due_on))).collect();
    let open_from = open_from(db, e.account_id).await?;
    let assignee = first_assignee(db, e.contact_id).await?;
    let dues = due_dates(actions, e.enrolled_on, &fixed);
    let mut pending: HashMap<Uuid, planned_action::Model> = rows.iter().filter(|r| !done(r)).filter_map(|r| r.action_id.map(|a| (a, r.clone()))).collect();
    let mut inserts = Vec::new();
    for (a, due) in actions.iter().zip(dues) {
        if fixed.contains_key(&a.id) {
            continue;
        }
        let due = match open_from {
            Some(open) if due < open => open,
            _ => due,
        };
        match pending.remove(&a.id) {
            Some(row) => {
                let trigger = trigger_of(a);
                // A contact-related to-do stays one until the contacts change; anything else
                // follows the action as it now is.
                let keep_todo = row.fallback.is_some() && trigger == Trigger::Automated && row.due_on <= due;
                let mut after = row.clone();
                after.position = a.position;
                after.kind = a.kind;
                after.billing = a.billing;
                if !keep_todo {
                    after.trigger = trigger;
                    after.status = if trigger == Trigger::Automated { Status::Planned } else { Status::Todo };
                    after.due_on = due;
                    after.fallback = None;
                    after.todo_reason = None;
                }
                if after != row {
                    after.version += 1;
                    after.updated_at = now;
                    planned_action::Entity::update(after.into_active_model().reset_all()).exec(db).await?;
                }
            }
            None => inserts.push(new_row(e, a, due, assignee, now)),
        }
    }
    crate::db::insert_all::<planned_action::Entity>(db, &inserts).await?;
    // Actions deleted from the workflow: what was still to do is cancelled.
    let cancelled: Vec<Uuid> = pending.values().map(|r| r.id).collect();
    if !cancelled.is_empty() {
        planned_action::Entity::update_many()
            .col_expr(planned_action::Column::Status, sea_orm::sea_query::Expr::value(Status::Cancelled))
            .col_expr(planned_action::Column::DoneAt, sea_orm::sea_query::Expr::value(now))
            .col_expr(planned_action::Column::UpdatedAt, sea_orm::sea_query::Expr::value(now))
            .filter(planned_action::Column::Id.is_in(cancelled))
            .exec(db)
            .await?;
    }
    // Rows of actions deleted earlier (action_id cleared by the foreign key) go the same way.
    planned_action::Entity::update_many()
        .col_expr(planned_action::Column::Status, sea_orm::sea_query::Expr::value(Status::Cancelled))
        .col_expr(planned_action::Column::DoneAt, sea_orm::sea_query::Expr::value(now))
        .filter(planned_action::Column::EnrollmentId.eq(e.id))
        .filter(planned_action::Column::ActionId.is_null())
        .filter(planned_action::Column::Status.is_in([Status::Planned, Status::Todo]))
        .exec(db)
        .await?;
    Ok(())
}

/// Re-plans every active enrollment of `workflow` (its actions as just saved).
pub async fn replan(db: &impl ConnectionTrait, workflow: &Workflow, now: DateTime<Utc>) -> ApiResult<()> {
    let enrollments = enrollment::Entity::find()
        .filter(enrollment::Column::WorkflowId.eq(workflow.row.id))
        .filter(enrollment::Column::Status.eq(EnrollmentStatus::Active))
        .all(db)
        .await?;
    for e in &enrollments {
        plan_enrollment(db, e, &workflow.actions, now).await?;
    }
    Ok(())
}

/// Puts a customer (or lead) into an active workflow from `on` (default: today in the
/// account's time zone) and plans its actions (company admins, WRITE keys).
pub async fn enroll(app: &AppState, caller: &Caller, workflow_id: Uuid, contact_id: Uuid, on: Option<NaiveDate>) -> ApiResult<enrollment::Model> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let workflow = super::definitions::find(change.db(), caller.account_id, workflow_id).await.map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::bad_input("input.workflowId", "workflow not found"),
        e => e,
    })?;
    if !workflow.row.active {
        return Err(ApiError::bad_input("input.workflowId", "the workflow is not active"));
    }
    contact::Entity::find_by_id(contact_id)
        .filter(contact::Column::AccountId.eq(caller.account_id))
        .one(change.db())
        .await?
        .ok_or_else(|| ApiError::bad_input("input.contactId", "contact not found"))?;
    let account = account::Entity::find_by_id(caller.account_id).one(change.db()).await?.ok_or(ApiError::NotFound("account"))?;
    let (cal, _) = calendar::load(change.db(), &account).await?;
    let now = Utc::now();
    let row = enrollment::Model {
        id: Uuid::now_v7(),
        account_id: caller.account_id,
        workflow_id,
        contact_id,
        enrolled_on: on.unwrap_or_else(|| cal.today(now)),
        status: EnrollmentStatus::Active,
        created_at: now,
        ended_at: None,
    };
    let row = row.into_active_model().reset_all().insert(change.db()).await.map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ApiError::Conflict("the customer is in this workflow already".into()),
        _ => e.into(),
    })?;
    plan_enrollment(change.db(), &row, &workflow.actions, now).await?;
    change.record(caller.account_id, "enrollment.created", "Enrollment", row.id, None::<&()>, Some(&row)).await?;
    change.commit().await?;
    Ok(row)
}

/// Takes a customer out of a workflow: its actions not done are cancelled.
pub async fn unenroll(app: &AppState, caller: &Caller, enrollment_id: Uuid) -> ApiResult<enrollment::Model> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let before = enrollment::Entity::find_by_id(enrollment_id)
        .filter(enrollment::Column::AccountId.eq(caller.account_id))
        .one(change.db())
        .await?
        .ok_or(ApiError::NotFound("enrollment"))?;
    if before.status == EnrollmentStatus::Ended {
        return Ok(before);
    }
    let now = Utc::now();
    let mut after = before.clone();
    after.status = EnrollmentStatus::Ended;
    after.ended_at = Some(now);
    let after = enrollment::Entity::update(after.into_active_model().reset_all()).exec(change.db()).await?;
    planned_action::Entity::update_many()
        .col_expr(planned_action::Column::Status, sea_orm::sea_query::Expr::value(Status::Cancelled))
        .col_expr(planned_action::Column::DoneAt, sea_orm::sea_query::Expr::value(now))
        .col_expr(planned_action::Column::UpdatedAt, sea_orm::sea_query::Expr::value(now))
        .filter(planned_action::Column::EnrollmentId.eq(enrollment_id))
        .filter(planned_action::Column::Status.is_in([Status::Planned, Status::Todo]))
        .exec(change.db())
        .await?;
    change.record(caller.account_id, "enrollment.ended", "Enrollment", enrollment_id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}

/// Marks a to-do done (a call made, a task finished, an email sent by hand): by the user whose
/// to-do it is, company admins, or WRITE keys. It then counts as a manual action of whoever
/// did it (the assignee, for a key).
pub async fn complete(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<planned_action::Model> {
    let mut change = Change::begin(app, caller).await?;
    let before = planned_action::Entity::find_by_id(id)
        .filter(planned_action::Column::AccountId.eq(caller.account_id))
        .one(change.db())
        .await?
        .ok_or(ApiError::NotFound("planned action"))?;
    let own = before.assignee_id.is_some() && caller.user_id() == before.assignee_id;
    if !own {
        caller.require_admin_or_write_key()?;
    }
    if before.status != Status::Todo {
        return Err(ApiError::Conflict(format!("only a to-do can be completed; this one is {:?}", before.status)));
    }
    let now = Utc::now();
    let mut after = before.clone();
    after.status = Status::Sent;
    after.trigger = Trigger::Manual;
    after.done_at = Some(now);
    after.sender_user_id = caller.user_id().or(before.assignee_id);
    after.version += 1;
    after.updated_at = now;
    let after = planned_action::Entity::update(after.into_active_model().reset_all()).exec(change.db()).await?;
    change.record(caller.account_id, "planned_action.completed", "PlannedAction", id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}

/// After a customer's contacts changed (in the same transaction): each automatic action that
/// became a to-do for want of a contact, an address, a phone or a position is automatic
/// again, due the next business day, if its recipients now resolve. (Sender to-dos wait for a
/// change of the workflow or the assignees.)
pub async fn contacts_changed(db: &impl ConnectionTrait, account_id: Uuid, contact_id: Uuid, now: DateTime<Utc>) -> ApiResult<u64> {
    let todos = planned_action::Entity::find()
        .filter(planned_action::Column::ContactId.eq(contact_id))
        .filter(planned_action::Column::Status.eq(Status::Todo))
        .filter(planned_action::Column::Fallback.is_not_null())
        .all(db)
        .await?;
    let todos: Vec<_> = todos.into_iter().filter(|r| r.fallback.as_deref().is_some_and(Fallback::about_contacts)).collect();
    if todos.is_empty() {
        return Ok(0);
    }
    let account = account::Entity::find_by_id(account_id).one(db).await?.ok_or(ApiError::NotFound("account"))?;
    let (cal, _) = calendar::load(db, &account).await?;
    let next = cal.business_day_from(cal.today(now).succ_opt().unwrap_or_else(|| cal.today(now)));
    let persons = super::send::persons_of(db, contact_id).await?;
    let mut regenerated = 0;
    for row in todos {
        let Some(action_id) = row.action_id else { continue };
        let Some(action) = workflow_action::Entity::find_by_id(action_id).one(db).await? else { continue };
        if super::send::recipients_for(&action, &persons).is_err() {
            continue;
        }
        let mut after = row.clone();
        after.trigger = Trigger::Automated;
        after.status = Status::Planned;
        after.fallback = None;
        after.todo_reason = None;
        after.due_on = next;
        after.version += 1;
        after.updated_at = now;
        planned_action::Entity::update(after.into_active_model().reset_all()).exec(db).await?;
        regenerated += 1;
    }
    Ok(regenerated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::workflow_action::{Kind, Recipients};

    fn action(delay: i32, from: DelayFrom) -> workflow_action::Model {
        workflow_action::Model {
            id: Uuid::now_v7(),
            account_id: Uuid::nil(),
            workflow_id: Uuid::nil(),
            position: 0,
            kind: Kind::Email,
            name: "a".into(),
            delay_days: delay,
            delay_from: from,
            subject_template: None,
            body_template: None,
            recipients: Recipients::MainContact,
            recipient_position: None,
            send_automatically: true,
            sender: None,
            sender_user_id: None,
            sender_group_id: None,
            billing: false,
        }
    }

    #[test]
    fn delays_count_from_the_enrollment_or_the_previous_action() {
        let on = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let actions = vec![
            action(0, DelayFrom::Enrollment),
            action(7, DelayFrom::PreviousAction),
            action(3, DelayFrom::Enrollment),
            action(2, DelayFrom::PreviousAction),
        ];
        let dues = due_dates(&actions, on, &HashMap::new());
        let days: Vec<u32> = dues.iter().map(chrono::Datelike::day).collect();
        assert_eq!(days, vec![1, 8, 4, 6]);
        // A done action anchors the next ones at its real date.
        let fixed = HashMap::from([(actions[1].id, NaiveDate::from_ymd_opt(2026, 12, 10).unwrap())]);
        let days: Vec<u32> = due_dates(&actions, on, &fixed).iter().map(chrono::Datelike::day).collect();
        assert_eq!(days, vec![1, 10, 4, 6]);
    }
}
