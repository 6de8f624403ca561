//! Database connection and migrations.
//!
//! Several api and worker processes may start at once against one PostgreSQL database, so
//! migrations run inside one transaction that first takes a transaction-level advisory lock:
//! the first process migrates, the others wait on the lock and then find nothing to do.
//! PostgreSQL's DDL is transactional, so a failed migration leaves nothing half-applied.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    sea_query::{ArrayType, Expr, PgFunc, SimpleExpr, Value},
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityName,
    EntityTrait, IdenStatic, IntoActiveModel, Iterable, ModelTrait, Statement, TransactionTrait,
};

use sea_orm::sqlx::sqlite::SqliteJournalMode;
use uuid::Uuid;

use crate::config::Config;

/// Arbitrary constant naming Herald's migration lock among the database's advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x4845_5241_4c44; // "HERALD"

pub async fn connect(config: &Config) -> Result<DatabaseConnection, DbErr> {
    connect_with(config, config.database_max_connections, false).await
}

/// Whether `err` says the database cannot be reached now (down, restarting, unreachable, or
/// every connection busy for longer than a request may wait), rather than that a statement
/// was wrong: what a client should retry after a moment.
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::{sqlx::Error as Sqlx, RuntimeErr};
    let sqlx = match err {
        // No connection could be had: whatever the reason (refused, closed during the
        // handshake by a proxy whose database is down, timed out), this process cannot reach it.
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx {
        Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P0x (shutting down, cannot connect now).
        Sqlx::Database(e) => e.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
        _ => false,
    }
}

/// The worker's pool for the outbox's own bookkeeping (claims and outcomes), with
/// `synchronous_commit` off on PostgreSQL: those commits do not wait for the WAL to reach the
/// disk, a wait that would otherwise dominate a worker's sending. What it risks is safe: a
/// database crash can forget the last few hundred milliseconds of outcomes, so those messages
/// are sent again (same Message-ID) — never lost. Everything else, and every SQLite write,
/// commits durably. Answers `None` on SQLite (one pool is all a single writer needs).
///
/// Its planner also never chooses a sequential scan where an index serves
/// (`enable_seqscan = off`, on this pool only). A claim or a batch of outcomes is a few
/// primary-key lookups, but a statement's generic plan is made once, for the table as it is
/// then: cached while the outbox is small (a new deployment, or a quiet hour before a burst),
/// it would hash-join the batch against a scan of the whole table, a cost that grows with the
/// table. Without the scan the generic plan is the index lookup at any size, so it is made
/// once per connection; planning every execution afresh
/// (`plan_cache_mode = force_custom_plan`) would also avoid the scan, but pays for planning
/// on every statement.
pub async fn connect_outbox(config: &Config, max_connections: u32) -> Result<Option<DatabaseConnection>, DbErr> {
    if !config.effective_database_url().starts_with("postgres") {
        return Ok(None);
    }
    connect_with(config, max_connections, true).await.map(Some)
}

async fn connect_with(config: &Config, max_connections: u32, relaxed_commit: bool) -> Result<DatabaseConnection, DbErr> {
    let url = config.effective_database_url();
    let postgres = url.starts_with("postgres");
    let mut options = ConnectOptions::new(url);
    if relaxed_commit {
        options.map_sqlx_postgres_opts(|pg| pg.options([("synchronous_commit", "off"), ("enable_seqscan", "off")]));
    }
    // A request waits for a PostgreSQL connection only briefly: when the database is down or
    // saturated, an UNAVAILABLE answer the client can retry beats a request that hangs. The
    // worker's outbox pool is no request's, and SQLite is local: they wait longer.
    let wait = if relaxed_commit || !postgres { Duration::from_secs(10) } else { config.database_wait };
    options.max_connections(max_connections).min_connections(1).connect_timeout(wait).acquire_timeout(wait).sqlx_logging(false);
    if let Some(schema) = &config.database_schema {
        options.set_schema_search_path(schema.clone());
    }
    // SQLite: write-ahead logging, so that readers never wait for the writer nor it for them;
    // writers wait for one another up to the busy timeout (see [`begin_write`]).
    options.map_sqlx_sqlite_opts(|o| o.journal_mode(SqliteJournalMode::Wal).busy_timeout(SQLITE_BUSY_TIMEOUT));
    if config.database_url.is_none() {
        create_private(&config.data_dir.join("herald.db"))?;
    }
    Database::connect(options).await
}

