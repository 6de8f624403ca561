//! An integration's settings tabs (seeds/000): SYNC, CONTACT_PROPERTY_MAPPING, FILTERS and
//! COMMUNICATION, in that order, saved together and reset one at a time.
//!
//! Where the seed is silent, the tabs hold what HubSpot's, Salesforce's and Zoho's own CRM
//! integrations offer:
//! - SYNC: direction (to the integration, from it, both ways), how often (minutes), which
//!   objects (contacts, companies, deals, activities) and who wins a conflict.
//! - CONTACT_PROPERTY_MAPPING: rows of a CRM contact field, an integration property and a
//!   direction. The properties are the provider's standard contact properties
//!   ([`properties`]); a field is mapped at most once, a property at most once, and their
//!   types must fit (an email field to an email or text property, a yes/no to a boolean).
//! - FILTERS (when the feature is on): rules a contact must all meet to be synced.
//! - COMMUNICATION (when the feature is on): what is logged to the integration's timeline.
//!
//! Defaults ("system-recommended", what reset restores): both ways every 15 minutes,
//! contacts and companies, the most recent change wins; name and email mapped both ways; no
//! filters; emails and calls logged, meetings, notes and texts not.

use entity::integration::Provider;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

/// The tabs, in the order a front end offers them (Back and Next).
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "IntegrationTab")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tab {
    Sync,
    ContactPropertyMapping,
    Filters,
    Communication,
}

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "SyncDirection")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// Herald's CRM writes to the integration.
    ToIntegration,
    /// The integration writes to Herald's CRM.
    FromIntegration,
    Both,
}

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncObject {
    Contacts,
    Companies,
    Deals,
    Activities,
}

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConflictRule {
    CrmWins,
    IntegrationWins,
    /// The side changed last wins.
    MostRecent,
}

/// A CRM contact field that can be mapped or filtered on.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CrmField {
    Name,
    MainEmail,
    EmailDomain,
    Kind,
    Valid,
    PrimaryAssigneeEmail,
}

/// What a field or property holds, for type checks.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "PropertyType")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValueType {
    Text,
    Email,
    Domain,
    Choice,
    Boolean,
}

impl CrmField {
    pub fn value_type(self) -> ValueType {
        match self {
            Self::Name => ValueType::Text,
            Self::MainEmail | Self::PrimaryAssigneeEmail => ValueType::Email,
            Self::EmailDomain => ValueType::Domain,
            Self::Kind => ValueType::Choice,
            Self::Valid => ValueType::Boolean,
        }
    }
}

/// Whether a CRM field of type `from` may be mapped to a property of type `to`.
fn fits(from: ValueType, to: ValueType) -> bool {
    use ValueType::*;
    from == to || matches!((from, to), (Email | Domain | Choice, Text) | (Text, Choice))
}

/// A provider's contact property, as its API names it.
#[derive(async_graphql::SimpleObject, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(name = "IntegrationProperty")]
pub struct Property {
    pub name: &'static str,
    pub label: &'static str,
    pub value_type: ValueType,
}

const fn p(name: &'static str, label: &'static str, value_type: ValueType) -> Property {
    Property { name, label, value_type }
}

/// The provider's standard contact properties (custom properties are the next step: they
/// need the integration service to report the account's catalogue).
pub fn properties(provider: Provider) -> &'static [Property] {
    use ValueType::*;
    const HUBSPOT: &[Property] = &[
        p("firstname", "First name", Text),
        p("lastname", "Last name", Text),
        p("email", "Email", Email),
        p("company", "Company name", Text),
        p("website", "Website URL", Domain),
        p("lifecyclestage", "Lifecycle stage", Choice),
        p("hs_lead_status", "Lead status", Choice),
        p("hubspot_owner_email", "Contact owner's email", Email),
        p("hs_email_optout", "Unsubscribed from all email", Boolean),
    ];
    const SALESFORCE: &[Property] = &[
        p("FirstName", "First Name", Text),
        p("LastName", "Last Name", Text),
        p("Email", "Email", Email),
        p("Company", "Company", Text),
        p("Website", "Website", Domain),
        p("LeadSource", "Lead Source", Choice),
        p("Status", "Lead Status", Choice),
        p("OwnerEmail", "Owner's Email", Email),
        p("HasOptedOutOfEmail", "Email Opt Out", Boolean),
    ];
    const ZOHO: &[Property] = &[
        p("First_Name", "First Name", Text),
        p("Last_Name", "Last Name", Text),
        p("Email", "Email", Email),
        p("Account_Name", "Account Name", Text),
        p("Website", "Website", Domain),
        p("Lead_Source", "Lead Source", Choice),
        p("Lead_Status", "Lead Status", Choice),
        p("Owner_Email", "Owner's Email", Email),
        p("Email_Opt_Out", "Email Opt Out", Boolean),
    ];
    match provider {
        Provider::Hubspot => HUBSPOT,
        Provider::Salesforce => SALESFORCE,
        Provider::Zoho => ZOHO,
    }
}

