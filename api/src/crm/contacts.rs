//! Contacts (customers and leads), their ordered assigned users, and their persons.
//!
//! Assignment order matters: the first assigned user is the contact's primary owner, who
//! gets reminders and "only if assigned" notifications first. Assigning more users appends
//! them; the order of those already assigned never changes, and unassigning closes the gap.

use std::collections::HashSet;

use chrono::Utc;
use entity::{contact, contact::ContactKind, contact_assignee, contact_person, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    owned::{self, Owned},
    state::AppState,
    validate,
};

/// The contact `id` of the caller's account; otherwise NOT_FOUND.
impl Owned for contact::Entity {
    const NAME: &'static str = "contact";
    const OBJECT_TYPE: &'static str = "Contact";
    const ACTION: &'static str = "contact";
    fn account_column() -> contact::Column {
        contact::Column::AccountId
    }
    async fn delete_dependents(txn: &sea_orm::DatabaseTransaction, id: Uuid) -> ApiResult<()> {
        contact_assignee::Entity::delete_many().filter(contact_assignee::Column::ContactId.eq(id)).exec(txn).await?;
        contact_person::Entity::delete_many().filter(contact_person::Column::ContactId.eq(id)).exec(txn).await?;
        Ok(())
    }
}

impl Owned for contact_person::Entity {
    const NAME: &'static str = "contact person";
    const OBJECT_TYPE: &'static str = "ContactPerson";
    const ACTION: &'static str = "contact_person";
    fn account_column() -> contact_person::Column {
        contact_person::Column::AccountId
    }
}

