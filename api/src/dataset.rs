//! The generated dataset: the demo data loaded on first start and, at larger sizes,
//! the benchmark dataset. Deterministic for a given seed (ChaCha8), so two runs with
//! the same sizes and seed hold the same customers, texts, scores and outcomes; times
//! are laid out over the year before the day the data is generated.
//!
//! Rows are built in memory per chunk of customers and inserted with multi-row
//! `INSERT`s inside one transaction per chunk, so a million rows cost thousands of
//! statements, not millions.

use chrono::{DateTime, Duration, DurationRound, Utc};
use entity::enums::*;
use entity::{
    conversation, customer, customer_identity, feedback, interaction, journey, journey_stage, routing_rule, sla_policy,
    survey, team, topic, touchpoint,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, PaginatorTrait, QueryOrder,
    TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::config::SeedArgs;
use crate::error::{AppError, AppResult};

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

const CUSTOMERS_PER_CHUNK: usize = 200;
const ROWS_PER_INSERT: usize = 500;

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

fn label(score: f64) -> SentimentLabel {
    if score <= -0.25 {
        SentimentLabel::Negative
    } else if score >= 0.25 {
        SentimentLabel::Positive
    } else {
        SentimentLabel::Neutral
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// Configuration rows the facts refer to.
struct Catalogue {
    teams: Vec<Uuid>,
    sla_by_channel: Vec<(Channel, Uuid, i64)>,
    journeys: Vec<(Uuid, Vec<(Uuid, String)>)>,
    surveys: Vec<(Uuid, SurveyKind)>,
}

/// Loads the generated dataset. Fails (and writes nothing of the failing chunk) on a
/// database error; sizes come from `args`.
pub async fn generate(db: &DatabaseConnection, args: &SeedArgs) -> AppResult<SeedReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let today = Utc::now().duration_trunc(Duration::days(1)).map_err(AppError::internal)?;
    let catalogue = load_catalogue(db, today).await?;
    let mut report = SeedReport::default();
    // Numbering continues after the customers already there, so identities stay unique.
    let first = usize::try_from(customer::Entity::find().count(db).await?).unwrap_or(usize::MAX);
    let total = first.saturating_add(args.customers as usize);
    let mut start = first;
    while start < total {
        let end = (start + CUSTOMERS_PER_CHUNK).min(total);
        let chunk = build_chunk(&mut rng, &catalogue, args, start..end, today);
        insert_chunk(db, chunk, &mut report).await?;
        start = end;
    }
    // Fresh statistics, so the planner does not judge a bulk-loaded table as empty
    // (a stale estimate turned a 170 ms drivers query into 3 s on PostgreSQL).
    db.execute_unprepared("ANALYZE").await?;
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
    Ok(Some(Catalogue { teams, sla_by_channel, journeys, surveys }))
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
    for (name, keywords) in [
        ("Delivery", vec!["parcel", "delivery", "courier", "tracking"]),
        ("Billing", vec!["charged", "refund", "invoice", "discount"]),
        ("App", vec!["app", "logging", "checkout"]),
        ("Staff", vec!["agent", "helpful", "service"]),
    ] {
        topic::Model {
            id: Uuid::now_v7(),
            name: name.into(),
            keywords: json!(keywords),
            created_at: now,
            updated_at: now,
            // The tagging job tags the generated history once it starts.
            retag_requested_at: Some(now),
            retagged_at: None,
        }
        .into_active_model()
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(Catalogue { teams, sla_by_channel, journeys, surveys })
}

#[derive(Default)]
struct Chunk {
    customers: Vec<customer::ActiveModel>,
    identities: Vec<customer_identity::ActiveModel>,
    conversations: Vec<conversation::ActiveModel>,
    interactions: Vec<interaction::ActiveModel>,
    touchpoints: Vec<touchpoint::ActiveModel>,
    feedback: Vec<feedback::ActiveModel>,
}

fn build_chunk(
    rng: &mut ChaCha8Rng,
    cat: &Catalogue,
    args: &SeedArgs,
    range: std::ops::Range<usize>,
    today: DateTime<Utc>,
) -> Chunk {
    let mut chunk = Chunk::default();
    for n in range {
        let first = *pick(rng, FIRST);
        let last = *pick(rng, LAST);
        let roll = rng.gen_range(0..100);
        let segment = SEGMENTS
            .iter()
            .scan(0, |acc, (name, weight)| {
                *acc += weight;
                Some((*name, *acc))
            })
            .find(|(_, acc)| roll < *acc)
            .map_or("consumer", |(name, _)| name);
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
        let channels: Vec<Channel> = {
            let mut c = vec![Channel::Email, Channel::Phone, Channel::Chat];
            for (kind, _) in &identities {
                match kind {
                    IdentityKind::Twitter => c.push(Channel::Twitter),
                    IdentityKind::Facebook => c.push(Channel::Facebook),
                    IdentityKind::Instagram => c.push(Channel::Instagram),
                    IdentityKind::Whatsapp => c.push(Channel::Whatsapp),
                    _ => {}
                }
            }
            c
        };
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
        let mut last_contact: Option<DateTime<Utc>> = None;
        let conversations = rng.gen_range(0..=args.conversations_per_customer * 2);
        for _ in 0..conversations {
            let channel = *pick(rng, &channels);
            let opened_at = today - Duration::minutes(rng.gen_range(10..365 * 1440));
            let conversation_id = Uuid::now_v7();
            let (sla_id, first_minutes) = cat
                .sla_by_channel
                .iter()
                .find(|(c, _, _)| *c == channel)
                .map_or((None, 24 * 60), |(_, id, m)| (Some(*id), *m));
            let public =
                matches!(channel, Channel::Twitter | Channel::Facebook | Channel::Instagram) && rng.gen_bool(0.5);
            let visibility = if public { Visibility::PublicPost } else { Visibility::Private };
            let messages = rng.gen_range(1..=5);
            let mut at = opened_at;
            let mut first_response_at = None;
            let mut last_message_at = opened_at;
            let (body, score) = *pick(rng, INBOUND);
            for m in 0..messages {
                let inbound = m % 2 == 0;
                let (text, sentiment) = if m == 0 {
                    (body.to_owned(), Some(score))
                } else if inbound {
                    let (b, s) = *pick(rng, INBOUND);
                    (b.to_owned(), Some(s))
                } else {
                    ((*pick(rng, OUTBOUND)).to_owned(), None)
                };
                if !inbound && first_response_at.is_none() {
                    first_response_at = Some(at);
                }
                chunk.interactions.push(
                    interaction::Model {
                        id: Uuid::now_v7(),
                        customer_id,
                        conversation_id: Some(conversation_id),
                        channel,
                        direction: if inbound { Direction::Inbound } else { Direction::Outbound },
                        visibility,
                        author_kind: if inbound { AuthorKind::Customer } else { AuthorKind::Agent },
                        author_user_id: None,
                        inbox: Some(if public { "@AcmeCare".into() } else { "support".into() }),
                        body: Some(text),
                        sentiment_score: sentiment,
                        sentiment_label: sentiment.map(label),
                        external_id: Some(format!("{}-{}", conversation_id.simple(), m)),
                        occurred_at: at,
                        created_at: at,
                    }
                    .into_active_model(),
                );
                last_message_at = at;
                at = (at + Duration::minutes(rng.gen_range(1..(first_minutes * 2).max(3)))).min(today);
            }
            let age = today - opened_at;
            let status = if age < Duration::days(2) {
                *pick(rng, &[ConversationStatus::Open, ConversationStatus::Pending, ConversationStatus::Resolved])
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
        let touchpoints = rng.gen_range(0..=args.touchpoints_per_customer * 2);
        let (journey_id, stages) = pick(rng, &cat.journeys);
        let mut at = today - Duration::minutes(rng.gen_range(1440..300 * 1440));
        for (i, (stage_id, stage_name)) in stages.iter().enumerate().take(touchpoints as usize) {
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
                }
                .into_active_model(),
            );
            if i == 3 || (i == 2 && rng.gen_bool(0.3)) {
                let (survey_id, kind) = *pick(rng, &cat.surveys);
                let score: i16 = match kind {
                    SurveyKind::Nps => *pick(rng, &[10, 10, 9, 9, 9, 8, 8, 7, 6, 5, 3, 0]),
                    SurveyKind::Csat => *pick(rng, &[5, 5, 4, 4, 4, 3, 2, 1]),
                    SurveyKind::Ces => *pick(rng, &[7, 6, 6, 5, 5, 4, 3, 2]),
                };
                let comment = rng.gen_bool(0.5).then(|| *pick(rng, COMMENTS));
                let feedback_id = Uuid::now_v7();
                chunk.feedback.push(
                    feedback::Model {
                        id: feedback_id,
                        customer_id,
                        survey_id: Some(survey_id),
                        kind: match kind {
                            SurveyKind::Nps => FeedbackKind::Nps,
                            SurveyKind::Csat => FeedbackKind::Csat,
                            SurveyKind::Ces => FeedbackKind::Ces,
                        },
                        score: Some(score),
                        comment: comment.map(|(c, _)| c.to_owned()),
                        channel: Channel::Email,
                        touchpoint_id: Some(touchpoint_id),
                        interaction_id: None,
                        sentiment_score: comment.map(|(_, s)| s),
                        sentiment_label: comment.map(|(_, s)| label(s)),
                        source: "demo".into(),
                        external_id: Some(feedback_id.simple().to_string()),
                        occurred_at: (at + Duration::hours(2)).min(today),
                        created_at: (at + Duration::hours(2)).min(today),
                    }
                    .into_active_model(),
                );
            }
            at = (at + Duration::minutes(rng.gen_range(5..3 * 1440))).min(today);
        }
        if rng.gen_bool(0.1) {
            let (text, score) = *pick(rng, COMMENTS);
            let channel = *pick(rng, &[Channel::Twitter, Channel::Review, Channel::Facebook]);
            let feedback_id = Uuid::now_v7();
            let when = today - Duration::minutes(rng.gen_range(10..200 * 1440));
            chunk.feedback.push(
                feedback::Model {
                    id: feedback_id,
                    customer_id,
                    survey_id: None,
                    kind: if channel == Channel::Review { FeedbackKind::Review } else { FeedbackKind::SocialMention },
                    score: (channel == Channel::Review).then(|| *pick(rng, &[1, 2, 4, 5, 5])),
                    comment: Some(text.into()),
                    channel,
                    touchpoint_id: None,
                    interaction_id: None,
                    sentiment_score: Some(score),
                    sentiment_label: Some(label(score)),
                    source: "demo".into(),
                    external_id: Some(feedback_id.simple().to_string()),
                    occurred_at: when,
                    created_at: when,
                }
                .into_active_model(),
            );
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

async fn insert_rows<A>(txn: &sea_orm::DatabaseTransaction, rows: Vec<A>) -> AppResult<u64>
where
    A: ActiveModelTrait + Send,
{
    let count = rows.len() as u64;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<A> = rows.by_ref().take(ROWS_PER_INSERT).collect();
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
    report.touchpoints += insert_rows(&txn, chunk.touchpoints).await?;
    report.feedback += insert_rows(&txn, chunk.feedback).await?;
    txn.commit().await?;
    Ok(())
}
