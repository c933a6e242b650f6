//! What a document must be before async-graphql sees it, and the one place a request's
//! text is parsed.
//!
//! Every transport (POST, GET, WebSocket `subscribe`, a persisted query filled in by
//! hash) hands its text to [`Documents::admit`], and nothing else parses it. The checks
//! come in the order of what they cost, each bounded by the one before:
//!
//! 1. the persisted-query allow-list, on the hash of the text (no parsing at all);
//! 2. a lexical scan of the raw text: at most [`MAX_TOKENS`] tokens and brackets
//!    (`{`, `[`, `(`) nested at most [`MAX_NESTING`] deep. The parser and every walk
//!    after it recurse once per bracket, and a value literal nested 2,000 deep used to
//!    overflow a worker's stack and abort the process: a stack overflow cannot be
//!    caught, so it must not be reachable;
//! 3. the parse (memoised per text, see [`ParsedDocuments`]);
//! 4. the shape: aliases, root fields, and the document as the validator and executor
//!    walk it, with every fragment spread inlined. A fragment that spreads the previous
//!    one twice doubles that walk per level (25 levels took 10 s of validation), even
//!    when the fragments hold no field at all (async-graphql's recursion check walks
//!    spreads too), and a chain of fragments spreading each other nests the
//!    validator's recursion without any bracket in the text. So the inlined document
//!    is measured here, in time linear in the text (each fragment measured once), and
//!    refused beyond [`MAX_INLINED_SELECTIONS`] selections or [`MAX_INLINED_DEPTH`]
//!    levels, or when a spread names a fragment that is not there or that spreads
//!    itself. Within those bounds async-graphql's checks are bounded too (its inlining
//!    walks visit at most that many selections; its per-selection-set rules at most
//!    selections × depth).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_graphql::parser::types::{Directive, ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Positioned, ServerError, Value};

/// Most lexical tokens one document may hold (counted before parsing, so a huge
/// document costs a scan, not a syntax tree).
pub const MAX_TOKENS: usize = 10_000;
/// Deepest nesting of brackets in a document's text: selection sets, argument lists,
/// list and object values. The schema's own depth limit is 15 fields; introspection
/// and input objects add a few levels.
pub const MAX_NESTING: usize = 64;
/// Most selections (fields, spreads, inline fragments) one document may hold with its
/// fragments inlined, summed over its operations and fragment definitions.
pub const MAX_INLINED_SELECTIONS: usize = 5_000;
/// Deepest a selection set may lie with the document's fragments inlined (fields,
/// inline fragments and spreads each open a level). The schema's recursion limit is
/// the same figure, so nothing admitted here is refused there after a long walk.
pub const MAX_INLINED_DEPTH: usize = 32;
/// Most argument values (each argument and each list item, object field or variable
/// in its literal) one document may hold with its fragments inlined. The validator
/// compares the arguments of every two fields answering to the same key, and reports
/// one error per argument that differs: without this bound a 17 KB document of one
/// field repeated with 1,650 arguments made 8 million errors.
pub const MAX_INLINED_ARGUMENTS: usize = 20_000;
/// Most arguments one field or directive may take (the schema's widest field takes
/// six). The validator compares every field with the first of its response key and
/// reports one error per argument the first has and the other lacks: a field taking
/// 1,650 arguments, repeated 4,850 times, made 8 million errors in one request.
pub const MAX_FIELD_ARGUMENTS: usize = 10;
/// Most variable references one document may hold with its fragments inlined: the
/// validator copies a variable's value at every reference.
pub const MAX_INLINED_VARIABLES: usize = 1_000;
/// Most aliases one document may use (alias floods multiply the work of one field).
pub const MAX_ALIASES: usize = 30;
/// Most fields at the root of one operation (inline fragments and spreads at the root
/// included).
pub const MAX_ROOT_FIELDS: usize = 15;
/// Most operations in one document (one runs; the validator checks them all).
pub const MAX_OPERATIONS: usize = 50;

