//! Negative mentions counted in event time, for the spike detector: per scope and
//! per fixed bucket of `step` seconds since 1970 (the bucket a mention *happened* in,
//! whenever it arrived), and which buckets received mentions since a change stamp.
//!
//! A mention is a negative inbound message or a negative feedback answer. Scopes:
//! its channel, its topics or brands (a brand is a topic with a side), and for
//! messages the inbox that received it. Reads are
//! grouped (one statement per scope kind, whatever the number of scopes) over a list
//! of time ranges; the detector keeps what it read ([`Tally`]) and reads again only
//! the buckets whose facts changed.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use entity::enums::Channel;
use sea_orm::{ActiveEnum, ConnectionTrait};
use uuid::Uuid;

use crate::error::AppResult;
use crate::insights::sql::Sql;

/// What a spike is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Channel(Channel),
    Topic(Uuid),
    /// Which of our accounts (a handle, a number, an address) the mention reached.
    Inbox(String),
    /// A brand on the watch list (a topic with a side): ours, or a competitor's.
    Brand(Uuid),
}

impl Scope {
    /// The scope as stored on its alerts: `channel:twitter`, `topic:<id>`, `inbox:<name>`.
    pub fn key(&self) -> String {
        match self {
            Scope::Channel(c) => format!("channel:{}", c.to_value()),
            Scope::Topic(t) => format!("topic:{t}"),
            Scope::Inbox(i) => format!("inbox:{i}"),
            Scope::Brand(b) => format!("brand:{b}"),
        }
    }

    /// The scope an alert stores (`None` for a key this version does not know).
    pub fn parse(key: &str) -> Option<Scope> {
        let (kind, value) = key.split_once(':')?;
        match kind {
            "channel" => Channel::try_from_value(&value.to_owned()).ok().map(Scope::Channel),
            "topic" => value.parse().ok().map(Scope::Topic),
            "brand" => value.parse().ok().map(Scope::Brand),
            "inbox" => Some(Scope::Inbox(value.to_owned())),
            _ => None,
        }
    }
}

/// Counts per scope and bucket.
pub type Counts = BTreeMap<Scope, BTreeMap<i64, u32>>;

/// Fixed buckets of `seconds` since 1970 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub seconds: i64,
}

impl Grid {
    /// The bucket holding `t`.
    pub fn bucket(&self, t: DateTime<Utc>) -> i64 {
        t.timestamp().div_euclid(self.seconds)
    }

