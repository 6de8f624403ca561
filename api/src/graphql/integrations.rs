//! GraphQL for integrations and their reports: the system reports recipients, the account's
//! integrations and their settings tabs, and the reports integration services send.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::{
    activities::OutboundMessage,
    app, caller, parse_id, parse_ids,
    users::{related_user, Role, User},
};
use crate::integrations::{
    connections::{self, Features},
    recipients::{self as service, ChangeInput, Recipient},
    reports::{self, ProblemKind},
    settings::{self, Property, SyncObject, Tab, Tabs},
};
use entity::integration::{self, Health, Provider};

/// Who receives the account's integration reports (Account > Report settings).
pub struct ReportSettings(service::ReportSettings);

#[Object]
impl ReportSettings {
    /// The roles whose active members receive reports (of BILLING_ADMIN, COMPANY_ADMIN,
    /// COMPANY_SUPERVISOR).
    async fn roles(&self) -> Vec<Role> {
        self.0.roles.iter().map(|r| Role::from(*r)).collect()
    }
    /// Users added by name, whatever their role, in the order they were listed (inactive
    /// ones are kept here but receive nothing).
    async fn users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let mut users = Vec::with_capacity(self.0.user_ids.len());
        for id in &self.0.user_ids {
            if let Some(u) = related_user(ctx, *id).await? {
                users.push(u);
            }
        }
        Ok(users)
    }
    /// The address every report is blind-copied to (escalation tracking).
    async fn bcc(&self) -> Option<&str> {
        self.0.bcc.as_deref()
    }
    /// Contact mapping errors reported within this many minutes go out as one email.
    async fn mapping_error_window_minutes(&self) -> i32 {
        self.0.mapping_error_window_minutes
    }
    /// 0 until first saved.
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.updated_at
    }
}

/// Someone who would receive a report now.
#[derive(SimpleObject)]
pub struct ReportRecipient {
    user: User,
    /// Where the report goes.
    email: String,
    /// A member of one of the roles.
    by_role: bool,
    /// Added by name.
    added: bool,
}

impl From<Recipient> for ReportRecipient {
    fn from(r: Recipient) -> Self {
        Self { email: r.user.email.clone(), by_role: r.by_role, added: r.added, user: User(r.user) }
    }
}

#[derive(InputObject)]
pub struct ChangeReportSettingsInput {
    /// The version read (0 for settings never saved).
    pub expected_version: i32,
    pub roles: Vec<Role>,
    #[graphql(default)]
    pub user_ids: Vec<ID>,
    /// Null or empty: no BCC.
    pub bcc: Option<String>,
    /// 1 to 1,440; null: 15.
    pub mapping_error_window_minutes: Option<i32>,
}

#[derive(InputObject)]
pub struct ResetReportSettingsInput {
    pub expected_version: i32,
}

#[derive(SimpleObject)]
pub struct ReportSettingsPayload {
    report_settings: ReportSettings,
}

/// An integration of the account with another CRM.
pub struct Integration(integration::Model);

/// What an integration has turned on.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrationFeature {
    Sync,
    Filters,
    Communication,
}

fn features_of(list: &[IntegrationFeature]) -> Features {
    Features {
        sync: list.contains(&IntegrationFeature::Sync),
        filters: list.contains(&IntegrationFeature::Filters),
        communication: list.contains(&IntegrationFeature::Communication),
    }
}

