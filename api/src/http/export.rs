//! `GET /export/{customers|interactions|conversations|touchpoints|feedback}`: bulk
//! CSV (default) or NDJSON (`?format=ndjson`) for BI tools, streamed chunk by chunk
//! (see `crate::export`), so 100k rows never sit in memory at once.
//!
//! Query parameters: `from` / `to` (RFC 3339, business time), `updated_since` (rows
//! changed at or after it), `channels` (comma-separated, e.g. `TWITTER,FACEBOOK`).
//! The `X-Export-Watermark` response header is the `updated_since` of the next
//! incremental pull (a minute before this one started, so a row committed late is not
//! missed; rows near the boundary can repeat — upsert by `id`).
//!
//! Access: admins, managers, analysts, or a token with the `export` scope; a
//! channel-limited token gets its channels only, and no customers export (customers
//! are not channel data). Personal data is masked for callers who may not read it.
//! The first chunk is read before the answer starts, so a bad request or an
//! unavailable database is a clean status code; a failure later cuts the stream short
//! (the client sees an incomplete transfer, never a silently short file). Each export
//! is written to the audit log.

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use entity::enums::Channel;
use serde::Deserialize;
use serde_json::json;

use super::{ClientAddr, HttpState, error_response, request_id};
use crate::audit::{self, Actor};
use crate::auth::{pii, policy::EXPORT};
use crate::error::AppError;
use crate::export::{self, Chunk, Cursor, Dataset, Exporter, Filter, Format};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    format: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    updated_since: Option<DateTime<Utc>>,
    channels: Option<String>,
}

fn channels(raw: Option<&str>) -> Result<Option<Vec<Channel>>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let c: Channel = serde_json::from_value(json!(name.to_lowercase()))
            .map_err(|_| AppError::invalid(&["channels"], "INVALID", format!("`{name}` is not a channel")))?;
        out.push(c);
    }
    Ok(Some(out))
}

struct Stream {
    exporter: Exporter,
    db: sea_orm::DatabaseConnection,
    format: Format,
    header: Vec<&'static str>,
    next: Option<Cursor>,
}

impl Stream {
    fn encode(&self, chunk: &Chunk) -> Bytes {
        Bytes::from(export::encode(self.format, &self.header, &chunk.rows))
    }
}

pub async fn export(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    Extension(client): Extension<ClientAddr>,
) -> Response {
    let principal = match super::caller(&state.app, &headers, client, crate::auth::rate_limit::Door::AnySite).await {
        Ok(principal) => principal,
        Err(wait) => return super::rate_limited(wait),
    };
    if let Err(e) = EXPORT.check(&principal) {
        return error_response(&e);
    }
    let Some(dataset) = Dataset::parse(&name) else {
        return error_response(&AppError::NotFound(
            "export (use customers, interactions, conversations, touchpoints or feedback)",
        ));
    };
    let Ok(Query(params)) = query else {
        return error_response(&AppError::invalid(
            &["query"],
            "INVALID",
            "unknown parameter or malformed time (RFC 3339)",
        ));
    };
    let format = match params.format.as_deref().map(str::to_lowercase).as_deref() {
        None | Some("csv") => Format::Csv,
        Some("ndjson") => Format::Ndjson,
        Some(_) => return error_response(&AppError::invalid(&["format"], "INVALID", "use csv or ndjson")),
    };
    let requested = match channels(params.channels.as_deref()) {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    if principal.channel_limit().is_some() && !dataset.has_channel() {
        return error_response(&AppError::forbidden("a channel-limited token cannot export customers"));
    }
    let filter = Filter {
        from: params.from,
        to: params.to,
        updated_since: params.updated_since,
        channels: crate::graphql::types::within_channel_limit(&principal, requested),
    };
    let started = Utc::now();
    // Rows come from the read replica when there is one; the audit entry goes to the
    // primary.
    let db = state.app.read_db().clone();
    let exporter = match Exporter::new(dataset, db.get_database_backend(), filter, pii::can_read(&principal)) {
        Ok(e) => e,
        Err(e) => return error_response(&e),
    };
    let first = match exporter.chunk(&db, None).await {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let rid = request_id(&headers);
    let actor = Actor::new(&principal, Some(rid.as_str()).filter(|r| !r.is_empty()));
    let changes = json!({ "format": format!("{format:?}").to_lowercase(), "from": params.from, "to": params.to,
        "updatedSince": params.updated_since, "channels": params.channels });
    if let Err(e) = audit::record(state.app.db(), actor, "export", &name, None, changes).await {
        return error_response(&e);
    }
    let header = exporter.header();
    let mut stream = Stream { exporter, db, format, header, next: first.next };
    let mut opening = Vec::new();
    if format == Format::Csv {
        opening.extend_from_slice(export::csv_header(&stream.header).as_bytes());
    }
    opening.extend_from_slice(&stream.encode(&first));
    let rest = futures::stream::unfold(stream.next.take().map(|c| (c, stream)), |state| async move {
        let (cursor, s) = state?;
        match s.exporter.chunk(&s.db, Some(cursor)).await {
            Ok(chunk) => {
                let bytes = s.encode(&chunk);
                Some((Ok::<Bytes, std::io::Error>(bytes), chunk.next.map(|c| (c, s))))
            }
            Err(e) => {
                tracing::error!(error = e.message(), dataset = ?s.exporter.dataset(), "export failed mid-stream");
                Some((Err(std::io::Error::other("export failed")), None))
            }
        }
    });
    let body = futures::StreamExt::chain(futures::stream::once(async move { Ok(Bytes::from(opening)) }), rest);
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let watermark = (started - Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{extension}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&watermark) {
        h.insert("x-export-watermark", v);
    }
    response
}
