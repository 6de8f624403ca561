use async_graphql::{Context, InputObject, Object, ID};
use chrono::{DateTime, Utc};
use entity::{notification_setting, user};

use super::{
    accounts::Account,
    app, caller, parse_id,
    users::{related_user, User},
};
use crate::{
    crm::accounts::AddOn,
    notifications::{
        catalog::{NotificationType, TypeInfo, CATALOG},
        control::{self, Layers, Switch, SwitchState},
        roll_up,
    },
};

/// A notification type as the settings page describes it.
pub struct NotificationTypeInfo(&'static TypeInfo);

#[Object]
impl NotificationTypeInfo {
    #[graphql(name = "type")]
    async fn kind(&self) -> NotificationType {
        self.0.kind
    }
    async fn label(&self) -> &'static str {
        self.0.label
    }
    async fn description(&self) -> &'static str {
        self.0.description
    }
    /// Events of this type are about one contact: only then do AU, Text AU and Email AU apply.
    async fn concerns_contact(&self) -> bool {
        self.0.concerns_contact
    }
    /// Starred on the settings page; its System switch is on by default.
    async fn strongly_encouraged(&self) -> bool {
        self.0.strongly_encouraged
    }
    /// The add-on the account needs for such events to exist.
    async fn requires_add_on(&self) -> Option<AddOn> {
        self.0.requires_add_on
    }
    /// The integration the account needs for such events to exist, e.g. `THUMBTACK`.
    async fn requires_integration(&self) -> Option<&'static str> {
        self.0.requires_integration
    }
}

#[derive(Default)]
pub struct NotificationQuery;

#[Object]
impl NotificationQuery {
    /// Every notification type, in the settings page's order.
    async fn notification_types(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<NotificationTypeInfo>> {
        caller(ctx)?.require_read()?;
        Ok(CATALOG.iter().map(NotificationTypeInfo).collect())
    }
}

/// One type's four switches, with where each value comes from.
pub struct NotificationTypeControl {
    info: &'static TypeInfo,
    layers: std::sync::Arc<Layers>,
}

#[Object]
impl NotificationTypeControl {
    #[graphql(name = "type")]
    async fn kind(&self) -> NotificationType {
        self.info.kind
    }
    async fn info(&self) -> NotificationTypeInfo {
        NotificationTypeInfo(self.info)
    }
    /// Shown in the panel.
    async fn system(&self) -> SwitchState {
        self.layers.resolve(self.info, Switch::System)
    }
    /// Shown in the panel only for contacts the user is assigned to.
    async fn au(&self) -> SwitchState {
        self.layers.resolve(self.info, Switch::Au)
    }
    /// A text message to the assigned user.
    async fn text_au(&self) -> SwitchState {
        self.layers.resolve(self.info, Switch::TextAu)
    }
    /// An email to the assigned user.
    async fn email_au(&self) -> SwitchState {
        self.layers.resolve(self.info, Switch::EmailAu)
    }
}

fn controls(layers: Layers) -> Vec<NotificationTypeControl> {
    let layers = std::sync::Arc::new(layers);
    CATALOG.iter().map(|info| NotificationTypeControl { info, layers: layers.clone() }).collect()
}

/// A settings object's header: version (0 until first saved), last change and who made it.
struct Header(Option<notification_setting::Model>);

impl Header {
    fn version(&self) -> i32 {
        self.0.as_ref().map_or(0, |h| h.version)
    }
    fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.as_ref().map(|h| h.updated_at)
    }
    async fn updated_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.as_ref().and_then(|h| h.updated_by) else { return Ok(None) };
        related_user(ctx, id).await
    }
}

/// A user's Control tab.
pub struct NotificationControl {
    user: user::Model,
    header: Header,
    layers: Layers,
}

#[Object]
impl NotificationControl {
    async fn user(&self) -> User {
        User(self.user.clone())
    }
    /// Pass as `expectedVersion` when saving.
    async fn version(&self) -> i32 {
        self.header.version()
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.header.updated_at()
    }
    async fn updated_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        self.header.updated_by(ctx).await
    }
    /// Every type, in the settings page's order.
    async fn types(&self) -> Vec<NotificationTypeControl> {
        controls(self.layers.clone())
    }
}

/// The account's defaults for its users (company admins).
pub struct AccountNotificationDefaults {
    header: Header,
    layers: Layers,
}

#[Object]
impl AccountNotificationDefaults {
    async fn version(&self) -> i32 {
        self.header.version()
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.header.updated_at()
    }
    async fn updated_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        self.header.updated_by(ctx).await
    }
    /// What a user without overrides gets.
    async fn types(&self) -> Vec<NotificationTypeControl> {
        controls(self.layers.clone())
    }
}

