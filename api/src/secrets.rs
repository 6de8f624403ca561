//! Key rotation for secrets at rest: re-seal every stored envelope under the active key.
//!
//! Rotation is online: put a new key first in `HERALD_SECRET_KEY` (keeping the old ones),
//! restart, then run `api rotate-secrets`. Envelopes sealed with old keys keep opening in
//! the meantime; once the command reports nothing left under old keys, they can be dropped
//! from the ring. Each row is re-sealed with a compare-and-swap, so a secret changed by a
//! user during the rotation is never overwritten with the old value.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::crypto::{CryptoError, Keyring, SecretSlot};

/// A column holding sealed secrets. Its table has `id` and `account_id` UUID columns, which
/// (with the table and column names) are the envelope's associated data.
#[derive(Clone, Copy, Debug)]
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
}

/// Every column of Herald's schema that holds sealed secrets. Features that store secrets
/// (SMTP and IMAP passwords, gateway tokens) add their column here so rotation covers them.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn { table: crate::activities::settings::TABLE, column: crate::activities::settings::PASSWORD_COLUMN },
    SealedColumn { table: crate::activities::sms::TABLE, column: crate::activities::sms::TOKEN_COLUMN },
    SealedColumn { table: crate::mailboxes::TABLE, column: crate::mailboxes::PASSWORD_COLUMN },
    SealedColumn { table: crate::mailboxes::TABLE, column: crate::mailboxes::SMTP_PASSWORD_COLUMN },
    SealedColumn { table: crate::mailboxes::TABLE, column: crate::mailboxes::REFRESH_TOKEN_COLUMN },
    SealedColumn { table: crate::mailboxes::TABLE, column: crate::mailboxes::ACCESS_TOKEN_COLUMN },
    SealedColumn { table: crate::mailboxes::connect::TABLE, column: crate::mailboxes::connect::VERIFIER_COLUMN },
];

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    pub examined: usize,
    pub resealed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("{table}.{column} row {id}: {source}")]
    Envelope { table: &'static str, column: &'static str, id: Uuid, source: CryptoError },
}

fn quoted(backend: DbBackend, ident: &str) -> String {
    match backend {
        DbBackend::MySql => format!("`{ident}`"),
        _ => format!("\"{ident}\""),
    }
}

pub async fn rotate(db: &impl ConnectionTrait, keyring: &Keyring, columns: &[SealedColumn]) -> Result<RotationReport, RotationError> {
    let backend = db.get_database_backend();
    let mut report = RotationReport::default();
    for sealed in columns {
        let (table, column) = (quoted(backend, sealed.table), quoted(backend, sealed.column));
        let rows =
            db.query_all(Statement::from_string(backend, format!("SELECT id, account_id, {column} AS secret FROM {table} WHERE {column} IS NOT NULL"))).await?;
        for row in rows {
            report.examined += 1;
            let id: Uuid = row.try_get("", "id")?;
            let account_id: Uuid = row.try_get("", "account_id")?;
            let envelope: String = row.try_get("", "secret")?;
            let fail = |source| RotationError::Envelope { table: sealed.table, column: sealed.column, id, source };
            if !keyring.needs_rotation(&envelope).map_err(fail)? {
                continue;
            }
            let slot = SecretSlot { account_id, table: sealed.table, row_id: id, column: sealed.column };
            let fresh = keyring.reseal(slot, &envelope).map_err(fail)?;
            let (p1, p2, p3) = match backend {
                DbBackend::Postgres => ("$1", "$2", "$3"),
                _ => ("?", "?", "?"),
            };
            let result = db
                .execute(Statement::from_sql_and_values(
                    backend,
                    format!("UPDATE {table} SET {column} = {p1} WHERE id = {p2} AND {column} = {p3}"),
                    [Value::from(fresh), Value::from(id), Value::from(envelope)],
                ))
                .await?;
            report.resealed += result.rows_affected() as usize;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use sea_orm::Database;

    use super::*;

    #[tokio::test]
    async fn rotation_reseals_old_envelopes_under_the_active_key() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE vault (id BLOB PRIMARY KEY, account_id BLOB NOT NULL, password TEXT)").await.unwrap();
        let old_spec = Keyring::generate_spec("k1");
        let old = Keyring::parse(&old_spec).unwrap();
        let column = SealedColumn { table: "vault", column: "password" };
        let account = Uuid::now_v7();
        let mut rows = Vec::new();
        for (i, secret) in ["alpha", "beta"].iter().enumerate() {
            let id = Uuid::now_v7();
            let envelope = old.seal(SecretSlot { account_id: account, table: "vault", row_id: id, column: "password" }, secret);
            db.execute(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO vault (id, account_id, password) VALUES (?, ?, ?)",
                [Value::from(id), Value::from(account), Value::from(envelope)],
            ))
            .await
            .unwrap();
            rows.push((id, i));
        }
        db.execute(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO vault (id, account_id, password) VALUES (?, ?, NULL)",
            [Value::from(Uuid::now_v7()), Value::from(account)],
        ))
        .await
        .unwrap();

        let ring = Keyring::parse(&format!("{},{old_spec}", Keyring::generate_spec("k2"))).unwrap();
        let report = rotate(&db, &ring, &[column]).await.unwrap();
        assert_eq!(report, RotationReport { examined: 2, resealed: 2 });
        let again = rotate(&db, &ring, &[column]).await.unwrap();
        assert_eq!(again, RotationReport { examined: 2, resealed: 0 }, "nothing left under the old key");

        for (id, i) in rows {
            let row = db
                .query_one(Statement::from_sql_and_values(DbBackend::Sqlite, "SELECT password FROM vault WHERE id = ?", [Value::from(id)]))
                .await
                .unwrap()
                .unwrap();
            let envelope: String = row.try_get("", "password").unwrap();
            assert!(envelope.starts_with("v1.k2."));
            let slot = SecretSlot { account_id: account, table: "vault", row_id: id, column: "password" };
            assert_eq!(ring.open(slot, &envelope).unwrap().expose(), ["alpha", "beta"][i]);
            assert!(old.open(slot, &envelope).is_err(), "the old key alone no longer opens it");
        }
    }
}
