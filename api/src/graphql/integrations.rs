//! GraphQL for integrations and their reports: the system reports recipients.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::{
    app, caller, parse_ids,
    users::{related_user, Role, User},
};
use crate::integrations::recipients::{self as service, ChangeInput, Recipient};

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

    /// Restores the defaults: company admins, no added users, no BCC.
    async fn reset_report_settings(&self, ctx: &Context<'_>, input: ResetReportSettingsInput) -> async_graphql::Result<ReportSettingsPayload> {
        let saved = service::reset(app(ctx)?, caller(ctx)?, input.expected_version).await?;
        Ok(ReportSettingsPayload { report_settings: ReportSettings(saved) })
    }
}
