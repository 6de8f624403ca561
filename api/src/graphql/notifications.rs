use async_graphql::{Context, Object};

use super::caller;
use crate::{
    crm::accounts::AddOn,
    notifications::catalog::{NotificationType, TypeInfo, CATALOG},
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
