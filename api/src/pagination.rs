//! Keyset (cursor) pagination for Relay connections, shared by every list.
//!
//! A cursor holds the sort value and the id of a row, so a page is "the next N rows
//! after this one in this order": stable under inserts, and served by the sort
//! column's index instead of an `OFFSET` scan. Rows whose sort value is null always
//! come last, in both directions; ties are broken by id in the sort direction.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, NullOrdering, Order, SimpleExpr};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The sort value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Time(Option<DateTime<Utc>>),
    Text(Option<String>),
}

/// The position of a row in a sort order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    time: Option<DateTime<Utc>>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(rename = "i")]
    id: Uuid,
}

impl Cursor {
    pub fn new(key: SortKey, id: Uuid) -> Cursor {
        match key {
            SortKey::Time(time) => Cursor { time, text: None, id },
            SortKey::Text(text) => Cursor { time: None, text, id },
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a cursor given in argument `field`.
    pub fn decode(s: &str, field: &'static str) -> AppResult<Cursor> {
        let bad = || AppError::invalid(&[field], "INVALID_CURSOR", "is not a cursor of this list");
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }

    fn value(&self) -> Option<SimpleExpr> {
        self.time.map(Expr::val).or_else(|| self.text.clone().map(Expr::val))
    }
}

/// Which slice of the list: Relay's `first`/`after` or `last`/`before`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub first: Option<u64>,
    pub after: Option<String>,
    pub last: Option<u64>,
    pub before: Option<String>,
}

/// One page, in list order, with the cursor of each row.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<(Cursor, T)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

/// Page size when the caller gives none.
pub const DEFAULT_PAGE: u64 = 20;

/// A sort order over one column of `E`, ties broken by its id column.
pub struct Sort<C> {
    pub column: C,
    pub id: C,
    pub ascending: bool,
}

/// Rows strictly after (`forward`) or before the cursor, nulls last.
fn keyset_condition<C: ColumnTrait + Copy>(sort: &Sort<C>, cursor: &Cursor, forward: bool) -> Condition {
    let col = sort.column;
    // Moving forward in an ascending list means greater values, and so on.
    let greater = sort.ascending == forward;
    let id_beyond = if greater { sort.id.gt(cursor.id) } else { sort.id.lt(cursor.id) };
    match cursor.value() {
        Some(value) => {
            let beyond = if greater { Expr::col(col).gt(value.clone()) } else { Expr::col(col).lt(value.clone()) };
            let tie = Condition::all().add(Expr::col(col).eq(value)).add(id_beyond);
            let mut cond = Condition::any().add(beyond).add(tie);
            if forward {
                // Null rows come after every valued row.
                cond = cond.add(col.is_null());
            }
            cond
        }
        None if forward => Condition::all().add(col.is_null()).add(id_beyond),
        // Before a null row: every valued row, and the null rows before it.
        None => Condition::any().add(col.is_not_null()).add(Condition::all().add(col.is_null()).add(id_beyond)),
    }
}

/// Fetches one page of `query` in `sort` order.
pub async fn fetch<E, C>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    sort: Sort<C>,
    page: &PageRequest,
    max: u64,
    key_of: impl Fn(&E::Model) -> SortKey,
    id_of: impl Fn(&E::Model) -> Uuid,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait + Copy,
{
    let forward = page.last.is_none() || page.first.is_some();
    let size = if forward { page.first.unwrap_or(DEFAULT_PAGE) } else { page.last.unwrap_or(DEFAULT_PAGE) };
    if size > max {
        let field = if forward { "first" } else { "last" };
        return Err(AppError::invalid(&[field], "OUT_OF_RANGE", format!("must be at most {max}")));
    }
    let cursor = match (forward, &page.after, &page.before) {
        (true, Some(after), _) => Some(Cursor::decode(after, "after")?),
        (false, _, Some(before)) => Some(Cursor::decode(before, "before")?),
        _ => None,
    };
    let mut query = query;
    if let Some(cursor) = &cursor {
        query = query.filter(keyset_condition(&sort, cursor, forward));
    }
    let list_order = if sort.ascending { Order::Asc } else { Order::Desc };
    let (order, nulls) = if forward {
        (list_order, NullOrdering::Last)
    } else {
        (if sort.ascending { Order::Desc } else { Order::Asc }, NullOrdering::First)
    };
    let mut rows = query
        .order_by_with_nulls(sort.column, order.clone(), nulls)
        .order_by(sort.id, order)
        .limit(size + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > size;
    rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    if !forward {
        rows.reverse();
    }
    let rows = rows.into_iter().map(|r| (Cursor::new(key_of(&r), id_of(&r)), r)).collect();
    Ok(Page {
        rows,
        has_next_page: if forward { more } else { page.before.is_some() },
        has_previous_page: if forward { page.after.is_some() } else { more },
    })
}
