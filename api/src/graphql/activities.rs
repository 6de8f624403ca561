//! GraphQL for activities, the activity settings page, the SMS gateway and the outbox.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{activity, activity_settings, outbox_message, sms_gateway};

use super::{
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    contacts::Contact,
    loaders, parse_id, parse_ids,
    users::{maybe, related_user, User},
};
use crate::{
    activities::{
        records::{self, ActivityKind, ActivityPatch, NewActivity},
        settings::{self as service, AlertSender, LateSender},
        sms,
    },
    error::ApiError,
    smtp::{FailureReason, Security},
};

async fn user(ctx: &Context<'_>, id: uuid::Uuid) -> async_graphql::Result<Option<User>> {
    related_user(ctx, id).await
}

// --- the settings page ---------------------------------------------------------------------

pub struct ActivitySettings(pub service::ActivitySettings);

/// The outgoing mail server. The password is never returned: `passwordSet` says whether one
/// is stored.
#[derive(SimpleObject)]
pub struct SmtpSettings {
    host: String,
    port: i32,
    security: Security,
    username: Option<String>,
    password_set: bool,
}

#[derive(SimpleObject)]
pub struct ActivityAlerts {
    /// Hours before an activity is due at which its owner is reminded.
    interval_hours: i32,
    sender: AlertSender,
}

pub struct LateResponse<'a>(&'a service::ActivitySettings);

#[Object]
impl LateResponse<'_> {
    /// Hours after the due time at which an uncompleted activity is escalated.
    async fn interval_hours(&self) -> i32 {
        self.0.late_interval_hours()
    }
    async fn sender(&self) -> LateSender {
        self.0.late_sender()
    }
    /// The sender address when `sender` is EMAIL.
    async fn sender_email(&self) -> Option<&str> {
        self.0.late_sender_email()
    }
    /// Who receives escalations, in order.
    async fn default_persons(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let found = loaders(ctx)?.load_many(self.0.default_person_ids.iter().copied().map(loaders::UserId)).await.map_err(ApiError::from)?;
        Ok(self.0.default_person_ids.iter().filter_map(|id| found.get(&loaders::UserId(*id)).cloned().map(User)).collect())
    }
}

#[Object]
impl ActivitySettings {
    /// 0 until the page is first saved.
    async fn version(&self) -> i32 {
        self.0.version()
    }
    /// Null until an SMTP server is set: emails then wait in the outbox.
    async fn smtp(&self) -> Option<SmtpSettings> {
        let row: &activity_settings::Model = self.0.row.as_ref()?;
        let security = row.smtp_security;
        Some(SmtpSettings {
            host: row.smtp_host.clone()?,
            port: row.smtp_port.unwrap_or(crate::smtp::default_port(security).into()),
            security,
            username: row.smtp_username.clone(),
            password_set: row.smtp_password.is_some(),
        })
    }
    /// The system account's address: the From of Herald's emails.
    async fn sender_address(&self) -> Option<&str> {
        self.0.sender_address()
    }
    async fn sender_name(&self) -> Option<&str> {
        self.0.sender_name()
    }
    async fn activity_alerts(&self) -> ActivityAlerts {
        ActivityAlerts { interval_hours: self.0.alert_interval_hours(), sender: self.0.alert_sender() }
    }
    async fn late_response(&self) -> LateResponse<'_> {
        LateResponse(&self.0)
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.row.as_ref().map(|r| r.updated_at)
    }
    async fn updated_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        match self.0.row.as_ref().and_then(|r| r.updated_by) {
            Some(id) => user(ctx, id).await,
            None => Ok(None),
        }
    }
}

#[derive(InputObject)]
pub struct SmtpSettingsInput {
    pub host: String,
    /// Defaults by security: 587 (STARTTLS), 465 (TLS), 25 (NONE).
    pub port: Option<i32>,
    pub security: Security,
    pub username: Option<String>,
    /// Write-only. Omitted keeps the stored password; null removes it.
    pub password: MaybeUndefined<String>,
}

#[derive(InputObject)]
pub struct ActivityAlertsInput {
    pub interval_hours: i32,
    pub sender: AlertSender,
}

