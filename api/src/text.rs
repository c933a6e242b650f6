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

/// The path (object keys and list indexes) to the first string or key in `value` that
/// [`refusal`] refuses, with the reason. Iterative: a value's nesting is the JSON
/// parser's business, not this walk's stack.
pub fn refusal_in_json(value: &serde_json::Value) -> Option<(Vec<String>, &'static str)> {
    let mut stack: Vec<(Vec<String>, &serde_json::Value)> = vec![(Vec::new(), value)];
    while let Some((path, value)) = stack.pop() {
        match value {
            serde_json::Value::String(s) => {
                if let Some(why) = refusal(s) {
                    return Some((path, why));
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push((child(&path, i.to_string()), item));
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map.iter().rev() {
                    if let Some(why) = refusal(key) {
                        return Some((path, why));
                    }
                    stack.push((child(&path, key.clone()), item));
                }
            }
            _ => {}
        }
    }
    None
}

fn child(path: &[String], step: String) -> Vec<String> {
    let mut out = Vec::with_capacity(path.len() + 1);
    out.extend_from_slice(path);
    out.push(step);
    out
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
        assert_eq!(refusal_in_json(&v).map(|(p, _)| p), Some(vec!["a".into(), "2".into(), "b".into()]));
        let key = json!({ "k\u{0}": 1 });
        assert_eq!(refusal_in_json(&key).map(|(p, _)| p), Some(vec![]));
        assert!(refusal_in_json(&json!({ "a": ["b", { "c": null }] })).is_none());
    }
}
