//! The one rule every piece of text a caller sends must meet: no character a store
//! cannot hold. PostgreSQL's `text` and `jsonb` refuse U+0000 outright, so a NUL in a
//! search, a name, a body or a topic used to reach the database and come back as
//! `INTERNAL` (and, in an ingest batch, fail the valid lines beside it). It is checked
//! where input enters, in one place for each way in: GraphQL variables and literals
//! (`graphql::input_text`), NDJSON lines and the query strings of the plain-HTTP
//! endpoints; nothing past those needs to think about it.

/// Why `text` cannot be stored, if it cannot.
pub fn refusal(text: &str) -> Option<&'static str> {
    text.contains('\0').then_some("contains a NUL character (U+0000), which cannot be stored")
}

/// A tree of values holding text: JSON, or a GraphQL value.
pub enum Node<'a, T> {
    Text(&'a str),
    List(&'a [T]),
    Map(Box<dyn Iterator<Item = (&'a str, &'a T)> + 'a>),
    Other,
}

/// What [`refusal_in`] walks.
pub trait Tree: Sized {
    fn node(&self) -> Node<'_, Self>;
}

impl Tree for serde_json::Value {
    fn node(&self) -> Node<'_, Self> {
        match self {
            serde_json::Value::String(s) => Node::Text(s),
            serde_json::Value::Array(items) => Node::List(items),
            serde_json::Value::Object(map) => Node::Map(Box::new(map.iter().map(|(k, v)| (k.as_str(), v)))),
            _ => Node::Other,
        }
    }
}

/// The path (object keys and list indexes) to the first string or key in `value` that
/// [`refusal`] refuses, with the reason. One path is shared by the whole walk (pushed
/// on the way in, popped on the way out), so a wide value costs no more memory than
/// its depth; the depth is its parser's (serde_json stops at 128, a GraphQL literal
/// at the document's nesting limit).
pub fn refusal_in<T: Tree>(value: &T) -> Option<(Vec<String>, &'static str)> {
    fn walk<T: Tree>(value: &T, path: &mut Vec<String>) -> Option<&'static str> {
        match value.node() {
            Node::Text(s) => refusal(s),
            Node::List(items) => items.iter().enumerate().find_map(|(i, item)| {
                path.push(i.to_string());
                let found = walk(item, path);
                if found.is_none() {
                    path.pop();
                }
                found
            }),
            Node::Map(mut entries) => entries.find_map(|(key, item)| {
                if let Some(why) = refusal(key) {
                    return Some(why);
                }
                path.push(key.to_owned());
                let found = walk(item, path);
                if found.is_none() {
                    path.pop();
                }
                found
            }),
            Node::Other => None,
        }
    }
    let mut path = Vec::new();
    walk(value, &mut path).map(|why| (path, why))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_is_refused_wherever_it_hides() {
        assert!(refusal("plain text, ünïcödé, 😀, \t\n").is_none());
        assert!(refusal("a\0b").is_some());
        let v = json!({ "a": [1, "ok", { "b": "x\u{0}" }], "c": "fine" });
        assert_eq!(refusal_in(&v).map(|(p, _)| p), Some(vec!["a".into(), "2".into(), "b".into()]));
        let key = json!({ "k\u{0}": 1 });
        assert_eq!(refusal_in(&key).map(|(p, _)| p), Some(vec![]));
        assert!(refusal_in(&json!({ "a": ["b", { "c": null }] })).is_none());
    }
}
