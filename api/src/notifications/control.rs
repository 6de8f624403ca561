//! Control settings: for every notification type, four switches per user — System (shown in
//! the panel), AU (shown only for contacts the user is assigned to), Text AU and Email AU.
//!
//! Three layers, resolved when an event is fanned out and when the settings page asks:
//! built-in defaults (System on for strongly encouraged types, all else off) < the account's
//! defaults that company admins set for their users < the user's own overrides. Only
//! overrides are stored, so a change of the account's defaults reaches every user who has
//! not chosen otherwise, and a reset is the removal of a user's overrides. An account default
//! can be locked: then it is the value, whatever the user chose.
//!
//! The AU switches apply only to types that concern a contact; setting them elsewhere is an
//! input error rather than a silent no-op.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use entity::{notification_default, notification_override, notification_setting};
use sea_orm::ActiveEnum;
use sea_orm::{sea_query::Expr, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::catalog::{info, NotificationType, TypeInfo};
use crate::{
    audit::Change,
    auth::Caller,
    crm::{accounts, users},
    error::{ApiError, ApiResult},
    state::AppState,
};

pub use entity::notification_default::Switch;

/// Whether a switch means anything for a type: the AU switches only for types about a contact.
pub fn applies(switch: Switch, info: &TypeInfo) -> bool {
    switch == Switch::System || info.concerns_contact
}

/// Where a switch's effective value comes from, so a UI can say why a box is ticked.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SettingSource {
    Default,
    Account,
    User,
}

#[derive(async_graphql::SimpleObject, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchState {
    pub enabled: bool,
    pub source: SettingSource,
    /// Set by the account's admins for everyone; a user cannot change it.
    pub locked: bool,
    /// False for the AU switches of types that do not concern a contact.
    pub applicable: bool,
}

/// The stored layers for one account and, optionally, one of its users.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    account: AccountLayer,
    user: UserLayer,
}

impl Layers {
    pub async fn load(db: &impl ConnectionTrait, account_id: Uuid, user_id: Option<Uuid>) -> ApiResult<Self> {
        let mut layers = Layers::default();
        for row in notification_default::Entity::find().filter(notification_default::Column::AccountId.eq(account_id)).all(db).await? {
            layers.account.insert((row.notification_type, row.switch), (row.enabled, row.locked));
        }
        if let Some(user_id) = user_id {
            for row in notification_override::Entity::find().filter(notification_override::Column::UserId.eq(user_id)).all(db).await? {
                layers.user.insert((row.notification_type, row.switch), row.enabled);
            }
        }
        Ok(layers)
    }

    /// The effective value of one switch.
    pub fn resolve(&self, info: &TypeInfo, switch: Switch) -> SwitchState {
        resolve(&self.account, Some(&self.user), info, switch)
    }

    /// The account layer alone (what a user with no overrides gets).
    pub fn account_only(&self) -> Layers {
        Layers { account: self.account.clone(), user: HashMap::new() }
    }

    fn locked(&self, kind: NotificationType, switch: Switch) -> bool {
        self.account.get(&(kind, switch)).is_some_and(|&(_, locked)| locked)
    }
}

type AccountLayer = HashMap<(NotificationType, Switch), (bool, bool)>;
type UserLayer = HashMap<(NotificationType, Switch), bool>;

/// The layers of every user of one account for some notification types (fan-out).
#[derive(Debug, Default)]
pub struct AccountLayers {
    account: AccountLayer,
    users: HashMap<Uuid, UserLayer>,
}

impl AccountLayers {
    /// The layers of several accounts in two statements, restricted to `types`: an event
    /// needs only its own type's switches, and an account of 200 users can hold tens of
    /// thousands of overrides across all types.
    pub async fn load_many(db: &impl ConnectionTrait, account_ids: &[Uuid], types: &[NotificationType]) -> ApiResult<HashMap<Uuid, Self>> {
        let mut layers = Self::load_defaults(db, account_ids, types).await?;
        Self::load_overrides(db, &mut layers, types, account_ids, &HashMap::new()).await?;
        Ok(layers)
    }