#[derive(async_graphql::SimpleObject, async_graphql::InputObject, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "SyncSettings", input_name = "SyncSettingsInput")]
#[serde(rename_all = "camelCase")]
pub struct SyncTab {
    pub direction: Direction,
    pub frequency_minutes: i32,
    pub objects: Vec<SyncObject>,
    pub conflict_rule: ConflictRule,
}

#[derive(async_graphql::SimpleObject, async_graphql::InputObject, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "PropertyMapping", input_name = "PropertyMappingInput")]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    pub crm_field: CrmField,
    pub property: String,
    pub direction: Direction,
}

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterOperator {
    Equals,
    NotEquals,
    Contains,
    IsSet,
    IsNotSet,
}

#[derive(async_graphql::SimpleObject, async_graphql::InputObject, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "FilterRule", input_name = "FilterRuleInput")]
#[serde(rename_all = "camelCase")]
pub struct FilterRule {
    pub field: CrmField,
    pub operator: FilterOperator,
    /// For EQUALS, NOT_EQUALS and CONTAINS.
    pub value: Option<String>,
}

#[derive(async_graphql::SimpleObject, async_graphql::InputObject, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "CommunicationSettings", input_name = "CommunicationSettingsInput")]
#[serde(rename_all = "camelCase")]
pub struct CommunicationTab {
    pub log_emails: bool,
    pub log_calls: bool,
    pub log_meetings: bool,
    pub log_notes: bool,
    pub log_texts: bool,
}

/// All four tabs, as stored.
#[derive(async_graphql::SimpleObject, async_graphql::InputObject, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[graphql(name = "IntegrationSettings", input_name = "IntegrationSettingsInput")]
#[serde(rename_all = "camelCase")]
pub struct Tabs {
    pub sync: SyncTab,
    pub mapping: Vec<Mapping>,
    pub filters: Vec<FilterRule>,
    pub communication: CommunicationTab,
}

pub const MIN_FREQUENCY_MINUTES: i32 = 5;
pub const MAX_FREQUENCY_MINUTES: i32 = 1440;
pub const MAX_MAPPINGS: usize = 100;
pub const MAX_FILTERS: usize = 50;

impl Tabs {
    /// The system-recommended settings of a new integration with `provider`.
    pub fn defaults(provider: Provider) -> Self {
        let (first_name, email) = match provider {
            Provider::Hubspot => ("firstname", "email"),
            Provider::Salesforce => ("FirstName", "Email"),
            Provider::Zoho => ("First_Name", "Email"),
        };
        Self {
            sync: Self::default_sync(),
            mapping: vec![
                Mapping { crm_field: CrmField::Name, property: first_name.into(), direction: Direction::Both },
                Mapping { crm_field: CrmField::MainEmail, property: email.into(), direction: Direction::Both },
            ],
            filters: Vec::new(),
            communication: Self::default_communication(),
        }
    }

    fn default_sync() -> SyncTab {
        SyncTab {
            direction: Direction::Both,
            frequency_minutes: 15,
            objects: vec![SyncObject::Contacts, SyncObject::Companies],
            conflict_rule: ConflictRule::MostRecent,
        }
    }

    fn default_communication() -> CommunicationTab {
        CommunicationTab { log_emails: true, log_calls: true, log_meetings: false, log_notes: false, log_texts: false }
    }

