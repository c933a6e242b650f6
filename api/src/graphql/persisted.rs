//! Persisted queries: a manifest of the documents a front end ships with, loaded at
//! start-up from `CXGRAPH_PERSISTED_QUERIES`, and an allow-list mode
//! (`CXGRAPH_PERSISTED_QUERIES_ONLY`) in which nothing else runs.
//!
//! Clients send a document by id with Apollo's protocol, `extensions.persistedQuery
//! .sha256Hash` and no query text (over POST or GET), or send the text itself. In
//! allow-list mode a document runs only when the SHA-256 of its exact text is in the
//! manifest, checked where every document is parsed (HTTP and WebSocket alike), so a
//! stolen token cannot run arbitrary queries against a production front end's API.
//! The manifest is fixed at start-up: clients cannot register documents.
//!
//! Manifest formats: Apollo's persisted-query manifest (`{"format":
//! "apollo-persisted-query-manifest", "operations": [{"id", "body", …}]}`) or a plain
//! object from id to document text (Relay's). Ids are whatever the build tool chose;
//! the allow-list is by the hash of the text.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use async_graphql::ServerError;
use serde_json::Value;

use crate::auth::secret;

/// The manifest and the mode.
#[derive(Debug, Default)]
pub struct PersistedQueries {
    by_id: HashMap<String, Arc<str>>,
    /// SHA-256 (hex) of every document's text.
    allowed: HashSet<String>,
    only: bool,
}

impl PersistedQueries {
    /// Reads the manifest at `path` (none: an empty list). Allow-list mode without a
    /// manifest would refuse everything, so it is a start-up error.
    pub fn load(path: Option<&Path>, only: bool) -> anyhow::Result<PersistedQueries> {
        let Some(path) = path else {
            if only {
                bail!("CXGRAPH_PERSISTED_QUERIES_ONLY needs a manifest in CXGRAPH_PERSISTED_QUERIES");
            }
            return Ok(PersistedQueries::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the persisted-query manifest {}", path.display()))?;
        let mut out = Self::parse(&text).with_context(|| format!("persisted-query manifest {}", path.display()))?;
        out.only = only;
        Ok(out)
    }

    fn parse(text: &str) -> anyhow::Result<PersistedQueries> {
        let json: Value = serde_json::from_str(text).context("not JSON")?;
        let pairs: Vec<(String, String)> = match json.get("operations") {
            Some(ops) => ops
                .as_array()
                .context("`operations` is not a list")?
                .iter()
                .map(|op| match (op["id"].as_str(), op["body"].as_str()) {
                    (Some(id), Some(body)) => Ok((id.to_owned(), body.to_owned())),
                    _ => bail!("an operation lacks a string `id` or `body`"),
                })
                .collect::<anyhow::Result<_>>()?,
            None => json
                .as_object()
                .context("neither an Apollo manifest nor an object of id → document")?
                .iter()
                .map(|(id, body)| match body.as_str() {
                    Some(body) => Ok((id.clone(), body.to_owned())),
                    None => bail!("document `{id}` is not a string"),
                })
                .collect::<anyhow::Result<_>>()?,
        };
        let mut out = PersistedQueries::default();
        for (id, body) in pairs {
            out.allowed.insert(secret::hash(&body));
            out.by_id.insert(id, Arc::from(body));
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Fills in the text of a request that names a persisted document by hash, and
    /// checks a hash sent beside a text.
    pub fn resolve(&self, req: &mut async_graphql::Request) -> Result<(), (&'static str, String)> {
        let Some(hash) = req
            .extensions
            .get("persistedQuery")
            .and_then(|p| match p {
                async_graphql::Value::Object(o) => o.get("sha256Hash").cloned(),
                _ => None,
            })
            .and_then(|h| match h {
                async_graphql::Value::String(s) => Some(s),
                _ => None,
            })
        else {
            return Ok(());
        };
        if req.query.is_empty() {
            return match self.by_id.get(&hash) {
                Some(body) => {
                    req.query = body.to_string();
                    Ok(())
                }
                None => Err(("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound".to_owned())),
            };
        }
        if secret::hash(&req.query) != hash.to_lowercase() {
            return Err(("BAD_REQUEST", "persistedQuery.sha256Hash is not the SHA-256 of the query".to_owned()));
        }
        Ok(())
    }

    /// Whether a document may run: always, unless in allow-list mode and its text is
    /// not in the manifest.
    pub fn admits(&self, query: &str) -> bool {
        !self.only || self.allowed.contains(&secret::hash(query))
    }
}

/// The error for a document refused in allow-list mode.
pub fn refused() -> ServerError {
    let mut e = ServerError::new("only persisted queries may run on this server", None);
    e.extensions.get_or_insert_with(Default::default).set("code", "PERSISTED_QUERY_REQUIRED");
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_manifest_formats_load_and_the_allow_list_is_by_text() {
        let apollo = r#"{"format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{"id": "abc", "name": "Me", "type": "query", "body": "query Me { me { email } }"}]}"#;
        let relay = r#"{"q1": "query Me { me { email } }"}"#;
        for text in [apollo, relay] {
            let mut p = PersistedQueries::parse(text).unwrap();
            p.only = true;
            assert_eq!(p.len(), 1);
            assert!(p.admits("query Me { me { email } }"));
            assert!(!p.admits("query Me { me { email role } }"));
        }
        assert!(PersistedQueries::parse(r#"{"operations": [{"id": 1}]}"#).is_err());
        assert!(PersistedQueries::parse("[1, 2]").is_err());
        assert!(PersistedQueries::load(None, true).is_err(), "allow-list mode needs a manifest");
        assert!(PersistedQueries::load(None, false).unwrap().admits("{ anything }"));
    }
}