pub async fn find(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<contact::Model> {
    owned::find::<contact::Entity>(db, caller, id).await
}

pub async fn find_person(db: &impl ConnectionTrait, caller: &Caller, id: Uuid) -> ApiResult<contact_person::Model> {
    owned::find::<contact_person::Entity>(db, caller, id).await
}

/// Assigned user ids in order.
pub async fn assignee_ids(db: &impl ConnectionTrait, contact_id: Uuid) -> ApiResult<Vec<Uuid>> {
    Ok(contact_assignee::Entity::find()
        .filter(contact_assignee::Column::ContactId.eq(contact_id))
        .order_by_asc(contact_assignee::Column::Position)
        .all(db)
        .await?
        .into_iter()
        .map(|a| a.user_id)
        .collect())
}

/// Checks that every id names a user of the account; the first unknown one is reported.
async fn ensure_users_of_account(db: &impl ConnectionTrait, account_id: Uuid, ids: &[Uuid], field: &str) -> ApiResult<()> {
    let wanted: HashSet<Uuid> = ids.iter().copied().collect();
    let found: HashSet<Uuid> = user::Entity::find()
        .filter(user::Column::AccountId.eq(account_id))
        .filter(user::Column::Id.is_in(wanted.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    // The message names the position, not the id: the caller knows what it sent.
    if let Some(position) = ids.iter().position(|id| !found.contains(id)) {
        let name = field.rsplit('.').next().unwrap_or(field);
        return Err(ApiError::BadUserInput { field: field.into(), message: format!("{name}[{position}] is not a user of this account") });
    }
    Ok(())
}

async fn write_assignees(db: &impl ConnectionTrait, contact: &contact::Model, order: &[Uuid]) -> ApiResult<()> {
    contact_assignee::Entity::delete_many().filter(contact_assignee::Column::ContactId.eq(contact.id)).exec(db).await?;
    if order.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows = order.iter().enumerate().map(|(i, user_id)| contact_assignee::ActiveModel {
        contact_id: Set(contact.id),
        user_id: Set(*user_id),
        account_id: Set(contact.account_id),
        position: Set(i as i32),
        assigned_at: Set(now),
    });
    contact_assignee::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

fn dedup_keep_order(ids: &[Uuid]) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// A snapshot of a contact with its assignees, for the audit log.
#[derive(serde::Serialize)]
struct ContactSnapshot<'a> {
    #[serde(flatten)]
    contact: &'a contact::Model,
    assignee_ids: &'a [Uuid],
}

pub struct NewContact {
    pub kind: ContactKind,
    pub name: String,
    pub main_email: Option<String>,
    pub email_domain: Option<String>,
    pub valid: bool,
    pub assignee_ids: Vec<Uuid>,
}

fn emails(main: Option<&str>, domain: Option<&str>) -> ApiResult<(Option<String>, Option<String>)> {
    let main = main.filter(|m| !m.trim().is_empty()).map(|m| validate::email("input.mainEmail", m)).transpose()?;
    let domain = match domain.filter(|d| !d.trim().is_empty()) {
        Some(d) => Some(validate::domain("input.emailDomain", d)?),
        None => main.as_deref().and_then(validate::domain_of),
    };
    Ok((main, domain))
}

pub async fn create(app: &AppState, caller: &Caller, input: NewContact) -> ApiResult<(contact::Model, Vec<Uuid>)> {
    caller.require_admin_or_write_key()?;
    let name = validate::name("input.name", &input.name)?;
    let (main_email, email_domain) = emails(input.main_email.as_deref(), input.email_domain.as_deref())?;
    let assignees = dedup_keep_order(&input.assignee_ids);
    let mut change = Change::begin(app, caller).await?;
    ensure_users_of_account(change.db(), caller.account_id, &assignees, "input.assigneeIds").await?;
    let now = Utc::now();
    let model = contact::Model {
        id: Uuid::now_v7(),
        account_id: caller.account_id,
        kind: input.kind,
        name,
        main_email,
        email_domain,
        valid: input.valid,
        created_at: now,
        updated_at: now,
    }
    .into_active_model()
    .reset_all()
    .insert(change.db())
    .await?;
    write_assignees(change.db(), &model, &assignees).await?;
    let after = ContactSnapshot { contact: &model, assignee_ids: &assignees };
    change.record(model.account_id, "contact.created", "Contact", model.id, None::<&()>, Some(&after)).await?;
    change.commit().await?;
    Ok((model, assignees))
}

pub struct ContactPatch {
    pub id: Uuid,
    pub kind: Option<ContactKind>,
    pub name: Option<String>,
    /// `Some(None)` clears.
    pub main_email: Option<Option<String>>,
    pub email_domain: Option<Option<String>>,
    pub valid: Option<bool>,
}

pub async fn update(app: &AppState, caller: &Caller, patch: ContactPatch) -> ApiResult<contact::Model> {
    caller.require_admin_or_write_key()?;
    let name = patch.name.as_deref().map(|n| validate::name("input.name", n)).transpose()?;
    let mut change = Change::begin(app, caller).await?;
    let before = find(change.db(), caller, patch.id).await?;
    let mut row = before.clone().into_active_model();
    if let Some(name) = name {
        row.name = Set(name);
    }
    if let Some(kind) = patch.kind {
        row.kind = Set(kind);
    }
    if let Some(valid) = patch.valid {
        row.valid = Set(valid);
    }
    if patch.main_email.is_some() || patch.email_domain.is_some() {
        let main = patch.main_email.clone().unwrap_or(before.main_email.clone());
        // A new main email re-derives the domain unless one is given.
        let domain = match &patch.email_domain {
            Some(d) => d.clone(),
            None if patch.main_email.is_some() => None,
            None => before.email_domain.clone(),
        };
        let (main, domain) = emails(main.as_deref(), domain.as_deref())?;
        row.main_email = Set(main);
        row.email_domain = Set(domain);
    }
    row.updated_at = Set(Utc::now());
    let after = row.update(change.db()).await?;
    change.record(after.account_id, "contact.updated", "Contact", after.id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}

pub async fn delete(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<contact::Model> {
    owned::delete::<contact::Entity>(app, caller, id).await
}

/// Appends users to the contact's assignees (already assigned ones keep their place).
pub async fn assign(app: &AppState, caller: &Caller, contact_id: Uuid, user_ids: &[Uuid]) -> ApiResult<contact::Model> {
    edit_assignees(app, caller, contact_id, user_ids, |current, ids| {
        for id in ids {
            if !current.contains(id) {
                current.push(*id);
            }
        }
    })
    .await
}

/// Removes users from the contact's assignees; the others keep their order.
pub async fn unassign(app: &AppState, caller: &Caller, contact_id: Uuid, user_ids: &[Uuid]) -> ApiResult<contact::Model> {
    edit_assignees(app, caller, contact_id, user_ids, |current, ids| current.retain(|id| !ids.contains(id))).await
}

async fn edit_assignees(
    app: &AppState,
    caller: &Caller,
    contact_id: Uuid,
    user_ids: &[Uuid],
    edit: impl FnOnce(&mut Vec<Uuid>, &[Uuid]),
) -> ApiResult<contact::Model> {
    caller.require_admin_or_write_key()?;
    if user_ids.is_empty() {
        return Err(ApiError::bad_input("input.userIds", "name at least one user"));
    }
    let mut change = Change::begin(app, caller).await?;
    let contact = find(change.db(), caller, contact_id).await?;
    ensure_users_of_account(change.db(), caller.account_id, user_ids, "input.userIds").await?;
    let before = assignee_ids(change.db(), contact.id).await?;
    let mut after = before.clone();
    edit(&mut after, user_ids);
    if after != before {
        write_assignees(change.db(), &contact, &after).await?;
        let (b, a) = (ContactSnapshot { contact: &contact, assignee_ids: &before }, ContactSnapshot { contact: &contact, assignee_ids: &after });
        change.record(contact.account_id, "contact.assignees_changed", "Contact", contact.id, Some(&b), Some(&a)).await?;
    }
    change.commit().await?;
    Ok(contact)
}

pub struct NewPerson {
    pub contact_id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub position: Option<String>,
    pub invalid: bool,
    pub phone: Option<String>,
    pub postal_address: Option<PostalAddress>,
    /// The customer's main contact (the others lose the mark).
    pub main: bool,
}

/// Where letters to a contact person go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostalAddress {
    pub line1: String,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: String,
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2, upper-case.
    pub country: String,
}

impl PostalAddress {
    /// The address checked and trimmed; errors name `field.line1`, `field.country`, ….
    pub fn checked(self, field: &str) -> ApiResult<Self> {
        let line1 = validate::name(&format!("{field}.line1"), &self.line1)?;
        let city = validate::name(&format!("{field}.city"), &self.city)?;
        let country = self.country.trim().to_uppercase();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ApiError::bad_input(format!("{field}.country"), "an ISO 3166-1 alpha-2 country code, e.g. FR"));
        }
        Ok(Self {
            line1,
            line2: validate::optional_text(&format!("{field}.line2"), self.line2.as_deref())?,
            postal_code: validate::optional_text(&format!("{field}.postalCode"), self.postal_code.as_deref())?,
            city,
            region: validate::optional_text(&format!("{field}.region"), self.region.as_deref())?,
            country,
        })
    }

    /// A person's address as stored (an unreadable one is none).
    pub fn of(person: &contact_person::Model) -> Option<Self> {
        person.postal_address.clone().and_then(|v| serde_json::from_value(v).ok())
    }

    /// The lines of an envelope.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.line1.clone()];
        lines.extend(self.line2.clone());
        let town = [self.postal_code.clone(), Some(self.city.clone())].into_iter().flatten().collect::<Vec<_>>().join(" ");
        lines.push(town);
        lines.extend(self.region.clone());
        lines.push(self.country.clone());
        lines
    }
}

fn address_json(address: Option<PostalAddress>, field: &str) -> ApiResult<Option<serde_json::Value>> {
    address.map(|a| a.checked(field)).transpose()?.map(|a| serde_json::to_value(a).map_err(|e| ApiError::Internal(e.into()))).transpose()
}

/// Takes the main mark from the contact's other persons.
async fn unmark_main(db: &impl ConnectionTrait, contact_id: Uuid, keep: Uuid) -> ApiResult<()> {
    contact_person::Entity::update_many()
        .col_expr(contact_person::Column::Main, sea_orm::sea_query::Expr::value(false))
        .filter(contact_person::Column::ContactId.eq(contact_id))
        .filter(contact_person::Column::Id.ne(keep))
        .filter(contact_person::Column::Main.eq(true))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn create_person(app: &AppState, caller: &Caller, input: NewPerson) -> ApiResult<contact_person::Model> {
    caller.require_admin_or_write_key()?;
    let name = validate::name("input.name", &input.name)?;
    let email = input.email.as_deref().filter(|e| !e.trim().is_empty()).map(|e| validate::email("input.email", e)).transpose()?;
    let position = validate::optional_text("input.position", input.position.as_deref())?;
    let phone = input.phone.as_deref().filter(|p| !p.trim().is_empty()).map(|p| validate::phone("input.phone", p)).transpose()?;
    let postal_address = address_json(input.postal_address, "input.postalAddress")?;
    let mut change = Change::begin(app, caller).await?;
    let contact = find(change.db(), caller, input.contact_id).await.map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::bad_input("input.contactId", "contact not found"),
        other => other,
    })?;
    let now = Utc::now();
    let model = contact_person::Model {
        id: Uuid::now_v7(),
        account_id: contact.account_id,
        contact_id: contact.id,
        name,
        email,
        position,
        invalid: input.invalid,
        phone,
        postal_address,
        main: input.main,
        created_at: now,
        updated_at: now,
    }
    .into_active_model()
    .reset_all()
    .insert(change.db())
    .await?;
    if model.main {
        unmark_main(change.db(), model.contact_id, model.id).await?;
    }
    change.record(model.account_id, "contact_person.created", "ContactPerson", model.id, None::<&()>, Some(&model)).await?;
    crate::workflows::plan::contacts_changed(change.db(), model.account_id, model.contact_id, now).await?;
    change.commit().await?;
    Ok(model)
}