#[derive(InputObject)]
pub struct LateResponseInput {
    pub interval_hours: i32,
    pub sender: LateSender,
    /// Required when `sender` is EMAIL.
    pub sender_email: Option<String>,
    pub default_person_ids: Vec<ID>,
}

/// The whole page, saved at once.
#[derive(InputObject)]
pub struct ChangeActivitySettingsInput {
    /// The `version` the page was read at (0 for a page never saved).
    pub expected_version: i32,
    /// Null removes the SMTP server.
    pub smtp: Option<SmtpSettingsInput>,
    pub sender_address: Option<String>,
    pub sender_name: Option<String>,
    pub activity_alerts: ActivityAlertsInput,
    pub late_response: LateResponseInput,
}

#[derive(InputObject)]
pub struct ResetActivitySettingsInput {
    pub expected_version: i32,
    /// Also forget the SMTP server, password and sender (default false).
    #[graphql(default = false)]
    pub include_smtp: bool,
}

#[derive(SimpleObject)]
pub struct ActivitySettingsPayload {
    activity_settings: ActivitySettings,
}

#[derive(InputObject)]
pub struct TestSmtpSettingsInput {
    /// Also send a test message to this address.
    pub send_to: Option<String>,
}

#[derive(SimpleObject)]
pub struct SmtpTestFailure {
    reason: FailureReason,
    /// The server's reply code, when it answered one.
    smtp_code: Option<i32>,
    message: String,
}

#[derive(SimpleObject)]
pub struct TestSmtpSettingsPayload {
    /// True when every step passed.
    ok: bool,
    /// Why not, when `ok` is false.
    failure: Option<SmtpTestFailure>,
}

// --- activities -------------------------------------------------------------------------------

pub struct Activity(pub activity::Model);

