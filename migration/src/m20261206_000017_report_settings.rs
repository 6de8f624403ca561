//! System reports recipients (seeds/000): per account, the roles that receive integration
//! reports, the users added to them, and the BCC address every report carries.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReportSettings {
    Table,
    AccountId,
    BillingAdmins,
    CompanyAdmins,
    CompanySupervisors,
    Bcc,
    Version,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum ReportRecipient {
    Table,
    AccountId,
    UserId,
    Position,
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

fn cascade(name: &str, from: (impl IntoIden + 'static, impl IntoIden), to: (impl IntoIden + 'static, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ReportSettings::Table)
                .col(uuid(ReportSettings::AccountId).primary_key())
                .col(boolean(ReportSettings::BillingAdmins))
                .col(boolean(ReportSettings::CompanyAdmins))
                .col(boolean(ReportSettings::CompanySupervisors))
                .col(string_len_null(ReportSettings::Bcc, 320))
                .col(integer(ReportSettings::Version))
                .col(timestamp_with_time_zone(ReportSettings::UpdatedAt))
                .col(uuid_null(ReportSettings::UpdatedBy))
                .foreign_key(&mut cascade("fk_report_settings_account", (ReportSettings::Table, ReportSettings::AccountId), (Account::Table, Account::Id)))
                .to_owned(),
        )
        .await?;
        // A deleted user drops out of the recipients with their row.
        m.create_table(
            Table::create()
                .table(ReportRecipient::Table)
                .col(uuid(ReportRecipient::AccountId))
                .col(uuid(ReportRecipient::UserId))
                .col(integer(ReportRecipient::Position))
                .primary_key(Index::create().col(ReportRecipient::AccountId).col(ReportRecipient::UserId))
                .foreign_key(&mut cascade("fk_report_recipient_account", (ReportRecipient::Table, ReportRecipient::AccountId), (Account::Table, Account::Id)))
                .foreign_key(&mut cascade("fk_report_recipient_user", (ReportRecipient::Table, ReportRecipient::UserId), (User::Table, User::Id)))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ReportRecipient::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(ReportSettings::Table).to_owned()).await
    }
}
