//! Client behaviour against a scripted server: Digest round trips, retries, pagination,
//! create recovery, error mapping, and that no secret reaches the logs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::atlas::test_server::{DigestGate, Reply, SeenRequest, TestServer};
use crate::atlas::{AccessListEntry, PrivateKey, RetryPolicy, Timeouts};

const PUBLIC: &str = "mcpvrzod";
const PRIVATE: &str = "40395d07-a353-4881-853b-43efa41339a1";
const ORG: &str = "a0123456789abcdef012345a";
const PROJECT: &str = "b0123456789abcdef012345b";
const KEY: &str = "6a793f752c88faeba59bba49";
const MEDIA: &str = "application/vnd.atlas.2023-01-01+json";

fn config(base_url: &str) -> ClientConfig {
    ClientConfig::new(PUBLIC, PRIVATE)
        .with_base_url(base_url)
        .with_vault_version("1.20.0")
        .with_timeouts(Timeouts {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(2),
            overall: Duration::from_secs(10),
        })
        .with_retry(RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            jitter: false,
        })
}

fn client(server: &TestServer) -> AtlasClient {
    AtlasClient::new(config(&server.base_url)).expect("client")
}

/// Wraps a route script behind the Digest gate, like Atlas.
fn gated(
    gate: &Arc<DigestGate>,
    routes: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
) -> impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static {
    let gate = gate.clone();
    move |request| match gate.check(request) {
        Ok(()) => routes(request),
        Err(challenge) => challenge,
    }
}

fn key_json(id: &str, desc: &str, private_key: &str) -> serde_json::Value {
    json!({
        "desc": desc,
        "id": id,
        "links": [{"href": format!("https://cloud.mongodb.com/api/atlas/v2/orgs/{ORG}/apiKeys/{id}"), "rel": "self"}],
        "privateKey": private_key,
        "publicKey": "gswvkocq",
        "roles": [{"orgId": ORG, "roleName": "ORG_READ_ONLY"}],
    })
}

fn page_json(results: Vec<serde_json::Value>, next: Option<String>) -> String {
    let mut links = vec![json!({"href": "https://cloud.mongodb.com/self", "rel": "self"})];
    if let Some(next) = next {
        links.push(json!({"href": next, "rel": "next"}));
    }
    let total = results.len();
    json!({"links": links, "results": results, "totalCount": total}).to_string()
}

/// Requests that passed the Digest gate (carry an Authorization header).
fn authed(server: &TestServer) -> Vec<SeenRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.header("authorization").is_some())
        .collect()
}

fn nc_of(request: &SeenRequest) -> String {
    crate::atlas::digest::tests::parse_authorization(request.header("authorization").expect("auth"))
        ["nc"]
        .clone()
}

#[tokio::test]
async fn warm_calls_cost_one_round_trip_and_carry_versioned_headers() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |_| {
        Reply::json(
            200,
            key_json(KEY, "d", "********-****-****-01bdd56c8977").to_string(),
        )
    }))
    .await;
    let client = client(&server);

    for _ in 0..3 {
        let key = client.get_org_key(ORG, KEY).await.expect("get");
        assert_eq!(key.id, KEY);
        assert!(
            key.private_key.is_none(),
            "reads never carry the private key"
        );
    }
    let all = server.requests();
    assert_eq!(all.len(), 4, "one challenge, then one exchange per call");
    assert!(all[0].header("authorization").is_none());
    let ncs: Vec<String> = all[1..].iter().map(nc_of).collect();
    assert_eq!(ncs, ["00000001", "00000002", "00000003"]);
    for request in &all {
        assert_eq!(request.header("accept"), Some(MEDIA));
        assert_eq!(
            request.header("user-agent"),
            Some(
                format!(
                    "vault-plugin-secrets-mongodbatlas/{} (Vault 1.20.0)",
                    env!("CARGO_PKG_VERSION")
                )
                .as_str()
            )
        );
        assert_eq!(
            request.path(),
            format!("/api/atlas/v2/orgs/{ORG}/apiKeys/{KEY}")
        );
    }
}

#[tokio::test]
async fn concurrent_calls_share_one_nonce() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |_| Reply::empty(204))).await;
    let client = client(&server);
    client.delete_org_key(ORG, KEY).await.expect("warm up");
    let before = server.requests().len();

    let calls = (0..16).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.delete_org_key(ORG, KEY).await })
    });
    for call in calls {
        call.await.expect("join").expect("delete");
    }
    assert_eq!(
        server.requests().len() - before,
        16,
        "no call needed a new challenge"
    );
    let mut ncs: Vec<String> = server.requests()[before..].iter().map(nc_of).collect();
    ncs.sort();
    ncs.dedup();
    assert_eq!(ncs.len(), 16);
}

