//! Workflows and their actions (company admins and WRITE keys change them; anyone of the
//! account reads them). A workflow is saved whole: its name, whether it is active, and its
//! ordered actions, validated together (every error names `input.actions[i].<field>`),
//! against `expectedVersion`, audited. Saving re-plans the actions not yet done of every
//! customer in it ([`super::plan::replan`]).

use std::collections::HashSet;

use chrono::Utc;
use entity::{
    user, user_group, workflow,
    workflow_action::{self, DelayFrom, Kind, Recipients, Sender},
};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use super::{plan, templates};
use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

/// Actions per workflow, at most.
pub const MAX_ACTIONS: usize = 100;
/// The longest delay: ten years.
pub const MAX_DELAY_DAYS: i32 = 3650;

/// A workflow with its actions in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workflow {
    pub row: workflow::Model,
    pub actions: Vec<workflow_action::Model>,
}

/// One action as a save asks for it; `id` keeps an existing action (and its planned rows).
#[derive(Clone, Debug)]
pub struct ActionInput {
    pub id: Option<Uuid>,
    pub kind: Kind,
    pub name: String,
    pub delay_days: i32,
    pub delay_from: DelayFrom,
    pub subject_template: Option<String>,
    pub body_template: Option<String>,
    pub recipients: Recipients,
    pub recipient_position: Option<String>,
    pub send_automatically: bool,
    pub sender: Option<Sender>,
    pub sender_user_id: Option<Uuid>,
    pub sender_group_id: Option<Uuid>,
    pub billing: bool,
}

#[derive(Clone, Debug)]
pub struct WorkflowInput {
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    pub actions: Vec<ActionInput>,
}

pub async fn list(db: &impl ConnectionTrait, caller: &Caller) -> ApiResult<Vec<Workflow>> {
    caller.require_read()?;
    let rows = workflow::Entity::find().filter(workflow::Column::AccountId.eq(caller.account_id)).order_by_asc(workflow::Column::Name).all(db).await?;
    let mut actions = workflow_action::Entity::find()
        .filter(workflow_action::Column::AccountId.eq(caller.account_id))
        .order_by_asc(workflow_action::Column::Position)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mine = actions.iter().filter(|a| a.workflow_id == row.id).cloned().collect();
            actions.retain(|a| a.workflow_id != row.id);
            Workflow { row, actions: mine }
        })
        .collect())
}

pub async fn find(db: &impl ConnectionTrait, account_id: Uuid, id: Uuid) -> ApiResult<Workflow> {
    let row = workflow::Entity::find_by_id(id).filter(workflow::Column::AccountId.eq(account_id)).one(db).await?.ok_or(ApiError::NotFound("workflow"))?;
    let actions =
        workflow_action::Entity::find().filter(workflow_action::Column::WorkflowId.eq(id)).order_by_asc(workflow_action::Column::Position).all(db).await?;
    Ok(Workflow { row, actions })
}