async fn load_control(ctx: &Context<'_>, user_id: Option<uuid::Uuid>) -> async_graphql::Result<NotificationControl> {
    let (app, caller) = (app(ctx)?, caller(ctx)?);
    let user = control::target_user(&app.db, caller, user_id).await?;
    let layers = Layers::load(&app.db, user.account_id, Some(user.id)).await?;
    let header = Header(control::header(&app.db, user.id, control::Scope::Control).await?);
    Ok(NotificationControl { user, header, layers })
}

async fn load_defaults(ctx: &Context<'_>) -> async_graphql::Result<AccountNotificationDefaults> {
    let (app, caller) = (app(ctx)?, caller(ctx)?);
    caller.require_read()?;
    let layers = Layers::load(&app.db, caller.account_id, None).await?;
    let header = Header(control::header(&app.db, caller.account_id, control::Scope::AccountDefaults).await?);
    Ok(AccountNotificationDefaults { header, layers })
}

#[derive(Default)]
pub struct NotificationControlQuery;

#[Object]
impl NotificationControlQuery {
    /// A user's Control tab: the caller's own (the user they act as, when logged in as
    /// someone), or, for company admins, any user of the account.
    async fn notification_control(&self, ctx: &Context<'_>, user_id: Option<ID>) -> async_graphql::Result<NotificationControl> {
        let user_id = user_id.map(|id| parse_id(&id, "userId")).transpose()?;
        load_control(ctx, user_id).await
    }

    /// The account's defaults and locks for its users.
    async fn account_notification_defaults(&self, ctx: &Context<'_>) -> async_graphql::Result<AccountNotificationDefaults> {
        load_defaults(ctx).await
    }
}

#[derive(InputObject)]
pub struct SwitchChangeInput {
    #[graphql(name = "type")]
    pub kind: NotificationType,
    pub switch: Switch,
    /// Null removes this layer's value: the switch inherits again.
    pub enabled: Option<bool>,
    /// Account defaults only: users cannot change a locked switch.
    pub locked: Option<bool>,
}

impl From<&SwitchChangeInput> for control::SwitchChange {
    fn from(input: &SwitchChangeInput) -> Self {
        control::SwitchChange { kind: input.kind, switch: input.switch, enabled: input.enabled, locked: input.locked }
    }
}

#[derive(InputObject)]
pub struct UpdateNotificationControlInput {
    /// Defaults to the caller (the user they act as).
    pub user_id: Option<ID>,
    pub expected_version: Option<i32>,
    pub changes: Vec<SwitchChangeInput>,
}

#[derive(InputObject)]
pub struct ResetNotificationControlInput {
    pub user_id: Option<ID>,
    pub expected_version: Option<i32>,
}

#[derive(InputObject)]
pub struct UpdateAccountNotificationDefaultsInput {
    pub expected_version: Option<i32>,
    pub changes: Vec<SwitchChangeInput>,
}

#[derive(InputObject)]
pub struct ResetAccountNotificationDefaultsInput {
    pub expected_version: Option<i32>,
}

pub struct NotificationControlPayload(NotificationControl);

#[Object]
impl NotificationControlPayload {
    async fn control(&self) -> &NotificationControl {
        &self.0
    }
}

pub struct AccountNotificationDefaultsPayload(AccountNotificationDefaults);

#[Object]
impl AccountNotificationDefaultsPayload {
    async fn defaults(&self) -> &AccountNotificationDefaults {
        &self.0
    }
}

#[derive(Default)]
pub struct NotificationControlMutation;

#[Object]
impl NotificationControlMutation {
    /// Changes many switches at once (the user, or an admin of the account).
    async fn update_notification_control(&self, ctx: &Context<'_>, input: UpdateNotificationControlInput) -> async_graphql::Result<NotificationControlPayload> {
        let user_id = input.user_id.as_ref().map(|id| parse_id(id, "input.userId")).transpose()?;
        let changes: Vec<_> = input.changes.iter().map(Into::into).collect();
        let user = control::update_user(app(ctx)?, caller(ctx)?, user_id, input.expected_version, &changes).await?;
        Ok(NotificationControlPayload(load_control(ctx, Some(user)).await?))
    }

    /// Removes the user's own choices: the account's defaults apply again.
    async fn reset_notification_control(&self, ctx: &Context<'_>, input: ResetNotificationControlInput) -> async_graphql::Result<NotificationControlPayload> {
        let user_id = input.user_id.as_ref().map(|id| parse_id(id, "input.userId")).transpose()?;
        let user = control::reset_user(app(ctx)?, caller(ctx)?, user_id, input.expected_version).await?;
        Ok(NotificationControlPayload(load_control(ctx, Some(user)).await?))
    }

