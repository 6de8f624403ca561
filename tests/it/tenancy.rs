//! The tenancy sweep: every root field of the served schema, asked anonymously, by another
//! tenant's admin, and by a plain user of the owning account.
//!
//! The table below must name every Query, Mutation and Subscription field: a field added
//! without a row fails `every_operation_is_in_the_sweep`, so later operations are swept too.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, TestApp};

/// What a caller from another account gets.
#[derive(Clone, Copy, Debug)]
enum Foreign {
    /// An error with one of these codes, and nothing of the owner's.
    Denied(&'static [&'static str]),
    /// Success, but only the caller's own data (lists, creations in the caller's account).
    OwnDataOnly,
}

/// What a plain USER of the owning account gets.
#[derive(Clone, Copy, Debug, PartialEq)]
enum AsUser {
    Allowed,
    Forbidden,
    /// Another user's private object: NOT_FOUND, as if it did not exist.
    Hidden,
}

struct Case {
    field: &'static str,
    /// The operation, with `{account}`, `{user}`, `{contact}`, `{person}`, `{project}`,
    /// `{key}`, `{activity}` standing for the owner's objects.
    operation: &'static str,
    foreign: Foreign,
    as_user: AsUser,
}

const NF: Foreign = Foreign::Denied(&["NOT_FOUND"]);
const NF_OR_INPUT: Foreign = Foreign::Denied(&["NOT_FOUND", "BAD_USER_INPUT"]);

