//! The customer 360 in one statement: the customer and every nested list a query asks
//! for (identities, latest interactions, conversations, touchpoints, feedback, journey
//! positions), read ahead of the resolvers.
//!
//! Why: on PostgreSQL each statement costs a network round trip, a pool checkout, a
//! Bind/Execute and the decoding of its rows; seven of them for one 360 cost the server
//! several times what the data does (measured: 1.5 ms of server CPU a request, a third
//! of it in the kernel's send and wake-up paths). So on PostgreSQL the whole 360 is one
//! `SELECT` with a scalar subquery per list, each list aggregated into a JSON array by
//! `json_agg` and decoded with serde into the same models the per-list loaders return.
//! Each subquery reads its rows from the `(customer_id, …)` index and stops after its
//! limit, exactly as the per-list statements of [`super::view`] do; they are built from
//! the same SQL pieces, so the two paths cannot drift apart.
//!
//! SQLite runs in the process: a statement costs no round trip there, and its JSON
//! functions would need a conversion per column (UUIDs are blobs, booleans integers),
//! so on SQLite the prefetch runs the per-list loaders one after another and returns
//! the same [`Prefetched`].

use std::collections::HashMap;

use entity::{conversation, customer, customer_identity, feedback, interaction, touchpoint};
use sea_orm::{ConnectionTrait, DatabaseBackend, FromQueryResult, Value};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::service;
use super::view::{
    self, ConversationSlice, InteractionSlice, JourneyPosition, JourneyRow, LATEST_ACTIVE, NEWEST, first_of, newest_of,
};
use crate::db::{placeholders, statement};
use crate::error::{AppError, AppResult};

/// The customers to read.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// One customer by id; with `follow_merges`, a merged customer's survivor instead
    /// (one hop, as a merge leaves no chains).
    One { id: Uuid, follow_merges: bool },
    /// The customers of a page already read (their profiles are not read again).
    Page(&'a [Uuid]),
}

/// What a query asks of each customer: every list once per distinct argument set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wanted {
    pub identities: bool,
    pub interactions: Vec<InteractionSlice>,
    pub conversations: Vec<ConversationSlice>,
    pub touchpoints: Vec<u64>,
    pub feedback: Vec<u64>,
    pub journeys: bool,
    /// The caller's channel limit (`None`: every channel), applied to the lists
    /// without a channel argument: touchpoints, feedback, journeys.
    pub channels: Option<Vec<entity::enums::Channel>>,
}

type PerCustomer<T> = HashMap<Uuid, Vec<T>>;

/// Everything [`Wanted`] asked for, per customer (a customer without rows is absent).
#[derive(Debug, Default)]
pub struct Prefetched {
    /// For [`Which::One`]: the customer found (the survivor when a merge was followed).
    pub customer: Option<customer::Model>,
    pub identities: Option<PerCustomer<customer_identity::Model>>,
    pub interactions: Vec<(InteractionSlice, PerCustomer<interaction::Model>)>,
    pub conversations: Vec<(ConversationSlice, PerCustomer<conversation::Model>)>,
    pub touchpoints: Vec<(u64, PerCustomer<touchpoint::Model>)>,
    pub feedback: Vec<(u64, PerCustomer<feedback::Model>)>,
    pub journeys: Option<HashMap<Uuid, Vec<JourneyPosition>>>,
}

/// Reads the customers of `which` and everything `wanted` of them.
pub async fn prefetch(db: &impl ConnectionTrait, which: Which<'_>, wanted: &Wanted) -> AppResult<Prefetched> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        return in_one_statement(db, which, wanted).await;
    }
    let mut out = Prefetched::default();
    let one;
    let ids = match which {
        Which::Page(ids) => ids,
        Which::One { id, follow_merges } => {
            let mut found = service::find(db, id).await?;
            if follow_merges && let Some(survivor) = found.as_ref().and_then(|c| c.merged_into_id) {
                found = service::find(db, survivor).await?;
            }
            let Some(found) = found else { return Ok(out) };
            one = [found.id];
            out.customer = Some(found);
            &one[..]
        }
    };
    if wanted.identities {
        out.identities = Some(view::identities(db, ids).await?);
    }
    for slice in &wanted.interactions {
        out.interactions.push((slice.clone(), view::interactions(db, ids, slice.clone()).await?));
    }
    for slice in &wanted.conversations {
        out.conversations.push((slice.clone(), view::conversations(db, ids, slice).await?));
    }
    let channels = wanted.channels.as_deref();
    for &limit in &wanted.touchpoints {
        out.touchpoints.push((limit, view::touchpoints(db, ids, limit, channels).await?));
    }
    for &limit in &wanted.feedback {
        out.feedback.push((limit, view::feedback(db, ids, limit, channels).await?));
    }
    if wanted.journeys {
        out.journeys = Some(view::journey_positions(db, ids, channels).await?);
    }
    Ok(out)
}

/// One list of the statement (column `p{n}` for the n-th) and the rows read of it.
enum Part {
    Identities(PerCustomer<customer_identity::Model>),
    Interactions(InteractionSlice, PerCustomer<interaction::Model>),
    Conversations(ConversationSlice, PerCustomer<conversation::Model>),
    Touchpoints(u64, PerCustomer<touchpoint::Model>),
    Feedback(u64, PerCustomer<feedback::Model>),
    Journeys(Vec<JourneyRow>),
}

/// The SELECT list and values of one statement answering `wanted`.
struct Select {
    columns: String,
    values: Vec<Value>,
    parts: Vec<Part>,
}