    /// The account layers only (no user overrides yet).
    pub async fn load_defaults(db: &impl ConnectionTrait, account_ids: &[Uuid], types: &[NotificationType]) -> ApiResult<HashMap<Uuid, Self>> {
        let mut layers: HashMap<Uuid, Self> = account_ids.iter().map(|id| (*id, Self::default())).collect();
        if account_ids.is_empty() || types.is_empty() {
            return Ok(layers);
        }
        let defaults = notification_default::Entity::find()
            .filter(notification_default::Column::AccountId.is_in(account_ids.iter().copied()))
            .filter(notification_default::Column::NotificationType.is_in(types.iter().copied()))
            .all(db)
            .await?;
        for row in defaults {
            if let Some(l) = layers.get_mut(&row.account_id) {
                let (kind, switch) = (row.notification_type, row.switch);
                l.account.insert((kind, switch), (row.enabled, row.locked));
            }
        }
        Ok(layers)
    }

    /// Adds the users' overrides of `types`: every user's in the `everyone` accounts; in the
    /// `some` accounts, only those of the listed users plus the System switches turned on
    /// (whoever set them). That is all a fan-out needs where a type is off by default: only
    /// a user who turned it on, or an assignee, can receive it.
    pub async fn load_overrides(
        db: &impl ConnectionTrait,
        layers: &mut HashMap<Uuid, Self>,
        types: &[NotificationType],
        everyone: &[Uuid],
        some: &HashMap<Uuid, Vec<Uuid>>,
    ) -> ApiResult<()> {
        if types.is_empty() {
            return Ok(());
        }
        let codes: Vec<NotificationType> = types.to_vec();
        let mut rows = Vec::new();
        if !everyone.is_empty() {
            rows.extend(
                notification_override::Entity::find()
                    .filter(notification_override::Column::AccountId.is_in(everyone.iter().copied()))
                    .filter(notification_override::Column::NotificationType.is_in(codes.clone()))
                    .all(db)
                    .await?,
            );
        }
        if !some.is_empty() {
            let listed: Vec<Uuid> = some.values().flatten().copied().collect();
            let system_on = Condition::all().add(notification_override::Column::Switch.eq(Switch::System)).add(notification_override::Column::Enabled.eq(true));
            rows.extend(
                notification_override::Entity::find()
                    .filter(notification_override::Column::AccountId.is_in(some.keys().copied()))
                    .filter(notification_override::Column::NotificationType.is_in(codes))
                    .filter(Condition::any().add(system_on).add(notification_override::Column::UserId.is_in(listed)))
                    .all(db)
                    .await?,
            );
        }
        for row in rows {
            if let Some(l) = layers.get_mut(&row.account_id) {
                let (kind, switch) = (row.notification_type, row.switch);
                l.users.entry(row.user_id).or_default().insert((kind, switch), row.enabled);
            }
        }
        Ok(())
    }

    /// Whether the type reaches every user's panel unless they turned it off: its System
    /// switch is on before user overrides (built-in default or account default).
    pub fn system_by_default(&self, info: &TypeInfo) -> bool {
        resolve(&self.account, None, info, Switch::System).enabled
    }

    /// The users with an override loaded here.
    pub fn users_with_overrides(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.users.keys().copied()
    }

    pub fn enabled(&self, user_id: Uuid, info: &TypeInfo, switch: Switch) -> bool {
        resolve(&self.account, self.users.get(&user_id), info, switch).enabled
    }
}

fn resolve(account: &AccountLayer, user: Option<&UserLayer>, info: &TypeInfo, switch: Switch) -> SwitchState {
    if !applies(switch, info) {
        return SwitchState { enabled: false, source: SettingSource::Default, locked: false, applicable: false };
    }
    let mut state =
        SwitchState { enabled: switch == Switch::System && info.strongly_encouraged, source: SettingSource::Default, locked: false, applicable: true };
    if let Some(&(enabled, locked)) = account.get(&(info.kind, switch)) {
        state = SwitchState { enabled, source: SettingSource::Account, locked, applicable: true };
    }
    if !state.locked {
        if let Some(&enabled) = user.and_then(|u| u.get(&(info.kind, switch))) {
            state.enabled = enabled;
            state.source = SettingSource::User;
        }
    }
    state
}

