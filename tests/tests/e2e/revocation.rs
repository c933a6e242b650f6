//! Access tokens end with the access behind them: a log-out, a reused refresh token,
//! a deactivation and a new role take effect at once on the replica that made the
//! change, within seconds on the others (through the event bus, not the check's
//! expiry), and close the user's open subscriptions. Both backends.

use cxgraph_tests::{ADMIN_EMAIL, Session, Subscription, TestApp, error_code, on_each_backend};
use entity::enums::Role;
use serde_json::{Value, json};

const ME: &str = "{ me { id role } }";
const REFRESH: &str = "mutation($t: String!) { refreshToken(input: {refreshToken: $t}) { \
                       session { accessToken refreshToken } } }";
const LOGOUT: &str = "mutation($t: String, $all: Boolean!) { logout(input: {refreshToken: $t, everywhere: $all}) \
                      { revoked userErrors { code } } }";
const CHANGE: &str = "mutation($e: String!, $role: Role, $active: Boolean) { \
                      changeUserAccess(input: {email: $e, role: $role, active: $active}) { \
                      user { email role active } userErrors { field code message } } }";

/// The role `me` answers with, or `None` when the token was refused as revoked.
async fn role_of(app: &TestApp, access: &str) -> Option<String> {
    let body = app.graphql(ME, json!({}), Some(access)).await;
    if let Some(role) = body["data"]["me"]["role"].as_str() {
        return Some(role.to_owned());
    }
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "[{}] {body}", app.backend.name());
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("revoked"), "refused for another reason: {body}");
    None
}

async fn agent(app: &TestApp) -> (String, String) {
    app.create_user(Role::Agent).await
}

fn session_of(body: &Value) -> Session {
    let s = &body["data"]["refreshToken"]["session"];
    Session {
        access: s["accessToken"].as_str().unwrap_or_else(|| panic!("refreshed: {body}")).to_owned(),
        refresh: s["refreshToken"].as_str().unwrap_or_default().to_owned(),
    }
}

#[tokio::test]
async fn ending_a_session_ends_its_access_tokens_at_once() {
    on_each_backend(async |app: &TestApp| {
        let (email, password) = agent(app).await;
        let (a, b, c) = (
            app.login(&email, &password).await,
            app.login(&email, &password).await,
            app.login(&email, &password).await,
        );
        for s in [&a, &b, &c] {
            // Each verdict is now held by the server: what follows must drop it.
            assert_eq!(role_of(app, &s.access).await.as_deref(), Some("AGENT"));
        }

        // Logging out one session ends its access token, not the others'.
        let out = app.graphql(LOGOUT, json!({ "t": a.refresh, "all": false }), Some(&a.access)).await;
        assert_eq!(out["data"]["logout"]["revoked"], 1, "{out}");
        assert_eq!(role_of(app, &a.access).await, None, "the logged-out session's token");
        assert_eq!(role_of(app, &b.access).await.as_deref(), Some("AGENT"), "another session of the user");

        // A refresh token used twice revokes its family: the tokens issued in it die,
        // the one it was exchanged for too.
        let b2 = session_of(&app.graphql(REFRESH, json!({ "t": b.refresh }), None).await);
        assert_eq!(role_of(app, &b2.access).await.as_deref(), Some("AGENT"));
        let replay = app.graphql(REFRESH, json!({ "t": b.refresh }), None).await;
        assert_eq!(error_code(&replay), Some("UNAUTHENTICATED"), "{replay}");
        assert_eq!(role_of(app, &b.access).await, None, "the stolen family's first token");
        assert_eq!(role_of(app, &b2.access).await, None, "the stolen family's newest token");
        assert_eq!(role_of(app, &c.access).await.as_deref(), Some("AGENT"), "another family lives on");

        // Everywhere: every session of the user.
        let d = app.login(&email, &password).await;
        let out = app.graphql(LOGOUT, json!({ "t": null, "all": true }), Some(&c.access)).await;
        assert!(out["data"]["logout"]["revoked"].as_u64() >= Some(2), "{out}");
        assert_eq!(role_of(app, &c.access).await, None);
        assert_eq!(role_of(app, &d.access).await, None);
        // A new log-in is a new session.
        let e = app.login(&email, &password).await;
        assert_eq!(role_of(app, &e.access).await.as_deref(), Some("AGENT"));
    })
    .await;
}

