//! The generated dataset: the demo data loaded on first start and, at larger sizes,
//! the benchmark dataset. Deterministic for a given seed (ChaCha8), so two runs with
//! the same sizes and seed hold the same customers, texts, scores and outcomes; times
//! are laid out over the year before the day the data is generated.
//!
//! Rows are built in memory per chunk of customers (on a blocking thread) and inserted
//! with multi-row `INSERT`s inside one transaction per chunk, so a million rows cost
//! hundreds of statements, not millions; on PostgreSQL two chunks are written at once.
//! Texts are tagged with the topics as ingest would tag them, so no re-tagging job
//! has to run over the generated history.

use chrono::{DateTime, Duration, DurationRound, Utc};
use entity::enums::*;
use entity::{
    conversation, customer, customer_identity, feedback, feedback_topic, interaction, interaction_topic, journey,
    journey_stage, routing_rule, sla_policy, survey, team, topic, touchpoint,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Iterable,
    PaginatorTrait, QueryOrder, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::config::SeedArgs;
use crate::error::{AppError, AppResult};
use crate::feedback::topics::{Side, Tagger};
use crate::sentiment::label;

/// Row counts of what was generated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub customers: u64,
    pub identities: u64,
    pub conversations: u64,
    pub interactions: u64,
    pub touchpoints: u64,
    pub feedback: u64,
}

const CUSTOMERS_PER_CHUNK: usize = 500;
/// Bind parameters in one multi-row `INSERT`: under SQLite's limit (32,766) and
/// PostgreSQL's (65,535).
const PARAMETERS_PER_INSERT: usize = 30_000;

const FIRST: &[&str] = &[
    "Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur", "Sofia", "Leo", "Grace", "Oscar", "Lily",
    "Harry", "Freya", "Jack", "Emily", "Charlie", "Ella", "Thomas", "Chloe", "Liam", "Aisha", "Mateo", "Yuki", "Priya",
    "Lucas", "Zara", "Elena", "Omar",
];
const LAST: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Khan", "Garcia", "Novak", "Tanaka", "Müller",
    "Rossi",
];
const SEGMENTS: &[(&str, u32)] = &[("consumer", 70), ("premium", 20), ("business", 10)];

/// (body, sentiment score) of inbound messages.
const INBOUND: &[(&str, f64)] = &[
    ("Where is my parcel? It was due yesterday and tracking hasn't moved.", -0.5),
    ("I was charged twice for my last order, please refund the duplicate.", -0.6),
    ("The app keeps logging me out when I try to pay.", -0.4),
    ("Can I change the delivery address on my order?", 0.0),
    ("Absolutely furious, third time my delivery is late. Cancelling my account.", -0.9),
    ("Thanks for sorting that out so quickly, great service!", 0.8),
    ("How do I upgrade my plan to premium?", 0.1),
    ("The item arrived damaged, the box was crushed.", -0.6),
    ("Love the new checkout, so much faster than before.", 0.7),
    ("Is there a discount for business accounts?", 0.1),
    ("Your agent was really helpful yesterday, thank you Sam.", 0.9),
    ("Still waiting for a reply to my email from last week...", -0.5),
];
const OUTBOUND: &[&str] = &[
    "Sorry to hear that! Could you send us your order number in a DM?",
    "Thanks for reaching out, I've refunded the duplicate charge.",
    "I've escalated this to our delivery team and will update you today.",
    "Glad we could help, have a great day!",
    "You can change it under Orders > Delivery details until dispatch.",
];
const COMMENTS: &[(&str, f64)] = &[
    ("Delivery was quick and the courier was friendly.", 0.8),
    ("Took far too long to get an answer.", -0.6),
    ("Checkout was confusing, I almost gave up.", -0.5),
    ("Great prices, average support.", 0.2),
    ("Best customer service I've had in years.", 0.9),
    ("Parcel arrived damaged and the refund took two weeks.", -0.8),
];

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// Configuration rows the facts refer to.
struct Catalogue {
    teams: Vec<Uuid>,
    sla_by_channel: Vec<(Channel, Uuid, i64)>,
    journeys: Vec<(Uuid, Vec<(Uuid, String)>)>,
    surveys: Vec<(Uuid, SurveyKind)>,
    /// Tags generated texts as ingest would, so no re-tagging job has to run.
    tagger: Tagger,
    /// Starts of the incidents: twelve-hour bursts of complaints.
    incidents: Vec<DateTime<Utc>>,
}

