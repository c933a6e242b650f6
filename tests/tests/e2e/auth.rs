//! Log-in, refresh rotation and reuse detection, log-out, and the refusal of every bad
//! credential on every protected root field.

use cxgraph::auth::jwt::{AUDIENCE, ISSUER};
use cxgraph::auth::policy::ROOT_FIELDS;
use cxgraph_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET, TestApp, error_code, on_each_backend};
use entity::enums::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ME: &str = "{ me { email role displayName } }";

#[tokio::test]
async fn login_then_me() {
    on_each_backend(async |app: &TestApp| {
        let session = app.login_admin().await;
        let body = app.graphql(ME, json!({}), Some(&session.access)).await;
        assert_eq!(body["data"]["me"]["email"], ADMIN_EMAIL, "{body}");
        assert_eq!(body["data"]["me"]["role"], "ADMIN");

        // E-mail is not case-sensitive.
        app.login(&ADMIN_EMAIL.to_uppercase(), ADMIN_PASSWORD).await;

        let (email, password) = app.create_user(Role::Analyst).await;
        let analyst = app.login(&email, &password).await;
        let body = app.graphql(ME, json!({}), Some(&analyst.access)).await;
        assert_eq!(body["data"]["me"]["role"], "ANALYST");
    })
    .await;
}

#[tokio::test]
async fn wrong_credentials_are_a_user_error_that_does_not_say_which() {
    on_each_backend(async |app: &TestApp| {
        let login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { \
                     session { accessToken } userErrors { field code message } } }";
        let wrong_password = app.graphql(login, json!({ "e": ADMIN_EMAIL, "p": "nope" }), None).await;
        let unknown_user = app.graphql(login, json!({ "e": "ghost@example.com", "p": "nope" }), None).await;
        for body in [&wrong_password, &unknown_user] {
            assert!(body["errors"].is_null(), "{body}");
            assert!(body["data"]["login"]["session"].is_null());
            assert_eq!(body["data"]["login"]["userErrors"][0]["code"], "INVALID_CREDENTIALS");
            assert_eq!(body["data"]["login"]["userErrors"][0]["field"], json!(["input"]));
        }
        assert_eq!(
            wrong_password["data"]["login"]["userErrors"], unknown_user["data"]["login"]["userErrors"],
            "same answer whether or not the account exists"
        );
    })
    .await;
}

const REFRESH: &str = "mutation($t: String!) { refreshToken(input: {refreshToken: $t}) { \
                       session { accessToken refreshToken } } }";

async fn refresh(app: &TestApp, token: &str) -> Value {
    app.graphql(REFRESH, json!({ "t": token }), None).await
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    on_each_backend(async |app: &TestApp| {
        let first = app.login_admin().await;
        let body = refresh(app, &first.refresh).await;
        let second = body["data"]["refreshToken"]["session"]["refreshToken"].as_str().expect("rotated").to_owned();
        let access = body["data"]["refreshToken"]["session"]["accessToken"].as_str().unwrap().to_owned();
        assert_ne!(second, first.refresh, "a new refresh token on every use");
        assert!(second.starts_with("cxr_"), "recognisable prefix");
        let me = app.graphql(ME, json!({}), Some(&access)).await;
        assert_eq!(me["data"]["me"]["email"], ADMIN_EMAIL);

        // Replaying the first token: refused, and the family is revoked.
        let replay = refresh(app, &first.refresh).await;
        assert_eq!(error_code(&replay), Some("UNAUTHENTICATED"), "{replay}");
        let after = refresh(app, &second).await;
        assert_eq!(error_code(&after), Some("UNAUTHENTICATED"), "the thief's or owner's newer token dies too");

        // Another log-in (another family) is unaffected.
        let other = app.login_admin().await;
        let ok = refresh(app, &other.refresh).await;
        assert!(ok["data"]["refreshToken"]["session"].is_object(), "{ok}");

        let garbage = refresh(app, "cxr_not-a-token").await;
        assert_eq!(error_code(&garbage), Some("UNAUTHENTICATED"));
    })
    .await;
}

