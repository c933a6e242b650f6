//! API tokens: created by admins with scopes, an expiry and a channel limit; shown
//! once, stored hashed, refused once revoked or expired, and held to their scopes and
//! channels on every path.

use cxgraph_tests::{TestApp, error_code, on_each_backend};
use entity::enums::Role;
use entity::prelude::*;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

const CREATE: &str = "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { \
    secret token { id prefix scopes channels expiresAt lastUsedAt } userErrors { field code } } }";

async fn create(app: &TestApp, admin: &str, input: Value) -> (String, String) {
    let body = app.graphql(CREATE, json!({ "input": input }), Some(admin)).await;
    let p = &body["data"]["createApiToken"];
    let secret = p["secret"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned();
    (secret, p["token"]["id"].as_str().unwrap().to_owned())
}

const RECORD: &str = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { \
    interaction { id } userErrors { code } } }";

fn event(channel: &str, ext: &str) -> Value {
    json!({ "input": { "channel": channel, "direction": "INBOUND", "body": "hello there", "externalId": ext,
        "identities": [{ "kind": "TWITTER", "value": format!("h{ext}") }], "customerName": "Tina Token" } })
}

#[tokio::test]
async fn a_partner_token_does_what_its_scopes_and_channels_allow() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let (secret, id) = create(
            app,
            &admin,
            json!({ "name": "Social agency",
            "scopes": ["INTERACTIONS_WRITE", "INTERACTIONS_READ", "CUSTOMERS_READ"], "channels": ["TWITTER"] }),
        )
        .await;
        assert!(secret.starts_with("cxt_"), "recognisable prefix: {secret}");
        let stored = ApiToken::find().all(&app.db).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0].secret_hash, secret);
        assert!(!format!("{stored:?}").contains(&secret[12..]), "only a hash is stored");

        let ok = app.graphql(RECORD, event("TWITTER", "t1"), Some(&secret)).await;
        assert!(ok["data"]["recordInteraction"]["interaction"]["id"].is_string(), "{ok}");
        let other_channel = app.graphql(RECORD, event("EMAIL", "t2"), Some(&secret)).await;
        assert_eq!(error_code(&other_channel), Some("FORBIDDEN"), "{other_channel}");

        let no_scope = app
            .graphql(
                "mutation { createCustomer(input: {displayName: \"x\"}) { userErrors { code } } }",
                json!({}),
                Some(&secret),
            )
            .await;
        assert_eq!(error_code(&no_scope), Some("FORBIDDEN"));
        let not_admin = app.graphql("{ apiTokens { id } }", json!({}), Some(&secret)).await;
        assert_eq!(error_code(&not_admin), Some("FORBIDDEN"));

        // Reads: personal data masked without pii:read; only its channels in the feed.
        record_as_admin(app, &admin).await;
        let feed = app
            .graphql("{ interactions(first: 10) { edges { node { channel body } } } }", json!({}), Some(&secret))
            .await;
        let edges = feed["data"]["interactions"]["edges"].as_array().unwrap_or_else(|| panic!("{feed}"));
        assert_eq!(edges.len(), 1, "the e-mail is outside the token's channels: {feed}");
        assert!(edges[0]["node"]["body"].is_null(), "no bodies without pii:read");
        let customers = app
            .graphql("{ customers(first: 5) { edges { node { displayName piiMasked } } } }", json!({}), Some(&secret))
            .await;
        assert_eq!(customers["data"]["customers"]["edges"][0]["node"]["piiMasked"], true, "{customers}");
        // The 360 of a customer on both channels shows the token only its channels.
        let email_too = json!({ "input": { "channel": "EMAIL", "direction": "INBOUND", "body": "also by mail",
            "externalId": "t1-mail", "identities": [{ "kind": "TWITTER", "value": "ht1" }] } });
        let out = app.graphql(RECORD, email_too, Some(&admin)).await;
        assert!(out["data"]["recordInteraction"]["interaction"]["id"].is_string(), "{out}");
        // Found by its handle by the admin (an exact lookup needs pii:read), read by id.
        let who = "{ customerByIdentity(kind: TWITTER, value: \"ht1\") { id } }";
        let customer_id = app.graphql(who, json!({}), Some(&admin)).await["data"]["customerByIdentity"]["id"].clone();
        let view = "query($id: ID!) { customer(id: $id) { interactions { edges { node { channel } } } \
                    byMail: interactions(channel: EMAIL) { edges { node { channel } } } conversations { channel } } }";
        let view_vars = json!({ "id": customer_id });
        let channels = |body: &Value, list: &str| -> Vec<String> {
            let c = &body["data"]["customer"];
            let items = match list {
                "conversations" => c["conversations"].as_array().cloned().unwrap_or_default(),
                _ => c[list]["edges"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{body}"))
                    .iter()
                    .map(|e| e["node"].clone())
                    .collect(),
            };
            items.iter().map(|n| n["channel"].as_str().unwrap_or_default().to_owned()).collect()
        };
        let full = app.graphql(view, view_vars.clone(), Some(&admin)).await;
        let mut all = channels(&full, "interactions");
        all.sort();
        assert_eq!(all, ["EMAIL", "TWITTER"], "the customer has both: {full}");
        let limited = app.graphql(view, view_vars, Some(&secret)).await;
        assert!(limited["errors"].is_null(), "{limited}");
        assert_eq!(channels(&limited, "interactions"), ["TWITTER"], "{limited}");
        assert!(channels(&limited, "byMail").is_empty(), "asking for e-mail finds nothing: {limited}");
        assert!(channels(&limited, "conversations").iter().all(|c| c == "TWITTER"), "{limited}");
        assert!(channels(&full, "conversations").iter().any(|c| c == "EMAIL"), "{full}");

        // Listed without the secret, used recently, then revoked: refused at once.
        let mut used = Value::Null;
        for _ in 0..50 {
            let listed = app.graphql("{ apiTokens { id prefix lastUsedAt } }", json!({}), Some(&admin)).await;
            used = listed["data"]["apiTokens"][0]["lastUsedAt"].clone();
            if used.is_string() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(used.is_string(), "last use is recorded");
        let revoke = app
            .graphql("mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }", json!({ "id": id }), Some(&admin))
            .await;
        assert!(revoke["data"]["revokeApiToken"]["revokedAt"].is_string(), "{revoke}");
        let after = app.graphql(RECORD, event("TWITTER", "t3"), Some(&secret)).await;
        assert_eq!(error_code(&after), Some("UNAUTHENTICATED"));
        let forged = format!("{}x", &secret[..secret.len() - 1]);
        let bad = app.graphql("{ interactions(first: 1) { edges { cursor } } }", json!({}), Some(&forged)).await;
        assert_eq!(error_code(&bad), Some("UNAUTHENTICATED"));
    })
    .await;
}

