//! GraphQL for workflow communications: the communication calendar, groups of users,
//! workflows and their actions, enrollments, and the actions list.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use entity::{
    enrollment, planned_action,
    planned_action::{Status as ActionStatus, Trigger as ActionTrigger},
    workflow_action::{self, DelayFrom as WorkflowDelayFrom, Kind as WorkflowActionKind, Recipients as WorkflowRecipients, Sender as WorkflowSender},
};

use super::{
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    contacts::Contact,
    loaders, parse_id, parse_ids,
    users::{related_user, User},
};
use crate::{
    error::ApiError,
    workflows::{
        calendar::{self, CalendarInput},
        definitions::{self, ActionInput, WorkflowInput},
        groups, plan, templates, views,
    },
};

// --- the calendar ----------------------------------------------------------------------------

/// When automatic communications go out: the scheduling time on business days (Monday to
/// Friday, less the holidays), in the account's time zone.
pub struct CommunicationCalendar(calendar::Calendar, i32);

#[Object]
impl CommunicationCalendar {
    /// 24-hour "HH:MM".
    async fn scheduling_time(&self) -> String {
        self.0.time.format("%H:%M").to_string()
    }
    async fn holidays(&self) -> Vec<NaiveDate> {
        self.0.holidays.iter().copied().collect()
    }
    /// The account's time zone.
    async fn time_zone(&self) -> &str {
        self.0.tz.name()
    }
    /// When the next run will be.
    async fn next_run_at(&self) -> DateTime<Utc> {
        self.0.next_run(Utc::now())
    }
    /// 0 until first saved.
    async fn version(&self) -> i32 {
        self.1
    }
}

#[derive(InputObject)]
pub struct ChangeCommunicationCalendarInput {
    pub expected_version: i32,
    /// 24-hour "HH:MM", e.g. "08:30".
    pub scheduling_time: String,
    #[graphql(default)]
    pub holidays: Vec<NaiveDate>,
}

// --- groups ----------------------------------------------------------------------------------

pub struct UserGroup(groups::Group);