/// How long a write on SQLite waits for another writer before it fails.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the embedded database file readable by its owner only (mode 0600, like the key
/// file), or narrows an existing one. SQLite gives its write-ahead log and shared-memory
/// files the database file's mode.
fn create_private(path: &std::path::Path) -> Result<(), DbErr> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |e: std::io::Error| DbErr::Custom(format!("cannot create the database file {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)
}

/// Begins a transaction that writes.
///
/// On SQLite it takes the database's write lock first, as `BEGIN IMMEDIATE` would (sea-orm
/// only says `BEGIN`): a transaction that reads before it writes cannot wait for the lock
/// when it gets there — SQLite answers "database is locked" at once if another connection
/// wrote meanwhile — whereas a transaction that starts by writing waits its turn, up to the
/// busy timeout. A `DELETE` that matches nothing is such a first write: it changes no page.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        txn.execute_unprepared("DELETE FROM seaql_migrations WHERE 0").await?;
    }
    Ok(txn)
}

/// Applies pending migrations; safe when several processes start together.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY.into()])).await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await
        }
        _ => {
            // SQLite is the single-process embedded mode; a second process racing on the same
            // file sees SQLITE_BUSY at worst, and a retry then finds the work done.
            match Migrator::up(db, None).await {
                Ok(()) => Ok(()),
                Err(first) => {
                    tracing::warn!(error = %first, "migration failed once; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Migrator::up(db, None).await
                }
            }
        }
    }
}

/// Rows for a PostgreSQL statement, travelling as one typed array parameter per column:
/// `unnest($1::uuid[], $2::text[], …) AS v (id, name, …)`. The statement's text is the same
/// whatever the number of rows, so it is prepared once and bound with a few parameters, where
/// a `VALUES` list would be a new statement of one parameter per field for every batch size.
///
/// The driver cannot bind a NULL array element, so a nullable column travels with a boolean
/// array beside it that says which of its elements are NULL ([`Unnest::nullable`]); select it
/// with [`Unnest::value`].
#[derive(Debug, Default)]
pub struct Unnest {
    values: Vec<Value>,
    arrays: Vec<String>,
    names: Vec<String>,
    /// Number of the statement's parameters before the arrays.
    offset: usize,
}

impl Unnest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arrays numbered after the statement's own `offset` parameters (`$offset+1`, …), or
    /// after another `Unnest`'s in the same statement.
    pub fn after(offset: usize) -> Self {
        Self { offset, ..Self::default() }
    }

    /// How many parameters this and the parameters before it take.
    pub fn parameters(&self) -> usize {
        self.offset + self.values.len()
    }

    /// A column of non-NULL values of type `t`.
    pub fn column(&mut self, name: &str, t: ArrayType, items: impl IntoIterator<Item = Value>) -> &mut Self {
        self.push(name, t, items.into_iter().collect());
        self
    }

    /// A column whose values may be NULL: its values (NULLs replaced by `stand_in`) and a
    /// boolean array `{name}_null` beside them.
    pub fn nullable(&mut self, name: &str, t: ArrayType, stand_in: Value, items: impl IntoIterator<Item = Option<Value>>) -> &mut Self {
        let (values, nulls): (Vec<Value>, Vec<Value>) =
            items.into_iter().map(|item| (item.clone().unwrap_or_else(|| stand_in.clone()), Value::Bool(Some(item.is_none())))).unzip();
        self.push(name, t, values);
        self.push(&format!("{name}_null"), ArrayType::Bool, nulls);
        self
    }

    fn push(&mut self, name: &str, t: ArrayType, items: Vec<Value>) {
        self.values.push(Value::Array(t.clone(), Some(Box::new(items))));
        self.arrays.push(format!("${}::{}", self.parameters(), sql_array_type(&t)));
        self.names.push(name.to_string());
    }

    /// `alias.name`, or for a nullable column the expression that puts its NULLs back.
    pub fn value(&self, alias: &str, name: &str) -> String {
        let mask = format!("{name}_null");
        if self.names.contains(&mask) {
            format!("CASE WHEN {alias}.{mask} THEN NULL ELSE {alias}.{name} END")
        } else {
            format!("{alias}.{name}")
        }
    }

    /// `unnest(…) AS alias (names…)`, to use in a FROM clause.
    pub fn source(&self, alias: &str) -> String {
        format!("unnest({}) AS {alias} ({})", self.arrays.join(", "), self.names.join(", "))
    }

    /// `unnest(…) WITH ORDINALITY AS alias (names…, ordinal)`: each row numbered from 1.
    pub fn source_numbered(&self, alias: &str, ordinal: &str) -> String {
        format!("unnest({}) WITH ORDINALITY AS {alias} ({}, {ordinal})", self.arrays.join(", "), self.names.join(", "))
    }

    /// The array parameters, in order.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

/// The PostgreSQL type of an array of `t`.
fn sql_array_type(t: &ArrayType) -> &'static str {
    match t {
        ArrayType::Bool => "bool[]",
        ArrayType::Int => "int4[]",
        ArrayType::BigInt => "int8[]",
        ArrayType::String => "text[]",
        ArrayType::Uuid => "uuid[]",
        ArrayType::Json => "jsonb[]",
        ArrayType::ChronoDateTimeUtc => "timestamptz[]",
        other => unimplemented!("no PostgreSQL array type is mapped for {other:?}"),
    }
}