#[tokio::test]
async fn stale_nonce_costs_one_extra_exchange() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |_| Reply::empty(204))).await;
    let client = client(&server);
    client.delete_org_key(ORG, KEY).await.expect("warm up");
    assert_eq!(server.requests().len(), 2);

    gate.expire_nonces();
    client.delete_org_key(ORG, KEY).await.expect("after expiry");
    assert_eq!(
        server.requests().len(),
        4,
        "stale 401, then the fresh nonce"
    );
    client.delete_org_key(ORG, KEY).await.expect("warm again");
    assert_eq!(server.requests().len(), 5);
}

#[tokio::test]
async fn wrong_credentials_fail_after_one_fresh_challenge() {
    let gate = DigestGate::new(PUBLIC, "another-password");
    let server = TestServer::start(gated(&gate, |_| Reply::empty(204))).await;
    let client = client(&server);
    let err = client
        .delete_org_key(ORG, KEY)
        .await
        .expect_err("unauthorized");
    assert!(matches!(err, AtlasError::Unauthorized(_)), "{err}");
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("You are not authorized"), "{err}");
    assert_eq!(
        server.requests().len(),
        2,
        "no retry loop on bad credentials"
    );
}

#[tokio::test]
async fn creates_send_versioned_json_and_return_the_private_key() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |r| {
        if r.is("POST", &format!("/api/atlas/v2/orgs/{ORG}/apiKeys")) {
            Reply::json(
                200,
                key_json(KEY, "vault-x", "c8150efd-c7a0-4afd-8c4f-01bdd56c8977").to_string(),
            )
        } else {
            Reply::error(404, "RESOURCE_NOT_FOUND", "no")
        }
    }))
    .await;
    let client = client(&server);
    let key = client
        .create_org_key(ORG, "vault-x", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect("create");
    assert_eq!(
        key.private_key.as_ref().map(PrivateKey::expose),
        Some("c8150efd-c7a0-4afd-8c4f-01bdd56c8977")
    );
    let posts: Vec<_> = authed(&server);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].header("content-type"), Some(MEDIA));
    assert_eq!(
        posts[0].json(),
        json!({"desc": "vault-x", "roles": ["ORG_READ_ONLY"]})
    );
}

#[tokio::test]
async fn project_key_assignment_and_access_list_requests_have_atlas_shapes() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |r| match r.method.as_str() {
        "POST" if r.path().ends_with("/accessList") => Reply::json(200, page_json(vec![], None)),
        "POST" if r.path().starts_with("/api/atlas/v2/groups/") && r.path().ends_with("/apiKeys") => {
            let mut key = key_json(KEY, "p", "754c8808-0ba8-4153-8eea-85daa09d408a");
            key["roles"] = json!([{"orgId": ORG, "roleName": "ORG_MEMBER"}, {"groupId": PROJECT, "roleName": "GROUP_READ_ONLY"}]);
            Reply::json(200, key.to_string())
        }
        "POST" | "DELETE" => Reply::empty(204),
        "GET" if r.path().ends_with("/accessList") => Reply::json(
            200,
            page_json(
                vec![
                    json!({"cidrBlock": "192.168.0.229/32", "count": 0, "created": "2026-08-10T03:02:57Z", "ipAddress": "192.168.0.229"}),
                    json!({"cidrBlock": "10.0.0.0/8", "count": 0, "created": "2026-08-10T03:02:57Z"}),
                ],
                None,
            ),
        ),
        "GET" => Reply::json(200, page_json(vec![key_json(KEY, "p", "********-****-****-85daa09d408a")], None)),
        _ => Reply::empty(405),
    }))
    .await;
    let client = client(&server);
    let roles = vec!["GROUP_READ_ONLY".to_owned()];

    let created = client
        .create_project_key(PROJECT, "p", &roles)
        .await
        .expect("create project key");
    assert_eq!(created.org_id(), Some(ORG));
    client
        .assign_key_to_project(PROJECT, KEY, &roles)
        .await
        .expect("assign");
    client
        .unassign_key_from_project(PROJECT, KEY)
        .await
        .expect("unassign");
    assert_eq!(
        client.list_project_keys(PROJECT).await.expect("list").len(),
        1
    );

    let ip: AccessListEntry = "192.168.0.229".parse().expect("ip");
    let block: AccessListEntry = "10.0.0.0/8".parse().expect("cidr");
    client
        .add_access_list(ORG, KEY, &[ip, block])
        .await
        .expect("add");
    client
        .add_access_list(ORG, KEY, &[])
        .await
        .expect("nothing to add");
    assert_eq!(
        client.list_access_list(ORG, KEY).await.expect("list"),
        vec![ip, block]
    );
    client
        .delete_access_list_entry(ORG, KEY, &block)
        .await
        .expect("delete cidr");
    client
        .delete_access_list_entry(ORG, KEY, &ip)
        .await
        .expect("delete ip");

    let seen = authed(&server);
    let lines: Vec<String> = seen
        .iter()
        .map(|r| format!("{} {}", r.method, r.path_and_query))
        .collect();
    assert_eq!(
        lines,
        [
            format!("POST /api/atlas/v2/groups/{PROJECT}/apiKeys"),
            format!("POST /api/atlas/v2/groups/{PROJECT}/apiKeys/{KEY}"),
            format!("DELETE /api/atlas/v2/groups/{PROJECT}/apiKeys/{KEY}"),
            format!("GET /api/atlas/v2/groups/{PROJECT}/apiKeys?itemsPerPage=500&pageNum=1"),
            format!("POST /api/atlas/v2/orgs/{ORG}/apiKeys/{KEY}/accessList"),
            format!(
                "GET /api/atlas/v2/orgs/{ORG}/apiKeys/{KEY}/accessList?itemsPerPage=500&pageNum=1"
            ),
            format!("DELETE /api/atlas/v2/orgs/{ORG}/apiKeys/{KEY}/accessList/10.0.0.0%2F8"),
            format!("DELETE /api/atlas/v2/orgs/{ORG}/apiKeys/{KEY}/accessList/192.168.0.229"),
        ]
    );
    assert_eq!(
        seen[0].json(),
        json!({"desc": "p", "roles": ["GROUP_READ_ONLY"]})
    );
    assert_eq!(seen[1].json(), json!([{"roles": ["GROUP_READ_ONLY"]}]));
    assert_eq!(seen[1].header("content-type"), Some(MEDIA));
    assert_eq!(
        seen[4].json(),
        json!([{"ipAddress": "192.168.0.229"}, {"cidrBlock": "10.0.0.0/8"}])
    );
}

