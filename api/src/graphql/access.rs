//! Access control and error hygiene for every GraphQL request, outside async-graphql's
//! extension hooks.
//!
//! Why not an extension: with any extension on the schema, async-graphql runs every
//! field of every answer through the extension chain (a boxed future, a registry
//! lookup and the hook per field). Measured on the benchmark dataset, taking the one
//! extension this layer was out of the schema cut the server's time per request by a
//! quarter for a page of fifty conversations and by 30 % for a year of weekly NPS.
//! So the same duties live in two places that cost nothing per field:
//!
//! - [`Gate`], the executor every transport runs (HTTP and WebSocket), before the
//!   schema sees a request: the document is admitted by `document::Documents` (the
//!   persisted-query allow-list, then lexical limits on the raw text, then the parse
//!   and the document's shape with its fragments inlined: see that module), and its
//!   text checked by `input_text` (nothing the database cannot store);
//!   its cost (see `cost::document_cost`) is charged to the caller's hourly budget,
//!   and a query that does not fit is refused with `RATE_LIMITED` before anything
//!   runs (a query that then fails validation gets its charge back). After, the answer
//!   carries `extensions.cost`; an error without `extensions.code` is coded: request
//!   errors (no path: validation) `GRAPHQL_VALIDATION_FAILED`, an argument or variable
//!   async-graphql cannot parse as its type `BAD_USER_INPUT`, anything else is logged
//!   and masked as `INTERNAL`, so no unexpected message (SQL text, a library's
//!   internals) ever reaches a client.
//! - [`Guarded`], the query and mutation roots: before a root field runs, its policy
//!   from `auth::policy::ROOT_FIELDS` is checked against the request's principal; a
//!   field with no policy is refused (deny by default). After a mutation field, this
//!   process's event dispatcher is woken (the mutation may have committed events).

use std::any::TypeId;
use std::borrow::Cow;
use std::sync::Arc;

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::parser::types::{ExecutableDocument, Field, OperationType};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{ContainerType, resolve_container};
use async_graphql::{
    Context, ContextSelectionSet, Data, ErrorExtensions, Executor, ObjectType, OutputType, Positioned, Request,
    Response, ServerError, ServerResult, Value,
};

use super::AppSchema;
use super::document::{Admitted, Documents};
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
    /// Notes the operations of a parsed document.
    fn fill(&self, doc: &ExecutableDocument) {
        let ops = doc.operations.iter().map(|(name, op)| {
            let kind = match op.node.ty {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            };
            (name.map(|n| n.to_string()), kind)
        });
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = ops.collect();
    }

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

/// The executor of every GraphQL request: the checks before the schema runs it and
/// the error hygiene after (see the module comment).
#[derive(Clone)]
pub struct Gate {
    schema: AppSchema,
    state: AppState,
    documents: Arc<Documents>,
}

/// Most errors one answer carries.
pub const MAX_ERRORS: usize = 100;

/// A request refused before it ran: its error, and what the budget said if it spoke.
type Refusal = Box<(ServerError, Option<CostReport>)>;

/// The value of type `T` in request or session data.
fn data_of<T: 'static>(data: &Data) -> Option<&T> {
    data.get(&TypeId::of::<T>()).and_then(|d| d.downcast_ref::<T>())
}

impl Gate {
    pub fn new(schema: AppSchema, state: AppState) -> Gate {
        Gate { schema, state, documents: Arc::default() }
    }

    /// The parsed document of `query`, admitted as every transport's is (allow-list,
    /// lexical limits, shape): for a transport that must look at the operation before
    /// running it (GET refuses mutations).
    pub fn document(&self, query: &str) -> Result<Admitted, ServerError> {
        self.documents.admit(query, |q| self.state.persisted().admits(q))
    }

    /// Checks, parses and prices a request; answers the budget's report of the charge.
    fn admit(&self, req: &mut Request, principal: &Principal) -> Result<Option<CostReport>, Refusal> {
        let admitted = self.document(&req.query).map_err(|e| Box::new((e, None)))?;
        admitted.check_variables(&req.variables).map_err(|e| Box::new((e, None)))?;
        let doc = admitted.doc;
        super::input_text::check(&doc, &req.variables).map_err(|e| Box::new((e, None)))?;
        if let Some(slot) = data_of::<Arc<OperationSlot>>(&req.data) {
            slot.fill(&doc);
        }
        let budget = self.state.cost_budget();
        let report = if budget.charges(principal) {
            let cost = super::cost::document_cost(&doc, &req.variables) as u64;
            match budget.charge(principal, cost) {
                Some(Ok(report)) => Some(report),
                Some(Err(report)) => return Err(Box::new((over_budget(&report), Some(report)))),
                None => None,
            }
        } else {
            None
        };
        req.set_parsed_query(doc);
        Ok(report)
    }