/// One change of one switch. `enabled: None` removes the layer's value (inherit again).
#[derive(Clone, Copy, Debug)]
pub struct SwitchChange {
    pub kind: NotificationType,
    pub switch: Switch,
    pub enabled: Option<bool>,
    /// Account defaults only.
    pub locked: Option<bool>,
}

fn check_changes(changes: &[SwitchChange], account_level: bool) -> ApiResult<()> {
    if changes.is_empty() {
        return Err(ApiError::bad_input("input.changes", "name at least one switch to change"));
    }
    let mut seen = HashSet::new();
    for (i, change) in changes.iter().enumerate() {
        let field = format!("input.changes[{i}]");
        if !applies(change.switch, info(change.kind)) {
            return Err(ApiError::bad_input(
                format!("{field}.switch"),
                format!("{} does not concern a contact, so {} does not apply", info(change.kind).label, change.switch.to_value()),
            ));
        }
        if !seen.insert((change.kind, change.switch)) {
            return Err(ApiError::bad_input(field, "the same switch is changed twice"));
        }
        match (account_level, change.locked, change.enabled) {
            (false, Some(_), _) => return Err(ApiError::bad_input(format!("{field}.locked"), "only an account's defaults can be locked")),
            (true, Some(true), None) => return Err(ApiError::bad_input(format!("{field}.locked"), "a locked default needs a value")),
            _ => {}
        }
    }
    Ok(())
}

/// Checks `expected` against the settings object's version and bumps it, atomically.
pub(crate) async fn bump_version(
    change: &Change<'_>,
    owner_id: Uuid,
    account_id: Uuid,
    scope: Scope,
    expected: Option<i32>,
) -> ApiResult<notification_setting::Model> {
    let db = change.db();
    let current = header(db, owner_id, scope).await?;
    let version = current.as_ref().map_or(0, |h| h.version);
    if let Some(expected) = expected {
        if expected != version {
            return Err(ApiError::Conflict(format!("the settings changed since version {expected} (now version {version}); reload and try again")));
        }
    }
    let now = Utc::now();
    let actor = change.caller().user_id();
    match current {
        None => {
            let header = notification_setting::Model { owner_id, scope, account_id, version: 1, updated_at: now, updated_by: actor };
            // A concurrent first save inserts the same key: one of them fails, as CONFLICT.
            header.into_active_model().reset_all().insert(db).await.map_err(|e| match e.sql_err() {
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                    ApiError::Conflict("the settings were changed concurrently; reload and try again".into())
                }
                _ => e.into(),
            })
        }
        Some(_) => {
            let done = notification_setting::Entity::update_many()
                .col_expr(notification_setting::Column::Version, Expr::col(notification_setting::Column::Version).add(1))
                .col_expr(notification_setting::Column::UpdatedAt, Expr::value(now))
                .col_expr(notification_setting::Column::UpdatedBy, Expr::value(actor))
                .filter(notification_setting::Column::OwnerId.eq(owner_id))
                .filter(notification_setting::Column::Scope.eq(scope))
                .filter(notification_setting::Column::Version.eq(version))
                .exec(db)
                .await?;
            if done.rows_affected == 0 {
                return Err(ApiError::Conflict("the settings were changed concurrently; reload and try again".into()));
            }
            header(db, owner_id, scope).await?.ok_or(ApiError::NotFound("settings"))
        }
    }
}

pub use entity::notification_setting::Scope;

pub async fn header(db: &impl ConnectionTrait, owner_id: Uuid, scope: Scope) -> ApiResult<Option<notification_setting::Model>> {
    Ok(notification_setting::Entity::find_by_id((owner_id, scope)).one(db).await?)
}

/// The user whose Control settings the caller may read or change: themselves (the user they
/// act as), or any user of the account for its admins. Another account's user is NOT_FOUND.
pub async fn target_user(db: &impl ConnectionTrait, caller: &Caller, user_id: Option<Uuid>) -> ApiResult<entity::user::Model> {
    let user_id = match user_id.or(caller.user_id()) {
        Some(id) => id,
        None => return Err(ApiError::bad_input("userId", "an API key must name the user")),
    };
    let user = users::find(db, caller, user_id).await?;
    caller.require_self_or_admin(user.id)?;
    Ok(user)
}

