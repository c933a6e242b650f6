//! Brands side by side: for every brand on the watch list, how much it was mentioned
//! in a window and how much of that was negative, and the same pooled per side (ours,
//! competitors'), with the gap between the sides' negative shares — each with its
//! 95 % margin, so a manager can tell a real difference from noise.
//!
//! Brands are topics with a side (`feedback::topics::Side`), so the per-brand figures
//! are the topic drivers' mention counts restricted to brands. The sides are counted
//! over the same mentions, distinct per fact: a post naming two competitors counts
//! once for "competitors", not twice.

use std::collections::HashMap;

use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::drivers::{self, Request};
use super::sql::Sql;
use super::stats::{self, Estimate};
use crate::error::{AppError, AppResult};
use crate::feedback::topics::{self, Side};

/// Mentions and negative mentions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Volume {
    pub mentions: i64,
    pub negative: i64,
}

impl Volume {
    /// Percent of the mentions that were negative.
    pub fn negative_share(&self) -> Estimate {
        stats::percent(self.negative, self.mentions)
    }
}

/// One brand's figures.
#[derive(Debug, Clone)]
pub struct Brand {
    pub id: Uuid,
    pub name: String,
    pub side: Side,
    pub volume: Volume,
}

/// Every brand, and both sides pooled.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Ours first, then by mentions.
    pub brands: Vec<Brand>,
    pub ours: Volume,
    pub competitors: Volume,
}

impl Comparison {
    /// Our negative share minus our competitors', in percentage points.
    pub fn gap(&self) -> Estimate {
        stats::difference(&self.ours.negative_share(), &self.competitors.negative_share())
    }

    /// A brand's share of all brand mentions (share of voice), in percent.
    pub fn share_of_voice(&self, brand: &Brand) -> Estimate {
        let all: i64 = self.brands.iter().map(|b| b.volume.mentions).sum();
        stats::percent(brand.volume.mentions, all)
    }
}

/// The brands' figures in the request's window.
pub async fn compare(db: &impl ConnectionTrait, req: &Request) -> AppResult<Comparison> {
    if req.from >= req.to {
        return Err(AppError::invalid(&["range", "to"], "INVALID", "must be after `from`"));
    }
    let backend = db.get_database_backend();
    let mut per_brand = Sql::new();
    per_brand.push(
        "SELECT m.topic_id, COUNT(*) AS mentions, \
         SUM(CASE WHEN m.sentiment_label = 'negative' THEN 1 ELSE 0 END) AS negative FROM ",
    );
    drivers::mentions(&mut per_brand, req);
    per_brand.push(" m JOIN topics t ON t.id = m.topic_id WHERE t.brand IS NOT NULL GROUP BY m.topic_id");
    let mut volumes: HashMap<Uuid, Volume> = HashMap::new();
    for row in db.query_all_raw(per_brand.statement(backend)).await? {
        let negative = row.try_get::<Option<i64>>("", "negative")?.unwrap_or(0);
        volumes.insert(row.try_get("", "topic_id")?, Volume { mentions: row.try_get("", "mentions")?, negative });
    }
    let mut per_side = Sql::new();
    per_side.push(
        "SELECT s.side, COUNT(*) AS mentions, SUM(CASE WHEN s.sentiment_label = 'negative' THEN 1 ELSE 0 END) \
         AS negative FROM (SELECT DISTINCT t.brand AS side, m.fact_id, m.sentiment_label FROM ",
    );
    drivers::mentions(&mut per_side, req);
    per_side.push(" m JOIN topics t ON t.id = m.topic_id WHERE t.brand IS NOT NULL) s GROUP BY s.side");
    let (mut ours, mut competitors) = (Volume::default(), Volume::default());
    for row in db.query_all_raw(per_side.statement(backend)).await? {
        let volume = Volume {
            mentions: row.try_get("", "mentions")?,
            negative: row.try_get::<Option<i64>>("", "negative")?.unwrap_or(0),
        };
        match row.try_get::<String>("", "side")?.as_str() {
            "ours" => ours = volume,
            "competitor" => competitors = volume,
            _ => {}
        }
    }
    let mut brands: Vec<Brand> = topics::list(db)
        .await?
        .into_iter()
        .filter_map(|t| {
            let side = Side::of(&t)?;
            Some(Brand { id: t.id, volume: volumes.get(&t.id).copied().unwrap_or_default(), name: t.name, side })
        })
        .collect();
    brands.sort_by(|a, b| {
        (a.side != Side::Ours).cmp(&(b.side != Side::Ours)).then(b.volume.mentions.cmp(&a.volume.mentions))
    });
    Ok(Comparison { brands, ours, competitors })
}