#[tokio::test]
async fn lists_follow_next_links_across_pages() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |r| {
        let page: usize = r
            .path_and_query
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("pageNum="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let sizes = [500, 500, 3];
        let Some(size) = sizes.get(page.wrapping_sub(1)) else {
            return Reply::error(400, "INVALID_PAGE", "bad page");
        };
        let keys = (0..*size)
            .map(|i| key_json(&format!("{page:04}{i:020}"), &format!("k{page}-{i}"), "********-****-****-000000000000"))
            .collect();
        // Atlas links name its own host; the client must stay on its base URL.
        let next = (page < sizes.len()).then(|| {
            format!("https://cloud.mongodb.com/api/atlas/v2/orgs/{ORG}/apiKeys?includeCount=true&itemsPerPage=500&pageNum={}", page + 1)
        });
        Reply::json(200, page_json(keys, next))
    }))
    .await;
    let client = client(&server);
    let keys = client.list_org_keys(ORG).await.expect("list");
    assert_eq!(keys.len(), 1003);
    assert_eq!(keys[1002].desc, "k3-2");
    let found = client
        .find_org_key_by_desc(ORG, "k2-7")
        .await
        .expect("find");
    assert_eq!(found.map(|k| k.id), Some(format!("{:04}{:020}", 2, 7)));
    assert!(client
        .find_org_key_by_desc(ORG, "absent")
        .await
        .expect("find")
        .is_none());
    let found = client
        .find_project_key_by_desc(PROJECT, "k1-0")
        .await
        .expect("find");
    assert_eq!(found.map(|k| k.desc), Some("k1-0".to_owned()));
    for request in authed(&server) {
        assert!(
            request.path_and_query.contains("itemsPerPage=500"),
            "{}",
            request.path_and_query
        );
    }
}

#[tokio::test]
async fn pagination_loops_are_detected() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |_| {
        Reply::json(
            200,
            page_json(
                vec![],
                Some(format!(
                    "/api/atlas/v2/orgs/{ORG}/apiKeys?itemsPerPage=500&pageNum=1"
                )),
            ),
        )
    }))
    .await;
    let err = client(&server).list_org_keys(ORG).await.expect_err("loop");
    assert!(err.to_string().contains("loops"), "{err}");
    assert_eq!(authed(&server).len(), 1);
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let server = TestServer::start(gated(&gate, move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::error(
                429,
                "RATE_LIMITED_TOKEN_BUCKET",
                "Rate limit exceeded. Please retry after 1 seconds.",
            )
            .header("retry-after", "1")
        } else {
            Reply::empty(204)
        }
    }))
    .await;
    let client = client(&server);
    let started = tokio::time::Instant::now();
    client
        .delete_org_key(ORG, KEY)
        .await
        .expect("second attempt succeeds");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rate_limit_beyond_the_deadline_is_reported_at_once() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |_| {
        Reply::error(429, "RATE_LIMITED", "slow down").header("retry-after", "120")
    }))
    .await;
    let started = tokio::time::Instant::now();
    let err = client(&server)
        .delete_org_key(ORG, KEY)
        .await
        .expect_err("limited");
    match &err {
        AtlasError::RateLimited {
            retry_after,
            problem,
        } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(120)));
            assert_eq!(problem.error_code(), Some("RATE_LIMITED"));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(authed(&server).len(), 1);
}

