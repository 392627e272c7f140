//! Integration tests for service accounts and OAuth 2.0 in the Atlas simulator: the token
//! and revocation endpoints, bearer authentication on the Admin API, the service-account
//! endpoints (org and project scopes, secrets, access lists, invite), the seeded service
//! account, the admin API for service accounts, inventory, stats, faults, rate limits and
//! journal redaction. Clients here authenticate with bearer tokens only.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use atlas_sim::{
    BucketConfig, FaultRule, NewServiceAccountRequest, RateLimitConfig, SimConfig, SimHandle,
    Simulator,
};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const V2: &str = "application/vnd.atlas.2023-01-01+json";
const V2_SA: &str = "application/vnd.atlas.2024-08-05+json";
const FORM: &str = "application/x-www-form-urlencoded";

fn http() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn error_code(&self) -> String {
        self.json()["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A bearer-token client of one simulator.
struct Client {
    http: reqwest::Client,
    base: String,
}

fn basic(client_id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"))
    )
}

impl Client {
    fn new(sim: &SimHandle) -> Self {
        Self {
            http: http(),
            base: sim.base_url.clone(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await.expect("request failed");
        Resp {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    /// `POST /api/oauth/token` with the given Authorization, content type and body.
    async fn token_raw(&self, auth: Option<&str>, content_type: Option<&str>, body: &str) -> Resp {
        let mut headers = Vec::new();
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        self.send(
            Method::POST,
            "/api/oauth/token",
            &headers,
            Some(body.to_owned()),
        )
        .await
    }

    async fn token_request(&self, client_id: &str, secret: &str) -> Resp {
        self.token_raw(
            Some(&basic(client_id, secret)),
            Some(FORM),
            "grant_type=client_credentials",
        )
        .await
    }

    /// A fresh access token (asserts success).
    async fn token(&self, client_id: &str, secret: &str) -> String {
        let resp = self.token_request(client_id, secret).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
        resp.json()["access_token"].as_str().unwrap().to_owned()
    }

    async fn revoke(&self, client_id: &str, secret: &str, body: &str) -> Resp {
        self.send(
            Method::POST,
            "/api/oauth/revoke",
            &[
                ("Authorization", &basic(client_id, secret)),
                ("Content-Type", FORM),
            ],
            Some(body.to_owned()),
        )
        .await
    }

    /// A v2 call with a bearer token; the media type follows the resource.
    async fn api(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        let accept = if path.contains("/serviceAccounts") {
            V2_SA
        } else {
            V2
        };
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Accept", accept), ("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", accept));
        }
        self.send(
            method,
            &format!("/api/atlas/v2{path}"),
            &headers,
            body.map(|b| b.to_string()),
        )
        .await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.send(
            method,
            &format!("/admin{path}"),
            &[],
            body.map(|b| b.to_string()),
        )
        .await
    }
}

async fn start() -> SimHandle {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

/// A client with a token of the seeded ORG_OWNER service account.
async fn owner(sim: &SimHandle) -> (Client, String) {
    let client = Client::new(sim);
    let token = client.token(&sim.sa_client_id, &sim.sa_client_secret).await;
    (client, token)
}

fn admin_sa(sim: &SimHandle, org_roles: &[&str]) -> atlas_sim::CreatedServiceAccount {
    sim.create_service_account(NewServiceAccountRequest {
        org_roles: org_roles.iter().map(|r| (*r).to_owned()).collect(),
        ..NewServiceAccountRequest::default()
    })
    .unwrap()
}

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

fn is_client_id(s: &str) -> bool {
    s.strip_prefix("mdb_sa_id_")
        .is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

// ---- the token endpoint -----------------------------------------------------------------------

#[tokio::test]
async fn seeded_service_account_gets_a_token_and_uses_it() {
    let sim = start().await;
    assert!(is_client_id(&sim.sa_client_id));
    assert!(sim.sa_client_secret.starts_with("mdb_sa_sk_"));
    assert_eq!(sim.startup_info().sa_client_id, sim.sa_client_id);
    let client = Client::new(&sim);

    let resp = client
        .token_request(&sim.sa_client_id, &sim.sa_client_secret)
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("eyJ") && token.split('.').count() == 3);

    let keys = client
        .api(
            token,
            Method::GET,
            &format!("/orgs/{}/apiKeys", sim.org_id),
            None,
        )
        .await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.text);
    assert!(keys.header("www-authenticate").is_none());
    let sas = client
        .api(
            token,
            Method::GET,
            &format!("/orgs/{}/serviceAccounts", sim.org_id),
            None,
        )
        .await;
    assert_eq!(sas.status, StatusCode::OK);
    assert_eq!(
        sas.json()["results"][0]["clientId"],
        sim.sa_client_id.as_str()
    );
    // The deprecated v1.0 API takes bearer tokens as well.
    let v1 = client
        .send(
            Method::GET,
            &format!("/api/atlas/v1.0/orgs/{}/apiKeys", sim.org_id),
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .await;
    assert_eq!(v1.status, StatusCode::OK);

    // Without any Authorization header the Digest challenge is unchanged.
    let anonymous = client
        .send(
            Method::GET,
            &format!("/api/atlas/v2/orgs/{}/apiKeys", sim.org_id),
            &[("Accept", V2)],
            None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous
        .header("www-authenticate")
        .unwrap()
        .starts_with("Digest "));

    let stats = sim.stats();
    let route = stats.route("POST /api/oauth/token");
    assert_eq!((route.total, route.status(200)), (1, 1));
    assert_eq!(route.challenges, 0);
    assert_eq!(
        stats
            .route("GET /api/atlas/v2/orgs/{orgId}/apiKeys")
            .status(200),
        1
    );
    assert_eq!(stats.challenges, 1);
    let journal = sim.journal(0);
    let token_entry = journal
        .iter()
        .find(|e| e.route == "POST /api/oauth/token")
        .unwrap();
    assert_eq!(
        token_entry.client_id.as_deref(),
        Some(sim.sa_client_id.as_str())
    );
    assert!(token_entry.public_key.is_none());
    let inventory = sim.inventory();
    let seeded = inventory.service_account(&sim.sa_client_id).unwrap();
    assert!(seeded.seeded);
    assert_eq!(seeded.roles, ["ORG_OWNER"]);
    assert_eq!(seeded.active_tokens, 1);
    assert!(seeded.secrets[0].last_used_at.is_some());
    assert_eq!(inventory.issued_service_accounts().count(), 0);
}

#[tokio::test]
async fn token_endpoint_errors_are_oauth_shaped() {
    let sim = start().await;
    let client = Client::new(&sim);
    let (id, secret) = (sim.sa_client_id.as_str(), sim.sa_client_secret.as_str());

    let wrong = client.token_request(id, "mdb_sa_sk_wrong").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json(),
        json!({"error":"invalid_client","error_description":"Invalid credentials provided."})
    );
    assert!(wrong.header("www-authenticate").is_none());
    let unknown = client
        .token_request("mdb_sa_id_0123456789abcdef01234567", secret)
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let none = client
        .token_raw(None, Some(FORM), "grant_type=client_credentials")
        .await;
    assert_eq!(none.json()["error"], "invalid_client");
    let garbage = client
        .token_raw(
            Some("Basic not-base64!"),
            Some(FORM),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);

    let auth = basic(id, secret);
    let grant = client
        .token_raw(Some(&auth), Some(FORM), "grant_type=password")
        .await;
    assert_eq!(grant.status, StatusCode::BAD_REQUEST);
    assert_eq!(grant.json()["error"], "unsupported_grant_type");
    let missing = client.token_raw(Some(&auth), Some(FORM), "").await;
    assert_eq!(
        (missing.status, missing.json()["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let json_body = client
        .token_raw(
            Some(&auth),
            Some("application/json"),
            r#"{"grant_type":"client_credentials"}"#,
        )
        .await;
    assert_eq!(json_body.json()["error"], "invalid_request");
    let duplicate = client
        .token_raw(
            Some(&auth),
            Some(FORM),
            "grant_type=client_credentials&grant_type=client_credentials",
        )
        .await;
    assert_eq!(duplicate.json()["error"], "invalid_request");
    let get = client
        .send(
            Method::GET,
            "/api/oauth/token",
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), Some("POST"));

    let stats = sim.stats();
    assert_eq!(stats.token_failures, 4);
    assert_eq!(stats.challenges, 0);
    assert_eq!(
        stats.route("POST /api/oauth/token").status(400),
        4,
        "{stats:?}"
    );
    assert_eq!(sim.inventory().service_accounts[0].active_tokens, 0);
}

#[tokio::test]
async fn bad_bearer_tokens_get_401_without_a_challenge() {
    let sim = start().await;
    let client = Client::new(&sim);
    let path = format!("/orgs/{}/apiKeys", sim.org_id);
    for token in ["eyJhbGciOiJIUzI1NiJ9.e30.bogus", ""] {
        let resp = client.api(token, Method::GET, &path, None).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(resp.header("www-authenticate").is_none());
        assert_eq!(resp.json()["error"], 401);
        assert_eq!(resp.error_code(), "UNEXPECTED_ERROR");
    }
    let stats = sim.stats();
    assert_eq!((stats.bearer_failures, stats.challenges), (2, 0));
}

#[tokio::test]
async fn revoke_stops_a_token() {
    let sim = start().await;
    let (client, token) = owner(&sim).await;
    let (id, secret) = (sim.sa_client_id.as_str(), sim.sa_client_secret.as_str());
    let path = format!("/orgs/{}", sim.org_id);
    assert_eq!(
        client.api(&token, Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    let other = client.token(id, secret).await;

    let revoked = client
        .revoke(
            id,
            secret,
            &format!("token={token}&token_type_hint=access_token"),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(
        client.api(&token, Method::GET, &path, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Only that token: the other one still works.
    assert_eq!(
        client.api(&other, Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    // RFC 7009: unknown (or already revoked) tokens are not an error.
    assert_eq!(
        client
            .revoke(id, secret, &format!("token={token}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        client.revoke(id, secret, "token_type_hint=x").await.json()["error"],
        "invalid_request"
    );
    assert_eq!(
        client
            .revoke(id, "mdb_sa_sk_nope", &format!("token={other}"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Another client cannot revoke it.
    let stranger = admin_sa(&sim, &["ORG_MEMBER"]);
    let refused = client
        .revoke(
            &stranger.client_id,
            &stranger.client_secret,
            &format!("token={other}"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        client.api(&other, Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    assert_eq!(sim.stats().route("POST /api/oauth/revoke").status(200), 2);
}

#[tokio::test]
async fn tokens_expire_after_the_configured_lifetime() {
    let sim = start().await;
    let client = Client::new(&sim);
    let set = client
        .admin(
            Method::PUT,
            "/oauth",
            Some(json!({"token_lifetime_ms": 200})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(
        client.admin(Method::GET, "/oauth", None).await.json()["token_lifetime_ms"],
        200
    );
    let resp = client
        .token_request(&sim.sa_client_id, &sim.sa_client_secret)
        .await;
    assert_eq!(resp.json()["expires_in"], 1, "rounded up to whole seconds");
    let token = resp.json()["access_token"].as_str().unwrap().to_owned();
    let path = format!("/orgs/{}", sim.org_id);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client.api(&token, Method::GET, &path, None).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(Instant::now() < deadline, "token never expired");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        sim.inventory()
            .service_account(&sim.sa_client_id)
            .unwrap()
            .active_tokens,
        0
    );
    // Tokens issued after the lifetime changes get the new one.
    sim.set_token_lifetime(Duration::from_secs(60));
    assert_eq!(sim.token_lifetime(), Duration::from_secs(60));
    let resp = client
        .token_request(&sim.sa_client_id, &sim.sa_client_secret)
        .await;
    assert_eq!(resp.json()["expires_in"], 60);
    let fresh = resp.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        client.api(&fresh, Method::GET, &path, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_secret_cannot_get_a_token() {
    let sim = start().await;
    let client = Client::new(&sim);
    let expired = sim
        .create_service_account(NewServiceAccountRequest {
            org_roles: vec!["ORG_OWNER".into()],
            secret_expires_after_hours: Some(0),
            ..NewServiceAccountRequest::default()
        })
        .unwrap();
    let resp = client
        .token_request(&expired.client_id, &expired.client_secret)
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(resp.json()["error"], "invalid_client");
    let inventory = sim.inventory();
    assert!(
        inventory
            .service_account(&expired.client_id)
            .unwrap()
            .secrets[0]
            .expired
    );
}

// ---- service accounts -----------------------------------------------------------------------

#[tokio::test]
async fn org_service_account_lifecycle_with_masked_secrets() {
    let sim = start().await;
    let (client, token) = owner(&sim).await;
    let base = format!("/orgs/{}/serviceAccounts", sim.org_id);
    let before = OffsetDateTime::now_utc();
    let created = client
        .api(
            &token,
            Method::POST,
            &base,
            Some(json!({"name":"vault-sa","description":"issued by vault","roles":["ORG_MEMBER","ORG_READ_ONLY"],"secretExpiresAfterHours":8})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.header("content-type"),
        Some("application/vnd.atlas.2024-08-05+json;charset=utf-8")
    );
    assert_eq!(created.header("ratelimit-limit"), Some("500"));
    let sa = created.json();
    let client_id = sa["clientId"].as_str().unwrap().to_owned();
    assert!(is_client_id(&client_id));
    assert_eq!(sa["name"], "vault-sa");
    assert_eq!(sa["description"], "issued by vault");
    assert_eq!(sa["roles"], json!(["ORG_MEMBER", "ORG_READ_ONLY"]));
    let secret = &sa["secrets"][0];
    let plaintext = secret["secret"].as_str().unwrap().to_owned();
    assert!(plaintext.starts_with("mdb_sa_sk_"));
    assert!(secret.get("maskedSecretValue").is_none());
    assert!(secret["id"].as_str().unwrap().len() == 24);
    let expires = parse_time(&secret["expiresAt"]);
    let hours = (expires - parse_time(&secret["createdAt"])).whole_hours();
    assert_eq!(hours, 8);
    assert!(expires >= before + time::Duration::hours(8) - time::Duration::seconds(1));

    let one = format!("{base}/{client_id}");
    let got = client.api(&token, Method::GET, &one, None).await;
    assert_eq!(got.status, StatusCode::OK);
    let got = got.json();
    let masked = &got["secrets"][0];
    assert!(masked.get("secret").is_none(), "{got}");
    let masked_value = masked["maskedSecretValue"].as_str().unwrap();
    assert!(masked_value.starts_with("mdb_sa_sk_") && !masked_value.contains(&plaintext[10..]));
    assert!(!got.to_string().contains(&plaintext));

    // Pagination: the seeded account and this one.
    let page = client
        .api(&token, Method::GET, &format!("{base}?itemsPerPage=1"), None)
        .await
        .json();
    assert_eq!(page["totalCount"], 2);
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert!(page["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["rel"] == "next"));
    assert!(!page.to_string().contains("\"secret\""));

    let patched = client
        .api(
            &token,
            Method::PATCH,
            &one,
            Some(json!({"name":"renamed","roles":["ORG_OWNER"]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let patched = patched.json();
    assert_eq!(
        (&patched["name"], &patched["description"], &patched["roles"]),
        (
            &json!("renamed"),
            &json!("issued by vault"),
            &json!(["ORG_OWNER"])
        )
    );
    let bad_role = client
        .api(
            &token,
            Method::PATCH,
            &one,
            Some(json!({"roles":["GROUP_OWNER"]})),
        )
        .await;
    assert_eq!(bad_role.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_role.error_code(), "INVALID_ROLE_FOR_ORG");

    // The new account's own secret works at the token endpoint.
    let own = client.token(&client_id, &plaintext).await;
    assert_eq!(
        client.api(&own, Method::GET, &one, None).await.status,
        StatusCode::OK
    );

    assert_eq!(
        client.api(&token, Method::DELETE, &one, None).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = client.api(&token, Method::GET, &one, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "SERVICE_ACCOUNT_NOT_FOUND");
    assert_eq!(
        client.api(&token, Method::DELETE, &one, None).await.status,
        StatusCode::NOT_FOUND
    );
    // Deleting the account revoked its token and its secret.
    assert_eq!(
        client
            .api(&own, Method::GET, &format!("/orgs/{}", sim.org_id), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client.token_request(&client_id, &plaintext).await.status,
        StatusCode::UNAUTHORIZED
    );
    let bad_id = client
        .api(&token, Method::GET, &format!("{base}/abc"), None)
        .await;
    assert_eq!(bad_id.error_code(), "PATH_PARAM_PARSE_ERROR");
    let wrong_version = client
        .send(
            Method::GET,
            &format!("/api/atlas/v2{base}"),
            &[
                ("Accept", V2),
                ("Authorization", &format!("Bearer {token}")),
            ],
            None,
        )
        .await;
    assert_eq!(wrong_version.status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn create_validation_and_limits() {
    let sim = Simulator::start(SimConfig {
        max_service_accounts_per_org: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (client, token) = owner(&sim).await;
    let base = format!("/orgs/{}/serviceAccounts", sim.org_id);
    let body = |name: Value, description: Value, roles: Value, hours: Value| json!({"name": name, "description": description, "roles": roles, "secretExpiresAfterHours": hours});
    let cases = [
        (
            body(
                json!("x".repeat(65)),
                json!("d"),
                json!(["ORG_MEMBER"]),
                json!(8),
            ),
            "INVALID_ATTRIBUTE",
        ),
        (
            body(
                json!("bad/name"),
                json!("d"),
                json!(["ORG_MEMBER"]),
                json!(8),
            ),
            "INVALID_ATTRIBUTE",
        ),
        (
            body(
                json!("n"),
                json!("d".repeat(251)),
                json!(["ORG_MEMBER"]),
                json!(8),
            ),
            "INVALID_ATTRIBUTE",
        ),
        (
            body(json!("n"), json!("d"), json!([]), json!(8)),
            "INVALID_ATTRIBUTE",
        ),
        (
            body(json!("n"), json!("d"), json!(["GROUP_OWNER"]), json!(8)),
            "INVALID_ROLE_FOR_ORG",
        ),
        (
            body(json!("n"), json!("d"), json!(["ORG_MEMBER"]), json!(7)),
            "INVALID_ATTRIBUTE",
        ),
        (
            body(json!("n"), json!("d"), json!(["ORG_MEMBER"]), json!(8761)),
            "INVALID_ATTRIBUTE",
        ),
        (
            json!({"name":"n","description":"d","roles":["ORG_MEMBER"]}),
            "INVALID_ATTRIBUTE",
        ),
    ];
    for (bad, code) in cases {
        let resp = client
            .api(&token, Method::POST, &base, Some(bad.clone()))
            .await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(resp.error_code(), code, "{bad}");
    }
    for hours in [8, 8760] {
        let resp = client
            .api(
                &token,
                Method::POST,
                &base,
                Some(body(
                    json!("n"),
                    json!("d"),
                    json!(["ORG_MEMBER"]),
                    json!(hours),
                )),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{hours}: {}", resp.text);
    }
    // The seeded account and two more: the third is over the limit.
    let over = client
        .api(
            &token,
            Method::POST,
            &base,
            Some(body(
                json!("n"),
                json!("d"),
                json!(["ORG_MEMBER"]),
                json!(8),
            )),
        )
        .await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    assert_eq!(over.error_code(), "MAX_SERVICE_ACCOUNTS_PER_ORG_EXCEEDED");
    assert_eq!(sim.inventory().service_accounts.len(), 3);
}

#[tokio::test]
async fn secrets_at_most_two_shorten_the_others_and_deleting_one_revokes_its_tokens() {
    let sim = start().await;
    let (client, token) = owner(&sim).await;
    let base = format!("/orgs/{}/serviceAccounts", sim.org_id);
    let sa = client
        .api(
            &token,
            Method::POST,
            &base,
            Some(json!({"name":"rotating","description":"d","roles":["ORG_OWNER"],"secretExpiresAfterHours":8760})),
        )
        .await
        .json();
    let client_id = sa["clientId"].as_str().unwrap().to_owned();
    let first_id = sa["secrets"][0]["id"].as_str().unwrap().to_owned();
    let first = sa["secrets"][0]["secret"].as_str().unwrap().to_owned();
    let first_token = client.token(&client_id, &first).await;
    let secrets = format!("{base}/{client_id}/secrets");

    for hours in [7, 8761] {
        let resp = client
            .api(
                &token,
                Method::POST,
                &secrets,
                Some(json!({ "secretExpiresAfterHours": hours })),
            )
            .await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{hours}");
        assert_eq!(resp.error_code(), "INVALID_ATTRIBUTE");
    }
    let now = OffsetDateTime::now_utc();
    let added = client
        .api(
            &token,
            Method::POST,
            &secrets,
            Some(json!({"secretExpiresAfterHours": 8760})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let added = added.json();
    let second = added["secret"].as_str().unwrap().to_owned();
    let second_id = added["id"].as_str().unwrap().to_owned();
    assert!(second.starts_with("mdb_sa_sk_") && second != first);
    assert!(parse_time(&added["expiresAt"]) > now + time::Duration::days(364));

    let got = client
        .api(&token, Method::GET, &format!("{base}/{client_id}"), None)
        .await
        .json();
    let listed = got["secrets"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let old = listed
        .iter()
        .find(|s| s["id"] == first_id.as_str())
        .unwrap();
    let old_expiry = parse_time(&old["expiresAt"]);
    assert!(
        old_expiry <= OffsetDateTime::now_utc() + time::Duration::days(7),
        "the older secret expires within 7 days: {old}"
    );
    assert!(old_expiry >= now + time::Duration::days(7) - time::Duration::minutes(1));
    assert!(old["lastUsedAt"].is_string(), "it obtained a token: {old}");
    assert!(listed.iter().all(|s| s.get("secret").is_none()));

    let third = client
        .api(
            &token,
            Method::POST,
            &secrets,
            Some(json!({"secretExpiresAfterHours": 24})),
        )
        .await;
    assert_eq!(third.status, StatusCode::BAD_REQUEST);
    assert_eq!(third.error_code(), "MAX_SERVICE_ACCOUNT_SECRETS_EXCEEDED");

    let second_token = client.token(&client_id, &second).await;
    assert_eq!(
        client
            .api(
                &token,
                Method::DELETE,
                &format!("{secrets}/{first_id}"),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let probe = format!("/orgs/{}", sim.org_id);
    assert_eq!(
        client
            .api(&first_token, Method::GET, &probe, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "deleting a secret revokes its tokens"
    );
    assert_eq!(
        client
            .api(&second_token, Method::GET, &probe, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        client.token_request(&client_id, &first).await.status,
        StatusCode::UNAUTHORIZED
    );
    let missing = client
        .api(
            &token,
            Method::DELETE,
            &format!("{secrets}/{first_id}"),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "SERVICE_ACCOUNT_SECRET_NOT_FOUND");
    assert_eq!(
        client
            .api(&token, Method::DELETE, &format!("{secrets}/nope"), None)
            .await
            .error_code(),
        "PATH_PARAM_PARSE_ERROR"
    );
    // With one secret left, another can be added again.
    assert_eq!(
        client
            .api(
                &token,
                Method::POST,
                &secrets,
                Some(json!({"secretExpiresAfterHours": 8})),
            )
            .await
            .status,
        StatusCode::CREATED
    );
    let inv = sim.inventory();
    let listed = &inv.service_account(&client_id).unwrap().secrets;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|s| s.id == second_id));
}

#[tokio::test]
async fn invite_and_project_service_accounts() {
    let sim = start().await;
    let (client, token) = owner(&sim).await;
    let (org, group) = (sim.org_id.clone(), sim.project_id.clone());
    let member = admin_sa(&sim, &["ORG_MEMBER"]);
    let member_token = client.token(&member.client_id, &member.client_secret).await;
    let group_keys = format!("/groups/{group}/apiKeys");
    let denied = client
        .api(&member_token, Method::GET, &group_keys, None)
        .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.error_code(), "USER_UNAUTHORIZED");

    let invite = format!(
        "/groups/{group}/serviceAccounts/{}:invite",
        member.client_id
    );
    let invited = client
        .api(
            &token,
            Method::POST,
            &invite,
            Some(json!({"roles":["GROUP_READ_ONLY"]})),
        )
        .await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.text);
    assert_eq!(invited.header("ratelimit-limit"), Some("1200"));
    let invited = invited.json();
    assert_eq!(invited["roles"], json!(["GROUP_READ_ONLY"]));
    assert!(invited["secrets"][0].get("secret").is_none());
    assert_eq!(
        sim.stats()
            .route("POST /api/atlas/v2/groups/{groupId}/serviceAccounts/{clientId}:invite")
            .status(200),
        1
    );
    // The same token now has the project role.
    assert_eq!(
        client
            .api(&member_token, Method::GET, &group_keys, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        client
            .api(
                &member_token,
                Method::GET,
                &format!("/groups/{group}"),
                None
            )
            .await
            .status,
        StatusCode::OK
    );
    let bad_role = client
        .api(
            &token,
            Method::POST,
            &invite,
            Some(json!({"roles":["ORG_OWNER"]})),
        )
        .await;
    assert_eq!(bad_role.error_code(), "INVALID_ROLE_FOR_GROUP");
    let unknown = client
        .api(
            &token,
            Method::POST,
            &format!("/groups/{group}/serviceAccounts/mdb_sa_id_0123456789abcdef01234567:invite"),
            Some(json!({"roles":["GROUP_READ_ONLY"]})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "SERVICE_ACCOUNT_NOT_FOUND");
    // Only org owners invite.
    assert_eq!(
        client
            .api(
                &member_token,
                Method::POST,
                &invite,
                Some(json!({"roles":["GROUP_OWNER"]})),
            )
            .await
            .error_code(),
        "USER_UNAUTHORIZED"
    );
    let groups = client
        .api(
            &token,
            Method::GET,
            &format!("/orgs/{org}/serviceAccounts/{}/groups", member.client_id),
            None,
        )
        .await
        .json();
    assert_eq!(
        groups["results"],
        json!([{"groupId": group, "roles": ["GROUP_READ_ONLY"]}])
    );

    // A project service account: an ORG_MEMBER with roles in the project.
    let project_sas = format!("/groups/{group}/serviceAccounts");
    let created = client
        .api(
            &token,
            Method::POST,
            &project_sas,
            Some(json!({"name":"project-sa","description":"d","roles":["GROUP_OWNER"],"secretExpiresAfterHours":24})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.header("ratelimit-limit"), Some("1200"));
    let created = created.json();
    assert_eq!(created["roles"], json!(["GROUP_OWNER"]));
    let project_id = created["clientId"].as_str().unwrap().to_owned();
    let project_secret = created["secrets"][0]["secret"].as_str().unwrap().to_owned();
    let inventory = sim.inventory();
    let listed = inventory.service_account(&project_id).unwrap();
    assert_eq!(listed.roles, ["ORG_MEMBER"]);
    assert_eq!(listed.project_roles[&group], ["GROUP_OWNER"]);
    assert!(!listed.seeded);
    let bad = client
        .api(
            &token,
            Method::POST,
            &project_sas,
            Some(json!({"name":"p","description":"d","roles":["ORG_MEMBER"],"secretExpiresAfterHours":24})),
        )
        .await;
    assert_eq!(bad.error_code(), "INVALID_ROLE_FOR_GROUP");

    let list = client
        .api(&token, Method::GET, &project_sas, None)
        .await
        .json();
    assert_eq!(list["totalCount"], 2, "{list}");
    let org_list = client
        .api(
            &token,
            Method::GET,
            &format!("/orgs/{org}/serviceAccounts"),
            None,
        )
        .await
        .json();
    let entry = org_list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["clientId"] == project_id.as_str())
        .unwrap();
    assert_eq!(entry["roles"], json!(["ORG_MEMBER"]));

    // The project SA (GROUP_OWNER) manages project keys with its own token.
    let project_token = client.token(&project_id, &project_secret).await;
    let key = client
        .api(
            &project_token,
            Method::POST,
            &group_keys,
            Some(json!({"desc":"from a project SA","roles":["GROUP_READ_ONLY"]})),
        )
        .await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.text);

    // Removing it from the project keeps it in the organization.
    let in_project = format!("{project_sas}/{project_id}");
    let patched = client
        .api(
            &token,
            Method::PATCH,
            &in_project,
            Some(json!({"roles":["GROUP_READ_ONLY"], "description":"changed"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json()["roles"], json!(["GROUP_READ_ONLY"]));
    assert_eq!(
        client
            .api(&token, Method::DELETE, &in_project, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        client
            .api(&token, Method::GET, &in_project, None)
            .await
            .error_code(),
        "SERVICE_ACCOUNT_NOT_FOUND"
    );
    assert_eq!(
        client
            .api(
                &token,
                Method::GET,
                &format!("/orgs/{org}/serviceAccounts/{project_id}"),
                None
            )
            .await
            .status,
        StatusCode::OK
    );
    assert!(sim
        .inventory()
        .service_account(&project_id)
        .unwrap()
        .project_roles
        .is_empty());

    // Deleting an org SA removes it from every project too.
    assert_eq!(
        client
            .api(
                &token,
                Method::DELETE,
                &format!("/orgs/{org}/serviceAccounts/{}", member.client_id),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let list = client
        .api(&token, Method::GET, &project_sas, None)
        .await
        .json();
    assert_eq!(list["totalCount"], 0, "{list}");
    assert!(sim.inventory().service_account(&member.client_id).is_none());
}

#[tokio::test]
async fn access_list_add_list_delete_and_enforcement() {
    let sim = start().await;
    let (client, token) = owner(&sim).await;
    let sa = admin_sa(&sim, &["ORG_OWNER"]);
    let sa_token = client.token(&sa.client_id, &sa.client_secret).await;
    let list = format!(
        "/orgs/{}/serviceAccounts/{}/accessList",
        sim.org_id, sa.client_id
    );
    let probe = format!("/orgs/{}", sim.org_id);

    let added = client
        .api(
            &token,
            Method::POST,
            &list,
            Some(json!([{"ipAddress":"10.1.2.3"},{"cidrBlock":"192.168.0.0/16"}])),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    let added = added.json();
    assert_eq!(added["totalCount"], 2);
    let first = &added["results"][0];
    assert_eq!(first["ipAddress"], "10.1.2.3");
    assert_eq!(first["cidrBlock"], "10.1.2.3/32");
    assert_eq!(first["requestCount"], 0);
    assert!(first["createdAt"].is_string());
    assert!(added["results"][1].get("ipAddress").is_none());

    let dup = client
        .api(
            &token,
            Method::POST,
            &list,
            Some(json!([{"ipAddress":"10.1.2.3"}])),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.error_code(), "DUPLICATE_ACCESS_LIST_ENTRY");
    let twice = client
        .api(
            &token,
            Method::POST,
            &list,
            Some(json!([{"ipAddress":"10.9.9.9"},{"cidrBlock":"10.9.9.9/32"}])),
        )
        .await;
    assert_eq!(twice.error_code(), "DUPLICATE_ADDRESSES_IN_INPUT");
    let invalid = client
        .api(
            &token,
            Method::POST,
            &list,
            Some(json!([{"ipAddress":"300.1.1.1"}])),
        )
        .await;
    assert_eq!(invalid.error_code(), "INVALID_IP_ADDRESS_OR_CIDR_NOTATION");

    // The list does not admit 127.0.0.1: the SA's token and its token requests are refused.
    let refused = client.api(&sa_token, Method::GET, &probe, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.error_code(), "IP_ADDRESS_NOT_ON_ACCESS_LIST");
    let no_token = client.token_request(&sa.client_id, &sa.client_secret).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert_eq!(no_token.error_code(), "IP_ADDRESS_NOT_ON_ACCESS_LIST");

    client
        .api(
            &token,
            Method::POST,
            &list,
            Some(json!([{"ipAddress":"127.0.0.1"}])),
        )
        .await;
    assert_eq!(
        client
            .api(&sa_token, Method::GET, &probe, None)
            .await
            .status,
        StatusCode::OK
    );
    client.token(&sa.client_id, &sa.client_secret).await;
    let listed = client.api(&token, Method::GET, &list, None).await.json();
    let local = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ipAddress"] == "127.0.0.1")
        .unwrap();
    assert!(local["requestCount"].as_u64().unwrap() >= 1, "{local}");
    assert_eq!(local["lastUsedAddress"], "127.0.0.1");
    assert!(local["lastUsedAt"].is_string());

    // The SA cannot remove the entry that admits its own request; the owner can remove others.
    let own = client
        .api(
            &sa_token,
            Method::DELETE,
            &format!("{list}/127.0.0.1"),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::BAD_REQUEST);
    assert_eq!(own.error_code(), "CANNOT_REMOVE_CALLER_FROM_ACCESS_LIST");
    for entry in ["10.1.2.3", "192.168.0.0%2F16"] {
        assert_eq!(
            client
                .api(&token, Method::DELETE, &format!("{list}/{entry}"), None)
                .await
                .status,
            StatusCode::NO_CONTENT,
            "{entry}"
        );
    }
    let missing = client
        .api(&token, Method::DELETE, &format!("{list}/10.1.2.3"), None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        client
            .api(&token, Method::GET, &format!("{list}/127.0.0.1"), None)
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        sim.inventory()
            .service_account(&sa.client_id)
            .unwrap()
            .access_list,
        ["127.0.0.1/32"]
    );
    assert_eq!(
        client
            .api(&token, Method::DELETE, &format!("{list}/127.0.0.1"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // An empty list admits everyone again.
    assert_eq!(
        client
            .api(&sa_token, Method::GET, &probe, None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bearer_callers_have_the_permissions_of_their_roles() {
    let sim = start().await;
    let client = Client::new(&sim);
    let member = admin_sa(&sim, &["ORG_MEMBER"]);
    let token = client.token(&member.client_id, &member.client_secret).await;
    let keys = format!("/orgs/{}/apiKeys", sim.org_id);
    let sas = format!("/orgs/{}/serviceAccounts", sim.org_id);
    let create_key = client
        .api(
            &token,
            Method::POST,
            &keys,
            Some(json!({"desc":"nope","roles":["ORG_MEMBER"]})),
        )
        .await;
    assert_eq!(create_key.status, StatusCode::UNAUTHORIZED);
    assert_eq!(create_key.error_code(), "USER_UNAUTHORIZED");
    assert!(create_key.header("www-authenticate").is_none());
    let create_sa = client
        .api(
            &token,
            Method::POST,
            &sas,
            Some(json!({"name":"n","description":"d","roles":["ORG_MEMBER"],"secretExpiresAfterHours":8})),
        )
        .await;
    assert_eq!(create_sa.error_code(), "USER_UNAUTHORIZED");
    // Reads are allowed to any org role.
    assert_eq!(
        client.api(&token, Method::GET, &keys, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client.api(&token, Method::GET, &sas, None).await.status,
        StatusCode::OK
    );

    // An ORG_OWNER service account manages API keys and service accounts.
    let owner = admin_sa(&sim, &["ORG_OWNER"]);
    let owner_token = client.token(&owner.client_id, &owner.client_secret).await;
    let key = client
        .api(
            &owner_token,
            Method::POST,
            &keys,
            Some(json!({"desc":"by an SA","roles":["ORG_MEMBER"]})),
        )
        .await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.text);
    let key_id = key.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        client
            .api(
                &owner_token,
                Method::DELETE,
                &format!("{keys}/{key_id}"),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    // A service account of another organization has no say here.
    let other_org = sim.create_org(None, None).unwrap();
    let outsider = sim
        .create_service_account(NewServiceAccountRequest {
            org_id: Some(other_org.id.clone()),
            org_roles: vec!["ORG_OWNER".into()],
            ..NewServiceAccountRequest::default()
        })
        .unwrap();
    let outsider_token = client
        .token(&outsider.client_id, &outsider.client_secret)
        .await;
    assert_eq!(
        client
            .api(&outsider_token, Method::GET, &keys, None)
            .await
            .error_code(),
        "USER_UNAUTHORIZED"
    );
    assert_eq!(
        client
            .api(
                &outsider_token,
                Method::GET,
                &format!(
                    "/orgs/{}/serviceAccounts/{}",
                    other_org.id, outsider.client_id
                ),
                None
            )
            .await
            .status,
        StatusCode::OK
    );
    // Out-of-band deletion revokes the token.
    assert!(sim.delete_service_account(&outsider.client_id));
    assert!(!sim.delete_service_account(&outsider.client_id));
    assert_eq!(
        client
            .api(&outsider_token, Method::GET, &keys, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

// ---- faults, rate limits, admin, inventory, journal -------------------------------------------

#[tokio::test]
async fn faults_and_rate_limits_apply_to_the_token_endpoint() {
    let sim = start().await;
    let client = Client::new(&sim);
    let (id, secret) = (sim.sa_client_id.as_str(), sim.sa_client_secret.as_str());
    sim.add_fault(FaultRule::status(Some("POST"), "^/api/oauth/token$", 503).nth(1))
        .unwrap();
    let failed = client.token_request(id, secret).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failed.error_code(), "SERVICE_UNAVAILABLE");
    assert_eq!(
        client.token_request(id, secret).await.status,
        StatusCode::OK
    );
    sim.clear_faults();

    // before_auth rules see requests with wrong credentials too; the others do not.
    let counted = sim
        .add_fault(FaultRule::count(None, "^/api/oauth/token$").before_auth())
        .unwrap();
    let after = sim
        .add_fault(FaultRule::count(None, "^/api/oauth/token$"))
        .unwrap();
    client.token_request(id, "mdb_sa_sk_wrong").await;
    client.token_request(id, secret).await;
    let faults = sim.faults();
    let matched = |rule: u64| faults.iter().find(|f| f.id == rule).unwrap().matched;
    assert_eq!((matched(counted), matched(after)), (2, 1));
    sim.clear_faults();

    sim.add_fault(FaultRule::reset(None, "/api/oauth/token").times(1))
        .unwrap();
    let reset = client
        .http
        .post(format!("{}/api/oauth/token", sim.base_url))
        .header("Authorization", basic(id, secret))
        .header("Content-Type", FORM)
        .body("grant_type=client_credentials")
        .send()
        .await;
    assert!(reset.is_err(), "connection reset expected");
    sim.clear_faults();

    // A token issued and then lost (reset_after) is still live in the simulator.
    sim.add_fault(FaultRule::reset_after(Some("POST"), "^/api/oauth/token$").nth(1))
        .unwrap();
    let lost = client
        .http
        .post(format!("{}/api/oauth/token", sim.base_url))
        .header("Authorization", basic(id, secret))
        .header("Content-Type", FORM)
        .body("grant_type=client_credentials")
        .send()
        .await;
    assert!(lost.is_err());
    sim.clear_faults();

    // Off by default; per IP and client once turned on.
    assert!(!sim.rate_limits().token_enabled);
    sim.set_rate_limits(RateLimitConfig {
        token_enabled: true,
        token: BucketConfig {
            capacity: 2,
            refill: 2,
            period_ms: 60_000,
        },
        ..RateLimitConfig::default()
    });
    let ok = client.token_request(id, secret).await;
    assert_eq!(ok.header("ratelimit-limit"), Some("2"));
    assert_eq!(ok.header("ratelimit-remaining"), Some("1"));
    client.token(id, secret).await;
    let limited = client.token_request(id, secret).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.error_code(), "RATE_LIMITED");
    assert!(limited.json()["detail"]
        .as_str()
        .unwrap()
        .contains("/api/oauth/token is limited to 2 requests every 1 minutes"));
    assert!(limited.header("retry-after").is_some());
    let other = admin_sa(&sim, &["ORG_MEMBER"]);
    client.token(&other.client_id, &other.client_secret).await;
    // The admin API turns it off again.
    let off = client
        .admin(
            Method::PUT,
            "/ratelimit",
            Some(json!({"token_enabled": false})),
        )
        .await;
    assert_eq!(off.json()["token_enabled"], false);
    client.token(id, secret).await;
    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 1);
    assert!(stats.faults_fired >= 3);
    assert_eq!(
        sim.inventory().service_account(id).unwrap().active_tokens,
        6,
        "five answered with 200, plus the one whose answer was lost"
    );
}

#[tokio::test]
async fn admin_api_creates_and_deletes_service_accounts_and_inventory_lists_them() {
    let sim = start().await;
    let client = Client::new(&sim);
    let created = client
        .admin(
            Method::POST,
            "/service_accounts",
            Some(json!({
                "name": "fixture",
                "org_roles": ["ORG_MEMBER"],
                "project_roles": { sim.project_id.clone(): ["GROUP_READ_ONLY"] },
                "secret_expires_after_hours": 24
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let created = created.json();
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(is_client_id(&client_id));
    assert_eq!(created["org_id"], sim.org_id.as_str());
    let token = client.token(&client_id, &secret).await;
    assert_eq!(
        client
            .api(
                &token,
                Method::GET,
                &format!("/groups/{}/apiKeys", sim.project_id),
                None
            )
            .await
            .status,
        StatusCode::OK
    );

    let inventory = client.admin(Method::GET, "/inventory", None).await;
    assert!(!inventory.text.contains(&secret), "no secret values");
    assert!(!inventory.text.contains(&sim.sa_client_secret));
    assert!(!inventory.text.contains(&token));
    let inventory = inventory.json();
    let sas = inventory["service_accounts"].as_array().unwrap();
    assert_eq!(sas.len(), 2);
    let fixture = sas
        .iter()
        .find(|s| s["client_id"] == client_id.as_str())
        .unwrap();
    assert_eq!(fixture["name"], "fixture");
    assert_eq!(fixture["org_id"], sim.org_id.as_str());
    assert_eq!(fixture["roles"], json!(["ORG_MEMBER"]));
    assert_eq!(
        fixture["project_roles"],
        json!({ sim.project_id.clone(): ["GROUP_READ_ONLY"] })
    );
    assert_eq!(fixture["seeded"], true);
    assert_eq!(fixture["active_tokens"], 1);
    assert_eq!(fixture["access_list"], json!([]));
    let secret_entry = &fixture["secrets"][0];
    assert_eq!(secret_entry["id"], created["secret_id"]);
    assert_eq!(secret_entry["expires_at"], created["secret_expires_at"]);
    assert!(secret_entry.get("secret").is_none());
    // The existing inventory fields are unchanged.
    assert_eq!(inventory["api_keys"][0]["seeded"], true);
    assert!(inventory["orgs"].is_array() && inventory["projects"].is_array());

    let bad = client
        .admin(
            Method::POST,
            "/service_accounts",
            Some(json!({"client_id": "not-an-id"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown_field = client
        .admin(Method::POST, "/service_accounts", Some(json!({"bogus": 1})))
        .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);

    assert_eq!(
        client
            .admin(
                Method::DELETE,
                &format!("/service_accounts/{client_id}"),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        client
            .admin(
                Method::DELETE,
                &format!("/service_accounts/{client_id}"),
                None
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client
            .api(&token, Method::GET, &format!("/orgs/{}", sim.org_id), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sim.inventory().service_accounts.len(), 1);
    // Admin calls are neither counted nor journaled.
    assert_eq!(sim.stats().route("POST /api/oauth/token").total, 1);
}

#[tokio::test]
async fn seeded_service_account_can_be_fixed_in_config() {
    let sim = Simulator::start(SimConfig {
        sa_client_id: Some("mdb_sa_id_a0123456789abcdef012345a".into()),
        sa_client_secret: Some("mdb_sa_sk_fixedsecret123".into()),
        token_lifetime: Duration::from_secs(120),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(sim.sa_client_id, "mdb_sa_id_a0123456789abcdef012345a");
    let client = Client::new(&sim);
    let resp = client
        .token_request(&sim.sa_client_id, "mdb_sa_sk_fixedsecret123")
        .await;
    assert_eq!(resp.json()["expires_in"], 120);
    let bad = Simulator::start(SimConfig {
        sa_client_secret: Some("no-prefix".into()),
        ..SimConfig::default()
    })
    .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn journal_redacts_client_secrets_and_tokens() {
    let sim = start().await;
    let (client, token) = owner(&sim).await;
    let created = client
        .api(
            &token,
            Method::POST,
            &format!("/orgs/{}/serviceAccounts", sim.org_id),
            Some(json!({"name":"j","description":"d","roles":["ORG_MEMBER"],"secretExpiresAfterHours":8})),
        )
        .await
        .json();
    let client_id = created["clientId"].as_str().unwrap().to_owned();
    let first = created["secrets"][0]["secret"].as_str().unwrap().to_owned();
    let added = client
        .api(
            &token,
            Method::POST,
            &format!("/orgs/{}/serviceAccounts/{client_id}/secrets", sim.org_id),
            Some(json!({"secretExpiresAfterHours": 8})),
        )
        .await
        .json();
    let second = added["secret"].as_str().unwrap().to_owned();
    let own = client.token(&client_id, &first).await;
    client
        .revoke(&client_id, &first, &format!("token={own}"))
        .await;
    // A client that sends its secret in the body (not accepted, but must not be logged).
    client
        .token_raw(
            None,
            Some(FORM),
            &format!("grant_type=client_credentials&client_id={client_id}&client_secret={second}"),
        )
        .await;

    let journal = sim.journal(0);
    let dump = serde_json::to_string(&journal).unwrap();
    for secret in [
        sim.sa_client_secret.as_str(),
        token.as_str(),
        first.as_str(),
        second.as_str(),
        own.as_str(),
    ] {
        assert!(!dump.contains(secret), "journal leaks a secret");
    }
    assert!(!dump.contains("Basic ") && !dump.contains("Bearer ey"));
    let token_entry = journal
        .iter()
        .find(|e| e.route == "POST /api/oauth/token" && e.status == 200)
        .unwrap();
    let logged: Value = serde_json::from_str(&token_entry.response_body).unwrap();
    assert_eq!(logged["access_token"], "REDACTED");
    assert_eq!(logged["token_type"], "Bearer");
    assert_eq!(token_entry.request_body, "grant_type=client_credentials");
    let revoke_entry = journal
        .iter()
        .find(|e| e.route == "POST /api/oauth/revoke")
        .unwrap();
    assert_eq!(revoke_entry.request_body, "token=REDACTED");
    assert_eq!(revoke_entry.client_id.as_deref(), Some(client_id.as_str()));
    let create_entry = journal
        .iter()
        .find(|e| e.route == "POST /api/atlas/v2/orgs/{orgId}/serviceAccounts")
        .unwrap();
    assert_eq!(
        create_entry.client_id.as_deref(),
        Some(sim.sa_client_id.as_str())
    );
    let logged: Value = serde_json::from_str(&create_entry.response_body).unwrap();
    assert!(logged["secrets"][0]["secret"]
        .as_str()
        .unwrap()
        .starts_with("mdb_sa_sk_..."));
}

/// Drives every service-account endpoint once (and some errors) and writes the journal for
/// the OpenAPI check in tests/openapi: `ATLAS_SIM_SA_JOURNAL_OUT=<file>` here, then
/// `ATLAS_SIM_JOURNAL=<file> go test ./...` there.
#[tokio::test]
async fn sa_journal_dump_for_openapi_check() {
    let sim = start().await;
    let (client, token) = owner(&sim).await;
    let (org, group) = (sim.org_id.clone(), sim.project_id.clone());
    let mut statuses = Vec::new();
    let call = |method: Method, path: String, body: Option<Value>| {
        let client = &client;
        let token = token.clone();
        async move {
            let resp = client.api(&token, method, &path, body).await;
            (resp.status.as_u16(), resp)
        }
    };
    for scope in [format!("/orgs/{org}"), format!("/groups/{group}")] {
        let base = format!("{scope}/serviceAccounts");
        let (status, created) = call(
            Method::POST,
            base.clone(),
            Some(json!({"name":"dump","description":"openapi check","roles":[if scope.starts_with("/orgs") {"ORG_MEMBER"} else {"GROUP_READ_ONLY"}],"secretExpiresAfterHours":24})),
        )
        .await;
        statuses.push(status);
        let id = created.json()["clientId"].as_str().unwrap().to_owned();
        let one = format!("{base}/{id}");
        statuses.push(
            call(Method::GET, format!("{base}?itemsPerPage=10"), None)
                .await
                .0,
        );
        statuses.push(call(Method::GET, one.clone(), None).await.0);
        statuses.push(
            call(
                Method::PATCH,
                one.clone(),
                Some(json!({"description":"patched"})),
            )
            .await
            .0,
        );
        let (status, secret) = call(
            Method::POST,
            format!("{one}/secrets"),
            Some(json!({"secretExpiresAfterHours": 48})),
        )
        .await;
        statuses.push(status);
        let secret_id = secret.json()["id"].as_str().unwrap().to_owned();
        statuses.push(
            call(
                Method::POST,
                format!("{one}/secrets"),
                Some(json!({"secretExpiresAfterHours": 48})),
            )
            .await
            .0,
        );
        statuses.push(
            call(Method::DELETE, format!("{one}/secrets/{secret_id}"), None)
                .await
                .0,
        );
        let entries = json!([{"ipAddress":"203.0.113.7"},{"cidrBlock":"198.51.100.0/24"}]);
        statuses.push(
            call(
                Method::POST,
                format!("{one}/accessList"),
                Some(entries.clone()),
            )
            .await
            .0,
        );
        statuses.push(
            call(Method::POST, format!("{one}/accessList"), Some(entries))
                .await
                .0,
        );
        statuses.push(call(Method::GET, format!("{one}/accessList"), None).await.0);
        statuses.push(
            call(
                Method::DELETE,
                format!("{one}/accessList/198.51.100.0%2F24"),
                None,
            )
            .await
            .0,
        );
        if scope.starts_with("/orgs") {
            statuses.push(
                call(
                    Method::POST,
                    format!("/groups/{group}/serviceAccounts/{id}:invite"),
                    Some(json!({"roles":["GROUP_DATA_ACCESS_READ_ONLY"]})),
                )
                .await
                .0,
            );
            statuses.push(call(Method::GET, format!("{one}/groups"), None).await.0);
        }
        statuses.push(
            call(
                Method::POST,
                base.clone(),
                Some(json!({"name":"x","description":"x","roles":["BOGUS"],"secretExpiresAfterHours":24})),
            )
            .await
            .0,
        );
        statuses.push(call(Method::DELETE, one.clone(), None).await.0);
        statuses.push(call(Method::GET, one, None).await.0);
    }
    assert_eq!(
        statuses,
        [
            201, 200, 200, 200, 201, 400, 204, 200, 409, 200, 204, 200, 200, 400, 204, 404, //
            201, 200, 200, 200, 201, 400, 204, 200, 409, 200, 204, 400, 204, 404,
        ]
    );
    if let Some(path) = std::env::var_os("ATLAS_SIM_SA_JOURNAL_OUT") {
        sim.write_journal(std::path::Path::new(&path)).unwrap();
    }
}