async fn record_as_admin(app: &TestApp, admin: &str) {
    let input = json!({ "input": { "channel": "EMAIL", "direction": "INBOUND", "body": "private mail", "externalId": "adm-1",
        "identities": [{ "kind": "EMAIL", "value": "mail@example.com" }] } });
    let out = app.graphql(RECORD, input, Some(admin)).await;
    assert!(out["data"]["recordInteraction"]["interaction"]["id"].is_string(), "{out}");
}

#[tokio::test]
async fn only_admins_create_tokens_and_bad_input_is_explained() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let bad = app
            .graphql(
                CREATE,
                json!({ "input": { "name": " ", "scopes": [], "expiresAt": "2001-01-01T00:00:00Z" } }),
                Some(&admin),
            )
            .await;
        let fields: Vec<Value> = bad["data"]["createApiToken"]["userErrors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].clone())
            .collect();
        assert_eq!(
            fields,
            [json!(["input", "name"]), json!(["input", "scopes"]), json!(["input", "expiresAt"])],
            "{bad}"
        );
        let (email, password) = app.create_user(Role::Manager).await;
        let manager = app.login(&email, &password).await.access;
        let denied =
            app.graphql(CREATE, json!({ "input": { "name": "x", "scopes": ["EXPORT"] } }), Some(&manager)).await;
        assert_eq!(error_code(&denied), Some("FORBIDDEN"));

        // An expired token says so.
        let (secret, id) = create(
            app,
            &admin,
            json!({ "name": "short", "scopes": ["CUSTOMERS_READ"],
            "expiresAt": (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339() }),
        )
        .await;
        assert!(
            app.graphql("{ customers(first: 1) { edges { cursor } } }", json!({}), Some(&secret)).await["errors"]
                .is_null()
        );
        let token = ApiToken::find_by_id(uuid::Uuid::parse_str(&id).unwrap()).one(&app.db).await.unwrap().unwrap();
        let mut active = sea_orm::IntoActiveModel::into_active_model(token);
        active.expires_at = sea_orm::Set(Some(chrono::Utc::now() - chrono::Duration::seconds(1)));
        sea_orm::ActiveModelTrait::update(active, &app.db).await.unwrap();
        let expired = app.graphql("{ customers(first: 1) { edges { cursor } } }", json!({}), Some(&secret)).await;
        assert_eq!(error_code(&expired), Some("UNAUTHENTICATED"));
        assert_eq!(expired["errors"][0]["message"], "access token expired");
    })
    .await;
}