/// What the lexical scan found: tokens (stopping past [`MAX_TOKENS`]) and the deepest
/// bracket nesting (stopping past [`MAX_NESTING`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    pub tokens: usize,
    pub nesting: usize,
}

/// Scans a document as the lexer would: names and numbers, punctuators (`...` as
/// one), string literals (block strings too) are tokens; whitespace, commas and
/// comments are not. Brackets inside strings and comments do not nest. Stops as soon
/// as either limit is passed.
pub fn scan(query: &str) -> Scan {
    let bytes = query.as_bytes();
    let (mut i, mut tokens, mut depth, mut nesting) = (0, 0, 0usize, 0usize);
    while i < bytes.len() && tokens <= MAX_TOKENS && nesting <= MAX_NESTING {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' | 0xEF | 0xBB | 0xBF => i += 1,
            // A comment runs to a line terminator: `\n`, `\r` or both.
            b'#' => {
                while i < bytes.len() && !matches!(bytes[i], b'\n' | b'\r') {
                    i += 1;
                }
            }
            // A block string ends at `"""`; `\"""` inside it is an escaped `"""`, and a
            // lone backslash is just a backslash.
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 3;
                tokens += 1;
            }
            // A string ends at `"` (a backslash escapes the next character) or, as a
            // syntax error, at a line terminator.
            b'"' => {
                i += 1;
                while i < bytes.len() && !matches!(bytes[i], b'"' | b'\n' | b'\r') {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                tokens += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                i += 3;
                tokens += 1;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.' | b'-' | b'+'))
                {
                    i += 1;
                }
                tokens += 1;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                nesting = nesting.max(depth);
                i += 1;
                tokens += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
                tokens += 1;
            }
            _ => {
                i += 1;
                tokens += 1;
            }
        }
    }
    Scan { tokens, nesting }
}

/// Documents parsed before, by their text: clients send the same few queries over and
/// over, and parsing one (a 600-character customer 360) cost a tenth of the server's
/// time for the request. A document is the same whatever its variables, so a copy of
/// the parse is the parse. Bounded: past [`PARSED_MAX`] documents the memo starts
/// afresh, and only documents up to [`PARSED_MAX_LEN`] bytes are kept.
#[derive(Default)]
struct ParsedDocuments(Mutex<HashMap<String, Admitted>>);

/// At most this many documents are kept (worst case a few MiB: each at most
/// [`PARSED_MAX_LEN`] bytes of text and its syntax tree).
const PARSED_MAX: usize = 128;
const PARSED_MAX_LEN: usize = 4 * 1024;

impl ParsedDocuments {
    fn get(&self, query: &str) -> Option<Admitted> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(query).cloned()
    }

    fn keep(&self, query: &str, doc: &Admitted) {
        if query.len() > PARSED_MAX_LEN {
            return;
        }
        let mut docs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if docs.len() >= PARSED_MAX {
            docs.clear();
        }
        docs.insert(query.to_owned(), doc.clone());
    }
}

/// The admission of documents: the checks above and the memo of parses.
#[derive(Default)]
pub struct Documents {
    parsed: ParsedDocuments,
}

/// An admitted document and its size with its fragments inlined.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub doc: ExecutableDocument,
    pub size: Size,
}

/// Most copies of variable values the validator may make for one request: it copies
/// a variable's value at each reference, so the references times the nodes of the
/// largest variable (a megabyte list referenced a thousand times took seconds).
pub const MAX_VARIABLE_COPIES: usize = 2_000_000;

impl Admitted {
    /// Refuses variables that the document's references would copy too often.
    pub fn check_variables(&self, variables: &async_graphql::Variables) -> Result<(), ServerError> {
        let largest = variables.values().map(value_nodes).max().unwrap_or(0);
        if self.size.variables.saturating_mul(largest) <= MAX_VARIABLE_COPIES {
            return Ok(());
        }
        Err(validation_failed(format!(
            "the document refers to its variables {} times and one holds {largest} values: more than \
             {MAX_VARIABLE_COPIES} values to check",
            self.size.variables
        )))
    }
}