#[derive(Serialize)]
struct Snapshot {
    version: i32,
    values: Vec<(String, String, bool)>,
}

fn snapshot(version: i32, values: &HashMap<(NotificationType, Switch), bool>) -> Snapshot {
    let mut values: Vec<_> = values.iter().map(|(&(kind, switch), &on)| (kind.to_value(), switch.to_value(), on)).collect();
    values.sort();
    Snapshot { version, values }
}

/// Changes a user's switches (that user, or an admin of the account).
pub async fn update_user(app: &AppState, caller: &Caller, user_id: Option<Uuid>, expected: Option<i32>, changes: &[SwitchChange]) -> ApiResult<Uuid> {
    check_changes(changes, false)?;
    let mut change = Change::begin(app, caller).await?;
    let user = target_user(change.db(), caller, user_id).await?;
    let before = Layers::load(change.db(), user.account_id, Some(user.id)).await?;
    for (i, c) in changes.iter().enumerate() {
        if before.locked(c.kind, c.switch) {
            return Err(ApiError::Forbidden(format!("input.changes[{i}]: {} / {} is locked by the account's admins", info(c.kind).label, c.switch.to_value())));
        }
    }
    let old_version = header(change.db(), user.id, Scope::Control).await?.map_or(0, |h| h.version);
    for c in changes {
        notification_override::Entity::delete_many()
            .filter(notification_override::Column::UserId.eq(user.id))
            .filter(notification_override::Column::NotificationType.eq(c.kind))
            .filter(notification_override::Column::Switch.eq(c.switch))
            .exec(change.db())
            .await?;
        if let Some(enabled) = c.enabled {
            notification_override::ActiveModel {
                user_id: Set(user.id),
                notification_type: Set(c.kind),
                switch: Set(c.switch),
                account_id: Set(user.account_id),
                enabled: Set(enabled),
            }
            .insert(change.db())
            .await?;
        }
    }
    let header = bump_version(&change, user.id, user.account_id, Scope::Control, expected).await?;
    let after = Layers::load(change.db(), user.account_id, Some(user.id)).await?;
    change
        .record(
            user.account_id,
            "notification_control.updated",
            "User",
            user.id,
            Some(&snapshot(old_version, &before.user)),
            Some(&snapshot(header.version, &after.user)),
        )
        .await?;
    change.commit().await?;
    Ok(user.id)
}

/// Removes all of a user's overrides: they get the account's defaults again.
pub async fn reset_user(app: &AppState, caller: &Caller, user_id: Option<Uuid>, expected: Option<i32>) -> ApiResult<Uuid> {
    let mut change = Change::begin(app, caller).await?;
    let user = target_user(change.db(), caller, user_id).await?;
    let before = Layers::load(change.db(), user.account_id, Some(user.id)).await?;
    let old_version = header(change.db(), user.id, Scope::Control).await?.map_or(0, |h| h.version);
    notification_override::Entity::delete_many().filter(notification_override::Column::UserId.eq(user.id)).exec(change.db()).await?;
    let header = bump_version(&change, user.id, user.account_id, Scope::Control, expected).await?;
    change
        .record(
            user.account_id,
            "notification_control.reset",
            "User",
            user.id,
            Some(&snapshot(old_version, &before.user)),
            Some(&snapshot(header.version, &HashMap::new())),
        )
        .await?;
    change.commit().await?;
    Ok(user.id)
}

#[derive(Serialize)]
struct AccountSnapshot {
    version: i32,
    values: Vec<(String, String, bool, bool)>,
}

fn account_snapshot(version: i32, layers: &Layers) -> AccountSnapshot {
    let mut values: Vec<_> = layers.account.iter().map(|(&(kind, switch), &(on, locked))| (kind.to_value(), switch.to_value(), on, locked)).collect();
    values.sort();
    AccountSnapshot { version, values }
}