#[tokio::test]
async fn a_deactivated_or_demoted_user_loses_access_at_once() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let (email, password) = agent(app).await;
        let worker = app.login(&email, &password).await;
        assert_eq!(role_of(app, &worker.access).await.as_deref(), Some("AGENT"));

        // Only admins change access.
        let denied = app.graphql(CHANGE, json!({ "e": email, "active": false }), Some(&worker.access)).await;
        assert_eq!(error_code(&denied), Some("FORBIDDEN"), "{denied}");

        // A new role is the role of the tokens already issued.
        let body = app.graphql(CHANGE, json!({ "e": email.to_uppercase(), "role": "ANALYST" }), Some(&admin)).await;
        assert_eq!(body["data"]["changeUserAccess"]["user"]["role"], "ANALYST", "{body}");
        assert_eq!(role_of(app, &worker.access).await.as_deref(), Some("ANALYST"));
        let search = "{ customers(first: 1, filter: {search: \"a\"}) { nodes { id } } }";
        let masked = app.graphql(search, json!({}), Some(&worker.access)).await;
        assert_eq!(error_code(&masked), Some("FORBIDDEN"), "an analyst may not search personal data: {masked}");

        // Deactivated: the access token, the refresh token and the password all stop.
        let body = app.graphql(CHANGE, json!({ "e": email, "active": false }), Some(&admin)).await;
        assert_eq!(body["data"]["changeUserAccess"]["user"]["active"], false, "{body}");
        assert_eq!(role_of(app, &worker.access).await, None);
        let refreshed = app.graphql(REFRESH, json!({ "t": worker.refresh }), None).await;
        assert_eq!(error_code(&refreshed), Some("UNAUTHENTICATED"), "{refreshed}");
        let login = app.graphql(cxgraph_tests::LOGIN, json!({ "e": email, "p": password }), None).await;
        assert_eq!(login["data"]["login"]["userErrors"][0]["code"], "INVALID_CREDENTIALS", "{login}");

        // Reactivated: a new log-in works; the old tokens stay dead (their family was revoked).
        app.graphql(CHANGE, json!({ "e": email, "active": true }), Some(&admin)).await;
        assert_eq!(role_of(app, &worker.access).await, None);
        let back = app.login(&email, &password).await;
        assert_eq!(role_of(app, &back.access).await.as_deref(), Some("ANALYST"));

        // What cannot be done is a user error, and changes nothing.
        let unknown = app.graphql(CHANGE, json!({ "e": "nobody@example.com", "active": false }), Some(&admin)).await;
        assert_eq!(unknown["data"]["changeUserAccess"]["userErrors"][0]["code"], "NOT_FOUND", "{unknown}");
        let last = app.graphql(CHANGE, json!({ "e": ADMIN_EMAIL, "active": false }), Some(&admin)).await;
        assert_eq!(last["data"]["changeUserAccess"]["userErrors"][0]["code"], "LAST_ADMIN", "{last}");
        let last = app.graphql(CHANGE, json!({ "e": ADMIN_EMAIL, "role": "MANAGER" }), Some(&admin)).await;
        assert_eq!(last["data"]["changeUserAccess"]["userErrors"][0]["code"], "LAST_ADMIN", "{last}");
        assert_eq!(role_of(app, &admin).await.as_deref(), Some("ADMIN"), "the last admin is still one");

        // With a second admin, the first may step down; each change is audited.
        let (second, second_password) = app.create_user(Role::Admin).await;
        let body = app.graphql(CHANGE, json!({ "e": ADMIN_EMAIL, "role": "MANAGER" }), Some(&admin)).await;
        assert_eq!(body["data"]["changeUserAccess"]["user"]["role"], "MANAGER", "{body}");
        assert_eq!(role_of(app, &admin).await.as_deref(), Some("MANAGER"));
        let other_admin = app.login(&second, &second_password).await.access;
        let audit = "{ auditLog(first: 50, filter: {operation: \"changeUserAccess\"}) { nodes { operation } } }";
        let audited = app.graphql(audit, json!({}), Some(&other_admin)).await;
        let entries = audited["data"]["auditLog"]["nodes"].as_array().map_or(0, Vec::len);
        assert_eq!(entries, 4, "every change is audited: {audited}");
    })
    .await;
}

