//! The audit log over GraphQL (admins).

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, InputObject, Json, Object, Result};
use chrono::{DateTime, Utc};
use entity::audit_entry;

use super::types::{context, id, parse_id};
use crate::audit::{self, AuditFilter as DomainFilter};
use crate::pagination::PageRequest;

/// Who did what to which record, when, from which request.
pub struct AuditEntry(audit_entry::Model);

#[Object]
impl AuditEntry {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// When.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// The user who did it.
    async fn actor_user_id(&self) -> Option<ID> {
        self.0.actor_user_id.map(id)
    }
    /// The API token that did it.
    async fn actor_token_id(&self) -> Option<ID> {
        self.0.actor_token_id.map(id)
    }
    /// The operation, e.g. `mergeCustomers`.
    async fn operation(&self) -> &str {
        &self.0.operation
    }
    /// Kind of record, e.g. `customer`.
    async fn target_type(&self) -> &str {
        &self.0.target_type
    }
    /// The record's id.
    async fn target_id(&self) -> Option<&str> {
        self.0.target_id.as_deref()
    }
    /// What changed: field names and counts, never values.
    async fn changes(&self) -> Json<serde_json::Value> {
        Json(self.0.changes.clone())
    }
    /// The request it came in (`x-request-id`).
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
}

/// Which entries to list. Every condition given must hold.
#[derive(InputObject, Default)]
pub struct AuditFilter {
    /// The operation, e.g. `eraseCustomer`.
    operation: Option<String>,
    /// Kind of record, e.g. `customer`.
    target_type: Option<String>,
    /// The record's id.
    target_id: Option<String>,
    /// Done by this user.
    actor_user_id: Option<ID>,
    /// Done with this token.
    actor_token_id: Option<ID>,
    /// In this request.
    request_id: Option<String>,
    /// At or after this time.
    from: Option<DateTime<Utc>>,
    /// Before this time.
    to: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit log, newest first (at most 100 per page).
    #[graphql(complexity = "super::cost::page(first, None, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, AuditEntry, EmptyFields, EmptyFields>> {
        let (state, _) = context(ctx)?;
        let f = filter.unwrap_or_default();
        let domain = DomainFilter {
            operation: f.operation,
            target_type: f.target_type,
            target_id: f.target_id,
            actor_user_id: f.actor_user_id.map(|i| parse_id(&i, &["filter", "actorUserId"])).transpose()?,
            actor_token_id: f.actor_token_id.map(|i| parse_id(&i, &["filter", "actorTokenId"])).transpose()?,
            request_id: f.request_id,
            from: f.from,
            to: f.to,
        };
        let page = PageRequest { first: first.map(|n| u64::try_from(n).unwrap_or(0)), after, last: None, before: None };
        let result = audit::list(state.db(), &domain, &page).await?;
        let mut connection = Connection::new(result.has_previous_page, result.has_next_page);
        connection.edges.extend(result.rows.into_iter().map(|(c, e)| Edge::new(c.encode(), AuditEntry(e))));
        Ok(connection)
    }
}
