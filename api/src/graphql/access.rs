//! Access control and error hygiene for every GraphQL request, as one extension.
//!
//! - Before a root field runs, its policy from `auth::policy::ROOT_FIELDS` is checked
//!   against the request's principal; a field with no policy is refused (deny by
//!   default).
//! - A document of more than `MAX_TOKENS` tokens is refused before it is parsed; a
//!   document parsed before is not parsed again (see `ParsedDocuments`).
//! - Parse and validation errors get stable codes (`GRAPHQL_PARSE_FAILED`,
//!   `GRAPHQL_VALIDATION_FAILED`).
//! - An argument or variable async-graphql cannot parse as its type is
//!   `BAD_USER_INPUT`.
//! - In persisted-query allow-list mode, a document not in the manifest is refused
//!   (`PERSISTED_QUERY_REQUIRED`) before it is parsed, on HTTP and WebSocket alike.
//! - Once validated, the query's cost (its complexity, see `cost`) is charged to the
//!   caller's hourly budget; the answer carries `extensions.cost`, and a query that
//!   does not fit is refused with `RATE_LIMITED` before anything runs.
//! - Any error that still has no `extensions.code` at the end did not come through
//!   `AppError`; it is logged and masked as `INTERNAL`, so no unexpected message (SQL
//!   text, a library's internals) ever reaches a client.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextResolve, NextValidation,
    ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{
    ErrorExtensions, PathSegment, Response, ServerError, ServerResult, ValidationResult, Value, Variables,
};

use crate::auth::Principal;
use crate::auth::cost_budget::CostReport;
use crate::auth::policy::root_policy;
use crate::error::AppError;
use crate::state::AppState;

/// The operations of a request's document, filled in once it parses, so the HTTP
/// layer can name the operation in its span and metrics.
#[derive(Debug, Default)]
pub struct OperationSlot(std::sync::Mutex<Vec<(Option<String>, &'static str)>>);

impl OperationSlot {
    /// (type, name) of the operation that ran: the one named by `wanted`, or the only
    /// one; `("unknown", "")` when the document did not parse.
    pub fn selected(&self, wanted: Option<&str>) -> (&'static str, String) {
        let ops = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let op = match wanted {
            Some(w) => ops.iter().find(|(n, _)| n.as_deref() == Some(w)),
            None => ops.first(),
        };
        match op {
            Some((name, kind)) => (kind, name.clone().unwrap_or_else(|| "anonymous".to_owned())),
            None => ("unknown", String::new()),
        }
    }
}

/// Installs the extension on a schema.
#[derive(Default)]
pub struct AccessControl {
    parsed: Arc<ParsedDocuments>,
}

impl ExtensionFactory for AccessControl {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AccessControlExtension { cost: Default::default(), parsed: Arc::clone(&self.parsed) })
    }
}

/// One per request (or subscription).
struct AccessControlExtension {
    /// What the query was charged, for `extensions.cost`.
    cost: std::sync::Mutex<Option<CostReport>>,
    parsed: Arc<ParsedDocuments>,
}

/// Documents parsed before, by their text: clients send the same few queries over and
/// over, and parsing one (a 600-character customer 360) cost a tenth of the server's
/// time for the request. A document is the same whatever its variables, so a copy of
/// the parse is the parse. Bounded: past [`PARSED_MAX`] documents the memo starts
/// afresh, and only documents up to [`PARSED_MAX_LEN`] bytes are kept.
#[derive(Default)]
struct ParsedDocuments(std::sync::Mutex<std::collections::HashMap<String, ExecutableDocument>>);

/// At most this many documents are kept (worst case a few MiB: each at most
/// [`PARSED_MAX_LEN`] bytes of text and its syntax tree).
const PARSED_MAX: usize = 128;
const PARSED_MAX_LEN: usize = 4 * 1024;

impl ParsedDocuments {
    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(query).cloned()
    }

    fn keep(&self, query: &str, doc: &ExecutableDocument) {
        if query.len() > PARSED_MAX_LEN {
            return;
        }
        let mut docs = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if docs.len() >= PARSED_MAX {
            docs.clear();
        }
        docs.insert(query.to_owned(), doc.clone());
    }
}

