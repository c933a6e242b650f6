//! The GraphQL layer: schema assembly, per-area resolvers, access control and limits.
//!
//! Resolvers are thin: they take the principal and state from the context, turn input
//! into domain values, call one service function and wrap the result in a GraphQL
//! type. Each area (sessions now; customers, conversations, journeys, feedback,
//! insights later) contributes a query and a mutation object merged here.

mod access;
mod alerts;
mod audit;
mod config;
mod conversations;
mod cost;
mod customer;
pub mod document;
pub mod enums;
mod events;
mod facts;
mod feedback;
mod input_text;
mod insights;
pub mod interactions;
mod journeys;
pub mod loaders;
pub mod persisted;
mod privacy;
mod session;
mod staff;
mod subscriptions;
mod tokens;
pub mod types;
mod webhooks;

use async_graphql::{MergedObject, SDLExportOptions, Schema, SchemaBuilder};

pub use subscriptions::SubscriptionRoot;

use crate::state::AppState;

pub use access::{Gate, Guarded, OperationSlot};

/// Every query field, by area.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    session::SessionQuery,
    customer::CustomerQuery,
    privacy::PrivacyQuery,
    conversations::ConversationQuery,
    config::ConfigQuery,
    alerts::AlertQuery,
    tokens::TokenQuery,
    audit::AuditQuery,
    events::EventQuery,
    webhooks::WebhookQuery,
    journeys::JourneyQuery,
    feedback::FeedbackQuery,
    insights::InsightQuery,
);

/// Every mutation field, by area.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    session::SessionMutation,
    customer::CustomerMutation,
    privacy::PrivacyMutation,
    interactions::InteractionMutation,
    conversations::ConversationMutation,
    config::ConfigMutation,
    alerts::AlertMutation,
    tokens::TokenMutation,
    staff::StaffMutation,
    webhooks::WebhookMutation,
    journeys::JourneyMutation,
    feedback::FeedbackMutation,
);

/// The schema: the roots guarded by their access policies (see `access`).
pub type AppSchema = Schema<Guarded<QueryRoot>, Guarded<MutationRoot>, SubscriptionRoot>;

/// Query depth limit: deep enough for the customer 360, shallow enough to stop abuse.
pub const MAX_DEPTH: usize = 15;
/// Cost limit of one query (see `cost`: a field costs 1, a page of N costs N times
/// its selection). The widest legitimate read we test, fifty customers with their
/// whole 360, fits; a page of a hundred customers each with a hundred interactions
/// costs over 50,000 and is refused.
pub const MAX_COMPLEXITY: usize = 50_000;

fn builder() -> SchemaBuilder<Guarded<QueryRoot>, Guarded<MutationRoot>, SubscriptionRoot> {
    // No extension at all (see `access` for what one costs per field). Not
    // `async_graphql::extensions::Tracing` either: it records the query text on its
    // spans, and a password written inline in a `login` would be exported with it. The
    // HTTP request span names the operation instead.
    Schema::build(Guarded::default(), Guarded::default(), SubscriptionRoot)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(document::MAX_INLINED_DEPTH)
        .limit_directives(20)
}

/// The schema served by the application.
pub fn build_schema(state: AppState) -> AppSchema {
    let (introspection, suggestions) = (state.settings().introspection(), state.settings().suggestions());
    let mut builder = builder().data(state);
    if !introspection {
        builder = builder.disable_introspection();
    }
    if !suggestions {
        builder = builder.disable_suggestions();
    }
    builder.finish()
}

/// The schema without application state: enough for SDL and introspection.
pub fn build_schema_for_introspection() -> AppSchema {
    builder().finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_enum_items())
}
