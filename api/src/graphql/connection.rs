//! Relay cursor connections over UUIDv7 keys.
//!
//! Keyset pagination: ids are time-ordered, so "after this cursor" is `id > cursor` with an
//! index, never an OFFSET. Cursors are opaque (base64url of the id) so clients do not build
//! them.

use async_graphql::{
    connection::{Connection, CursorType, Edge},
    OutputType,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

/// An opaque cursor naming a row by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdCursor(pub Uuid);

impl CursorType for IdCursor {
    type Error = ApiError;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| ApiError::bad_input("after", "not a cursor of this list"))?;
        Uuid::from_slice(&bytes).map(IdCursor).map_err(|_| ApiError::bad_input("after", "not a cursor of this list"))
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }
}

/// The Relay arguments of a list field.
#[derive(Clone, Debug, Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

impl PageArgs {
    pub fn new(first: Option<i32>, after: Option<String>, last: Option<i32>, before: Option<String>) -> Self {
        Self { first, after, last, before }
    }
}

/// Order of a list: oldest first (directories) or newest first (logs, feeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

pub type IdConnection<N> = Connection<IdCursor, N>;

/// Runs one keyset-paginated query and maps rows to GraphQL nodes.
pub async fn paginate<E, N>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    id_column: E::Column,
    id_of: impl Fn(&E::Model) -> Uuid,
    order: Order,
    args: PageArgs,
    to_node: impl Fn(E::Model) -> N,
) -> ApiResult<IdConnection<N>>
where
    E: EntityTrait,
    N: OutputType,
{
    let backward = args.last.is_some() || args.before.is_some();
    if backward && (args.first.is_some() || args.after.is_some()) {
        return Err(ApiError::bad_input("first", "use first/after or last/before, not both"));
    }
    let (count, cursor, cursor_field) = if backward { (args.last, args.before, "before") } else { (args.first, args.after, "after") };
    let count = count.unwrap_or(DEFAULT_PAGE);
    if !(0..=MAX_PAGE).contains(&count) {
        let field = if backward { "last" } else { "first" };
        return Err(ApiError::bad_input(field, format!("must be between 0 and {MAX_PAGE}")));
    }
    let cursor = cursor.map(|c| IdCursor::decode_cursor(&c).map_err(|_| ApiError::bad_input(cursor_field, "not a cursor of this list"))).transpose()?;

    // Walking towards older rows means descending ids, whichever way the list is shown.
    let descending = (order == Order::NewestFirst) != backward;
    let mut query = select;
    if let Some(IdCursor(id)) = cursor {
        query = query.filter(if descending { id_column.lt(id) } else { id_column.gt(id) });
    }
    query = if descending { query.order_by_desc(id_column) } else { query.order_by_asc(id_column) };
    let mut rows = query.limit(count as u64 + 1).all(db).await?;
    let has_more = rows.len() > count as usize;
    rows.truncate(count as usize);
    if backward {
        rows.reverse();
    }
    let (has_previous, has_next) = if backward { (has_more, cursor.is_some()) } else { (cursor.is_some(), has_more) };
    let mut connection = Connection::new(has_previous, has_next);
    connection.edges.extend(rows.into_iter().map(|row| Edge::new(IdCursor(id_of(&row)), to_node(row))));
    Ok(connection)
}
