//! Service accounts end to end in-process: both logins (API key, service
//! account) with both credential types, against the Atlas simulator. Every
//! issued credential must work in Atlas and be gone after revocation.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use atlas_sim::FaultRule;
use serde_json::json;
use support::{data, Login, Mount, Yielding};
use vault_mongodbatlas::atlas::{AccountScope, AtlasClient, ClientConfig};
use vault_mongodbatlas::vault::framework::{BackendError, Operation, Response};
use vault_mongodbatlas::vault::storage::Storage;

const TOKEN_ROUTE: &str = "POST /api/oauth/token";

fn text<'a>(resp: &'a Response, field: &str) -> &'a str {
    data(resp)[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {:?}", data(resp).keys()))
}

fn token_requests(m: &Mount) -> u64 {
    m.sim.stats().route(TOKEN_ROUTE).total
}

/// Issued (not seeded) credentials in Atlas: API keys, service accounts.
fn live(m: &Mount) -> (usize, usize) {
    (m.issued_keys(), m.issued_service_accounts())
}

/// The state after an issuance that failed once the account existed.
async fn assert_deleted_before_answering(m: &Mount, err: &BackendError) {
    assert!(
        err.to_string().contains("the service account was deleted"),
        "{err}"
    );
    assert_eq!(live(m), (0, 0));
    assert!(m.wal_entries().await.is_empty());
}

/// Proves an issued service account works: it gets a token and reads Atlas.
async fn service_account_works(m: &Mount, resp: &Response, read: AccountScope<'_>) {
    let client = AtlasClient::new(
        ClientConfig::service_account(text(resp, "client_id"), text(resp, "client_secret"))
            .with_base_url(m.sim.base_url.clone()),
    )
    .expect("client");
    match read {
        AccountScope::Org(_) => {
            client.list_service_accounts(read).await.expect("org read");
        }
        AccountScope::Project(project) => {
            client.project_org_id(project).await.expect("project read");
        }
    }
}

#[tokio::test]
async fn every_login_issues_both_credential_types_that_work_and_are_gone_after_revocation() {
    for login in [Login::ApiKey, Login::ServiceAccount] {
        let m = Mount::logged_in(login).await;
        let (org, project) = (m.sim.org_id.clone(), m.sim.project_id.clone());
        let roles = [
            (
                "key",
                json!({"organization_id": org, "roles": "ORG_MEMBER"}),
            ),
            (
                "sa-org",
                json!({"credential_type": "service_account", "organization_id": org, "roles": "ORG_READ_ONLY", "ip_addresses": "127.0.0.1", "cidr_blocks": "192.0.2.0/24", "ttl": "1h", "max_ttl": "20h"}),
            ),
            (
                "sa-invited",
                json!({"credential_type": "service_account", "organization_id": org, "project_id": project, "roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"}),
            ),
            (
                "sa-project",
                json!({"credential_type": "service_account", "project_id": project, "roles": "GROUP_READ_ONLY"}),
            ),
        ];
        let mut secrets = Vec::new();
        for (name, body) in &roles {
            m.ok(Operation::Update, &format!("roles/{name}"), body.clone())
                .await;
            let resp = m.issue(name).await;
            let what = format!("{login:?} login, role {name}");
            if *name == "key" {
                assert!(data(&resp).contains_key("private_key"), "{what}");
            } else {
                assert!(text(&resp, "client_id").starts_with("mdb_sa_id_"), "{what}");
                assert!(
                    text(&resp, "name").starts_with(&format!("vault-{name}-")),
                    "{what}"
                );
                let scope = if *name == "sa-project" {
                    AccountScope::Project(&project)
                } else {
                    AccountScope::Org(&org)
                };
                service_account_works(&m, &resp, scope).await;
                let account = m
                    .sim
                    .inventory()
                    .service_account(text(&resp, "client_id"))
                    .cloned()
                    .expect("account in Atlas");
                if *name == "sa-invited" {
                    assert_eq!(
                        account.project_roles.get(&project),
                        Some(&vec!["GROUP_READ_ONLY".to_string()]),
                        "{what}"
                    );
                }
                if *name == "sa-org" {
                    assert_eq!(
                        account.access_list.len(),
                        2,
                        "{what}: {:?}",
                        account.access_list
                    );
                    // The secret outlives the lease's 20 h maximum by less than an hour.
                    let lease = resp.secret.as_ref().expect("lease");
                    assert_eq!(
                        lease.lease.max_ttl,
                        Duration::from_secs(20 * 3600),
                        "{what}"
                    );
                    let expires = time::OffsetDateTime::parse(
                        text(&resp, "secret_expires_at"),
                        &time::format_description::well_known::Rfc3339,
                    )
                    .expect("secret_expires_at is RFC 3339");
                    let left = SystemTime::from(expires)
                        .duration_since(SystemTime::now())
                        .expect("in the future");
                    assert!(
                        left >= Duration::from_secs(20 * 3600 - 60)
                            && left <= Duration::from_secs(21 * 3600),
                        "{what}: secret expires in {left:?}"
                    );
                }
            }
            secrets.push(resp.secret.clone().expect("lease"));
        }
        assert_eq!(live(&m), (1, 3), "{login:?}: every credential exists");
        for secret in secrets {
            m.revoke(secret).await.expect("revoke");
        }
        assert_eq!(live(&m), (0, 0), "{login:?}: revocation deleted everything");
        assert!(m.wal_entries().await.is_empty());
    }
}

