//! The notification types: every CRM event a user can be notified of, with what the settings
//! page shows about each.
//!
//! Source: the notification-settings document (seeds/002) for the CRM's own types, and the
//! issues for those Herald's features raise (activity reminders and escalations, CRM
//! integration alerts, workflow communications). Starred types of the document are
//! "strongly encouraged": their System switch is on by default. Decisions for the types the
//! document does not cover are written next to them.

use crate::crm::add_ons::AddOn;

pub use entity::notification_type::NotificationType;

/// What the settings page shows about a type.
#[derive(Debug)]
pub struct TypeInfo {
    pub kind: NotificationType,
    pub label: &'static str,
    pub description: &'static str,
    /// Events of this type are about one contact: only then do AU, Text AU and Email AU apply.
    pub concerns_contact: bool,
    /// Starred in the settings page; System is on by default.
    pub strongly_encouraged: bool,
    pub requires_add_on: Option<AddOn>,
    /// An integration the account must have turned on for such events to exist.
    pub requires_integration: Option<&'static str>,
}

const fn t(kind: NotificationType, label: &'static str, description: &'static str, concerns_contact: bool, strongly_encouraged: bool) -> TypeInfo {
    TypeInfo { kind, label, description, concerns_contact, strongly_encouraged, requires_add_on: None, requires_integration: None }
}

const fn with_add_on(info: TypeInfo, add_on: AddOn) -> TypeInfo {
    TypeInfo { requires_add_on: Some(add_on), ..info }
}

const fn with_integration(info: TypeInfo, integration: &'static str) -> TypeInfo {
    TypeInfo { requires_integration: Some(integration), ..info }
}

use NotificationType::*;