/// Serves a scripted sequence for authenticated requests, then 204s.
fn sequence(
    gate: &Arc<DigestGate>,
    script: Vec<Reply>,
) -> impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static {
    let script = Mutex::new(script.into_iter());
    gated(gate, move |_| {
        script
            .lock()
            .expect("script")
            .next()
            .unwrap_or_else(|| Reply::empty(204))
    })
}

#[tokio::test]
async fn idempotent_calls_retry_gateway_errors_resets_and_timeouts() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(sequence(
        &gate,
        vec![
            Reply::error(503, "SERVICE_UNAVAILABLE", "later").header("retry-after", "0"),
            Reply::json(502, "<html>bad gateway</html>"),
            Reply::drop_connection(),
        ],
    ))
    .await;
    let client = client(&server);
    client
        .delete_org_key(ORG, KEY)
        .await
        .expect("fourth attempt succeeds");
    assert_eq!(authed(&server).len(), 4);

    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server =
        TestServer::start(sequence(&gate, vec![Reply::stall(Duration::from_secs(5))])).await;
    let mut config = config(&server.base_url);
    config.timeouts.attempt = Duration::from_millis(300);
    let client = AtlasClient::new(config).expect("client");
    client
        .delete_org_key(ORG, KEY)
        .await
        .expect("retried after the timeout");
    assert_eq!(authed(&server).len(), 2);
}

#[tokio::test]
async fn retries_stop_at_max_attempts_with_the_last_error() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |_| {
        Reply::error(504, "GATEWAY_TIMEOUT", "upstream")
    }))
    .await;
    let err = client(&server)
        .get_org_key(ORG, KEY)
        .await
        .expect_err("gives up");
    assert!(matches!(err, AtlasError::Transient { .. }), "{err}");
    assert_eq!(err.status(), Some(504));
    assert_eq!(authed(&server).len(), 4);
}

#[tokio::test]
async fn errors_keep_what_atlas_said_and_are_not_retried() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |r| {
        if r.method == http::Method::POST {
            Reply::error(
                400,
                "INVALID_ROLE_FOR_ORG",
                "Invalid role GROUP_OWNER for an organization.",
            )
        } else {
            Reply::error(
                404,
                "GROUP_NOT_FOUND",
                &format!("No group with ID {PROJECT} exists."),
            )
        }
    }))
    .await;
    let client = client(&server);
    let err = client.list_project_keys(PROJECT).await.expect_err("404");
    assert!(err.is_not_found());
    assert_eq!(err.error_code(), Some("GROUP_NOT_FOUND"));
    assert_eq!(
        err.detail(),
        Some(format!("No group with ID {PROJECT} exists.").as_str())
    );

    let err = client
        .create_org_key(ORG, "d", &["GROUP_OWNER".to_owned()])
        .await
        .expect_err("400");
    assert!(matches!(err, AtlasError::InvalidInput(_)), "{err}");
    assert_eq!(err.error_code(), Some("INVALID_ROLE_FOR_ORG"));
    assert!(
        err.to_string().contains("Invalid role GROUP_OWNER"),
        "{err}"
    );
    assert_eq!(
        server.count("POST", &format!("/api/atlas/v2/orgs/{ORG}/apiKeys")),
        1,
        "one attempt with the warm nonce, no retry"
    );
    assert_eq!(authed(&server).len(), 2);
}

#[tokio::test]
async fn bad_arguments_are_rejected_before_sending() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |_| Reply::empty(204))).await;
    let client = client(&server);
    for result in [
        client.delete_org_key("..", KEY).await,
        client.delete_org_key(ORG, "a/b").await,
        client.unassign_key_from_project("", KEY).await,
    ] {
        assert!(
            matches!(result, Err(AtlasError::InvalidArgument(_))),
            "{result:?}"
        );
    }
    let long = "x".repeat(251);
    let err = client
        .create_org_key(ORG, &long, &[])
        .await
        .expect_err("too long");
    assert!(matches!(err, AtlasError::InvalidArgument(_)));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn https_with_a_trusted_root_negotiates_http2() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let (server, ca_pem) = TestServer::start_tls(gated(&gate, |_| Reply::empty(204))).await;
    let mut config = config(&server.base_url);
    config.extra_root_certs_pem = Some(ca_pem);
    let client = AtlasClient::new(config).expect("client");
    client
        .delete_org_key(ORG, KEY)
        .await
        .expect("delete over TLS");
    client
        .delete_org_key(ORG, KEY)
        .await
        .expect("warm delete over TLS");
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|r| r.version == http::Version::HTTP_2),
        "{seen:?}"
    );
}