impl Documents {
    /// The parsed document of `query`, or the coded error refusing it. `allowed` is the
    /// persisted-query allow-list's verdict on the text, asked first.
    pub fn admit(&self, query: &str, allowed: impl FnOnce(&str) -> bool) -> Result<Admitted, ServerError> {
        if !allowed(query) {
            return Err(super::persisted::refused());
        }
        let scan = scan(query);
        if scan.tokens > MAX_TOKENS {
            return Err(parse_failed(format!("the document has more than {MAX_TOKENS} tokens")));
        }
        if scan.nesting > MAX_NESTING {
            return Err(parse_failed(format!("the document nests brackets more than {MAX_NESTING} deep")));
        }
        if let Some(doc) = self.parsed.get(query) {
            return Ok(doc);
        }
        let doc = async_graphql::parser::parse_query(query).map_err(|e| coded(e.into(), "GRAPHQL_PARSE_FAILED"))?;
        let size = check_shape(&doc)?;
        let admitted = Admitted { doc, size };
        self.parsed.keep(query, &admitted);
        Ok(admitted)
    }
}

fn parse_failed(message: String) -> ServerError {
    coded(ServerError::new(message, None), "GRAPHQL_PARSE_FAILED")
}

fn validation_failed(message: String) -> ServerError {
    coded(ServerError::new(message, None), "GRAPHQL_VALIDATION_FAILED")
}

/// Sets `extensions.code` on an error.
pub fn coded(mut error: ServerError, code: &str) -> ServerError {
    error.extensions.get_or_insert_with(Default::default).set("code", code);
    error
}

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

/// Refuses documents too wide (aliases, operations, root fields) or too big once
/// inlined; answers the document's inlined measure.
fn check_shape(doc: &ExecutableDocument) -> Result<Size, ServerError> {
    let aliases: usize = doc.operations.iter().map(|(_, op)| count_aliases(&op.node.selection_set.node)).sum::<usize>()
        + doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum::<usize>();
    if aliases > MAX_ALIASES {
        return Err(validation_failed(format!(
            "the document uses {aliases} aliases; at most {MAX_ALIASES} are allowed"
        )));
    }
    if doc.operations.iter().count() > MAX_OPERATIONS {
        return Err(validation_failed(format!("the document holds more than {MAX_OPERATIONS} operations")));
    }
    inlined(doc).map_err(|refusal| validation_failed(refusal.message()))
}

/// Why a document is refused once inlined.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Inlined {
    TooDeep,
    TooMany,
    TooManyArguments,
    TooManyVariables,
    FieldArguments,
    TooWide,
    /// A spread of a fragment the document does not define.
    Unknown(String),
    /// A fragment that spreads itself, directly or not.
    Cycle(String),
}

impl Inlined {
    fn message(&self) -> String {
        match self {
            Inlined::TooDeep => {
                format!("the document nests more than {MAX_INLINED_DEPTH} levels with its fragments spread")
            }
            Inlined::TooMany => {
                format!("the document has more than {MAX_INLINED_SELECTIONS} selections with its fragments spread")
            }
            Inlined::TooManyArguments => {
                format!("the document has more than {MAX_INLINED_ARGUMENTS} argument values with its fragments spread")
            }
            Inlined::TooManyVariables => {
                format!(
                    "the document refers to variables more than {MAX_INLINED_VARIABLES} times with its fragments spread"
                )
            }
            Inlined::FieldArguments => format!("a field or directive takes more than {MAX_FIELD_ARGUMENTS} arguments"),
            Inlined::TooWide => format!("an operation selects more than {MAX_ROOT_FIELDS} root fields"),
            Inlined::Unknown(name) => format!("unknown fragment \"{name}\""),
            Inlined::Cycle(name) => format!("cannot spread fragment \"{name}\" within itself"),
        }
    }
}