/// In the settings page's order.
pub static CATALOG: &[TypeInfo] = &[
    t(AccountPaused, "Account Paused", "The account was switched from Active to Paused in Account Info.", false, true),
    t(ActionPlanSteps, "Action Plan Steps", "A step of an action plan that has its notification option selected was completed.", true, false),
    t(AssignedUser, "Assigned User", "A contact was given an assigned user by a sales cycle or an action plan (not manually).", true, false),
    t(ClientExport, "Client Export", "A contact export finished.", false, false),
    t(ClientImport, "Client Import", "A contact import finished.", false, false),
    t(ClientUpdate, "Client Update", "A mass contact update from an uploaded spreadsheet finished.", false, false),
    t(ContactMoved, "Contact Moved", "A contact moved between accounts (lead routing, release, reassignment).", true, false),
    t(DownloadReport, "Download Report", "A dashboard report is ready to download.", false, false),
    // The document ties it to sending without an outside SMTP system; it concerns the user
    // whose mail failed, not a contact's assignee (the delivery issue raises it that way).
    t(EmailFailedError, "Email Failed Error", "An email could not be sent.", false, true),
    t(
        DuplicateClient,
        "Duplicate Client",
        "A duplicate of an existing contact was submitted; AU texts and emails go to the original contact's assigned user.",
        true,
        true,
    ),
    t(FranchiseeStatisticsReport, "Franchisee Statistics Report", "The franchisee statistics report is ready to download.", false, false),
    t(TestInboxRead, "Test Inbox Read", "The user tested reading their inbox after setting up SMTP.", false, false),
    with_integration(t(EmailReceived, "Email Received", "The user received an email (Outlook connected through OAuth2 only).", true, false), "OUTLOOK"),
    t(NewLead, "New Lead", "A new contact was created for the account (not for manually created contacts).", true, false),
    t(ManualAppointment, "Manual Appointment", "An appointment created with its notification box checked is due.", true, false),
    t(ManualCallSchedule, "Manual Call Schedule", "A call created with its notification box checked is due.", true, false),
    t(ManualContactReminder, "Manual Contact Reminder", "A contact reminder created with its notification box checked is due.", true, false),
    t(ManualEmailSent, "Manual Email Sent", "A manual email was sent to a contact.", true, false),
    with_add_on(t(ManualTextSent, "Manual Text Sent", "A manual text was sent to a contact.", true, false), AddOn::TextMessaging),
    t(BulkReassigned, "Bulk Reassigned", "More than 5 contacts moved to the account by bulk reassignment.", false, false),
    t(BulkReleased, "Bulk Released", "More than 5 contacts moved to the account by bulk release.", false, false),
    t(Warnings, "Warnings", "Warnings about the account's data or configuration.", false, true),
    t(ParserCreated, "Parser Created", "A parser created a new contact.", true, false),
    t(ParserUpdated, "Parser Updated", "A parser updated an existing contact.", true, false),
    t(PassThrough, "Pass Through", "A lead was passed through to the account.", true, false),
    t(ProposalOpen, "Proposal Open", "A contact opened a proposal through its long or short quote link.", true, false),
    t(ProposalSign, "Proposal Sign", "A contact signed a proposal.", true, true),
    with_integration(t(ProposalSentToDispatch, "Proposal Sent to Dispatch", "A proposal was sent to Dispatch (select clients only).", true, false), "DISPATCH"),
    t(SingleReassigned, "Single Reassigned", "A contact moved to the account by reassignment.", true, false),
    t(SingleReleased, "Single Released", "A contact moved to the account by release.", true, false),
    t(SystemInformation, "System Information", "Information from the system about the account.", false, true),
    t(SystemErrorInformation, "System Error Information", "An error the system met while working for the account.", false, true),
    with_add_on(
        t(TextReceived, "Text Received", "A new text message was received; AU texts and emails go to the contact's assigned user only.", true, true),
        AddOn::TextMessaging,
    ),
    with_add_on(
        t(TextStopped, "Text Stopped", "A contact unsubscribed from texts; texting resumes only when they text \"Start\".", true, true),
        AddOn::TextMessaging,
    ),
    with_integration(t(ThumbTack, "ThumbTack", "A new ThumbTack message was received.", true, false), "THUMBTACK"),
    t(Voicemails, "Voicemails", "A new voicemail was received; AU texts and emails go to the contact's assigned user only.", true, true),
    // Raised by Herald's own features. Reminders and escalations are the point of activity
    // alerts, and integration and automation problems stop work until someone acts: all
    // strongly encouraged, except the informational summaries and toggles.
    t(ActivityReminder, "Activity Reminder", "An activity is due soon.", true, true),
    t(LateActivity, "Late Activity", "An activity is past its due time and not completed.", true, true),
    with_integration(
        t(
            IntegrationReauthenticationRequired,
            "Integration Re-authentication Required",
            "A CRM integration lost its authorization and must be connected again.",
            false,
            true,
        ),
        "CRM",
    ),
    with_integration(
        t(ContactMappingError, "Contact Mapping Error", "A contact could not be mapped between the CRM integration and Herald.", false, true),
        "CRM",
    ),
    with_integration(t(DataSyncSummary, "Data Sync Summary", "A summary of a CRM integration's data synchronisation.", false, false), "CRM"),
    with_integration(t(IntegrationEnabled, "Integration Enabled", "A CRM integration was turned on.", false, false), "CRM"),
    with_integration(t(IntegrationDisabled, "Integration Disabled", "A CRM integration was turned off.", false, false), "CRM"),
    t(
        AutomatedCommunicationNeedsAttention,
        "Automated Communication Needs Attention",
        "A workflow communication could not be sent automatically (missing or invalid contact details) and became a to-do.",
        true,
        true,
    ),
];

pub fn info(kind: NotificationType) -> &'static TypeInfo {
    CATALOG.iter().find(|i| i.kind == kind).expect("every notification type is in the catalog")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use async_graphql::resolver_utils::EnumType;

    use super::*;

    #[test]
    fn every_type_is_described_once() {
        let kinds: HashSet<_> = CATALOG.iter().map(|i| i.kind).collect();
        assert_eq!(kinds.len(), CATALOG.len(), "a type listed twice");
        assert_eq!(kinds.len(), NotificationType::items().len(), "a type without a description");
        assert_eq!(CATALOG.len(), 36 + 8, "the document's 36 types and the 8 the issues raise");
    }

    #[test]
    fn the_documents_starred_types_are_strongly_encouraged() {
        let starred = [
            AccountPaused,
            EmailFailedError,
            DuplicateClient,
            Warnings,
            ProposalSign,
            SystemInformation,
            SystemErrorInformation,
            TextReceived,
            TextStopped,
            Voicemails,
        ];
        for kind in starred {
            assert!(info(kind).strongly_encouraged, "{kind:?}");
        }
        assert!(!info(NewLead).strongly_encouraged);
    }
}