#[Object]
impl UserGroup {
    async fn id(&self) -> ID {
        ID(self.0.row.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.row.name
    }
    /// In order: "all its members" sends as the first active one.
    async fn members(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let mut out = Vec::new();
        for id in &self.0.members {
            if let Some(u) = related_user(ctx, *id).await? {
                out.push(u);
            }
        }
        Ok(out)
    }
    async fn version(&self) -> i32 {
        self.0.row.version
    }
}

#[derive(InputObject)]
pub struct CreateUserGroupInput {
    pub name: String,
    #[graphql(default)]
    pub member_ids: Vec<ID>,
}

#[derive(InputObject)]
pub struct UpdateUserGroupInput {
    pub id: ID,
    pub expected_version: i32,
    pub name: Option<String>,
    /// The members, in order (omitted: as they are).
    pub member_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct DeleteUserGroupInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct UserGroupPayload {
    user_group: UserGroup,
}

// --- workflows ---------------------------------------------------------------------------------

pub struct Workflow(definitions::Workflow);

#[Object]
impl Workflow {
    async fn id(&self) -> ID {
        ID(self.0.row.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.row.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.row.description.as_deref()
    }
    /// An inactive workflow takes no new customers.
    async fn active(&self) -> bool {
        self.0.row.active
    }
    async fn actions(&self) -> Vec<WorkflowAction> {
        self.0.actions.iter().cloned().map(WorkflowAction).collect()
    }
    async fn version(&self) -> i32 {
        self.0.row.version
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.row.updated_at
    }
}

pub struct WorkflowAction(workflow_action::Model);

#[Object]
impl WorkflowAction {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn position(&self) -> i32 {
        self.0.position
    }
    async fn kind(&self) -> WorkflowActionKind {
        self.0.kind
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn delay_days(&self) -> i32 {
        self.0.delay_days
    }
    async fn delay_from(&self) -> WorkflowDelayFrom {
        self.0.delay_from
    }
    async fn subject_template(&self) -> Option<&str> {
        self.0.subject_template.as_deref()
    }
    async fn body_template(&self) -> Option<&str> {
        self.0.body_template.as_deref()
    }
    async fn recipients(&self) -> WorkflowRecipients {
        self.0.recipients
    }
    async fn recipient_position(&self) -> Option<&str> {
        self.0.recipient_position.as_deref()
    }
    async fn send_automatically(&self) -> bool {
        self.0.send_automatically
    }
    async fn sender(&self) -> Option<WorkflowSender> {
        self.0.sender
    }
    /// USER: who (null if that user was deleted: the action then becomes a to-do).
    async fn sender_user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        match self.0.sender_user_id {
            Some(id) => related_user(ctx, id).await,
            None => Ok(None),
        }
    }
    async fn sender_group_id(&self) -> Option<ID> {
        self.0.sender_group_id.map(|g| ID(g.to_string()))
    }
    /// An invoice email: left out of the team activity analytics.
    async fn billing(&self) -> bool {
        self.0.billing
    }
}

#[derive(InputObject)]
pub struct WorkflowActionInput {
    /// An existing action's id keeps it (and its planned rows); omitted: a new action.
    pub id: Option<ID>,
    pub kind: WorkflowActionKind,
    pub name: String,
    #[graphql(default)]
    pub delay_days: i32,
    #[graphql(default_with = "WorkflowDelayFrom::PreviousAction")]
    pub delay_from: WorkflowDelayFrom,
    /// Fields: see `workflowTemplateFields`.
    pub subject_template: Option<String>,
    pub body_template: Option<String>,
    #[graphql(default_with = "WorkflowRecipients::MainContact")]
    pub recipients: WorkflowRecipients,
    pub recipient_position: Option<String>,
    #[graphql(default)]
    pub send_automatically: bool,
    pub sender: Option<WorkflowSender>,
    pub sender_user_id: Option<ID>,
    pub sender_group_id: Option<ID>,
    #[graphql(default)]
    pub billing: bool,
}

#[derive(InputObject)]
pub struct CreateWorkflowInput {
    pub name: String,
    pub description: Option<String>,
    #[graphql(default = true)]
    pub active: bool,
    #[graphql(default)]
    pub actions: Vec<WorkflowActionInput>,
}

#[derive(InputObject)]
pub struct UpdateWorkflowInput {
    pub id: ID,
    pub expected_version: i32,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    /// Every action, in order: the list replaces the workflow's.
    pub actions: Vec<WorkflowActionInput>,
}

#[derive(InputObject)]
pub struct DeleteWorkflowInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct WorkflowPayload {
    workflow: Workflow,
}

fn actions_of(input: Vec<WorkflowActionInput>) -> async_graphql::Result<Vec<ActionInput>> {
    input
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let id = |v: &Option<ID>, name: &str| v.as_ref().map(|x| parse_id(x, &format!("input.actions[{i}].{name}"))).transpose();
            Ok(ActionInput {
                id: id(&a.id, "id")?,
                kind: a.kind,
                name: a.name,
                delay_days: a.delay_days,
                delay_from: a.delay_from,
                subject_template: a.subject_template,
                body_template: a.body_template,
                recipients: a.recipients,
                recipient_position: a.recipient_position,
                send_automatically: a.send_automatically,
                sender: a.sender,
                sender_user_id: id(&a.sender_user_id, "senderUserId")?,
                sender_group_id: id(&a.sender_group_id, "senderGroupId")?,
                billing: a.billing,
            })
        })
        .collect()
}

// --- enrollments and the actions list ------------------------------------------------------------

pub struct Enrollment(enrollment::Model);

#[Object]
impl Enrollment {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn workflow_id(&self) -> ID {
        ID(self.0.workflow_id.to_string())
    }
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        Ok(loaders(ctx)?.load_one(loaders::ContactId(self.0.contact_id)).await.map_err(ApiError::from)?.map(Contact))
    }
    async fn enrolled_on(&self) -> NaiveDate {
        self.0.enrolled_on
    }
    async fn status(&self) -> enrollment::Status {
        self.0.status
    }
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
}

#[derive(InputObject)]
pub struct EnrollInWorkflowInput {
    pub workflow_id: ID,
    pub contact_id: ID,
    /// Default: today in the account's time zone.
    pub enrolled_on: Option<NaiveDate>,
}

#[derive(InputObject)]
pub struct EndEnrollmentInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct EnrollmentPayload {
    enrollment: Enrollment,
}

