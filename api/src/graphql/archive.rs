//! GraphQL for the email archive: the synced emails report, manual assignment, deletion, and
//! the account's email settings.

use async_graphql::{Context, InputObject, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{email, email_settings};

use super::{
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    contacts::Contact,
    loaders,
    mailboxes::Mailbox,
    parse_id,
    projects::Project,
};
use crate::{archive::report as service, error::ApiError};

pub struct ArchivedEmail(pub email::Model);

/// Where an archived email was found.
#[derive(SimpleObject)]
pub struct EmailLocation {
    mailbox: Option<Mailbox>,
    /// The folder's path on the server.
    folder: String,
    uid: i64,
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

#[Object]
impl ArchivedEmail {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn message_id(&self) -> Option<&str> {
        self.0.message_id.as_deref()
    }
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    async fn from_address(&self) -> Option<&str> {
        self.0.from_address.as_deref()
    }
    #[graphql(name = "fromName")]
    async fn sender_name(&self) -> Option<&str> {
        self.0.from_name.as_deref()
    }
    async fn to(&self) -> Vec<String> {
        strings(&self.0.to_addresses)
    }
    async fn cc(&self) -> Vec<String> {
        strings(&self.0.cc_addresses)
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    async fn text_body(&self) -> Option<&str> {
        self.0.text_body.as_deref()
    }
    async fn html_body(&self) -> Option<&str> {
        self.0.html_body.as_deref()
    }
    /// `[{filename, contentType, size}]`.
    async fn attachments(&self) -> Json<serde_json::Value> {
        Json(self.0.attachments.clone())
    }
    /// Larger than the archive's body limit: only the headers were stored.
    async fn headers_only(&self) -> bool {
        self.0.headers_only
    }
    async fn size(&self) -> i64 {
        self.0.size
    }
    /// How the link was made.
    async fn linked_by(&self) -> entity::email::LinkedBy {
        self.0.linked_by
    }
    /// The customer or lead it is linked to.
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        let Some(id) = self.0.contact_id else { return Ok(None) };
        Ok(loaders(ctx)?.load_one(loaders::ContactId(id)).await.map_err(ApiError::from)?.map(Contact))
    }
    async fn project(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Project>> {
        let Some(id) = self.0.project_id else { return Ok(None) };
        Ok(crate::archive::project_of(&app(ctx)?.db, &self.0, id).await?.map(Project))
    }
    /// The mailboxes and folders it was found in (those the caller may see).
    async fn locations(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<EmailLocation>> {
        let (app, caller) = (app(ctx)?, caller(ctx)?);
        let rows = crate::archive::locations(&app.db, &self.0).await?;
        let visible = crate::mailboxes::list(&app.db, caller, None).await?;
        Ok(rows
            .into_iter()
            .map(|l| EmailLocation { mailbox: visible.iter().find(|m| m.id == l.mailbox_id).cloned().map(Mailbox), folder: l.folder, uid: l.uid })
            .collect())
    }
    async fn archived_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject, Default)]
pub struct SyncedEmailFilter {
    pub mailbox_id: Option<ID>,
    /// Emails found in this user's mailboxes.
    pub user_id: Option<ID>,
    /// True: linked to a record; false: not linked.
    pub linked: Option<bool>,
    /// The customer or lead it is linked to.
    pub contact_id: Option<ID>,
    pub project_id: Option<ID>,
    pub sent_after: Option<DateTime<Utc>>,
    pub sent_before: Option<DateTime<Utc>>,
    /// A folder's path on the server.
    pub folder: Option<String>,
}

pub struct EmailSettings(Option<email_settings::Model>);

#[Object]
impl EmailSettings {
    /// "Scan all email letters": archive mail that matches no customer or lead too, unlinked.
    async fn scan_all(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.scan_all)
    }
    /// 0 until first saved.
    async fn version(&self) -> i32 {
        self.0.as_ref().map_or(0, |s| s.version)
    }
}

#[derive(InputObject)]
pub struct AssignEmailInput {
    pub email_id: ID,
    /// A customer or lead; null with a null `projectId` removes the link.
    pub contact_id: Option<ID>,
    pub project_id: Option<ID>,
}

#[derive(InputObject)]
pub struct DeleteArchivedEmailInput {
    pub email_id: ID,
}

#[derive(InputObject)]
pub struct ChangeEmailSettingsInput {
    pub expected_version: i32,
    pub scan_all: bool,
}

#[derive(SimpleObject)]
pub struct AssignEmailPayload {
    email: ArchivedEmail,
}

#[derive(SimpleObject)]
pub struct DeleteArchivedEmailPayload {
    deleted_email_id: ID,
}

#[derive(SimpleObject)]
pub struct EmailSettingsPayload {
    email_settings: EmailSettings,
}

#[derive(Default)]
pub struct ArchiveQuery;

#[Object]
impl ArchiveQuery {
    /// The synced emails report, newest archived first.
    async fn synced_emails(
        &self,
        ctx: &Context<'_>,
        filter: Option<SyncedEmailFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<ArchivedEmail>> {
        let f = filter.unwrap_or_default();
        let id = |v: &Option<ID>, field: &str| v.as_ref().map(|i| parse_id(i, field)).transpose();
        let filter = service::Filter {
            mailbox_id: id(&f.mailbox_id, "filter.mailboxId")?,
            user_id: id(&f.user_id, "filter.userId")?,
            linked: f.linked,
            contact_id: id(&f.contact_id, "filter.contactId")?,
            project_id: id(&f.project_id, "filter.projectId")?,
            sent_after: f.sent_after,
            sent_before: f.sent_before,
            folder: f.folder,
        };
        let select = service::select(caller(ctx)?, filter)?;
        Ok(paginate(&app(ctx)?.db, select, email::Column::Id, |e| e.id, Order::NewestFirst, PageArgs::new(first, after, last, before), ArchivedEmail).await?)
    }

    async fn archived_email(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ArchivedEmail> {
        let id = parse_id(&id, "id")?;
        Ok(ArchivedEmail(service::find(&app(ctx)?.db, caller(ctx)?, id).await?))
    }

    async fn email_settings(&self, ctx: &Context<'_>) -> async_graphql::Result<EmailSettings> {
        Ok(EmailSettings(service::settings(&app(ctx)?.db, caller(ctx)?).await?))
    }
}

#[derive(Default)]
pub struct ArchiveMutation;

#[Object]
impl ArchiveMutation {
    /// Links an email to a customer, lead or project by hand (or removes its link). Scans never
    /// undo it.
    async fn assign_email(&self, ctx: &Context<'_>, input: AssignEmailInput) -> async_graphql::Result<AssignEmailPayload> {
        let email_id = parse_id(&input.email_id, "input.emailId")?;
        let contact_id = input.contact_id.as_ref().map(|c| parse_id(c, "input.contactId")).transpose()?;
        let project_id = input.project_id.as_ref().map(|p| parse_id(p, "input.projectId")).transpose()?;
        Ok(AssignEmailPayload { email: ArchivedEmail(service::assign(app(ctx)?, caller(ctx)?, email_id, contact_id, project_id).await?) })
    }

    /// Deletes an email from the archive; later scans do not bring it back.
    async fn delete_archived_email(&self, ctx: &Context<'_>, input: DeleteArchivedEmailInput) -> async_graphql::Result<DeleteArchivedEmailPayload> {
        let email_id = parse_id(&input.email_id, "input.emailId")?;
        let deleted = service::delete(app(ctx)?, caller(ctx)?, email_id).await?;
        Ok(DeleteArchivedEmailPayload { deleted_email_id: ID(deleted.id.to_string()) })
    }

    async fn change_email_settings(&self, ctx: &Context<'_>, input: ChangeEmailSettingsInput) -> async_graphql::Result<EmailSettingsPayload> {
        let saved = service::change_settings(app(ctx)?, caller(ctx)?, input.expected_version, input.scan_all).await?;
        Ok(EmailSettingsPayload { email_settings: EmailSettings(Some(saved)) })
    }
}
