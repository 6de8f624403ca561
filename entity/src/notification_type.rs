//! The notification types: every CRM event a user can be notified of. What the settings page
//! shows about each (label, description, whether it concerns a contact) is `api`'s catalog.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(64))", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationType {
    AccountPaused,
    ActionPlanSteps,
    AssignedUser,
    ClientExport,
    ClientImport,
    ClientUpdate,
    ContactMoved,
    DownloadReport,
    EmailFailedError,
    DuplicateClient,
    FranchiseeStatisticsReport,
    TestInboxRead,
    EmailReceived,
    NewLead,
    ManualAppointment,
    ManualCallSchedule,
    ManualContactReminder,
    ManualEmailSent,
    ManualTextSent,
    BulkReassigned,
    BulkReleased,
    Warnings,
    ParserCreated,
    ParserUpdated,
    PassThrough,
    ProposalOpen,
    ProposalSign,
    ProposalSentToDispatch,
    SingleReassigned,
    SingleReleased,
    SystemInformation,
    SystemErrorInformation,
    TextReceived,
    TextStopped,
    #[cfg_attr(feature = "graphql", graphql(name = "THUMBTACK"))]
    #[serde(rename = "THUMBTACK")]
    #[sea_orm(string_value = "THUMBTACK")]
    ThumbTack,
    Voicemails,
    ActivityReminder,
    LateActivity,
    IntegrationReauthenticationRequired,
    ContactMappingError,
    DataSyncSummary,
    IntegrationEnabled,
    IntegrationDisabled,
    AutomatedCommunicationNeedsAttention,
}
