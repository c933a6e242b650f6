//! What a query costs: the complexity async-graphql computes at validation, with every
//! list that takes a page size counted as that many of its children (a field costs 1,
//! `customers(first: 50) { … }` costs 1 + 50 × the selection under it). The same figure
//! is checked against `MAX_COMPLEXITY` per query (by async-graphql's validation) and
//! charged to the caller's hourly budget (`auth::cost_budget`), so what a caller pays
//! follows what the server does.
//!
//! The charge is made before the query runs, from [`document_cost`]: the same rule
//! computed on the parsed document with the schema's own registry (which fields have
//! a page price comes from the `complexity` attribute on the field, not from a list
//! kept here). It is computed here rather than taken from async-graphql's validation
//! because async-graphql hands that figure only to an extension, and an extension on
//! the schema, whatever it does, makes async-graphql run every field of every answer
//! through its extension hooks (25 % of the server's time for a page of fifty
//! conversations). A test holds [`document_cost`] to async-graphql's complexity.

use std::collections::HashMap;
use std::sync::OnceLock;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::{MetaField, MetaTypeName, Registry};
use async_graphql::{Name, OutputType, SubscriptionType, Value, Variables};

use crate::pagination::DEFAULT_PAGE;

/// Largest page any list serves (events: 500; the others 100). A bigger request is
/// refused by its resolver, but is priced at this size so validation never overflows.
const PRICED_PAGE_CAP: usize = 500;

fn size(n: Option<i32>) -> usize {
    n.map_or(DEFAULT_PAGE as usize, |n| usize::try_from(n).unwrap_or(0).min(PRICED_PAGE_CAP))
}

/// Highest price of one field. Pages nest, so a price can grow past any integer
/// (500 × 500 × … seven deep overflowed `usize`, a panic in a debug build); capped
/// here, async-graphql's own sums of at most 5,000 admitted selections stay far from
/// overflowing too, and anything near the cap is refused by `MAX_COMPLEXITY` anyway.
pub const PRICE_CEILING: usize = 1 << 40;

/// A Relay connection paged by `first` or `last`.
pub fn page(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    size(first.or(last)).max(1).saturating_mul(child_complexity).saturating_add(1).min(PRICE_CEILING)
}

/// A list bounded by a required `first`.
pub fn list(first: i32, child_complexity: usize) -> usize {
    page(Some(first), None, child_complexity)
}

/// The schema's types and fields, as async-graphql registers them.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = Registry::default();
        super::QueryRoot::create_type_info(&mut registry);
        super::MutationRoot::create_type_info(&mut registry);
        super::SubscriptionRoot::create_type_info(&mut registry);
        registry
    })
}

/// The cost of every operation of `doc` (as async-graphql's validation sums them):
/// each field 1 plus what is selected under it, a field with a page price (a
/// `complexity` attribute, all of them [`page`] or [`list`] of their `first` and
/// `last`) its page size times what is under it, plus one. Fragments are priced where
/// they are spread, each (fragment, type) walked once.
pub fn document_cost(doc: &ExecutableDocument, variables: &Variables) -> usize {
    let roots = [
        (OperationType::Query, "Query"),
        (OperationType::Mutation, "Mutation"),
        (OperationType::Subscription, "Subscription"),
    ];
    let operations: Vec<_> = match &doc.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values().collect(),
    };
    let mut total = 0usize;
    for op in operations {
        let root = roots.iter().find(|(ty, _)| *ty == op.node.ty).map_or("Query", |(_, name)| *name);
        // Defaults by reference: a request's variables are never copied here (one may
        // be a megabyte list, and a document may hold many operations).
        let defaults: HashMap<&Name, &Value> = op
            .node
            .variable_definitions
            .iter()
            .filter_map(|d| Some((&d.node.name.node, &d.node.default_value.as_ref()?.node)))
            .collect();
        let mut pricer = Pricer {
            doc,
            variables,
            defaults,
            registry: registry(),
            fragments: HashMap::new(),
            open: Vec::new(),
            depth: 0,
        };
        total = total.saturating_add(pricer.set(root, &op.node.selection_set.node));
    }
    total
}

struct Pricer<'a> {
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    /// The operation's variable defaults, for variables the request leaves out.
    defaults: HashMap<&'a Name, &'a Value>,
    registry: &'a Registry,
    /// Prices of fragments already walked, by (fragment, type it was spread on).
    fragments: HashMap<(Name, String), usize>,
    /// Fragments being walked: a cycle (which validation refuses) adds nothing.
    open: Vec<Name>,
    /// Fields above the one being priced. Past [`DEEPEST`] nothing more is added: such a
    /// document is refused by validation (and its charge given back), and the walk
    /// must not exhaust the stack first.
    depth: usize,
}

