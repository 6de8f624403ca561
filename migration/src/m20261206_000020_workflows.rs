//! Workflow communications (seeds/003): groups of users, each account's communication
//! calendar, workflows with their ordered actions, customers enrolled in them and the actions
//! planned for each, the daily runs that send the automatic ones, and letters.
//!
//! - `contact_person` gains a phone (E.164), a postal address (JSON, typed by the api) and a
//!   `main` flag (the customer's main contact).
//! - `planned_action` is the actions list: one row per customer and workflow action, its due
//!   date (a local date), trigger (AUTOMATED or MANUAL), status, and what was sent.
//! - `workflow_run` records each account's run for a local date before it sends anything:
//!   its primary key makes a run happen once, however many workers try.
//! - `outbox_message.sender_user_id`: an addressed email sent as a user (through their own
//!   mailbox when connected, else by the system with them in `Reply-To:`).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ContactPerson {
    Table,
    Phone,
    PostalAddress,
    Main,
}

#[derive(DeriveIden)]
enum OutboxMessage {
    Table,
    SenderUserId,
}

#[derive(DeriveIden)]
enum UserGroup {
    Table,
    Id,
    AccountId,
    Name,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserGroupMember {
    Table,
    GroupId,
    UserId,
    AccountId,
    Position,
}

#[derive(DeriveIden)]
enum CommunicationCalendar {
    Table,
    AccountId,
    SchedulingTime,
    Holidays,
    Version,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum Workflow {
    Table,
    Id,
    AccountId,
    Name,
    Description,
    Active,
    Version,
    CreatedAt,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum WorkflowAction {
    Table,
    Id,
    AccountId,
    WorkflowId,
    Position,
    Kind,
    Name,
    DelayDays,
    DelayFrom,
    SubjectTemplate,
    BodyTemplate,
    Recipients,
    RecipientPosition,
    SendAutomatically,
    Sender,
    SenderUserId,
    SenderGroupId,
    Billing,
}

#[derive(DeriveIden)]
enum Enrollment {
    Table,
    Id,
    AccountId,
    WorkflowId,
    ContactId,
    EnrolledOn,
    Status,
    CreatedAt,
    EndedAt,
}

#[derive(DeriveIden)]
enum PlannedAction {
    Table,
    Id,
    AccountId,
    EnrollmentId,
    WorkflowId,
    ActionId,
    ContactId,
    Position,
    Kind,
    Trigger,
    Status,
    DueOn,
    AssigneeId,
    SenderUserId,
    TodoReason,
    Fallback,
    FromAddress,
    Recipients,
    Subject,
    Body,
    OutboxMessageId,
    DocumentId,
    Billing,
    DoneAt,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WorkflowRun {
    Table,
    AccountId,
    RunOn,
    StartedAt,
    FinishedAt,
    Sent,
    Todo,
}

#[derive(DeriveIden)]
enum LetterDocument {
    Table,
    Id,
    AccountId,
    PlannedActionId,
    FileName,
    Pdf,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Account {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Contact {
    Table,
    Id,
}

fn fk(
    name: &str,
    from: (impl IntoIden + 'static, impl IntoIden),
    to: (impl IntoIden + 'static, impl IntoIden),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).on_delete(on_delete).to_owned()
}

const CASCADE: ForeignKeyAction = ForeignKeyAction::Cascade;
const SET_NULL: ForeignKeyAction = ForeignKeyAction::SetNull;

const INDEXES: &[&str] = &[
    "CREATE UNIQUE INDEX ux_user_group_name ON user_group (account_id, name)",
    "CREATE UNIQUE INDEX ux_workflow_action_position ON workflow_action (workflow_id, position)",
    // One active enrollment of a customer in a workflow.
    "CREATE UNIQUE INDEX ux_enrollment_active ON enrollment (workflow_id, contact_id) WHERE status = 'ACTIVE'",
    "CREATE INDEX ix_planned_action_enrollment ON planned_action (enrollment_id)",
    // What a run sends: an account's automatic actions due by a date.
    "CREATE INDEX ix_planned_action_due ON planned_action (account_id, due_on) WHERE status = 'PLANNED' AND \"trigger\" = 'AUTOMATED'",
    "CREATE INDEX ix_planned_action_contact ON planned_action (contact_id)",
    "CREATE INDEX ix_planned_action_account ON planned_action (account_id, due_on)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(ContactPerson::Phone).string_len(20).null().to_owned(),
            ColumnDef::new(ContactPerson::PostalAddress).json().null().to_owned(),
            ColumnDef::new(ContactPerson::Main).boolean().not_null().default(false).to_owned(),
        ] {
            m.alter_table(Table::alter().table(ContactPerson::Table).add_column(column).to_owned()).await?;
        }
        m.alter_table(Table::alter().table(OutboxMessage::Table).add_column(ColumnDef::new(OutboxMessage::SenderUserId).uuid().null().to_owned()).to_owned())
            .await?;

        m.create_table(
            Table::create()
                .table(UserGroup::Table)
                .col(uuid(UserGroup::Id).primary_key())
                .col(uuid(UserGroup::AccountId))
                .col(string_len(UserGroup::Name, 100))
                .col(integer(UserGroup::Version))
                .col(timestamp_with_time_zone(UserGroup::CreatedAt))
                .col(timestamp_with_time_zone(UserGroup::UpdatedAt))
                .foreign_key(&mut fk("fk_user_group_account", (UserGroup::Table, UserGroup::AccountId), (Account::Table, Account::Id), CASCADE))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(UserGroupMember::Table)
                .col(uuid(UserGroupMember::GroupId))
                .col(uuid(UserGroupMember::UserId))
                .col(uuid(UserGroupMember::AccountId))
                .col(integer(UserGroupMember::Position))
                .primary_key(Index::create().col(UserGroupMember::GroupId).col(UserGroupMember::UserId))
                .foreign_key(&mut fk("fk_group_member_group", (UserGroupMember::Table, UserGroupMember::GroupId), (UserGroup::Table, UserGroup::Id), CASCADE))
                .foreign_key(&mut fk("fk_group_member_user", (UserGroupMember::Table, UserGroupMember::UserId), (User::Table, User::Id), CASCADE))
                .foreign_key(&mut fk("fk_group_member_account", (UserGroupMember::Table, UserGroupMember::AccountId), (Account::Table, Account::Id), CASCADE))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CommunicationCalendar::Table)
                .col(uuid(CommunicationCalendar::AccountId).primary_key())
                .col(string_len(CommunicationCalendar::SchedulingTime, 5))
                .col(json(CommunicationCalendar::Holidays))
                .col(integer(CommunicationCalendar::Version))
                .col(timestamp_with_time_zone(CommunicationCalendar::UpdatedAt))
                .col(uuid_null(CommunicationCalendar::UpdatedBy))
                .foreign_key(&mut fk(
                    "fk_calendar_account",
                    (CommunicationCalendar::Table, CommunicationCalendar::AccountId),
                    (Account::Table, Account::Id),
                    CASCADE,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Workflow::Table)
                .col(uuid(Workflow::Id).primary_key())
                .col(uuid(Workflow::AccountId))
                .col(string_len(Workflow::Name, 200))
                .col(text_null(Workflow::Description))
                .col(boolean(Workflow::Active))
                .col(integer(Workflow::Version))
                .col(timestamp_with_time_zone(Workflow::CreatedAt))
                .col(timestamp_with_time_zone(Workflow::UpdatedAt))
                .col(uuid_null(Workflow::UpdatedBy))
                .foreign_key(&mut fk("fk_workflow_account", (Workflow::Table, Workflow::AccountId), (Account::Table, Account::Id), CASCADE))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WorkflowAction::Table)
                .col(uuid(WorkflowAction::Id).primary_key())
                .col(uuid(WorkflowAction::AccountId))
                .col(uuid(WorkflowAction::WorkflowId))
                .col(integer(WorkflowAction::Position))
                .col(string_len(WorkflowAction::Kind, 16))
                .col(string_len(WorkflowAction::Name, 200))
                .col(integer(WorkflowAction::DelayDays))
                .col(string_len(WorkflowAction::DelayFrom, 16))
                .col(text_null(WorkflowAction::SubjectTemplate))
                .col(text_null(WorkflowAction::BodyTemplate))
                .col(string_len(WorkflowAction::Recipients, 16))
                .col(string_len_null(WorkflowAction::RecipientPosition, 100))
                .col(boolean(WorkflowAction::SendAutomatically))
                .col(string_len_null(WorkflowAction::Sender, 16))
                .col(uuid_null(WorkflowAction::SenderUserId))
                .col(uuid_null(WorkflowAction::SenderGroupId))
                .col(boolean(WorkflowAction::Billing))
                .foreign_key(&mut fk(
                    "fk_workflow_action_workflow",
                    (WorkflowAction::Table, WorkflowAction::WorkflowId),
                    (Workflow::Table, Workflow::Id),
                    CASCADE,
                ))
                .foreign_key(&mut fk("fk_workflow_action_account", (WorkflowAction::Table, WorkflowAction::AccountId), (Account::Table, Account::Id), CASCADE))
                // A sender that goes leaves the action without one: it becomes a to-do, never
                // someone else's send.
                .foreign_key(&mut fk("fk_workflow_action_user", (WorkflowAction::Table, WorkflowAction::SenderUserId), (User::Table, User::Id), SET_NULL))
                .foreign_key(&mut fk(
                    "fk_workflow_action_group",
                    (WorkflowAction::Table, WorkflowAction::SenderGroupId),
                    (UserGroup::Table, UserGroup::Id),
                    SET_NULL,
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Enrollment::Table)
                .col(uuid(Enrollment::Id).primary_key())
                .col(uuid(Enrollment::AccountId))
                .col(uuid(Enrollment::WorkflowId))
                .col(uuid(Enrollment::ContactId))
                .col(date(Enrollment::EnrolledOn))
                .col(string_len(Enrollment::Status, 16))
                .col(timestamp_with_time_zone(Enrollment::CreatedAt))
                .col(timestamp_with_time_zone_null(Enrollment::EndedAt))
                .foreign_key(&mut fk("fk_enrollment_workflow", (Enrollment::Table, Enrollment::WorkflowId), (Workflow::Table, Workflow::Id), CASCADE))
                .foreign_key(&mut fk("fk_enrollment_contact", (Enrollment::Table, Enrollment::ContactId), (Contact::Table, Contact::Id), CASCADE))
                .foreign_key(&mut fk("fk_enrollment_account", (Enrollment::Table, Enrollment::AccountId), (Account::Table, Account::Id), CASCADE))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PlannedAction::Table)
                .col(uuid(PlannedAction::Id).primary_key())
                .col(uuid(PlannedAction::AccountId))
                .col(uuid(PlannedAction::EnrollmentId))
                .col(uuid(PlannedAction::WorkflowId))
                .col(uuid_null(PlannedAction::ActionId))
                .col(uuid(PlannedAction::ContactId))
                .col(integer(PlannedAction::Position))
                .col(string_len(PlannedAction::Kind, 16))
                .col(string_len(PlannedAction::Trigger, 16))
                .col(string_len(PlannedAction::Status, 16))
                .col(date(PlannedAction::DueOn))
                .col(uuid_null(PlannedAction::AssigneeId))
                .col(uuid_null(PlannedAction::SenderUserId))
                .col(text_null(PlannedAction::TodoReason))
                .col(string_len_null(PlannedAction::Fallback, 32))
                .col(string_len_null(PlannedAction::FromAddress, 320))
                .col(json_null(PlannedAction::Recipients))
                .col(text_null(PlannedAction::Subject))
                .col(text_null(PlannedAction::Body))
                .col(uuid_null(PlannedAction::OutboxMessageId))
                .col(uuid_null(PlannedAction::DocumentId))
                .col(boolean(PlannedAction::Billing))
                .col(timestamp_with_time_zone_null(PlannedAction::DoneAt))
                .col(integer(PlannedAction::Version))
                .col(timestamp_with_time_zone(PlannedAction::CreatedAt))
                .col(timestamp_with_time_zone(PlannedAction::UpdatedAt))
                .foreign_key(&mut fk(
                    "fk_planned_enrollment",
                    (PlannedAction::Table, PlannedAction::EnrollmentId),
                    (Enrollment::Table, Enrollment::Id),
                    CASCADE,
                ))
                .foreign_key(&mut fk(
                    "fk_planned_action",
                    (PlannedAction::Table, PlannedAction::ActionId),
                    (WorkflowAction::Table, WorkflowAction::Id),
                    SET_NULL,
                ))
                .foreign_key(&mut fk("fk_planned_account", (PlannedAction::Table, PlannedAction::AccountId), (Account::Table, Account::Id), CASCADE))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WorkflowRun::Table)
                .col(uuid(WorkflowRun::AccountId))
                .col(date(WorkflowRun::RunOn))
                .col(timestamp_with_time_zone(WorkflowRun::StartedAt))
                .col(timestamp_with_time_zone_null(WorkflowRun::FinishedAt))
                .col(integer(WorkflowRun::Sent).default(0))
                .col(integer(WorkflowRun::Todo).default(0))
                .primary_key(Index::create().col(WorkflowRun::AccountId).col(WorkflowRun::RunOn))
                .foreign_key(&mut fk("fk_workflow_run_account", (WorkflowRun::Table, WorkflowRun::AccountId), (Account::Table, Account::Id), CASCADE))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(LetterDocument::Table)
                .col(uuid(LetterDocument::Id).primary_key())
                .col(uuid(LetterDocument::AccountId))
                .col(uuid(LetterDocument::PlannedActionId))
                .col(string_len(LetterDocument::FileName, 200))
                .col(blob(LetterDocument::Pdf))
                .col(timestamp_with_time_zone(LetterDocument::CreatedAt))
                .foreign_key(&mut fk("fk_letter_account", (LetterDocument::Table, LetterDocument::AccountId), (Account::Table, Account::Id), CASCADE))
                .to_owned(),
        )
        .await?;
        crate::execute_all(m, INDEXES).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LetterDocument::Table.into_iden(),
            WorkflowRun::Table.into_iden(),
            PlannedAction::Table.into_iden(),
            Enrollment::Table.into_iden(),
            WorkflowAction::Table.into_iden(),
            Workflow::Table.into_iden(),
            CommunicationCalendar::Table.into_iden(),
            UserGroupMember::Table.into_iden(),
            UserGroup::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        m.alter_table(Table::alter().table(OutboxMessage::Table).drop_column(OutboxMessage::SenderUserId).to_owned()).await?;
        for column in [ContactPerson::Phone.into_iden(), ContactPerson::PostalAddress.into_iden(), ContactPerson::Main.into_iden()] {
            m.alter_table(Table::alter().table(ContactPerson::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