#[Object]
impl Integration {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn provider(&self) -> Provider {
        self.0.provider
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    async fn features(&self) -> Vec<IntegrationFeature> {
        let f = connections::features(&self.0);
        [(IntegrationFeature::Sync, f.sync), (IntegrationFeature::Filters, f.filters), (IntegrationFeature::Communication, f.communication)]
            .into_iter()
            .filter_map(|(feature, on)| on.then_some(feature))
            .collect()
    }
    /// As its integration service last reported (DISABLED while off).
    async fn health(&self) -> Health {
        self.0.health
    }
    async fn last_sync_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_sync_at
    }
    /// The problems reported and not resolved yet: a connection problem first, then the
    /// records that cannot be mapped.
    async fn problems(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<IntegrationProblem>> {
        Ok(reports::current_problems(&app(ctx)?.db, &self.0).await?.into_iter().map(IntegrationProblem::from).collect())
    }
    /// The records it cannot map now, oldest first (at most `first`, up to 500).
    async fn mapping_errors(&self, ctx: &Context<'_>, #[graphql(default = 50)] first: i32) -> async_graphql::Result<Vec<MappingErrorRecord>> {
        let limit = first.clamp(0, 500) as u64;
        Ok(reports::open_errors(&app(ctx)?.db, caller(ctx)?, self.0.id, limit).await?.into_iter().map(MappingErrorRecord::from).collect())
    }
    /// The settings tabs a front end offers, in order (Back and Next): FILTERS and
    /// COMMUNICATION only while that feature is on.
    async fn tabs(&self) -> Vec<Tab> {
        connections::tabs_available(&self.0)
    }
    /// The tabs' settings.
    async fn settings(&self) -> Tabs {
        connections::tabs(&self.0)
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A problem of an integration, as its integration service reported it.
#[derive(SimpleObject)]
pub struct IntegrationProblem {
    kind: ProblemKind,
    /// Which connection (connection problems).
    connection: Option<String>,
    reason: String,
    /// Reconnection steps or corrective actions.
    actions: Vec<String>,
    deadline: Option<DateTime<Utc>>,
    since: DateTime<Utc>,
    /// Contact mapping errors: how many records fail.
    records: Option<i32>,
}

impl From<reports::Problem> for IntegrationProblem {
    fn from(p: reports::Problem) -> Self {
        Self { kind: p.kind, connection: p.connection, reason: p.reason, actions: p.actions, deadline: p.deadline, since: p.since, records: p.records }
    }
}

/// A record an integration cannot map.
#[derive(SimpleObject)]
pub struct MappingErrorRecord {
    object: String,
    record_id: String,
    record_name: Option<String>,
    field: Option<String>,
    error: String,
    tips: Vec<String>,
    actions: Vec<String>,
    /// Reports of it since it began failing.
    occurrences: i32,
    first_reported_at: DateTime<Utc>,
    last_reported_at: DateTime<Utc>,
    /// When an email listed it last.
    alerted_at: Option<DateTime<Utc>>,
}

impl From<entity::integration_mapping_error::Model> for MappingErrorRecord {
    fn from(m: entity::integration_mapping_error::Model) -> Self {
        Self {
            object: m.object_type,
            record_id: m.record_id,
            record_name: m.record_name,
            field: m.field,
            error: m.error,
            tips: serde_json::from_value(m.tips).unwrap_or_default(),
            actions: serde_json::from_value(m.actions).unwrap_or_default(),
            occurrences: m.occurrences,
            first_reported_at: m.first_reported_at,
            last_reported_at: m.last_reported_at,
            alerted_at: m.alerted_at,
        }
    }
}

#[derive(InputObject)]
pub struct ReauthenticationRequiredInput {
    pub integration_id: ID,
    /// The same key again answers the first report and changes nothing.
    pub idempotency_key: String,
    /// Which connection must be authorised again (a portal, an org, a user's grant).
    pub connection: String,
    pub reason: String,
    /// How to reconnect, step by step.
    pub steps: Vec<String>,
    /// By when, before synchronisation stops for good.
    pub deadline: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct ConnectionErrorInput {
    pub integration_id: ID,
    pub idempotency_key: String,
    pub connection: String,
    /// The error, as the integration met it.
    pub reason: String,
    /// Corrective actions.
    #[graphql(default)]
    pub actions: Vec<String>,
    pub deadline: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct ConnectionRestoredInput {
    pub integration_id: ID,
    pub idempotency_key: String,
}

#[derive(InputObject)]
pub struct MappingErrorInput {
    pub object: SyncObject,
    /// The record's id at the integration.
    pub record_id: String,
    pub record_name: Option<String>,
    /// The CRM field concerned, if one.
    pub field: Option<String>,
    /// The specific error.
    pub error: String,
    /// Troubleshooting tips.
    #[graphql(default)]
    pub tips: Vec<String>,
    /// Corrective actions.
    #[graphql(default)]
    pub actions: Vec<String>,
}

#[derive(InputObject)]
pub struct MappingRecordInput {
    pub object: SyncObject,
    pub record_id: String,
}

#[derive(InputObject)]
pub struct ContactMappingErrorsInput {
    pub integration_id: ID,
    pub idempotency_key: String,
    /// Up to 1,000 per report.
    #[graphql(default)]
    pub errors: Vec<MappingErrorInput>,
    /// Records that map again.
    #[graphql(default)]
    pub resolved: Vec<MappingRecordInput>,
    pub deadline: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct SyncOperationInput {
    pub object: SyncObject,
    #[graphql(default)]
    pub created: i32,
    #[graphql(default)]
    pub updated: i32,
    #[graphql(default)]
    pub deleted: i32,
    #[graphql(default)]
    pub skipped: i32,
    #[graphql(default)]
    pub failed: i32,
}

#[derive(InputObject)]
pub struct SyncWarningInput {
    pub object: Option<SyncObject>,
    pub message: String,
    pub count: Option<i32>,
}

#[derive(InputObject)]
pub struct SyncFollowUpInput {
    pub action: String,
    pub deadline: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct DataSyncSummaryInput {
    pub integration_id: ID,
    /// The run's id: one summary (and one email) per run.
    pub idempotency_key: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub operations: Vec<SyncOperationInput>,
    #[graphql(default)]
    pub warnings: Vec<SyncWarningInput>,
    /// Required follow-ups, each with its deadline if it has one.
    #[graphql(default)]
    pub follow_ups: Vec<SyncFollowUpInput>,
}

/// What a report did.
#[derive(SimpleObject)]
pub struct IntegrationReportPayload {
    integration: Integration,
    /// The key was reported before: nothing changed this time.
    duplicate: bool,
    /// It raised an alert (a state change, a window opened, a run summarised).
    alerted: bool,
    /// The email it queued, if one (mapping errors: the window's email comes when it ends).
    email: Option<OutboundMessage>,
}

impl From<reports::Answer> for IntegrationReportPayload {
    fn from(a: reports::Answer) -> Self {
        Self { integration: Integration(a.integration), duplicate: a.duplicate, alerted: a.alerted, email: a.email.map(OutboundMessage) }
    }
}

#[derive(InputObject)]
pub struct CreateIntegrationInput {
    pub provider: Provider,
    #[graphql(default)]
    pub features: Vec<IntegrationFeature>,
}

#[derive(InputObject)]
pub struct SetIntegrationEnabledInput {
    pub id: ID,
    pub expected_version: i32,
    pub enabled: bool,
    /// The features it has on from now (omitted: as they are).
    pub features: Option<Vec<IntegrationFeature>>,
}

#[derive(InputObject)]
pub struct SaveIntegrationSettingsInput {
    pub id: ID,
    pub expected_version: i32,
    /// Every tab at once; validated together.
    pub settings: Tabs,
}

#[derive(InputObject)]
pub struct ResetIntegrationTabInput {
    pub id: ID,
    pub expected_version: i32,
    /// SYNC, or FILTERS or COMMUNICATION while that feature is on.
    pub tab: Tab,
}

#[derive(SimpleObject)]
pub struct IntegrationPayload {
    integration: Integration,
}

#[derive(SimpleObject)]
pub struct ResetIntegrationTabPayload {
    integration: Integration,
    /// The settings of the tab that the reset changed (none when they were the defaults).
    changed: Vec<String>,
}

#[derive(Default)]
pub struct IntegrationQuery;

#[Object]
impl IntegrationQuery {
    /// The account's system reports recipients settings (company admins, READ keys).
    async fn report_settings(&self, ctx: &Context<'_>) -> async_graphql::Result<ReportSettings> {
        Ok(ReportSettings(service::settings(&app(ctx)?.db, caller(ctx)?).await?))
    }

    /// Exactly who would receive an integration report now: active members of the roles,
    /// then the active added users, each once.
    async fn report_recipients(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ReportRecipient>> {
        Ok(service::current_recipients(&app(ctx)?.db, caller(ctx)?).await?.into_iter().map(ReportRecipient::from).collect())
    }

    /// The account's integrations (company admins, READ keys).
    async fn integrations(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Integration>> {
        Ok(connections::list(&app(ctx)?.db, caller(ctx)?).await?.into_iter().map(Integration).collect())
    }

    async fn integration(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Integration> {
        Ok(Integration(connections::find(&app(ctx)?.db, caller(ctx)?, parse_id(&id, "id")?).await?))
    }

    /// The provider's contact properties a CRM field can be mapped to.
    async fn integration_properties(&self, ctx: &Context<'_>, provider: Provider) -> async_graphql::Result<Vec<Property>> {
        caller(ctx)?.require_read()?;
        Ok(settings::properties(provider).to_vec())
    }
}

#[derive(Default)]
pub struct IntegrationMutation;

#[Object]
impl IntegrationMutation {
    /// Saves the report settings whole, against `expectedVersion`; audited.
    async fn change_report_settings(&self, ctx: &Context<'_>, input: ChangeReportSettingsInput) -> async_graphql::Result<ReportSettingsPayload> {
        let user_ids = parse_ids(&input.user_ids, "input.userIds")?;
        let saved = service::change(
            app(ctx)?,
            caller(ctx)?,
            ChangeInput {
                expected_version: input.expected_version,
                roles: input.roles.into_iter().map(Into::into).collect(),
                user_ids,
                bcc: input.bcc,
                mapping_error_window_minutes: input.mapping_error_window_minutes,
            },
        )
        .await?;
        Ok(ReportSettingsPayload { report_settings: ReportSettings(saved) })
    }

    /// Adds the account's integration with a provider, off, with the recommended settings.
    async fn create_integration(&self, ctx: &Context<'_>, input: CreateIntegrationInput) -> async_graphql::Result<IntegrationPayload> {
        let row = connections::create(app(ctx)?, caller(ctx)?, input.provider, features_of(&input.features)).await?;
        Ok(IntegrationPayload { integration: Integration(row) })
    }

    /// Turns an integration on or off (raising Integration Enabled / Disabled), and sets its
    /// features.
    async fn set_integration_enabled(&self, ctx: &Context<'_>, input: SetIntegrationEnabledInput) -> async_graphql::Result<IntegrationPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let features = input.features.as_deref().map(features_of);
        let row = connections::set_enabled(app(ctx)?, caller(ctx)?, id, input.expected_version, input.enabled, features).await?;
        Ok(IntegrationPayload { integration: Integration(row) })
    }

    /// Save: stores every tab at once, validated together (each error names its tab and
    /// field), against `expectedVersion`; audited.
    async fn save_integration_settings(&self, ctx: &Context<'_>, input: SaveIntegrationSettingsInput) -> async_graphql::Result<IntegrationPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let row = connections::save_settings(app(ctx)?, caller(ctx)?, id, input.expected_version, input.settings).await?;
        Ok(IntegrationPayload { integration: Integration(row) })
    }

    /// Reset: restores one tab to its recommended settings and says what changed.
    async fn reset_integration_tab(&self, ctx: &Context<'_>, input: ResetIntegrationTabInput) -> async_graphql::Result<ResetIntegrationTabPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let (row, changed) = connections::reset_tab(app(ctx)?, caller(ctx)?, id, input.expected_version, input.tab).await?;
        Ok(ResetIntegrationTabPayload { integration: Integration(row), changed: changed.into_iter().map(String::from).collect() })
    }

    /// An integration service reports that a connection must be authorised again: the
    /// integration is REAUTH_REQUIRED, and the report recipients are emailed once (API keys
    /// with PUBLISH_EVENTS or WRITE, company admins).
    async fn report_integration_reauthentication_required(
        &self,
        ctx: &Context<'_>,
        input: ReauthenticationRequiredInput,
    ) -> async_graphql::Result<IntegrationReportPayload> {
        let input = reports::ConnectionProblem {
            integration_id: parse_id(&input.integration_id, "input.integrationId")?,
            idempotency_key: input.idempotency_key,
            connection: input.connection,
            reason: input.reason,
            actions: input.steps,
            deadline: Some(input.deadline),
        };
        Ok(reports::reauthentication_required(app(ctx)?, caller(ctx)?, input).await?.into())
    }

    /// A connection keeps failing: ERROR, emailed once until it works again.
    async fn report_integration_connection_error(&self, ctx: &Context<'_>, input: ConnectionErrorInput) -> async_graphql::Result<IntegrationReportPayload> {
        let input = reports::ConnectionProblem {
            integration_id: parse_id(&input.integration_id, "input.integrationId")?,
            idempotency_key: input.idempotency_key,
            connection: input.connection,
            reason: input.reason,
            actions: input.actions,
            deadline: input.deadline,
        };
        Ok(reports::connection_error(app(ctx)?, caller(ctx)?, input).await?.into())
    }

    /// The connection works again: CONNECTED, with one "resolved" email if it had a problem.
    async fn report_integration_connection_restored(
        &self,
        ctx: &Context<'_>,
        input: ConnectionRestoredInput,
    ) -> async_graphql::Result<IntegrationReportPayload> {
        let input =
            reports::ConnectionRestored { integration_id: parse_id(&input.integration_id, "input.integrationId")?, idempotency_key: input.idempotency_key };
        Ok(reports::connection_restored(app(ctx)?, caller(ctx)?, input).await?.into())
    }

    /// Records that cannot be mapped (and those that map again): gathered per record, and
    /// emailed as one list when the report settings' window ends.
    async fn report_contact_mapping_errors(&self, ctx: &Context<'_>, input: ContactMappingErrorsInput) -> async_graphql::Result<IntegrationReportPayload> {
        let input = reports::MappingErrors {
            integration_id: parse_id(&input.integration_id, "input.integrationId")?,
            idempotency_key: input.idempotency_key,
            errors: input
                .errors
                .into_iter()
                .map(|e| reports::MappingError {
                    object: e.object,
                    record_id: e.record_id,
                    record_name: e.record_name,
                    field: e.field,
                    error: e.error,
                    tips: e.tips,
                    actions: e.actions,
                })
                .collect(),
            resolved: input.resolved.into_iter().map(|r| reports::MappingRecord { object: r.object, record_id: r.record_id }).collect(),
            deadline: input.deadline,
        };
        Ok(reports::mapping_errors(app(ctx)?, caller(ctx)?, input).await?.into())
    }

    /// One completed sync run: one email per run.
    async fn report_data_sync_summary(&self, ctx: &Context<'_>, input: DataSyncSummaryInput) -> async_graphql::Result<IntegrationReportPayload> {
        let input = reports::SyncSummary {
            integration_id: parse_id(&input.integration_id, "input.integrationId")?,
            idempotency_key: input.idempotency_key,
            started_at: input.started_at,
            finished_at: input.finished_at,
            operations: input
                .operations
                .into_iter()
                .map(|o| reports::Operation {
                    object: o.object,
                    created: o.created,
                    updated: o.updated,
                    deleted: o.deleted,
                    skipped: o.skipped,
                    failed: o.failed,
                })
                .collect(),
            warnings: input.warnings.into_iter().map(|w| reports::SyncWarning { object: w.object, message: w.message, count: w.count }).collect(),
            follow_ups: input.follow_ups.into_iter().map(|f| reports::FollowUp { action: f.action, deadline: f.deadline }).collect(),
        };
        Ok(reports::data_sync_summary(app(ctx)?, caller(ctx)?, input).await?.into())
    }

    /// Restores the defaults: company admins, no added users, no BCC, a 15-minute window.
    async fn reset_report_settings(&self, ctx: &Context<'_>, input: ResetReportSettingsInput) -> async_graphql::Result<ReportSettingsPayload> {
        let saved = service::reset(app(ctx)?, caller(ctx)?, input.expected_version).await?;
        Ok(ReportSettingsPayload { report_settings: ReportSettings(saved) })
    }
}
