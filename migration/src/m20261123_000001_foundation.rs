//! Accounts, users, contacts with their persons and assignees, projects, API keys and the
//! audit log.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Account {
    Table,
    Id,
    Name,
    ParentId,
    TimeZone,
    Paused,
    AddOns,
    Version,
    CreatedAt,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
    AccountId,
    Name,
    Email,
    Phone,
    Role,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Contact {
    Table,
    Id,
    AccountId,
    Kind,
    Name,
    MainEmail,
    EmailDomain,
    Valid,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ContactAssignee {
    Table,
    ContactId,
    UserId,
    AccountId,
    Position,
    AssignedAt,
}

#[derive(DeriveIden)]
enum ContactPerson {
    Table,
    Id,
    AccountId,
    ContactId,
    Name,
    Email,
    Position,
    Invalid,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Project {
    Table,
    Id,
    AccountId,
    Name,
    CustomerId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiKey {
    Table,
    Id,
    AccountId,
    Name,
    SecretHash,
    Scopes,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuditEvent {
    Table,
    Id,
    AccountId,
    ActorUserId,
    ImpersonatedUserId,
    ApiKeyId,
    Action,
    ObjectType,
    ObjectId,
    Before,
    After,
    CreatedAt,
}

fn fk(name: &str, from: (impl IntoIden + 'static, impl IntoIden), to: (impl IntoIden + 'static, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Account::Table)
                .col(uuid(Account::Id).primary_key())
                .col(string(Account::Name))
                .col(uuid_null(Account::ParentId))
                .col(string_len(Account::TimeZone, 64))
                .col(boolean(Account::Paused).default(false))
                .col(json(Account::AddOns))
                .col(integer(Account::Version).default(1))
                .col(timestamp_with_time_zone(Account::CreatedAt))
                .col(timestamp_with_time_zone(Account::UpdatedAt))
                .col(uuid_null(Account::UpdatedBy))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_account_parent")
                        .from(Account::Table, Account::ParentId)
                        .to(Account::Table, Account::Id)
                        .on_delete(ForeignKeyAction::Restrict)
                        .to_owned(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_account_parent").table(Account::Table).col(Account::ParentId).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(User::Table)
                .col(uuid(User::Id).primary_key())
                .col(uuid(User::AccountId))
                .col(string(User::Name))
                .col(string(User::Email))
                .col(string_null(User::Phone))
                .col(string_len(User::Role, 32))
                .col(boolean(User::Active).default(true))
                .col(timestamp_with_time_zone(User::CreatedAt))
                .col(timestamp_with_time_zone(User::UpdatedAt))
                .foreign_key(&mut fk("fk_user_account", (User::Table, User::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ux_user_account_email").table(User::Table).col(User::AccountId).col(User::Email).unique().to_owned()).await?;

        m.create_table(
            Table::create()
                .table(Contact::Table)
                .col(uuid(Contact::Id).primary_key())
                .col(uuid(Contact::AccountId))
                .col(string_len(Contact::Kind, 16))
                .col(string(Contact::Name))
                .col(string_null(Contact::MainEmail))
                .col(string_null(Contact::EmailDomain))
                .col(boolean(Contact::Valid).default(true))
                .col(timestamp_with_time_zone(Contact::CreatedAt))
                .col(timestamp_with_time_zone(Contact::UpdatedAt))
                .foreign_key(&mut fk("fk_contact_account", (Contact::Table, Contact::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_contact_account").table(Contact::Table).col(Contact::AccountId).col(Contact::Id).to_owned()).await?;
        m.create_index(Index::create().name("ix_contact_domain").table(Contact::Table).col(Contact::AccountId).col(Contact::EmailDomain).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(ContactAssignee::Table)
                .col(uuid(ContactAssignee::ContactId))
                .col(uuid(ContactAssignee::UserId))
                .col(uuid(ContactAssignee::AccountId))
                .col(integer(ContactAssignee::Position))
                .col(timestamp_with_time_zone(ContactAssignee::AssignedAt))
                .primary_key(Index::create().col(ContactAssignee::ContactId).col(ContactAssignee::UserId))
                .foreign_key(&mut fk("fk_assignee_contact", (ContactAssignee::Table, ContactAssignee::ContactId), (Contact::Table, Contact::Id)))
                .foreign_key(&mut fk("fk_assignee_user", (ContactAssignee::Table, ContactAssignee::UserId), (User::Table, User::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_assignee_user").table(ContactAssignee::Table).col(ContactAssignee::UserId).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(ContactPerson::Table)
                .col(uuid(ContactPerson::Id).primary_key())
                .col(uuid(ContactPerson::AccountId))
                .col(uuid(ContactPerson::ContactId))
                .col(string(ContactPerson::Name))
                .col(string_null(ContactPerson::Email))
                .col(string_null(ContactPerson::Position))
                .col(boolean(ContactPerson::Invalid).default(false))
                .col(timestamp_with_time_zone(ContactPerson::CreatedAt))
                .col(timestamp_with_time_zone(ContactPerson::UpdatedAt))
                .foreign_key(&mut fk("fk_person_contact", (ContactPerson::Table, ContactPerson::ContactId), (Contact::Table, Contact::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_person_contact").table(ContactPerson::Table).col(ContactPerson::ContactId).to_owned()).await?;
        m.create_index(Index::create().name("ix_person_email").table(ContactPerson::Table).col(ContactPerson::AccountId).col(ContactPerson::Email).to_owned())
            .await?;

        m.create_table(
            Table::create()
                .table(Project::Table)
                .col(uuid(Project::Id).primary_key())
                .col(uuid(Project::AccountId))
                .col(string(Project::Name))
                .col(uuid_null(Project::CustomerId))
                .col(timestamp_with_time_zone(Project::CreatedAt))
                .col(timestamp_with_time_zone(Project::UpdatedAt))
                .foreign_key(&mut fk("fk_project_account", (Project::Table, Project::AccountId), (Account::Table, Account::Id)))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_project_customer")
                        .from(Project::Table, Project::CustomerId)
                        .to(Contact::Table, Contact::Id)
                        .on_delete(ForeignKeyAction::SetNull)
                        .to_owned(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_project_account").table(Project::Table).col(Project::AccountId).col(Project::Id).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(ApiKey::Table)
                .col(uuid(ApiKey::Id).primary_key())
                .col(uuid(ApiKey::AccountId))
                .col(string(ApiKey::Name))
                .col(string_len(ApiKey::SecretHash, 64))
                .col(json(ApiKey::Scopes))
                .col(uuid_null(ApiKey::CreatedBy))
                .col(timestamp_with_time_zone(ApiKey::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiKey::LastUsedAt))
                .col(timestamp_with_time_zone_null(ApiKey::RevokedAt))
                .foreign_key(&mut fk("fk_api_key_account", (ApiKey::Table, ApiKey::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditEvent::Table)
                .col(uuid(AuditEvent::Id).primary_key())
                .col(uuid(AuditEvent::AccountId))
                .col(uuid_null(AuditEvent::ActorUserId))
                .col(uuid_null(AuditEvent::ImpersonatedUserId))
                .col(uuid_null(AuditEvent::ApiKeyId))
                .col(string_len(AuditEvent::Action, 64))
                .col(string_len(AuditEvent::ObjectType, 64))
                .col(string_len(AuditEvent::ObjectId, 64))
                .col(json_null(AuditEvent::Before))
                .col(json_null(AuditEvent::After))
                .col(timestamp_with_time_zone(AuditEvent::CreatedAt))
                .foreign_key(&mut fk("fk_audit_account", (AuditEvent::Table, AuditEvent::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_audit_account").table(AuditEvent::Table).col(AuditEvent::AccountId).col(AuditEvent::Id).to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvent::Table.into_iden(),
            ApiKey::Table.into_iden(),
            Project::Table.into_iden(),
            ContactPerson::Table.into_iden(),
            ContactAssignee::Table.into_iden(),
            Contact::Table.into_iden(),
            User::Table.into_iden(),
            Account::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
