//! System reports recipients (seeds/000, Account > Report settings): the roles that receive
//! integration reports, users added to them, and the BCC address every report carries.
//!
//! Decisions where the page is silent:
//! - One settings object per account, saved whole against `expectedVersion` (0 for one never
//!   saved), audited; "reset" restores the defaults: company admins, no added users, no BCC.
//! - Company admins and WRITE keys change it (WRITE is the scope of every settings object);
//!   company admins and READ keys read it.
//! - Added users must be users of the account; the roles are the three admin roles of the
//!   seed (plain users are added by name, not by role).
//! - [`recipients`] answers who would receive a report now: members of the roles and the added
//!   users, active only, each once, in that order (roles first, then as listed).

use std::collections::HashSet;

use chrono::Utc;
use entity::{report_recipient, report_settings, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
    validate,
};

pub use entity::user::Role;

/// Users that may be added by name, at most.
pub const MAX_ADDED_USERS: usize = 100;

/// The grouping window of contact mapping errors, by default and at most (a day).
pub const DEFAULT_WINDOW_MINUTES: i32 = 15;
pub const MAX_WINDOW_MINUTES: i32 = 24 * 60;

/// The roles that may receive reports (seeds/000).
pub const REPORT_ROLES: [Role; 3] = [Role::BillingAdmin, Role::CompanyAdmin, Role::CompanySupervisor];

/// An account's report settings as they stand: saved, or the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportSettings {
    pub roles: Vec<Role>,
    pub user_ids: Vec<Uuid>,
    pub bcc: Option<String>,
    /// Contact mapping errors reported within this many minutes go out as one email.
    pub mapping_error_window_minutes: i32,
    /// 0 while never saved.
    pub version: i32,
    #[serde(skip)]
    pub updated_at: Option<chrono::DateTime<Utc>>,
}

impl ReportSettings {
    fn defaults() -> Self {
        Self {
            roles: vec![Role::CompanyAdmin],
            user_ids: Vec::new(),
            bcc: None,
            mapping_error_window_minutes: DEFAULT_WINDOW_MINUTES,
            version: 0,
            updated_at: None,
        }
    }

    fn of(row: report_settings::Model, user_ids: Vec<Uuid>) -> Self {
        let roles = [(Role::BillingAdmin, row.billing_admins), (Role::CompanyAdmin, row.company_admins), (Role::CompanySupervisor, row.company_supervisors)]
            .into_iter()
            .filter_map(|(role, on)| on.then_some(role))
            .collect();
        Self {
            roles,
            user_ids,
            bcc: row.bcc,
            mapping_error_window_minutes: row.mapping_error_window_minutes,
            version: row.version,
            updated_at: Some(row.updated_at),
        }
    }
}

async fn load(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<ReportSettings> {
    let Some(row) = report_settings::Entity::find_by_id(account_id).one(db).await? else {
        return Ok(ReportSettings::defaults());
    };
    let added = report_recipient::Entity::find()
        .filter(report_recipient::Column::AccountId.eq(account_id))
        .order_by_asc(report_recipient::Column::Position)
        .all(db)
        .await?;
    Ok(ReportSettings::of(row, added.into_iter().map(|r| r.user_id).collect()))
}

/// The account's report settings (company admins, READ keys).
pub async fn settings(db: &impl ConnectionTrait, caller: &Caller) -> ApiResult<ReportSettings> {
    caller.require_admin_or_read_key()?;
    load(db, caller.account_id).await
}

/// A user who would receive a report now, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub user: user::Model,
    /// A member of one of the roles.
    pub by_role: bool,
    /// Added by name.
    pub added: bool,
}