fn cases() -> Vec<Case> {
    use AsUser::*;
    vec![
        Case { field: "account", operation: r#"{ account(id: "{account}") { id name users { nodes { id } } } }"#, foreign: NF, as_user: Allowed },
        Case { field: "users", operation: "{ users { nodes { id email } } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "user", operation: r#"{ user(id: "{user}") { id email } }"#, foreign: NF, as_user: Allowed },
        Case { field: "contacts", operation: "{ contacts { nodes { id name } } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "contact", operation: r#"{ contact(id: "{contact}") { id name } }"#, foreign: NF, as_user: Allowed },
        Case { field: "contactPerson", operation: r#"{ contactPerson(id: "{person}") { id name } }"#, foreign: NF, as_user: Allowed },
        Case { field: "projects", operation: "{ projects { nodes { id name } } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "project", operation: r#"{ project(id: "{project}") { id name } }"#, foreign: NF, as_user: Allowed },
        Case { field: "viewer", operation: "{ viewer { user { id } account { id name } } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "apiKeys", operation: "{ apiKeys { nodes { id name } } }", foreign: Foreign::OwnDataOnly, as_user: Forbidden },
        Case {
            field: "notificationTypes",
            operation: "{ notificationTypes { type label concernsContact } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Allowed,
        },
        Case {
            field: "notificationControl",
            operation: r#"{ notificationControl(userId: "{user}") { version types { type system { enabled } } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "accountNotificationDefaults",
            operation: "{ accountNotificationDefaults { version types { type system { enabled } } } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Allowed,
        },
        Case {
            field: "updateNotificationControl",
            operation: r#"mutation { updateNotificationControl(input: {userId: "{user}", changes: [{type: NEW_LEAD, switch: SYSTEM, enabled: true}]}) { control { version } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "resetNotificationControl",
            operation: r#"mutation { resetNotificationControl(input: {userId: "{user}"}) { control { version } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "updateAccountNotificationDefaults",
            operation: "mutation { updateAccountNotificationDefaults(input: {changes: [{type: NEW_LEAD, switch: SYSTEM, enabled: true, locked: true}]}) { defaults { version } } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "resetAccountNotificationDefaults",
            operation: "mutation { resetAccountNotificationDefaults(input: {}) { defaults { version } } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "notificationRollUp",
            operation: r#"{ notificationRollUp(userId: "{user}") { version subAccounts { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "updateNotificationRollUp",
            operation: r#"mutation { updateNotificationRollUp(input: {userId: "{user}", subAccountIds: []}) { rollUp { version } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case { field: "notifications", operation: "{ notifications { nodes { id title contact { id } } } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "notificationCounts", operation: "{ notificationCounts { unseen unread total } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case {
            field: "publishEvent",
            operation: r#"mutation { publishEvent(input: {type: VOICEMAILS, contactId: "{contact}", title: "Sweep", idempotencyKey: "sweep"}) { event { id } } }"#,
            foreign: NF_OR_INPUT,
            as_user: Forbidden,
        },
        Case {
            field: "markNotificationsSeen",
            operation: "mutation { markNotificationsSeen(input: {all: true}) { changed counts { unseen } } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Allowed,
        },
        Case {
            field: "markNotificationsRead",
            operation: "mutation { markNotificationsRead(input: {all: true}) { changed } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Allowed,
        },
        Case {
            field: "archiveNotifications",
            operation: "mutation { archiveNotifications(input: {allRead: true}) { changed } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Allowed,
        },
        Case {
            field: "unarchiveNotifications",
            operation: "mutation { unarchiveNotifications(input: {all: true}) { changed } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Allowed,
        },
        Case { field: "auditLog", operation: "{ auditLog { nodes { id objectId after } } }", foreign: Foreign::OwnDataOnly, as_user: Forbidden },
        Case {
            field: "createSubAccount",
            operation: r#"mutation { createSubAccount(input: {parentId: "{account}", name: "Intruder"}) { account { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "updateAccount",
            operation: r#"mutation { updateAccount(input: {id: "{account}", name: "Owned"}) { account { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "createUser",
            operation: r#"mutation { createUser(input: {name: "New", email: "new-sweep@example.com", role: USER}) { user { id } } }"#,
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "updateUser",
            operation: r#"mutation { updateUser(input: {id: "{user}", role: USER, name: "Owned"}) { user { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case { field: "deleteUser", operation: r#"mutation { deleteUser(input: {id: "{user}"}) { deletedUserId } }"#, foreign: NF, as_user: Forbidden },
        Case {
            field: "createContact",
            operation: r#"mutation { createContact(input: {kind: LEAD, name: "Sweep", assigneeIds: ["{user}"]}) { contact { id } } }"#,
            foreign: NF_OR_INPUT,
            as_user: Forbidden,
        },
        Case {
            field: "updateContact",
            operation: r#"mutation { updateContact(input: {id: "{contact}", name: "Owned"}) { contact { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case { field: "deleteContact", operation: r#"mutation { deleteContact(input: {id: "{contact}"}) { deletedContactId } }"#, foreign: NF, as_user: Forbidden },
        Case {
            field: "assignContact",
            operation: r#"mutation { assignContact(input: {contactId: "{contact}", userIds: ["{user}"]}) { contact { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "unassignContact",
            operation: r#"mutation { unassignContact(input: {contactId: "{contact}", userIds: ["{user}"]}) { contact { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "createContactPerson",
            operation: r#"mutation { createContactPerson(input: {contactId: "{contact}", name: "Spy"}) { contactPerson { id } } }"#,
            foreign: NF_OR_INPUT,
            as_user: Forbidden,
        },
        Case {
            field: "updateContactPerson",
            operation: r#"mutation { updateContactPerson(input: {id: "{person}", name: "Owned"}) { contactPerson { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "deleteContactPerson",
            operation: r#"mutation { deleteContactPerson(input: {id: "{person}"}) { deletedContactPersonId } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "createProject",
            operation: r#"mutation { createProject(input: {name: "Sweep", customerId: "{contact}"}) { project { id } } }"#,
            foreign: NF_OR_INPUT,
            as_user: Forbidden,
        },
        Case {
            field: "updateProject",
            operation: r#"mutation { updateProject(input: {id: "{project}", name: "Owned"}) { project { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case { field: "deleteProject", operation: r#"mutation { deleteProject(input: {id: "{project}"}) { deletedProjectId } }"#, foreign: NF, as_user: Forbidden },
        Case {
            field: "createApiKey",
            operation: r#"mutation { createApiKey(input: {name: "Sweep", scopes: [READ]}) { apiKey { id } } }"#,
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case { field: "revokeApiKey", operation: r#"mutation { revokeApiKey(input: {id: "{key}"}) { apiKey { id } } }"#, foreign: NF, as_user: Forbidden },
        Case {
            field: "impersonate",
            operation: r#"mutation { impersonate(input: {userId: "{user}"}) { token } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case { field: "tenants", operation: "{ tenants { nodes { id name } } }", foreign: Foreign::Denied(&["FORBIDDEN"]), as_user: Forbidden },
        Case {
            field: "operatorLogIn",
            operation: r#"mutation { operatorLogIn(input: {accountId: "{account}", userId: "{user}"}) { token } }"#,
            foreign: Foreign::Denied(&["FORBIDDEN"]),
            as_user: Forbidden,
        },
        Case {
            field: "deleteAccount",
            operation: r#"mutation { deleteAccount(input: {accountId: "{account}", cascade: true}) { deletedAccountIds } }"#,
            foreign: Foreign::Denied(&["FORBIDDEN"]),
            as_user: Forbidden,
        },
        Case {
            field: "setTenantPaused",
            operation: r#"mutation { setTenantPaused(input: {accountId: "{account}", paused: true}) { paused } }"#,
            foreign: Foreign::Denied(&["FORBIDDEN"]),
            as_user: Forbidden,
        },
        Case {
            field: "createAccount",
            operation: r#"mutation { createAccount(input: {name: "Intruder", adminName: "Eve", adminEmail: "eve@example.com"}) { adminId } }"#,
            foreign: Foreign::Denied(&["FORBIDDEN"]),
            as_user: Forbidden,
        },
        Case {
            field: "logInToAccount",
            operation: r#"mutation { logInToAccount(input: {accountId: "{account}"}) { token } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        // Subscriptions run over WebSocket; over HTTP they are refused, so the sweep checks
        // the resolver's rules through the WebSocket tests (ws.rs) and only lists them here.
        Case { field: "activities", operation: "{ activities { nodes { id title owner { id } } } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "activity", operation: r#"{ activity(id: "{activity}") { id title } }"#, foreign: NF, as_user: Allowed },
        Case { field: "activitySettings", operation: "{ activitySettings { version smtp { host } } }", foreign: Foreign::OwnDataOnly, as_user: Forbidden },
        Case { field: "smsGateway", operation: "{ smsGateway { baseUrl } }", foreign: Foreign::OwnDataOnly, as_user: Forbidden },
        Case { field: "outboundMessages", operation: "{ outboundMessages { nodes { id status } } }", foreign: Foreign::OwnDataOnly, as_user: Forbidden },
        Case {
            field: "changeActivitySettings",
            operation: r#"mutation { changeActivitySettings(input: {expectedVersion: 0, activityAlerts: {intervalHours: 5, sender: SYSTEM_ACCOUNT}, lateResponse: {intervalHours: 5, sender: SYSTEM_ACCOUNT, defaultPersonIds: ["{user}"]}}) { activitySettings { version } } }"#,
            foreign: Foreign::Denied(&["BAD_USER_INPUT"]),
            as_user: Forbidden,
        },
        Case {
            field: "resetActivitySettings",
            operation: "mutation { resetActivitySettings(input: {expectedVersion: 0}) { activitySettings { version } } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "testSmtpSettings",
            operation: "mutation { testSmtpSettings(input: {}) { ok } }",
            foreign: Foreign::Denied(&["BAD_USER_INPUT"]),
            as_user: Forbidden,
        },
        Case {
            field: "removeSmsGateway",
            operation: "mutation { removeSmsGateway(input: {expectedVersion: 0}) { smsGateway { baseUrl } } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "changeSmsGateway",
            operation: r#"mutation { changeSmsGateway(input: {expectedVersion: 0, baseUrl: "https://sms.example", accountSid: "AC1", authToken: "t", fromNumber: "+15550001111"}) { smsGateway { version } } }"#,
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "createActivity",
            operation: r#"mutation { createActivity(input: {kind: CALL, title: "Call", ownerId: "{user}", dueAt: "2030-01-01T10:00:00Z"}) { activity { id } } }"#,
            foreign: Foreign::Denied(&["BAD_USER_INPUT"]),
            as_user: Forbidden,
        },
        Case {
            field: "updateActivity",
            operation: r#"mutation { updateActivity(input: {id: "{activity}", title: "Taken"}) { activity { id title } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case { field: "completeActivity", operation: r#"mutation { completeActivity(input: {id: "{activity}"}) { activity { id } } }"#, foreign: NF, as_user: Forbidden },
        Case { field: "deleteActivity", operation: r#"mutation { deleteActivity(input: {id: "{activity}"}) { deletedActivityId } }"#, foreign: NF, as_user: Forbidden },
        Case { field: "mailboxes", operation: "{ mailboxes { id emailAddress } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "mailbox", operation: r#"{ mailbox(id: "{mailbox}") { id emailAddress } }"#, foreign: NF, as_user: Hidden },
        Case {
            field: "createMailbox",
            operation: r#"mutation { createMailbox(input: {userId: "{user}", emailAddress: "x@acme.example", host: "imap.acme.example", security: TLS, password: "p", skipTest: true}) { mailbox { id } } }"#,
            foreign: Foreign::Denied(&["BAD_USER_INPUT", "FORBIDDEN"]),
            as_user: Forbidden,
        },
        Case {
            field: "updateMailbox",
            operation: r#"mutation { updateMailbox(input: {id: "{mailbox}", scanActive: false}) { mailbox { id } } }"#,
            foreign: NF,
            as_user: Hidden,
        },
        Case { field: "deleteMailbox", operation: r#"mutation { deleteMailbox(input: {id: "{mailbox}"}) { deletedMailboxId } }"#, foreign: NF, as_user: Hidden },
        Case {
            field: "testMailboxConnection",
            operation: r#"mutation { testMailboxConnection(input: {mailboxId: "{mailbox}"}) { ok } }"#,
            foreign: NF,
            as_user: Hidden,
        },
        Case {
            field: "connectMailbox",
            operation: r#"mutation { connectMailbox(input: {mailboxId: "{mailbox}", returnUrl: "https://crm.example/"}) { authorizationUrl } }"#,
            foreign: NF,
            as_user: Hidden,
        },
        Case { field: "mailProviders", operation: "{ mailProviders { provider configured } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "reportSettings", operation: "{ reportSettings { roles bcc version } }", foreign: Foreign::OwnDataOnly, as_user: Forbidden },
        Case { field: "reportRecipients", operation: "{ reportRecipients { email } }", foreign: Foreign::OwnDataOnly, as_user: Forbidden },
        Case {
            field: "changeReportSettings",
            operation: r#"mutation { changeReportSettings(input: {expectedVersion: 0, roles: [COMPANY_ADMIN], userIds: ["{user}"]}) { reportSettings { version } } }"#,
            foreign: Foreign::Denied(&["BAD_USER_INPUT"]),
            as_user: Forbidden,
        },
        Case {
            field: "resetReportSettings",
            operation: "mutation { resetReportSettings(input: {expectedVersion: 0}) { reportSettings { version } } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case { field: "integrations", operation: "{ integrations { id provider } }", foreign: Foreign::OwnDataOnly, as_user: Forbidden },
        Case { field: "integration", operation: r#"{ integration(id: "{integration}") { id provider } }"#, foreign: NF, as_user: Forbidden },
        Case { field: "integrationProperties", operation: "{ integrationProperties(provider: HUBSPOT) { name } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case {
            field: "createIntegration",
            operation: "mutation { createIntegration(input: {provider: ZOHO}) { integration { id } } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "setIntegrationEnabled",
            operation: r#"mutation { setIntegrationEnabled(input: {id: "{integration}", expectedVersion: 1, enabled: true}) { integration { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "saveIntegrationSettings",
            operation: r#"mutation { saveIntegrationSettings(input: {id: "{integration}", expectedVersion: 1, settings: {sync: {direction: BOTH, frequencyMinutes: 15, objects: [CONTACTS], conflictRule: MOST_RECENT}, mapping: [], filters: [], communication: {logEmails: true, logCalls: true, logMeetings: false, logNotes: false, logTexts: false}}}) { integration { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "resetIntegrationTab",
            operation: r#"mutation { resetIntegrationTab(input: {id: "{integration}", expectedVersion: 1, tab: SYNC}) { changed } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "reportIntegrationReauthenticationRequired",
            operation: r#"mutation { reportIntegrationReauthenticationRequired(input: {integrationId: "{integration}", idempotencyKey: "t-1", connection: "portal", reason: "revoked", steps: ["Reconnect"], deadline: "2030-01-01T00:00:00Z"}) { alerted } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "reportIntegrationConnectionError",
            operation: r#"mutation { reportIntegrationConnectionError(input: {integrationId: "{integration}", idempotencyKey: "t-2", connection: "portal", reason: "503"}) { alerted } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "reportIntegrationConnectionRestored",
            operation: r#"mutation { reportIntegrationConnectionRestored(input: {integrationId: "{integration}", idempotencyKey: "t-3"}) { alerted } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "reportContactMappingErrors",
            operation: r#"mutation { reportContactMappingErrors(input: {integrationId: "{integration}", idempotencyKey: "t-4", errors: [{object: CONTACTS, recordId: "1", error: "bad email"}]}) { alerted } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "reportDataSyncSummary",
            operation: r#"mutation { reportDataSyncSummary(input: {integrationId: "{integration}", idempotencyKey: "t-5", startedAt: "2026-01-01T00:00:00Z", finishedAt: "2026-01-01T00:01:00Z", operations: [{object: CONTACTS, updated: 1}]}) { alerted } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case {
            field: "communicationCalendar",
            operation: "{ communicationCalendar { schedulingTime version } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "changeCommunicationCalendar",
            operation: r#"mutation { changeCommunicationCalendar(input: {expectedVersion: 0, schedulingTime: "09:00"}) { version } }"#,
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case { field: "userGroups", operation: "{ userGroups { id name members { id } } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case {
            field: "createUserGroup",
            operation: r#"mutation { createUserGroup(input: {name: "Desk", memberIds: ["{user}"]}) { userGroup { id } } }"#,
            foreign: Foreign::Denied(&["BAD_USER_INPUT"]),
            as_user: Forbidden,
        },
        Case {
            field: "updateUserGroup",
            operation: r#"mutation { updateUserGroup(input: {id: "{group}", expectedVersion: 1, name: "Renamed"}) { userGroup { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case { field: "deleteUserGroup", operation: r#"mutation { deleteUserGroup(input: {id: "{group}"}) { userGroup { id } } }"#, foreign: NF, as_user: Forbidden },
        Case { field: "workflows", operation: "{ workflows { id name actions { id } } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "workflow", operation: r#"{ workflow(id: "{workflow}") { id name } }"#, foreign: NF, as_user: Allowed },
        Case { field: "workflowTemplateFields", operation: "{ workflowTemplateFields }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case {
            field: "createWorkflow",
            operation: r#"mutation { createWorkflow(input: {name: "W", actions: [{kind: SMS, name: "t", bodyTemplate: "b", sendAutomatically: true, sender: USER, senderUserId: "{user}"}]}) { workflow { id } } }"#,
            foreign: Foreign::Denied(&["BAD_USER_INPUT"]),
            as_user: Forbidden,
        },
        Case {
            field: "updateWorkflow",
            operation: r#"mutation { updateWorkflow(input: {id: "{workflow}", expectedVersion: 1, name: "W", active: true, actions: []}) { workflow { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case { field: "deleteWorkflow", operation: r#"mutation { deleteWorkflow(input: {id: "{workflow}"}) { workflow { id } } }"#, foreign: NF, as_user: Forbidden },
        Case {
            field: "enrollInWorkflow",
            operation: r#"mutation { enrollInWorkflow(input: {workflowId: "{workflow}", contactId: "{contact}"}) { enrollment { id } } }"#,
            foreign: NF_OR_INPUT,
            as_user: Forbidden,
        },
        Case { field: "endEnrollment", operation: r#"mutation { endEnrollment(input: {id: "{enrollment}"}) { enrollment { id } } }"#, foreign: NF, as_user: Forbidden },
        Case {
            field: "plannedActions",
            operation: r#"{ plannedActions(filter: {contactId: "{contact}"}) { nodes { id subject body contact { id } } } }"#,
            foreign: Foreign::OwnDataOnly,
            as_user: Allowed,
        },
        Case {
            field: "customerTimeline",
            operation: r#"{ customerTimeline(contactId: "{contact}") { nodes { id body } } }"#,
            foreign: Foreign::OwnDataOnly,
            as_user: Allowed,
        },
        Case {
            field: "teamActivity",
            operation: r#"{ teamActivity(period: WEEK, from: "2026-12-01", to: "2026-12-31") { kind automated manual } }"#,
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "completePlannedAction",
            operation: r#"mutation { completePlannedAction(input: {id: "{action}"}) { plannedAction { id } } }"#,
            foreign: NF,
            as_user: Forbidden,
        },
        Case { field: "syncedEmails", operation: "{ syncedEmails { nodes { id subject contact { id } } } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case { field: "archivedEmail", operation: r#"{ archivedEmail(id: "{email}") { id subject } }"#, foreign: NF, as_user: Hidden },
        Case { field: "emailSettings", operation: "{ emailSettings { scanAll version } }", foreign: Foreign::OwnDataOnly, as_user: Allowed },
        Case {
            field: "changeEmailSettings",
            operation: "mutation { changeEmailSettings(input: {expectedVersion: 0, scanAll: true}) { emailSettings { version } } }",
            foreign: Foreign::OwnDataOnly,
            as_user: Forbidden,
        },
        Case {
            field: "assignEmail",
            operation: r#"mutation { assignEmail(input: {emailId: "{email}", contactId: "{contact}"}) { email { id } } }"#,
            foreign: NF,
            as_user: Hidden,
        },
        Case {
            field: "deleteArchivedEmail",
            operation: r#"mutation { deleteArchivedEmail(input: {emailId: "{email}"}) { deletedEmailId } }"#,
            foreign: NF,
            as_user: Hidden,
        },
        Case { field: "auditEvents", operation: "", foreign: Foreign::OwnDataOnly, as_user: Forbidden },
        Case { field: "notificationEvents", operation: "", foreign: Foreign::OwnDataOnly, as_user: Allowed },
    ]
}

struct Owner {
    ids: Vec<(&'static str, String)>,
}

impl Owner {
    fn fill(&self, template: &str) -> String {
        self.ids.iter().fold(template.to_string(), |s, (k, v)| s.replace(&format!("{{{k}}}"), v))
    }
    fn leaks(&self, body: &Value) -> Option<String> {
        let text = body.to_string();
        self.ids.iter().find(|(_, v)| text.contains(v.as_str())).map(|(k, v)| format!("{k} {v}"))
    }
}

async fn seed(app: &TestApp) -> Owner {
    let (user, _) = app.user("Owned user", "USER").await;
    let contact = app
        .admin(
            r#"mutation($u: ID!) { createContact(input: {kind: CUSTOMER, name: "Secret customer", assigneeIds: [$u]}) { contact { id } } }"#,
            json!({"u": user}),
        )
        .await["createContact"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let person = app
        .admin(r#"mutation($c: ID!) { createContactPerson(input: {contactId: $c, name: "Secret person"}) { contactPerson { id } } }"#, json!({"c": contact}))
        .await["createContactPerson"]["contactPerson"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let project = app
        .admin(r#"mutation($c: ID) { createProject(input: {name: "Secret project", customerId: $c}) { project { id } } }"#, json!({"c": contact}))
        .await["createProject"]["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = app.admin(r#"mutation { createApiKey(input: {name: "Owner key", scopes: [READ]}) { apiKey { id } } }"#, json!({})).await["createApiKey"]
        ["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let activity = app
        .admin(
            r#"mutation($u: ID!, $c: ID) { createActivity(input: {kind: MEETING, title: "Secret meeting", ownerId: $u, contactId: $c, dueAt: "2030-01-01T10:00:00Z"}) { activity { id } } }"#,
            json!({"u": user, "c": contact}),
        )
        .await["createActivity"]["activity"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mailbox = app
        .admin(
            r#"mutation($u: ID!) { createMailbox(input: {userId: $u, emailAddress: "secret@acme.example", host: "imap.acme.example", security: TLS, password: "p", skipTest: true}) { mailbox { id } } }"#,
            json!({"u": user}),
        )
        .await["createMailbox"]["mailbox"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let email = {
        use sea_orm::{ActiveModelTrait, IntoActiveModel};
        let model = entity::email::Model {
            id: uuid::Uuid::now_v7(),
            account_id: app.account_id.parse().unwrap(),
            message_key: "mid:secret@acme".into(),
            message_id: Some("secret@acme".into()),
            subject: Some("Secret subject".into()),
            from_address: Some("buyer@secret.example".into()),
            from_name: None,
            to_addresses: json!([]),
            cc_addresses: json!([]),
            sent_at: None,
            text_body: Some("Secret body".into()),
            html_body: None,
            attachments: json!([]),
            raw: None,
            headers_only: false,
            size: 10,
            in_reply_to: None,
            references: json!([]),
            contact_id: Some(contact.parse().unwrap()),
            project_id: None,
            linked_by: entity::email::LinkedBy::CustomerMainEmail,
            created_at: chrono::Utc::now(),
        };
        model.into_active_model().insert(&app.state.db).await.unwrap().id.to_string()
    };
    let integration = app.admin(r#"mutation { createIntegration(input: {provider: HUBSPOT, features: [SYNC]}) { integration { id } } }"#, json!({})).await
        ["createIntegration"]["integration"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let group = app
        .admin(&format!(r#"mutation {{ createUserGroup(input: {{name: "Desk", memberIds: ["{user}"]}}) {{ userGroup {{ id }} }} }}"#), json!({}))
        .await["createUserGroup"]["userGroup"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let workflow = app
        .admin(
            &format!(
                r#"mutation {{ createWorkflow(input: {{name: "Dunning", actions: [{{kind: EMAIL, name: "Reminder", subjectTemplate: "Invoice", bodyTemplate: "Dear {{{{ contact.name }}}}", sendAutomatically: true, sender: USER, senderUserId: "{user}"}}]}}) {{ workflow {{ id }} }} }}"#
            ),
            json!({}),
        )
        .await["createWorkflow"]["workflow"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let enrollment = app
        .admin(&format!(r#"mutation {{ enrollInWorkflow(input: {{workflowId: "{workflow}", contactId: "{contact}"}}) {{ enrollment {{ id }} }} }}"#), json!({}))
        .await["enrollInWorkflow"]["enrollment"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let action = app.admin("{ plannedActions { nodes { id } } }", json!({})).await["plannedActions"]["nodes"][0]["id"].as_str().unwrap().to_string();
    Owner {
        ids: vec![
            ("action", action),
            ("integration", integration),
            ("group", group),
            ("workflow", workflow),
            ("enrollment", enrollment),
            ("account", app.account_id.clone()),
            ("user", user),
            ("contact", contact),
            ("person", person),
            ("project", project),
            ("key", key),
            ("activity", activity),
            ("mailbox", mailbox),
            ("email", email),
        ],
    }
}

/// Everything the owner has, as its admin sees it: must not change during the sweep.
async fn snapshot(app: &TestApp) -> Value {
    app.admin(
        "{ account { name version } accountNotificationDefaults { version } users { nodes { id name role } } contacts { nodes { id name assignees { id } persons { id name } } } projects { nodes { id name } } apiKeys { nodes { id revokedAt } } activities { nodes { id title version completedAt } } activitySettings { version } smsGateway { version } mailboxes { id version scanActive } integrations { id version enabled } syncedEmails { nodes { id contact { id } } } emailSettings { version } }",
        json!({}),
    )
    .await
}

async fn root_fields(app: &TestApp) -> BTreeSet<String> {
    let schema =
        app.admin("{ __schema { queryType { fields { name } } mutationType { fields { name } } subscriptionType { fields { name } } } }", json!({})).await;
    ["queryType", "mutationType", "subscriptionType"]
        .iter()
        .flat_map(|t| schema["__schema"][t]["fields"].as_array().cloned().unwrap_or_default())
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_operation_is_in_the_sweep() {
    let app = spawn_app().await;
    let served = root_fields(&app).await;
    let swept: BTreeSet<String> = cases().iter().map(|c| c.field.to_string()).collect();
    let missing: Vec<_> = served.difference(&swept).collect();
    assert!(missing.is_empty(), "add tenancy sweep cases (tests/it/tenancy.rs) for: {missing:?}");
    let stale: Vec<_> = swept.difference(&served).collect();
    assert!(stale.is_empty(), "sweep cases for fields the schema no longer has: {stale:?}");
}

#[tokio::test]
async fn no_operation_crosses_tenants_or_roles() {
    let app = spawn_app().await;
    let owner = seed(&app).await;
    let (_, foreign_token, _) = app.other_tenant().await;
    let (_, user_token) = app.user("Plain user", "USER").await;
    let before = snapshot(&app).await;

    for case in cases().iter().filter(|c| !c.operation.is_empty()) {
        let operation = owner.fill(case.operation);

        let anonymous = app.gql(None, &operation, json!({})).await;
        assert_eq!(error_code(&anonymous), Some("UNAUTHENTICATED"), "{}: anonymous: {anonymous}", case.field);
        assert_eq!(owner.leaks(&anonymous["data"]), None, "{}: anonymous leak", case.field);

        let foreign = app.gql(Some(&foreign_token), &operation, json!({})).await;
        match case.foreign {
            Foreign::Denied(codes) => {
                let code = error_code(&foreign);
                assert!(code.is_some_and(|c| codes.contains(&c)), "{}: foreign caller got {foreign}", case.field);
            }
            Foreign::OwnDataOnly => assert!(foreign.get("errors").is_none(), "{}: foreign caller: {foreign}", case.field),
        }
        assert_eq!(owner.leaks(&foreign), None, "{}: another tenant saw the owner's data: {foreign}", case.field);

        let as_user = app.gql(Some(&user_token), &operation, json!({})).await;
        match case.as_user {
            AsUser::Allowed => assert!(as_user.get("errors").is_none(), "{}: plain user: {as_user}", case.field),
            AsUser::Forbidden => assert_eq!(error_code(&as_user), Some("FORBIDDEN"), "{}: plain user: {as_user}", case.field),
            AsUser::Hidden => assert_eq!(error_code(&as_user), Some("NOT_FOUND"), "{}: plain user: {as_user}", case.field),
        }
    }

    assert_eq!(snapshot(&app).await, before, "a denied operation changed the owner's data");
}

/// What a sub-account's people may not read by id (the parent account and its users) they
/// may not read through a relation or an audit record either.
#[tokio::test]
async fn a_sub_account_sees_nothing_of_its_parent_through_relations_or_the_audit_log() {
    let app = spawn_app().await;
    let sub = app.admin("mutation { createSubAccount(input: {name: \"Acme West\"}) { account { id } } }", json!({})).await;
    let sub_id = sub["createSubAccount"]["account"]["id"].as_str().unwrap().to_string();
    // The parent's admin renames the sub-account: its updatedBy is the parent's admin.
    let renamed = app
        .admin(
            "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { updatedBy { id } } } }",
            json!({"i": {"id": sub_id, "name": "Acme West Coast"}}),
        )
        .await;
    assert_eq!(renamed["updateAccount"]["account"]["updatedBy"]["id"], app.admin_id.as_str(), "the parent's admin sees themselves");

    let west_admin = app.sub_account_user(&sub_id, "West admin", "COMPANY_ADMIN").await;
    let token = app.token_for(&west_admin);
    let by_id = app.gql(Some(&token), "query($id: ID!) { user(id: $id) { name } }", json!({"id": app.admin_id})).await;
    assert_eq!(by_id["errors"][0]["extensions"]["code"], "NOT_FOUND", "{by_id:#}");
    let related = app.gql(Some(&token), "{ viewer { account { name updatedBy { name email phone } parent { id } } } }", json!({})).await;
    assert_eq!(related["data"]["viewer"]["account"], json!({"name": "Acme West Coast", "updatedBy": null, "parent": null}), "{related:#}");

    let log = app.gql(Some(&token), "{ auditLog(first: 50) { nodes { action objectType actor { id } before after } } }", json!({})).await;
    let nodes = log["data"]["auditLog"]["nodes"].as_array().unwrap_or_else(|| panic!("{log:#}"));
    let update = nodes.iter().find(|n| n["objectType"] == "Account" && n["action"].as_str().unwrap().ends_with("updated")).unwrap_or_else(|| panic!("{log:#}"));
    assert_eq!(update["actor"], Value::Null, "the parent's admin is not named: {update:#}");
    let text = log.to_string();
    assert!(!text.contains(&app.account_id) && !text.contains(&app.admin_id), "the parent's ids leak through the audit log: {update:#}");
    assert_eq!(update["after"]["name"], "Acme West Coast", "what is the sub-account's own stays");
}

/// `createUser` with an account: a parent's admin creates users in its sub-accounts, never in
/// its parent or in another tenant.
#[tokio::test]
async fn users_are_created_in_sub_accounts_but_never_upwards_or_across() {
    let app = spawn_app().await;
    let sub = app.admin("mutation { createSubAccount(input: {name: \"Acme West\"}) { account { id } } }", json!({})).await;
    let sub_id = sub["createSubAccount"]["account"]["id"].as_str().unwrap().to_string();
    let west_admin = app.sub_account_user(&sub_id, "West admin", "COMPANY_ADMIN").await;
    let app = &app;
    let create = |token: String, account: String| async move {
        let email = format!("{}@example.com", uuid::Uuid::now_v7().simple());
        app.gql(
            Some(&token),
            "mutation($i: CreateUserInput!) { createUser(input: $i) { user { id } } }",
            json!({"i": {"accountId": account, "name": "Eve", "email": email, "role": "COMPANY_ADMIN"}}),
        )
        .await
    };
    let up = create(app.token_for(&west_admin), app.account_id.clone()).await;
    assert_eq!(error_code(&up), Some("NOT_FOUND"), "{up}");
    let (_, foreign, _) = app.other_tenant().await;
    let across = create(foreign, sub_id.clone()).await;
    assert_eq!(error_code(&across), Some("NOT_FOUND"), "{across}");
    let (_, plain) = app.user("Plain", "USER").await;
    assert_eq!(error_code(&create(plain, sub_id.clone()).await), Some("FORBIDDEN"));
    let users = app.admin("query($id: ID) { account(id: $id) { users { nodes { name } } } }", json!({"id": sub_id})).await;
    assert_eq!(users["account"]["users"]["nodes"], json!([{"name": "West admin"}]), "nothing else was created");
}

/// A platform operator provisions tenants with a key of its own (`api operator-key`), and
/// sees nothing inside them: its key is no account's caller.
#[tokio::test]
async fn an_operator_provisions_tenants_and_sees_nothing_inside_them() {
    let app = spawn_app().await;
    let (_, operator) = api::platform::mint_key(&app.state.db, "ops").await.unwrap();
    const CREATE: &str = "mutation($i: CreateAccountInput!) { createAccount(input: $i) { tenant { id name timeZone paused } adminId } }";
    let input = json!({"i": {"name": "Initech", "timeZone": "Europe/Paris", "adminName": "Ina Admin", "adminEmail": "ina@initech.example"}});
    let created = app.gql(Some(&operator), CREATE, input).await;
    let tenant = &created["data"]["createAccount"]["tenant"];
    assert_eq!(
        (tenant["name"].as_str(), tenant["timeZone"].as_str(), tenant["paused"].as_bool()),
        (Some("Initech"), Some("Europe/Paris"), Some(false)),
        "{created:#}"
    );
    let admin = created["data"]["createAccount"]["adminId"].as_str().unwrap().to_string();

    // The new tenant's admin works in it, and only in it.
    let admin_token = app.token_for(&admin);
    let viewer = app.gql(Some(&admin_token), "{ viewer { user { name role } account { id name } } }", json!({})).await;
    assert_eq!(viewer["data"]["viewer"], json!({"user": {"name": "Ina Admin", "role": "COMPANY_ADMIN"}, "account": {"id": tenant["id"], "name": "Initech"}}));
    let across = app.gql(Some(&admin_token), "query($id: ID) { account(id: $id) { name } }", json!({"id": app.account_id})).await;
    assert_eq!(error_code(&across), Some("NOT_FOUND"));

    // The operator lists the tenants, and reads nothing of any account.
    let tenants = app.gql(Some(&operator), "{ tenants { nodes { name } } }", json!({})).await;
    assert_eq!(tenants["data"]["tenants"]["nodes"], json!([{"name": "Acme"}, {"name": "Initech"}]));
    // A page at a time.
    let page = app.gql(Some(&operator), "{ tenants(first: 1) { nodes { name } pageInfo { hasNextPage endCursor } } }", json!({})).await;
    assert_eq!(page["data"]["tenants"]["nodes"], json!([{"name": "Acme"}]), "{page:#}");
    assert_eq!(page["data"]["tenants"]["pageInfo"]["hasNextPage"], true);
    let next = app
        .gql(
            Some(&operator),
            "query($a: String) { tenants(first: 1, after: $a) { nodes { name } } }",
            json!({"a": page["data"]["tenants"]["pageInfo"]["endCursor"]}),
        )
        .await;
    assert_eq!(next["data"]["tenants"]["nodes"], json!([{"name": "Initech"}]));
    for inside in ["{ viewer { user { id } } }", "{ users { nodes { id } } }", "{ contacts { nodes { id } } }", "{ auditLog { nodes { id } } }"] {
        let body = app.gql(Some(&operator), inside, json!({})).await;
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{inside}: {body}");
    }
    let bad = app.gql(Some(&format!("{operator}0")), "{ tenants { nodes { name } } }", json!({})).await;
    assert_eq!(error_code(&bad), Some("UNAUTHENTICATED"), "a wrong operator key is refused: {bad}");
    let invalid = app.gql(Some(&operator), CREATE, json!({"i": {"name": "X", "timeZone": "Mars/Base", "adminName": "Y", "adminEmail": "y@x.example"}})).await;
    assert_eq!(invalid["errors"][0]["extensions"]["field"], "input.timeZone");

    // The operator pauses and resumes it; its admin is told, as when they pause it themselves.
    app.switch_on(&admin_token, "ACCOUNT_PAUSED", "SYSTEM").await;
    const PAUSE: &str = "mutation($i: SetTenantPausedInput!) { setTenantPaused(input: $i) { paused } }";
    let paused = app.gql(Some(&operator), PAUSE, json!({"i": {"accountId": tenant["id"], "paused": true}})).await;
    assert_eq!(paused["data"]["setTenantPaused"]["paused"], true, "{paused:#}");
    let panel = app.gql(Some(&admin_token), "{ notifications { nodes { type } } }", json!({})).await;
    assert_eq!(panel["data"]["notifications"]["nodes"], json!([{"type": "ACCOUNT_PAUSED"}]));
    let resumed = app.gql(Some(&operator), PAUSE, json!({"i": {"accountId": tenant["id"], "paused": false}})).await;
    assert_eq!(resumed["data"]["setTenantPaused"]["paused"], false);

    // Audited on the platform's own log: created, paused, resumed.
    use sea_orm::{EntityTrait, PaginatorTrait};
    assert_eq!(entity::platform_event::Entity::find().count(&app.state.db).await.unwrap(), 3);
}

/// An operator enters a tenant only by logging in as one of its users: the tenant's audit
/// log names the operator's key as the actor, and the token dies with the key.
#[tokio::test]
async fn an_operator_logs_in_to_a_tenant_as_a_user_audited_as_the_operator() {
    let app = spawn_app().await;
    let (key, operator) = api::platform::mint_key(&app.state.db, "support desk").await.unwrap();
    let (tenant, ina) = app.create_tenant(&operator, "Initech", "UTC", "Ina").await;

    // Without a user named, the operator is the account's primary company admin.
    const LOG_IN: &str = "mutation($i: OperatorLogInInput!) { operatorLogIn(input: $i) { token accountId userId userName expiresAt } }";
    let entered = app.gql(Some(&operator), LOG_IN, json!({"i": {"accountId": tenant}})).await;
    let payload = &entered["data"]["operatorLogIn"];
    assert_eq!(
        (payload["userId"].as_str(), payload["userName"].as_str(), payload["accountId"].as_str()),
        (Some(ina.as_str()), Some("Ina"), Some(tenant.as_str())),
        "{entered:#}"
    );
    let token = payload["token"].as_str().unwrap().to_string();
    let viewer = app.gql(Some(&token), "{ viewer { user { name } account { name } impersonator { id } operatorName } }", json!({})).await;
    assert_eq!(
        viewer["data"]["viewer"],
        json!({"user": {"name": "Ina"}, "account": {"name": "Initech"}, "impersonator": null, "operatorName": "support desk"})
    );

    // What it does there is the tenant's, recorded with the operator as the actor.
    let contact = app.gql(Some(&token), "mutation { createContact(input: {kind: LEAD, name: \"Lead\"}) { contact { id } } }", json!({})).await;
    assert!(contact.get("errors").is_none(), "{contact:#}");
    let own = app.token_for(&ina);
    let log = app.gql(Some(&own), "{ auditLog { nodes { action actor { id } impersonatedUser { id } operatorKeyId } } }", json!({})).await;
    let by_operator: Vec<&str> = log["data"]["auditLog"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{log:#}"))
        .iter()
        .filter(|e| e["operatorKeyId"] == key.id.to_string())
        .inspect(|e| assert_eq!((&e["actor"], &e["impersonatedUser"]["id"]), (&Value::Null, &json!(ina)), "{e}"))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(by_operator, ["contact.created", "session.logged_in_as"], "{log:#}");
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let platform_log =
        entity::platform_event::Entity::find().filter(entity::platform_event::Column::Action.eq("session.logged_in_as")).count(&app.state.db).await.unwrap();
    assert_eq!(platform_log, 1);

    // It does not chain into another login, and names only the account's own users.
    let chained = app.gql(Some(&token), "mutation($i: ImpersonateInput!) { impersonate(input: $i) { token } }", json!({"i": {"userId": app.admin_id}})).await;
    assert_eq!(error_code(&chained), Some("FORBIDDEN"), "{chained}");
    let elsewhere = app.gql(Some(&operator), LOG_IN, json!({"i": {"accountId": tenant, "userId": app.admin_id}})).await;
    assert_eq!(error_code(&elsewhere), Some("NOT_FOUND"), "Acme's admin is not Initech's: {elsewhere}");
    let named = app.gql(Some(&operator), LOG_IN, json!({"i": {"accountId": app.account_id, "userId": app.admin_id}})).await;
    assert_eq!(named["data"]["operatorLogIn"]["userId"], json!(app.admin_id), "{named:#}");

    // Revoking the operator key ends its sessions inside tenants at once.
    api::platform::revoke_key(&app.state.db, key.id).await.unwrap();
    let response = app.http.post(app.url()).bearer_auth(&token).json(&json!({"query": "{ viewer { user { id } } }"})).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let refused = app.gql(Some(&operator), "{ tenants { nodes { name } } }", json!({})).await;
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"));
}

/// An operator deletes a tenant with everything it owns, its sub-accounts only when asked to
/// cascade; other tenants keep everything.
#[tokio::test]
async fn deleting_a_tenant_takes_all_its_rows_and_nothing_else() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = spawn_app().await;
    let (_, operator) = api::platform::mint_key(&app.state.db, "ops").await.unwrap();
    let (tenant, ina) = app.create_tenant(&operator, "Initech", "UTC", "Ina").await;
    let ina = app.token_for(&ina);
    // Data of every kind: a contact, settings with a sealed password, a published event
    // (panel rows), a sub-account with a user.
    let ok = |body: Value| assert!(body.get("errors").is_none(), "{body:#}");
    ok(app.gql(Some(&ina), "mutation { createContact(input: {kind: LEAD, name: \"Lead\"}) { contact { id } } }", json!({})).await);
    ok(app
        .gql(
            Some(&ina),
            "mutation($i: ChangeActivitySettingsInput!) { changeActivitySettings(input: $i) { activitySettings { version } } }",
            json!({"i": {"expectedVersion": 0, "smtp": {"host": "127.0.0.1", "port": 2525, "security": "NONE", "username": "u", "password": "sealed-secret"}, "senderAddress": "crm@initech.example",
                "activityAlerts": {"intervalHours": 24, "sender": "SYSTEM_ACCOUNT"}, "lateResponse": {"intervalHours": 2, "sender": "SYSTEM_ACCOUNT", "defaultPersonIds": []}}}),
        )
        .await);
    ok(app.gql(Some(&ina), "mutation { publishEvent(input: {type: WARNINGS, title: \"Hello\", idempotencyKey: \"h\"}) { notified } }", json!({})).await);
    let sub = app.gql(Some(&ina), "mutation { createSubAccount(input: {name: \"Initech West\"}) { account { id } } }", json!({})).await;
    let sub = sub["data"]["createSubAccount"]["account"]["id"].as_str().unwrap().to_string();
    let email = format!("{}@initech.example", uuid::Uuid::now_v7().simple());
    ok(app
        .gql(
            Some(&ina),
            "mutation($i: CreateUserInput!) { createUser(input: $i) { user { id } } }",
            json!({"i": {"accountId": sub, "name": "Wes", "email": email, "role": "USER"}}),
        )
        .await);
    let before = snapshot(&app).await;

    const DELETE: &str = "mutation($i: DeleteAccountInput!) { deleteAccount(input: $i) { deletedAccountIds } }";
    let refused = app.gql(Some(&operator), DELETE, json!({"i": {"accountId": tenant}})).await;
    assert_eq!(error_code(&refused), Some("CONFLICT"), "it has a sub-account: {refused}");
    let deleted = app.gql(Some(&operator), DELETE, json!({"i": {"accountId": tenant, "cascade": true}})).await;
    let mut ids: Vec<String> = deleted["data"]["deleteAccount"]["deletedAccountIds"]
        .as_array()
        .unwrap_or_else(|| panic!("{deleted:#}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected = vec![tenant.clone(), sub.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    // Nothing of either account is left, in any table; its admin's token is dead.
    let db = &app.state.db;
    let backend = db.get_database_backend();
    for table in ["\"user\"", "contact", "activity_settings", "event", "notification", "audit_event", "account"] {
        let column = if table == "account" { "id" } else { "account_id" };
        for id in [&tenant, &sub] {
            let sql = format!("SELECT count(*) AS n FROM {table} WHERE {column} = {}", if backend == sea_orm::DbBackend::Postgres { "$1" } else { "?" });
            let row = db.query_one(Statement::from_sql_and_values(backend, sql, [id.parse::<uuid::Uuid>().unwrap().into()])).await.unwrap().unwrap();
            assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0, "{table} keeps rows of {id}");
        }
    }
    let response = app.http.post(app.url()).bearer_auth(&ina).json(&json!({"query": "{ viewer { user { id } } }"})).send().await.unwrap();
    assert_eq!(response.status(), 401);
    // The other tenant keeps everything; the platform's log keeps the record.
    assert_eq!(snapshot(&app).await, before);
    let tenants = app.gql(Some(&operator), "{ tenants { nodes { name } } }", json!({})).await;
    assert_eq!(tenants["data"]["tenants"]["nodes"], json!([{"name": "Acme"}]));
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let logged = entity::platform_event::Entity::find().filter(entity::platform_event::Column::Action.eq("account.deleted")).count(db).await.unwrap();
    assert_eq!(logged, 1);

    // Every table with an account's rows is one the deletion empties (a new table must join
    // api::platform::ACCOUNT_TABLES).
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT table_name AS t FROM information_schema.columns WHERE column_name = 'account_id' AND table_schema = current_schema()"
        }
        _ => "SELECT m.name AS t FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' AND p.name = 'account_id'",
    };
    for row in db.query_all(Statement::from_string(backend, sql)).await.unwrap() {
        let table: String = row.try_get("", "t").unwrap();
        let listed = api::platform::ACCOUNT_TABLES.iter().any(|t| t.trim_matches('"') == table);
        assert!(listed, "table {table} holds accounts' rows but deleteAccount does not empty it");
    }
}