#[tokio::test]
async fn logout_ends_the_session_or_all_of_them() {
    on_each_backend(async |app: &TestApp| {
        let a = app.login_admin().await;
        let b = app.login_admin().await;
        let logout = "mutation($t: String) { logout(input: {refreshToken: $t}) { revoked userErrors { code } } }";
        let body = app.graphql(logout, json!({ "t": a.refresh }), Some(&a.access)).await;
        assert_eq!(body["data"]["logout"]["revoked"], 1, "{body}");
        assert_eq!(error_code(&refresh(app, &a.refresh).await), Some("UNAUTHENTICATED"));
        assert!(refresh(app, &b.refresh).await["data"]["refreshToken"].is_object(), "other session lives");

        // (a's access token ended with its session; b's lives on.)
        let missing = app.graphql(logout, json!({ "t": null }), Some(&b.access)).await;
        assert_eq!(missing["data"]["logout"]["userErrors"][0]["code"], "REQUIRED", "{missing}");

        let c = app.login_admin().await;
        let all = "mutation { logout(input: {everywhere: true}) { revoked } }";
        let body = app.graphql(all, json!({}), Some(&c.access)).await;
        assert!(body["data"]["logout"]["revoked"].as_u64().unwrap() >= 1, "{body}");
        assert_eq!(error_code(&refresh(app, &c.refresh).await), Some("UNAUTHENTICATED"));
    })
    .await;
}