    /// Restores one tab to its defaults; answers the names of the settings that changed.
    pub fn reset(&mut self, tab: Tab) -> Vec<&'static str> {
        let mut changed = Vec::new();
        match tab {
            Tab::Sync => {
                let d = Self::default_sync();
                let s = &mut self.sync;
                for (name, differs) in [
                    ("direction", s.direction != d.direction),
                    ("frequencyMinutes", s.frequency_minutes != d.frequency_minutes),
                    ("objects", s.objects != d.objects),
                    ("conflictRule", s.conflict_rule != d.conflict_rule),
                ] {
                    if differs {
                        changed.push(name);
                    }
                }
                *s = d;
            }
            Tab::Filters => {
                if !self.filters.is_empty() {
                    changed.push("filters");
                }
                self.filters.clear();
            }
            Tab::Communication => {
                let d = Self::default_communication();
                let c = &mut self.communication;
                for (name, differs) in [
                    ("logEmails", c.log_emails != d.log_emails),
                    ("logCalls", c.log_calls != d.log_calls),
                    ("logMeetings", c.log_meetings != d.log_meetings),
                    ("logNotes", c.log_notes != d.log_notes),
                    ("logTexts", c.log_texts != d.log_texts),
                ] {
                    if differs {
                        changed.push(name);
                    }
                }
                *c = d;
            }
            // The mapping is the account's own data model: no recommended state to go back to.
            Tab::ContactPropertyMapping => {}
        }
        changed
    }

    /// Checks all tabs together; every error names its tab and field
    /// (`input.sync.frequencyMinutes`, `input.mapping[2].property`, …). The first found is
    /// answered.
    pub fn check(&self, provider: Provider, filters_on: bool, communication_on: bool) -> ApiResult<()> {
        let s = &self.sync;
        if !(MIN_FREQUENCY_MINUTES..=MAX_FREQUENCY_MINUTES).contains(&s.frequency_minutes) {
            return Err(ApiError::bad_input("input.settings.sync.frequencyMinutes", format!("{MIN_FREQUENCY_MINUTES} to {MAX_FREQUENCY_MINUTES} minutes")));
        }
        if s.objects.is_empty() {
            return Err(ApiError::bad_input("input.settings.sync.objects", "sync at least one kind of object"));
        }
        if self.mapping.len() > MAX_MAPPINGS {
            return Err(ApiError::bad_input("input.settings.mapping", format!("at most {MAX_MAPPINGS} rows")));
        }
        let catalogue = properties(provider);
        let mut fields = std::collections::HashSet::new();
        let mut props = std::collections::HashSet::new();
        for (i, m) in self.mapping.iter().enumerate() {
            let Some(property) = catalogue.iter().find(|p| p.name == m.property) else {
                return Err(ApiError::bad_input(
                    format!("input.settings.mapping[{i}].property"),
                    format!("{:?} is not a {provider:?} contact property", m.property),
                ));
            };
            if !fields.insert(m.crm_field) {
                return Err(ApiError::bad_input(format!("input.settings.mapping[{i}].crmField"), format!("{:?} is mapped more than once", m.crm_field)));
            }
            if !props.insert(property.name) {
                return Err(ApiError::bad_input(format!("input.settings.mapping[{i}].property"), format!("{:?} is mapped more than once", property.name)));
            }
            if !fits(m.crm_field.value_type(), property.value_type) {
                return Err(ApiError::bad_input(
                    format!("input.settings.mapping[{i}].property"),
                    format!("{:?} holds {:?}, which does not fit {:?} ({:?})", property.name, property.value_type, m.crm_field, m.crm_field.value_type()),
                ));
            }
        }
        if !self.filters.is_empty() && !filters_on {
            return Err(ApiError::bad_input("input.settings.filters", "the FILTERS feature is off for this integration"));
        }
        if self.filters.len() > MAX_FILTERS {
            return Err(ApiError::bad_input("input.settings.filters", format!("at most {MAX_FILTERS} rules")));
        }
        for (i, f) in self.filters.iter().enumerate() {
            let needs_value = matches!(f.operator, FilterOperator::Equals | FilterOperator::NotEquals | FilterOperator::Contains);
            match (&f.value, needs_value) {
                (None, true) => return Err(ApiError::bad_input(format!("input.settings.filters[{i}].value"), "give the value to compare with")),
                (Some(v), true) if v.trim().is_empty() || v.len() > 500 => {
                    return Err(ApiError::bad_input(format!("input.settings.filters[{i}].value"), "1 to 500 characters"))
                }
                (Some(_), false) => return Err(ApiError::bad_input(format!("input.settings.filters[{i}].value"), "IS_SET and IS_NOT_SET take no value")),
                _ => {}
            }
        }
        let default_comm = Self::default_communication();
        if !communication_on && self.communication != default_comm {
            return Err(ApiError::bad_input("input.settings.communication", "the COMMUNICATION feature is off for this integration"));
        }
        Ok(())
    }
}

/// The tabs a front end offers for an integration, in order (FILTERS and COMMUNICATION only
/// when that feature is on).
pub fn available_tabs(filters_on: bool, communication_on: bool) -> Vec<Tab> {
    let mut tabs = vec![Tab::Sync, Tab::ContactPropertyMapping];
    if filters_on {
        tabs.push(Tab::Filters);
    }
    if communication_on {
        tabs.push(Tab::Communication);
    }
    tabs
}