#[tokio::test]
async fn https_with_an_unknown_certificate_fails_without_retrying() {
    let (server, _) = TestServer::start_tls(|_| Reply::empty(204)).await;
    let started = tokio::time::Instant::now();
    let err = client(&server)
        .delete_org_key(ORG, KEY)
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(err, AtlasError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(err.to_string().contains("SSL_CERT_FILE"), "{err}");
    assert!(server.requests().is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
}

// ---- create recovery ----

/// A tiny key inventory standing in for Atlas during create-recovery tests.
#[derive(Default)]
struct Inventory {
    keys: Mutex<Vec<(String, String)>>,
    created: AtomicUsize,
}

impl Inventory {
    fn create(&self, desc: &str) -> serde_json::Value {
        let n = self.created.fetch_add(1, Ordering::SeqCst);
        let id = format!("{:024x}", 0xabc000 + n);
        self.keys
            .lock()
            .expect("keys")
            .push((id.clone(), desc.to_owned()));
        key_json(&id, desc, &format!("00000000-0000-0000-0000-{n:012}"))
    }

    fn list(&self) -> String {
        let keys = self.keys.lock().expect("keys").clone();
        page_json(
            keys.iter()
                .map(|(id, desc)| key_json(id, desc, "********-****-****-000000000000"))
                .collect(),
            None,
        )
    }

    fn delete(&self, id: &str) -> Reply {
        let mut keys = self.keys.lock().expect("keys");
        let before = keys.len();
        keys.retain(|(key_id, _)| key_id != id);
        if keys.len() < before {
            Reply::empty(204)
        } else {
            Reply::error(404, "API_KEY_NOT_FOUND", "no such key")
        }
    }

    fn ids(&self) -> Vec<String> {
        self.keys
            .lock()
            .expect("keys")
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Atlas with an inventory, whose create can be sabotaged by `on_create(n, created_key)`.
fn inventory_server(
    gate: &Arc<DigestGate>,
    inventory: Arc<Inventory>,
    on_create: impl Fn(usize, serde_json::Value) -> Reply + Send + Sync + 'static,
    list_reply: Option<fn() -> Reply>,
) -> impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static {
    let creates = AtomicUsize::new(0);
    gated(gate, move |r| {
        let keys_path = format!("/api/atlas/v2/orgs/{ORG}/apiKeys");
        let project_keys_path = format!("/api/atlas/v2/groups/{PROJECT}/apiKeys");
        match (r.method.as_str(), r.path()) {
            ("POST", p) if p == keys_path || p == project_keys_path => {
                let desc = r.json()["desc"].as_str().unwrap_or_default().to_owned();
                on_create(
                    creates.fetch_add(1, Ordering::SeqCst),
                    inventory.create(&desc),
                )
            }
            ("GET", p) if p == keys_path || p == project_keys_path => match list_reply {
                Some(reply) => reply(),
                None => Reply::json(200, inventory.list()),
            },
            ("DELETE", p) => match p.strip_prefix(&format!("{keys_path}/")) {
                Some(id) => inventory.delete(id),
                None => Reply::empty(405),
            },
            _ => Reply::empty(405),
        }
    })
}

#[tokio::test]
async fn create_whose_answer_was_lost_is_replaced_not_duplicated() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        |n, key| {
            if n == 0 {
                Reply::drop_connection()
            } else {
                Reply::json(200, key.to_string())
            }
        },
        None,
    ))
    .await;
    let client = client(&server);
    let key = client
        .create_org_key(ORG, "vault-role-1234", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect("recovered create");
    assert!(key.private_key.is_some());
    assert_eq!(
        inventory.ids(),
        vec![key.id.clone()],
        "the unreadable first key was deleted"
    );
    assert_eq!(
        server.count(
            "DELETE",
            &format!("/api/atlas/v2/orgs/{ORG}/apiKeys/{:024x}", 0xabc000)
        ),
        1
    );
}

#[tokio::test]
async fn create_after_gateway_error_that_created_nothing_just_tries_again() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let sabotage_inventory = inventory.clone();
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        move |n, key| {
            if n == 0 {
                // The gateway failed before Atlas acted: undo the creation.
                let id = key["id"].as_str().unwrap_or_default().to_owned();
                let _ = sabotage_inventory.delete(&id);
                Reply::error(502, "", "bad gateway")
            } else {
                Reply::json(200, key.to_string())
            }
        },
        None,
    ))
    .await;
    let key = client(&server)
        .create_org_key(ORG, "vault-role-5678", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect("create");
    assert_eq!(inventory.ids(), vec![key.id]);
    let methods: Vec<String> = authed(&server)
        .iter()
        .map(|r| r.method.to_string())
        .collect();
    assert_eq!(
        methods,
        ["POST", "GET", "POST", "GET"],
        "create, look-up, create, duplicate sweep"
    );
}