fn sign(claims: &Value, alg: Algorithm, key: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

fn claims(overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({
        "sub": uuid::Uuid::now_v7(), "role": "admin", "iss": ISSUER, "aud": AUDIENCE,
        "iat": now, "exp": now + 600, "jti": uuid::Uuid::now_v7(),
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// One request per protected root field. A root field added to the schema without a
/// line here fails `every_protected_root_field_is_sampled`.
const PROTECTED_SAMPLES: &[(&str, &str)] = &[
    ("me", "{ me { id } }"),
    ("logout", "mutation { logout(input: {everywhere: true}) { revoked } }"),
    (
        "changeUserAccess",
        "mutation { changeUserAccess(input: {email: \"nobody@example.com\"}) { userErrors { code } } }",
    ),
    ("customer", "{ customer(id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\") { id } }"),
    ("customerByIdentity", "{ customerByIdentity(kind: EMAIL, value: \"x@example.com\") { id } }"),
    ("customers", "{ customers(first: 1) { edges { cursor } } }"),
    ("createCustomer", "mutation { createCustomer(input: {displayName: \"S\"}) { userErrors { code } } }"),
    (
        "updateCustomer",
        "mutation { updateCustomer(input: {id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\", segment: \"x\"}) \
         { userErrors { code } } }",
    ),
    (
        "linkIdentity",
        "mutation { linkIdentity(input: {customerId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\", \
         identity: {kind: EMAIL, value: \"x@example.com\"}}) { userErrors { code } } }",
    ),
    (
        "unlinkIdentity",
        "mutation { unlinkIdentity(input: {identityId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) \
         { userErrors { code } } }",
    ),
    (
        "resolveCustomer",
        "mutation { resolveCustomer(input: {identities: [{kind: EMAIL, value: \"r@example.com\"}]}) { created } }",
    ),
    ("customerMerges", "{ customerMerges(customerId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\") { id } }"),
    ("exportCustomerData", "{ exportCustomerData(id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\") }"),
    (
        "mergeCustomers",
        "mutation { mergeCustomers(input: {survivorId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\", \
         duplicateId: \"01a20815-91b7-7562-85d0-8fc0ed28182e\"}) { userErrors { code } } }",
    ),
    (
        "unmergeCustomers",
        "mutation { unmergeCustomers(input: {mergeId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { userErrors { code } } }",
    ),
    (
        "recordInteraction",
        "mutation { recordInteraction(input: {channel: EMAIL, direction: INBOUND, externalId: \"s-1\", \
         identities: [{kind: EMAIL, value: \"s@example.com\"}]}) { duplicate } }",
    ),
    ("ingestInteractions", "mutation { ingestInteractions(inputs: []) { created } }"),
    ("apiTokens", "{ apiTokens { id } }"),
    ("auditLog", "{ auditLog(first: 1) { edges { cursor } } }"),
    ("events", "{ events(first: 1) { edges { cursor } } }"),
    ("webhookEndpoints", "{ webhookEndpoints { id } }"),
    ("webhookDeliveries", "{ webhookDeliveries(first: 1) { edges { cursor } } }"),
    ("createWebhookEndpoint", "mutation { createWebhookEndpoint(input: {url: \"http://127.0.0.1:9/h\"}) { secret } }"),
    ("redeliverWebhook", "mutation { redeliverWebhook(id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\") { id } }"),
    ("createApiToken", "mutation { createApiToken(input: {name: \"t\", scopes: [PII_READ]}) { secret } }"),
    ("revokeApiToken", "mutation { revokeApiToken(id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\") { id } }"),
    ("alerts", "{ alerts(first: 1) { edges { cursor } } }"),
    (
        "acknowledgeAlert",
        "mutation { acknowledgeAlert(input: {alertId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { userErrors { code } } }",
    ),
    (
        "resolveAlert",
        "mutation { resolveAlert(input: {alertId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { userErrors { code } } }",
    ),
    ("routingRules", "{ routingRules { id } }"),
    ("slaPolicies", "{ slaPolicies { id } }"),
    ("saveRoutingRule", "mutation { saveRoutingRule(input: {name: \"r\"}) { userErrors { code } } }"),
    ("deleteRoutingRule", "mutation { deleteRoutingRule(id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\") }"),
    ("saveSlaPolicy", "mutation { saveSlaPolicy(input: {name: \"p\"}) { userErrors { code } } }"),
    ("conversation", "{ conversation(id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\") { id } }"),
    ("conversations", "{ conversations(first: 1) { edges { cursor } } }"),
    ("interactions", "{ interactions(first: 1) { edges { cursor } } }"),
    (
        "replyToConversation",
        "mutation { replyToConversation(input: {conversationId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\", body: \"b\"}) { userErrors { code } } }",
    ),
    (
        "assignConversation",
        "mutation { assignConversation(input: {conversationId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { userErrors { code } } }",
    ),
    (
        "setConversationPriority",
        "mutation { setConversationPriority(input: {conversationId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\", priority: LOW}) { userErrors { code } } }",
    ),
    (
        "setConversationStatus",
        "mutation { setConversationStatus(input: {conversationId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\", status: OPEN}) { userErrors { code } } }",
    ),
    (
        "resolveConversation",
        "mutation { resolveConversation(input: {conversationId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { userErrors { code } } }",
    ),
    (
        "reopenConversation",
        "mutation { reopenConversation(input: {conversationId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { userErrors { code } } }",
    ),
    (
        "tagConversation",
        "mutation { tagConversation(input: {conversationId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { userErrors { code } } }",
    ),
    ("journeys", "{ journeys { id } }"),
    ("surveys", "{ surveys { id } }"),
    ("topics", "{ topics { id } }"),
    ("saveJourney", "mutation { saveJourney(input: {name: \"j\"}) { userErrors { code } } }"),
    (
        "deleteJourney",
        "mutation { deleteJourney(id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\") { userErrors { code } } }",
    ),
    ("saveSurvey", "mutation { saveSurvey(input: {name: \"s\"}) { userErrors { code } } }"),
    ("saveTopic", "mutation { saveTopic(input: {name: \"t\"}) { userErrors { code } } }"),
    ("deleteTopic", "mutation { deleteTopic(id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\") { deletedId } }"),
    (
        "recordTouchpoint",
        "mutation { recordTouchpoint(input: {journeyId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\", stage: {name: \"x\"}, \
         channel: WEB, name: \"n\", outcome: SUCCESS, customerId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { duplicate } }",
    ),
    ("recordTouchpoints", "mutation { recordTouchpoints(inputs: []) { created } }"),
    (
        "submitFeedback",
        "mutation { submitFeedback(input: {kind: COMMENT, comment: \"hi\", channel: WEB, \
         customerId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { duplicate } }",
    ),
    ("ingestFeedback", "mutation { ingestFeedback(inputs: []) { created } }"),
    (
        "insights",
        "{ insights(range: {from: \"2026-01-01T00:00:00Z\", to: \"2026-02-01T00:00:00Z\"}) { minSampleSize } }",
    ),
    (
        "channelComparison",
        "{ channelComparison(range: {from: \"2026-01-01T00:00:00Z\", to: \"2026-02-01T00:00:00Z\"}) { channel } }",
    ),
    (
        "topicDrivers",
        "{ topicDrivers(range: {from: \"2026-01-01T00:00:00Z\", to: \"2026-02-01T00:00:00Z\"}) { mentions } }",
    ),
    (
        "brandComparison",
        "{ brandComparison(range: {from: \"2026-01-01T00:00:00Z\", to: \"2026-02-01T00:00:00Z\"}) { brands { name } } }",
    ),
    (
        "journeyFunnel",
        "{ journeyFunnel(journeyId: \"01a20815-91b7-7562-85d0-8fc0ed28182d\", \
         range: {from: \"2026-01-01T00:00:00Z\", to: \"2026-02-01T00:00:00Z\"}) { groups { entered } } }",
    ),
    (
        "eraseCustomer",
        "mutation { eraseCustomer(input: {id: \"01a20815-91b7-7562-85d0-8fc0ed28182d\"}) { userErrors { code } } }",
    ),
];

#[test]
fn every_protected_root_field_is_sampled() {
    let sdl = cxgraph::graphql::sdl();
    for (parent, field, policy) in ROOT_FIELDS {
        assert!(sdl.contains(&format!("type {parent}")), "policy for unknown type {parent}");
        // Subscriptions are refused over the WebSocket (see subscriptions.rs).
        if !policy.public && *parent != "Subscription" {
            assert!(
                PROTECTED_SAMPLES.iter().any(|(name, _)| name == field),
                "protected root field {parent}.{field} has no sample request in PROTECTED_SAMPLES"
            );
        }
    }
}

#[tokio::test]
async fn every_protected_root_field_refuses_bad_credentials() {
    on_each_backend(async |app: &TestApp| {
        let session = app.login_admin().await;
        let user_id = app.graphql("{ me { id } }", json!({}), Some(&session.access)).await["data"]["me"]["id"].clone();
        let valid = |extra: Value| {
            let mut c = claims(extra);
            c["sub"] = user_id.clone();
            c
        };
        let now = chrono::Utc::now().timestamp();
        let key = JWT_SECRET.as_bytes();
        let good = sign(&valid(json!({})), Algorithm::HS256, key);
        let cases: Vec<(&str, Option<String>)> = vec![
            ("no token", None),
            (
                "expired",
                Some(format!(
                    "Bearer {}",
                    sign(&valid(json!({"exp": now - 120, "iat": now - 1000})), Algorithm::HS256, key)
                )),
            ),
            (
                "other key",
                Some(format!(
                    "Bearer {}",
                    sign(&valid(json!({})), Algorithm::HS256, b"another-secret-another-secret-0000")
                )),
            ),
            ("other algorithm", Some(format!("Bearer {}", sign(&valid(json!({})), Algorithm::HS512, key)))),
            ("alg none", Some(format!("Bearer {}", unsigned(&valid(json!({})))))),
            (
                "wrong audience",
                Some(format!("Bearer {}", sign(&valid(json!({"aud": "someone-else"})), Algorithm::HS256, key))),
            ),
            ("wrong issuer", Some(format!("Bearer {}", sign(&valid(json!({"iss": "evil"})), Algorithm::HS256, key)))),
            ("no exp", Some(format!("Bearer {}", sign(&valid(json!({"exp": null})), Algorithm::HS256, key)))),
            ("no sub", Some(format!("Bearer {}", sign(&claims(json!({"sub": null})), Algorithm::HS256, key)))),
            ("malformed token", Some("Bearer not.a.jwt".into())),
            (
                "not valid yet (nbf an hour ahead)",
                Some(format!("Bearer {}", sign(&valid(json!({"nbf": now + 3600})), Algorithm::HS256, key))),
            ),
            (
                "exp as a string",
                Some(format!("Bearer {}", sign(&valid(json!({"exp": "9999999999"})), Algorithm::HS256, key))),
            ),
            ("truncated signature", Some(format!("Bearer {}", &good[..good.len() - 6]))),
            (
                "signature of another token",
                Some(format!(
                    "Bearer {}",
                    spliced(&good, &sign(&valid(json!({"role": "analyst"})), Algorithm::HS256, key))
                )),
            ),
            ("unknown kid", Some(format!("Bearer {}", sign_with_kid(&valid(json!({})), "no-such-key", key)))),
            (
                "HS/RS confusion (alg RS256, HMAC signature)",
                Some(format!("Bearer {}", hmac_signed_as(&valid(json!({})), "RS256", key))),
            ),
            (
                "oversized (a valid signature over 20 KB of claims)",
                Some(format!("Bearer {}", sign(&valid(json!({"pad": "x".repeat(20_000)})), Algorithm::HS256, key))),
            ),
            ("malformed header", Some(format!("Basic {}", session.access))),
            ("empty bearer", Some("Bearer ".into())),
        ];
        for (field, document) in PROTECTED_SAMPLES {
            // The valid token passes the access check (the field may still answer, e.g.,
            // NOT_FOUND for the sample id), so a refusal below is the credential's fault.
            let ok = app.graphql(document, json!({}), Some(&app.login_admin().await.access)).await;
            assert!(
                !matches!(error_code(&ok), Some("UNAUTHENTICATED" | "FORBIDDEN" | "GRAPHQL_VALIDATION_FAILED")),
                "[{}] {field} with a valid token: {ok}",
                app.backend.name()
            );
            for (case, header) in &cases {
                let mut req = app.client.post(app.url("/graphql")).json(&json!({ "query": document }));
                if let Some(h) = header {
                    req = req.header("authorization", h);
                }
                let body: Value = req.send().await.unwrap().json().await.unwrap();
                assert_eq!(
                    error_code(&body),
                    Some("UNAUTHENTICATED"),
                    "[{}] {field} / {case}: {body}",
                    app.backend.name()
                );
                assert!(
                    body["data"].is_null() || body["data"][field].is_null(),
                    "{field} / {case} leaked data: {body}"
                );
            }
        }
    })
    .await;
}

/// The header and claims of `token` with the signature of `other`.
fn spliced(token: &str, other: &str) -> String {
    let (signed, _) = token.rsplit_once('.').unwrap();
    let (_, signature) = other.rsplit_once('.').unwrap();
    format!("{signed}.{signature}")
}

fn sign_with_kid(claims: &Value, kid: &str, key: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
}

/// A token whose header names `alg` but whose signature is HMAC-SHA256 with the
/// shared secret: the algorithm-confusion attack, turned on a server that knows only
/// HS256.
fn hmac_signed_as(claims: &Value, alg: &str, key: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let input = format!(
        "{}.{}",
        enc(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
        enc(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", enc(&mac.finalize().into_bytes()))
}

/// A token with `alg: none` and no signature.
fn unsigned(claims: &Value) -> String {
    use base64::Engine;
    let enc = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", enc(&json!({"alg": "none", "typ": "JWT"})), enc(claims))
}

#[tokio::test]
async fn expired_token_says_so() {
    on_each_backend(async |app: &TestApp| {
        let now = chrono::Utc::now().timestamp();
        let token = sign(&claims(json!({"exp": now - 60, "iat": now - 1000})), Algorithm::HS256, JWT_SECRET.as_bytes());
        let body = app.graphql(ME, json!({}), Some(&token)).await;
        assert_eq!(body["errors"][0]["message"], "access token expired", "{body}");
    })
    .await;
}

#[tokio::test]
async fn public_mutations_work_without_a_token_even_with_a_stale_one() {
    on_each_backend(async |app: &TestApp| {
        let login = format!(
            "mutation {{ login(input: {{email: \"{ADMIN_EMAIL}\", password: \"{ADMIN_PASSWORD}\"}}) {{ session {{ accessToken }} }} }}"
        );
        let body = app.graphql(&login, json!({}), Some("stale.or.garbage")).await;
        assert!(body["data"]["login"]["session"]["accessToken"].is_string(), "{body}");
    })
    .await;
}

#[tokio::test]
async fn a_hash_with_old_parameters_is_upgraded_at_log_in() {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    on_each_backend(async |app: &TestApp| {
        let (email, password) = app.create_user(Role::Agent).await;
        let user =
            entity::user::Entity::find().all(&app.db).await.unwrap().into_iter().find(|u| u.email == email).unwrap();
        let params = argon2::Params::new(4096, 1, 1, None).unwrap();
        let old = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let mut active = user.clone().into_active_model();
        active.password_hash = Set(old.clone());
        active.update(&app.db).await.unwrap();
        app.login(&email, &password).await;
        let after = entity::user::Entity::find_by_id(user.id).one(&app.db).await.unwrap().unwrap();
        assert_ne!(after.password_hash, old, "rehashed");
        assert!(after.password_hash.contains("m=19456,t=2,p=1"), "{}", after.password_hash);
        app.login(&email, &password).await;
    })
    .await;
}

#[tokio::test]
async fn repeated_failures_slow_log_in_down_for_known_and_unknown_e_mails_alike() {
    on_each_backend(async |app: &TestApp| {
        let login = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { \
                     session { accessToken } userErrors { code } } }";
        for email in [ADMIN_EMAIL, "nobody-here@example.com"] {
            for _ in 0..5 {
                let body = app.graphql(login, json!({ "e": email, "p": "guess" }), None).await;
                assert_eq!(body["data"]["login"]["userErrors"][0]["code"], "INVALID_CREDENTIALS", "{body}");
            }
            let limited = app.graphql(login, json!({ "e": email, "p": ADMIN_PASSWORD }), None).await;
            assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "[{email}] {limited}");
            let retry = limited["errors"][0]["extensions"]["retryAfterSeconds"].as_u64().unwrap();
            assert!((1..=30).contains(&retry), "{limited}");
        }
        // Other accounts are unaffected.
        let (email, password) = app.create_user(Role::Agent).await;
        app.login(&email, &password).await;
    })
    .await;
}

const LOGIN: &str = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { \
                     session { accessToken } userErrors { field code } } }";

/// A log-in sent as if from `address` (the test servers below trust `x-forwarded-for`,
/// as a server behind a proxy is told to).
async fn login_from(app: &TestApp, address: &str, email: &str, password: &str) -> Value {
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", address)
        .json(&json!({ "query": LOGIN, "variables": { "e": email, "p": password } }))
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

fn behind_a_proxy(s: &mut cxgraph::config::Settings) {
    s.client_ip_header = Some(axum::http::HeaderName::from_static("x-forwarded-for"));
}

#[tokio::test]
async fn a_guesser_elsewhere_cannot_lock_the_user_out() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn_with(&backend, behind_a_proxy).await;
        for _ in 0..8 {
            let body = login_from(&app, "203.0.113.66", ADMIN_EMAIL, "guess").await;
            assert!(body["data"].is_object() || error_code(&body) == Some("RATE_LIMITED"), "{body}");
        }
        let locked = login_from(&app, "203.0.113.66", ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(error_code(&locked), Some("RATE_LIMITED"), "the guesser's address is held back: {locked}");
        // The admin, from their own desk, logs in: the guesser locked only itself.
        let own = login_from(&app, "192.0.2.10", ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert!(own["data"]["login"]["session"]["accessToken"].is_string(), "[{}] {own}", backend.name());
        app.stop().await;
    }
}

#[tokio::test]
async fn guessing_from_many_addresses_is_slowed_for_strangers_only() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn_with(&backend, behind_a_proxy).await;
        // The admin's usual address has logged in before.
        let own = login_from(&app, "192.0.2.10", ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert!(own["data"]["login"]["session"].is_object(), "{own}");
        for i in 0..cxgraph::auth::throttle::GLOBAL_FREE {
            let body = login_from(&app, &format!("198.51.100.{i}"), ADMIN_EMAIL, "guess").await;
            assert_eq!(body["data"]["login"]["userErrors"][0]["code"], "INVALID_CREDENTIALS", "{body}");
        }
        // Strangers now take turns: of two at once, one passes and the other waits
        // (even holding the right password).
        let (first, second) = tokio::join!(
            login_from(&app, "203.0.113.1", ADMIN_EMAIL, ADMIN_PASSWORD),
            login_from(&app, "203.0.113.2", ADMIN_EMAIL, ADMIN_PASSWORD),
        );
        let limited = [&first, &second].iter().filter(|b| error_code(b) == Some("RATE_LIMITED")).count();
        assert_eq!(limited, 1, "{first} {second}");
        // The admin's own address is not held back.
        let again = login_from(&app, "192.0.2.10", ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert!(again["data"]["login"]["session"]["accessToken"].is_string(), "[{}] {again}", backend.name());
        app.stop().await;
    }
}

#[tokio::test]
async fn log_in_refuses_oversized_input_before_it_is_counted_or_hashed() {
    on_each_backend(async |app: &TestApp| {
        let huge = format!("{}@example.com", "a".repeat(1 << 20));
        let body = app.graphql(LOGIN, json!({ "e": huge, "p": "whatever" }), None).await;
        let errors = &body["data"]["login"]["userErrors"];
        assert_eq!(errors[0]["code"], "TOO_LONG", "{body}");
        assert_eq!(errors[0]["field"], json!(["input", "email"]));
        let long_password = "p".repeat(cxgraph::auth::password::MAX_PASSWORD_LEN + 1);
        let body = app.graphql(LOGIN, json!({ "e": ADMIN_EMAIL, "p": long_password }), None).await;
        assert_eq!(body["data"]["login"]["userErrors"][0]["field"], json!(["input", "password"]), "{body}");
        // Neither counted as a failure: six of them leave the account open.
        for _ in 0..6 {
            app.graphql(LOGIN, json!({ "e": ADMIN_EMAIL, "p": long_password }), None).await;
        }
        app.login_admin().await;
    })
    .await;
}

#[tokio::test]
async fn a_cross_site_simple_request_cannot_log_in_or_lock_out() {
    on_each_backend(async |app: &TestApp| {
        let body = json!({ "query": LOGIN, "variables": { "e": ADMIN_EMAIL, "p": "guess" } }).to_string();
        // What a page on another site can send without asking first: a form's types, or
        // text/plain, or no type at all.
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            for _ in 0..6 {
                let mut req = app.client.post(app.url("/graphql")).body(body.clone());
                if let Some(ct) = content_type {
                    req = req.header("content-type", ct);
                }
                let resp = req.send().await.unwrap();
                assert_eq!(resp.status(), 415, "{content_type:?}");
                let refused: Value = resp.json().await.unwrap();
                assert_eq!(error_code(&refused), Some("UNSUPPORTED_MEDIA_TYPE"), "{refused}");
            }
        }
        // None of those ran: the admin is not locked out.
        app.login_admin().await;
        // JSON (with a charset) is what clients send.
        let resp = app
            .client
            .post(app.url("/graphql"))
            .header("content-type", "application/json; charset=utf-8")
            .body(json!({ "query": ME }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_client_address() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            behind_a_proxy(s);
            // Two a minute: a token comes back every 30 s, longer than the test.
            s.anonymous_rate_limit = 2;
        })
        .await;
        let admin = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access;
        let get = |address: &'static str, token: Option<String>| {
            let mut req =
                app.client.get(app.url("/graphql")).header("x-forwarded-for", address).query(&[("query", ME)]);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            async move {
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), resp.headers().get("retry-after").is_some())
            }
        };
        // The harness's own log-in above came from the peer address, not these.
        for _ in 0..2 {
            assert_eq!(get("203.0.113.5", None).await.0, 200);
        }
        assert_eq!(get("203.0.113.5", None).await, (429, true), "the third in the minute waits");
        // A refused credential counts as anonymous too (a bad token costs a lookup).
        assert_eq!(get("203.0.113.5", Some("cxt_nope_nope".into())).await.0, 429);
        let upgrade = {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut request = format!("ws://{}/graphql", app.addr).into_client_request().unwrap();
            request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
            request.headers_mut().insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
            match tokio_tungstenite::connect_async(request).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
                other => panic!("expected a refused upgrade: {:?}", other.map(|_| ())),
            }
        };
        assert_eq!(upgrade, 429, "a WebSocket upgrade is counted too");
        let ingest =
            app.client.post(app.url("/ingest/interactions")).header("x-forwarded-for", "203.0.113.5").body("{}");
        assert_eq!(ingest.send().await.unwrap().status(), 429, "every endpoint counts the address");
        assert_eq!(get("203.0.113.6", None).await.0, 200, "another address has its own allowance");
        assert_eq!(get("203.0.113.5", Some(admin.clone())).await.0, 200, "a signed-in caller is counted as themselves");
        // What a page on another site can make a browser send (GETs, upgrades, simple
        // POSTs) does not use up the log-ins of that address: JSON POSTs count apart.
        let own = login_from(&app, "203.0.113.5", ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert!(own["data"]["login"]["session"]["accessToken"].is_string(), "[{}] {own}", backend.name());
        app.stop().await;
    }
}