#[tokio::test]
async fn an_identity_conflict_names_the_owner_only_to_callers_who_may_read_personal_data() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let make = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { customer { id } userErrors { code message } } }";
        let owner = app.graphql(make, json!({ "input": { "identities": [{ "kind": "EMAIL", "value": "own@example.com" }] } }), Some(&admin)).await;
        let owner_id = owner["data"]["createCustomer"]["customer"]["id"].as_str().unwrap().to_owned();
        let (write_only, _) = create(app, &admin, json!({ "name": "crm sync", "scopes": ["CUSTOMERS_WRITE"] })).await;
        // Naming the owner of a guessed value is an exact lookup: masked readers do not get it either.
        let (read_write, _) = create(app, &admin, json!({ "name": "crm", "scopes": ["CUSTOMERS_WRITE", "CUSTOMERS_READ"] })).await;
        let (personal, _) =
            create(app, &admin, json!({ "name": "crm+", "scopes": ["CUSTOMERS_WRITE", "CUSTOMERS_READ", "PII_READ"] })).await;
        let again = json!({ "input": { "identities": [{ "kind": "EMAIL", "value": "own@example.com" }] } });
        for (who, token) in [("write-only", &write_only), ("masked reader", &read_write)] {
            let blind = app.graphql(make, again.clone(), Some(token)).await;
            let err = &blind["data"]["createCustomer"]["userErrors"][0];
            assert_eq!(err["code"], "CONFLICT", "{blind}");
            assert!(!blind.to_string().contains(&owner_id), "a {who} token is not told whose it is: {blind}");
        }
        let seeing = app.graphql(make, again, Some(&personal)).await;
        assert!(seeing["data"]["createCustomer"]["userErrors"][0]["message"].as_str().unwrap().contains(&owner_id), "{seeing}");
    })
    .await;
}

#[tokio::test]
async fn the_audit_log_tells_who_did_what_from_which_request() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let body = json!({ "query": "mutation { createApiToken(input: {name: \"audited\", scopes: [EXPORT]}) { token { id } } }" });
        let resp = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&admin)
            .header("x-request-id", "req-audit-42")
            .json(&body)
            .send()
            .await
            .unwrap();
        let created: Value = resp.json().await.unwrap();
        let token_id = created["data"]["createApiToken"]["token"]["id"].as_str().unwrap().to_owned();
        let q = "query($f: AuditFilter) { auditLog(filter: $f, first: 10) { edges { node { operation targetType targetId \
                 actorUserId requestId changes } } } }";
        let log = app.graphql(q, json!({ "f": { "requestId": "req-audit-42" } }), Some(&admin)).await;
        let edges = log["data"]["auditLog"]["edges"].as_array().unwrap_or_else(|| panic!("{log}"));
        assert_eq!(edges.len(), 1, "{log}");
        let e = &edges[0]["node"];
        assert_eq!((e["operation"].as_str(), e["targetType"].as_str()), (Some("createApiToken"), Some("api_token")));
        assert_eq!(e["targetId"], token_id.as_str());
        assert!(e["actorUserId"].is_string());
        assert!(!e["changes"].to_string().contains("cxt_"), "no secret in the log");
        let (email, password) = app.create_user(Role::Manager).await;
        let manager = app.login(&email, &password).await.access;
        assert_eq!(error_code(&app.graphql(q, json!({}), Some(&manager)).await), Some("FORBIDDEN"));
    })
    .await;
}