pub async fn get(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<Workflow> {
    caller.require_read()?;
    find(db, caller.account_id, id).await
}

/// Checks every action; answers the actions as they will be stored (ids kept or new).
async fn checked_actions(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    workflow_id: Uuid,
    existing: &[workflow_action::Model],
    input: &[ActionInput],
) -> ApiResult<Vec<workflow_action::Model>> {
    if input.len() > MAX_ACTIONS {
        return Err(ApiError::bad_input("input.actions", format!("at most {MAX_ACTIONS} actions")));
    }
    let mut ids = HashSet::new();
    let mut out = Vec::with_capacity(input.len());
    for (i, a) in input.iter().enumerate() {
        let field = |name: &str| format!("input.actions[{i}].{name}");
        let name = validate::name(&field("name"), &a.name)?;
        if !(0..=MAX_DELAY_DAYS).contains(&a.delay_days) {
            return Err(ApiError::bad_input(field("delayDays"), format!("from 0 to {MAX_DELAY_DAYS} days")));
        }
        let id = match a.id {
            Some(id) if existing.iter().any(|e| e.id == id) => id,
            Some(_) => return Err(ApiError::bad_input(field("id"), "not an action of this workflow (leave it out for a new action)")),
            None => Uuid::now_v7(),
        };
        if !ids.insert(id) {
            return Err(ApiError::bad_input(field("id"), "the same action twice"));
        }
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        let (subject, body) = (text(&a.subject_template), text(&a.body_template));
        match a.kind {
            Kind::Email if subject.is_none() => return Err(ApiError::bad_input(field("subjectTemplate"), "an email needs a subject")),
            Kind::Email | Kind::Sms | Kind::Letter if body.is_none() => {
                return Err(ApiError::bad_input(field("bodyTemplate"), format!("a {:?} needs a body", a.kind)))
            }
            _ => {}
        }
        if let Some(s) = &subject {
            templates::check(&field("subjectTemplate"), s)?;
        }
        if let Some(b) = &body {
            templates::check(&field("bodyTemplate"), b)?;
        }
        let position = match a.recipients {
            Recipients::Position => Some(
                validate::optional_text(&field("recipientPosition"), a.recipient_position.as_deref())?
                    .ok_or_else(|| ApiError::bad_input(field("recipientPosition"), "name the position the contacts must have"))?,
            ),
            _ => None,
        };
        if a.send_automatically && !a.kind.can_send_automatically() {
            return Err(ApiError::bad_input(
                field("sendAutomatically"),
                format!("a {:?} is done by a person: only emails, texts and letters go out automatically", a.kind),
            ));
        }
        if a.billing && a.kind != Kind::Email {
            return Err(ApiError::bad_input(field("billing"), "only emails are billing emails"));
        }
        // The sender: required to send automatically, and it must be the account's.
        let (mut sender_user, mut sender_group) = (None, None);
        match (a.send_automatically, a.sender) {
            (true, None) => {
                return Err(ApiError::bad_input(field("sender"), "an automatic action needs a sender: USER, GROUP_ALL, GROUP_ASSIGNED or ASSIGNED_USER"))
            }
            (_, Some(Sender::User)) => {
                let id = a.sender_user_id.ok_or_else(|| ApiError::bad_input(field("senderUserId"), "name the user who sends it"))?;
                user::Entity::find_by_id(id)
                    .filter(user::Column::AccountId.eq(account_id))
                    .one(db)
                    .await?
                    .ok_or_else(|| ApiError::bad_input(field("senderUserId"), "not a user of this account"))?;
                sender_user = Some(id);
            }
            (_, Some(Sender::GroupAll | Sender::GroupAssigned)) => {
                let id = a.sender_group_id.ok_or_else(|| ApiError::bad_input(field("senderGroupId"), "name the group that sends it"))?;
                user_group::Entity::find_by_id(id)
                    .filter(user_group::Column::AccountId.eq(account_id))
                    .one(db)
                    .await?
                    .ok_or_else(|| ApiError::bad_input(field("senderGroupId"), "not a group of this account"))?;
                sender_group = Some(id);
            }
            _ => {}
        }
        out.push(workflow_action::Model {
            id,
            account_id,
            workflow_id,
            position: i as i32,
            kind: a.kind,
            name,
            delay_days: a.delay_days,
            delay_from: a.delay_from,
            subject_template: subject,
            body_template: body,
            recipients: a.recipients,
            recipient_position: position,
            send_automatically: a.send_automatically,
            sender: a.sender,
            sender_user_id: sender_user,
            sender_group_id: sender_group,
            billing: a.billing,
        });
    }
    Ok(out)
}

fn checked_head(input: &WorkflowInput) -> ApiResult<(String, Option<String>)> {
    let name = validate::name("input.name", &input.name)?;
    let description = input.description.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(String::from);
    if description.as_ref().is_some_and(|d| d.chars().count() > 2000) {
        return Err(ApiError::bad_input("input.description", "at most 2,000 characters"));
    }
    Ok((name, description))
}

/// Replaces a workflow's actions: deleted ones go (their planned rows not done are cancelled
/// by the re-plan), the others are rewritten in their new order.
async fn write_actions(db: &impl ConnectionTrait, workflow_id: Uuid, actions: &[workflow_action::Model]) -> ApiResult<()> {
    let keep: Vec<Uuid> = actions.iter().map(|a| a.id).collect();
    workflow_action::Entity::delete_many()
        .filter(workflow_action::Column::WorkflowId.eq(workflow_id))
        .filter(workflow_action::Column::Id.is_not_in(keep))
        .exec(db)
        .await?;
    // Positions move: clear them first, so the unique (workflow, position) never sees two.
    workflow_action::Entity::update_many()
        .col_expr(workflow_action::Column::Position, sea_orm::sea_query::Expr::col(workflow_action::Column::Position).add(1_000_000))
        .filter(workflow_action::Column::WorkflowId.eq(workflow_id))
        .exec(db)
        .await?;
    for a in actions {
        let model = a.clone().into_active_model().reset_all();
        if workflow_action::Entity::find_by_id(a.id).one(db).await?.is_some() {
            workflow_action::Entity::update(model).exec(db).await?;
        } else {
            model.insert(db).await?;
        }
    }
    Ok(())
}

pub async fn create(app: &AppState, caller: &Caller, input: WorkflowInput) -> ApiResult<Workflow> {
    caller.require_admin_or_write_key()?;
    let (name, description) = checked_head(&input)?;
    let mut change = Change::begin(app, caller).await?;
    let id = Uuid::now_v7();
    let actions = checked_actions(change.db(), caller.account_id, id, &[], &input.actions).await?;
    let now = Utc::now();
    let row = workflow::Model {
        id,
        account_id: caller.account_id,
        name,
        description,
        active: input.active,
        version: 1,
        created_at: now,
        updated_at: now,
        updated_by: caller.user_id(),
    };
    let row = row.into_active_model().reset_all().insert(change.db()).await?;
    write_actions(change.db(), id, &actions).await?;
    let saved = Workflow { row, actions };
    change.record(caller.account_id, "workflow.created", "Workflow", id, None::<&()>, Some(&saved)).await?;
    change.commit().await?;
    Ok(saved)
}

/// Saves a workflow whole against `expected_version` and re-plans its customers' actions not
/// yet done.
pub async fn update(app: &AppState, caller: &Caller, id: Uuid, expected_version: i32, input: WorkflowInput) -> ApiResult<Workflow> {
    caller.require_admin_or_write_key()?;
    let (name, description) = checked_head(&input)?;
    let mut change = Change::begin(app, caller).await?;
    let before = find(change.db(), caller.account_id, id).await?;
    if before.row.version != expected_version {
        return Err(ApiError::Conflict(format!("the workflow changed since version {expected_version} (now {}): reload and try again", before.row.version)));
    }
    let actions = checked_actions(change.db(), caller.account_id, id, &before.actions, &input.actions).await?;
    let mut row = before.row.clone();
    row.name = name;
    row.description = description;
    row.active = input.active;
    row.version += 1;
    row.updated_at = Utc::now();
    row.updated_by = caller.user_id();
    let row =
        workflow::Entity::update(row.into_active_model().reset_all()).filter(workflow::Column::Version.eq(expected_version)).exec(change.db()).await.map_err(
            |e| match e {
                sea_orm::DbErr::RecordNotUpdated => ApiError::Conflict("the workflow was changed meanwhile: reload and try again".into()),
                e => e.into(),
            },
        )?;
    write_actions(change.db(), id, &actions).await?;
    let after = Workflow { row, actions };
    plan::replan(change.db(), &after, Utc::now()).await?;
    change.record(caller.account_id, "workflow.updated", "Workflow", id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}

/// Deletes a workflow, its enrollments and their planned actions (what was sent stays in the
/// outbox and the audit log).
pub async fn delete(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Workflow> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let before = find(change.db(), caller.account_id, id).await?;
    workflow::Entity::delete_by_id(id).exec(change.db()).await?;
    change.record(caller.account_id, "workflow.deleted", "Workflow", id, Some(&before), None::<&()>).await?;
    change.commit().await?;
    Ok(before)
}