/// A selection set with its spreads inlined: every field, spread and inline fragment
/// counts one selection, with what is under it; the depth is the number of nested
/// selection sets, itself included; the fields at its own level are those of its
/// inline fragments and spread fragments too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    pub selections: usize,
    depth: usize,
    /// Argument values: each argument, and each list item, object field and variable
    /// in its literal (directives' arguments too).
    pub arguments: usize,
    /// Variable references among them.
    pub variables: usize,
    fields_here: usize,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.selections = self.selections.saturating_add(other.selections);
        self.arguments = self.arguments.saturating_add(other.arguments);
        self.variables = self.variables.saturating_add(other.variables);
    }

    fn check(&self) -> Result<(), Inlined> {
        if self.selections > MAX_INLINED_SELECTIONS {
            Err(Inlined::TooMany)
        } else if self.arguments > MAX_INLINED_ARGUMENTS {
            Err(Inlined::TooManyArguments)
        } else if self.variables > MAX_INLINED_VARIABLES {
            Err(Inlined::TooManyVariables)
        } else {
            Ok(())
        }
    }
}

/// The size of one literal: its nodes (each list item and object field one) and the
/// variables it refers to (which count as nodes too).
fn literal(value: &Value, variables: usize) -> Size {
    Size { arguments: value_nodes(value).saturating_add(variables), variables, ..Size::default() }
}

/// Nodes of a literal (its nesting is bounded by the scan).
fn value_nodes(value: &Value) -> usize {
    match value {
        Value::List(items) => items.iter().map(value_nodes).fold(1, usize::saturating_add),
        Value::Object(map) => map.values().map(value_nodes).fold(1, usize::saturating_add),
        _ => 1,
    }
}

/// The arguments of some directives. Variables stand in as nulls in the copy that is
/// counted; their references are counted apart.
fn directive_arguments(directives: &[Positioned<Directive>]) -> Result<Size, Inlined> {
    if directives.iter().any(|d| d.node.arguments.len() > MAX_FIELD_ARGUMENTS) {
        return Err(Inlined::FieldArguments);
    }
    let mut size = Size::default();
    for (_, value) in directives.iter().flat_map(|d| d.node.arguments.iter()) {
        let mut variables = 0;
        let constant = value.node.clone().into_const_with(|_| {
            variables += 1;
            Ok::<_, std::convert::Infallible>(Value::Null)
        });
        size.add(literal(&constant.unwrap_or_default(), variables));
    }
    Ok(size)
}

/// The arguments of a field and of its directives (as [`directive_arguments`]).
fn field_arguments(field: &Field) -> Result<Size, Inlined> {
    if field.arguments.len() > MAX_FIELD_ARGUMENTS {
        return Err(Inlined::FieldArguments);
    }
    let mut size = directive_arguments(&field.directives)?;
    for (_, value) in &field.arguments {
        let mut variables = 0;
        let constant = value.node.clone().into_const_with(|_| {
            variables += 1;
            Ok::<_, std::convert::Infallible>(Value::Null)
        });
        size.add(literal(&constant.unwrap_or_default(), variables));
    }
    Ok(size)
}

/// The document with every spread inlined, summed over its operations and fragment
/// definitions (the validator walks both). Each fragment is measured once; the walk
/// never recurses deeper than [`MAX_INLINED_DEPTH`], whatever the document. Levels
/// count as async-graphql's recursion check counts them (the root set at 0; a
/// field's, an inline fragment's or a spread fragment's set one below), so a document
/// admitted here passes that check too, having walked at most
/// [`MAX_INLINED_SELECTIONS`] selections.
fn inlined(doc: &ExecutableDocument) -> Result<Size, Inlined> {
    let mut measure = Measure { doc, sizes: HashMap::new(), open: Vec::new() };
    let mut total = Size::default();
    for (_, op) in doc.operations.iter() {
        let size = measure.set(&op.node.selection_set.node, 0)?;
        if size.fields_here > MAX_ROOT_FIELDS {
            return Err(Inlined::TooWide);
        }
        total.add(size);
        for definition in &op.node.variable_definitions {
            // A default is a literal too (the validator checks it like one).
            if let Some(default) = &definition.node.default_value {
                total.add(literal(&default.node, 0));
            }
        }
        total.add(directive_arguments(&op.node.directives)?);
        total.check()?;
    }
    for fragment in doc.fragments.values() {
        total.add(measure.set(&fragment.node.selection_set.node, 0)?);
        total.add(directive_arguments(&fragment.node.directives)?);
        total.check()?;
    }
    Ok(total)
}

