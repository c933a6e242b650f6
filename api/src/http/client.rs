//! Where a request comes from: the client's address, for the limits that count
//! anonymous callers (requests, unauthenticated sockets, log-in attempts) per address.
//!
//! By default the address is the connection's peer. Behind a reverse proxy every peer
//! is the proxy, so `CXGRAPH_CLIENT_IP_HEADER` names a header the proxy sets: the last
//! address in it is taken, the one the proxy itself appended (with `x-forwarded-for`
//! the earlier ones are whatever the client claimed). It is opt-in because a client
//! that reaches the server directly could name any address in such a header.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, Request};
use axum::response::Response;

/// The client address of a request, put in its extensions by [`identify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The address a proxy's header names: its last comma-separated entry, with an
/// optional port (`1.2.3.4:5678`, `[::1]:80`) and surrounding space.
fn from_header(headers: &HeaderMap, name: &HeaderName) -> Option<IpAddr> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| last.trim_start_matches('[').trim_end_matches(']').parse().ok())
}

/// The client address of `req`: from the trusted header when one is configured and
/// present, else the peer (unspecified when the server runs without connection info).
pub fn address_of(req: &Request<Body>, header: Option<&HeaderName>) -> IpAddr {
    header
        .and_then(|name| from_header(req.headers(), name))
        .or_else(|| req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Middleware: notes the request's [`ClientAddr`].
pub async fn identify(
    State(header): State<Option<HeaderName>>,
    mut req: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    let address = address_of(&req, header.as_ref());
    req.extensions_mut().insert(ClientAddr(address));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: Option<&str>) -> Request<Body> {
        let mut req = Request::new(Body::empty());
        req.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        if let Some(f) = forwarded {
            req.headers_mut().insert("x-forwarded-for", f.parse().unwrap());
        }
        req
    }

    #[test]
    fn the_peer_unless_a_trusted_header_names_the_client() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(address_of(&request("10.0.0.1:4000", Some("203.0.113.9")), None), ip("10.0.0.1"), "not opted in");
        assert_eq!(address_of(&request("10.0.0.1:4000", Some("203.0.113.9")), Some(&xff)), ip("203.0.113.9"));
        assert_eq!(
            address_of(&request("10.0.0.1:4000", Some("1.1.1.1, 203.0.113.9")), Some(&xff)),
            ip("203.0.113.9"),
            "what the client wrote first is not believed"
        );
        assert_eq!(address_of(&request("10.0.0.1:4000", Some("[2001:db8::5]:80")), Some(&xff)), ip("2001:db8::5"));
        assert_eq!(address_of(&request("10.0.0.1:4000", Some("garbage")), Some(&xff)), ip("10.0.0.1"));
        assert_eq!(address_of(&request("10.0.0.1:4000", None), Some(&xff)), ip("10.0.0.1"));
    }
}