/// Someone or somewhere an action went to.
#[derive(SimpleObject, serde::Deserialize)]
pub struct ActionRecipient {
    name: Option<String>,
    /// The email address, phone number or postal address.
    address: String,
}

/// An action of the actions list.
pub struct PlannedAction(planned_action::Model);

#[Object]
impl PlannedAction {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn workflow_id(&self) -> ID {
        ID(self.0.workflow_id.to_string())
    }
    /// The workflow action it comes from (null once that action was deleted).
    async fn action_id(&self) -> Option<ID> {
        self.0.action_id.map(|a| ID(a.to_string()))
    }
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        Ok(loaders(ctx)?.load_one(loaders::ContactId(self.0.contact_id)).await.map_err(ApiError::from)?.map(Contact))
    }
    async fn kind(&self) -> WorkflowActionKind {
        self.0.kind
    }
    /// AUTOMATED: goes out on its own at the scheduling time; MANUAL: a person's to-do.
    async fn trigger(&self) -> ActionTrigger {
        self.0.trigger
    }
    async fn automated(&self) -> bool {
        self.0.trigger == ActionTrigger::Automated
    }
    async fn status(&self) -> ActionStatus {
        self.0.status
    }
    /// The account's local date it falls due (a weekend or holiday goes with the next
    /// business day's run).
    async fn due_on(&self) -> NaiveDate {
        self.0.due_on
    }
    /// Whose to-do it is, or who is responsible.
    async fn assignee(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        match self.0.assignee_id {
            Some(id) => related_user(ctx, id).await,
            None => Ok(None),
        }
    }
    /// Who it was sent as.
    async fn sender(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        match self.0.sender_user_id {
            Some(id) => related_user(ctx, id).await,
            None => Ok(None),
        }
    }
    /// Why an automatic action became a to-do (or why it failed).
    async fn reason(&self) -> Option<&str> {
        self.0.todo_reason.as_deref()
    }
    /// NO_CONTACTS, NO_MAIN_CONTACT, CONTACT_INVALID, NO_POSITION, NO_EMAIL, NO_PHONE,
    /// NO_ADDRESS or NO_SENDER, when it became a to-do.
    async fn fallback(&self) -> Option<&str> {
        self.0.fallback.as_deref()
    }
    /// The actual `From:` (emails).
    async fn from_address(&self) -> Option<&str> {
        self.0.from_address.as_deref()
    }
    async fn recipients(&self) -> Vec<ActionRecipient> {
        self.0.recipients.clone().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
    }
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    /// The content as sent.
    async fn body(&self) -> Option<&str> {
        self.0.body.as_deref()
    }
    /// Letters: the PDF documents posted, one per contact.
    async fn letters(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<LetterDocument>> {
        Ok(crate::workflows::letters::documents_of(&app(ctx)?.db, caller(ctx)?, self.0.id).await?.into_iter().map(LetterDocument).collect())
    }
    async fn outbound_message_id(&self) -> Option<ID> {
        self.0.outbox_message_id.map(|m| ID(m.to_string()))
    }
    async fn billing(&self) -> bool {
        self.0.billing
    }
    async fn done_at(&self) -> Option<DateTime<Utc>> {
        self.0.done_at
    }
}

/// A letter as posted: the PDF kept for download.
pub struct LetterDocument(entity::letter_document::Model);

#[Object]
impl LetterDocument {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn file_name(&self) -> &str {
        &self.0.file_name
    }
    async fn size_bytes(&self) -> i32 {
        self.0.pdf.len() as i32
    }
    /// The PDF, base64-encoded.
    async fn content_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.0.pdf)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject)]
pub struct CompletePlannedActionInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct PlannedActionPayload {
    planned_action: PlannedAction,
}

/// A user's done actions of a kind in a period (team activity analytics).
#[derive(SimpleObject)]
pub struct TeamActivity {
    user: Option<User>,
    /// The first day of the period (a Monday for weeks, the 1st for months), in the account's
    /// time zone.
    period_start: NaiveDate,
    kind: WorkflowActionKind,
    automated: i64,
    manual: i64,
}

#[derive(InputObject, Default)]
pub struct PlannedActionFilter {
    pub trigger: Option<ActionTrigger>,
    #[graphql(default)]
    pub statuses: Vec<ActionStatus>,
    pub kind: Option<WorkflowActionKind>,
    pub contact_id: Option<ID>,
    pub workflow_id: Option<ID>,
    pub assignee_id: Option<ID>,
    pub due_from: Option<NaiveDate>,
    pub due_to: Option<NaiveDate>,
}