#[tokio::test]
async fn create_answered_with_a_server_error_is_checked_for_a_key() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        |n, key| {
            if n == 0 {
                // Atlas stored the key, then failed answering.
                Reply::error(500, "UNEXPECTED_ERROR", "Unexpected error.")
            } else {
                Reply::json(200, key.to_string())
            }
        },
        None,
    ))
    .await;
    let key = client(&server)
        .create_org_key(ORG, "vault-500", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect("create");
    assert_eq!(inventory.ids(), vec![key.id]);
    assert_eq!(inventory.created.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rate_limited_create_is_simply_resent() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let sabotage_inventory = inventory.clone();
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        move |n, key| {
            if n == 0 {
                let _ = sabotage_inventory.delete(key["id"].as_str().unwrap_or_default());
                Reply::error(429, "RATE_LIMITED", "slow down").header("retry-after", "0")
            } else {
                Reply::json(200, key.to_string())
            }
        },
        None,
    ))
    .await;
    let key = client(&server)
        .create_org_key(ORG, "vault-rl", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect("create");
    assert_eq!(inventory.ids(), vec![key.id]);
    let methods: Vec<String> = authed(&server)
        .iter()
        .map(|r| r.method.to_string())
        .collect();
    assert_eq!(
        methods,
        ["POST", "POST"],
        "a 429 means Atlas did nothing: no look-up needed"
    );
}

#[tokio::test]
async fn create_that_keeps_failing_gives_up_without_leaving_keys() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        |_, _| Reply::drop_connection(),
        None,
    ))
    .await;
    let err = client(&server)
        .create_org_key(ORG, "vault-doomed", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect_err("gives up");
    assert!(matches!(err, AtlasError::Transient { .. }), "{err}");
    assert!(
        inventory.ids().is_empty(),
        "every ambiguous create was cleaned up"
    );
    assert_eq!(
        inventory.created.load(Ordering::SeqCst),
        4,
        "max_attempts creates"
    );
}

#[tokio::test]
async fn create_reports_uncertainty_when_it_cannot_clean_up() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        |_, _| Reply::drop_connection(),
        Some(|| Reply::error(500, "UNEXPECTED_ERROR", "boom")),
    ))
    .await;
    let err = client(&server)
        .create_org_key(ORG, "vault-unsure", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect_err("uncertain");
    match &err {
        AtlasError::CreateUncertain { desc, source, .. } => {
            assert_eq!(desc, "vault-unsure");
            assert_eq!(source.error_code(), Some("UNEXPECTED_ERROR"));
        }
        other => panic!("expected CreateUncertain, got {other:?}"),
    }
    assert!(err.to_string().contains("vault-unsure"), "{err}");
    assert_eq!(
        inventory.created.load(Ordering::SeqCst),
        1,
        "no second create while unsure"
    );
}

