//! Subscriptions over WebSocket on both backends: authentication in
//! `connection_init`, filters, masking, delivery across two servers (replicas) on one
//! database, and no event from a rolled-back transaction.

use cxgraph_tests::{Backend, Subscription, TestApp, backends};
use entity::enums::Role;
use sea_orm::TransactionTrait;
use serde_json::{Value, json};

const RECORD: &str = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { \
    interaction { id conversationId } userErrors { code } } }";

async fn record(app: &TestApp, token: &str, channel: &str, ext: &str, body: &str) -> Value {
    let input = json!({ "channel": channel, "direction": "INBOUND", "body": body, "externalId": ext,
        "identities": [{ "kind": "EMAIL", "value": format!("{ext}@example.com") }] });
    let out = app.graphql(RECORD, json!({ "input": input }), Some(token)).await;
    assert!(out["data"]["recordInteraction"]["interaction"]["id"].is_string(), "{out}");
    out["data"]["recordInteraction"]["interaction"].clone()
}

const INTERACTIONS: &str = "subscription { interactionReceived(channels: [EMAIL]) { id channel externalId body } }";

#[tokio::test]
async fn subscribers_receive_committed_interactions_with_their_filters_and_rights() {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        let admin = app.login_admin().await.access;
        let (email, password) = app.create_user(Role::Analyst).await;
        let analyst = app.login(&email, &password).await.access;
        let mut as_admin = Subscription::start(&app, Some(&admin), INTERACTIONS).await.expect("admin may subscribe");
        let mut as_analyst =
            Subscription::start(&app, Some(&analyst), INTERACTIONS).await.expect("analyst may subscribe");

        record(&app, &admin, "SMS", "sms-1", "not for the email subscribers").await;
        let sent = record(&app, &admin, "EMAIL", "mail-1", "hello by email").await;
        let got = as_admin.next(10).await.unwrap_or_else(|| panic!("[{}] no event", backend.name()));
        let item = &got["data"]["interactionReceived"];
        assert_eq!(item["id"], sent["id"], "[{}] the SMS was filtered out: {got}", backend.name());
        assert_eq!(item["body"], "hello by email");
        let masked = as_analyst.next(10).await.expect("analyst event");
        assert_eq!(masked["data"]["interactionReceived"]["id"], sent["id"]);
        assert!(masked["data"]["interactionReceived"]["body"].is_null(), "analysts get no bodies");

        // Without valid credentials the socket is closed at connection_init (4403,
        // graphql-transport-ws's "Forbidden"), saying why.
        let refused = Subscription::start(&app, None, INTERACTIONS).await.err().expect("anonymous refused");
        assert_eq!(refused["code"], 4403, "{refused}");
        let bad = Subscription::start(&app, Some("garbage"), INTERACTIONS).await.err().expect("bad token refused");
        assert_eq!(bad["code"], 4403, "{bad}");
        assert_eq!(bad["reason"], "Forbidden: access token invalid");
        app.stop().await;
    }
}

#[tokio::test]
async fn an_event_committed_on_one_replica_reaches_a_subscriber_on_another() {
    for backend in backends() {
        let first = TestApp::spawn(&backend).await;
        let second = first.spawn_replica().await;
        let admin_first = first.login_admin().await.access;
        let admin_second = second.login_admin().await.access;
        let mut on_second = Subscription::start(&second, Some(&admin_second), INTERACTIONS).await.expect("subscribes");
        let mut updates = Subscription::start(
            &second,
            Some(&admin_second),
            "subscription { conversationUpdated { id status customer { id } } }",
        )
        .await
        .expect("subscribes");
        let sent = record(&first, &admin_first, "EMAIL", "x-1", "from the other replica").await;
        let got = on_second.next(10).await.unwrap_or_else(|| panic!("[{}] nothing crossed replicas", backend.name()));
        assert_eq!(got["data"]["interactionReceived"]["id"], sent["id"]);
        let update = updates.next(10).await.expect("conversation update crossed replicas");
        assert_eq!(update["data"]["conversationUpdated"]["id"], sent["conversationId"]);
        assert!(update["data"]["conversationUpdated"]["customer"]["id"].is_string());
        second.stop().await;
        first.stop().await;
    }
}

