//! Security headers on every answer, whatever produced it (a handler, a refusal, a
//! panic): browsers must not guess content types, frame our pages, send our URLs on as
//! referrers, or run anything from an answer that is not the GraphiQL page (which sets
//! its own, narrower-than-default policy in `graphiql.rs`). The API answers JSON, so
//! its policy forbids everything.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tower::util::option_layer;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The policy of every answer but the GraphiQL page: nothing may load or frame it.
pub const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Cross-origin reads for the configured origins only; none configured, no layer and
/// no CORS header at all (browsers then refuse cross-origin reads). A preflight is
/// answered here, before the caller's rate or the body is looked at.
pub fn cors(origins: &[HeaderValue]) -> tower::util::Either<CorsLayer, tower::layer::util::Identity> {
    let layer = (!origins.is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static(super::REQUEST_ID),
            ])
            .expose_headers([header::HeaderName::from_static(super::REQUEST_ID)])
            .max_age(std::time::Duration::from_secs(600))
    });
    option_layer(layer)
}

/// Adds the headers a handler has not set itself.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, API_POLICY),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}