/// Answers that do not prove Atlas refused the create (a proxy's redirect or 4xx, an odd
/// status, a success we cannot read) must leave the caller's record of the key in place.
#[tokio::test]
async fn create_answers_that_prove_nothing_are_reported_as_uncertain() {
    type Script = fn() -> Reply;
    let cases: [(&str, Script); 7] = [
        ("302", || Reply::empty(302).header("location", "/moved")),
        ("307", || Reply::empty(307).header("location", "/moved")),
        ("418 without a body", || Reply::empty(418)),
        ("400 from a proxy", || {
            Reply::json(400, "<html>400 Bad Request</html>").header("content-type", "text/html")
        }),
        ("404 with another JSON shape", || {
            Reply::json(404, r#"{"error":"Not Found","status":404}"#)
        }),
        ("429 without an Atlas body", || Reply::empty(429)),
        ("2xx that is no key", || {
            Reply::json(200, "<html>Welcome</html>")
        }),
    ];
    for (case, reply) in cases {
        let gate = DigestGate::new(PUBLIC, PRIVATE);
        let inventory = Arc::new(Inventory::default());
        // Atlas stored the key each time; something else answered.
        let server = TestServer::start(inventory_server(
            &gate,
            inventory.clone(),
            move |_, _| reply(),
            // Look-ups fail too (the proxy is in the way), so nothing can be verified.
            Some(|| Reply::empty(302).header("location", "/moved")),
        ))
        .await;
        let err = client(&server)
            .create_org_key(ORG, "vault-proxied", &["ORG_READ_ONLY".to_owned()])
            .await
            .expect_err(case);
        match &err {
            AtlasError::CreateUncertain { desc, .. } => assert_eq!(desc, "vault-proxied", "{case}"),
            other => panic!("{case}: expected CreateUncertain, got {other:?}"),
        }
        assert!(err.to_string().contains("vault-proxied"), "{case}: {err}");
        assert_eq!(
            inventory.created.load(Ordering::SeqCst),
            1,
            "{case}: no second create while unsure"
        );
        assert!(
            server.requests().iter().all(|r| r.path() != "/moved"),
            "{case}: redirects are not followed"
        );
    }
}

#[tokio::test]
async fn unreadable_create_answer_is_cleaned_up_and_still_uncertain() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        |_, mut key| {
            key.as_object_mut().map(|k| k.remove("privateKey"));
            Reply::json(201, key.to_string())
        },
        None,
    ))
    .await;
    let err = client(&server)
        .create_org_key(ORG, "vault-nopk", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect_err("no private key");
    assert!(
        matches!(
            &err,
            AtlasError::CreateUncertain {
                orphan_key_id: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no private key"), "{err}");
    assert!(inventory.ids().is_empty(), "the unusable key was deleted");
}

#[tokio::test]
async fn atlas_refusals_and_unsent_creates_stay_definite() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let undo = inventory.clone();
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        move |n, key| {
            let _ = undo.delete(key["id"].as_str().unwrap_or_default());
            match n {
                0 => Reply::error(
                    400,
                    "INVALID_ATTRIBUTE",
                    "Invalid attribute desc specified.",
                ),
                _ => Reply::error(403, "USER_UNAUTHORIZED", "Current user is not authorized."),
            }
        },
        None,
    ))
    .await;
    let client = client(&server);
    let err = client
        .create_org_key(ORG, "vault-bad", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect_err("400");
    assert!(matches!(err, AtlasError::InvalidInput(_)), "{err:?}");
    assert_eq!(err.error_code(), Some("INVALID_ATTRIBUTE"));
    let err = client
        .create_org_key(ORG, "vault-bad", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect_err("403");
    assert!(matches!(err, AtlasError::Forbidden(_)), "{err:?}");

    // Nothing listens there: the create was never sent.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let err = AtlasClient::new(config(&format!("http://127.0.0.1:{port}")))
        .expect("client")
        .create_org_key(ORG, "vault-unsent", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect_err("refused connection");
    assert!(matches!(err, AtlasError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let server = TestServer::start(gated(&gate, |r| {
        if r.path() == "/moved" {
            Reply::empty(204)
        } else {
            Reply::empty(301).header("location", "/moved")
        }
    }))
    .await;
    let err = client(&server)
        .delete_org_key(ORG, KEY)
        .await
        .expect_err("a redirect is an error");
    assert!(matches!(err, AtlasError::Unexpected { .. }), "{err:?}");
    assert_eq!(err.status(), Some(301));
    assert!(server.requests().iter().all(|r| r.path() != "/moved"));
}

#[tokio::test]
async fn project_create_recovery_deletes_through_the_organization() {
    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        |n, key| {
            if n == 0 {
                Reply::stall(Duration::from_secs(5))
            } else {
                Reply::json(200, key.to_string())
            }
        },
        None,
    ))
    .await;
    let mut config = config(&server.base_url);
    config.timeouts.attempt = Duration::from_millis(300);
    let client = AtlasClient::new(config).expect("client");
    let key = client
        .create_project_key(PROJECT, "vault-proj", &["GROUP_READ_ONLY".to_owned()])
        .await
        .expect("create after timeout");
    assert_eq!(inventory.ids(), vec![key.id]);
    assert_eq!(
        server.count("GET", &format!("/api/atlas/v2/groups/{PROJECT}/apiKeys")),
        2
    );
    assert_eq!(
        server.count(
            "DELETE",
            &format!("/api/atlas/v2/orgs/{ORG}/apiKeys/{:024x}", 0xabc000)
        ),
        1
    );
}

// ---- secrets stay out of logs and debug output ----

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
// The lock only orders this test against other capturing tests; nothing else takes it.
#[allow(clippy::await_holding_lock)]
async fn logs_and_debug_output_hold_no_secrets() {
    let _exclusive = crate::logging::capture_lock();
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let gate = DigestGate::new(PUBLIC, PRIVATE);
    let inventory = Arc::new(Inventory::default());
    let server = TestServer::start(inventory_server(
        &gate,
        inventory.clone(),
        |n, key| {
            if n == 0 {
                Reply::drop_connection()
            } else {
                Reply::json(200, key.to_string())
            }
        },
        None,
    ))
    .await;
    let client = client(&server);
    let key = client
        .create_org_key(ORG, "vault-logs", &["ORG_READ_ONLY".to_owned()])
        .await
        .expect("create");
    let new_private = key
        .private_key
        .as_ref()
        .map(PrivateKey::expose)
        .unwrap_or_default()
        .to_owned();
    let err = client.get_org_key(ORG, "000000000000000000000000").await;
    assert!(err.is_err());

    let logs = String::from_utf8(captured.0.lock().expect("capture").clone()).expect("utf8");
    assert!(
        logs.contains("Atlas exchange"),
        "debug logs are emitted: {logs}"
    );
    assert!(logs.contains("/api/atlas/v2/orgs/"), "paths are logged");
    for secret in [
        PRIVATE,
        new_private.as_str(),
        "response=",
        "Digest username",
    ] {
        assert!(!logs.contains(secret), "{secret:?} leaked into logs");
    }
    for shown in [
        format!("{client:?}"),
        format!("{key:?}"),
        format!("{:?}", config(&server.base_url)),
    ] {
        assert!(
            !shown.contains(PRIVATE) && !shown.contains(&new_private),
            "{shown}"
        );
    }
}

/// Whose access list an add goes to: an API key's or a service account's.
#[derive(Clone, Copy, Debug)]
enum ListOwner {
    Key,
    Account,
}

const ACCOUNT: &str = "mdb_sa_id_0123456789abcdef01234567";

async fn add_entries(
    client: &AtlasClient,
    owner: ListOwner,
    entries: &[AccessListEntry],
) -> Result<(), AtlasError> {
    match owner {
        ListOwner::Key => client.add_access_list(ORG, KEY, entries).await,
        ListOwner::Account => {
            client
                .add_service_account_access_list(
                    crate::atlas::AccountScope::Org(ORG),
                    ACCOUNT,
                    entries,
                )
                .await
        }
    }
}

/// An add whose answer was lost is resent and Atlas answers 409 DUPLICATE_ACCESS_LIST_ENTRY:
/// the entries are there, so the add succeeded. A 409 for entries that are not all on the
/// list stays an error. Alike for an API key's and a service account's access list (the
/// latter read in its own resource version).
#[tokio::test]
async fn access_list_add_resent_after_a_lost_answer_succeeds_on_duplicate() {
    for owner in [ListOwner::Key, ListOwner::Account] {
        let listed = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
        let adds = Arc::new(AtomicUsize::new(0));
        let listing_media = Arc::new(Mutex::new(Vec::<String>::new()));
        let gate = DigestGate::new(PUBLIC, PRIVATE);
        let server = TestServer::start(gated(&gate, {
            let (listed, adds, listing_media) =
                (listed.clone(), adds.clone(), listing_media.clone());
            move |r| match r.method.as_str() {
                "POST" => {
                    if adds.fetch_add(1, Ordering::SeqCst) == 0 {
                        // Executed, answer lost.
                        *listed.lock().expect("lock") = vec![
                            json!({"cidrBlock": "192.0.2.10/32", "ipAddress": "192.0.2.10"}),
                            json!({"cidrBlock": "198.51.100.0/24"}),
                        ];
                        return Reply::drop_connection();
                    }
                    Reply::error(
                        409,
                        "DUPLICATE_ACCESS_LIST_ENTRY",
                        "The access list entry 192.0.2.10/32 already exists.",
                    )
                }
                "GET" => {
                    let accept = r
                        .headers
                        .get(http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    listing_media.lock().expect("lock").push(accept.to_owned());
                    Reply::json(200, page_json(listed.lock().expect("lock").clone(), None))
                }
                _ => Reply::empty(405),
            }
        }))
        .await;
        let client = client(&server);
        let ip: AccessListEntry = "192.0.2.10".parse().expect("ip");
        let block: AccessListEntry = "198.51.100.0/24".parse().expect("cidr");
        add_entries(&client, owner, &[ip, block])
            .await
            .unwrap_or_else(|e| {
                panic!("{owner:?}: a resent add of entries now present fails: {e}")
            });
        assert_eq!(adds.load(Ordering::SeqCst), 2, "{owner:?}");
        let want_media = match owner {
            ListOwner::Key => MEDIA,
            ListOwner::Account => crate::atlas::transport::SERVICE_ACCOUNTS_MEDIA_TYPE,
        };
        assert_eq!(
            listing_media.lock().expect("lock").as_slice(),
            [want_media],
            "{owner:?}"
        );

        let missing: AccessListEntry = "203.0.113.0/24".parse().expect("cidr");
        let err = add_entries(&client, owner, &[ip, missing])
            .await
            .expect_err("a conflict over entries not all present stays an error");
        assert!(
            matches!(&err, AtlasError::InvalidInput(p) if p.error_code() == Some("DUPLICATE_ACCESS_LIST_ENTRY")),
            "{owner:?}: {err:?}"
        );
    }
}
