//! GraphiQL at `/`, from files compiled into the binary (`api/assets/graphiql/`).
//!
//! Users paste bearer tokens into this page, so it must run nothing it did not ship
//! with: production builds of GraphiQL and React pinned to known versions (checked by
//! hash below), served from this origin, under a Content-Security-Policy that allows
//! scripts from this origin only and no inline script. It works with no network but
//! the server's, and the page's bytes cannot change between two starts of one binary.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::errors::error_body;

/// One file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// SHA-256 of a file taken from an npm package (hex); `None` for our own.
    sha256: Option<&'static str>,
}

macro_rules! asset {
    ($name:literal, $type:expr, $sha:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../assets/graphiql/", $name)),
            sha256: $sha,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The files under `/graphiql/`.
const ASSETS: &[Asset] = &[
    asset!("graphiql.min.js", JS, Some("5d3b0bb879d104c22b4ca6a59d1c27cbf52e4a43ff3e8e2203c4d2e9fe535d42")),
    asset!("graphiql.min.css", CSS, Some("187c466b65a18d20cd510acee40d16311d7f11da2877bb484449f2530acf11a7")),
    asset!("react.production.min.js", JS, Some("d949f1c3687aedadcedac85261865f29b17cd273997e7f6b2bfc53b2f9d4c4dd")),
    asset!("react-dom.production.min.js", JS, Some("35f4f974f4b2bcd44da73963347f8952e341f83909e4498227d4e26b98f66f0d")),
    asset!("init.js", JS, None),
    asset!("page.css", CSS, None),
];

const PAGE: &[u8] = include_bytes!("../../assets/graphiql/index.html");

/// The page's policy: scripts, styles and requests to this origin only; images and
/// GraphiQL's fonts may be `data:` URLs (its stylesheet inlines them); GraphiQL sets
/// `style` attributes, which `'unsafe-inline'` for styles allows (scripts get no such
/// allowance). No framing, no `<base>`, no form posts.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                               img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                               frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /`: the page.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /graphiql/{file}`: one of the page's files.
pub async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, axum::Json(error_body("no such file", "NOT_FOUND"))).into_response();
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            // Revalidated each hour: a new binary may carry new files under one name.
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        asset.bytes,
    )
        .into_response();
    // A pinned file is named by its hash: the tag a browser revalidates with.
    if let Some(tag) = asset.sha256.and_then(|h| HeaderValue::from_str(&format!("\"sha256-{h}\"")).ok()) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    /// The files from npm are the ones named in `assets/graphiql/README.md`, unchanged.
    #[test]
    fn vendored_files_are_the_pinned_ones() {
        for asset in ASSETS {
            if let Some(expected) = asset.sha256 {
                let digest: String = Sha256::digest(asset.bytes).iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(digest, expected, "{} differs from the pinned file", asset.name);
            }
        }
    }

    /// The page loads only what is served here, and runs no inline script.
    #[test]
    fn the_page_loads_only_served_files() {
        let page = std::str::from_utf8(PAGE).expect("UTF-8 page");
        let mut loaded = 0;
        for attribute in ["src=\"", "href=\""] {
            for part in page.split(attribute).skip(1) {
                let url = part.split('"').next().unwrap_or_default();
                let name = url.strip_prefix("/graphiql/").unwrap_or_else(|| panic!("{url} is not served here"));
                assert!(ASSETS.iter().any(|a| a.name == name), "{url} is not an asset");
                loaded += 1;
            }
        }
        assert_eq!(loaded, 6, "four scripts and two stylesheets");
        assert_eq!(page.matches("<script").count(), page.matches("<script src=").count(), "no inline script");
    }
}