#[tokio::test]
async fn an_event_from_a_rolled_back_transaction_is_never_delivered() {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        let admin = app.login_admin().await.access;
        let mut sub = Subscription::start(&app, Some(&admin), INTERACTIONS).await.expect("subscribes");
        let ghost = uuid::Uuid::now_v7();
        let txn = app.db.begin().await.unwrap();
        let event = cxgraph::events::NewEvent {
            event_type: "interaction.received",
            aggregate_type: "interaction",
            aggregate_id: ghost,
            customer_id: None,
            channel: Some(entity::enums::Channel::Email),
            payload: json!({}),
        };
        cxgraph::events::emit(&txn, event).await.map_err(|e| e.message()).unwrap();
        txn.rollback().await.unwrap();
        let sent = record(&app, &admin, "EMAIL", "real-1", "committed").await;
        let got = sub.next(10).await.expect("the committed event arrives");
        assert_eq!(
            got["data"]["interactionReceived"]["id"],
            sent["id"],
            "[{}] only the committed event",
            backend.name()
        );
        assert!(sub.next(1).await.is_none(), "nothing else");
        app.stop().await;
    }
}

#[tokio::test]
async fn sla_alerts_are_pushed() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let admin = app.login_admin().await.access;
    let mut sub = Subscription::start(&app, Some(&admin), "subscription { slaAlert { kind severity conversationId } }")
        .await
        .expect("subscribes");
    let now = chrono::Utc::now();
    let policy = entity::sla_policy::Model {
        id: uuid::Uuid::now_v7(),
        name: "fast".into(),
        channel: None,
        priority: None,
        first_response_minutes: 1,
        resolution_minutes: 60,
        active: true,
        business_hours: None,
        created_at: now,
        updated_at: now,
    };
    sea_orm::ActiveModelTrait::insert(sea_orm::IntoActiveModel::into_active_model(policy), &app.db).await.unwrap();
    let input = json!({ "channel": "CHAT", "direction": "INBOUND", "body": "hi", "externalId": "late-chat",
        "occurredAt": (now - chrono::Duration::minutes(5)).to_rfc3339(), "identities": [{ "kind": "WEB", "value": "d1" }] });
    let rec = app.graphql(RECORD, json!({ "input": input }), Some(&admin)).await;
    cxgraph::interactions::sweeper::sweep(&app.db, chrono::Utc::now(), chrono::Duration::minutes(10))
        .await
        .map_err(|e| e.message())
        .unwrap();
    app.state.bus().wake();
    let got = sub.next(10).await.expect("alert pushed");
    assert_eq!(got["data"]["slaAlert"]["kind"], "sla_breached");
    assert_eq!(
        got["data"]["slaAlert"]["conversationId"],
        rec["data"]["recordInteraction"]["interaction"]["conversationId"]
    );
    app.stop().await;
}

const EVENTS: &str = "query($after: String, $types: [String!]) { events(first: 2, after: $after, types: $types) { \
    pageInfo { hasNextPage endCursor } edges { node { position eventType aggregateId channel } } } }";

#[tokio::test]
async fn a_consumer_catches_up_on_what_it_missed_within_its_rights() {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        let admin = app.login_admin().await.access;
        let a = record(&app, &admin, "EMAIL", "cu-1", "one").await;
        let b = record(&app, &admin, "TWITTER", "cu-2", "two").await;
        let c = record(&app, &admin, "EMAIL", "cu-3", "three").await;
        // On PostgreSQL the feed serves events once they have settled (two seconds).
        tokio::time::sleep(cxgraph::events::bus::GAP_WAIT + std::time::Duration::from_millis(200)).await;
        let types = json!(["interaction.received"]);
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = app.graphql(EVENTS, json!({ "after": after, "types": types }), Some(&admin)).await;
            let conn = &page["data"]["events"];
            let positions: Vec<i64> =
                conn["edges"].as_array().unwrap().iter().map(|e| e["node"]["position"].as_i64().unwrap()).collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "in order: {page}");
            seen.extend(conn["edges"].as_array().unwrap().iter().map(|e| e["node"]["aggregateId"].clone()));
            if conn["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        assert_eq!(
            seen,
            [a["id"].clone(), b["id"].clone(), c["id"].clone()],
            "[{}] every event once, in order",
            backend.name()
        );

        // A token sees only its channels and the types its scopes allow.
        let create = "mutation($s: [TokenScope!]!, $c: [Channel!]) { createApiToken(input: {name: \"feed\", scopes: $s, channels: $c}) { secret } }";
        let social = app.graphql(create, json!({ "s": ["INTERACTIONS_READ"], "c": ["TWITTER"] }), Some(&admin)).await;
        let social = social["data"]["createApiToken"]["secret"].as_str().unwrap().to_owned();
        let page = app.graphql(EVENTS, json!({ "types": types }), Some(&social)).await;
        let ids: Vec<Value> = page["data"]["events"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["aggregateId"].clone())
            .collect();
        assert_eq!(ids, [b["id"].clone()], "[{}] only the twitter event: {page}", backend.name());
        let insights = app.graphql(create, json!({ "s": ["INSIGHTS_READ"], "c": null }), Some(&admin)).await;
        let insights = insights["data"]["createApiToken"]["secret"].as_str().unwrap().to_owned();
        let page = app.graphql(EVENTS, json!({ "types": types }), Some(&insights)).await;
        assert_eq!(page["data"]["events"]["edges"], json!([]), "no interaction events without interactions:read");
        app.stop().await;
    }
}

