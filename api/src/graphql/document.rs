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
//!    one twice doubles that walk per level (25 levels took 10 s of validation), and a
//!    chain of fragments spreading each other nests the validator's recursion without
//!    any bracket in the text. So the inlined document is measured here, in time
//!    linear in the text (each fragment measured once), and refused beyond
//!    [`MAX_INLINED_FIELDS`] fields or [`MAX_INLINED_DEPTH`] levels. Within those
//!    bounds async-graphql's validation is itself bounded (its inlining walks are at
//!    most that many fields; its per-selection-set rules at most fields × depth).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_graphql::ServerError;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Most lexical tokens one document may hold (counted before parsing, so a huge
/// document costs a scan, not a syntax tree).
pub const MAX_TOKENS: usize = 10_000;
/// Deepest nesting of brackets in a document's text: selection sets, argument lists,
/// list and object values. The schema's own depth limit is 15 fields; introspection
/// and input objects add a few levels.
pub const MAX_NESTING: usize = 64;
/// Most fields one document may hold with its fragments inlined, summed over its
/// operations and fragment definitions.
pub const MAX_INLINED_FIELDS: usize = 5_000;
/// Deepest the document may nest with its fragments inlined (fields, inline fragments
/// and spreads each count a level).
pub const MAX_INLINED_DEPTH: usize = 64;
/// Most aliases one document may use (alias floods multiply the work of one field).
pub const MAX_ALIASES: usize = 30;
/// Most fields at the root of one operation.
pub const MAX_ROOT_FIELDS: usize = 15;

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
                tokens += 1;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
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
struct ParsedDocuments(Mutex<HashMap<String, ExecutableDocument>>);

/// At most this many documents are kept (worst case a few MiB: each at most
/// [`PARSED_MAX_LEN`] bytes of text and its syntax tree).
const PARSED_MAX: usize = 128;
const PARSED_MAX_LEN: usize = 4 * 1024;

impl ParsedDocuments {
    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(query).cloned()
    }

    fn keep(&self, query: &str, doc: &ExecutableDocument) {
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

impl Documents {
    /// The parsed document of `query`, or the coded error refusing it. `allowed` is the
    /// persisted-query allow-list's verdict on the text, asked first.
    pub fn admit(&self, query: &str, allowed: impl FnOnce(&str) -> bool) -> Result<ExecutableDocument, ServerError> {
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
        check_shape(&doc)?;
        self.parsed.keep(query, &doc);
        Ok(doc)
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

/// Refuses documents too wide (aliases, root fields) or too big once inlined.
fn check_shape(doc: &ExecutableDocument) -> Result<(), ServerError> {
    let aliases: usize = doc.operations.iter().map(|(_, op)| count_aliases(&op.node.selection_set.node)).sum::<usize>()
        + doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum::<usize>();
    if aliases > MAX_ALIASES {
        return Err(validation_failed(format!(
            "the document uses {aliases} aliases; at most {MAX_ALIASES} are allowed"
        )));
    }
    if doc.operations.iter().any(|(_, op)| op.node.selection_set.node.items.len() > MAX_ROOT_FIELDS) {
        return Err(validation_failed(format!("an operation selects more than {MAX_ROOT_FIELDS} root fields")));
    }
    match inlined(doc) {
        Ok(_) => Ok(()),
        Err(Inlined::TooDeep) => Err(validation_failed(format!(
            "the document nests more than {MAX_INLINED_DEPTH} levels with its fragments spread"
        ))),
        Err(Inlined::TooMany) => Err(validation_failed(format!(
            "the document has more than {MAX_INLINED_FIELDS} fields with its fragments spread"
        ))),
    }
}

/// Why a document is too big once inlined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inlined {
    TooDeep,
    TooMany,
}

/// Fields and depth of a selection set with its spreads inlined.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    fields: usize,
    depth: usize,
}

/// The fields of a document with every spread inlined, summed over its operations and
/// fragment definitions (the validator walks both). Each fragment is measured once;
/// the walk never recurses deeper than [`MAX_INLINED_DEPTH`], whatever the document.
fn inlined(doc: &ExecutableDocument) -> Result<usize, Inlined> {
    let mut measure = Measure { doc, sizes: HashMap::new(), open: Vec::new() };
    let mut total = 0usize;
    let roots = doc
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(doc.fragments.values().map(|f| &f.node.selection_set.node));
    for set in roots {
        total = total.saturating_add(measure.set(set, 0)?.fields);
        if total > MAX_INLINED_FIELDS {
            return Err(Inlined::TooMany);
        }
    }
    Ok(total)
}

struct Measure<'a> {
    doc: &'a ExecutableDocument,
    /// Sizes of fragments measured so far.
    sizes: HashMap<&'a str, Size>,
    /// Fragments being measured: a cycle (which validation refuses) adds nothing.
    open: Vec<&'a str>,
}

