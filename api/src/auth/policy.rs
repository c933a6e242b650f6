//! The role/scope matrix: the single source of truth for who may call what.
//!
//! Every root field of the schema (query, mutation, subscription) has one entry in
//! [`ROOT_FIELDS`]. The GraphQL layer looks the entry up before a root field runs and
//! refuses a field that has none: **deny by default**, so a new field without a policy
//! is unreachable, and a test walking the schema fails until the table names it.
//! The same [`Policy`] type is a guard for nested fields.

use entity::enums::Role;

use super::{AuthFailure, Principal, Scope};
use crate::error::AppError;

/// Who may use one field: anybody, or users with one of `roles`, or tokens holding
/// one of `scopes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub public: bool,
    pub roles: &'static [Role],
    pub scopes: &'static [Scope],
}

/// Every staff role.
pub const STAFF: &[Role] = &[Role::Admin, Role::Manager, Role::Agent, Role::Analyst];

impl Policy {
    /// No credential needed (log-in, refresh).
    pub const PUBLIC: Policy = Policy { public: true, roles: &[], scopes: &[] };

    /// Users with one of these roles; no token.
    pub const fn roles(roles: &'static [Role]) -> Policy {
        Policy { public: false, roles, scopes: &[] }
    }

    /// Users with one of these roles, or tokens with one of these scopes.
    pub const fn roles_or_scopes(roles: &'static [Role], scopes: &'static [Scope]) -> Policy {
        Policy { public: false, roles, scopes }
    }

    /// Decides for one principal: `UNAUTHENTICATED` when there is no (valid) credential,
    /// `FORBIDDEN` when the credential lacks the role or scope.
    pub fn check(&self, principal: &Principal) -> Result<(), AppError> {
        if self.public {
            return Ok(());
        }
        let allowed = match principal {
            Principal::Anonymous(Some(AuthFailure::Unchecked)) => {
                return Err(AppError::internal(anyhow::anyhow!("the caller's credentials could not be checked")));
            }
            Principal::Anonymous(failure) => {
                let msg = failure.map_or("authentication required", |f| f.message());
                return Err(AppError::unauthenticated(msg));
            }
            Principal::User(user) => self.roles.contains(&user.role),
            Principal::Token(_) => self.scopes.iter().any(|s| principal.has_scope(*s)),
        };
        if allowed { Ok(()) } else { Err(AppError::forbidden("not allowed for this role or token")) }
    }
}

/// Staff who work with customers (everyone but analysts).
pub const OPERATORS: &[Role] = &[Role::Admin, Role::Manager, Role::Agent];

/// Reading customers: all staff (analysts see personal data masked), tokens with
/// `customers:read`.
pub const READ_CUSTOMERS: Policy = Policy::roles_or_scopes(STAFF, &[Scope::CustomersRead]);
/// Writing customers: operators, tokens with `customers:write`.
pub const WRITE_CUSTOMERS: Policy = Policy::roles_or_scopes(OPERATORS, &[Scope::CustomersWrite]);

/// Recording interactions: operators, tokens with `interactions:write`.
pub const WRITE_INTERACTIONS: Policy = Policy::roles_or_scopes(OPERATORS, &[Scope::InteractionsWrite]);

/// Reading conversations and interactions: all staff (analysts without bodies), tokens
/// with `interactions:read`.
pub const READ_INTERACTIONS: Policy = Policy::roles_or_scopes(STAFF, &[Scope::InteractionsRead]);
/// Working conversations (reply, assign, resolve): operators only.
pub const WORK_CONVERSATIONS: Policy = Policy::roles(OPERATORS);

/// Service configuration (SLA, routing, journeys, topics): admins and managers.
pub const CONFIGURE: Policy = Policy::roles(&[Role::Admin, Role::Manager]);

/// Recording touchpoints: operators, tokens with `touchpoints:write`.
pub const WRITE_TOUCHPOINTS: Policy = Policy::roles_or_scopes(OPERATORS, &[Scope::TouchpointsWrite]);
/// Submitting feedback: operators, tokens with `feedback:write`.
pub const WRITE_FEEDBACK: Policy = Policy::roles_or_scopes(OPERATORS, &[Scope::FeedbackWrite]);
/// Reading configuration others need to write facts (journeys, surveys, topics): all
/// staff, and tokens that write touchpoints or feedback or read insights.
pub const READ_CATALOGUE: Policy =
    Policy::roles_or_scopes(STAFF, &[Scope::TouchpointsWrite, Scope::FeedbackWrite, Scope::InsightsRead]);
