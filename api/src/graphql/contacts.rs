use async_graphql::{Context, Enum, InputObject, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{contact, contact_person};

use super::{
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    loaders, parse_id, parse_ids,
    users::{maybe, User},
};
use crate::{crm::contacts as service, error::ApiError};

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactKind {
    Customer,
    Lead,
}

impl From<contact::ContactKind> for ContactKind {
    fn from(kind: contact::ContactKind) -> Self {
        match kind {
            contact::ContactKind::Customer => Self::Customer,
            contact::ContactKind::Lead => Self::Lead,
        }
    }
}

impl From<ContactKind> for contact::ContactKind {
    fn from(kind: ContactKind) -> Self {
        match kind {
            ContactKind::Customer => Self::Customer,
            ContactKind::Lead => Self::Lead,
        }
    }
}

/// A customer or a lead.
pub struct Contact(pub contact::Model);

#[Object]
impl Contact {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn kind(&self) -> ContactKind {
        self.0.kind.into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn main_email(&self) -> Option<&str> {
        self.0.main_email.as_deref()
    }
    /// Mail from this domain is linked to the contact.
    async fn email_domain(&self) -> Option<&str> {
        self.0.email_domain.as_deref()
    }
    /// False when the contact's details are known to be unusable (bounced email, etc.).
    async fn valid(&self) -> bool {
        self.0.valid
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Assigned users in assignment order: the first is the primary assignee.
    async fn assignees(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let users = loaders(ctx)?.load_one(loaders::AssigneesOf(self.0.id)).await.map_err(ApiError::from)?;
        Ok(users.iter().flat_map(|list| list.iter()).cloned().map(User).collect())
    }
    /// The contact's own people.
    async fn persons(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ContactPerson>> {
        let persons = loaders(ctx)?.load_one(loaders::PersonsOf(self.0.id)).await.map_err(ApiError::from)?;
        Ok(persons.iter().flat_map(|list| list.iter()).cloned().map(ContactPerson).collect())
    }
}

/// A person at a customer or lead.
pub struct ContactPerson(pub contact_person::Model);

#[Object]
impl ContactPerson {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// Job title or role at the contact, e.g. "Purchasing".
    async fn position(&self) -> Option<&str> {
        self.0.position.as_deref()
    }
    /// True when mail to this person is known to fail.
    async fn invalid(&self) -> bool {
        self.0.invalid
    }
    /// E.164, e.g. +33612345678.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    /// Where letters go.
    async fn postal_address(&self) -> Option<PostalAddress> {
        service::PostalAddress::of(&self.0).map(PostalAddress::from)
    }
    /// The customer's main contact (at most one per contact).
    async fn main(&self) -> bool {
        self.0.main
    }
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Contact> {
        let contact = loaders(ctx)?.load_one(loaders::ContactId(self.0.contact_id)).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("contact"))?;
        Ok(Contact(contact))
    }
}

/// Loads assignees and persons of a page of contacts up front when the query asks for them.
async fn prefetch_relations(ctx: &Context<'_>, page: &IdConnection<Contact>) -> async_graphql::Result<()> {
    let ids = || page.edges.iter().map(|e| e.node.0.id);
    let loaders = loaders(ctx)?;
    if loaders::wants(ctx, "assignees") {
        loaders::prefetch(loaders.clone(), ids().map(loaders::AssigneesOf).collect()).await.map_err(ApiError::from)?;
    }
    if loaders::wants(ctx, "persons") {
        loaders::prefetch(loaders.clone(), ids().map(loaders::PersonsOf).collect()).await.map_err(ApiError::from)?;
    }
    Ok(())
}

#[derive(InputObject, Default)]
pub struct ContactFilter {
    pub kind: Option<ContactKind>,
    /// Only contacts this user is assigned to.
    pub assigned_to: Option<ID>,
    pub email_domain: Option<String>,
}

#[derive(Default)]
pub struct ContactQuery;

#[Object]
impl ContactQuery {
    /// Contacts of the caller's account, oldest first.
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ContactFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<Contact>> {
        let filter = filter.unwrap_or_default();
        let filter = service::ContactFilter {
            kind: filter.kind.map(contact::ContactKind::from),
            assigned_to: filter.assigned_to.as_ref().map(|id| parse_id(id, "filter.assignedTo")).transpose()?,
            email_domain: filter.email_domain,
        };
        let select = service::list(caller(ctx)?, filter)?;
        let page =
            paginate(&app(ctx)?.db, select, contact::Column::Id, |c| c.id, Order::OldestFirst, PageArgs::new(first, after, last, before), Contact).await?;
        prefetch_relations(ctx, &page).await?;
        Ok(page)
    }

    async fn contact(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Contact> {
        let id = parse_id(&id, "id")?;
        Ok(Contact(service::find(&app(ctx)?.db, caller(ctx)?, id).await?))
    }

    async fn contact_person(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ContactPerson> {
        let id = parse_id(&id, "id")?;
        Ok(ContactPerson(service::find_person(&app(ctx)?.db, caller(ctx)?, id).await?))
    }
}

#[derive(InputObject)]
pub struct CreateContactInput {
    pub kind: ContactKind,
    pub name: String,
    pub main_email: Option<String>,
    /// Defaults to the main email's domain.
    pub email_domain: Option<String>,
    #[graphql(default = true)]
    pub valid: bool,
    /// In order: the first is the primary assignee.
    #[graphql(default)]
    pub assignee_ids: Vec<ID>,
}

#[derive(InputObject)]
pub struct UpdateContactInput {
    pub id: ID,
    pub kind: Option<ContactKind>,
    pub name: Option<String>,
    /// Null clears it; a new main email re-derives the domain unless one is given.
    pub main_email: MaybeUndefined<String>,
    pub email_domain: MaybeUndefined<String>,
    pub valid: Option<bool>,
}

#[derive(InputObject)]
pub struct DeleteContactInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct ContactAssigneesInput {
    pub contact_id: ID,
    pub user_ids: Vec<ID>,
}

/// A postal address.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "PostalAddressInput")]
pub struct PostalAddress {
    pub line1: String,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: String,
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. FR.
    pub country: String,
}

impl From<service::PostalAddress> for PostalAddress {
    fn from(a: service::PostalAddress) -> Self {
        Self { line1: a.line1, line2: a.line2, postal_code: a.postal_code, city: a.city, region: a.region, country: a.country }
    }
}

impl From<PostalAddress> for service::PostalAddress {
    fn from(a: PostalAddress) -> Self {
        Self { line1: a.line1, line2: a.line2, postal_code: a.postal_code, city: a.city, region: a.region, country: a.country }
    }
}

#[derive(InputObject)]
pub struct CreateContactPersonInput {
    pub contact_id: ID,
    pub name: String,
    pub email: Option<String>,
    pub position: Option<String>,
    #[graphql(default)]
    pub invalid: bool,
    /// E.164; spaces, dashes, dots and parentheses are dropped.
    pub phone: Option<String>,
    pub postal_address: Option<PostalAddress>,
    /// Makes this person the customer's main contact.
    #[graphql(default)]
    pub main: bool,
}

#[derive(InputObject)]
pub struct UpdateContactPersonInput {
    pub id: ID,
    pub name: Option<String>,
    pub email: MaybeUndefined<String>,
    pub position: MaybeUndefined<String>,
    pub invalid: Option<bool>,
    pub phone: MaybeUndefined<String>,
    pub postal_address: MaybeUndefined<PostalAddress>,
    pub main: Option<bool>,
}

#[derive(InputObject)]
pub struct DeleteContactPersonInput {
    pub id: ID,
}

pub struct ContactPayload(pub contact::Model);

#[Object]
impl ContactPayload {
    async fn contact(&self) -> Contact {
        Contact(self.0.clone())
    }
}

pub struct DeleteContactPayload(pub contact::Model);

#[Object]
impl DeleteContactPayload {
    async fn deleted_contact_id(&self) -> ID {
        ID(self.0.id.to_string())
    }
}

pub struct ContactPersonPayload(pub contact_person::Model);

#[Object]
impl ContactPersonPayload {
    async fn contact_person(&self) -> ContactPerson {
        ContactPerson(self.0.clone())
    }
}

pub struct DeleteContactPersonPayload(pub contact_person::Model);

#[Object]
impl DeleteContactPersonPayload {
    async fn deleted_contact_person_id(&self) -> ID {
        ID(self.0.id.to_string())
    }
}

#[derive(Default)]
pub struct ContactMutation;

#[Object]
impl ContactMutation {
    async fn create_contact(&self, ctx: &Context<'_>, input: CreateContactInput) -> async_graphql::Result<ContactPayload> {
        let new = service::NewContact {
            kind: input.kind.into(),
            name: input.name,
            main_email: input.main_email,
            email_domain: input.email_domain,
            valid: input.valid,
            assignee_ids: parse_ids(&input.assignee_ids, "input.assigneeIds")?,
        };
        Ok(ContactPayload(service::create(app(ctx)?, caller(ctx)?, new).await?.0))
    }

    async fn update_contact(&self, ctx: &Context<'_>, input: UpdateContactInput) -> async_graphql::Result<ContactPayload> {
        let patch = service::ContactPatch {
            id: parse_id(&input.id, "input.id")?,
            kind: input.kind.map(Into::into),
            name: input.name,
            main_email: maybe(input.main_email),
            email_domain: maybe(input.email_domain),
            valid: input.valid,
        };
        Ok(ContactPayload(service::update(app(ctx)?, caller(ctx)?, patch).await?))
    }

    /// Deletes the contact with its persons and assignments.
    async fn delete_contact(&self, ctx: &Context<'_>, input: DeleteContactInput) -> async_graphql::Result<DeleteContactPayload> {
        let id = parse_id(&input.id, "input.id")?;
        Ok(DeleteContactPayload(service::delete(app(ctx)?, caller(ctx)?, id).await?))
    }

    /// Appends users to the contact's assignees; those already assigned keep their place.
    async fn assign_contact(&self, ctx: &Context<'_>, input: ContactAssigneesInput) -> async_graphql::Result<ContactPayload> {
        let id = parse_id(&input.contact_id, "input.contactId")?;
        let users = parse_ids(&input.user_ids, "input.userIds")?;
        Ok(ContactPayload(service::assign(app(ctx)?, caller(ctx)?, id, &users).await?))
    }

    /// Removes users from the contact's assignees; the others keep their order.
    async fn unassign_contact(&self, ctx: &Context<'_>, input: ContactAssigneesInput) -> async_graphql::Result<ContactPayload> {
        let id = parse_id(&input.contact_id, "input.contactId")?;
        let users = parse_ids(&input.user_ids, "input.userIds")?;
        Ok(ContactPayload(service::unassign(app(ctx)?, caller(ctx)?, id, &users).await?))
    }

    async fn create_contact_person(&self, ctx: &Context<'_>, input: CreateContactPersonInput) -> async_graphql::Result<ContactPersonPayload> {
        let new = service::NewPerson {
            contact_id: parse_id(&input.contact_id, "input.contactId")?,
            name: input.name,
            email: input.email,
            position: input.position,
            invalid: input.invalid,
            phone: input.phone,
            postal_address: input.postal_address.map(Into::into),
            main: input.main,
        };
        Ok(ContactPersonPayload(service::create_person(app(ctx)?, caller(ctx)?, new).await?))
    }

    async fn update_contact_person(&self, ctx: &Context<'_>, input: UpdateContactPersonInput) -> async_graphql::Result<ContactPersonPayload> {
        let patch = service::PersonPatch {
            id: parse_id(&input.id, "input.id")?,
            name: input.name,
            email: maybe(input.email),
            position: maybe(input.position),
            invalid: input.invalid,
            phone: maybe(input.phone),
            postal_address: maybe(input.postal_address).map(|a| a.map(Into::into)),
            main: input.main,
        };
        Ok(ContactPersonPayload(service::update_person(app(ctx)?, caller(ctx)?, patch).await?))
    }

    async fn delete_contact_person(&self, ctx: &Context<'_>, input: DeleteContactPersonInput) -> async_graphql::Result<DeleteContactPersonPayload> {
        let id = parse_id(&input.id, "input.id")?;
        Ok(DeleteContactPersonPayload(service::delete_person(app(ctx)?, caller(ctx)?, id).await?))
    }
}