#[Object]
impl Activity {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The CRM's own id, unique per account.
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
    }
    async fn kind(&self) -> ActivityKind {
        self.0.kind
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        user(ctx, self.0.owner_id).await
    }
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        let Some(id) = self.0.contact_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?.load_one(loaders::ContactId(id)).await.map_err(ApiError::from)?.map(Contact))
    }
    async fn due_at(&self) -> DateTime<Utc> {
        self.0.due_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    /// When the owner will be reminded; null when nothing is planned.
    async fn reminder_at(&self) -> Option<DateTime<Utc>> {
        self.0.remind_at
    }
    /// True once the reminder for the current due time went out.
    async fn reminder_sent(&self) -> bool {
        self.0.reminded_for == Some(self.0.due_at)
    }
    /// When the default persons will be told it is late; null when nothing is planned.
    async fn escalation_at(&self) -> Option<DateTime<Utc>> {
        self.0.escalate_at
    }
    async fn escalation_sent(&self) -> bool {
        self.0.escalated_for == Some(self.0.due_at)
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(InputObject, Default)]
pub struct ActivityFilter {
    pub owner_id: Option<ID>,
    pub contact_id: Option<ID>,
    /// True: only activities not completed; false: only completed ones.
    pub open: Option<bool>,
    pub external_id: Option<String>,
}

#[derive(InputObject)]
pub struct CreateActivityInput {
    pub external_id: Option<String>,
    pub kind: ActivityKind,
    pub title: String,
    pub owner_id: ID,
    pub contact_id: Option<ID>,
    pub due_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct UpdateActivityInput {
    pub id: ID,
    /// When given, the update applies only to this version.
    pub expected_version: Option<i32>,
    pub kind: Option<ActivityKind>,
    pub title: Option<String>,
    pub owner_id: Option<ID>,
    pub contact_id: MaybeUndefined<ID>,
    pub due_at: Option<DateTime<Utc>>,
    /// Null reopens a completed activity.
    pub completed_at: MaybeUndefined<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct CompleteActivityInput {
    pub id: ID,
    /// Defaults to now.
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct DeleteActivityInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct ActivityPayload {
    activity: Activity,
}

#[derive(SimpleObject)]
pub struct DeleteActivityPayload {
    deleted_activity_id: ID,
}

// --- SMS gateway --------------------------------------------------------------------------------

pub struct SmsGateway(pub sms_gateway::Model);

/// A Twilio-compatible gateway. The auth token is never returned.
#[Object]
impl SmsGateway {
    async fn base_url(&self) -> &str {
        &self.0.base_url
    }
    async fn account_sid(&self) -> &str {
        &self.0.account_sid
    }
    async fn from_number(&self) -> &str {
        &self.0.from_number
    }
    async fn auth_token_set(&self) -> bool {
        !self.0.auth_token.is_empty()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(InputObject)]
pub struct ChangeSmsGatewayInput {
    /// 0 when no gateway is set yet.
    pub expected_version: i32,
    /// The API root, e.g. https://api.twilio.com.
    pub base_url: String,
    pub account_sid: String,
    /// Write-only; required the first time, omitted keeps the stored token.
    pub auth_token: Option<String>,
    /// The sending number, in international form.
    pub from_number: String,
}

#[derive(InputObject)]
pub struct RemoveSmsGatewayInput {
    pub expected_version: i32,
}

#[derive(SimpleObject)]
pub struct SmsGatewayPayload {
    sms_gateway: Option<SmsGateway>,
}

// --- the outbox -----------------------------------------------------------------------------------

pub use entity::outbox_message::{Channel as OutboundChannel, Status as OutboundStatus};

pub struct OutboundMessage(pub outbox_message::Model);

#[Object]
impl OutboundMessage {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn channel(&self) -> OutboundChannel {
        self.0.channel
    }
    async fn status(&self) -> OutboundStatus {
        self.0.status
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// Why the last attempt failed.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// The user a message to one user is for (`None` for an addressed email: see `recipients`).
    async fn recipient(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        match self.0.user_id {
            Some(id) => user(ctx, id).await,
            None => Ok(None),
        }
    }
    /// An addressed email's To, Cc and Bcc, as queued (empty for a message to one user).
    async fn recipients(&self) -> Vec<OutboundRecipient> {
        self.0.addressed().unwrap_or_default().into_iter().map(OutboundRecipient).collect()
    }
    /// An addressed email's subject, rendered when it was queued.
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    /// What an addressed email is for (`integration:…:reauthentication:v3`, …): unique per account.
    async fn source_key(&self) -> Option<&str> {
        self.0.source_key.as_deref()
    }
    /// The event the message is about, if one.
    async fn event_id(&self) -> Option<ID> {
        self.0.event_id.map(|e| ID(e.to_string()))
    }
    /// The Message-ID header of the email (the same on every attempt).
    async fn message_id(&self) -> Option<String> {
        (self.0.channel == OutboundChannel::Email).then(|| crate::smtp::message_id(self.0.id))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.status == OutboundStatus::Pending).then_some(self.0.next_attempt_at)
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    /// Emails: whose server the last attempt went through.
    async fn sent_as(&self) -> Option<entity::outbox_message::SentAs> {
        self.0.sent_as
    }
    /// Why the system account sent it when the settings asked for the owner's own account.
    async fn sender_note(&self) -> Option<&str> {
        self.0.sender_note.as_deref()
    }
}

/// One recipient of an addressed email.
pub struct OutboundRecipient(entity::outbox_message::Recipient);

#[Object]
impl OutboundRecipient {
    async fn field(&self) -> entity::outbox_message::Field {
        self.0.field
    }
    async fn address(&self) -> &str {
        &self.0.address
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    /// The user it is, when a user of the account.
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.map(|u| ID(u.to_string()))
    }
}

#[derive(InputObject, Default)]
pub struct OutboundMessageFilter {
    pub status: Option<OutboundStatus>,
    pub channel: Option<OutboundChannel>,
    /// Messages to this user, and addressed emails that name them (To, Cc or Bcc).
    pub recipient_id: Option<ID>,
}

// --- resolvers ---------------------------------------------------------------------------------------

#[derive(Default)]
pub struct ActivityQuery;

#[Object]
impl ActivityQuery {
    /// The activity settings page of the caller's account (company admins, API keys with READ).
    async fn activity_settings(&self, ctx: &Context<'_>) -> async_graphql::Result<ActivitySettings> {
        Ok(ActivitySettings(service::get(app(ctx)?, caller(ctx)?).await?))
    }

    /// The account's SMS gateway, if one is set.
    async fn sms_gateway(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<SmsGateway>> {
        Ok(sms::get(app(ctx)?, caller(ctx)?).await?.map(SmsGateway))
    }

    async fn activities(
        &self,
        ctx: &Context<'_>,
        filter: Option<ActivityFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<Activity>> {
        let filter = filter.unwrap_or_default();
        let filter = records::ActivityFilter {
            owner_id: filter.owner_id.as_ref().map(|id| parse_id(id, "filter.ownerId")).transpose()?,
            contact_id: filter.contact_id.as_ref().map(|id| parse_id(id, "filter.contactId")).transpose()?,
            open: filter.open,
            external_id: filter.external_id,
        };
        let select = records::list(caller(ctx)?, filter)?;
        let page =
            paginate(&app(ctx)?.db, select, activity::Column::Id, |a| a.id, Order::OldestFirst, PageArgs::new(first, after, last, before), Activity).await?;
        if loaders::wants(ctx, "owner") {
            let owners = page.edges.iter().map(|e| loaders::UserId(e.node.0.owner_id)).collect();
            loaders::prefetch(loaders(ctx)?, owners).await.map_err(ApiError::from)?;
        }
        if loaders::wants(ctx, "contact") {
            let contacts = page.edges.iter().filter_map(|e| e.node.0.contact_id).map(loaders::ContactId).collect();
            loaders::prefetch(loaders(ctx)?, contacts).await.map_err(ApiError::from)?;
        }
        Ok(page)
    }

    async fn activity(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Activity> {
        let id = parse_id(&id, "id")?;
        Ok(Activity(records::find(&app(ctx)?.db, caller(ctx)?, id).await?))
    }

    /// Texts and emails Herald queued and sent for the account, newest first (company admins,
    /// API keys with READ).
    async fn outbound_messages(
        &self,
        ctx: &Context<'_>,
        filter: Option<OutboundMessageFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<OutboundMessage>> {
        let filter = filter.unwrap_or_default();
        let filter = crate::outbox::MessageFilter {
            status: filter.status,
            channel: filter.channel,
            recipient_id: filter.recipient_id.as_ref().map(|id| parse_id(id, "filter.recipientId")).transpose()?,
        };
        let select = crate::outbox::list(caller(ctx)?, filter)?;
        let page = paginate(
            &app(ctx)?.db,
            select,
            outbox_message::Column::Id,
            |m| m.id,
            Order::NewestFirst,
            PageArgs::new(first, after, last, before),
            OutboundMessage,
        )
        .await?;
        if loaders::wants(ctx, "recipient") {
            let users = page.edges.iter().filter_map(|e| e.node.0.user_id.map(loaders::UserId)).collect();
            loaders::prefetch(loaders(ctx)?, users).await.map_err(ApiError::from)?;
        }
        Ok(page)
    }
}

#[derive(Default)]
pub struct ActivityMutation;

#[Object]
impl ActivityMutation {
    /// "Change": saves the whole activity settings page at once.
    async fn change_activity_settings(&self, ctx: &Context<'_>, input: ChangeActivitySettingsInput) -> async_graphql::Result<ActivitySettingsPayload> {
        let persons = parse_ids(&input.late_response.default_person_ids, "input.lateResponse.defaultPersonIds")?;
        let change = service::ChangeInput {
            expected_version: input.expected_version,
            smtp: input.smtp.map(|s| service::SmtpInput {
                host: s.host,
                port: s.port,
                security: s.security,
                username: s.username,
                password: maybe(s.password),
            }),
            sender_address: input.sender_address,
            sender_name: input.sender_name,
            alert_interval_hours: input.activity_alerts.interval_hours,
            alert_sender: input.activity_alerts.sender,
            late_interval_hours: input.late_response.interval_hours,
            late_sender: input.late_response.sender,
            late_sender_email: input.late_response.sender_email,
            default_person_ids: persons,
        };
        let saved = service::change(app(ctx)?, caller(ctx)?, change).await?;
        Ok(ActivitySettingsPayload { activity_settings: ActivitySettings(saved) })
    }

    /// "Reset": restores the documented defaults (docs/activities.md).
    async fn reset_activity_settings(&self, ctx: &Context<'_>, input: ResetActivitySettingsInput) -> async_graphql::Result<ActivitySettingsPayload> {
        let saved = service::reset(app(ctx)?, caller(ctx)?, input.expected_version, input.include_smtp).await?;
        Ok(ActivitySettingsPayload { activity_settings: ActivitySettings(saved) })
    }

    /// Connects to the saved SMTP server, logs in, and optionally sends a test message. A
    /// failure is an answer (`ok: false` and why), not an error; it takes at most 10 s.
    async fn test_smtp_settings(&self, ctx: &Context<'_>, input: TestSmtpSettingsInput) -> async_graphql::Result<TestSmtpSettingsPayload> {
        let probed = service::test_smtp(app(ctx)?, caller(ctx)?, input.send_to.as_deref()).await?;
        Ok(match probed {
            Ok(()) => TestSmtpSettingsPayload { ok: true, failure: None },
            Err(f) => TestSmtpSettingsPayload {
                ok: false,
                failure: Some(SmtpTestFailure { reason: f.reason, smtp_code: f.smtp_code.map(i32::from), message: f.message }),
            },
        })
    }

    async fn create_activity(&self, ctx: &Context<'_>, input: CreateActivityInput) -> async_graphql::Result<ActivityPayload> {
        let new = NewActivity {
            external_id: input.external_id,
            kind: input.kind,
            title: input.title,
            owner_id: parse_id(&input.owner_id, "input.ownerId")?,
            contact_id: input.contact_id.as_ref().map(|c| parse_id(c, "input.contactId")).transpose()?,
            due_at: input.due_at,
            completed_at: input.completed_at,
        };
        Ok(ActivityPayload { activity: Activity(records::create(app(ctx)?, caller(ctx)?, new).await?) })
    }

    async fn update_activity(&self, ctx: &Context<'_>, input: UpdateActivityInput) -> async_graphql::Result<ActivityPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let contact_id = match maybe(input.contact_id) {
            Some(Some(c)) => Some(Some(parse_id(&c, "input.contactId")?)),
            Some(None) => Some(None),
            None => None,
        };
        let patch = ActivityPatch {
            expected_version: input.expected_version,
            kind: input.kind,
            title: input.title,
            owner_id: input.owner_id.as_ref().map(|o| parse_id(o, "input.ownerId")).transpose()?,
            contact_id,
            due_at: input.due_at,
            completed_at: maybe(input.completed_at),
        };
        Ok(ActivityPayload { activity: Activity(records::update(app(ctx)?, caller(ctx)?, id, patch).await?) })
    }

    /// Marks an activity done: its reminder and escalation are cancelled.
    async fn complete_activity(&self, ctx: &Context<'_>, input: CompleteActivityInput) -> async_graphql::Result<ActivityPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let patch = ActivityPatch { completed_at: Some(Some(input.completed_at.unwrap_or_else(Utc::now))), ..Default::default() };
        Ok(ActivityPayload { activity: Activity(records::update(app(ctx)?, caller(ctx)?, id, patch).await?) })
    }

    async fn delete_activity(&self, ctx: &Context<'_>, input: DeleteActivityInput) -> async_graphql::Result<DeleteActivityPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let deleted = records::delete(app(ctx)?, caller(ctx)?, id).await?;
        Ok(DeleteActivityPayload { deleted_activity_id: ID(deleted.id.to_string()) })
    }

    /// Sets or changes the account's SMS gateway.
    async fn change_sms_gateway(&self, ctx: &Context<'_>, input: ChangeSmsGatewayInput) -> async_graphql::Result<SmsGatewayPayload> {
        let change = sms::GatewayInput {
            expected_version: input.expected_version,
            base_url: input.base_url,
            account_sid: input.account_sid,
            auth_token: input.auth_token,
            from_number: input.from_number,
        };
        Ok(SmsGatewayPayload { sms_gateway: Some(SmsGateway(sms::change(app(ctx)?, caller(ctx)?, change).await?)) })
    }

    /// Removes the SMS gateway; answers the removed one (null if none was set).
    async fn remove_sms_gateway(&self, ctx: &Context<'_>, input: RemoveSmsGatewayInput) -> async_graphql::Result<SmsGatewayPayload> {
        Ok(SmsGatewayPayload { sms_gateway: sms::remove(app(ctx)?, caller(ctx)?, input.expected_version).await?.map(SmsGateway) })
    }
}