pub struct PersonPatch {
    pub id: Uuid,
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub position: Option<Option<String>>,
    pub invalid: Option<bool>,
    pub phone: Option<Option<String>>,
    pub postal_address: Option<Option<PostalAddress>>,
    pub main: Option<bool>,
}

pub async fn update_person(app: &AppState, caller: &Caller, patch: PersonPatch) -> ApiResult<contact_person::Model> {
    caller.require_admin_or_write_key()?;
    let name = patch.name.as_deref().map(|n| validate::name("input.name", n)).transpose()?;
    let email = match &patch.email {
        Some(Some(e)) => Some(Some(validate::email("input.email", e)?)),
        Some(None) => Some(None),
        None => None,
    };
    let position = patch.position.as_ref().map(|p| validate::optional_text("input.position", p.as_deref())).transpose()?;
    let phone = match &patch.phone {
        Some(Some(p)) if !p.trim().is_empty() => Some(Some(validate::phone("input.phone", p)?)),
        Some(_) => Some(None),
        None => None,
    };
    let postal_address = match patch.postal_address {
        Some(a) => Some(address_json(a, "input.postalAddress")?),
        None => None,
    };
    let mut change = Change::begin(app, caller).await?;
    let before = find_person(change.db(), caller, patch.id).await?;
    let mut row = before.clone().into_active_model();
    if let Some(name) = name {
        row.name = Set(name);
    }
    if let Some(email) = email {
        row.email = Set(email);
    }
    if let Some(position) = position {
        row.position = Set(position);
    }
    if let Some(invalid) = patch.invalid {
        row.invalid = Set(invalid);
    }
    if let Some(phone) = phone {
        row.phone = Set(phone);
    }
    if let Some(address) = postal_address {
        row.postal_address = Set(address);
    }
    if let Some(main) = patch.main {
        row.main = Set(main);
    }
    let now = Utc::now();
    row.updated_at = Set(now);
    let after = row.update(change.db()).await?;
    if after.main {
        unmark_main(change.db(), after.contact_id, after.id).await?;
    }
    change.record(after.account_id, "contact_person.updated", "ContactPerson", after.id, Some(&before), Some(&after)).await?;
    crate::workflows::plan::contacts_changed(change.db(), after.account_id, after.contact_id, now).await?;
    change.commit().await?;
    Ok(after)
}