#[tokio::test]
async fn shutting_down_completes_open_subscriptions() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn(&backend).await;
        let admin = app.login_admin().await.access;
        let mut sub = Subscription::start(&app, Some(&admin), INTERACTIONS).await.expect("may subscribe");
        let stopping = tokio::spawn(app.stop());
        let message = sub.next_message(10).await.expect("an answer before the process goes");
        assert_eq!((message["type"].as_str(), message["id"].as_str()), (Some("complete"), Some("1")), "{message}");
        tokio::time::timeout(std::time::Duration::from_secs(10), stopping).await.expect("shutdown finishes").unwrap();
    }
}

/// A raw `graphql-transport-ws` socket: the upgrade's answer, or the socket after
/// `connection_init` and the first message the server sent back.
async fn raw_socket(
    app: &TestApp,
    token: Option<&str>,
) -> Result<(tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, String), u16>
{
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{Error, Message, http::HeaderValue};
    let mut request = format!("ws://{}/graphql", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => socket,
        Err(Error::Http(response)) => return Err(response.status().as_u16()),
        Err(e) => panic!("upgrade failed: {e}"),
    };
    let Some(token) = token else { return Ok((socket, String::new())) };
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket.send(Message::Text(init.to_string().into())).await.unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await.unwrap();
    let seen = match first {
        Some(Ok(Message::Text(t))) => t.to_string(),
        Some(Ok(Message::Close(frame))) => format!("closed: {frame:?}"),
        other => format!("{other:?}"),
    };
    Ok((socket, seen))
}

#[tokio::test]
async fn websocket_connections_are_limited_per_process_and_per_caller() {
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| {
        s.ws_max_connections = 3;
        s.ws_max_per_caller = 2;
    })
    .await;
    let admin = app.login_admin().await.access;
    let (email, password) = app.create_user(Role::Analyst).await;
    let analyst = app.login(&email, &password).await.access;
    let (first, ack1) = raw_socket(&app, Some(&admin)).await.unwrap();
    let (_second, ack2) = raw_socket(&app, Some(&admin)).await.unwrap();
    assert!(ack1.contains("connection_ack") && ack2.contains("connection_ack"), "{ack1} {ack2}");
    // A third for the same caller: refused at connection_init, and the socket closes
    // with the protocol's "too many" code.
    let (_third, refused) = raw_socket(&app, Some(&admin)).await.unwrap();
    assert!(!refused.contains("connection_ack"), "{refused}");
    assert!(refused.contains("4429") && refused.contains("at most 2 open connections per caller"), "{refused}");
    // Another caller has slots of their own (the refused socket gives its place back).
    let (_theirs, ack3) = admitted(&app, Some(&analyst)).await.unwrap();
    assert!(ack3.contains("connection_ack"), "{ack3}");
    // The process holds three: a fourth upgrade is refused before any socket exists.
    assert_eq!(raw_socket(&app, Some(&analyst)).await.err(), Some(503));
    // Closing one frees its places, in the process and for its caller.
    drop(first);
    let (_again, ack4) = admitted(&app, Some(&admin)).await.unwrap();
    assert!(ack4.contains("connection_ack"), "{ack4}");
    app.stop().await;
}

/// A raw socket, retried while the server still counts a socket that just closed
/// (it gives the place back once its side of the close is done): the upgrade's status
/// when refused for ten seconds.
async fn admitted(
    app: &TestApp,
    token: Option<&str>,
) -> Result<(tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, String), u16>
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match raw_socket(app, token).await {
            Err(status) if std::time::Instant::now() < deadline => {
                let _ = status;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// The close code and reason of a socket's next frame (pings skipped), waiting at
/// most `secs`.
async fn closed_with(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    secs: u64,
) -> Option<(u16, String)> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Some((u16::from(frame.code), frame.reason.to_string()));
                }
                _ => return None,
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(secs), wait).await.ok().flatten()
}