#[tokio::test]
async fn concurrent_requests_share_one_token() {
    let m = Mount::with_org_role(Login::ServiceAccount, "r").await;
    m.sim.set_latency(Duration::from_millis(20));
    // As Vault's storage does, every storage call lets the other requests run:
    // all 64 find no client yet, and must still end up with one token.
    let storage: Arc<dyn Storage> = Arc::new(Yielding(m.storage.clone()));
    let before = token_requests(&m);
    let issues =
        (0..64).map(|_| m.call_with(storage.clone(), Operation::Read, "creds/r", json!({})));
    let issued = futures::future::join_all(issues).await;
    assert!(issued.iter().all(Result::is_ok), "{issued:?}");
    assert_eq!(
        token_requests(&m) - before,
        1,
        "64 concurrent first issuances fetch exactly one token"
    );
}

#[tokio::test]
async fn a_rejected_token_is_replaced_once_and_the_request_sent_again() {
    let m = Mount::with_org_role(Login::ServiceAccount, "r").await;
    m.issue("r").await;
    let before = token_requests(&m);
    // Atlas stops honouring the token once (as if revoked early).
    m.sim
        .add_fault(FaultRule::status(Some("POST"), "/orgs/[0-9a-f]{24}/apiKeys$", 401).times(1))
        .expect("fault");
    m.issue("r").await;
    assert_eq!(token_requests(&m) - before, 1, "one new token");
    // Rejected twice in a row: the second 401 is the answer.
    m.sim
        .add_fault(FaultRule::status(Some("POST"), "/orgs/[0-9a-f]{24}/apiKeys$", 401).times(2))
        .expect("fault");
    let err = m
        .call(Operation::Read, "creds/r", json!({}))
        .await
        .expect_err("401 twice");
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(live(&m).0, 2, "only the two issued keys exist");
}

#[tokio::test]
async fn a_new_config_revokes_the_old_token() {
    let m = Mount::with_org_role(Login::ServiceAccount, "r").await;
    m.issue("r").await;
    let login = m.sim.sa_client_id.clone();
    let tokens = || {
        m.sim
            .inventory()
            .service_account(&login)
            .map(|a| a.active_tokens)
            .unwrap_or_default()
    };
    assert_eq!(tokens(), 1);
    m.ok(Operation::Update, "config", m.login(Login::ServiceAccount))
        .await;
    m.backend.tasks.idle().await;
    assert_eq!(tokens(), 0, "the replaced client's token was revoked");
    m.issue("r").await;
    assert_eq!(tokens(), 1);
}

#[tokio::test]
async fn a_failure_after_the_create_deletes_the_account_before_answering() {
    let m = Mount::logged_in(Login::ApiKey).await;
    let (org, project) = (m.sim.org_id.clone(), m.sim.project_id.clone());
    m.ok(Operation::Update, "roles/invited", json!({"credential_type": "service_account", "organization_id": org, "project_id": project, "roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"}))
        .await;
    m.sim
        .add_fault(
            FaultRule::status(Some("POST"), ":invite$", 400).error_code("INVALID_ROLE_FOR_GROUP"),
        )
        .expect("fault");
    let err = m
        .call(Operation::Read, "creds/invited", json!({}))
        .await
        .expect_err("invite fails");
    assert!(err.is_user(), "Atlas refused the role: {err:?}");
    assert_deleted_before_answering(&m, &err).await;
}

#[tokio::test]
async fn a_lost_create_answer_is_found_by_name_and_deleted() {
    let m = Mount::logged_in(Login::ServiceAccount).await;
    let org = m.sim.org_id.clone();
    m.ok(Operation::Update, "roles/r", json!({"credential_type": "service_account", "organization_id": org, "roles": "ORG_MEMBER"}))
        .await;
    // Atlas creates the account, and the answer never arrives.
    m.sim
        .add_fault(FaultRule::reset_after(Some("POST"), "/serviceAccounts$").times(1))
        .expect("fault");
    let err = m
        .call(Operation::Read, "creds/r", json!({}))
        .await
        .expect_err("answer lost");
    assert_deleted_before_answering(&m, &err).await;
}

