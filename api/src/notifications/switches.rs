//! How a user's switches resolve, for the settings page and for the fan-out: for every
//! notification type, four switches per user — System (shown in the panel), AU (shown only for
//! contacts the user is assigned to), Text AU and Email AU.
//!
//! Three layers: built-in defaults (System on for strongly encouraged types, all else off) <
//! the account's defaults that company admins set for their users < the user's own overrides.
//! Only overrides are stored, so a change of the account's defaults reaches every user who has
//! not chosen otherwise. An account default can be locked: then it is the value, whatever the
//! user chose. Changing the settings is [`super::control`]'s.

use std::collections::HashMap;

use entity::{notification_default, notification_override};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::catalog::{NotificationType, TypeInfo};
use crate::error::ApiResult;

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
    pub(super) account: AccountLayer,
    pub(super) user: UserLayer,
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

    pub(super) fn locked(&self, kind: NotificationType, switch: Switch) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::catalog::info;
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