#[tokio::test]
async fn a_socket_that_never_initialises_is_closed() {
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| s.ws_max_connections = 1).await;
    let (mut idle, _) = raw_socket(&app, None).await.unwrap();
    // It holds the only place meanwhile.
    assert_eq!(raw_socket(&app, None).await.err(), Some(503));
    let closed = closed_with(&mut idle, 30).await;
    assert_eq!(closed.map(|c| c.0), Some(4408), "closed for want of connection_init");
    assert!(admitted(&app, None).await.is_ok(), "its place is free again");
    app.stop().await;
}

#[tokio::test]
async fn a_socket_must_authenticate_before_it_is_any_use() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn(&backend).await;
        // An empty connection_init or a bad token: 4403; a subscription first: 4401;
        // something that is not the protocol's: 4400.
        let firsts = [
            (json!({ "type": "connection_init", "payload": {} }).to_string(), 4403),
            (json!({ "type": "connection_init", "payload": { "Authorization": "Bearer not-a-token" } }).to_string(), 4403),
            (json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { alertRaised { id } }" } }).to_string(), 4401),
            ("not json".to_owned(), 4400),
        ];
        for (first, code) in firsts {
            let (mut socket, _) = raw_socket(&app, None).await.unwrap();
            socket.send(Message::Text(first.clone().into())).await.unwrap();
            let closed = closed_with(&mut socket, 30).await;
            assert_eq!(closed.as_ref().map(|c| c.0), Some(code), "[{}] {first}: {closed:?}", backend.name());
        }
        // A ping before connection_init is answered, and the socket still waits for it.
        let admin = app.login_admin().await.access;
        let (mut socket, _) = raw_socket(&app, None).await.unwrap();
        socket.send(Message::Text(json!({ "type": "ping" }).to_string().into())).await.unwrap();
        let pong =
            tokio::time::timeout(std::time::Duration::from_secs(30), futures::StreamExt::next(&mut socket)).await;
        assert!(format!("{pong:?}").contains("pong"), "{pong:?}");
        let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {admin}") } });
        socket.send(Message::Text(init.to_string().into())).await.unwrap();
        let ack = tokio::time::timeout(std::time::Duration::from_secs(30), futures::StreamExt::next(&mut socket)).await;
        assert!(format!("{ack:?}").contains("connection_ack"), "{ack:?}");
        // A message over the size limit closes the socket, whoever sends it.
        let (mut socket, ack) = raw_socket(&app, Some(&admin)).await.unwrap();
        assert!(ack.contains("connection_ack"), "{ack}");
        let huge = json!({ "id": "2", "type": "subscribe", "payload": { "query": "x".repeat(200_000) } });
        let _ = socket.send(Message::Text(huge.to_string().into())).await;
        let closed = closed_with(&mut socket, 30).await;
        assert_eq!(closed.as_ref().map(|c| c.0), Some(1009), "message too big: {closed:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn one_socket_runs_a_bounded_number_of_subscriptions() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn(&backend).await;
        let admin = app.login_admin().await.access;
        let (mut socket, ack) = raw_socket(&app, Some(&admin)).await.unwrap();
        assert!(ack.contains("connection_ack"), "{ack}");
        let max = cxgraph::http::MAX_SUBSCRIPTIONS;
        for id in 0..=max {
            let subscribe = json!({ "id": id.to_string(), "type": "subscribe", "payload": { "query": INTERACTIONS } });
            socket.send(Message::Text(subscribe.to_string().into())).await.unwrap();
        }
        let closed = closed_with(&mut socket, 30).await;
        assert_eq!(closed.as_ref().map(|c| c.0), Some(4429), "[{}] {closed:?}", backend.name());
        // A new socket of the same caller starts afresh.
        let (_again, ack) = admitted(&app, Some(&admin)).await.unwrap();
        assert!(ack.contains("connection_ack"), "{ack}");
        app.stop().await;
    }
}

#[tokio::test]
async fn unauthenticated_sockets_are_capped_per_address() {
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| {
        s.ws_max_pending_per_address = 3;
        // The three held sockets must still be waiting when the fourth comes.
        s.ws_init_timeout = 300;
    })
    .await;
    let admin = app.login_admin().await.access;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(raw_socket(&app, None).await.unwrap().0);
    }
    // A fourth from the same address, before any of them authenticated: refused.
    assert_eq!(raw_socket(&app, None).await.err(), Some(429));
    // One that authenticates leaves the pending count and makes room.
    drop(held.pop());
    let (_signed_in, ack) = admitted(&app, Some(&admin)).await.unwrap();
    assert!(ack.contains("connection_ack"), "{ack}");
    let (_another, ack) = raw_socket(&app, Some(&admin)).await.unwrap();
    assert!(ack.contains("connection_ack"), "authenticated sockets count per caller, not per address: {ack}");
    app.stop().await;
}
