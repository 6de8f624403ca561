//! CONDSTORE: a folder's HIGHESTMODSEQ as of its last scan, so that a rescan of a server that
//! has CONDSTORE can tell from one STATUS that nothing in the folder changed.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MailboxFolder {
    Table,
    HighestModseq,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(MailboxFolder::Table).add_column(ColumnDef::new(MailboxFolder::HighestModseq).big_integer().null()).to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(MailboxFolder::Table).drop_column(MailboxFolder::HighestModseq).to_owned()).await
    }
}