/// Mean rows per customer of each kind.
#[derive(Clone, Copy)]
struct Rates {
    interactions: f64,
    touchpoints: f64,
    feedback: f64,
}

impl Rates {
    fn of(args: &SeedArgs) -> Self {
        let customers = f64::from(args.customers.max(1));
        let per = |total: Option<u64>, default: f64| total.map_or(default, |t| t as f64 / customers);
        Rates {
            interactions: per(args.interactions, 6.0),
            touchpoints: per(args.touchpoints, 3.0),
            feedback: per(args.feedback, 0.6),
        }
    }
}

/// Loads the generated dataset. Fails (and writes nothing of the failing chunk) on a
/// database error; sizes come from `args`.
pub async fn generate(db: &DatabaseConnection, args: &SeedArgs) -> AppResult<SeedReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let today = Utc::now().duration_trunc(Duration::days(1)).map_err(AppError::internal)?;
    let mut catalogue = load_catalogue(db, today).await?;
    catalogue.incidents = (0..6).map(|_| today - Duration::hours(rng.gen_range(24..365 * 24))).collect();
    // Numbering continues after the customers already there, so identities stay unique.
    let first = usize::try_from(customer::Entity::find().count(db).await?).unwrap_or(usize::MAX);
    let total = first.saturating_add(args.customers as usize);
    let rates = Rates::of(args);
    // One thread builds rows while this task writes the previous chunk: on two cores
    // the generator and the database each get one.
    let (sender, chunks) = tokio::sync::mpsc::channel::<Chunk>(2);
    let generator = tokio::task::spawn_blocking(move || {
        let mut start = first;
        while start < total {
            let end = (start + CUSTOMERS_PER_CHUNK).min(total);
            let chunk = build_chunk(&mut rng, &catalogue, rates, start..end, today);
            if sender.blocking_send(chunk).is_err() {
                break;
            }
            start = end;
        }
    });
    // Chunks are independent of each other, so PostgreSQL takes two at a time (one
    // per core); SQLite has one writer, so one.
    let writers = if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres { 2 } else { 1 };
    let chunks = tokio::sync::Mutex::new(chunks);
    let write = async || -> AppResult<SeedReport> {
        let mut report = SeedReport::default();
        loop {
            let next = chunks.lock().await.recv().await;
            let Some(chunk) = next else { return Ok(report) };
            insert_chunk(db, chunk, &mut report).await?;
        }
    };
    let reports = futures::future::try_join_all((0..writers).map(|_| write())).await?;
    generator.await.map_err(AppError::internal)?;
    let report = reports.into_iter().fold(SeedReport::default(), |a, b| SeedReport {
        customers: a.customers + b.customers,
        identities: a.identities + b.identities,
        conversations: a.conversations + b.conversations,
        interactions: a.interactions + b.interactions,
        touchpoints: a.touchpoints + b.touchpoints,
        feedback: a.feedback + b.feedback,
    });
    // Statistics first: the refreshes below plan over the tables just filled, and on
    // an estimate of three rows PostgreSQL walked a journey's runs with a nested loop
    // (minutes instead of five seconds).
    db.execute_unprepared("ANALYZE").await?;
    // The insight rollups of every hour just filled and the journey runs of every
    // customer, so a server started on the dataset begins with them current rather
    // than spending its first minutes on it.
    crate::insights::rollups::refresh(db, usize::MAX).await?;
    crate::insights::runs::refresh(db, usize::MAX).await?;
    // Fresh statistics, so the planner does not judge a bulk-loaded table as empty
    // (a stale estimate turned a 170 ms drivers query into 3 s on PostgreSQL); on
    // PostgreSQL also the visibility map, as autovacuum would set it later, so
    // covering indexes answer without visiting the table (index-only scans).
    let analyze =
        if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres { "VACUUM (ANALYZE)" } else { "ANALYZE" };
    db.execute_unprepared(analyze).await?;
    Ok(report)
}

