//! The customer list: filters, sorting and keyset (cursor) pagination.
//!
//! Cursors hold the sort value and the id of a row, so a page is "the next N rows after
//! this one in this order": stable under inserts, and served by the sort column's
//! index instead of an `OFFSET` scan. Rows whose sort value is null (never contacted,
//! no name) always come last, in both directions. Merged tombstones are left out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::enums::{Channel, ConversationStatus, FeedbackKind};
use entity::{conversation, customer, customer_identity, feedback, interaction};
use sea_orm::sea_query::{
    Expr, ExprTrait, Func, LikeExpr, NullOrdering, Order, Query, QueryStatementBuilder, SimpleExpr,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Largest page a caller may ask for.
pub const MAX_PAGE: u64 = 100;
/// Page size when the caller gives none.
pub const DEFAULT_PAGE: u64 = 20;

/// NPS category of a customer's latest NPS answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpsCategory {
    /// 9–10
    Promoter,
    /// 7–8
    Passive,
    /// 0–6
    Detractor,
}

impl NpsCategory {
    pub fn of(score: i16) -> NpsCategory {
        match score {
            9.. => NpsCategory::Promoter,
            7..=8 => NpsCategory::Passive,
            _ => NpsCategory::Detractor,
        }
    }

    fn range(self) -> (i16, i16) {
        match self {
            NpsCategory::Promoter => (9, 10),
            NpsCategory::Passive => (7, 8),
            NpsCategory::Detractor => (0, 6),
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Prefix of the name, or of any identity value (e-mail, phone, handle).
    pub search: Option<String>,
    pub segments: Option<Vec<String>>,
    /// Customers with at least one interaction on one of these channels.
    pub channels: Option<Vec<Channel>>,
    pub nps_category: Option<NpsCategory>,
    pub has_open_conversation: Option<bool>,
    pub last_contact_from: Option<DateTime<Utc>>,
    pub last_contact_to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    LastContact,
    CreatedAt,
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Asc,
    Desc,
}

/// Sort order: a field and a direction; ties broken by id in the same direction.
#[derive(Debug, Clone, Copy)]
pub struct Sort {
    pub field: SortField,
    pub direction: SortDirection,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            field: SortField::LastContact,
            direction: SortDirection::Desc,
        }
    }
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
    fn of(row: &customer::Model, field: SortField) -> Cursor {
        let (time, text) = match field {
            SortField::LastContact => (row.last_contact_at, None),
            SortField::CreatedAt => (Some(row.created_at), None),
            SortField::Name => (None, row.display_name.clone()),
        };
        Cursor { time, text, id: row.id }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(s: &str, field: &'static str) -> AppResult<Cursor> {
        let bad = || AppError::invalid(&[field], "INVALID_CURSOR", "is not a cursor of this list");
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }

    fn value(&self, field: SortField) -> Option<SimpleExpr> {
        match field {
            SortField::LastContact | SortField::CreatedAt => self.time.map(Expr::val),
            SortField::Name => self.text.clone().map(Expr::val),
        }
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
pub struct Page {
    pub rows: Vec<(Cursor, customer::Model)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

fn sort_column(field: SortField) -> customer::Column {
    match field {
        SortField::LastContact => customer::Column::LastContactAt,
        SortField::CreatedAt => customer::Column::CreatedAt,
        SortField::Name => customer::Column::DisplayName,
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` prefix pattern.
fn prefix_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn customer_id_col() -> SimpleExpr {
    Expr::col((customer::Entity, customer::Column::Id))
}

fn filter_condition(filter: &CustomerFilter) -> Condition {
    let mut cond = Condition::all().add(customer::Column::MergedIntoId.is_null());
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let pattern = prefix_pattern(&search.trim_start_matches('@').to_lowercase());
        let identity_match = Query::select()
            .expr(Expr::val(1))
            .from(customer_identity::Entity)
            .and_where(
                Expr::col((customer_identity::Entity, customer_identity::Column::CustomerId)).eq(customer_id_col()),
            )
            .and_where(
                Expr::col((customer_identity::Entity, customer_identity::Column::Value))
                    .like(LikeExpr::new(pattern.clone()).escape('\\')),
            )
            .to_owned();
        cond = cond.add(
            Condition::any()
                .add(
                    Func::lower(Expr::col((customer::Entity, customer::Column::DisplayName)))
                        .like(LikeExpr::new(pattern).escape('\\')),
                )
                .add(Expr::exists(identity_match)),
        );
    }
    if let Some(segments) = &filter.segments {
        cond = cond.add(customer::Column::Segment.is_in(segments.clone()));
    }
    if let Some(channels) = &filter.channels {
        let used = Query::select()
            .expr(Expr::val(1))
            .from(interaction::Entity)
            .and_where(Expr::col((interaction::Entity, interaction::Column::CustomerId)).eq(customer_id_col()))
            .and_where(Expr::col((interaction::Entity, interaction::Column::Channel)).is_in(channels.iter().copied()))
            .to_owned();
        cond = cond.add(Expr::exists(used));
    }
    if let Some(open) = filter.has_open_conversation {
        let open_conversation = Query::select()
            .expr(Expr::val(1))
            .from(conversation::Entity)
            .and_where(Expr::col((conversation::Entity, conversation::Column::CustomerId)).eq(customer_id_col()))
            .and_where(
                Expr::col((conversation::Entity, conversation::Column::Status))
                    .is_in([ConversationStatus::Open, ConversationStatus::Pending]),
            )
            .to_owned();
        let exists = Expr::exists(open_conversation);
        cond = cond.add(if open { exists } else { exists.not() });
    }
    if let Some(category) = filter.nps_category {
        let (low, high) = category.range();
        let latest = Query::select()
            .column((feedback::Entity, feedback::Column::Score))
            .from(feedback::Entity)
            .and_where(Expr::col((feedback::Entity, feedback::Column::CustomerId)).eq(customer_id_col()))
            .and_where(Expr::col((feedback::Entity, feedback::Column::Kind)).eq(FeedbackKind::Nps))
            .and_where(Expr::col((feedback::Entity, feedback::Column::Score)).is_not_null())
            .order_by((feedback::Entity, feedback::Column::OccurredAt), Order::Desc)
            .order_by((feedback::Entity, feedback::Column::Id), Order::Desc)
            .limit(1)
            .to_owned();
        cond = cond.add(
            Expr::expr(SimpleExpr::SubQuery(None, Box::new(latest.into_sub_query_statement()))).between(low, high),
        );
    }
    if let Some(from) = filter.last_contact_from {
        cond = cond.add(customer::Column::LastContactAt.gte(from));
    }
    if let Some(to) = filter.last_contact_to {
        cond = cond.add(customer::Column::LastContactAt.lt(to));
    }
    cond
}

/// Rows strictly after (`forward`) or before the cursor in the list order, with nulls
/// sorting last.
fn keyset_condition(sort: Sort, cursor: &Cursor, forward: bool) -> Condition {
    let col = sort_column(sort.field);
    let ascending = sort.direction == SortDirection::Asc;
    // Moving forward in an ascending list means greater values, and so on.
    let greater = ascending == forward;
    let id_beyond = if greater {
        customer::Column::Id.gt(cursor.id)
    } else {
        customer::Column::Id.lt(cursor.id)
    };
    match cursor.value(sort.field) {
        Some(value) => {
            let beyond = if greater {
                Expr::col(col).gt(value.clone())
            } else {
                Expr::col(col).lt(value.clone())
            };
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
        None => Condition::any()
            .add(col.is_not_null())
            .add(Condition::all().add(col.is_null()).add(id_beyond)),
    }
}

/// One page of the list.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &CustomerFilter,
    sort: Sort,
    page: &PageRequest,
) -> AppResult<Page> {
    let forward = page.last.is_none() || page.first.is_some();
    let size = if forward {
        page.first.unwrap_or(DEFAULT_PAGE)
    } else {
        page.last.unwrap_or(DEFAULT_PAGE)
    };
    if size > MAX_PAGE {
        let field = if forward { "first" } else { "last" };
        return Err(AppError::invalid(
            &[field],
            "OUT_OF_RANGE",
            format!("must be at most {MAX_PAGE}"),
        ));
    }
    let cursor = match (forward, &page.after, &page.before) {
        (true, Some(after), _) => Some(Cursor::decode(after, "after")?),
        (false, _, Some(before)) => Some(Cursor::decode(before, "before")?),
        _ => None,
    };
    let mut query = customer::Entity::find().filter(filter_condition(filter));
    if let Some(cursor) = &cursor {
        query = query.filter(keyset_condition(sort, cursor, forward));
    }
    let col = sort_column(sort.field);
    let list_order = if sort.direction == SortDirection::Asc {
        Order::Asc
    } else {
        Order::Desc
    };
    let (order, nulls) = if forward {
        (list_order, NullOrdering::Last)
    } else {
        (
            if list_order == Order::Asc {
                Order::Desc
            } else {
                Order::Asc
            },
            NullOrdering::First,
        )
    };
    let id_order = order.clone();
    let mut rows = query
        .order_by_with_nulls(col, order, nulls)
        .order_by(customer::Column::Id, id_order)
        .limit(size + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > size;
    rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    if !forward {
        rows.reverse();
    }
    let rows = rows.into_iter().map(|r| (Cursor::of(&r, sort.field), r)).collect();
    Ok(Page {
        rows,
        has_next_page: if forward { more } else { page.before.is_some() },
        has_previous_page: if forward { page.after.is_some() } else { more },
    })
}

/// How many customers match the filter.
pub async fn count(db: &impl ConnectionTrait, filter: &CustomerFilter) -> AppResult<u64> {
    Ok(customer::Entity::find()
        .filter(filter_condition(filter))
        .count(db)
        .await?)
}