impl<'a> Measure<'a> {
    fn set(&mut self, set: &'a SelectionSet, level: usize) -> Result<Size, Inlined> {
        if level > MAX_INLINED_DEPTH {
            return Err(Inlined::TooDeep);
        }
        let mut size = Size::default();
        for item in &set.items {
            let (fields, below) = match &item.node {
                Selection::Field(f) => {
                    let under = self.set(&f.node.selection_set.node, level + 1)?;
                    (under.fields.saturating_add(1), under.depth)
                }
                Selection::InlineFragment(f) => {
                    let under = self.set(&f.node.selection_set.node, level + 1)?;
                    (under.fields, under.depth)
                }
                Selection::FragmentSpread(s) => {
                    let under = self.fragment(s.node.fragment_name.node.as_str(), level + 1)?;
                    (under.fields, under.depth)
                }
            };
            size.fields = size.fields.saturating_add(fields);
            size.depth = size.depth.max(below + 1);
            if size.fields > MAX_INLINED_FIELDS {
                return Err(Inlined::TooMany);
            }
            if level + size.depth > MAX_INLINED_DEPTH + 1 {
                return Err(Inlined::TooDeep);
            }
        }
        Ok(size)
    }

    fn fragment(&mut self, name: &'a str, level: usize) -> Result<Size, Inlined> {
        if let Some(size) = self.sizes.get(name) {
            if level + size.depth > MAX_INLINED_DEPTH + 1 {
                return Err(Inlined::TooDeep);
            }
            return Ok(*size);
        }
        let Some(fragment) = self.doc.fragments.get(name) else {
            return Ok(Size::default());
        };
        if self.open.contains(&name) {
            return Ok(Size::default());
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

    #[test]
    fn a_fragment_fan_out_is_refused_in_linear_time() {
        // Each fragment spreads the previous one twice: 2^40 fields inlined.
        let mut fan = String::from("query { me { ...F40 } } fragment F0 on User { id }");
        for i in 1..=40 {
            fan.push_str(&format!(" fragment F{i} on User {{ ...F{p} ...F{p} }}", p = i - 1));
        }
        let message = refusal(&fan).expect("refused");
        assert!(message.contains("fields with its fragments spread"), "{message}");
        // Twelve levels (4,096 fields) of the same is within the bound.
        let mut small = String::from("query { me { ...F12 } } fragment F0 on User { id }");
        for i in 1..=12 {
            small.push_str(&format!(" fragment F{i} on User {{ ...F{p} ...F{p} }}", p = i - 1));
        }
        assert!(refusal(&small).is_some(), "4,096 + the definitions' own fields is over 5,000");
        let mut fits = String::from("query { me { ...F10 } } fragment F0 on User { id }");
        for i in 1..=10 {
            fits.push_str(&format!(" fragment F{i} on User {{ ...F{p} ...F{p} }}", p = i - 1));
        }
        assert_eq!(refusal(&fits), None, "1,024 fields, plus 2,047 in the definitions");
    }

    #[test]
    fn a_chain_of_fragments_is_refused_past_the_inlined_depth() {
        // No bracket nests here, but the validator recurses once per spread.
        let mut chain = String::from("query { me { ...C0 } }");
        for i in 0..1_000 {
            chain.push_str(&format!(" fragment C{i} on User {{ ...C{} }}", i + 1));
        }
        chain.push_str(" fragment C1000 on User { id }");
        let message = refusal(&chain).expect("refused");
        assert!(message.contains("levels with its fragments spread"), "{message}");
        // An unused chain is walked by the validator too, so it is refused as well.
        let unused = chain.replacen("query { me { ...C0 } }", "query { me { id } }", 1);
        let message = refusal(&unused).expect("refused");
        assert!(message.contains("levels with its fragments spread"), "{message}");
    }

    #[test]
    fn ordinary_documents_pass() {
        for q in [
            "{ me { email } }",
            "query A { ...Me } fragment Me on Query { me { id email } }",
            "query { me { ...A } } fragment A on User { id ...B } fragment B on User { email ...A }",
        ] {
            assert_eq!(refusal(q), None, "{q}");
        }
    }
}