/// Deepest field the pricer walks (the schema allows `MAX_DEPTH`).
const DEEPEST: usize = 64;

impl Pricer<'_> {
    fn set(&mut self, parent: &str, set: &SelectionSet) -> usize {
        let mut total = 0usize;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(field) => self.field(parent, &field.node),
                Selection::InlineFragment(f) => {
                    let on = f.node.type_condition.as_ref().map_or(parent, |c| c.node.on.node.as_str()).to_owned();
                    self.set(&on, &f.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => self.spread(parent, &spread.node.fragment_name.node),
            };
            total = total.saturating_add(cost);
        }
        total
    }

    fn spread(&mut self, parent: &str, name: &Name) -> usize {
        let Some(fragment) = self.doc.fragments.get(name) else {
            return 0;
        };
        let key = (name.clone(), parent.to_owned());
        if let Some(cost) = self.fragments.get(&key) {
            return *cost;
        }
        if self.open.contains(name) {
            return 0;
        }
        self.open.push(name.clone());
        let fragment: &FragmentDefinition = &fragment.node;
        let cost = self.set(fragment.type_condition.node.on.node.as_str(), &fragment.selection_set.node);
        self.open.pop();
        self.fragments.insert(key, cost);
        cost
    }

    fn field(&mut self, parent: &str, field: &Field) -> usize {
        if field.name.node == "__typename" || self.depth >= DEEPEST {
            // async-graphql prices the type name at nothing.
            return 0;
        }
        let meta: Option<&MetaField> = self
            .registry
            .types
            .get(parent)
            .and_then(|t| t.field_by_name(MetaTypeName::concrete_typename(field.name.node.as_str())));
        let child = meta.map_or("", |m| MetaTypeName::concrete_typename(&m.ty)).to_owned();
        self.depth += 1;
        let children = self.set(&child, &field.selection_set.node);
        self.depth -= 1;
        match meta {
            Some(m) if m.compute_complexity.is_some() => {
                page(self.int_argument(field, m, "first"), self.int_argument(field, m, "last"), children)
            }
            _ => children.saturating_add(1).min(PRICE_CEILING),
        }
    }

    /// An integer argument as given (literal or variable) or as defaulted.
    fn int_argument(&self, field: &Field, meta: &MetaField, name: &str) -> Option<i32> {
        let value = match field.get_argument(name) {
            Some(given) => given.node.clone().into_const_with(|var| {
                // Only a number can be a page size: nothing else is copied.
                let value = self.variables.get(&var).or_else(|| self.defaults.get(&var).copied());
                Ok::<_, std::convert::Infallible>(match value {
                    Some(Value::Number(n)) => Value::Number(n.clone()),
                    _ => Value::Null,
                })
            }),
            None => {
                let default = meta.args.get(name).and_then(|a| a.default_value.as_deref());
                Ok(default.and_then(|d| d.parse::<i64>().ok()).map_or(Value::Null, Value::from))
            }
        };
        match value {
            Ok(Value::Number(n)) => {
                n.as_i64().map(|n| i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
    use async_graphql::{Request, Schema, ServerError, ValidationResult};
    use serde_json::json;

    use super::*;
    use crate::graphql::{MutationRoot, QueryRoot, SubscriptionRoot};

    #[test]
    fn a_page_costs_its_size_in_children() {
        assert_eq!(page(Some(50), None, 4), 201);
        assert_eq!(page(None, Some(10), 4), 41);
        assert_eq!(page(None, None, 4), 1 + DEFAULT_PAGE as usize * 4);
        // Priced at the cap, however large the request; never free.
        assert_eq!(page(Some(i32::MAX), None, 2), 1001);
        assert_eq!(page(Some(-5), None, 2), 3);
        assert_eq!(list(20, 3), 61);
        // Nested pages saturate at the ceiling instead of overflowing.
        let mut price = 1;
        for _ in 0..10 {
            price = page(Some(500), None, price);
        }
        assert_eq!(price, PRICE_CEILING);
    }

    /// async-graphql's own complexity of a request, as its validation reports it to
    /// an extension.
    #[derive(Clone, Default)]
    struct Complexity(Arc<Mutex<Option<usize>>>);

    impl ExtensionFactory for Complexity {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(self.clone())
        }
    }

    #[async_trait::async_trait]
    impl Extension for Complexity {
        async fn validation(
            &self,
            ctx: &ExtensionContext<'_>,
            next: NextValidation<'_>,
        ) -> Result<ValidationResult, Vec<ServerError>> {
            let result = next.run(ctx).await?;
            *self.0.lock().unwrap() = Some(result.complexity);
            Ok(result)
        }
    }

    #[tokio::test]
    async fn the_price_is_async_graphqls_complexity() {
        let corpus = [
            (
                "query($id: ID!) { customer(id: $id) { id displayName segment createdAt identities { kind value verified } \
              interactions(first: 20) { edges { node { id channel direction body sentimentLabel occurredAt } } } \
              conversations(status: [OPEN, PENDING]) { id channel status priority firstResponseDueAt } \
              touchpoints(first: 10) { name outcome occurredAt } feedback(first: 10) { kind score comment occurredAt } \
              journeys { journeyName stageName reachedAt } } }",
                json!({ "id": "x" }),
            ),
            (
                "query($c: [Channel!]) { conversations(filter: {channels: $c, status: [OPEN]}, orderBy: DUE, first: 50) { \
              edges { node { id channel status priority subject due: firstResponseDueAt openedAt customerId } } } }",
                json!({}),
            ),
            ("{ conversations { edges { node { id } } pageInfo { hasNextPage } } }", json!({})),
            (
                "query($n: Int = 7) { customers(first: $n) { edges { node { id interactions(first: 3) { edges { node { id } } } } } } }",
                json!({}),
            ),
            ("query($n: Int = 7) { customers(first: $n) { totalCount } }", json!({ "n": 40 })),
            ("query($n: Int) { customers(last: $n) { edges { cursor } } }", json!({ "n": 2 })),
            (
                "{ events { nodes { id eventType } } e2: events(first: 3) { nodes { id } pageInfo { hasNextPage } } }",
                json!({}),
            ),
            (
                "query A { ...Me } query B { customers(first: 2) { edges { node { ...C } } } } \
              fragment Me on Query { me { id email } } fragment C on Customer { id displayName identities { value } }",
                json!({}),
            ),
            (
                "{ customers(first: 4) { edges { node { ... on Customer { id interactions(first: 2) { edges { node { id } } } } } } } }",
                json!({}),
            ),
            ("{ __typename me { __typename id } }", json!({})),
            ("{ __schema { types { name fields { name } } } }", json!({})),
            (
                "query($f: InsightRange!) { insights(range: $f, groupBy: [CHANNEL], bucket: WEEK) { cells { bucketStart channel \
              nps { promoters score { value sampleSize marginOfError lowSample } } } } }",
                json!({ "f": { "from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z" } }),
            ),
            ("mutation { ingestInteractions(inputs: []) { created duplicates rejected } }", json!({})),
            ("subscription { interactionReceived { id channel } }", json!({})),
        ];
        let capture = Complexity::default();
        let schema = Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot)
            .extension(capture.clone())
            .finish();
        for (query, variables) in corpus {
            *capture.0.lock().unwrap() = None;
            let variables = Variables::from_json(variables);
            let response = schema.execute(Request::new(query).variables(variables.clone())).await;
            let theirs =
                capture.0.lock().unwrap().unwrap_or_else(|| panic!("{query} did not validate: {:?}", response.errors));
            let doc = async_graphql::parser::parse_query(query).unwrap();
            assert_eq!(document_cost(&doc, &variables), theirs, "{query}");
        }
    }

    #[test]
    fn a_fragment_cycle_or_a_deep_fan_out_is_priced_in_linear_time() {
        let cycle = "{ me { ...A } } fragment A on User { id ...B } fragment B on User { email ...A }";
        let doc = async_graphql::parser::parse_query(cycle).unwrap();
        assert!(document_cost(&doc, &Variables::default()) > 0);
        // Thirty fragments each spreading the next twice: 2^30 fields if inlined.
        let mut fan = String::from("{ me { ...F0 } }");
        for i in 0..30 {
            fan.push_str(&format!(" fragment F{i} on User {{ id ...F{n} a{i}: email ...F{n} }}", n = i + 1));
        }
        fan.push_str(" fragment F30 on User { id }");
        let doc = async_graphql::parser::parse_query(&fan).unwrap();
        assert!(document_cost(&doc, &Variables::default()) > 1 << 30, "priced as inlined, without walking it so");
        // Fragments nesting each other past any depth are walked only so deep (the
        // parser bounds one selection's nesting; spreads are not bounded there).
        let mut deep = String::from("{ me { ...D0 } }");
        for i in 0..100 {
            deep.push_str(&format!(" fragment D{i} on User {{ a {{ b {{ c {{ ...D{} }} }} }} }}", i + 1));
        }
        deep.push_str(" fragment D100 on User { id }");
        let doc = async_graphql::parser::parse_query(&deep).unwrap();
        assert!(document_cost(&doc, &Variables::default()) <= DEEPEST + 1);
    }
}
