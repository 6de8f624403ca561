//! The synced emails report (seeds/004): who may see which archived emails, manual
//! assignment to a customer, lead or project, deletion with a tombstone, and the account's
//! "scan all email letters" setting.
//!
//! Company admins and API keys with READ see the account's whole archive; other users see the
//! emails found in their own mailboxes. Assigning and deleting take a company admin or a key
//! with WRITE, or the owner of a mailbox the email was found in.

use chrono::Utc;
use entity::{contact, email, email_location, email_settings, email_tombstone, mailbox, project};
use sea_orm::{
    sea_query::{Expr, Query},
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Select,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    archive::LinkedBy,
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// Whether the caller sees the whole archive of the account.
fn sees_everything(caller: &Caller) -> bool {
    caller.is_company_admin() || caller.user_id().is_none()
}

/// Emails found in any of `mailboxes`.
fn in_mailboxes(select: Select<email::Entity>, mailboxes: sea_orm::sea_query::SelectStatement) -> Select<email::Entity> {
    let located = Query::select()
        .column(email_location::Column::EmailId)
        .from(email_location::Entity)
        .and_where(Expr::col(email_location::Column::MailboxId).in_subquery(mailboxes))
        .to_owned();
    select.filter(email::Column::Id.in_subquery(located))
}

fn mailboxes_of_user(user_id: Uuid) -> sea_orm::sea_query::SelectStatement {
    Query::select().column(mailbox::Column::Id).from(mailbox::Entity).and_where(Expr::col(mailbox::Column::UserId).eq(user_id)).to_owned()
}

/// The report's filters.
#[derive(Default)]
pub struct Filter {
    pub mailbox_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub linked: Option<bool>,
    pub contact_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub sent_after: Option<chrono::DateTime<Utc>>,
    pub sent_before: Option<chrono::DateTime<Utc>>,
    pub folder: Option<String>,
}

/// The emails the caller may see, filtered.
pub fn select(caller: &Caller, filter: Filter) -> ApiResult<Select<email::Entity>> {
    caller.require_read()?;
    let mut select = email::Entity::find().filter(email::Column::AccountId.eq(caller.account_id));
    if !sees_everything(caller) {
        select = in_mailboxes(select, mailboxes_of_user(caller.user_id().unwrap_or_default()));
    }
    if let Some(u) = filter.user_id {
        select = in_mailboxes(select, mailboxes_of_user(u));
    }
    if filter.mailbox_id.is_some() || filter.folder.is_some() {
        let mut located = Query::select().column(email_location::Column::EmailId).from(email_location::Entity).to_owned();
        located.and_where(Expr::col(email_location::Column::AccountId).eq(caller.account_id));
        if let Some(m) = filter.mailbox_id {
            located.and_where(Expr::col(email_location::Column::MailboxId).eq(m));
        }
        if let Some(f) = &filter.folder {
            located.and_where(Expr::col(email_location::Column::Folder).eq(f.clone()));
        }
        select = select.filter(email::Column::Id.in_subquery(located));
    }
    match filter.linked {
        Some(true) => select = select.filter(email::Column::ContactId.is_not_null().or(email::Column::ProjectId.is_not_null())),
        Some(false) => select = select.filter(email::Column::ContactId.is_null()).filter(email::Column::ProjectId.is_null()),
        None => {}
    }
    if let Some(c) = filter.contact_id {
        select = select.filter(email::Column::ContactId.eq(c));
    }
    if let Some(p) = filter.project_id {
        select = select.filter(email::Column::ProjectId.eq(p));
    }
    if let Some(t) = filter.sent_after {
        select = select.filter(email::Column::SentAt.gte(t));
    }
    if let Some(t) = filter.sent_before {
        select = select.filter(email::Column::SentAt.lt(t));
    }
    Ok(select)
}

pub async fn find(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<email::Model> {
    select(caller, Filter::default())?.filter(email::Column::Id.eq(id)).one(db).await?.ok_or(ApiError::NotFound("email"))
}

/// Assigning and deleting: admins and WRITE keys, or an owner of a mailbox it was found in.
async fn require_manage(db: &impl ConnectionTrait, caller: &Caller, email_id: Uuid) -> ApiResult<()> {
    if caller.is_company_admin() {
        return Ok(());
    }
    match caller.user_id() {
        None => caller.require_admin_or_write_key(),
        Some(user) => {
            let own = in_mailboxes(email::Entity::find().filter(email::Column::Id.eq(email_id)), mailboxes_of_user(user)).one(db).await?;
            own.map(|_| ()).ok_or_else(|| ApiError::forbidden("only a company admin or the owner of the mailbox may change this email"))
        }
    }
}

#[derive(Serialize)]
struct LinkSnapshot {
    contact_id: Option<Uuid>,
    project_id: Option<Uuid>,
    linked_by: LinkedBy,
}

/// Assigns an email to a contact (customer or lead) and/or a project, or removes its link
/// (both `None`). A manual assignment is final: scans never relink an archived email.
pub async fn assign(app: &AppState, caller: &Caller, email_id: Uuid, contact_id: Option<Uuid>, project_id: Option<Uuid>) -> ApiResult<email::Model> {
    let before = find(&app.db, caller, email_id).await?;
    require_manage(&app.db, caller, email_id).await?;
    let mut change = Change::begin(app, caller).await?;
    if let Some(c) = contact_id {
        contact::Entity::find_by_id(c)
            .filter(contact::Column::AccountId.eq(caller.account_id))
            .one(change.db())
            .await?
            .ok_or_else(|| ApiError::bad_input("input.contactId", "not a customer or lead of this account"))?;
    }
    if let Some(p) = project_id {
        project::Entity::find_by_id(p)
            .filter(project::Column::AccountId.eq(caller.account_id))
            .one(change.db())
            .await?
            .ok_or_else(|| ApiError::bad_input("input.projectId", "not a project of this account"))?;
    }
    let mut row = before.clone().into_active_model();
    row.contact_id = sea_orm::Set(contact_id);
    row.project_id = sea_orm::Set(project_id);
    row.linked_by = sea_orm::Set(LinkedBy::Manual);
    let after = row.update(change.db()).await?;
    let snap = |e: &email::Model| LinkSnapshot { contact_id: e.contact_id, project_id: e.project_id, linked_by: e.linked_by };
    change.record(caller.account_id, "email.assigned", "Email", email_id, Some(&snap(&before)), Some(&snap(&after))).await?;
    change.commit().await?;
    Ok(after)
}

/// Deletes an email from the archive, leaving a tombstone so no scan brings it back.
pub async fn delete(app: &AppState, caller: &Caller, email_id: Uuid) -> ApiResult<email::Model> {
    let before = find(&app.db, caller, email_id).await?;
    require_manage(&app.db, caller, email_id).await?;
    let mut change = Change::begin(app, caller).await?;
    email_tombstone::Model { account_id: before.account_id, message_key: before.message_key.clone(), deleted_at: Utc::now() }
        .into_active_model()
        .insert(change.db())
        .await?;
    email::Entity::delete_by_id(email_id).exec(change.db()).await?;
    change
        .record(
            caller.account_id,
            "email.deleted",
            "Email",
            email_id,
            Some(&serde_json::json!({"messageKey": before.message_key, "subject": before.subject})),
            None::<&()>,
        )
        .await?;
    change.commit().await?;
    Ok(before)
}

pub async fn settings(db: &impl ConnectionTrait, caller: &Caller) -> ApiResult<Option<email_settings::Model>> {
    caller.require_read()?;
    Ok(email_settings::Entity::find_by_id(caller.account_id).one(db).await?)
}

/// "Scan all email letters": company admins and WRITE keys, version-checked, audited.
pub async fn change_settings(app: &AppState, caller: &Caller, expected_version: i32, scan_all: bool) -> ApiResult<email_settings::Model> {
    caller.require_admin_or_write_key()?;
    let mut change = Change::begin(app, caller).await?;
    let before = email_settings::Entity::find_by_id(caller.account_id).one(change.db()).await?;
    let current = before.as_ref().map_or(0, |s| s.version);
    if current != expected_version {
        return Err(ApiError::Conflict(format!("the email settings changed since version {expected_version} (now {current}): reload and try again")));
    }
    let row = email_settings::Model { account_id: caller.account_id, scan_all, version: current + 1, updated_at: Utc::now(), updated_by: caller.user_id() };
    let stale = || ApiError::Conflict("the email settings were changed by someone else meanwhile: reload and try again".into());
    let after = match &before {
        None => match row.into_active_model().insert(change.db()).await {
            Ok(r) => r,
            Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => return Err(stale()),
            Err(e) => return Err(e.into()),
        },
        Some(_) => match email_settings::Entity::update(row.into_active_model().reset_all())
            .filter(email_settings::Column::Version.eq(current))
            .exec(change.db())
            .await
        {
            Ok(r) => r,
            Err(sea_orm::DbErr::RecordNotUpdated) => return Err(stale()),
            Err(e) => return Err(e.into()),
        },
    };
    change.record(caller.account_id, "email_settings.changed", "EmailSettings", caller.account_id, before.as_ref(), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}
