//! GraphQL mirrors of the entity crate's vocabularies (`remote` keeps the two in step:
//! a variant added on one side and not the other fails to compile).

use async_graphql::Enum;

/// Where a contact happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::Channel")]
pub enum Channel {
    /// Voice call.
    Phone,
    /// E-mail.
    Email,
    /// Live chat / messenger on our site or app.
    Chat,
    /// Text message.
    Sms,
    /// WhatsApp.
    Whatsapp,
    /// Twitter / X (public posts and DMs).
    Twitter,
    /// Facebook (posts, comments, Messenger).
    Facebook,
    /// Instagram (comments and DMs).
    Instagram,
    /// Review sites (Trustpilot, app stores, Google).
    Review,
    /// In a store or branch.
    InPerson,
    /// Our website or app, outside chat.
    Web,
}

/// The kind of a customer identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::IdentityKind")]
pub enum IdentityKind {
    /// E-mail address, stored lower-case.
    Email,
    /// Phone number in E.164, e.g. `+447700900123`.
    Phone,
    /// Twitter / X handle, without `@`, lower-case.
    Twitter,
    /// Facebook username, lower-case.
    Facebook,
    /// Instagram handle, without `@`, lower-case.
    Instagram,
    /// WhatsApp number in E.164.
    Whatsapp,
    /// Web device or cookie id.
    Web,
    /// Id in an external system (CRM, shop).
    ExternalId,
}

/// Inbound (from the customer) or outbound (from us).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::Direction")]
pub enum Direction {
    /// From the customer to us.
    Inbound,
    /// From us to the customer.
    Outbound,
}

/// Whether everybody can see an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::Visibility")]
pub enum Visibility {
    /// A public post or comment.
    PublicPost,
    /// A private message, call or e-mail.
    Private,
}

/// Who wrote an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::AuthorKind")]
pub enum AuthorKind {
    /// The customer.
    Customer,
    /// One of our agents.
    Agent,
    /// An automated reply.
    Bot,
}

/// Where a conversation is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::ConversationStatus")]
pub enum ConversationStatus {
    /// Waiting for us.
    Open,
    /// Waiting for the customer or a third party.
    Pending,
    /// Answered; reopens on a new inbound message.
    Resolved,
    /// Finished.
    Closed,
}

/// Conversation priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::Priority")]
pub enum Priority {
    /// Low.
    Low,
    /// Normal.
    Normal,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

/// How a touchpoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::TouchpointOutcome")]
pub enum TouchpointOutcome {
    /// The step succeeded.
    Success,
    /// The step failed.
    Failure,
    /// The customer gave up.
    Abandoned,
}

/// Kind of feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::FeedbackKind")]
pub enum FeedbackKind {
    /// Net Promoter Score answer, 0–10.
    Nps,
    /// Customer satisfaction answer, 1–5.
    Csat,
    /// Customer effort score answer, 1–7.
    Ces,
    /// Unsolicited mention on social media.
    SocialMention,
    /// Review on a review site.
    Review,
    /// Free-text comment.
    Comment,
}

/// Whose a brand on the watch list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::feedback::topics::Side")]
pub enum BrandSide {
    /// One of our brands: its negative spikes are `negative_spike` alerts.
    Ours,
    /// A competitor's: its negative spikes are `opportunity` alerts.
    Competitor,
}

/// Coarse sentiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::SentimentLabel")]
pub enum SentimentLabel {
    /// Score below -0.25.
    Negative,
    /// Score between -0.25 and 0.25.
    Neutral,
    /// Score above 0.25.
    Positive,
}

/// NPS category of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::customers::listing::NpsCategory")]
pub enum NpsCategory {
    /// 9–10.
    Promoter,
    /// 7–8.
    Passive,
    /// 0–6.
    Detractor,
}

/// The measure a survey asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::SurveyKind")]
pub enum SurveyKind {
    /// Net Promoter Score: 0–10, "how likely are you to recommend us".
    Nps,
    /// Customer satisfaction: 1–5.
    Csat,
    /// Customer effort: 1–7 (higher is easier).
    Ces,
}