/// Changes the account's defaults for its users (company admins).
pub async fn update_account(app: &AppState, caller: &Caller, expected: Option<i32>, changes: &[SwitchChange]) -> ApiResult<Uuid> {
    caller.require_admin_or_write_key()?;
    check_changes(changes, true)?;
    let mut change = Change::begin(app, caller).await?;
    let account = accounts::find_visible(change.db(), caller, caller.account_id).await?;
    let before = Layers::load(change.db(), account.id, None).await?;
    let old_version = header(change.db(), account.id, Scope::AccountDefaults).await?.map_or(0, |h| h.version);
    for c in changes {
        notification_default::Entity::delete_many()
            .filter(notification_default::Column::AccountId.eq(account.id))
            .filter(notification_default::Column::NotificationType.eq(c.kind))
            .filter(notification_default::Column::Switch.eq(c.switch))
            .exec(change.db())
            .await?;
        if let Some(enabled) = c.enabled {
            notification_default::ActiveModel {
                account_id: Set(account.id),
                notification_type: Set(c.kind),
                switch: Set(c.switch),
                enabled: Set(enabled),
                locked: Set(c.locked.unwrap_or(false)),
            }
            .insert(change.db())
            .await?;
        }
    }
    let header = bump_version(&change, account.id, account.id, Scope::AccountDefaults, expected).await?;
    let after = Layers::load(change.db(), account.id, None).await?;
    change
        .record(
            account.id,
            "notification_defaults.updated",
            "Account",
            account.id,
            Some(&account_snapshot(old_version, &before)),
            Some(&account_snapshot(header.version, &after)),
        )
        .await?;
    change.commit().await?;
    Ok(account.id)
}

/// Removes the account's defaults and locks: everyone gets the built-in defaults again
/// (users' own overrides stay).
pub async fn reset_account(app: &AppState, caller: &Caller, expected: Option<i32>) -> ApiResult<Uuid> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let account = accounts::find_visible(change.db(), caller, caller.account_id).await?;
    let before = Layers::load(change.db(), account.id, None).await?;
    let old_version = header(change.db(), account.id, Scope::AccountDefaults).await?.map_or(0, |h| h.version);
    notification_default::Entity::delete_many().filter(notification_default::Column::AccountId.eq(account.id)).exec(change.db()).await?;
    let header = bump_version(&change, account.id, account.id, Scope::AccountDefaults, expected).await?;
    change
        .record(
            account.id,
            "notification_defaults.reset",
            "Account",
            account.id,
            Some(&account_snapshot(old_version, &before)),
            Some(&account_snapshot(header.version, &Layers::default())),
        )
        .await?;
    change.commit().await?;
    Ok(account.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use NotificationType::*;

    #[test]
    fn layers_resolve_default_then_account_then_user_and_locks_win() {
        let mut layers = Layers::default();
        let paused = info(AccountPaused);
        let lead = info(NewLead);
        assert_eq!(layers.resolve(paused, Switch::System), SwitchState { enabled: true, source: SettingSource::Default, locked: false, applicable: true });
        assert!(!layers.resolve(lead, Switch::System).enabled);
        assert!(!layers.resolve(paused, Switch::Au).applicable, "AU needs a contact");

        layers.account.insert((NewLead, Switch::System), (true, false));
        layers.user.insert((NewLead, Switch::System), false);
        assert_eq!(layers.resolve(lead, Switch::System), SwitchState { enabled: false, source: SettingSource::User, locked: false, applicable: true });
        assert_eq!(layers.account_only().resolve(lead, Switch::System).source, SettingSource::Account);

        layers.account.insert((NewLead, Switch::System), (true, true));
        assert_eq!(layers.resolve(lead, Switch::System), SwitchState { enabled: true, source: SettingSource::Account, locked: true, applicable: true });
    }

    #[test]
    fn stored_type_names_are_the_api_names() {
        use sea_orm::ActiveEnum;
        for info in super::super::catalog::CATALOG {
            let stored = info.kind.to_value();
            assert_eq!(serde_json::to_value(info.kind).unwrap(), serde_json::Value::String(stored.clone()));
            assert_eq!(NotificationType::try_from_value(&stored).unwrap(), info.kind);
        }
        assert_eq!(ThumbTack.to_value(), "THUMBTACK");
    }
}