// --- resolvers -----------------------------------------------------------------------------------

#[derive(Default)]
pub struct WorkflowQuery;

#[Object]
impl WorkflowQuery {
    /// When the account's automatic communications go out (company admins, READ keys).
    async fn communication_calendar(&self, ctx: &Context<'_>) -> async_graphql::Result<CommunicationCalendar> {
        let (cal, version) = calendar::get(&app(ctx)?.db, caller(ctx)?).await?;
        Ok(CommunicationCalendar(cal, version))
    }

    async fn user_groups(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<UserGroup>> {
        Ok(groups::list(&app(ctx)?.db, caller(ctx)?).await?.into_iter().map(UserGroup).collect())
    }

    async fn workflows(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Workflow>> {
        Ok(definitions::list(&app(ctx)?.db, caller(ctx)?).await?.into_iter().map(Workflow).collect())
    }

    async fn workflow(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Workflow> {
        let id = parse_id(&id, "id")?;
        Ok(Workflow(definitions::get(&app(ctx)?.db, caller(ctx)?, id).await?))
    }

    /// The fields a subject or body template may use.
    async fn workflow_template_fields(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<&'static str>> {
        caller(ctx)?;
        Ok(templates::FIELDS.to_vec())
    }

    /// A customer's timeline: every communication sent or done (and failed), newest first,
    /// with whether it was automated, its kind, the actual `From:`, recipients and content.
    async fn customer_timeline(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<IdConnection<PlannedAction>> {
        let contact = parse_id(&contact_id, "contactId")?;
        let select = views::timeline(caller(ctx)?, contact)?;
        Ok(paginate(&app(ctx)?.db, select, planned_action::Column::Id, |m| m.id, Order::NewestFirst, PageArgs::new(first, after, None, None), PlannedAction)
            .await?)
    }

    /// Team activity: per user, period and kind, automated and manual actions done between
    /// `from` and `to` (local dates, inclusive; at most a year). Billing emails are left out.
    async fn team_activity(&self, ctx: &Context<'_>, period: views::Period, from: NaiveDate, to: NaiveDate) -> async_graphql::Result<Vec<TeamActivity>> {
        let lines = views::team_activity(&app(ctx)?.db, caller(ctx)?, period, from, to).await?;
        let mut out = Vec::with_capacity(lines.len());
        for l in lines {
            out.push(TeamActivity {
                user: related_user(ctx, l.user_id).await?,
                period_start: l.period_start,
                kind: l.kind,
                automated: l.automated,
                manual: l.manual,
            });
        }
        Ok(out)
    }

    /// The actions list: planned, sent, to-do, failed and cancelled actions, oldest planned
    /// first.
    async fn planned_actions(
        &self,
        ctx: &Context<'_>,
        filter: Option<PlannedActionFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<PlannedAction>> {
        let f = filter.unwrap_or_default();
        let id = |v: &Option<ID>, name: &str| v.as_ref().map(|x| parse_id(x, &format!("filter.{name}"))).transpose();
        let filter = views::ActionFilter {
            trigger: f.trigger,
            statuses: f.statuses,
            kind: f.kind,
            contact_id: id(&f.contact_id, "contactId")?,
            workflow_id: id(&f.workflow_id, "workflowId")?,
            assignee_id: id(&f.assignee_id, "assigneeId")?,
            due_from: f.due_from,
            due_to: f.due_to,
        };
        let select = views::list(caller(ctx)?, filter)?;
        Ok(paginate(&app(ctx)?.db, select, planned_action::Column::Id, |m| m.id, Order::OldestFirst, PageArgs::new(first, after, last, before), PlannedAction)
            .await?)
    }
}

#[derive(Default)]
pub struct WorkflowMutation;

#[Object]
impl WorkflowMutation {
    /// Saves the scheduling time and holidays against `expectedVersion`; audited.
    async fn change_communication_calendar(&self, ctx: &Context<'_>, input: ChangeCommunicationCalendarInput) -> async_graphql::Result<CommunicationCalendar> {
        let input = CalendarInput { expected_version: input.expected_version, scheduling_time: input.scheduling_time, holidays: input.holidays };
        let (cal, version) = calendar::change(app(ctx)?, caller(ctx)?, input).await?;
        Ok(CommunicationCalendar(cal, version))
    }

    async fn create_user_group(&self, ctx: &Context<'_>, input: CreateUserGroupInput) -> async_graphql::Result<UserGroupPayload> {
        let members = parse_ids(&input.member_ids, "input.memberIds")?;
        Ok(UserGroupPayload { user_group: UserGroup(groups::create(app(ctx)?, caller(ctx)?, &input.name, members).await?) })
    }

    async fn update_user_group(&self, ctx: &Context<'_>, input: UpdateUserGroupInput) -> async_graphql::Result<UserGroupPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let members = input.member_ids.as_ref().map(|m| parse_ids(m, "input.memberIds")).transpose()?;
        let saved = groups::update(app(ctx)?, caller(ctx)?, id, input.expected_version, input.name.as_deref(), members).await?;
        Ok(UserGroupPayload { user_group: UserGroup(saved) })
    }

    async fn delete_user_group(&self, ctx: &Context<'_>, input: DeleteUserGroupInput) -> async_graphql::Result<UserGroupPayload> {
        let id = parse_id(&input.id, "input.id")?;
        Ok(UserGroupPayload { user_group: UserGroup(groups::delete(app(ctx)?, caller(ctx)?, id).await?) })
    }

    /// A workflow with its actions, validated together (each error names
    /// `input.actions[i].<field>`); audited.
    async fn create_workflow(&self, ctx: &Context<'_>, input: CreateWorkflowInput) -> async_graphql::Result<WorkflowPayload> {
        let w = WorkflowInput { name: input.name, description: input.description, active: input.active, actions: actions_of(input.actions)? };
        Ok(WorkflowPayload { workflow: Workflow(definitions::create(app(ctx)?, caller(ctx)?, w).await?) })
    }

    /// Saves a workflow whole against `expectedVersion` and re-plans its customers' actions
    /// not done yet.
    async fn update_workflow(&self, ctx: &Context<'_>, input: UpdateWorkflowInput) -> async_graphql::Result<WorkflowPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let w = WorkflowInput { name: input.name, description: input.description, active: input.active, actions: actions_of(input.actions)? };
        Ok(WorkflowPayload { workflow: Workflow(definitions::update(app(ctx)?, caller(ctx)?, id, input.expected_version, w).await?) })
    }

    async fn delete_workflow(&self, ctx: &Context<'_>, input: DeleteWorkflowInput) -> async_graphql::Result<WorkflowPayload> {
        let id = parse_id(&input.id, "input.id")?;
        Ok(WorkflowPayload { workflow: Workflow(definitions::delete(app(ctx)?, caller(ctx)?, id).await?) })
    }

    /// Puts a customer into a workflow and plans its actions.
    async fn enroll_in_workflow(&self, ctx: &Context<'_>, input: EnrollInWorkflowInput) -> async_graphql::Result<EnrollmentPayload> {
        let workflow = parse_id(&input.workflow_id, "input.workflowId")?;
        let contact = parse_id(&input.contact_id, "input.contactId")?;
        Ok(EnrollmentPayload { enrollment: Enrollment(plan::enroll(app(ctx)?, caller(ctx)?, workflow, contact, input.enrolled_on).await?) })
    }

    /// Marks a to-do done (by the user whose to-do it is, company admins, WRITE keys).
    async fn complete_planned_action(&self, ctx: &Context<'_>, input: CompletePlannedActionInput) -> async_graphql::Result<PlannedActionPayload> {
        let id = parse_id(&input.id, "input.id")?;
        Ok(PlannedActionPayload { planned_action: PlannedAction(plan::complete(app(ctx)?, caller(ctx)?, id).await?) })
    }

    /// Takes a customer out of a workflow; its actions not done are cancelled.
    async fn end_enrollment(&self, ctx: &Context<'_>, input: EndEnrollmentInput) -> async_graphql::Result<EnrollmentPayload> {
        let id = parse_id(&input.id, "input.id")?;
        Ok(EnrollmentPayload { enrollment: Enrollment(plan::unenroll(app(ctx)?, caller(ctx)?, id).await?) })
    }
}