#[tokio::test]
async fn another_replica_hears_of_a_log_out_through_the_event_bus_and_closes_the_users_sockets() {
    on_each_backend(async |app: &TestApp| {
        // The other replica would trust what it checked for a day: only the bus can
        // tell it in time.
        let replica = app.spawn_replica_with(|s| s.session_check_ttl = 86_400).await;
        let (email, password) = agent(app).await;
        let worker = app.login(&email, &password).await;
        assert_eq!(role_of(&replica, &worker.access).await.as_deref(), Some("AGENT"));
        let mut socket = Subscription::start(&replica, Some(&worker.access), "subscription { alertRaised { id } }")
            .await
            .expect("the agent subscribes on the other replica");

        let out = app.graphql(LOGOUT, json!({ "t": null, "all": true }), Some(&worker.access)).await;
        assert_eq!(out["data"]["logout"]["revoked"], 1, "{out}");
        assert_eq!(role_of(app, &worker.access).await, None, "refused at once where it happened");

        // The socket on the other replica is closed, saying why.
        let closed = socket.next_message(60).await.expect("the socket closes within a minute");
        assert_eq!(closed["type"], "closed", "{closed}");
        assert_eq!(closed["code"], 4403, "{closed}");
        assert!(closed["reason"].as_str().unwrap_or_default().contains("revoked"), "{closed}");
        // And by then its verdict was dropped too.
        assert_eq!(role_of(&replica, &worker.access).await, None, "the other replica refuses the token");
        replica.stop().await;
    })
    .await;
}

/// An API token's open subscription ends once the token is revoked (checked every
/// `CXGRAPH_SESSION_CHECK_TTL`, here a second), and a staff socket whose session is
/// ended is closed on the replica that ended it too.
#[tokio::test]
async fn sockets_close_when_their_token_is_revoked_or_their_session_ends() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn_with(&backend, |s| s.session_check_ttl = 1).await;
        let admin = app.login_admin().await.access;
        let created = app
            .graphql(
                "mutation { createApiToken(input: {name: \"feed\", scopes: [INSIGHTS_READ]}) { secret token { id } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        let secret = created["data"]["createApiToken"]["secret"].as_str().unwrap_or_else(|| panic!("{created}"));
        let token_id = created["data"]["createApiToken"]["token"]["id"].clone();
        let mut feed = Subscription::start(&app, Some(secret), "subscription { alertRaised { id } }")
            .await
            .expect("the token subscribes");
        let revoked = app
            .graphql(
                "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }",
                json!({ "id": token_id }),
                Some(&admin),
            )
            .await;
        assert!(revoked["data"]["revokeApiToken"]["revokedAt"].is_string(), "{revoked}");
        let closed = feed.next_message(60).await.expect("the token's socket closes within a minute");
        assert_eq!((closed["type"].as_str(), closed["code"].as_u64()), (Some("closed"), Some(4403)), "{closed}");

        let (email, password) = agent(&app).await;
        let worker = app.login(&email, &password).await;
        let mut mine = Subscription::start(&app, Some(&worker.access), "subscription { alertRaised { id } }")
            .await
            .expect("the agent subscribes");
        let out = app.graphql(LOGOUT, json!({ "t": worker.refresh, "all": false }), Some(&worker.access)).await;
        assert_eq!(out["data"]["logout"]["revoked"], 1, "{out}");
        let closed = mine.next_message(60).await.expect("the agent's socket closes within a minute");
        assert_eq!(closed["code"], 4403, "[{}] {closed}", backend.name());
        assert!(closed["reason"].as_str().unwrap_or_default().contains("revoked"), "{closed}");
        app.stop().await;
    }
}