impl Select {
    /// Adds a JSON-array column of the rows of `rows` (an SQL select aliased `t` in it)
    /// in `order`.
    fn list(&mut self, part: Part, rows: &str, order: &str, values: Vec<Value>) {
        let n = self.parts.len();
        self.columns += &format!(", (SELECT COALESCE(json_agg(t {order}), '[]') FROM ({rows}) t)::text AS p{n}");
        self.values.extend(values);
        self.parts.push(part);
    }
}

/// The customer id of the outer row, to which every list is correlated.
const OUTER: &str = "c.id";

async fn in_one_statement(db: &impl ConnectionTrait, which: Which<'_>, wanted: &Wanted) -> AppResult<Prefetched> {
    let profile = matches!(which, Which::One { .. });
    let mut select =
        Select { columns: if profile { "c.*".into() } else { "c.id".into() }, values: Vec::new(), parts: Vec::new() };
    let mut out = Prefetched::default();
    if wanted.identities {
        let rows = format!("SELECT * FROM customer_identities t WHERE t.customer_id = {OUTER}");
        select.list(Part::Identities(HashMap::new()), &rows, "ORDER BY t.created_at, t.id", Vec::new());
    }
    for slice in &wanted.interactions {
        match slice.filter() {
            Some((extra, values)) => select.list(
                Part::Interactions(slice.clone(), HashMap::new()),
                &newest_of("interactions", OUTER, &extra, slice.limit),
                NEWEST,
                values,
            ),
            None => out.interactions.push((slice.clone(), HashMap::new())),
        }
    }
    for slice in &wanted.conversations {
        match slice.filter() {
            Some((extra, values)) => select.list(
                Part::Conversations(slice.clone(), HashMap::new()),
                &first_of("conversations", OUTER, &extra, LATEST_ACTIVE, slice.limit),
                LATEST_ACTIVE,
                values,
            ),
            None => out.conversations.push((slice.clone(), HashMap::new())),
        }
    }
    // The lists without a channel argument hold no rows at all when the caller's
    // limit allows no channel.
    match view::channel_filter(wanted.channels.as_deref()) {
        Some((only, values)) => {
            for &limit in &wanted.touchpoints {
                let rows = newest_of("touchpoints", OUTER, &only, limit);
                select.list(Part::Touchpoints(limit, HashMap::new()), &rows, NEWEST, values.clone());
            }
            for &limit in &wanted.feedback {
                let rows = newest_of("feedback", OUTER, &only, limit);
                select.list(Part::Feedback(limit, HashMap::new()), &rows, NEWEST, values.clone());
            }
            if wanted.journeys {
                let rows = view::journey_rows_sql(&format!("= {OUTER}"), &only);
                select.list(Part::Journeys(Vec::new()), &rows, "", values);
            }
        }
        None => {
            out.touchpoints.extend(wanted.touchpoints.iter().map(|&limit| (limit, HashMap::new())));
            out.feedback.extend(wanted.feedback.iter().map(|&limit| (limit, HashMap::new())));
            if wanted.journeys {
                out.journeys = Some(HashMap::new());
            }
        }
    }

    let mut values = select.values;
    let target = match which {
        Which::One { id, follow_merges: true } => {
            values.push(Value::from(id));
            "= (SELECT COALESCE(m.merged_into_id, m.id) FROM customers m WHERE m.id = ?)".to_owned()
        }
        Which::One { id, follow_merges: false } => {
            values.push(Value::from(id));
            "= ?".to_owned()
        }
        Which::Page(ids) => {
            values.extend(ids.iter().map(|id| Value::from(*id)));
            format!("IN ({})", placeholders(ids.len()))
        }
    };
    let sql = format!("SELECT {} FROM customers c WHERE c.id {target}", select.columns);
    let rows = db.query_all_raw(statement(DatabaseBackend::Postgres, &sql, values)).await?;

    for row in &rows {
        let id: Uuid = row.try_get("", "id")?;
        if profile {
            out.customer = Some(customer::Model::from_query_result(row, "")?);
        }
        for (n, part) in select.parts.iter_mut().enumerate() {
            let text: String = row.try_get("", &format!("p{n}"))?;
            match part {
                Part::Identities(m) => keep(m, id, decode(&text)?),
                Part::Interactions(_, m) => keep(m, id, decode(&text)?),
                Part::Conversations(_, m) => keep(m, id, decode(&text)?),
                Part::Touchpoints(_, m) => keep(m, id, decode(&text)?),
                Part::Feedback(_, m) => keep(m, id, decode(&text)?),
                Part::Journeys(all) => all.extend(decode::<JourneyRow>(&text)?),
            }
        }
    }
    // Lists that hold no rows by their arguments were answered above, without SQL.
    for part in select.parts {
        match part {
            Part::Identities(m) => out.identities = Some(m),
            Part::Interactions(s, m) => out.interactions.push((s, m)),
            Part::Conversations(s, m) => out.conversations.push((s, m)),
            Part::Touchpoints(n, m) => out.touchpoints.push((n, m)),
            Part::Feedback(n, m) => out.feedback.push((n, m)),
            Part::Journeys(rows) => out.journeys = Some(view::fold_positions(rows)),
        }
    }
    Ok(out)
}

/// Rows of one JSON array column.
fn decode<T: DeserializeOwned>(text: &str) -> AppResult<Vec<T>> {
    serde_json::from_str(text).map_err(|e| AppError::internal(anyhow::anyhow!("reading a 360 list: {e}")))
}

fn keep<T>(map: &mut PerCustomer<T>, id: Uuid, rows: Vec<T>) {
    if !rows.is_empty() {
        map.insert(id, rows);
    }
}