struct Measure<'a> {
    doc: &'a ExecutableDocument,
    /// Sizes of fragments measured so far.
    sizes: HashMap<&'a str, Size>,
    /// Fragments being measured, to find cycles.
    open: Vec<&'a str>,
}

impl<'a> Measure<'a> {
    /// The size of `set`, found at `level`: refused when a set under it would lie
    /// deeper than [`MAX_INLINED_DEPTH`].
    fn set(&mut self, set: &'a SelectionSet, level: usize) -> Result<Size, Inlined> {
        if set.items.is_empty() {
            return Ok(Size::default());
        }
        if level > MAX_INLINED_DEPTH {
            return Err(Inlined::TooDeep);
        }
        let mut size = Size { depth: 1, ..Size::default() };
        for item in &set.items {
            let (under, own, here) = match &item.node {
                Selection::Field(f) => (self.set(&f.node.selection_set.node, level + 1)?, field_arguments(&f.node)?, 1),
                Selection::InlineFragment(f) => {
                    let under = self.set(&f.node.selection_set.node, level + 1)?;
                    (under, directive_arguments(&f.node.directives)?, under.fields_here)
                }
                Selection::FragmentSpread(s) => {
                    let under = self.fragment(s.node.fragment_name.node.as_str(), level + 1)?;
                    (under, directive_arguments(&s.node.directives)?, under.fields_here)
                }
            };
            size.add(under);
            size.add(own);
            size.selections = size.selections.saturating_add(1);
            size.fields_here = size.fields_here.saturating_add(here);
            size.depth = size.depth.max(under.depth + 1);
            size.check()?;
        }
        Ok(size)
    }