/// Who receives the account's reports now: active members of the roles, then the active
/// added users, each once.
pub async fn recipients(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<(ReportSettings, Vec<Recipient>)> {
    let settings = load(db, account_id).await?;
    let mut wanted = user::Entity::find().filter(user::Column::AccountId.eq(account_id)).filter(user::Column::Active.eq(true));
    let roles = settings.roles.clone();
    let ids = settings.user_ids.clone();
    wanted = wanted.filter(sea_orm::Condition::any().add(user::Column::Role.is_in(roles.clone())).add(user::Column::Id.is_in(ids.clone())));
    let users = wanted.order_by_asc(user::Column::Name).order_by_asc(user::Column::Id).all(db).await?;
    let mut by_role: Vec<Recipient> = Vec::new();
    let mut added: Vec<Recipient> = Vec::new();
    for u in users {
        let (in_role, listed) = (roles.contains(&u.role), ids.contains(&u.id));
        let r = Recipient { user: u, by_role: in_role, added: listed };
        if in_role {
            by_role.push(r);
        } else {
            added.push(r);
        }
    }
    // Added users in the order they were listed.
    added.sort_by_key(|r| ids.iter().position(|id| *id == r.user.id));
    by_role.extend(added);
    Ok((settings, by_role))
}

/// Who receives the caller's account's reports now (company admins, READ keys).
pub async fn current_recipients(db: &impl ConnectionTrait, caller: &Caller) -> ApiResult<Vec<Recipient>> {
    caller.require_admin_or_read_key()?;
    Ok(recipients(db, caller.account_id).await?.1)
}

/// What a change asks for.
#[derive(Clone, Debug)]
pub struct ChangeInput {
    pub expected_version: i32,
    pub roles: Vec<Role>,
    pub user_ids: Vec<Uuid>,
    pub bcc: Option<String>,
    /// `None` keeps the default.
    pub mapping_error_window_minutes: Option<i32>,
}

/// Saves the settings whole (company admins, WRITE keys).
pub async fn change(app: &AppState, caller: &Caller, input: ChangeInput) -> ApiResult<ReportSettings> {
    caller.require_admin_or_write_key()?;
    if let Some(role) = input.roles.iter().find(|r| !REPORT_ROLES.contains(r)) {
        return Err(ApiError::bad_input("input.roles", format!("{role:?} does not receive reports: BILLING_ADMIN, COMPANY_ADMIN or COMPANY_SUPERVISOR")));
    }
    let mut seen = HashSet::new();
    let user_ids: Vec<Uuid> = input.user_ids.into_iter().filter(|id| seen.insert(*id)).collect();
    if user_ids.len() > MAX_ADDED_USERS {
        return Err(ApiError::bad_input("input.userIds", format!("at most {MAX_ADDED_USERS} users")));
    }
    let bcc = match input.bcc.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        Some(b) => Some(validate::email("input.bcc", b)?),
        None => None,
    };
    let window = input.mapping_error_window_minutes.unwrap_or(DEFAULT_WINDOW_MINUTES);
    if !(1..=MAX_WINDOW_MINUTES).contains(&window) {
        return Err(ApiError::bad_input("input.mappingErrorWindowMinutes", format!("from 1 to {MAX_WINDOW_MINUTES} minutes")));
    }
    let wanted = ReportSettings { roles: input.roles, user_ids, bcc, mapping_error_window_minutes: window, version: input.expected_version, updated_at: None };
    save(app, caller, input.expected_version, wanted, "report_settings.changed").await
}

/// Restores the defaults: company admins, no added users, no BCC, a 15-minute window.
pub async fn reset(app: &AppState, caller: &Caller, expected_version: i32) -> ApiResult<ReportSettings> {
    caller.require_admin_or_write_key()?;
    save(app, caller, expected_version, ReportSettings::defaults(), "report_settings.reset").await
}

async fn save(app: &AppState, caller: &Caller, expected_version: i32, wanted: ReportSettings, action: &str) -> ApiResult<ReportSettings> {
    let account_id = caller.account_id;
    let mut change = Change::begin(app, caller).await?;
    let before = load(change.db(), account_id).await?;
    if before.version != expected_version {
        return Err(ApiError::Conflict(format!("the report settings changed since version {expected_version} (now {}): reload and try again", before.version)));
    }
    if !wanted.user_ids.is_empty() {
        let found = user::Entity::find()
            .filter(user::Column::AccountId.eq(account_id))
            .filter(user::Column::Id.is_in(wanted.user_ids.clone()))
            .all(change.db())
            .await?;
        // By position: an id of another tenant's user is not echoed back.
        if let Some(missing) = wanted.user_ids.iter().position(|id| !found.iter().any(|u| u.id == *id)) {
            return Err(ApiError::bad_input("input.userIds", format!("the user at position {} is not a user of this account", missing + 1)));
        }
    }
    let now = Utc::now();
    let row = report_settings::Model {
        account_id,
        billing_admins: wanted.roles.contains(&Role::BillingAdmin),
        company_admins: wanted.roles.contains(&Role::CompanyAdmin),
        company_supervisors: wanted.roles.contains(&Role::CompanySupervisor),
        bcc: wanted.bcc.clone(),
        mapping_error_window_minutes: wanted.mapping_error_window_minutes,
        version: before.version + 1,
        updated_at: now,
        updated_by: caller.user_id(),
    };
    let stale = || ApiError::Conflict("the report settings were changed by someone else meanwhile: reload and try again".into());
    if before.version == 0 {
        match row.into_active_model().reset_all().insert(change.db()).await {
            Ok(_) => {}
            Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => return Err(stale()),
            Err(e) => return Err(e.into()),
        }
    } else {
        match report_settings::Entity::update(row.into_active_model().reset_all())
            .filter(report_settings::Column::Version.eq(before.version))
            .exec(change.db())
            .await
        {
            Ok(_) => {}
            Err(sea_orm::DbErr::RecordNotUpdated) => return Err(stale()),
            Err(e) => return Err(e.into()),
        }
    }
    report_recipient::Entity::delete_many().filter(report_recipient::Column::AccountId.eq(account_id)).exec(change.db()).await?;
    let added: Vec<report_recipient::Model> =
        wanted.user_ids.iter().enumerate().map(|(i, user_id)| report_recipient::Model { account_id, user_id: *user_id, position: i as i32 }).collect();
    crate::db::insert_all::<report_recipient::Entity>(change.db(), &added).await?;
    let after = load(change.db(), account_id).await?;
    change.record(account_id, action, "ReportSettings", account_id, Some(&before), Some(&after)).await?;
    change.commit().await?;
    Ok(after)
}
