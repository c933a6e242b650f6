//! End-to-end tests over HTTP against the real server, on SQLite and PostgreSQL.
//! One test binary (one link) with a module per area.

mod alerts;
mod auth;
mod brands;
mod browser;
mod customers;
mod export;
mod feedback;
mod hostile;
mod http;
mod insights;
mod interactions;
mod journeys;
mod migrations;
mod outage;
mod privacy;
mod revocation;
mod side_doors;
mod startup;
mod subscriptions;
mod tokens;
mod webhooks;
