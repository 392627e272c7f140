//! Integration tests for the Atlas simulator: digest auth, versioning, API-key endpoints
//! (v2 and v1.0), pagination, permissions, rate limits, faults, latency, admin API, the
//! `atlas-sim` binary, TLS and the CONNECT proxy.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use atlas_sim::{
    BucketConfig, FaultRule, NewKeyRequest, RateLimitConfig, SimConfig, SimHandle, Simulator,
    StartupInfo,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const V2: &str = "application/vnd.atlas.2023-01-01+json";
const V2_SA: &str = "application/vnd.atlas.2024-08-05+json";

fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn http() -> reqwest::Client {
    install_crypto();
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

/// A minimal digest client; with `cache_nonce` it reuses the last challenge (one round trip
/// per call), otherwise it re-does the challenge every time like the official Go client.
struct Atlas {
    http: reqwest::Client,
    base: String,
    user: String,
    pass: String,
    cache_nonce: bool,
    prompt: Mutex<Option<digest_auth::WwwAuthenticateHeader>>,
}

impl Atlas {
    fn new(base: &str, user: &str, pass: &str) -> Self {
        Self::with_client(http(), base, user, pass)
    }

    fn with_client(http: reqwest::Client, base: &str, user: &str, pass: &str) -> Self {
        Self {
            http,
            base: base.to_owned(),
            user: user.to_owned(),
            pass: pass.to_owned(),
            cache_nonce: true,
            prompt: Mutex::new(None),
        }
    }

    fn for_sim(sim: &SimHandle) -> Self {
        Self::new(&sim.base_url, &sim.public_key, &sim.private_key)
    }

    async fn raw(
        &self,
        method: &Method,
        path: &str,
        accept: Option<&str>,
        body: Option<&Value>,
        auth: Option<String>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(accept) = accept {
            req = req.header("Accept", accept);
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", accept.unwrap_or("application/json"))
                .body(body.to_string());
        }
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let resp = req.send().await.expect("request failed");
        Resp {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    fn authorization(&self, method: &Method, path: &str) -> Option<String> {
        let mut prompt = self.prompt.lock().unwrap();
        let p = prompt.as_mut()?;
        let ctx = digest_auth::AuthContext::new_with_method(
            self.user.as_str(),
            self.pass.as_str(),
            path,
            Option::<&[u8]>::None,
            digest_auth::HttpMethod::from(method.as_str().to_owned()),
        );
        Some(p.respond(&ctx).unwrap().to_header_string())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        if !self.cache_nonce {
            *self.prompt.lock().unwrap() = None;
        }
        for _ in 0..3 {
            let auth = self.authorization(&method, path);
            let resp = self.raw(&method, path, accept, body, auth).await;
            match resp.header("www-authenticate") {
                Some(challenge) if resp.status == StatusCode::UNAUTHORIZED => {
                    let had_prompt = self.prompt.lock().unwrap().is_some();
                    let stale = challenge.contains("stale=true");
                    *self.prompt.lock().unwrap() = Some(digest_auth::parse(challenge).unwrap());
                    if had_prompt && !stale {
                        return resp; // wrong credentials
                    }
                }
                _ => return resp,
            }
        }
        panic!("digest auth did not settle");
    }

    async fn v2(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call(
            method,
            &format!("/api/atlas/v2{path}"),
            Some(V2),
            body.as_ref(),
        )
        .await
    }

    async fn v1(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call(
            method,
            &format!("/api/atlas/v1.0{path}"),
            Some("application/json"),
            body.as_ref(),
        )
        .await
    }
}

async fn start() -> SimHandle {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

// ---- digest ---------------------------------------------------------------------------------

#[tokio::test]
async fn unauthenticated_request_gets_recorded_challenge() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let path = format!("/api/atlas/v2/orgs/{}/apiKeys", sim.org_id);
    let resp = atlas.raw(&Method::GET, &path, Some(V2), None, None).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let challenge = resp.header("www-authenticate").unwrap();
    let re = regex::Regex::new(
        r#"^Digest realm="MMS Public API", domain="", nonce="[A-Za-z0-9+/=]{32}", algorithm=MD5, qop="auth", stale=false$"#,
    )
    .unwrap();
    assert!(re.is_match(challenge), "{challenge}");
    assert_eq!(
        resp.text,
        "{\n  \"error\" : 401,\n  \"reason\" : \"Unauthorized\",\n  \"detail\" : \"You are not authorized for this resource.\",\n  \"errorCode\" : \"UNEXPECTED_ERROR\"\n}"
    );
    // Every challenge carries a new nonce.
    let again = atlas.raw(&Method::GET, &path, Some(V2), None, None).await;
    assert_ne!(again.header("www-authenticate"), Some(challenge));
}

#[tokio::test]
async fn cached_nonce_costs_one_round_trip_per_call() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    for _ in 0..5 {
        assert_eq!(
            atlas
                .v2(Method::GET, &format!("/orgs/{}/apiKeys", sim.org_id), None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let stats = sim.stats();
    assert_eq!((stats.requests_total, stats.challenges), (6, 1));
    let route = stats.route("GET /api/atlas/v2/orgs/{orgId}/apiKeys");
    assert_eq!(
        (route.total, route.challenges, route.status(200)),
        (6, 1, 5)
    );

    // A client without nonce caching (like the official Go client) pays two per call.
    sim.reset_stats();
    let mut go_like = Atlas::for_sim(&sim);
    go_like.cache_nonce = false;
    for _ in 0..3 {
        assert_eq!(
            go_like
                .v2(Method::GET, &format!("/orgs/{}/apiKeys", sim.org_id), None)
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!((sim.stats().requests_total, sim.stats().challenges), (6, 3));
}

#[tokio::test]
async fn expired_nonce_is_answered_stale_and_replayed_nc_too() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let path = format!("/api/atlas/v2/orgs/{}/apiKeys", sim.org_id);
    assert_eq!(
        atlas.call(Method::GET, &path, Some(V2), None).await.status,
        StatusCode::OK
    );

    sim.set_nonce_lifetime(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let auth = atlas.authorization(&Method::GET, &path);
    let resp = atlas
        .raw(&Method::GET, &path, Some(V2), None, auth.clone())
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert!(resp
        .header("www-authenticate")
        .unwrap()
        .ends_with("stale=true"));
    assert_eq!(sim.stats().stale_challenges, 1);

    // A fresh nonce works again; reusing the same nc is a replay (stale=true too).
    sim.set_nonce_lifetime(Duration::from_secs(300));
    *atlas.prompt.lock().unwrap() = None;
    assert_eq!(
        atlas.call(Method::GET, &path, Some(V2), None).await.status,
        StatusCode::OK
    );
    let auth = atlas.authorization(&Method::GET, &path);
    assert_eq!(
        atlas
            .raw(&Method::GET, &path, Some(V2), None, auth.clone())
            .await
            .status,
        StatusCode::OK
    );
    let replay = atlas.raw(&Method::GET, &path, Some(V2), None, auth).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay
        .header("www-authenticate")
        .unwrap()
        .ends_with("stale=true"));
}

#[tokio::test]
async fn wrong_credentials_get_a_fresh_non_stale_challenge() {
    let sim = start().await;
    for (user, pass) in [
        (
            sim.public_key.as_str(),
            "00000000-0000-0000-0000-000000000000",
        ),
        ("zzzzzzzz", sim.private_key.as_str()),
    ] {
        let atlas = Atlas::new(&sim.base_url, user, pass);
        let resp = atlas
            .v2(Method::GET, &format!("/orgs/{}/apiKeys", sim.org_id), None)
            .await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
        assert!(resp
            .header("www-authenticate")
            .unwrap()
            .ends_with("stale=false"));
        assert_eq!(resp.json()["errorCode"], "UNEXPECTED_ERROR");
    }
    assert_eq!(sim.stats().auth_failures, 2);
}

// ---- versioning -----------------------------------------------------------------------------

#[tokio::test]
async fn v2_requires_the_resource_version() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let keys = format!("/api/atlas/v2/orgs/{}/apiKeys", sim.org_id);
    for accept in [
        None,
        Some("application/json"),
        Some(V2_SA),
        Some("application/vnd.atlas.2025-01-01+json"),
    ] {
        let resp = atlas.call(Method::GET, &keys, accept, None).await;
        assert_eq!(resp.status, StatusCode::NOT_ACCEPTABLE, "{accept:?}");
        assert_eq!(resp.header("x-error-code"), Some("NOT_ACCEPTABLE"));
    }
    let resp = atlas
        .call(
            Method::GET,
            &keys,
            Some("application/vnd.atlas.2023-02-30x+json"),
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    let ok = atlas.call(Method::GET, &keys, Some(V2), None).await;
    assert_eq!(
        ok.header("content-type"),
        Some("application/vnd.atlas.2023-01-01+json;charset=utf-8")
    );

    let sas = format!("/api/atlas/v2/orgs/{}/serviceAccounts", sim.org_id);
    assert_eq!(
        atlas.call(Method::GET, &sas, Some(V2), None).await.status,
        StatusCode::NOT_ACCEPTABLE
    );
    let ok = atlas.call(Method::GET, &sas, Some(V2_SA), None).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.header("content-type"),
        Some("application/vnd.atlas.2024-08-05+json;charset=utf-8")
    );
}

// ---- API keys -------------------------------------------------------------------------------

#[tokio::test]
async fn org_key_lifecycle_and_access_list() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let org = &sim.org_id;
    let created = atlas
        .v2(
            Method::POST,
            &format!("/orgs/{org}/apiKeys"),
            Some(json!({"desc":"vault-test","roles":["ORG_READ_ONLY"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.header("ratelimit-limit"), Some("500"));
    let key = created.json();
    let id = key["id"].as_str().unwrap().to_owned();
    let private = key["privateKey"].as_str().unwrap().to_owned();
    assert!(is_uuid(&private));
    assert_eq!(key["publicKey"].as_str().unwrap().len(), 8);
    assert_eq!(
        key["roles"],
        json!([{"orgId": org, "roleName": "ORG_READ_ONLY"}])
    );
    assert_eq!(
        key["links"][0]["href"],
        format!("{}/api/atlas/v2/orgs/{org}/apiKeys/{id}", sim.base_url)
    );

    let got = atlas
        .v2(Method::GET, &format!("/orgs/{org}/apiKeys/{id}"), None)
        .await
        .json();
    assert_eq!(
        got["privateKey"],
        format!("********-****-****-{}", &private[24..])
    );

    let updated = atlas
        .v2(
            Method::PATCH,
            &format!("/orgs/{org}/apiKeys/{id}"),
            Some(json!({"desc":"renamed","roles":["ORG_MEMBER"]})),
        )
        .await
        .json();
    assert_eq!(
        (
            updated["desc"].as_str(),
            updated["roles"][0]["roleName"].as_str()
        ),
        (Some("renamed"), Some("ORG_MEMBER"))
    );

    // Access list: IPs get /32, CIDRs are addressed URL-encoded, duplicates conflict.
    let al = format!("/orgs/{org}/apiKeys/{id}/accessList");
    let added = atlas
        .v2(
            Method::POST,
            &al,
            Some(json!([{"ipAddress":"192.168.0.229"},{"cidrBlock":"10.1.0.0/16"}])),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    let list = added.json();
    assert_eq!(list["totalCount"], 2);
    assert_eq!(list["results"][0]["cidrBlock"], "192.168.0.229/32");
    assert_eq!(list["results"][0]["ipAddress"], "192.168.0.229");
    assert_eq!(
        list["results"][1]["links"][0]["href"],
        format!("{}/api/atlas/v2{al}/10.1.0.0%2F16", sim.base_url)
    );
    let dup = atlas
        .v2(
            Method::POST,
            &al,
            Some(json!([{"ipAddress":"192.168.0.229"}])),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let bad = atlas
        .v2(
            Method::POST,
            &al,
            Some(json!([{"ipAddress":"192.168.0.300"}])),
        )
        .await;
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (
            StatusCode::BAD_REQUEST,
            "INVALID_IP_ADDRESS_OR_CIDR_NOTATION"
        )
    );
    let entry = atlas
        .v2(Method::GET, &format!("{al}/10.1.0.0%2F16"), None)
        .await;
    assert_eq!(entry.json()["cidrBlock"], "10.1.0.0/16");
    assert_eq!(
        atlas
            .v2(Method::DELETE, &format!("{al}/192.168.0.229"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        atlas
            .v2(Method::GET, &format!("{al}/192.168.0.229"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let inv = sim.inventory();
    let live = inv
        .key_by_public_key(key["publicKey"].as_str().unwrap())
        .unwrap();
    assert_eq!(live.access_list, ["10.1.0.0/16"]);
    assert!(!live.seeded);
    assert!(inv
        .api_keys
        .iter()
        .any(|k| k.seeded && k.public_key == sim.public_key));

    let deleted = atlas
        .v2(Method::DELETE, &format!("/orgs/{org}/apiKeys/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        deleted.header("content-type"),
        Some("application/vnd.atlas.2023-01-01+json;charset=utf-8")
    );
    let gone = atlas
        .v2(Method::GET, &format!("/orgs/{org}/apiKeys/{id}"), None)
        .await;
    assert_eq!(
        (gone.status, gone.header("x-error-code")),
        (StatusCode::NOT_FOUND, Some("API_KEY_NOT_FOUND"))
    );
    assert_eq!(sim.inventory().issued_keys().count(), 0);
}

#[tokio::test]
async fn project_keys_assign_and_unassign() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let (org, group) = (&sim.org_id, &sim.project_id);
    let created = atlas
        .v2(
            Method::POST,
            &format!("/groups/{group}/apiKeys"),
            Some(json!({"desc":"p","roles":["GROUP_READ_ONLY"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.header("ratelimit-limit"), Some("1200"));
    let key = created.json();
    assert_eq!(
        key["roles"],
        json!([{"orgId": org, "roleName": "ORG_MEMBER"}, {"groupId": group, "roleName": "GROUP_READ_ONLY"}])
    );
    let pid = key["id"].as_str().unwrap().to_owned();
    let bad = atlas
        .v2(
            Method::POST,
            &format!("/groups/{group}/apiKeys"),
            Some(json!({"desc":"p","roles":["ORG_OWNER"]})),
        )
        .await;
    assert_eq!(bad.error_code(), "INVALID_ROLE_FOR_GROUP");

    // Assign an org key with the v2 array body, change its roles, list, unassign.
    let org_key = atlas
        .v2(
            Method::POST,
            &format!("/orgs/{org}/apiKeys"),
            Some(json!({"desc":"o","roles":["ORG_MEMBER"]})),
        )
        .await
        .json();
    let oid = org_key["id"].as_str().unwrap().to_owned();
    let assigned = atlas
        .v2(
            Method::POST,
            &format!("/groups/{group}/apiKeys/{oid}"),
            Some(json!([{"roles":["GROUP_OWNER"]}])),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::NO_CONTENT, "{}", assigned.text);
    let patched = atlas
        .v2(
            Method::PATCH,
            &format!("/groups/{group}/apiKeys/{oid}"),
            Some(json!({"roles":["GROUP_DATA_ACCESS_READ_ONLY"]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let listed = atlas
        .v2(Method::GET, &format!("/groups/{group}/apiKeys"), None)
        .await
        .json();
    assert_eq!(listed["totalCount"], 2);
    let ids: Vec<&str> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&pid.as_str()) && ids.contains(&oid.as_str()));
    assert_eq!(
        atlas
            .v2(
                Method::DELETE,
                &format!("/groups/{group}/apiKeys/{oid}"),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        atlas
            .v2(
                Method::DELETE,
                &format!("/groups/{group}/apiKeys/{oid}"),
                None
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Unassigning does not delete the key.
    assert_eq!(
        atlas
            .v2(Method::GET, &format!("/orgs/{org}/apiKeys/{oid}"), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn validation_errors_have_atlas_codes() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let org = &sim.org_id;
    let keys = format!("/orgs/{org}/apiKeys");
    let cases = [
        (
            json!({"desc":"x".repeat(251),"roles":["ORG_MEMBER"]}),
            "INVALID_API_KEY_DESC",
        ),
        (json!({"desc":"x","roles":[]}), "MISSING_API_KEY_ROLES"),
        (json!({"desc":"x"}), "MISSING_API_KEY_ROLES"),
        (
            json!({"desc":"x","roles":["GROUP_OWNER"]}),
            "INVALID_ROLE_FOR_ORG",
        ),
    ];
    for (body, code) in cases {
        let resp = atlas.v2(Method::POST, &keys, Some(body)).await;
        assert_eq!(
            (resp.status, resp.error_code()),
            (StatusCode::BAD_REQUEST, code.to_owned())
        );
        assert_eq!(resp.header("x-error-code"), Some(code));
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let body = resp.json();
        for field in ["detail", "error", "errorCode", "parameters", "reason"] {
            assert!(body.get(field).is_some(), "{field} missing in {body}");
        }
    }
    let by_public_key = atlas
        .v2(Method::GET, &format!("{keys}/{}", sim.public_key), None)
        .await;
    assert_eq!(by_public_key.error_code(), "PATH_PARAM_PARSE_ERROR");
    let no_org = atlas
        .v2(Method::GET, "/orgs/111111111111111111111111/apiKeys", None)
        .await;
    assert_eq!(
        (no_org.status, no_org.error_code()),
        (StatusCode::NOT_FOUND, "ORG_NOT_FOUND".into())
    );
    let no_group = atlas
        .v2(
            Method::GET,
            "/groups/111111111111111111111111/apiKeys",
            None,
        )
        .await;
    assert_eq!(
        no_group.text,
        r#"{"detail":"No group with ID 111111111111111111111111 exists.","error":404,"errorCode":"GROUP_NOT_FOUND","parameters":["111111111111111111111111"],"reason":"Not Found"}"#
    );
    assert_eq!(
        atlas.v2(Method::GET, "/clusters", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn permissions_follow_roles_and_orgs() {
    let sim = start().await;
    let member = sim
        .create_key(NewKeyRequest {
            org_roles: vec!["ORG_MEMBER".into()],
            ..NewKeyRequest::default()
        })
        .unwrap();
    let as_member = Atlas::new(&sim.base_url, &member.public_key, &member.private_key);
    let org = &sim.org_id;
    let denied = as_member
        .v2(
            Method::POST,
            &format!("/orgs/{org}/apiKeys"),
            Some(json!({"desc":"x","roles":["ORG_MEMBER"]})),
        )
        .await;
    assert_eq!(
        (denied.status, denied.error_code()),
        (StatusCode::UNAUTHORIZED, "USER_UNAUTHORIZED".into())
    );
    assert!(denied.header("www-authenticate").is_none());
    assert_eq!(
        as_member
            .v2(Method::GET, &format!("/orgs/{org}/apiKeys"), None)
            .await
            .status,
        StatusCode::OK
    );
    let p = &sim.project_id;
    let denied = as_member
        .v2(
            Method::POST,
            &format!("/groups/{p}/apiKeys"),
            Some(json!({"desc":"x","roles":["GROUP_OWNER"]})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);

    // The root key acts only on its own org.
    let other = sim.create_org(None, Some("other".into())).unwrap();
    let other_project = sim
        .create_project(None, Some(other.id.clone()), None)
        .unwrap();
    let root = Atlas::for_sim(&sim);
    let resp = root
        .v2(
            Method::POST,
            &format!("/orgs/{}/apiKeys", other.id),
            Some(json!({"desc":"x","roles":["ORG_MEMBER"]})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        root.v2(
            Method::GET,
            &format!("/groups/{}/apiKeys", other_project.id),
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    // A key with an access list not containing 127.0.0.1 is refused.
    let id = member.id.clone();
    let al = root
        .v2(
            Method::POST,
            &format!("/orgs/{org}/apiKeys/{id}/accessList"),
            Some(json!([{"ipAddress":"203.0.113.7"}])),
        )
        .await;
    assert_eq!(al.status, StatusCode::OK);
    let refused = as_member
        .v2(Method::GET, &format!("/orgs/{org}/apiKeys"), None)
        .await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (
            StatusCode::FORBIDDEN,
            "IP_ADDRESS_NOT_ON_ACCESS_LIST".into()
        )
    );
}

#[tokio::test]
async fn pagination_links_and_bounds() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let org = &sim.org_id;
    for i in 0..4 {
        let r = atlas
            .v2(
                Method::POST,
                &format!("/orgs/{org}/apiKeys"),
                Some(json!({"desc":format!("k{i}"),"roles":["ORG_MEMBER"]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let base = format!("{}/api/atlas/v2/orgs/{org}/apiKeys", sim.base_url);
    let mut seen = Vec::new();
    for page in 1..=3 {
        let body = atlas
            .v2(
                Method::GET,
                &format!("/orgs/{org}/apiKeys?pageNum={page}&itemsPerPage=2"),
                None,
            )
            .await
            .json();
        assert_eq!(body["totalCount"], 5);
        let rels: Vec<&str> = body["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["rel"].as_str().unwrap())
            .collect();
        let expected: &[&str] = match page {
            1 => &["self", "next"],
            2 => &["previous", "self", "next"],
            _ => &["previous", "self"],
        };
        assert_eq!(rels, expected);
        assert!(body["links"].as_array().unwrap().iter().any(
            |l| l["href"] == format!("{base}?includeCount=true&pageNum={page}&itemsPerPage=2")
        ));
        seen.extend(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["publicKey"].as_str().unwrap().to_owned()),
        );
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "keys are listed by public key");
    assert_eq!(seen.len(), 5);
    let no_count = atlas
        .v2(
            Method::GET,
            &format!("/orgs/{org}/apiKeys?includeCount=false"),
            None,
        )
        .await
        .json();
    assert!(no_count.get("totalCount").is_none());
    let too_many = atlas
        .v2(
            Method::GET,
            &format!("/orgs/{org}/apiKeys?itemsPerPage=501"),
            None,
        )
        .await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        atlas
            .v2(
                Method::GET,
                &format!("/orgs/{org}/apiKeys?itemsPerPage=500"),
                None
            )
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn max_keys_per_org() {
    let sim = Simulator::start(SimConfig {
        max_keys_per_org: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let atlas = Atlas::for_sim(&sim);
    let path = format!("/orgs/{}/apiKeys", sim.org_id);
    for _ in 0..2 {
        assert_eq!(
            atlas
                .v2(
                    Method::POST,
                    &path,
                    Some(json!({"desc":"x","roles":["ORG_MEMBER"]}))
                )
                .await
                .status,
            StatusCode::OK
        );
    }
    let resp = atlas
        .v2(
            Method::POST,
            &path,
            Some(json!({"desc":"x","roles":["ORG_MEMBER"]})),
        )
        .await;
    assert_eq!(resp.error_code(), "MAX_API_KEYS_PER_ORG_EXCEEDED");
}

#[tokio::test]
async fn v1_paths_used_by_the_go_plugin() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let (org, group) = (&sim.org_id, &sim.project_id);
    let created = atlas
        .v1(
            Method::POST,
            &format!("/orgs/{org}/apiKeys"),
            Some(json!({"desc":"v1","roles":["ORG_MEMBER"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.header("content-type"), Some("application/json"));
    let key = created.json();
    let id = key["id"].as_str().unwrap().to_owned();
    assert!(key["links"][0]["href"]
        .as_str()
        .unwrap()
        .contains("/api/atlas/v1.0/orgs/"));
    // v1.0 assigns a key to a project with PATCH {roles}.
    let assigned = atlas
        .v1(
            Method::PATCH,
            &format!("/groups/{group}/apiKeys/{id}"),
            Some(json!({"roles":["GROUP_READ_ONLY"]})),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.text);
    let listed = atlas
        .v1(
            Method::GET,
            &format!("/groups/{group}/apiKeys?itemsPerPage=500"),
            None,
        )
        .await
        .json();
    assert_eq!(listed["results"][0]["id"], id.as_str());
    let al = atlas
        .v1(
            Method::POST,
            &format!("/orgs/{org}/apiKeys/{id}/accessList"),
            Some(json!([{"cidrBlock":"10.0.0.0/8"}])),
        )
        .await;
    assert_eq!(al.status, StatusCode::OK);
    assert_eq!(
        atlas
            .v1(
                Method::DELETE,
                &format!("/groups/{group}/apiKeys/{id}"),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        atlas
            .v1(Method::DELETE, &format!("/orgs/{org}/apiKeys/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // Service accounts do not exist in v1.0.
    assert_eq!(
        atlas
            .v1(Method::GET, &format!("/orgs/{org}/serviceAccounts"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn service_accounts_basic_crud() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let path = format!("/api/atlas/v2/orgs/{}/serviceAccounts", sim.org_id);
    let body =
        json!({"name":"sa","description":"d","roles":["ORG_MEMBER"],"secretExpiresAfterHours":8});
    let created = atlas
        .call(Method::POST, &path, Some(V2_SA), Some(&body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let sa = created.json();
    let client_id = sa["clientId"].as_str().unwrap().to_owned();
    assert!(client_id.starts_with("mdb_sa_id_"));
    assert!(sa["secrets"][0]["secret"]
        .as_str()
        .unwrap()
        .starts_with("mdb_sa_sk_"));
    let got = atlas
        .call(
            Method::GET,
            &format!("{path}/{client_id}"),
            Some(V2_SA),
            None,
        )
        .await
        .json();
    assert!(got["secrets"][0].get("secret").is_none());
    assert_eq!(
        atlas
            .call(Method::GET, &path, Some(V2_SA), None)
            .await
            .json()["totalCount"],
        2,
        "the seeded service account and the new one"
    );
    assert_eq!(sim.inventory().service_accounts.len(), 2);
    assert_eq!(sim.inventory().issued_service_accounts().count(), 1);
    assert_eq!(
        atlas
            .call(
                Method::DELETE,
                &format!("{path}/{client_id}"),
                Some(V2_SA),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        atlas
            .call(
                Method::GET,
                &format!("{path}/{client_id}"),
                Some(V2_SA),
                None
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

// ---- rate limits, faults, latency -----------------------------------------------------------

#[tokio::test]
async fn token_bucket_rate_limits() {
    let sim = start().await;
    sim.set_rate_limits(RateLimitConfig {
        enabled: true,
        org: BucketConfig {
            capacity: 3,
            refill: 3,
            period_ms: 60_000,
        },
        project: BucketConfig {
            capacity: 1,
            refill: 1,
            period_ms: 200,
        },
        ..RateLimitConfig::default()
    });
    let atlas = Atlas::for_sim(&sim);
    let path = format!("/orgs/{}/apiKeys", sim.org_id);
    let remaining: Vec<String> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(
                atlas
                    .v2(Method::GET, &path, None)
                    .await
                    .header("ratelimit-remaining")
                    .unwrap()
                    .to_owned(),
            );
        }
        out
    };
    assert_eq!(remaining, ["2", "1", "0"]);
    let limited = atlas.v2(Method::GET, &path, None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.error_code(), "RATE_LIMITED_TOKEN_BUCKET");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(sim.stats().rate_limited, 1);

    // Project buckets are separate and refill.
    let gpath = format!("/groups/{}/apiKeys", sim.project_id);
    assert_eq!(
        atlas.v2(Method::GET, &gpath, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        atlas.v2(Method::GET, &gpath, None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        atlas.v2(Method::GET, &gpath, None).await.status,
        StatusCode::OK
    );

    // Turned off through the admin API.
    let resp = http()
        .put(format!("{}/ratelimit", sim.admin_url))
        .body(r#"{"enabled":false}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ok = atlas.v2(Method::GET, &path, None).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.header("ratelimit-limit").is_none());
}

#[tokio::test]
async fn fault_injection_status_nth_reset_latency_and_count() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let path = format!("/orgs/{}/apiKeys", sim.org_id);
    let create = || {
        atlas.v2(
            Method::POST,
            &path,
            Some(json!({"desc":"f","roles":["ORG_MEMBER"]})),
        )
    };

    let id = sim
        .add_fault(FaultRule::status(Some("POST"), "/apiKeys$", 503).nth(2))
        .unwrap();
    let statuses = [
        create().await.status,
        create().await.status,
        create().await.status,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::OK
        ]
    );
    let fault = sim.faults().into_iter().find(|f| f.id == id).unwrap();
    assert_eq!((fault.matched, fault.fired), (3, 1));
    sim.clear_faults();

    // Reset: the connection closes without an answer.
    sim.add_fault(FaultRule::reset(Some("GET"), "/apiKeys$").times(1))
        .unwrap();
    let url = format!("{}/api/atlas/v2{path}", sim.base_url);
    let auth = {
        assert_eq!(
            atlas
                .v2(
                    Method::POST,
                    &path,
                    Some(json!({"desc":"f","roles":["ORG_MEMBER"]}))
                )
                .await
                .status,
            StatusCode::OK
        );
        atlas
            .authorization(&Method::GET, &format!("/api/atlas/v2{path}"))
            .unwrap()
    };
    let err = http()
        .get(&url)
        .header("Accept", V2)
        .header("Authorization", auth)
        .send()
        .await;
    assert!(err.is_err(), "expected a dropped connection, got {err:?}");
    assert_eq!(
        atlas.v2(Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    sim.clear_faults();

    // Latency on one route, and count-only rules.
    sim.add_fault(FaultRule::latency(
        Some("GET"),
        "/apiKeys$",
        Duration::from_millis(150),
    ))
    .unwrap();
    let count_id = sim.add_fault(FaultRule::count(None, "/apiKeys")).unwrap();
    let t = Instant::now();
    assert_eq!(
        atlas.v2(Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    assert!(t.elapsed() >= Duration::from_millis(150));
    let count = sim.faults().into_iter().find(|f| f.id == count_id).unwrap();
    assert_eq!((count.matched, count.fired), (1, 0));
    assert!(sim.stats().faults_fired >= 3);

    // Status faults with custom codes and Retry-After, set through the admin API.
    sim.clear_faults();
    let rule = r#"{"method":"GET","path":"/apiKeys$","action":"status","status":429,"error_code":"RATE_LIMITED","retry_after":7}"#;
    let added = http()
        .post(format!("{}/faults", sim.admin_url))
        .body(rule)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    let limited = atlas.v2(Method::GET, &path, None).await;
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (StatusCode::TOO_MANY_REQUESTS, Some("7"))
    );
    assert_eq!(limited.error_code(), "RATE_LIMITED");
    let cleared = http()
        .delete(format!("{}/faults", sim.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn global_latency_applies_to_every_request_including_challenges() {
    let sim = Simulator::start(SimConfig {
        latency: Duration::from_millis(120),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let atlas = Atlas::for_sim(&sim);
    let t = Instant::now();
    let resp = atlas
        .raw(
            &Method::GET,
            &format!("/api/atlas/v2/orgs/{}/apiKeys", sim.org_id),
            Some(V2),
            None,
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert!(t.elapsed() >= Duration::from_millis(120));
    // Challenge + authenticated call: two round trips, two delays.
    *atlas.prompt.lock().unwrap() = None;
    let t = Instant::now();
    assert_eq!(
        atlas
            .v2(Method::GET, &format!("/orgs/{}/apiKeys", sim.org_id), None)
            .await
            .status,
        StatusCode::OK
    );
    assert!(t.elapsed() >= Duration::from_millis(240));
    // The admin API is not delayed.
    let t = Instant::now();
    let health = http()
        .get(format!("{}/health", sim.admin_url))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
    assert!(t.elapsed() < Duration::from_millis(120));
    sim.set_latency(Duration::ZERO);
    let t = Instant::now();
    atlas
        .v2(Method::GET, &format!("/orgs/{}/apiKeys", sim.org_id), None)
        .await;
    assert!(t.elapsed() < Duration::from_millis(120));
}

// ---- admin API and journal ------------------------------------------------------------------

#[tokio::test]
async fn admin_api_over_http() {
    let sim = start().await;
    let client = http();
    let admin = &sim.admin_url;
    let key: Value = client
        .post(format!("{admin}/keys"))
        .body(json!({"org_roles":["ORG_MEMBER"],"project_roles":{sim.project_id.clone():["GROUP_READ_ONLY"]}}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(is_uuid(key["private_key"].as_str().unwrap()));
    let inventory: Value = client
        .get(format!("{admin}/inventory"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inventory["api_keys"].as_array().unwrap().len(), 2);

    let atlas = Atlas::for_sim(&sim);
    let resp = atlas
        .v2(
            Method::POST,
            &format!("/orgs/{}/apiKeys", sim.org_id),
            Some(json!({"desc":"j","roles":["ORG_MEMBER"]})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let journal: Value = client
        .get(format!("{admin}/journal"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = journal.as_array().unwrap();
    assert_eq!(entries.len(), 2, "challenge + call");
    let last = &entries[1];
    assert_eq!(last["route"], "POST /api/atlas/v2/orgs/{orgId}/apiKeys");
    assert_eq!(last["status"], 200);
    assert_eq!(
        last["request_body"],
        r#"{"desc":"j","roles":["ORG_MEMBER"]}"#
    );
    assert_eq!(last["public_key"], sim.public_key.as_str());
    let logged: Value = serde_json::from_str(last["response_body"].as_str().unwrap()).unwrap();
    assert!(
        logged["privateKey"]
            .as_str()
            .unwrap()
            .starts_with("********-****-****-"),
        "journal must not hold secrets"
    );
    let since = last["seq"].as_u64().unwrap();
    let newer: Value = client
        .get(format!("{admin}/journal?since={since}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(newer.as_array().unwrap().len(), 0);

    let stats: Value = client
        .get(format!("{admin}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests_total"], 2);
    assert_eq!(
        client
            .post(format!("{admin}/stats/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.stats().requests_total, 0);
    assert_eq!(
        client
            .delete(format!("{admin}/journal"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(sim.journal(0).is_empty());

    let id = key["id"].as_str().unwrap();
    assert_eq!(
        client
            .delete(format!("{admin}/keys/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        client
            .delete(format!("{admin}/keys/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let bad = client
        .post(format!("{admin}/faults"))
        .body(r#"{"path":"("}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let lat = client
        .put(format!("{admin}/latency"))
        .body(r#"{"ms":5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(lat.status(), StatusCode::OK);
    let auth = client
        .put(format!("{admin}/auth"))
        .body(r#"{"nonce_lifetime_ms":1000}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(auth.status(), StatusCode::OK);
    assert_eq!(
        client
            .get(format!("{admin}/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let sim = start().await;
    let health = format!("{}/health", sim.admin_url);
    assert!(http()
        .get(&health)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    sim.shutdown().await;
    assert!(http().get(&health).send().await.is_err());
}

// ---- TLS and CONNECT proxy ------------------------------------------------------------------

#[tokio::test]
async fn https_listener_and_connect_proxy_for_cloud_mongodb_com() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    let sim = Simulator::start(SimConfig {
        tls: true,
        proxy: true,
        ca_path: Some(ca_path.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert!(sim.base_url.starts_with("https://127.0.0.1:"));
    let pem = std::fs::read(&ca_path).unwrap();
    let ca = reqwest::Certificate::from_pem(&pem).unwrap();

    let direct = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .no_proxy()
        .build()
        .unwrap();
    let atlas = Atlas::with_client(direct, &sim.base_url, &sim.public_key, &sim.private_key);
    let resp = atlas
        .v2(Method::GET, &format!("/orgs/{}/apiKeys", sim.org_id), None)
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.json()["links"][0]["href"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));

    let proxy_url = sim.proxy_url.clone().unwrap();
    let proxied = reqwest::Client::builder()
        .add_root_certificate(ca)
        .proxy(reqwest::Proxy::https(&proxy_url).unwrap())
        .build()
        .unwrap();
    let atlas = Atlas::with_client(
        proxied,
        "https://cloud.mongodb.com",
        &sim.public_key,
        &sim.private_key,
    );
    let resp = atlas
        .v2(
            Method::POST,
            &format!("/orgs/{}/apiKeys", sim.org_id),
            Some(json!({"desc":"via proxy","roles":["ORG_MEMBER"]})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
    assert!(resp.json()["links"][0]["href"]
        .as_str()
        .unwrap()
        .starts_with("https://cloud.mongodb.com/api/atlas/v2/"));
    assert_eq!(sim.inventory().issued_keys().count(), 1);

    // Other hosts are not tunnelled anywhere.
    let mut stream = tokio::net::TcpStream::connect(proxy_url.trim_start_matches("http://"))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 403"));
}

// ---- the binary -----------------------------------------------------------------------------

#[tokio::test]
async fn binary_prints_startup_json_and_exits_on_sigterm() {
    use std::io::BufRead;
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("/admin/faults") && help.contains("--proxy"));
    assert!(help.contains("/api/oauth/token") && help.contains("/admin/service_accounts"));
    assert!(help.contains("/admin/org_users") && help.contains(":addRole"));

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--org-id",
            "a0123456789abcdef012345a",
            "--public-key",
            "abcdefgh",
            "--sa-client-id",
            "mdb_sa_id_b0123456789abcdef012345b",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let info: StartupInfo = serde_json::from_str(&line).unwrap();
    let raw: Value = serde_json::from_str(&line).unwrap();
    for field in [
        "base_url",
        "admin_url",
        "org_id",
        "project_id",
        "public_key",
        "private_key",
        "sa_client_id",
        "sa_client_secret",
    ] {
        assert!(raw[field].is_string(), "{field} missing: {line}");
    }
    assert_eq!(info.sa_client_id, "mdb_sa_id_b0123456789abcdef012345b");
    assert!(info.sa_client_secret.starts_with("mdb_sa_sk_"));
    assert_eq!(info.org_id, "a0123456789abcdef012345a");
    assert_eq!(info.public_key, "abcdefgh");
    assert_eq!(info.admin_url, format!("{}/admin", info.base_url));
    let atlas = Atlas::new(&info.base_url, &info.public_key, &info.private_key);
    assert_eq!(
        atlas
            .v2(Method::GET, &format!("/orgs/{}/apiKeys", info.org_id), None)
            .await
            .status,
        StatusCode::OK
    );
    // The seeded service account's credentials obtain a token that works.
    let token: Value = http()
        .post(format!("{}/api/oauth/token", info.base_url))
        .basic_auth(&info.sa_client_id, Some(&info.sa_client_secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = http()
        .get(format!(
            "{}/api/atlas/v2/orgs/{}/serviceAccounts",
            info.base_url, info.org_id
        ))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .header("Accept", V2_SA)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "atlas-sim did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}

// ---- concurrency and throughput ---------------------------------------------------------------

/// Latency is slept without holding any lock: concurrent slow requests overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_overlap() {
    let sim = start().await;
    sim.add_fault(FaultRule::latency(
        Some("GET"),
        "/apiKeys$",
        Duration::from_millis(300),
    ))
    .unwrap();
    let path = format!("/orgs/{}/apiKeys", sim.org_id);
    let t = Instant::now();
    let calls = (0..20).map(|_| {
        let atlas = Atlas::for_sim(&sim);
        let path = path.clone();
        async move { atlas.v2(Method::GET, &path, None).await.status }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    // Serialized they would take 6 s; overlapping, about 0.3 s (bound generous for busy CI).
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "20 slow calls took {:?}",
        t.elapsed()
    );
}

/// Measures authenticated requests per second (run with `--ignored --nocapture`, ideally
/// in release mode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement"]
async fn throughput() {
    let sim = Simulator::start(SimConfig {
        journal_capacity: 10_000,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.set_rate_limits(RateLimitConfig {
        enabled: false,
        ..RateLimitConfig::default()
    });
    let per_worker = 500;
    let workers = 16;
    let path = format!("/orgs/{}/apiKeys/{}", sim.org_id, sim.key_id);
    let t = Instant::now();
    let runs = (0..workers).map(|_| {
        let atlas = Atlas::for_sim(&sim);
        let path = path.clone();
        tokio::spawn(async move {
            for _ in 0..per_worker {
                assert_eq!(
                    atlas.v2(Method::GET, &path, None).await.status,
                    StatusCode::OK
                );
            }
        })
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap();
    }
    let elapsed = t.elapsed();
    let n = workers * per_worker;
    println!(
        "{n} authenticated calls in {elapsed:?}: {:.0} req/s",
        f64::from(n) / elapsed.as_secs_f64()
    );
}

#[test]
fn background_simulator_serves_without_a_runtime() {
    let sim = Simulator::start_background(SimConfig::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        let atlas = Atlas::for_sim(&sim);
        atlas
            .v2(Method::GET, &format!("/orgs/{}/apiKeys", sim.org_id), None)
            .await
            .status
    });
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.stats().challenges, 1);
    let health = format!("{}/health", sim.admin_url);
    drop(sim);
    let after = runtime.block_on(async { http().get(&health).send().await });
    assert!(after.is_err(), "simulator still answering after drop");
}

/// Writes this client's traffic as a journal for the OpenAPI check in tests/openapi
/// (`ATLAS_SIM_JOURNAL_OUT=<file>` here, then `ATLAS_SIM_JOURNAL=<file> go test ./...` there).
#[tokio::test]
async fn journal_dump_for_openapi_check() {
    let sim = start().await;
    let atlas = Atlas::for_sim(&sim);
    let (org, group) = (&sim.org_id, &sim.project_id);
    let key = atlas
        .v2(
            Method::POST,
            &format!("/orgs/{org}/apiKeys"),
            Some(json!({"desc":"dump","roles":["ORG_OWNER"]})),
        )
        .await
        .json();
    let id = key["id"].as_str().unwrap();
    let al = format!("/orgs/{org}/apiKeys/{id}/accessList");
    atlas
        .v2(
            Method::POST,
            &al,
            Some(json!([{"cidrBlock":"203.0.113.0/24"}])),
        )
        .await;
    atlas
        .v2(Method::GET, &format!("{al}/203.0.113.0%2F24"), None)
        .await;
    atlas
        .v2(
            Method::PATCH,
            &format!("/groups/{group}/apiKeys/{id}"),
            Some(json!({"roles":["GROUP_OWNER"]})),
        )
        .await;
    atlas
        .v2(
            Method::GET,
            &format!("/groups/{group}/apiKeys?itemsPerPage=500"),
            None,
        )
        .await;
    atlas
        .v2(
            Method::DELETE,
            &format!("/groups/{group}/apiKeys/{id}"),
            None,
        )
        .await;
    atlas
        .v2(Method::DELETE, &format!("/orgs/{org}/apiKeys/{id}"), None)
        .await;
    atlas
        .v2(Method::GET, &format!("/orgs/{org}/apiKeys/{id}"), None)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("ATLAS_SIM_JOURNAL_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("journal.json"));
    sim.write_journal(&path).unwrap();
    let entries: Vec<atlas_sim::JournalEntry> =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(entries.len(), 9, "one challenge and eight calls");
    assert_eq!(entries.last().unwrap().status, 404);
}