/// The configuration already in the database, when an earlier run (or an operator)
/// made one: seeding again adds customers and facts, not a second catalogue.
async fn existing_catalogue(db: &DatabaseConnection) -> AppResult<Option<Catalogue>> {
    let journeys = journey::Entity::find().order_by_asc(journey::Column::Name).all(db).await?;
    let teams: Vec<Uuid> = team::Entity::find().all(db).await?.into_iter().map(|t| t.id).collect();
    let surveys: Vec<(Uuid, SurveyKind)> =
        survey::Entity::find().all(db).await?.into_iter().filter(|s| s.active).map(|s| (s.id, s.kind)).collect();
    if journeys.is_empty() || teams.is_empty() || surveys.is_empty() {
        return Ok(None);
    }
    let stages = journey_stage::Entity::find().order_by_asc(journey_stage::Column::Position).all(db).await?;
    let journeys = journeys
        .into_iter()
        .map(|j| {
            let own = stages.iter().filter(|s| s.journey_id == j.id).map(|s| (s.id, s.name.clone())).collect();
            (j.id, own)
        })
        .collect();
    let sla_by_channel = sla_policy::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|p| p.channel.map(|c| (c, p.id, i64::from(p.first_response_minutes))))
        .collect();
    let tagger = Tagger::load(db).await?;
    Ok(Some(Catalogue { teams, sla_by_channel, journeys, surveys, tagger, incidents: Vec::new() }))
}