pub async fn delete_person(app: &AppState, caller: &Caller, id: Uuid) -> ApiResult<contact_person::Model> {
    owned::delete::<contact_person::Entity>(app, caller, id).await
}

/// Which contacts a list shows.
#[derive(Debug, Default)]
pub struct ContactFilter {
    pub kind: Option<ContactKind>,
    /// Only contacts this user is assigned to.
    pub assigned_to: Option<Uuid>,
    pub email_domain: Option<String>,
}

/// The account's contacts that pass `filter` (anyone who may read the account).
pub fn list(caller: &Caller, filter: ContactFilter) -> ApiResult<sea_orm::Select<contact::Entity>> {
    use sea_orm::sea_query::Query;
    caller.require_read()?;
    let mut select = contact::Entity::find().filter(contact::Column::AccountId.eq(caller.account_id));
    if let Some(kind) = filter.kind {
        select = select.filter(contact::Column::Kind.eq(kind));
    }
    if let Some(domain) = filter.email_domain {
        select = select.filter(contact::Column::EmailDomain.eq(validate::domain("filter.emailDomain", &domain)?));
    }
    if let Some(user_id) = filter.assigned_to {
        let assigned = Query::select()
            .column(contact_assignee::Column::ContactId)
            .from(contact_assignee::Entity)
            .and_where(contact_assignee::Column::UserId.eq(user_id))
            .to_owned();
        select = select.filter(contact::Column::Id.in_subquery(assigned));
    }
    Ok(select)
}
