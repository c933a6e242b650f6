//! The customer list: filters and sorting over `pagination`'s keyset pages. Rows whose
//! sort value is null (never contacted, no name) come last. Merged tombstones are left
//! out.

use chrono::{DateTime, Utc};
use entity::enums::{Channel, ConversationStatus, FeedbackKind};
use entity::{conversation, customer, customer_identity, feedback, interaction};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Order, Query, QueryStatementBuilder, SimpleExpr};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::error::AppResult;
use crate::pagination::{self, Page, PageRequest, SortKey};

/// Largest page a caller may ask for.
pub const MAX_PAGE: u64 = 100;

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
        Sort { field: SortField::LastContact, direction: SortDirection::Desc }
    }
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

/// One page of the list.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &CustomerFilter,
    sort: Sort,
    page: &PageRequest,
) -> AppResult<Page<customer::Model>> {
    let order = pagination::Sort {
        column: sort_column(sort.field),
        id: customer::Column::Id,
        ascending: sort.direction == SortDirection::Asc,
    };
    let query = customer::Entity::find().filter(filter_condition(filter));
    let key_of = |row: &customer::Model| match sort.field {
        SortField::LastContact => SortKey::Time(row.last_contact_at),
        SortField::CreatedAt => SortKey::Time(Some(row.created_at)),
        SortField::Name => SortKey::Text(row.display_name.clone()),
    };
    pagination::fetch(db, query, order, page, MAX_PAGE, key_of, |row| row.id).await
}

/// How many customers match the filter.
pub async fn count(db: &impl ConnectionTrait, filter: &CustomerFilter) -> AppResult<u64> {
    Ok(customer::Entity::find().filter(filter_condition(filter)).count(db).await?)
}