/// `column IN (ids)`; on PostgreSQL `column = ANY($1)` with the ids as one array parameter.
/// An `IN` list is a statement of its own for every length (parsed and planned again, with
/// as many parameters as ids), so every batch read by id would be parsed and planned anew, at
/// a cost per row; the array is one parameter and one prepared statement at any length.
pub fn id_in<C: ColumnTrait>(backend: DbBackend, column: C, ids: impl IntoIterator<Item = Uuid>) -> SimpleExpr {
    match backend {
        DbBackend::Postgres => {
            let array = Value::Array(ArrayType::Uuid, Some(Box::new(ids.into_iter().map(Value::from).collect())));
            Expr::col(column).eq(PgFunc::any(Expr::val(array)))
        }
        _ => column.is_in(ids),
    }
}

/// Inserts `rows` of one entity, in as few statements as the backend allows.
///
/// On PostgreSQL the rows travel column by column, as one typed array per column, into
/// `INSERT … SELECT … FROM unnest(…)`: a statement of a few dozen parameters however many
/// rows it carries, instead of a `VALUES` list of one parameter per field. An account-wide
/// event writes ten thousand panel rows; as `VALUES` lists of a thousand rows that would be
/// ten statements whose parse and bind cost more than the inserts themselves. A nullable
/// column travels with a second, boolean array that says which of its elements are NULL,
/// since an array parameter cannot hold NULLs through sea-query. SQLite, and any column type
/// this does not map, take `insert_many` in chunks that stay under SQLite's 32,766
/// parameters.
pub async fn insert_all<E>(db: &impl ConnectionTrait, rows: &[E::Model]) -> Result<(), DbErr>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel> + Clone,
    E::ActiveModel: Send,
{
    if rows.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        if let Some(statement) = unnest_insert(rows) {
            db.execute(statement).await?;
            return Ok(());
        }
    }
    let columns = E::Column::iter().count().max(1);
    for chunk in rows.chunks((32_766 / columns).min(1000)) {
        E::insert_many(chunk.iter().cloned().map(|r| r.into_active_model().reset_all())).exec_without_returning(db).await?;
    }
    Ok(())
}

/// The PostgreSQL array type of a column's values and the value that stands in for a NULL
/// (masked out again by the statement); `None` for types `insert_all` leaves to `insert_many`.
fn array_of(value: &Value) -> Option<(ArrayType, Value)> {
    Some(match value {
        Value::Bool(_) => (ArrayType::Bool, Value::Bool(Some(false))),
        Value::Int(_) => (ArrayType::Int, Value::Int(Some(0))),
        Value::BigInt(_) => (ArrayType::BigInt, Value::BigInt(Some(0))),
        Value::String(_) => (ArrayType::String, Value::String(Some(Box::default()))),
        Value::Uuid(_) => (ArrayType::Uuid, Value::Uuid(Some(Box::default()))),
        Value::Json(_) => (ArrayType::Json, Value::Json(Some(Box::default()))),
        Value::ChronoDateTimeUtc(_) => (ArrayType::ChronoDateTimeUtc, Value::ChronoDateTimeUtc(Some(Box::default()))),
        _ => return None,
    })
}

fn is_null(value: &Value) -> bool {
    *value == value.as_null()
}

fn unnest_insert<M: ModelTrait>(rows: &[M]) -> Option<Statement> {
    let columns: Vec<<M::Entity as EntityTrait>::Column> = <M::Entity as EntityTrait>::Column::iter().collect();
    let mut rows_in = Unnest::new();
    let (mut names, mut selected) = (Vec::with_capacity(columns.len()), Vec::with_capacity(columns.len()));
    for (i, column) in columns.into_iter().enumerate() {
        let items: Vec<Value> = rows.iter().map(|r| r.get(column)).collect();
        let (array_type, stand_in) = array_of(&items[0])?;
        let alias = format!("c{i}");
        if column.def().is_null() || items.iter().any(is_null) {
            rows_in.nullable(&alias, array_type, stand_in, items.into_iter().map(|v| (!is_null(&v)).then_some(v)));
        } else {
            rows_in.column(&alias, array_type, items);
        }
        names.push(format!("\"{}\"", column.as_str()));
        selected.push(rows_in.value("v", &alias));
    }
    let table = <M::Entity as Default>::default();
    let sql = format!("INSERT INTO \"{}\" ({}) SELECT {} FROM {}", table.table_name(), names.join(", "), selected.join(", "), rows_in.source("v"));
    Some(Statement::from_sql_and_values(DbBackend::Postgres, sql, rows_in.into_values()))
}