#[tokio::test]
async fn log_ins_refreshes_and_log_outs_are_audited_without_secrets() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let (email, password) = app.create_user(Role::Agent).await;
        let send = |query: String, variables: Value, token: Option<String>, request_id: &'static str| {
            let mut req = app
                .client
                .post(app.url("/graphql"))
                .header("x-request-id", request_id)
                .json(&json!({ "query": query, "variables": variables }));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) \
                     { session { accessToken refreshToken user { id } } userErrors { code } } }";
        let wrong = send(login.into(), json!({ "e": email, "p": "not-the-password" }), None, "req-login-bad").await;
        assert_eq!(wrong["data"]["login"]["userErrors"][0]["code"], "INVALID_CREDENTIALS");
        let unknown =
            send(login.into(), json!({ "e": "nobody@example.com", "p": "x" }), None, "req-login-nobody").await;
        assert_eq!(unknown["data"]["login"]["userErrors"][0]["code"], "INVALID_CREDENTIALS");
        let ok = send(login.into(), json!({ "e": email, "p": password }), None, "req-login-ok").await;
        let session = &ok["data"]["login"]["session"];
        let user_id = session["user"]["id"].as_str().unwrap().to_owned();
        let refresh = session["refreshToken"].as_str().unwrap().to_owned();
        let rotate = "mutation($t: String!) { refreshToken(input: {refreshToken: $t}) { session { refreshToken } } }";
        let rotated = send(rotate.into(), json!({ "t": refresh }), None, "req-refresh").await;
        let next = rotated["data"]["refreshToken"]["session"]["refreshToken"].as_str().unwrap().to_owned();
        // The old token again: a copy; the family is revoked, and that is audited too.
        let reused = send(rotate.into(), json!({ "t": refresh }), None, "req-reuse").await;
        assert_eq!(error_code(&reused), Some("UNAUTHENTICATED"), "{reused}");
        // (That revoked the access token of the log-in too: log-out needs a new one.)
        let again = send(login.into(), json!({ "e": email, "p": password }), None, "req-login-again").await;
        let access = again["data"]["login"]["session"]["accessToken"].as_str().unwrap().to_owned();
        let logout = "mutation { logout(input: {everywhere: true}) { revoked } }";
        send(logout.into(), json!({}), Some(access), "req-logout").await;

        let q = "query($f: AuditFilter) { auditLog(filter: $f, first: 10) { edges { node { operation targetType \
                 targetId actorUserId changes } } } }";
        let entry = async |request_id: &str| {
            let log = app.graphql(q, json!({ "f": { "requestId": request_id } }), Some(&admin)).await;
            let edges = log["data"]["auditLog"]["edges"].as_array().unwrap_or_else(|| panic!("{log}")).clone();
            assert_eq!(edges.len(), 1, "[{}] one entry for {request_id}: {log}", app.backend.name());
            edges[0]["node"].clone()
        };
        let bad = entry("req-login-bad").await;
        assert_eq!((bad["operation"].as_str(), bad["targetType"].as_str()), (Some("login"), Some("user")));
        assert_eq!(bad["targetId"], user_id.as_str());
        assert!(bad["actorUserId"].is_null(), "a failed log-in has no actor: {bad}");
        assert_eq!(bad["changes"]["outcome"], "failed");
        let nobody = entry("req-login-nobody").await;
        assert!(nobody["targetId"].is_null(), "an unknown e-mail names no user: {nobody}");
        let good = entry("req-login-ok").await;
        assert_eq!(
            (good["actorUserId"].as_str(), good["changes"]["outcome"].as_str()),
            (Some(user_id.as_str()), Some("succeeded"))
        );
        let refreshed = entry("req-refresh").await;
        assert_eq!(
            (refreshed["operation"].as_str(), refreshed["changes"]["outcome"].as_str()),
            (Some("refreshToken"), Some("rotated"))
        );
        let copy = entry("req-reuse").await;
        assert_eq!(copy["changes"]["outcome"], "reused");
        let out = entry("req-logout").await;
        assert_eq!((out["operation"].as_str(), out["actorUserId"].as_str()), (Some("logout"), Some(user_id.as_str())));
        assert_eq!(out["changes"]["everywhere"], true);
        // Nothing secret or personal in any of it.
        let all = app
            .graphql("{ auditLog(first: 100) { edges { node { changes targetId } } } }", json!({}), Some(&admin))
            .await;
        let text = all.to_string();
        for secret in [email.as_str(), password.as_str(), refresh.as_str(), next.as_str(), "nobody@example.com"] {
            assert!(!text.contains(secret), "[{}] the audit log holds {secret}", app.backend.name());
        }
    })
    .await;
}