    /// The error hygiene of an answer, and its cost (given back when the query did not
    /// get past validation).
    fn finish(&self, mut response: Response, report: Option<CostReport>, principal: &Principal) -> Response {
        // What the client needs is the first few; a document's admission bounds how many
        // there can be, and this bounds what is coded and sent of them.
        response.errors.truncate(MAX_ERRORS);
        let refused = response.data == Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        if let Some(report) = report {
            if refused {
                self.state.cost_budget().refund(principal, report.cost);
            } else {
                response.extensions.insert("cost".into(), cost_value(&report));
            }
        }
        for e in &mut response.errors {
            if has_code(e) {
                continue;
            }
            let code = if e.path.is_empty() {
                // A request error: the document is not valid against the schema.
                "GRAPHQL_VALIDATION_FAILED"
            } else if is_argument_error(&e.message) {
                // An argument or variable that does not parse as its type: the
                // message names the type, not our internals.
                "BAD_USER_INPUT"
            } else {
                tracing::error!(message = %e.message, path = ?e.path, "uncoded GraphQL error masked");
                e.message = "internal error".into();
                "INTERNAL"
            };
            e.extensions.get_or_insert_with(Default::default).set("code", code);
        }
        response
    }
}

/// An answer that is one refusal.
fn refusal_response((error, report): (ServerError, Option<CostReport>)) -> Response {
    let mut response = Response::from_errors(vec![error]);
    if let Some(report) = report {
        response.extensions.insert("cost".into(), cost_value(&report));
    }
    response
}

fn over_budget(report: &CostReport) -> ServerError {
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
    error
}

impl Executor for Gate {
    async fn execute(&self, mut request: Request) -> Response {
        let principal = data_of::<Principal>(&request.data).cloned().unwrap_or(Principal::Anonymous(None));
        match self.admit(&mut request, &principal) {
            Err(refusal) => refusal_response(*refusal),
            Ok(report) => {
                let response = self.schema.execute(request).await;
                self.finish(response, report, &principal)
            }
        }
    }

    fn execute_stream(&self, mut request: Request, session_data: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        let principal = session_data
            .as_deref()
            .and_then(data_of::<Principal>)
            .or_else(|| data_of::<Principal>(&request.data))
            .cloned()
            .unwrap_or(Principal::Anonymous(None));
        match self.admit(&mut request, &principal) {
            Err(refusal) => stream::once(async move { refusal_response(*refusal) }).boxed(),
            Ok(mut report) => {
                let gate = self.clone();
                Executor::execute_stream(&self.schema, request, session_data)
                    .map(move |response| gate.finish(response, report.take(), &principal))
                    .boxed()
            }
        }
    }
}

/// A query or mutation root whose fields are checked against their policy before they
/// run (see the module comment).
#[derive(Default)]
pub struct Guarded<T>(T);

impl<T: ObjectType> OutputType for Guarded<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, _field: &Positioned<Field>) -> ServerResult<Value> {
        resolve_container(ctx, self).await
    }
}

impl<T: ObjectType> ContainerType for Guarded<T> {
    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        let name = ctx.item.node.name.node.as_str();
        let parent = T::type_name();
        if !name.starts_with("__") {
            let anonymous = Principal::Anonymous(None);
            let principal = ctx.data_opt::<Principal>().unwrap_or(&anonymous);
            let decision = match root_policy(&parent, name) {
                Some(policy) => policy.check(principal),
                None => Err(AppError::forbidden("this field has no access policy")),
            };
            if let Err(err) = decision {
                return Err(ctx.set_error_path(err.extend().into_server_error(ctx.item.pos)));
            }
        }
        let result = self.0.resolve_field(ctx).await;
        if parent == "Mutation"
            && let Some(state) = ctx.data_opt::<AppState>()
        {
            // A mutation may have committed events: let this process's dispatcher look.
            state.bus().wake();
        }
        result
    }

    async fn find_entity(&self, ctx: &Context<'_>, params: &Value) -> ServerResult<Option<Value>> {
        self.0.find_entity(ctx, params).await
    }
}

impl<T: ObjectType> ObjectType for Guarded<T> {}
