//! Synthetic streams of negative mentions for the early-warning tests and the
//! detector's evaluation (`cxgraph-spike-eval`): quiet series with a daily and weekly
//! rhythm and clumpy (over-dispersed) arrivals, bursts, slow ramps and gaps, each
//! mention with the time it happened, written as the facts ingest writes (negative,
//! inbound, stamped when written) so the detector sees them as it sees real traffic.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use entity::enums::{AuthorKind, Channel, Direction, SentimentLabel, Visibility};
use entity::{interaction, interaction_topic};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{DatabaseConnection, EntityTrait, IntoActiveModel};
use uuid::Uuid;

/// One mention to write.
#[derive(Debug, Clone)]
pub struct Mention {
    pub channel: Channel,
    pub at: DateTime<Utc>,
    pub topic: Option<Uuid>,
    pub inbox: Option<String>,
    /// A message to us rather than a public post.
    pub private: bool,
    pub body: Option<String>,
}

impl Mention {
    pub fn on(channel: Channel, at: DateTime<Utc>) -> Self {
        Self { channel, at, topic: None, inbox: None, private: false, body: None }
    }
}

/// How a quiet channel's negative volume moves through the day and week.
#[derive(Debug, Clone, Copy)]
pub struct Rhythm {
    /// Mentions per hour at the day's ordinary level.
    pub per_hour: f64,
    /// Multiplier at the evening peak (18:00–22:00), relative to the day.
    pub evening: f64,
    /// Multiplier on Saturdays and Sundays.
    pub weekend: f64,
    /// Day-to-day variation: each hour's rate is multiplied by a gamma factor of
    /// mean 1 and this variance (0: Poisson; quiet channels come in clumps).
    pub clumping: f64,
}

impl Rhythm {
    /// The mean rate per hour at `t`.
    pub fn rate(&self, t: DateTime<Utc>) -> f64 {
        let hour = f64::from(t.hour()) + f64::from(t.minute()) / 60.0;
        let daily = match hour {
            h if h < 6.0 => 0.25,
            h if h < 8.0 => 0.25 + 0.375 * (h - 6.0),
            h if h < 17.0 => 1.0,
            h if h < 19.0 => 1.0 + (self.evening - 1.0) * (h - 17.0) / 2.0,
            h if h < 22.0 => self.evening,
            _ => 0.6,
        };
        let weekly = if t.weekday().number_from_monday() >= 6 { self.weekend } else { 1.0 };
        self.per_hour * daily * weekly
    }
}

/// A seeded source of streams.
pub struct Streams {
    rng: ChaCha8Rng,
}

impl Streams {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// A Poisson count of mean `lambda` (inversion for small means, a rounded normal
    /// above 50).
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 50.0 {
            let (u1, u2): (f64, f64) = (self.rng.gen_range(1e-12..1.0), self.rng.r#gen());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            return (lambda + z * lambda.sqrt()).round().max(0.0) as u32;
        }
        let (mut k, mut p, mut sum) = (0u32, (-lambda).exp(), (-lambda).exp());
        let u: f64 = self.rng.r#gen();
        while u > sum && k < 1_000 {
            k += 1;
            p *= lambda / f64::from(k);
            sum += p;
        }
        k
    }

    /// A gamma factor of mean 1 and variance `v` (sum of exponentials; `v` ≤ 1).
    fn clump(&mut self, v: f64) -> f64 {
        if v <= 0.0 {
            return 1.0;
        }
        let shape = (1.0 / v).round().max(1.0) as u32;
        let sum: f64 = (0..shape).map(|_| -(self.rng.gen_range(1e-12..1.0_f64)).ln()).sum();
        sum / f64::from(shape)
    }

    /// Mention times of a quiet series over `[from, to)`, drawn per five minutes from
    /// the rhythm, each hour's rate clumped; `scale` multiplies the rate (a ramp).
    pub fn quiet(
        &mut self,
        rhythm: &Rhythm,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        scale: impl Fn(DateTime<Utc>) -> f64,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = from;
        let mut factor = 1.0;
        while t < to {
            if t.minute() == 0 || t == from {
                factor = self.clump(rhythm.clumping);
            }
            let n = self.poisson(rhythm.rate(t) * factor * scale(t) / 12.0);
            for _ in 0..n {
                out.push(t + Duration::seconds(self.rng.gen_range(0..300)));
            }
            t += Duration::minutes(5);
        }
        out
    }

    /// `extra` mention times spread evenly at random over `[start, start + minutes)`.
    pub fn burst(&mut self, start: DateTime<Utc>, extra: u32, minutes: i64) -> Vec<DateTime<Utc>> {
        (0..extra).map(|_| start + Duration::seconds(self.rng.gen_range(0..minutes * 60))).collect()
    }
}

/// Writes negative inbound messages for the mentions, as ingest writes them (stamped
/// now), with their topic links; in chunks, so a season of history is quick.
pub async fn write(db: &DatabaseConnection, customer_id: Uuid, mentions: &[Mention]) {
    write_stamped(db, customer_id, mentions, Utc::now()).await;
}

/// [`write`], with the change stamp `stamped` (history written well before a run).
pub async fn write_stamped(db: &DatabaseConnection, customer_id: Uuid, mentions: &[Mention], stamped: DateTime<Utc>) {
    for chunk in mentions.chunks(500) {
        let mut links = Vec::new();
        let rows: Vec<interaction::ActiveModel> = chunk
            .iter()
            .map(|m| {
                let id = Uuid::now_v7();
                if let Some(topic_id) = m.topic {
                    links.push(interaction_topic::Model { interaction_id: id, topic_id }.into_active_model());
                }
                interaction::Model {
                    id,
                    customer_id,
                    conversation_id: None,
                    channel: m.channel,
                    direction: Direction::Inbound,
                    visibility: if m.private { Visibility::Private } else { Visibility::PublicPost },
                    author_kind: AuthorKind::Customer,
                    author_user_id: None,
                    inbox: m.inbox.clone(),
                    body: m.body.clone(),
                    sentiment_score: Some(-0.7),
                    sentiment_label: Some(SentimentLabel::Negative),
                    external_id: Some(id.to_string()),
                    occurred_at: m.at,
                    created_at: stamped,
                    updated_at: stamped,
                }
                .into_active_model()
            })
            .collect();
        interaction::Entity::insert_many(rows).exec_without_returning(db).await.expect("mentions written");
        if !links.is_empty() {
            interaction_topic::Entity::insert_many(links).exec_without_returning(db).await.expect("links written");
        }
    }
}