    /// The size of fragment `name`'s set, spread at `level`.
    fn fragment(&mut self, name: &'a str, level: usize) -> Result<Size, Inlined> {
        if let Some(size) = self.sizes.get(name) {
            // Measured before, at another level: its deepest set, here.
            if size.depth > 0 && level + size.depth - 1 > MAX_INLINED_DEPTH {
                return Err(Inlined::TooDeep);
            }
            return Ok(*size);
        }
        let Some(fragment) = self.doc.fragments.get(name) else {
            return Err(Inlined::Unknown(name.to_owned()));
        };
        if self.open.contains(&name) {
            return Err(Inlined::Cycle(name.to_owned()));
        }
        self.open.push(name);
        let size = self.set(&fragment.node.selection_set.node, level);
        self.open.pop();
        let size = size?;
        self.sizes.insert(name, size);
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_documents_are_kept_within_bounds() {
        let docs = ParsedDocuments::default();
        let parse = |q: &str| Admitted { doc: async_graphql::parser::parse_query(q).unwrap(), size: Size::default() };
        let small = "{ me { email } }";
        docs.keep(small, &parse(small));
        assert_eq!(docs.get(small).map(|d| d.doc.operations.iter().count()), Some(1));
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
    fn tokens_and_nesting_are_counted_like_the_lexer_sees_them() {
        assert_eq!(scan("{ me { email } }"), Scan { tokens: 6, nesting: 2 });
        assert_eq!(scan("query($n: Int = -1.5e3) { a(x: \"b, c { d\") ...F } # { { {").tokens, 19);
        assert_eq!(scan("query($n: Int = -1.5e3) { a(x: \"b, c { d\") ...F } # { { {").nesting, 2);
        assert_eq!(scan("{ a(s: \"\"\"x \\\"\"\" { \"\"\") }"), Scan { tokens: 8, nesting: 2 });
        assert_eq!(scan(", , ,\n\t").tokens, 0);
        let flood = "a ".repeat(MAX_TOKENS * 3);
        assert_eq!(scan(&flood).tokens, MAX_TOKENS + 1, "stops counting past the limit");
        let deep = format!("{{ a(x: {}) }}", "[".repeat(100_000));
        assert_eq!(scan(&deep).nesting, MAX_NESTING + 1, "stops scanning past the nesting limit");
        assert_eq!(scan("{ a(x: [[1], [2], [[3]]]) }").nesting, 5);
        // A comment ends at `\r` as well as `\n`: what follows is scanned.
        let deep = format!("#\r{{ a(x: {}1{}) }}", "[".repeat(200), "]".repeat(200));
        assert_eq!(scan(&deep).nesting, MAX_NESTING + 1);
        // `\\"""` in a block string is a backslash and then the escaped quotes: the
        // string goes on, and the brackets after its real end are counted.
        let block = format!("{{ a(x: \"\"\"\\\\\"\"\" {{ \"\"\" y: {}1{}) }}", "[".repeat(200), "]".repeat(200));
        assert_eq!(scan(&block).nesting, MAX_NESTING + 1, "{block}");
        let plain = format!("{{ a(x: \"\r{}1{}) }}", "[".repeat(200), "]".repeat(200));
        assert_eq!(scan(&plain).nesting, MAX_NESTING + 1, "a string ends at a line terminator");
    }

    fn refusal(query: &str) -> Option<String> {
        Documents::default().admit(query, |_| true).err().map(|e| e.message)
    }

    #[test]
    fn literals_nested_past_the_limit_are_refused_before_parsing() {
        // Each of these overflowed the parser's stack at 2,000 levels on a worker
        // thread; here they are 100,000 deep, far past any stack, and refused unparsed.
        let n = 100_000;
        let cases = [
            format!("{{ a(x: {}1{}) }}", "[".repeat(n), "]".repeat(n)),
            format!("{{ a(x: {}1{}) }}", "{a:".repeat(n), "}".repeat(n)),
            format!("query($v: JSON = {}1{}) {{ a }}", "[".repeat(n), "]".repeat(n)),
            format!("{{ a(x: {}", "[".repeat(n)),
            format!("{}{}", "{ a ".repeat(n), "}".repeat(n)),
        ];
        for case in &cases {
            let message = refusal(case).expect("refused");
            assert!(message.contains("nests brackets"), "{message}");
        }
        // At the limit it parses (a list value nested 60 deep inside two braces).
        let ok = format!("{{ a(x: {}1{}) }}", "[".repeat(MAX_NESTING - 3), "]".repeat(MAX_NESTING - 3));
        assert_eq!(refusal(&ok), None);
    }

    /// `levels` fragments, each spreading the one before twice.
    fn fan(levels: usize, leaf: &str) -> String {
        let mut doc = format!("query {{ me {{ ...F{levels} }} }} fragment F0 on User {{ {leaf} }}");
        for i in 1..=levels {
            doc.push_str(&format!(" fragment F{i} on User {{ ...F{p} ...F{p} }}", p = i - 1));
        }
        doc
    }

    #[test]
    fn a_fragment_fan_out_is_refused_in_linear_time() {
        // 2^25 fields inlined: refused after measuring 26 fragments once each.
        let message = refusal(&fan(25, "id")).expect("refused");
        assert!(message.contains("selections with its fragments spread"), "{message}");
        // Nine levels is 1,536 selections in the operation and 3,049 in the
        // definitions: within the bound; ten is not.
        assert_eq!(
            inlined(&async_graphql::parser::parse_query(fan(9, "id")).unwrap()).map(|s| s.selections),
            Ok(4_585)
        );
        assert_eq!(refusal(&fan(9, "id")), None);
        assert!(refusal(&fan(10, "id")).is_some());
        // Fragments that hold no field fan out as well (the recursion check walks
        // spreads): an unknown leaf, or a spread of itself, is refused outright.
        let message = refusal(&fan(25, "...Missing")).expect("refused");
        assert!(message.contains("unknown fragment \"Missing\""), "{message}");
        let looping = "query { me { ...A } } fragment A on User { ...A ...A }";
        assert!(refusal(looping).expect("refused").contains("within itself"));
    }

    #[test]
    fn depth_is_counted_as_the_recursion_check_counts_it() {
        // A set at level 32 is the deepest allowed: 32 nested fields under the root.
        let nest = |n: usize| format!("{}{}", "{ a ".repeat(n + 1), "}".repeat(n + 1));
        assert_eq!(refusal(&nest(MAX_INLINED_DEPTH)), None);
        assert!(refusal(&nest(MAX_INLINED_DEPTH + 1)).expect("refused").contains("levels"));
        // The same depth reached through a fragment measured first at a shallow level.
        let shallow = format!("fragment D on User {}", nest(19));
        let deep = format!("query {{ x {{ ...D }} y {}...D{} }} {shallow}", "{ a ".repeat(14), "}".repeat(14));
        assert!(refusal(&deep).expect("refused").contains("levels"), "{deep}");
    }

    #[test]
    fn arguments_variables_root_fields_and_operations_are_bounded_once_inlined() {
        // One field repeated with many arguments: the validator reported an error per
        // argument per repeat (8 million for this shape at full size).
        let args = "x: 1 ".repeat(1_650);
        let flood = format!("{{ a {{ b({args}) {} }} }}", "b ".repeat(4_850));
        assert!(refusal(&flood).expect("refused").contains("more than 10 arguments"));
        let directive = format!("{{ a @include({}) }}", "if: true ".repeat(11));
        assert!(refusal(&directive).expect("refused").contains("more than 10 arguments"));
        // Argument values add up through spreads.
        let args: String = (0..10).map(|i| format!("x{i}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] ")).collect();
        let spread = format!("query {{ a {{ ...B }} }} fragment B on T {{ b({args}) }}");
        assert_eq!(refusal(&spread), None, "220 argument values, twice");
        let many = format!("query {{ a {{ {} }} }} fragment B on T {{ b({args}) }}", "...B ".repeat(200));
        assert!(refusal(&many).expect("refused").contains("argument values"));
        // A variable referred to past the bound, through a fragment.
        let refs = "$v ".repeat(100);
        let vars = format!("query($v: Int) {{ a {{ {} }} }} fragment V on T {{ b(x: [{refs}]) }}", "...V ".repeat(11));
        assert!(refusal(&vars).expect("refused").contains("refers to variables"));
        // Root fields through an inline fragment and a spread count as root fields.
        let wide =
            format!("query {{ ... {{ {} }} ...R }} fragment R on Query {{ {} }}", "a ".repeat(10), "b ".repeat(6));
        assert!(refusal(&wide).expect("refused").contains("root fields"));
        let ops: String = (0..=MAX_OPERATIONS).map(|i| format!("query Q{i} {{ a }} ")).collect();
        assert!(refusal(&ops).expect("refused").contains("operations"));
    }

    #[test]
    fn variables_copied_too_often_are_refused() {
        let docs = Documents::default();
        let admitted = docs.admit("query($v: [Int]) { a(x: $v) b(x: $v) c(x: $v) }", |_| true).unwrap();
        let small = async_graphql::Variables::from_json(serde_json::json!({ "v": [1, 2, 3] }));
        assert!(admitted.check_variables(&small).is_ok());
        let big = vec![0; MAX_VARIABLE_COPIES / 2];
        let huge = async_graphql::Variables::from_json(serde_json::json!({ "v": big }));
        assert!(admitted.check_variables(&huge).is_err(), "three references to a million values");
        let once = docs.admit("query($v: [Int]) { a(x: $v) }", |_| true).unwrap();
        assert!(once.check_variables(&huge).is_ok(), "one reference to it is one copy");
    }

    #[test]
    fn ordinary_documents_pass() {
        for q in [
            "{ me { email } }",
            "query A { ...Me } fragment Me on Query { me { id email } }",
            "query { me { ...A } } fragment A on User { id ...B } fragment B on User { email }",
        ] {
            assert_eq!(refusal(q), None, "{q}");
        }
    }
}