#[tokio::test]
async fn renewal_never_outlives_the_secret() {
    let m = Mount::logged_in(Login::ApiKey).await;
    let org = m.sim.org_id.clone();
    m.ok(Operation::Update, "roles/r", json!({"credential_type": "service_account", "organization_id": org, "roles": "ORG_MEMBER", "ttl": "1h", "max_ttl": "2h"}))
        .await;
    let resp = m.issue("r").await;
    // Atlas' minimum secret lifetime is 8 hours.
    let secret = resp.secret.clone().expect("lease");
    // The role now allows far longer leases than the secret lives.
    m.ok(
        Operation::Update,
        "roles/r",
        json!({"ttl": "100h", "max_ttl": "200h"}),
    )
    .await;
    let renewed = m
        .renew_response(secret, Duration::from_secs(100 * 3600))
        .await
        .expect("renew")
        .expect("response");
    let ttl = renewed.secret.as_ref().expect("lease").lease.ttl;
    assert!(ttl <= Duration::from_secs(8 * 3600), "renewed to {ttl:?}");
    assert!(ttl > Duration::from_secs(7 * 3600), "renewed to {ttl:?}");
    assert!(
        renewed.warnings.iter().any(|w| w.contains("secret expiry")),
        "{:?}",
        renewed.warnings
    );
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let m = Mount::logged_in(Login::ApiKey).await;
    let (org, project) = (m.sim.org_id.clone(), m.sim.project_id.clone());
    let cases = [
        (
            "roles/r",
            json!({"credential_type": "password", "organization_id": org, "roles": "ORG_MEMBER"}),
            "credential_type",
        ),
        (
            "roles/r",
            json!({"credential_type": "service_account", "project_id": project, "roles": "GROUP_READ_ONLY", "project_roles": "GROUP_OWNER"}),
            "project_roles",
        ),
        (
            "roles/r",
            json!({"credential_type": "service_account", "organization_id": org, "roles": "ORG_MEMBER", "max_ttl": "9000h"}),
            "max_ttl",
        ),
        (
            "config",
            json!({"public_key": "abcdefgh", "private_key": "p", "client_id": "mdb_sa_id_0123456789abcdef01234567", "client_secret": "s"}),
            "client_id/client_secret",
        ),
        (
            "config",
            json!({"client_id": "mdb_sa_id_0123456789abcdef01234567"}),
            "client_secret",
        ),
        ("config", json!({}), "public_key and private_key"),
    ];
    for (path, body, field) in cases {
        let msg = m.user_error(Operation::Update, path, body.clone()).await;
        assert!(
            msg.contains(field),
            "{path} {body}: {msg:?} should name {field}"
        );
        assert!(!msg.contains("mdb_sa_sk"), "{msg}");
    }
    // The config in place is still the one written first.
    let shown = m
        .ok(Operation::Read, "config", json!({}))
        .await
        .expect("config");
    assert_eq!(data(&shown)["public_key"], m.sim.public_key.as_str());
    assert!(!data(&shown).contains_key("client_secret"));
    assert!(!data(&shown).contains_key("private_key"));
}

/// Everything the process logs, at trace level, for the hygiene check below.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

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
async fn no_secret_or_token_reaches_the_logs_or_errors() {
    // The only test in this binary that installs a subscriber: a global one,
    // so every test's lines are scanned too.
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");

    let m = Mount::logged_in(Login::ServiceAccount).await;
    let org = m.sim.org_id.clone();
    m.ok(Operation::Update, "roles/sa", json!({"credential_type": "service_account", "organization_id": org, "roles": "ORG_MEMBER", "ip_addresses": "127.0.0.1"}))
        .await;
    let resp = m.issue("sa").await;
    let issued_secret = text(&resp, "client_secret").to_string();
    // A token the plugin fetched is rejected once: the replacement path logs too.
    m.sim
        .add_fault(FaultRule::status(Some("POST"), "/serviceAccounts$", 401).times(1))
        .expect("fault");
    let again = m.issue("sa").await;
    // A failure after the create: the error and the cleanup are logged.
    m.sim
        .add_fault(FaultRule::status(Some("POST"), "/accessList$", 400).times(1))
        .expect("fault");
    let err = m
        .call(Operation::Read, "creds/sa", json!({}))
        .await
        .expect_err("access list fails");
    m.sim.clear_faults();
    // The issued account logs in itself (its token never reaches the plugin's logs either).
    service_account_works(&m, &again, AccountScope::Org(&org)).await;
    for secret in [resp.secret.clone(), again.secret.clone()] {
        m.revoke(secret.expect("lease")).await.expect("revoke");
    }

    let logs = String::from_utf8(captured.0.lock().expect("capture").clone()).expect("utf8");
    assert!(
        logs.contains("oauth/token"),
        "token requests are logged: {logs}"
    );
    let login_secret = m.sim.sa_client_secret.clone();
    let again_secret = text(&again, "client_secret").to_string();
    for secret in [
        login_secret.as_str(),
        issued_secret.as_str(),
        again_secret.as_str(),
        "Bearer ",
        "Basic ",
        "access_token",
    ] {
        assert!(!logs.contains(secret), "{secret:?} leaked into the logs");
        assert!(!err.to_string().contains(secret), "{secret:?} in an error");
    }
}
