use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};
use chrono::{DateTime, Utc};
use entity::project;

use super::{
    app, caller,
    connection::{paginate, IdConnection, Order, PageArgs},
    contacts::Contact,
    loaders, parse_id,
    users::maybe,
};
use crate::{crm::projects as service, error::ApiError};

pub struct Project(pub project::Model);

#[Object]
impl Project {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The customer the project is for, if any.
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        let Some(id) = self.0.customer_id else { return Ok(None) };
        Ok(loaders(ctx)?.load_one(loaders::ContactId(id)).await.map_err(ApiError::from)?.map(Contact))
    }
}

#[derive(InputObject, Default)]
pub struct ProjectFilter {
    pub customer_id: Option<ID>,
}

#[derive(Default)]
pub struct ProjectQuery;

#[Object]
impl ProjectQuery {
    async fn projects(
        &self,
        ctx: &Context<'_>,
        filter: Option<ProjectFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<IdConnection<Project>> {
        let customer = filter.unwrap_or_default().customer_id.as_ref().map(|id| parse_id(id, "filter.customerId")).transpose()?;
        let select = service::list(caller(ctx)?, customer)?;
        let page =
            paginate(&app(ctx)?.db, select, project::Column::Id, |p| p.id, Order::OldestFirst, PageArgs::new(first, after, last, before), Project).await?;
        if loaders::wants(ctx, "customer") {
            let customers = page.edges.iter().filter_map(|e| e.node.0.customer_id).map(loaders::ContactId).collect();
            loaders::prefetch(loaders(ctx)?, customers).await.map_err(ApiError::from)?;
        }
        Ok(page)
    }

    async fn project(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Project> {
        let id = parse_id(&id, "id")?;
        Ok(Project(service::find(&app(ctx)?.db, caller(ctx)?, id).await?))
    }
}

#[derive(InputObject)]
pub struct CreateProjectInput {
    pub name: String,
    /// A contact of kind CUSTOMER.
    pub customer_id: Option<ID>,
}

#[derive(InputObject)]
pub struct UpdateProjectInput {
    pub id: ID,
    pub name: Option<String>,
    /// Null detaches the project from its customer.
    pub customer_id: MaybeUndefined<ID>,
}

#[derive(InputObject)]
pub struct DeleteProjectInput {
    pub id: ID,
}

pub struct ProjectPayload(pub project::Model);

#[Object]
impl ProjectPayload {
    async fn project(&self) -> Project {
        Project(self.0.clone())
    }
}

pub struct DeleteProjectPayload(pub project::Model);

#[Object]
impl DeleteProjectPayload {
    async fn deleted_project_id(&self) -> ID {
        ID(self.0.id.to_string())
    }
}

#[derive(Default)]
pub struct ProjectMutation;

#[Object]
impl ProjectMutation {
    async fn create_project(&self, ctx: &Context<'_>, input: CreateProjectInput) -> async_graphql::Result<ProjectPayload> {
        let customer = input.customer_id.as_ref().map(|id| parse_id(id, "input.customerId")).transpose()?;
        Ok(ProjectPayload(service::create(app(ctx)?, caller(ctx)?, &input.name, customer).await?))
    }

    async fn update_project(&self, ctx: &Context<'_>, input: UpdateProjectInput) -> async_graphql::Result<ProjectPayload> {
        let id = parse_id(&input.id, "input.id")?;
        let customer = match maybe(input.customer_id) {
            Some(Some(id)) => Some(Some(parse_id(&id, "input.customerId")?)),
            Some(None) => Some(None),
            None => None,
        };
        Ok(ProjectPayload(service::update(app(ctx)?, caller(ctx)?, id, input.name.as_deref(), customer).await?))
    }

    async fn delete_project(&self, ctx: &Context<'_>, input: DeleteProjectInput) -> async_graphql::Result<DeleteProjectPayload> {
        let id = parse_id(&input.id, "input.id")?;
        Ok(DeleteProjectPayload(service::delete(app(ctx)?, caller(ctx)?, id).await?))
    }
}