    /// Sets the account's defaults for its users, and locks (company admins).
    async fn update_account_notification_defaults(
        &self,
        ctx: &Context<'_>,
        input: UpdateAccountNotificationDefaultsInput,
    ) -> async_graphql::Result<AccountNotificationDefaultsPayload> {
        let changes: Vec<_> = input.changes.iter().map(Into::into).collect();
        control::update_account(app(ctx)?, caller(ctx)?, input.expected_version, &changes).await?;
        Ok(AccountNotificationDefaultsPayload(load_defaults(ctx).await?))
    }

    /// Restores the built-in defaults for the account (users' own choices stay).
    async fn reset_account_notification_defaults(
        &self,
        ctx: &Context<'_>,
        input: ResetAccountNotificationDefaultsInput,
    ) -> async_graphql::Result<AccountNotificationDefaultsPayload> {
        control::reset_account(app(ctx)?, caller(ctx)?, input.expected_version).await?;
        Ok(AccountNotificationDefaultsPayload(load_defaults(ctx).await?))
    }
}

/// A user's Roll-up tab.
pub struct NotificationRollUp {
    user: user::Model,
    header: Header,
    candidates: Vec<entity::account::Model>,
    selected: Vec<entity::account::Model>,
}

#[Object]
impl NotificationRollUp {
    async fn user(&self) -> User {
        User(self.user.clone())
    }
    async fn version(&self) -> i32 {
        self.header.version()
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.header.updated_at()
    }
    async fn updated_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        self.header.updated_by(ctx).await
    }
    /// The sub-accounts whose notifications the user sees.
    async fn sub_accounts(&self) -> Vec<Account> {
        self.selected.iter().cloned().map(Account).collect()
    }
    /// Every sub-account the user can pick, at any depth below their account.
    async fn available_sub_accounts(&self) -> Vec<Account> {
        self.candidates.iter().cloned().map(Account).collect()
    }
}

async fn load_roll_up(ctx: &Context<'_>, user_id: Option<uuid::Uuid>) -> async_graphql::Result<NotificationRollUp> {
    let (app, caller) = (app(ctx)?, caller(ctx)?);
    let (user, account) = roll_up::target(&app.db, caller, user_id).await?;
    let candidates = crate::crm::accounts::descendants(&app.db, account.id).await?;
    let selected = roll_up::selected(&app.db, user.id, &candidates).await?;
    let header = Header(control::header(&app.db, user.id, control::Scope::RollUp).await?);
    Ok(NotificationRollUp { user, header, candidates, selected })
}

#[derive(Default)]
pub struct NotificationRollUpQuery;

#[Object]
impl NotificationRollUpQuery {
    /// A user's Roll-up tab (the caller's own, or any user's for company admins). FORBIDDEN
    /// when the account does not have the Notification Roll-up add-on.
    async fn notification_roll_up(&self, ctx: &Context<'_>, user_id: Option<ID>) -> async_graphql::Result<NotificationRollUp> {
        let user_id = user_id.map(|id| parse_id(&id, "userId")).transpose()?;
        load_roll_up(ctx, user_id).await
    }
}

#[derive(InputObject)]
pub struct UpdateNotificationRollUpInput {
    /// Defaults to the caller (the user they act as).
    pub user_id: Option<ID>,
    pub expected_version: Option<i32>,
    /// Replaces the chosen sub-accounts.
    pub sub_account_ids: Vec<ID>,
}

pub struct NotificationRollUpPayload(NotificationRollUp);

#[Object]
impl NotificationRollUpPayload {
    async fn roll_up(&self) -> &NotificationRollUp {
        &self.0
    }
}

#[derive(Default)]
pub struct NotificationRollUpMutation;

#[Object]
impl NotificationRollUpMutation {
    /// Chooses the sub-accounts whose notifications the user sees.
    async fn update_notification_roll_up(&self, ctx: &Context<'_>, input: UpdateNotificationRollUpInput) -> async_graphql::Result<NotificationRollUpPayload> {
        let user_id = input.user_id.as_ref().map(|id| parse_id(id, "input.userId")).transpose()?;
        let ids = super::parse_ids(&input.sub_account_ids, "input.subAccountIds")?;
        let user = roll_up::update(app(ctx)?, caller(ctx)?, user_id, input.expected_version, &ids).await?;
        Ok(NotificationRollUpPayload(load_roll_up(ctx, Some(user)).await?))
    }
}