async fn load_catalogue(db: &DatabaseConnection, now: DateTime<Utc>) -> AppResult<Catalogue> {
    if let Some(existing) = existing_catalogue(db).await? {
        return Ok(existing);
    }
    let txn = db.begin().await?;
    let mut teams = Vec::new();
    for name in ["Social care", "Billing", "Tier 1 support", "Deliveries"] {
        let id = Uuid::now_v7();
        team::Model { id, name: name.into(), created_at: now }.into_active_model().insert(&txn).await?;
        teams.push(id);
    }
    let mut sla_by_channel = Vec::new();
    for (channel, first, resolve) in [
        (Channel::Twitter, 30, 24 * 60),
        (Channel::Facebook, 60, 24 * 60),
        (Channel::Instagram, 60, 24 * 60),
        (Channel::Chat, 2, 60),
        (Channel::Phone, 1, 8 * 60),
        (Channel::Email, 8 * 60, 72 * 60),
        (Channel::Sms, 60, 24 * 60),
        (Channel::Whatsapp, 30, 24 * 60),
    ] {
        let id = Uuid::now_v7();
        sla_policy::Model {
            id,
            name: format!("{channel:?} standard"),
            channel: Some(channel),
            priority: None,
            first_response_minutes: first,
            resolution_minutes: resolve,
            active: true,
            business_hours: None,
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .insert(&txn)
        .await?;
        sla_by_channel.push((channel, id, i64::from(first)));
    }
    for (position, (name, team_idx, keywords, priority)) in [
        ("Public complaints to social care", 0, vec!["furious", "cancelling"], Some(Priority::Urgent)),
        ("Billing questions", 1, vec!["charged", "refund", "invoice"], Some(Priority::High)),
        ("Deliveries", 3, vec!["parcel", "delivery", "courier"], None),
    ]
    .into_iter()
    .enumerate()
    {
        routing_rule::Model {
            id: Uuid::now_v7(),
            name: name.into(),
            position: i32::try_from(position).unwrap_or(i32::MAX),
            enabled: true,
            conditions: json!({ "keywords": keywords }),
            team_id: Some(teams[team_idx]),
            set_priority: priority,
            add_tags: json!([]),
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .insert(&txn)
        .await?;
    }
    let mut journeys = Vec::new();
    for (name, stages) in [
        ("Purchase", vec!["Browse", "Cart", "Checkout", "Delivery", "Support"]),
        ("Onboarding", vec!["Sign-up", "Verification", "First use"]),
    ] {
        let journey_id = Uuid::now_v7();
        journey::Model {
            id: journey_id,
            name: name.into(),
            description: Some(format!("{name} journey")),
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .insert(&txn)
        .await?;
        let mut stage_rows = Vec::new();
        for (pos, stage) in stages.iter().enumerate() {
            let id = Uuid::now_v7();
            journey_stage::Model {
                id,
                journey_id,
                name: (*stage).into(),
                position: i32::try_from(pos).unwrap_or(i32::MAX),
                created_at: now,
            }
            .into_active_model()
            .insert(&txn)
            .await?;
            stage_rows.push((id, (*stage).to_owned()));
        }
        journeys.push((journey_id, stage_rows));
    }
    let mut surveys = Vec::new();
    for (name, kind, question) in [
        ("Relationship NPS", SurveyKind::Nps, "How likely are you to recommend us to a friend or colleague?"),
        ("Support CSAT", SurveyKind::Csat, "How satisfied are you with the help you received?"),
        ("Checkout effort", SurveyKind::Ces, "How easy was it to complete your purchase?"),
    ] {
        let id = Uuid::now_v7();
        survey::Model {
            id,
            name: name.into(),
            kind,
            question: question.into(),
            channel: None,
            stage_id: None,
            active: true,
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .insert(&txn)
        .await?;
        surveys.push((id, kind));
    }
    // Topics, and the brand watch list: ours (every message to @AcmeCare is about
    // us) and a competitor.
    for (name, keywords, brand, handles) in [
        ("Delivery", vec!["parcel", "delivery", "courier", "tracking"], None, None),
        ("Billing", vec!["charged", "refund", "invoice", "discount"], None, None),
        ("App", vec!["app", "logging", "checkout"], None, None),
        ("Staff", vec!["agent", "helpful", "service"], None, None),
        ("Acme", vec!["acme"], Some(Side::Ours), Some(json!(["@AcmeCare"]))),
        ("Zed Parcels", vec!["zed parcels", "zedparcels"], Some(Side::Competitor), Some(json!(["@ZedParcels"]))),
    ] {
        topic::Model {
            id: Uuid::now_v7(),
            name: name.into(),
            keywords: json!(keywords),
            created_at: now,
            updated_at: now,
            // The generated rows are tagged as they are built: nothing to re-tag.
            retag_requested_at: None,
            retagged_at: None,
            brand: brand.map(|b: Side| b.as_str().to_owned()),
            handles,
        }
        .into_active_model()
        .insert(&txn)
        .await?;
    }
    let tagger = Tagger::load(&txn).await?;
    txn.commit().await?;
    Ok(Catalogue { teams, sla_by_channel, journeys, surveys, tagger, incidents: Vec::new() })
}

#[derive(Default)]
struct Chunk {
    customers: Vec<customer::ActiveModel>,
    identities: Vec<customer_identity::ActiveModel>,
    conversations: Vec<conversation::ActiveModel>,
    interactions: Vec<interaction::ActiveModel>,
    interaction_topics: Vec<interaction_topic::ActiveModel>,
    touchpoints: Vec<touchpoint::ActiveModel>,
    feedback: Vec<feedback::ActiveModel>,
    feedback_topics: Vec<feedback_topic::ActiveModel>,
}

/// How often each channel carries a conversation, among the channels a customer has.
const CHANNEL_MIX: &[(Channel, u32)] = &[
    (Channel::Email, 30),
    (Channel::Chat, 25),
    (Channel::Phone, 20),
    (Channel::Twitter, 8),
    (Channel::Whatsapp, 6),
    (Channel::Facebook, 5),
    (Channel::Instagram, 4),
    (Channel::Sms, 2),
];

/// One of `items`, each as likely as its weight.
fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> Option<T> {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rng.gen_range(0..total);
    for (item, weight) in items {
        if roll < *weight {
            return Some(*item);
        }
        roll -= weight;
    }
    None
}

/// A customer's activity relative to the mean: Pareto with α = 2 and mean 1, capped at
/// 50×, so most customers get in touch rarely and a few very often.
fn activity(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    (0.5 / u.sqrt()).min(50.0)
}

/// A count whose expectation is `mean`: its whole part, plus one with the chance of
/// its fraction.
fn count(rng: &mut ChaCha8Rng, mean: f64) -> usize {
    let whole = mean.max(0.0).floor();
    whole as usize + usize::from(rng.gen_bool((mean - whole).clamp(0.0, 1.0)))
}

fn build_chunk(
    rng: &mut ChaCha8Rng,
    cat: &Catalogue,
    rates: Rates,
    range: std::ops::Range<usize>,
    today: DateTime<Utc>,
) -> Chunk {
    let mut chunk = Chunk::default();
    for n in range {
        let first = *pick(rng, FIRST);
        let last = *pick(rng, LAST);
        let segment = weighted(rng, SEGMENTS).unwrap_or("consumer");
        let created_at = today - Duration::days(rng.gen_range(30..730)) + Duration::minutes(rng.gen_range(0..1440));
        let customer_id = Uuid::now_v7();
        let handle = format!("{}_{}{n}", first.to_lowercase(), last.to_lowercase().replace('ü', "u"));
        let mut identities = vec![
            (IdentityKind::Email, format!("{handle}@example.com")),
            (IdentityKind::Phone, format!("+447{:09}", 700_000_000 + n)),
        ];
        let social = [IdentityKind::Twitter, IdentityKind::Facebook, IdentityKind::Instagram, IdentityKind::Whatsapp];
        for kind in social {
            if rng.gen_bool(0.3) {
                let value =
                    if kind == IdentityKind::Whatsapp { format!("+447{:09}", 700_000_000 + n) } else { handle.clone() };
                identities.push((kind, value));
            }
        }
        if rng.gen_bool(0.5) {
            identities.push((IdentityKind::ExternalId, format!("crm-{:07}", n + 1)));
        }
        let channels: Vec<(Channel, u32)> = CHANNEL_MIX
            .iter()
            .copied()
            .filter(|(channel, _)| {
                let needs = match channel {
                    Channel::Twitter => Some(IdentityKind::Twitter),
                    Channel::Facebook => Some(IdentityKind::Facebook),
                    Channel::Instagram => Some(IdentityKind::Instagram),
                    Channel::Whatsapp => Some(IdentityKind::Whatsapp),
                    _ => None,
                };
                needs.is_none_or(|kind| identities.iter().any(|(k, _)| *k == kind))
            })
            .collect();
        for (kind, value) in identities {
            chunk.identities.push(
                customer_identity::Model {
                    id: Uuid::now_v7(),
                    customer_id,
                    kind,
                    value,
                    verified: kind == IdentityKind::Email,
                    created_at,
                }
                .into_active_model(),
            );
        }
        let busy = activity(rng);
        let messages = count(rng, rates.interactions * busy);
        let last_contact = conversations(rng, cat, &mut chunk, customer_id, &channels, messages, today);
        let engaged = activity(rng);
        let steps = count(rng, rates.touchpoints * engaged);
        let reached = touchpoints(rng, cat, &mut chunk, customer_id, steps, today);
        for _ in 0..count(rng, rates.feedback * engaged) {
            feedback_of(rng, cat, &mut chunk, customer_id, &reached, today);
        }
        let mut attributes = json!({ "language": *pick(rng, &["en", "en", "en", "fr", "de", "es"]) });
        if segment == "business" {
            attributes["company"] = json!(format!("{last} & Co"));
        }
        chunk.customers.push(
            customer::Model {
                id: customer_id,
                display_name: Some(format!("{first} {last}")),
                segment: Some(segment.into()),
                attributes,
                merged_into_id: None,
                erased_at: None,
                last_contact_at: last_contact,
                created_at,
                updated_at: created_at,
            }
            .into_active_model(),
        );
    }
    chunk
}

/// `messages` interactions of one customer, in conversations of one to five
/// messages; answers the customer's last contact.
fn conversations(
    rng: &mut ChaCha8Rng,
    cat: &Catalogue,
    chunk: &mut Chunk,
    customer_id: Uuid,
    channels: &[(Channel, u32)],
    messages: usize,
    today: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut last_contact: Option<DateTime<Utc>> = None;
    let mut left = messages;
    while left > 0 {
        let length = rng.gen_range(1..=5).min(left);
        left -= length;
        // One conversation in twenty is part of an incident: a complaint in a burst.
        let incident = (!cat.incidents.is_empty() && rng.gen_bool(0.05)).then(|| *pick(rng, &cat.incidents));
        let channel = weighted(rng, channels).unwrap_or(Channel::Email);
        let opened_at = match incident {
            Some(start) => start + Duration::minutes(rng.gen_range(0..12 * 60)),
            None => today - Duration::minutes(rng.gen_range(10..365 * 1440)),
        };
        let conversation_id = Uuid::now_v7();
        let (sla_id, first_minutes) = cat
            .sla_by_channel
            .iter()
            .find(|(c, _, _)| *c == channel)
            .map_or((None, 24 * 60), |(_, id, m)| (Some(*id), *m));
        let public = matches!(channel, Channel::Twitter | Channel::Facebook | Channel::Instagram) && rng.gen_bool(0.5);
        let visibility = if public { Visibility::PublicPost } else { Visibility::Private };
        let mut at = opened_at;
        let mut first_response_at = None;
        let mut last_message_at = opened_at;
        let (body, score) = loop {
            let candidate = *pick(rng, INBOUND);
            if incident.is_none() || candidate.1 <= -0.5 {
                break candidate;
            }
        };
        for m in 0..length {
            let inbound = m % 2 == 0;
            let (text, sentiment) = if m == 0 {
                (body, Some(score))
            } else if inbound {
                let (b, s) = *pick(rng, INBOUND);
                (b, Some(s))
            } else {
                (*pick(rng, OUTBOUND), None)
            };
            if !inbound && first_response_at.is_none() {
                first_response_at = Some(at);
            }
            let interaction_id = Uuid::now_v7();
            let inbox = if public { "@AcmeCare" } else { "support" };
            if inbound {
                for topic_id in cat.tagger.tag_message(text, Some(inbox)) {
                    chunk.interaction_topics.push(interaction_topic::ActiveModel {
                        interaction_id: Set(interaction_id),
                        topic_id: Set(topic_id),
                    });
                }
            }
            chunk.interactions.push(
                interaction::Model {
                    id: interaction_id,
                    customer_id,
                    conversation_id: Some(conversation_id),
                    channel,
                    direction: if inbound { Direction::Inbound } else { Direction::Outbound },
                    visibility,
                    author_kind: if inbound { AuthorKind::Customer } else { AuthorKind::Agent },
                    author_user_id: None,
                    inbox: Some(inbox.to_owned()),
                    body: Some(text.to_owned()),
                    sentiment_score: sentiment,
                    sentiment_label: sentiment.map(label),
                    external_id: Some(format!("{}-{}", conversation_id.simple(), m)),
                    occurred_at: at,
                    created_at: at,
                    updated_at: at,
                }
                .into_active_model(),
            );
            last_message_at = at;
            at = (at + Duration::minutes(rng.gen_range(1..(first_minutes * 2).max(3)))).min(today);
        }
        let age = today - opened_at;
        let status = if age < Duration::days(2) {
            *pick(rng, &[ConversationStatus::Open, ConversationStatus::Pending, ConversationStatus::Resolved])
        } else if rng.gen_bool(0.01) {
            // The backlog: a few old conversations nobody closed.
            *pick(rng, &[ConversationStatus::Open, ConversationStatus::Pending])
        } else if rng.gen_bool(0.8) {
            ConversationStatus::Closed
        } else {
            ConversationStatus::Resolved
        };
        let resolved_at = matches!(status, ConversationStatus::Resolved | ConversationStatus::Closed)
            .then(|| (last_message_at + Duration::minutes(rng.gen_range(5..600))).min(today));
        let first_due = opened_at + Duration::minutes(first_minutes);
        let priority = if score < -0.8 {
            Priority::Urgent
        } else if score < -0.4 {
            Priority::High
        } else {
            Priority::Normal
        };
        chunk.conversations.push(
            conversation::Model {
                id: conversation_id,
                customer_id,
                channel,
                inbox: Some(if public { "@AcmeCare".into() } else { "support".into() }),
                status,
                priority,
                subject: Some(body.chars().take(60).collect()),
                team_id: Some(*pick(rng, &cat.teams)),
                assignee_id: None,
                sla_policy_id: sla_id,
                routing_rule_id: None,
                tags: json!([]),
                opened_at,
                last_message_at,
                first_response_due_at: Some(first_due),
                resolution_due_at: Some(opened_at + Duration::days(1)),
                first_response_at,
                resolved_at,
                closed_at: (status == ConversationStatus::Closed).then_some(resolved_at).flatten(),
                first_response_breached: first_response_at
                    .map_or(age > Duration::minutes(first_minutes), |r| r > first_due),
                resolution_breached: resolved_at.is_some_and(|r| r > opened_at + Duration::days(1)),
                pending_since: (status == ConversationStatus::Pending).then_some(last_message_at),
                next_due_at: crate::interactions::conversations::next_due(
                    status,
                    first_response_at,
                    Some(first_due),
                    Some(opened_at + Duration::days(1)),
                ),
                created_at: opened_at,
                updated_at: last_message_at,
            }
            .into_active_model(),
        );
        last_contact = last_contact.max(Some(last_message_at));
    }
    last_contact
}

/// `budget` touchpoints of one customer: runs through a journey's stages that stop at
/// a failed or abandoned stage or when the customer drifts off (one in five per
/// stage), so later stages are reached less often. Answers (id, time) of each.
fn touchpoints(
    rng: &mut ChaCha8Rng,
    cat: &Catalogue,
    chunk: &mut Chunk,
    customer_id: Uuid,
    mut budget: usize,
    today: DateTime<Utc>,
) -> Vec<(Uuid, DateTime<Utc>)> {
    let mut reached = Vec::new();
    while budget > 0 && !cat.journeys.is_empty() {
        let (journey_id, stages) = pick(rng, &cat.journeys);
        let mut at = today - Duration::minutes(rng.gen_range(1440..365 * 1440));
        for (stage_id, stage_name) in stages {
            if budget == 0 {
                break;
            }
            budget -= 1;
            let outcome = if rng.gen_bool(0.85) {
                TouchpointOutcome::Success
            } else if rng.gen_bool(0.5) {
                TouchpointOutcome::Abandoned
            } else {
                TouchpointOutcome::Failure
            };
            let touchpoint_id = Uuid::now_v7();
            chunk.touchpoints.push(
                touchpoint::Model {
                    id: touchpoint_id,
                    customer_id,
                    journey_id: *journey_id,
                    stage_id: *stage_id,
                    channel: *pick(
                        rng,
                        &[Channel::Web, Channel::Web, Channel::Email, Channel::Phone, Channel::InPerson],
                    ),
                    name: stage_name.to_lowercase(),
                    outcome,
                    interaction_id: None,
                    source: "demo".into(),
                    external_id: Some(touchpoint_id.simple().to_string()),
                    occurred_at: at,
                    created_at: at,
                    updated_at: at,
                }
                .into_active_model(),
            );
            reached.push((touchpoint_id, at));
            if outcome != TouchpointOutcome::Success || !rng.gen_bool(0.8) {
                break;
            }
            at = (at + Duration::minutes(rng.gen_range(5..3 * 1440))).min(today);
        }
    }
    reached
}

/// One piece of feedback: mostly survey answers (NPS, CSAT, CES) following one of the
/// customer's touchpoints, some unsolicited mentions and reviews. A comment's tone
/// follows the score, so drivers have something to find.
fn feedback_of(
    rng: &mut ChaCha8Rng,
    cat: &Catalogue,
    chunk: &mut Chunk,
    customer_id: Uuid,
    reached: &[(Uuid, DateTime<Utc>)],
    today: DateTime<Utc>,
) {
    let roll = rng.gen_range(0..100);
    let wanted = match roll {
        0..45 => Some(SurveyKind::Nps),
        45..75 => Some(SurveyKind::Csat),
        75..85 => Some(SurveyKind::Ces),
        _ => None,
    };
    let survey = wanted.and_then(|kind| cat.surveys.iter().find(|(_, k)| *k == kind).copied());
    let feedback_id = Uuid::now_v7();
    let random_time = |rng: &mut ChaCha8Rng| today - Duration::minutes(rng.gen_range(10..365 * 1440));
    let (kind, survey_id, score, channel, touchpoint_id, when) = match survey {
        Some((survey_id, kind)) => {
            let score: i16 = match kind {
                SurveyKind::Nps => *pick(rng, &[10, 10, 9, 9, 9, 8, 8, 7, 6, 5, 3, 0]),
                SurveyKind::Csat => *pick(rng, &[5, 5, 4, 4, 4, 3, 2, 1]),
                SurveyKind::Ces => *pick(rng, &[7, 6, 6, 5, 5, 4, 3, 2]),
            };
            let kind = match kind {
                SurveyKind::Nps => FeedbackKind::Nps,
                SurveyKind::Csat => FeedbackKind::Csat,
                SurveyKind::Ces => FeedbackKind::Ces,
            };
            let follows = (!reached.is_empty() && rng.gen_bool(0.7)).then(|| *pick(rng, reached));
            let when = follows.map_or_else(|| random_time(rng), |(_, at)| (at + Duration::hours(2)).min(today));
            (kind, Some(survey_id), Some(score), Channel::Email, follows.map(|(id, _)| id), when)
        }
        None => {
            let channel = *pick(rng, &[Channel::Twitter, Channel::Review, Channel::Facebook]);
            let review = channel == Channel::Review;
            let kind = if review { FeedbackKind::Review } else { FeedbackKind::SocialMention };
            let score = review.then(|| *pick(rng, &[1, 2, 4, 5, 5]));
            (kind, None, score, channel, None, random_time(rng))
        }
    };
    let happy = match (kind, score) {
        (FeedbackKind::Nps, Some(s)) => s >= 9,
        (FeedbackKind::Csat | FeedbackKind::Review, Some(s)) => s >= 4,
        (FeedbackKind::Ces, Some(s)) => s >= 5,
        _ => rng.gen_bool(0.4),
    };
    let comment = (survey_id.is_none() || rng.gen_bool(0.5)).then(|| {
        loop {
            let candidate = *pick(rng, COMMENTS);
            if (candidate.1 > 0.0) == happy {
                break candidate;
            }
        }
    });
    if let Some((text, _)) = comment {
        for topic_id in cat.tagger.tag(text) {
            chunk
                .feedback_topics
                .push(feedback_topic::ActiveModel { feedback_id: Set(feedback_id), topic_id: Set(topic_id) });
        }
    }
    chunk.feedback.push(
        feedback::Model {
            id: feedback_id,
            customer_id,
            survey_id,
            kind,
            score,
            comment: comment.map(|(c, _)| c.to_owned()),
            channel,
            touchpoint_id,
            interaction_id: None,
            sentiment_score: comment.map(|(_, s)| s),
            sentiment_label: comment.map(|(_, s)| label(s)),
            source: "demo".into(),
            external_id: Some(feedback_id.simple().to_string()),
            occurred_at: when,
            created_at: when,
            updated_at: when,
        }
        .into_active_model(),
    );
}

async fn insert_rows<A>(txn: &sea_orm::DatabaseTransaction, rows: Vec<A>) -> AppResult<u64>
where
    A: ActiveModelTrait + Send,
{
    let count = rows.len() as u64;
    let per_insert = PARAMETERS_PER_INSERT / <A::Entity as EntityTrait>::Column::iter().count().max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<A> = rows.by_ref().take(per_insert.max(1)).collect();
        <A::Entity as EntityTrait>::insert_many(batch).exec_without_returning(txn).await?;
    }
    Ok(count)
}

async fn insert_chunk(db: &DatabaseConnection, chunk: Chunk, report: &mut SeedReport) -> AppResult<()> {
    let txn = db.begin().await?;
    report.customers += insert_rows(&txn, chunk.customers).await?;
    report.identities += insert_rows(&txn, chunk.identities).await?;
    report.conversations += insert_rows(&txn, chunk.conversations).await?;
    report.interactions += insert_rows(&txn, chunk.interactions).await?;
    insert_rows(&txn, chunk.interaction_topics).await?;
    report.touchpoints += insert_rows(&txn, chunk.touchpoints).await?;
    report.feedback += insert_rows(&txn, chunk.feedback).await?;
    insert_rows(&txn, chunk.feedback_topics).await?;
    txn.commit().await?;
    Ok(())
}
