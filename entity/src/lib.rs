//! Persistence model of cxgraph: one sea-orm entity per table, nothing else.
//!
//! The tables themselves are created by the `migration` crate (migrations are the
//! schema); these entities only describe them to the ORM. No GraphQL type lives here:
//! the API wraps these models in its own types so that database layout and API shape
//! can change apart and secret columns (password and token hashes) can never leak
//! through a derive.

pub mod enums;

pub mod alert;
pub mod api_token;
pub mod audit_entry;
pub mod conversation;
pub mod customer;
pub mod customer_identity;
pub mod customer_merge;
pub mod customer_merge_row;
pub mod feedback;
pub mod feedback_topic;
pub mod interaction;
pub mod interaction_topic;
pub mod journey;
pub mod journey_stage;
pub mod outbox_event;
pub mod refresh_token;
pub mod routing_rule;
pub mod sla_policy;
pub mod survey;
pub mod team;
pub mod topic;
pub mod touchpoint;
pub mod user;
pub mod webhook_delivery;
pub mod webhook_endpoint;

pub mod prelude {
    //! The entities under their table-like names, for `use entity::prelude::*`.
    pub use super::alert::Entity as Alert;
    pub use super::api_token::Entity as ApiToken;
    pub use super::audit_entry::Entity as AuditEntry;
    pub use super::conversation::Entity as Conversation;
    pub use super::customer::Entity as Customer;
    pub use super::customer_identity::Entity as CustomerIdentity;
    pub use super::customer_merge::Entity as CustomerMerge;
    pub use super::customer_merge_row::Entity as CustomerMergeRow;
    pub use super::feedback::Entity as Feedback;
    pub use super::feedback_topic::Entity as FeedbackTopic;
    pub use super::interaction::Entity as Interaction;
    pub use super::interaction_topic::Entity as InteractionTopic;
    pub use super::journey::Entity as Journey;
    pub use super::journey_stage::Entity as JourneyStage;
    pub use super::outbox_event::Entity as OutboxEvent;
    pub use super::refresh_token::Entity as RefreshToken;
    pub use super::routing_rule::Entity as RoutingRule;
    pub use super::sla_policy::Entity as SlaPolicy;
    pub use super::survey::Entity as Survey;
    pub use super::team::Entity as Team;
    pub use super::topic::Entity as Topic;
    pub use super::touchpoint::Entity as Touchpoint;
    pub use super::user::Entity as User;
    pub use super::webhook_delivery::Entity as WebhookDelivery;
    pub use super::webhook_endpoint::Entity as WebhookEndpoint;
}
