//! `text::refusal` applied to everything a GraphQL request carries: every string (and
//! object key) in its variables and every string literal in its document (arguments,
//! directive arguments, variable defaults). Checked once, before validation, so no
//! resolver or service ever sees text the database cannot store; the refusal is
//! `BAD_USER_INPUT` with `extensions.field`, the path to the string: `["variables",
//! "input", "body"]` for a variable, the response key of the field then the argument's
//! path for a literal.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, Value, Variables};

use super::document::coded;

/// The first string in the request that cannot be stored, as a coded error.
pub fn check(doc: &ExecutableDocument, variables: &Variables) -> Result<(), ServerError> {
    for (name, value) in variables.iter() {
        if let Some((path, why)) = refusal_in(value) {
            return Err(refused([vec!["variables".to_owned(), name.to_string()], path].concat(), why));
        }
    }
    for (_, op) in doc.operations.iter() {
        for definition in &op.node.variable_definitions {
            if let Some(default) = &definition.node.default_value
                && let Some((path, why)) = refusal_in(&default.node)
            {
                let at = vec!["variables".to_owned(), definition.node.name.node.to_string()];
                return Err(refused([at, path].concat(), why));
            }
        }
        in_set(&op.node.selection_set.node)?;
    }
    for fragment in doc.fragments.values() {
        in_set(&fragment.node.selection_set.node)?;
    }
    Ok(())
}

fn refused(field: Vec<String>, why: &str) -> ServerError {
    let mut error = coded(ServerError::new(format!("`{}` {why}", field.join(".")), None), "BAD_USER_INPUT");
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("field", Value::List(field.into_iter().map(Value::from).collect()));
    error
}

/// Literals in a selection set and everything under it (its nesting is bounded by the
/// document's admission).
fn in_set(set: &SelectionSet) -> Result<(), ServerError> {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let key = f.node.response_key().node.to_string();
                let directives = f.node.directives.iter().flat_map(|d| d.node.arguments.iter());
                for (name, value) in f.node.arguments.iter().chain(directives) {
                    // Variables stand in as null here: their values are checked above.
                    let value = value.node.clone().into_const_with(|_| Ok::<_, std::convert::Infallible>(Value::Null));
                    if let Some((path, why)) = value.ok().as_ref().and_then(refusal_in) {
                        return Err(refused([vec![key.clone(), name.node.to_string()], path].concat(), why));
                    }
                }
                in_set(&f.node.selection_set.node)?;
            }
            Selection::InlineFragment(f) => in_set(&f.node.selection_set.node)?,
            Selection::FragmentSpread(_) => {}
        }
    }
    Ok(())
}

/// The path to the first refused string or key in a value, by `text`'s one walk.
fn refusal_in(value: &Value) -> Option<(Vec<String>, &'static str)> {
    crate::text::refusal_in(value)
}

impl crate::text::Tree for Value {
    fn node(&self) -> crate::text::Node<'_, Self> {
        use crate::text::Node;
        match self {
            Value::String(s) => Node::Text(s),
            Value::List(items) => Node::List(items),
            Value::Object(map) => Node::Map(Box::new(map.iter().map(|(k, v)| (k.as_str(), v)))),
            _ => Node::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(query: &str, variables: serde_json::Value) -> Option<Vec<String>> {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let error = check(&doc, &Variables::from_json(variables)).err()?;
        assert_eq!(error.extensions.as_ref().and_then(|e| e.get("code")), Some(&Value::from("BAD_USER_INPUT")));
        let field = error.extensions.as_ref().and_then(|e| e.get("field")).cloned()?;
        Some(serde_json::from_value(field.into_json().unwrap()).unwrap())
    }

    #[test]
    fn nul_is_found_in_variables_literals_defaults_and_fragments() {
        let q = "mutation($i: In) { a: createCustomer(input: $i) { id } }";
        assert_eq!(first(q, serde_json::json!({ "i": { "displayName": "ok" } })), None);
        assert_eq!(
            first(q, serde_json::json!({ "i": { "identities": [{ "value": "x" }, { "value": "y\u{0}" }] } })),
            Some(vec!["variables".into(), "i".into(), "identities".into(), "1".into(), "value".into()])
        );
        assert_eq!(
            first("{ customers(filter: {search: \"a\\u0000\"}) { totalCount } }", serde_json::json!({})),
            Some(vec!["customers".into(), "filter".into(), "search".into()])
        );
        assert_eq!(
            first("query($s: String = \"\\u0000\") { me { id } }", serde_json::json!({})),
            Some(vec!["variables".into(), "s".into()])
        );
        assert_eq!(
            first(
                "{ me { ...F } } fragment F on User { x: teamMembers(name: [\"\\u0000\"]) { id } }",
                serde_json::json!({})
            ),
            Some(vec!["x".into(), "name".into(), "0".into()])
        );
        assert_eq!(first("{ me { id @include(if: true) } }", serde_json::json!({})), None);
    }
}
