//! The first account and company admin of a new database, so that a newcomer can sign in
//! at once (`cargo run` prints the admin's token) and production can be set up with
//! `api bootstrap`.

use chrono::Utc;
use entity::{account, user, user::Role};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, PaginatorTrait};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    validate,
};

pub struct FirstAdmin {
    pub account_name: String,
    pub time_zone: String,
    pub admin_name: String,
    pub admin_email: String,
}

impl Default for FirstAdmin {
    fn default() -> Self {
        Self { account_name: "My company".into(), time_zone: "UTC".into(), admin_name: "Administrator".into(), admin_email: "admin@example.com".into() }
    }
}

/// Creates the first account and its admin when the database has no account yet; returns
/// them, or `None` when the database was already set up.
pub async fn bootstrap(db: &DatabaseConnection, first: FirstAdmin) -> ApiResult<Option<(account::Model, user::Model)>> {
    let tenant = first.checked()?;
    let txn = crate::db::begin_write(db).await?;
    if account::Entity::find().count(&txn).await? > 0 {
        return Ok(None);
    }
    let created = create_tenant(&txn, tenant).await?;
    txn.commit().await.map_err(ApiError::from)?;
    Ok(Some(created))
}

impl FirstAdmin {
    /// The same, checked and normalised; errors name the fields of `createAccount`'s input.
    pub fn checked(self) -> ApiResult<FirstAdmin> {
        Ok(FirstAdmin {
            time_zone: validate::time_zone("input.timeZone", &self.time_zone)?,
            account_name: validate::name("input.name", &self.account_name)?,
            admin_name: validate::name("input.adminName", &self.admin_name)?,
            admin_email: validate::email("input.adminEmail", &self.admin_email)?,
        })
    }
}

/// A top-level account and its first company admin, in `txn`, from checked input.
pub async fn create_tenant(txn: &impl ConnectionTrait, first: FirstAdmin) -> ApiResult<(account::Model, user::Model)> {
    let now = Utc::now();
    let account = account::Model {
        id: Uuid::now_v7(),
        name: first.account_name,
        parent_id: None,
        time_zone: first.time_zone,
        paused: false,
        add_ons: serde_json::json!([]),
        version: 1,
        created_at: now,
        updated_at: now,
        updated_by: None,
        primary_admin_id: None,
    }
    .into_active_model()
    .reset_all()
    .insert(txn)
    .await?;
    let admin = user::Model {
        id: Uuid::now_v7(),
        account_id: account.id,
        name: first.admin_name,
        email: first.admin_email,
        phone: None,
        role: Role::CompanyAdmin,
        active: true,
        created_at: now,
        updated_at: now,
    }
    .into_active_model()
    .reset_all()
    .insert(txn)
    .await?;
    Ok((account, admin))
}