    /// When bucket `b` starts.
    pub fn start(&self, b: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(b * self.seconds, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    fn expr(&self, db: &impl ConnectionTrait, column: &str) -> String {
        let seconds = u32::try_from(self.seconds).unwrap_or(u32::MAX);
        migration::epoch_units(db.get_database_backend(), column, seconds)
    }
}

/// `(x.occurred_at >= ? AND x.occurred_at < ?) OR …` over bucket ranges `[a, b)`.
fn within(sql: &mut Sql, grid: Grid, alias: &str, ranges: &[(i64, i64)]) {
    sql.push(" AND (");
    for (i, (a, b)) in ranges.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push(&format!("({alias}.occurred_at >= ")).bind(grid.start(*a));
        sql.push(&format!(" AND {alias}.occurred_at < ")).bind(grid.start(*b)).push(")");
    }
    sql.push(")");
}

/// The negative facts of one kind: messages (inbound only) or feedback, with the
/// conditions as literals so PostgreSQL can use the partial index of negative inbound
/// messages (migration 20).
pub(super) const FACTS: [(&str, &str); 2] = [("interactions", " AND x.direction = 'inbound'"), ("feedback", "")];
/// Each kind of fact's topic links: `(links table, its fact column, when the fact is
/// a public mention rather than a customer talking to us)`.
pub(super) const LINKS: [(&str, &str, &str); 2] = [
    ("interaction_topics", "interaction_id", "x.visibility = 'public_post'"),
    ("feedback_topics", "feedback_id", "x.kind = 'social_mention'"),
];

/// ` AND` the fact `x` is not a public mention about a competitor alone: such a
/// complaint counts for that competitor's brand, not towards our channel's, inbox's or
/// topic's crisis. A customer writing to us (a private message, a survey answer, a
/// review on our page) is about us whatever names it drops ("third lost parcel, I'm
/// switching to Zed"), and so is a public mention naming one of our brands too.
pub(super) fn not_competitors_alone((links, column, public): (&str, &str, &str)) -> String {
    format!(
        " AND NOT ({public} AND EXISTS (SELECT 1 FROM {links} cl JOIN topics ct ON ct.id = cl.topic_id \
         WHERE cl.{column} = x.id AND ct.brand = 'competitor') AND NOT EXISTS (SELECT 1 FROM {links} ol \
         JOIN topics ot ON ot.id = ol.topic_id WHERE ol.{column} = x.id AND ot.brand = 'ours'))"
    )
}

/// The buckets that received facts, or whose facts changed, at or after `since`, by
/// the facts' change stamps (whatever their sentiment: a fact that stopped being
/// negative changes its bucket's count too).
pub async fn touched(db: &impl ConnectionTrait, grid: Grid, since: DateTime<Utc>) -> AppResult<Vec<i64>> {
    let mut sql = Sql::new();
    for (i, (facts, extra)) in FACTS.into_iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ");
        }
        sql.push(&format!(
            "SELECT DISTINCT {} AS b FROM {facts} x WHERE x.updated_at >= ",
            grid.expr(db, "x.occurred_at")
        ));
        sql.bind(since).push(extra);
    }
    let mut out = Vec::new();
    for row in db.query_all_raw(sql.statement(db.get_database_backend())).await? {
        out.push(row.try_get::<i64>("", "b")?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Negative mentions per scope and bucket within the bucket ranges.
pub async fn count(db: &impl ConnectionTrait, grid: Grid, ranges: &[(i64, i64)]) -> AppResult<Counts> {
    let mut out = Counts::new();
    if ranges.is_empty() {
        return Ok(out);
    }
    let backend = db.get_database_backend();
    let bucket = grid.expr(db, "x.occurred_at");
    // Channels: messages and feedback.
    let mut sql = Sql::new();
    for (i, ((facts, extra), links)) in FACTS.into_iter().zip(LINKS).enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push(&format!(
            "SELECT x.channel AS scope, {bucket} AS b, COUNT(*) AS n FROM {facts} x \
             WHERE x.sentiment_label = 'negative'{extra}{}",
            not_competitors_alone(links)
        ));
        within(&mut sql, grid, "x", ranges);
        sql.push(" GROUP BY x.channel, 2");
    }
    for row in db.query_all_raw(sql.statement(backend)).await? {
        let channel = Channel::try_from_value(&row.try_get::<String>("", "scope")?)?;
        add(&mut out, Scope::Channel(channel), row.try_get("", "b")?, row.try_get("", "n")?);
    }
    // Inboxes: messages only.
    let mut sql = Sql::new();
    sql.push(&format!(
        "SELECT x.inbox AS scope, {bucket} AS b, COUNT(*) AS n FROM interactions x \
         WHERE x.sentiment_label = 'negative' AND x.direction = 'inbound' AND x.inbox IS NOT NULL{}",
        not_competitors_alone(LINKS[0])
    ));
    within(&mut sql, grid, "x", ranges);
    sql.push(" GROUP BY x.inbox, 2");
    for row in db.query_all_raw(sql.statement(backend)).await? {
        add(&mut out, Scope::Inbox(row.try_get("", "scope")?), row.try_get("", "b")?, row.try_get("", "n")?);
    }
    // Topics and brands: through the facts' topic links.
    let mut sql = Sql::new();
    for (i, ((facts, extra), (links, link_col, public))) in FACTS.into_iter().zip(LINKS).enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        // A plain topic counts only what is not about a competitor alone; a brand, its
        // own mentions.
        let ours = not_competitors_alone((links, link_col, public));
        sql.push(&format!(
            "SELECT l.topic_id AS scope, t.brand AS brand, {bucket} AS b, COUNT(*) AS n FROM {facts} x \
             JOIN {links} l ON l.{link_col} = x.id JOIN topics t ON t.id = l.topic_id \
             WHERE x.sentiment_label = 'negative'{extra} AND (t.brand IS NOT NULL OR (1 = 1{ours}))"
        ));
        within(&mut sql, grid, "x", ranges);
        sql.push(" GROUP BY l.topic_id, t.brand, 3");
    }
    for row in db.query_all_raw(sql.statement(backend)).await? {
        let id = row.try_get("", "scope")?;
        let scope = match row.try_get::<Option<String>>("", "brand")? {
            Some(_) => Scope::Brand(id),
            None => Scope::Topic(id),
        };
        add(&mut out, scope, row.try_get("", "b")?, row.try_get("", "n")?);
    }
    Ok(out)
}

fn add(out: &mut Counts, scope: Scope, bucket: i64, n: i64) {
    *out.entry(scope).or_default().entry(bucket).or_default() += u32::try_from(n).unwrap_or(u32::MAX);
}