/// Insights: admins, managers and analysts (agents read alerts only), tokens with
/// `insights:read`.
pub const READ_INSIGHTS: Policy =
    Policy::roles_or_scopes(&[Role::Admin, Role::Manager, Role::Analyst], &[Scope::InsightsRead]);

/// Bulk export over HTTP: admins, managers and analysts, tokens with `export`.
pub const EXPORT: Policy = Policy::roles_or_scopes(&[Role::Admin, Role::Manager, Role::Analyst], &[Scope::Export]);

/// Reading alerts: all staff, tokens with `insights:read`.
pub const READ_ALERTS: Policy = Policy::roles_or_scopes(STAFF, &[Scope::InsightsRead]);

/// The policy of every root field, as `(parent type, field, policy)`.
pub const ROOT_FIELDS: &[(&str, &str, Policy)] = &[
    ("Query", "me", Policy::roles(STAFF)),
    ("Query", "customer", READ_CUSTOMERS),
    ("Query", "customerByIdentity", READ_CUSTOMERS),
    ("Query", "customers", READ_CUSTOMERS),
    ("Mutation", "createCustomer", WRITE_CUSTOMERS),
    ("Mutation", "updateCustomer", WRITE_CUSTOMERS),
    ("Mutation", "linkIdentity", WRITE_CUSTOMERS),
    ("Mutation", "unlinkIdentity", WRITE_CUSTOMERS),
    ("Mutation", "resolveCustomer", WRITE_CUSTOMERS),
    ("Query", "customerMerges", READ_CUSTOMERS),
    ("Mutation", "mergeCustomers", Policy::roles(&[Role::Admin, Role::Manager])),
    ("Mutation", "unmergeCustomers", Policy::roles(&[Role::Admin, Role::Manager])),
    ("Query", "exportCustomerData", Policy::roles(&[Role::Admin])),
    ("Mutation", "eraseCustomer", Policy::roles(&[Role::Admin])),
    ("Mutation", "recordInteraction", WRITE_INTERACTIONS),
    ("Mutation", "ingestInteractions", WRITE_INTERACTIONS),
    ("Query", "conversation", READ_INTERACTIONS),
    ("Query", "conversations", READ_INTERACTIONS),
    ("Query", "interactions", READ_INTERACTIONS),
    ("Mutation", "replyToConversation", WORK_CONVERSATIONS),
    ("Mutation", "assignConversation", WORK_CONVERSATIONS),
    ("Mutation", "setConversationPriority", WORK_CONVERSATIONS),
    ("Mutation", "setConversationStatus", WORK_CONVERSATIONS),
    ("Mutation", "resolveConversation", WORK_CONVERSATIONS),
    ("Mutation", "reopenConversation", WORK_CONVERSATIONS),
    ("Mutation", "tagConversation", WORK_CONVERSATIONS),
    ("Query", "routingRules", CONFIGURE),
    ("Query", "slaPolicies", CONFIGURE),
    ("Mutation", "saveRoutingRule", CONFIGURE),
    ("Mutation", "deleteRoutingRule", CONFIGURE),
    ("Mutation", "saveSlaPolicy", CONFIGURE),
    ("Query", "alerts", READ_ALERTS),
    ("Mutation", "acknowledgeAlert", WORK_CONVERSATIONS),
    ("Subscription", "interactionReceived", READ_INTERACTIONS),
    ("Subscription", "conversationUpdated", READ_INTERACTIONS),
    ("Subscription", "slaAlert", READ_ALERTS),
    ("Subscription", "alertRaised", READ_ALERTS),
    ("Mutation", "resolveAlert", WORK_CONVERSATIONS),
    ("Query", "apiTokens", Policy::roles(&[Role::Admin])),
    ("Mutation", "createApiToken", Policy::roles(&[Role::Admin])),
    ("Mutation", "revokeApiToken", Policy::roles(&[Role::Admin])),
    ("Mutation", "changeUserAccess", Policy::roles(&[Role::Admin])),
    ("Query", "auditLog", Policy::roles(&[Role::Admin])),
    ("Query", "webhookEndpoints", Policy::roles(&[Role::Admin])),
    ("Query", "webhookDeliveries", Policy::roles(&[Role::Admin])),
    ("Mutation", "createWebhookEndpoint", Policy::roles(&[Role::Admin])),
    ("Mutation", "redeliverWebhook", Policy::roles(&[Role::Admin])),
    (
        "Query",
        "events",
        Policy::roles_or_scopes(STAFF, &[Scope::CustomersRead, Scope::InteractionsRead, Scope::InsightsRead]),
    ),
    ("Query", "journeys", READ_CATALOGUE),
    ("Query", "surveys", READ_CATALOGUE),
    ("Query", "topics", READ_CATALOGUE),
    ("Mutation", "saveJourney", CONFIGURE),
    ("Mutation", "deleteJourney", CONFIGURE),
    ("Mutation", "saveSurvey", CONFIGURE),
    ("Mutation", "saveTopic", CONFIGURE),
    ("Mutation", "deleteTopic", CONFIGURE),
    ("Mutation", "recordTouchpoint", WRITE_TOUCHPOINTS),
    ("Mutation", "recordTouchpoints", WRITE_TOUCHPOINTS),
    ("Mutation", "submitFeedback", WRITE_FEEDBACK),
    ("Mutation", "ingestFeedback", WRITE_FEEDBACK),
    ("Query", "insights", READ_INSIGHTS),
    ("Query", "channelComparison", READ_INSIGHTS),
    ("Query", "topicDrivers", READ_INSIGHTS),
    ("Query", "brandComparison", READ_INSIGHTS),
    ("Query", "journeyFunnel", READ_INSIGHTS),
    ("Mutation", "login", Policy::PUBLIC),
    ("Mutation", "refreshToken", Policy::PUBLIC),
    ("Mutation", "logout", Policy::roles(STAFF)),
];