impl AccessControlExtension {
    /// Charges the validated query to the caller's budget; refuses it when it does not
    /// fit.
    fn charge(&self, ctx: &ExtensionContext<'_>, complexity: usize) -> Result<(), Vec<ServerError>> {
        let (Some(state), Some(principal)) = (ctx.data_opt::<AppState>(), ctx.data_opt::<Principal>()) else {
            return Ok(());
        };
        let Some(charged) = state.cost_budget().charge(principal, complexity as u64) else {
            return Ok(());
        };
        let report = match &charged {
            Ok(r) | Err(r) => r.clone(),
        };
        *self.cost.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
        if charged.is_ok() {
            return Ok(());
        }
        let mut error = ServerError::new(
            format!(
                "query cost budget exhausted: this query costs {}, {} of {} points remain until {}",
                report.cost,
                report.remaining,
                report.limit,
                report.reset_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None,
        );
        let ext = error.extensions.get_or_insert_with(Default::default);
        ext.set("code", "RATE_LIMITED");
        ext.set("retryAfterSeconds", report.retry_after_secs());
        Err(vec![error])
    }
}

/// `extensions.cost` of an answer: GitHub's `rateLimit`, in the answer itself.
fn cost_value(report: &CostReport) -> Value {
    let mut map = async_graphql::indexmap::IndexMap::new();
    map.insert(async_graphql::Name::new("requestedQueryCost"), Value::from(report.cost));
    map.insert(async_graphql::Name::new("limit"), Value::from(report.limit));
    map.insert(async_graphql::Name::new("remaining"), Value::from(report.remaining));
    map.insert(
        async_graphql::Name::new("resetAt"),
        Value::from(report.reset_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    Value::Object(map)
}

/// Most aliases one document may use (alias floods multiply the work of one field).
pub const MAX_ALIASES: usize = 30;
/// Most fields at the root of one operation.
pub const MAX_ROOT_FIELDS: usize = 15;

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node),
            Selection::InlineFragment(i) => count_aliases(&i.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Most lexical tokens one document may hold (counted before parsing, so a huge
/// document costs a scan, not a syntax tree).
pub const MAX_TOKENS: usize = 10_000;

/// Counts a document's tokens: names and numbers, punctuators (`...` as one), string
/// literals (block strings too); whitespace, commas and comments are not tokens.
/// Stops counting past `MAX_TOKENS`.
fn count_tokens(query: &str) -> usize {
    let bytes = query.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() && n <= MAX_TOKENS {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' | 0xEF | 0xBB | 0xBF => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 3;
                n += 1;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                n += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                i += 3;
                n += 1;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.' | b'-' | b'+'))
                {
                    i += 1;
                }
                n += 1;
            }
            _ => {
                i += 1;
                n += 1;
            }
        }
    }
    n
}

/// Refuses documents with too many aliases or root fields, before validation runs.
fn check_shape(doc: &ExecutableDocument) -> ServerResult<()> {
    let aliases: usize = doc.operations.iter().map(|(_, op)| count_aliases(&op.node.selection_set.node)).sum::<usize>()
        + doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum::<usize>();
    let too_wide = doc.operations.iter().any(|(_, op)| op.node.selection_set.node.items.len() > MAX_ROOT_FIELDS);
    let message = if aliases > MAX_ALIASES {
        format!("the document uses {aliases} aliases; at most {MAX_ALIASES} are allowed")
    } else if too_wide {
        format!("an operation selects more than {MAX_ROOT_FIELDS} root fields")
    } else {
        return Ok(());
    };
    let mut errors = with_code(vec![ServerError::new(message, None)], "GRAPHQL_VALIDATION_FAILED");
    Err(errors.remove(0))
}

fn with_code(mut errors: Vec<ServerError>, code: &str) -> Vec<ServerError> {
    for e in &mut errors {
        e.extensions.get_or_insert_with(Default::default).set("code", code);
    }
    errors
}

/// Whether an uncoded error is async-graphql refusing an input value (its
/// `InputValueError` messages), e.g. a malformed `DateTime` in a variable.
fn is_argument_error(message: &str) -> bool {
    message.starts_with("Failed to parse \"")
        || message.starts_with("Expected input type \"")
        || message.contains("(occurred while parsing \"")
}

fn has_code(e: &ServerError) -> bool {
    e.extensions.as_ref().is_some_and(|ext| ext.get("code").is_some())
}

#[async_trait::async_trait]
impl Extension for AccessControlExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        if let Some(report) = self.cost.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
            response.extensions.insert("cost".into(), cost_value(report));
        }
        for e in &mut response.errors {
            if !has_code(e) && is_argument_error(&e.message) {
                // An argument or variable that does not parse as its type: the
                // message names the type, not our internals.
                e.extensions.get_or_insert_with(Default::default).set("code", "BAD_USER_INPUT");
            } else if !has_code(e) {
                tracing::error!(message = %e.message, path = ?e.path, "uncoded GraphQL error masked");
                e.message = "internal error".into();
                e.extensions.get_or_insert_with(Default::default).set("code", "INTERNAL");
            }
        }
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(state) = ctx.data_opt::<AppState>()
            && !state.persisted().admits(query)
        {
            return Err(super::persisted::refused());
        }
        if count_tokens(query) > MAX_TOKENS {
            let message = format!("the document has more than {MAX_TOKENS} tokens");
            return Err(with_code(vec![ServerError::new(message, None)], "GRAPHQL_PARSE_FAILED").remove(0));
        }
        let doc = match self.parsed.get(query) {
            Some(doc) => doc,
            None => {
                let doc = next.run(ctx, query, variables).await.map_err(|e| {
                    let mut errors = with_code(vec![e], "GRAPHQL_PARSE_FAILED");
                    errors.remove(0)
                })?;
                check_shape(&doc)?;
                self.parsed.keep(query, &doc);
                doc
            }
        };
        if let Some(slot) = ctx.data_opt::<Arc<OperationSlot>>() {
            let ops = doc.operations.iter().map(|(name, op)| {
                let kind = match op.node.ty {
                    OperationType::Query => "query",
                    OperationType::Mutation => "mutation",
                    OperationType::Subscription => "subscription",
                };
                (name.map(|n| n.to_string()), kind)
            });
            *slot.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = ops.collect();
        }
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errors| with_code(errors, "GRAPHQL_VALIDATION_FAILED"))?;
        self.charge(ctx, result.complexity)?;
        Ok(result)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let is_root = info.path_node.parent.is_none();
        if is_root && !info.is_for_introspection && !info.name.starts_with("__") {
            let anonymous = Principal::Anonymous(None);
            let principal = ctx.data_opt::<Principal>().unwrap_or(&anonymous);
            let decision = match root_policy(info.parent_type, info.name) {
                Some(policy) => policy.check(principal),
                None => Err(AppError::forbidden("this field has no access policy")),
            };
            if let Err(err) = decision {
                let gql = err.extend();
                let mut server_error = ServerError::new(gql.message, None);
                server_error.extensions = gql.extensions;
                server_error.path = vec![PathSegment::Field(info.alias.unwrap_or(info.name).to_owned())];
                return Err(server_error);
            }
        }
        let is_mutation = is_root && info.parent_type == "Mutation";
        let result = next.run(ctx, info).await;
        if is_mutation && let Some(state) = ctx.data_opt::<AppState>() {
            // A mutation may have committed events: let this process's dispatcher look.
            state.bus().wake();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_documents_are_kept_within_bounds() {
        let docs = ParsedDocuments::default();
        let parse = |q: &str| async_graphql::parser::parse_query(q).unwrap();
        let small = "{ me { email } }";
        docs.keep(small, &parse(small));
        assert_eq!(docs.get(small).map(|d| d.operations.iter().count()), Some(1));
        let long = format!("{{ me {{ email }} }} #{}", "x".repeat(PARSED_MAX_LEN));
        docs.keep(&long, &parse(&long));
        assert!(docs.get(&long).is_none(), "a long document is not kept");
        for n in 0..PARSED_MAX {
            let q = format!("{{ f{n} }}");
            docs.keep(&q, &parse(&q));
        }
        assert!(docs.0.lock().unwrap().len() <= PARSED_MAX, "never more than the bound");
        assert!(docs.get(small).is_none(), "a full memo starts afresh");
    }

    #[test]
    fn tokens_are_counted_like_the_lexer_sees_them() {
        assert_eq!(count_tokens("{ me { email } }"), 6);
        assert_eq!(count_tokens("query($n: Int = -1.5e3) { a(x: \"b, c { d\") ...F } # { { {"), 19);
        assert_eq!(count_tokens("{ a(s: \"\"\"x \\\"\"\" { \"\"\") }"), 8);
        assert_eq!(count_tokens(", , ,\n\t"), 0);
        let flood = "a ".repeat(MAX_TOKENS * 3);
        assert_eq!(count_tokens(&flood), MAX_TOKENS + 1, "stops counting past the limit");
    }
}