/// When the scope was first heard of (any fact of it, whatever its sentiment): the
/// start of its history. Each read is an index range's first entry, except a topic's,
/// which reads its links.
pub async fn first_seen(db: &impl ConnectionTrait, scope: &Scope) -> AppResult<Option<DateTime<Utc>>> {
    let mut sql = Sql::new();
    match scope {
        Scope::Channel(c) => {
            sql.push("SELECT MIN(t) AS first FROM (SELECT MIN(occurred_at) AS t FROM interactions WHERE channel = ");
            sql.bind(c.to_value()).push(" UNION ALL SELECT MIN(occurred_at) AS t FROM feedback WHERE channel = ");
            sql.bind(c.to_value()).push(") f");
        }
        Scope::Inbox(i) => {
            sql.push("SELECT MIN(occurred_at) AS first FROM interactions WHERE inbox = ").bind(i.clone());
        }
        Scope::Topic(t) | Scope::Brand(t) => {
            sql.push(
                "SELECT MIN(t) AS first FROM (SELECT MIN(x.occurred_at) AS t FROM interaction_topics l \
                 JOIN interactions x ON x.id = l.interaction_id WHERE l.topic_id = ",
            );
            sql.bind(*t).push(
                " UNION ALL SELECT MIN(x.occurred_at) AS t FROM feedback_topics l \
                 JOIN feedback x ON x.id = l.feedback_id WHERE l.topic_id = ",
            );
            sql.bind(*t).push(") f");
        }
    }
    let row = db.query_one_raw(sql.statement(db.get_database_backend())).await?;
    Ok(row.map(|r| r.try_get::<Option<DateTime<Utc>>>("", "first")).transpose()?.flatten())
}

/// Counts kept between runs: which bucket ranges are known (a bucket without a count
/// there holds none) and their counts. A live run then reads only the buckets that
/// received mentions since the last one, not its whole history again; a bucket that
/// received some is forgotten and read afresh.
#[derive(Debug, Default)]
pub struct Tally {
    known: Vec<(i64, i64)>,
    counts: Counts,
}

impl Tally {
    /// Forgets the buckets, so they are read again.
    pub fn forget(&mut self, buckets: &[i64]) {
        if buckets.is_empty() {
            return;
        }
        let holes: Vec<(i64, i64)> = merge(buckets.iter().map(|b| (*b, b + 1)).collect());
        self.known = subtract(&self.known, &holes);
        for per_scope in self.counts.values_mut() {
            for b in buckets {
                per_scope.remove(b);
            }
        }
    }

    /// Forgets everything before bucket `b` (memory stays bounded by the history).
    pub fn drop_before(&mut self, b: i64) {
        self.known = subtract(&self.known, &[(i64::MIN, b)]);
        for per_scope in self.counts.values_mut() {
            *per_scope = per_scope.split_off(&b);
        }
        self.counts.retain(|_, per_scope| !per_scope.is_empty());
    }

    /// Reads what `ranges` need and is not known; returns the counts.
    pub async fn fill(&mut self, db: &impl ConnectionTrait, grid: Grid, ranges: &[(i64, i64)]) -> AppResult<&Counts> {
        let missing = subtract(&merge(ranges.to_vec()), &self.known);
        if !missing.is_empty() {
            for (scope, buckets) in count(db, grid, &missing).await? {
                self.counts.entry(scope).or_default().extend(buckets);
            }
            let mut known = std::mem::take(&mut self.known);
            known.extend(missing);
            self.known = merge(known);
        }
        Ok(&self.counts)
    }

    /// The counts held.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }
}

/// `ranges` without `holes` (both merged and in order).
pub fn subtract(ranges: &[(i64, i64)], holes: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(mut a, b) in ranges {
        for &(h0, h1) in holes {
            if h1 <= a || h0 >= b {
                continue;
            }
            if h0 > a {
                out.push((a, h0));
            }
            a = a.max(h1);
            if a >= b {
                break;
            }
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

/// Merges bucket ranges `[a, b)` that overlap or touch, in order.
pub fn merge(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_when_they_touch() {
        assert_eq!(merge(vec![(5, 9), (0, 3), (3, 4), (8, 12), (20, 21)]), vec![(0, 4), (5, 12), (20, 21)]);
    }

    #[test]
    fn holes_cut_ranges() {
        assert_eq!(subtract(&[(0, 10), (20, 30)], &[(2, 3), (5, 22), (29, 40)]), vec![(0, 2), (3, 5), (22, 29)]);
        assert_eq!(subtract(&[(0, 10)], &[]), vec![(0, 10)]);
        assert_eq!(subtract(&[(0, 10)], &[(i64::MIN, 4)]), vec![(4, 10)]);
        assert!(subtract(&[(3, 4)], &[(3, 4)]).is_empty());
    }

    #[test]
    fn buckets_are_whole_steps_since_1970() {
        let grid = Grid { seconds: 900 };
        let t: DateTime<Utc> = "2026-06-10T12:14:59Z".parse().unwrap();
        assert_eq!(grid.start(grid.bucket(t)), "2026-06-10T12:00:00Z".parse::<DateTime<Utc>>().unwrap());
        let before: DateTime<Utc> = "1969-12-31T23:59:00Z".parse().unwrap();
        assert_eq!(grid.bucket(before), -1);
    }
}