/// The policy of a root field, if it has one.
pub fn root_policy(parent_type: &str, field: &str) -> Option<Policy> {
    ROOT_FIELDS.iter().find(|(parent, name, _)| *parent == parent_type && *name == field).map(|(_, _, policy)| *policy)
}

impl async_graphql::Guard for Policy {
    async fn check(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<()> {
        let anonymous = Principal::Anonymous(None);
        let principal = ctx.data_opt::<Principal>().unwrap_or(&anonymous);
        Policy::check(self, principal).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    //! The decision table: every root field × every kind of caller → allowed, denied
    //! (`FORBIDDEN`) or unauthenticated. The list of fields comes from the schema, so a
    //! new field without a row here (or without a policy) fails.

    use std::collections::BTreeSet;

    use super::*;
    use crate::auth::AuthFailure;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum D {
        Allow,
        Forbidden,
        Unauthenticated,
    }
    use D::{Allow as A, Forbidden as F, Unauthenticated as U};

    /// Callers, in column order.
    fn callers() -> Vec<(&'static str, Principal)> {
        let (user, token) = (Principal::test_user, Principal::test_token);
        vec![
            ("anonymous", Principal::Anonymous(None)),
            ("expired token", Principal::Anonymous(Some(AuthFailure::Expired))),
            ("admin", user(Role::Admin)),
            ("manager", user(Role::Manager)),
            ("agent", user(Role::Agent)),
            ("analyst", user(Role::Analyst)),
            ("token, no scopes", token(&[])),
            ("token, every scope", token(&Scope::ALL)),
        ]
    }

    /// Expected decisions, one row per root field, columns as in `callers()`.
    const EXPECTED: &[(&str, &str, [D; 8])] = &[
        ("Query", "me", [U, U, A, A, A, A, F, F]),
        ("Mutation", "login", [A, A, A, A, A, A, A, A]),
        ("Mutation", "refreshToken", [A, A, A, A, A, A, A, A]),
        ("Mutation", "logout", [U, U, A, A, A, A, F, F]),
        ("Query", "customer", [U, U, A, A, A, A, F, A]),
        ("Query", "customerByIdentity", [U, U, A, A, A, A, F, A]),
        ("Query", "customers", [U, U, A, A, A, A, F, A]),
        ("Mutation", "createCustomer", [U, U, A, A, A, F, F, A]),
        ("Mutation", "updateCustomer", [U, U, A, A, A, F, F, A]),
        ("Mutation", "linkIdentity", [U, U, A, A, A, F, F, A]),
        ("Mutation", "unlinkIdentity", [U, U, A, A, A, F, F, A]),
        ("Mutation", "resolveCustomer", [U, U, A, A, A, F, F, A]),
        ("Query", "customerMerges", [U, U, A, A, A, A, F, A]),
        ("Mutation", "mergeCustomers", [U, U, A, A, F, F, F, F]),
        ("Mutation", "unmergeCustomers", [U, U, A, A, F, F, F, F]),
        ("Query", "exportCustomerData", [U, U, A, F, F, F, F, F]),
        ("Mutation", "eraseCustomer", [U, U, A, F, F, F, F, F]),
        ("Mutation", "recordInteraction", [U, U, A, A, A, F, F, A]),
        ("Mutation", "ingestInteractions", [U, U, A, A, A, F, F, A]),
        ("Query", "conversation", [U, U, A, A, A, A, F, A]),
        ("Query", "conversations", [U, U, A, A, A, A, F, A]),
        ("Query", "interactions", [U, U, A, A, A, A, F, A]),
        ("Mutation", "replyToConversation", [U, U, A, A, A, F, F, F]),
        ("Mutation", "assignConversation", [U, U, A, A, A, F, F, F]),
        ("Mutation", "setConversationPriority", [U, U, A, A, A, F, F, F]),
        ("Mutation", "setConversationStatus", [U, U, A, A, A, F, F, F]),
        ("Mutation", "resolveConversation", [U, U, A, A, A, F, F, F]),
        ("Mutation", "reopenConversation", [U, U, A, A, A, F, F, F]),
        ("Mutation", "tagConversation", [U, U, A, A, A, F, F, F]),
        ("Query", "routingRules", [U, U, A, A, F, F, F, F]),
        ("Query", "slaPolicies", [U, U, A, A, F, F, F, F]),
        ("Mutation", "saveRoutingRule", [U, U, A, A, F, F, F, F]),
        ("Mutation", "deleteRoutingRule", [U, U, A, A, F, F, F, F]),
        ("Mutation", "saveSlaPolicy", [U, U, A, A, F, F, F, F]),
        ("Query", "alerts", [U, U, A, A, A, A, F, A]),
        ("Mutation", "acknowledgeAlert", [U, U, A, A, A, F, F, F]),
        ("Subscription", "interactionReceived", [U, U, A, A, A, A, F, A]),
        ("Subscription", "conversationUpdated", [U, U, A, A, A, A, F, A]),
        ("Subscription", "slaAlert", [U, U, A, A, A, A, F, A]),
        ("Subscription", "alertRaised", [U, U, A, A, A, A, F, A]),
        ("Mutation", "resolveAlert", [U, U, A, A, A, F, F, F]),
        ("Query", "apiTokens", [U, U, A, F, F, F, F, F]),
        ("Mutation", "createApiToken", [U, U, A, F, F, F, F, F]),
        ("Mutation", "revokeApiToken", [U, U, A, F, F, F, F, F]),
        ("Mutation", "changeUserAccess", [U, U, A, F, F, F, F, F]),
        ("Query", "auditLog", [U, U, A, F, F, F, F, F]),
        ("Query", "webhookEndpoints", [U, U, A, F, F, F, F, F]),
        ("Query", "webhookDeliveries", [U, U, A, F, F, F, F, F]),
        ("Mutation", "createWebhookEndpoint", [U, U, A, F, F, F, F, F]),
        ("Mutation", "redeliverWebhook", [U, U, A, F, F, F, F, F]),
        ("Query", "events", [U, U, A, A, A, A, F, A]),
        ("Query", "journeys", [U, U, A, A, A, A, F, A]),
        ("Query", "surveys", [U, U, A, A, A, A, F, A]),
        ("Query", "topics", [U, U, A, A, A, A, F, A]),
        ("Mutation", "saveJourney", [U, U, A, A, F, F, F, F]),
        ("Mutation", "deleteJourney", [U, U, A, A, F, F, F, F]),
        ("Mutation", "saveSurvey", [U, U, A, A, F, F, F, F]),
        ("Mutation", "saveTopic", [U, U, A, A, F, F, F, F]),
        ("Mutation", "deleteTopic", [U, U, A, A, F, F, F, F]),
        ("Mutation", "recordTouchpoint", [U, U, A, A, A, F, F, A]),
        ("Mutation", "recordTouchpoints", [U, U, A, A, A, F, F, A]),
        ("Mutation", "submitFeedback", [U, U, A, A, A, F, F, A]),
        ("Mutation", "ingestFeedback", [U, U, A, A, A, F, F, A]),
        ("Query", "insights", [U, U, A, A, F, A, F, A]),
        ("Query", "channelComparison", [U, U, A, A, F, A, F, A]),
        ("Query", "topicDrivers", [U, U, A, A, F, A, F, A]),
        ("Query", "brandComparison", [U, U, A, A, F, A, F, A]),
        ("Query", "journeyFunnel", [U, U, A, A, F, A, F, A]),
    ];

    fn decide(policy: Policy, principal: &Principal) -> D {
        match policy.check(principal) {
            Ok(()) => D::Allow,
            Err(AppError::Forbidden(_)) => D::Forbidden,
            Err(AppError::Unauthenticated(_)) => D::Unauthenticated,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    async fn schema_root_fields() -> BTreeSet<(String, String)> {
        let schema = crate::graphql::build_schema_for_introspection();
        let resp = schema
            .execute(
                "{ __schema { queryType { name fields { name } } mutationType { name fields { name } } \
                 subscriptionType { name fields { name } } } }",
            )
            .await;
        let json = resp.data.into_json().unwrap_or_default();
        let mut out = BTreeSet::new();
        for kind in ["queryType", "mutationType", "subscriptionType"] {
            let ty = &json["__schema"][kind];
            for f in ty["fields"].as_array().into_iter().flatten() {
                out.insert((
                    ty["name"].as_str().unwrap_or_default().to_owned(),
                    f["name"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        out
    }

    #[tokio::test]
    async fn every_root_field_has_a_policy_and_a_row() {
        let fields = schema_root_fields().await;
        assert!(!fields.is_empty());
        for (parent, name) in &fields {
            assert!(root_policy(parent, name).is_some(), "{parent}.{name} has no policy in ROOT_FIELDS");
            assert!(
                EXPECTED.iter().any(|(p, n, _)| p == parent && n == name),
                "{parent}.{name} has no row in the decision table"
            );
        }
        for (parent, name, _) in ROOT_FIELDS {
            assert!(
                fields.contains(&((*parent).to_owned(), (*name).to_owned())),
                "policy for missing field {parent}.{name}"
            );
        }
    }

    #[test]
    fn decisions_match_the_table() {
        let callers = callers();
        for (parent, name, row) in EXPECTED {
            let policy = root_policy(parent, name).unwrap_or_else(|| panic!("no policy for {parent}.{name}"));
            for ((caller, principal), expected) in callers.iter().zip(row) {
                assert_eq!(decide(policy, principal), *expected, "{parent}.{name} for {caller}");
            }
        }
    }

    /// The HTTP routes outside GraphQL, decided by the same policies.
    const HTTP_EXPECTED: &[(&str, Policy, [D; 8])] = &[
        ("GET /export/{dataset}", EXPORT, [U, U, A, A, F, A, F, A]),
        ("POST /ingest/interactions", WRITE_INTERACTIONS, [U, U, A, A, A, F, F, A]),
    ];

    #[test]
    fn http_routes_follow_the_matrix() {
        let callers = callers();
        for (route, policy, row) in HTTP_EXPECTED {
            for ((caller, principal), expected) in callers.iter().zip(row) {
                assert_eq!(decide(*policy, principal), *expected, "{route} for {caller}");
            }
        }
    }

    #[test]
    fn a_field_without_a_policy_is_denied() {
        assert!(root_policy("Query", "somethingNew").is_none());
    }
}
