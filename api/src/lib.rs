//! cxgraph: a GraphQL API for customer experience.
//!
//! Layers, top to bottom: [`http`] (axum routes and tower layers) → [`graphql`] (thin
//! resolvers, access control, limits) → domain services ([`auth`], [`users`], and the
//! customer, conversation, journey, feedback and insight areas as they land) → the
//! `entity` crate → the `migration` crate. Services take a connection and a principal
//! and return [`error::AppError`]; they know nothing of GraphQL.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod config;
pub mod customers;
pub mod dataset;
pub mod db;
pub mod error;
pub mod events;
pub mod export;
pub mod feedback;
pub mod graphql;
pub mod http;
pub mod insights;
pub mod interactions;
pub mod jobs;
pub mod journeys;
pub mod metrics;
pub mod pagination;
pub mod sentiment;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod users;
