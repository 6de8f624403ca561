//! GraphQL for integrations and their reports: the system reports recipients, the account's
//! integrations and their settings tabs.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::{
    app, caller, parse_id, parse_ids,
    users::{related_user, Role, User},
};
use crate::integrations::{
    connections::{self, Features},
    recipients::{self as service, ChangeInput, Recipient},
    settings::{self, Property, Tab, Tabs},
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
    /// The problems reported and not resolved yet.
    async fn problems(&self) -> Vec<String> {
        serde_json::from_value(self.0.problems.clone()).unwrap_or_default()
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
            ChangeInput { expected_version: input.expected_version, roles: input.roles.into_iter().map(Into::into).collect(), user_ids, bcc: input.bcc },
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

    /// Restores the defaults: company admins, no added users, no BCC.
    async fn reset_report_settings(&self, ctx: &Context<'_>, input: ResetReportSettingsInput) -> async_graphql::Result<ReportSettingsPayload> {
        let saved = service::reset(app(ctx)?, caller(ctx)?, input.expected_version).await?;
        Ok(ReportSettingsPayload { report_settings: ReportSettings(saved) })
    }
}
