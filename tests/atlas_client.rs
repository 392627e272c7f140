//! The Atlas client against the simulator: every call (keys, service accounts, users and
//! projects), Digest with one round trip per warm call, stale nonces, Retry-After, transient
//! retries, and nothing left behind.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use atlas_sim::{FaultRule, NewOrgUserRequest, SimConfig, SimHandle, Simulator};
use vault_mongodbatlas::atlas::{
    AccessListEntry, AccountScope, AtlasClient, AtlasError, ClientConfig, MembershipStatus,
    RetryPolicy, RoleChange,
};

async fn sim() -> SimHandle {
    let cfg = SimConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..SimConfig::default()
    };
    Simulator::start(cfg).await.expect("simulator")
}

fn client(sim: &SimHandle) -> AtlasClient {
    let retry = RetryPolicy {
        max_attempts: 4,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        jitter: true,
    };
    AtlasClient::new(
        ClientConfig::new(sim.public_key.clone(), sim.private_key.clone())
            .with_base_url(sim.base_url.clone())
            .with_vault_version("1.21.4")
            .with_retry(retry),
    )
    .expect("client")
}

fn roles(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn every_call_works_and_leaves_nothing_behind() {
    let sim = sim().await;
    let c = client(&sim);
    let (org, project) = (sim.org_id.clone(), sim.project_id.clone());

    let key = c
        .create_org_key(&org, "vault-client-test-1", &roles(&["ORG_MEMBER"]))
        .await
        .expect("create org key");
    assert_eq!(key.public_key.len(), 8);
    assert!(
        key.private_key.is_some(),
        "the create answer carries the private key"
    );
    let got = c.get_org_key(&org, &key.id).await.expect("get");
    assert!(
        got.private_key.is_none(),
        "reads never carry the private key"
    );
    assert!(c
        .list_org_keys(&org)
        .await
        .expect("list")
        .iter()
        .any(|k| k.id == key.id));
    assert_eq!(
        c.find_org_key_by_desc(&org, "vault-client-test-1")
            .await
            .expect("find")
            .map(|k| k.id),
        Some(key.id.clone())
    );

    let entries = vec![
        AccessListEntry::IpAddress("192.0.2.1".parse().expect("ip")),
        AccessListEntry::CidrBlock("198.51.100.0/24".parse().expect("cidr")),
    ];
    c.add_access_list(&org, &key.id, &entries)
        .await
        .expect("access list");
    let listed = c
        .list_access_list(&org, &key.id)
        .await
        .expect("list access list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    c.delete_access_list_entry(&org, &key.id, &entries[1])
        .await
        .expect("delete CIDR entry (URL-encoded)");
    assert_eq!(
        c.list_access_list(&org, &key.id).await.expect("list").len(),
        1
    );

    c.assign_key_to_project(&project, &key.id, &roles(&["GROUP_READ_ONLY"]))
        .await
        .expect("assign");
    assert!(c
        .list_project_keys(&project)
        .await
        .expect("project keys")
        .iter()
        .any(|k| k.id == key.id));
    c.unassign_key_from_project(&project, &key.id)
        .await
        .expect("unassign");
    assert!(!c
        .list_project_keys(&project)
        .await
        .expect("project keys")
        .iter()
        .any(|k| k.id == key.id));

    let pkey = c
        .create_project_key(
            &project,
            "vault-client-test-2",
            &roles(&["GROUP_READ_ONLY"]),
        )
        .await
        .expect("project key");
    assert_eq!(
        pkey.org_id(),
        Some(org.as_str()),
        "Atlas adds ORG_MEMBER in the organization"
    );

    c.delete_org_key(&org, &key.id).await.expect("delete");
    c.delete_org_key(&org, &pkey.id)
        .await
        .expect("delete project key");
    assert!(c
        .delete_org_key(&org, &key.id)
        .await
        .expect_err("gone")
        .is_not_found());
    assert_eq!(sim.inventory().issued_keys().count(), 0);

    service_account_calls(&sim).await;
    user_calls(&sim, &c).await;
    // scripts/test.sh validates what our client sent (and what the simulator
    // answered) against the official OpenAPI spec (tests/openapi).
    if let Ok(path) = std::env::var("ATLAS_CLIENT_JOURNAL_OUT") {
        sim.write_journal(std::path::Path::new(&path))
            .expect("journal written");
    }
    sim.shutdown().await;
}

/// Every service-account call, logged in as a service account (bearer tokens).
async fn service_account_calls(sim: &SimHandle) {
    let c = AtlasClient::new(
        ClientConfig::service_account(sim.sa_client_id.clone(), sim.sa_client_secret.clone())
            .with_base_url(sim.base_url.clone()),
    )
    .expect("client");
    let (org, project) = (sim.org_id.clone(), sim.project_id.clone());
    let account = c
        .create_service_account(
            AccountScope::Org(&org),
            "vault-client-sa-1",
            "Issued by Vault for role client",
            &roles(&["ORG_MEMBER"]),
            8,
        )
        .await
        .expect("create org service account");
    assert!(
        account.secret.is_some(),
        "the create answer carries the secret"
    );
    assert!(account.secret_expires_at.is_some());
    let entries = vec![AccessListEntry::CidrBlock(
        "198.51.100.0/24".parse().expect("cidr"),
    )];
    c.add_service_account_access_list(AccountScope::Org(&org), &account.client_id, &entries)
        .await
        .expect("access list");
    c.invite_service_account(&project, &account.client_id, &roles(&["GROUP_READ_ONLY"]))
        .await
        .expect("invite");
    let found = c
        .find_service_account_by_name(AccountScope::Org(&org), "vault-client-sa-1")
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.client_id, account.client_id);
    assert!(found.secret.is_none(), "reads never carry the secret");
    // Root rotation's calls: the login's organizations, its account, a new secret.
    assert_eq!(c.list_org_ids().await.expect("orgs"), vec![org.clone()]);
    let login = c
        .get_service_account(&org, &sim.sa_client_id)
        .await
        .expect("the login account");
    assert!(login.secrets.iter().any(|s| s.is(&sim.sa_client_secret)));
    let second = c
        .create_service_account_secret(&org, &account.client_id, 8)
        .await
        .expect("new secret");
    assert!(second.secret.is_some());
    c.delete_service_account_secret(&org, &account.client_id, &second.id)
        .await
        .expect("delete secret");
    let in_project = c
        .create_service_account(
            AccountScope::Project(&project),
            "vault-client-sa-2",
            "Issued by Vault for role client",
            &roles(&["GROUP_READ_ONLY"]),
            8,
        )
        .await
        .expect("create project service account");
    assert_eq!(c.project_org_id(&project).await.expect("project"), org);
    assert!(c
        .list_service_accounts(AccountScope::Project(&project))
        .await
        .expect("project accounts")
        .iter()
        .any(|a| a.client_id == in_project.client_id));
    c.remove_service_account_from_project(&project, &in_project.client_id)
        .await
        .expect("remove from project");
    for id in [&account.client_id, &in_project.client_id] {
        c.delete_service_account(&org, id).await.expect("delete");
    }
    assert!(c
        .delete_service_account(&org, &account.client_id)
        .await
        .expect_err("gone")
        .is_not_found());
    assert_eq!(sim.inventory().issued_service_accounts().count(), 0);
    assert!(c.revoke_token().await.expect("revoke the token"));
    assert!(!c.revoke_token().await.expect("nothing to revoke"));
}

/// Every MongoDB Cloud user call (version 2025-02-19) and project creation: what
/// just-in-time access for people needs. Grants and removals leave the user as they were.
async fn user_calls(sim: &SimHandle, c: &AtlasClient) {
    let org = sim.org_id.clone();
    for (username, role) in [
        ("owner@example.com", "ORG_OWNER"),
        ("ada@example.com", "ORG_MEMBER"),
    ] {
        sim.add_org_user(NewOrgUserRequest {
            username: username.into(),
            org_roles: vec![role.into()],
            ..NewOrgUserRequest::default()
        })
        .expect("organization member");
    }
    let project = c
        .create_project(&org, "vault-client-users")
        .await
        .expect("create project");
    assert_eq!(project.org_id, org);
    assert_eq!(
        sim.inventory().project_members(&project.id)["owner@example.com"],
        ["GROUP_OWNER"],
        "the oldest organization owner owns a new project"
    );
    let p = project.id.as_str();

    assert_eq!(c.list_org_users(&org).await.expect("org users").len(), 2);
    let ada = c
        .find_org_user_by_username(&org, "Ada@Example.com")
        .await
        .expect("find")
        .expect("a member");
    assert!(ada.is_active());
    assert_eq!(
        c.get_org_user(&org, &ada.id).await.expect("get").username,
        "ada@example.com"
    );
    assert!(c
        .find_org_user_by_username(&org, "nobody@example.com")
        .await
        .expect("find")
        .is_none());
    assert_eq!(c.project_user(p, &ada.id).await.expect("read"), None);

    let added = c
        .add_user_to_project(p, "ada@example.com", &roles(&["GROUP_READ_ONLY"]))
        .await
        .expect("add to project");
    assert_eq!(
        (added.id.as_str(), &added.status),
        (ada.id.as_str(), &MembershipStatus::Active)
    );
    assert!(c
        .add_user_to_project(p, "ada@example.com", &roles(&["GROUP_OWNER"]))
        .await
        .expect_err("already in the project")
        .is_caller_input());
    assert!(c
        .list_project_users(p)
        .await
        .expect("project users")
        .iter()
        .any(|u| u.id == ada.id));

    let grant = "GROUP_DATA_ACCESS_READ_ONLY";
    assert_eq!(
        c.add_project_role(p, &ada.id, grant)
            .await
            .expect("add role"),
        RoleChange::Made
    );
    assert_eq!(
        c.add_project_role(p, &ada.id, grant).await.expect("again"),
        RoleChange::AlreadyInPlace
    );
    assert!(c
        .project_user(p, &ada.id)
        .await
        .expect("read")
        .expect("in project")
        .has_role(grant));
    assert_eq!(
        c.remove_project_role(p, &ada.id, grant)
            .await
            .expect("remove role"),
        RoleChange::Made
    );
    assert_eq!(
        c.remove_project_role(p, &ada.id, grant)
            .await
            .expect("again"),
        RoleChange::AlreadyInPlace
    );
    let last = c
        .remove_project_role(p, &ada.id, "GROUP_READ_ONLY")
        .await
        .expect_err("a user keeps one role");
    assert!(matches!(last, AtlasError::InvalidInput(_)), "{last:?}");

    assert_eq!(
        c.add_org_role(&org, &ada.id, "ORG_READ_ONLY")
            .await
            .expect("add org role"),
        RoleChange::Made
    );
    assert_eq!(
        c.remove_org_role(&org, &ada.id, "ORG_READ_ONLY")
            .await
            .expect("remove org role"),
        RoleChange::Made
    );
    assert_eq!(
        c.remove_org_role(&org, &ada.id, "ORG_READ_ONLY")
            .await
            .expect("again"),
        RoleChange::AlreadyInPlace
    );

    c.remove_user_from_project(p, &ada.id)
        .await
        .expect("remove from project");
    assert!(c
        .remove_user_from_project(p, &ada.id)
        .await
        .expect_err("gone")
        .is_not_found());
    assert_eq!(c.project_user(p, &ada.id).await.expect("read"), None);

    // Atlas invites someone who is not a member (what a grant must avoid).
    let invited = c
        .add_user_to_project(p, "newcomer@example.com", &roles(&["GROUP_READ_ONLY"]))
        .await
        .expect("invitation");
    assert_eq!(invited.status, MembershipStatus::Pending);
    c.remove_user_from_project(p, &invited.id)
        .await
        .expect("withdraw from the project");

    let inventory = sim.inventory();
    let members = inventory.project_members(p);
    assert_eq!(members.keys().collect::<Vec<_>>(), ["owner@example.com"]);
    assert_eq!(
        inventory
            .org_user(&org, "ada@example.com")
            .expect("ada")
            .org_roles,
        ["ORG_MEMBER"],
        "ada is back where she was"
    );
}

#[tokio::test]
async fn a_warm_call_is_one_round_trip() {
    let sim = sim().await;
    let c = client(&sim);
    c.list_org_keys(&sim.org_id)
        .await
        .expect("first call pays the challenge");
    sim.reset_stats();
    for _ in 0..10 {
        c.list_org_keys(&sim.org_id).await.expect("warm call");
    }
    let stats = sim.stats();
    assert_eq!(stats.challenges, 0, "nonce reused");
    assert_eq!(stats.requests_total, 10, "one HTTP request per call");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_stale_nonce_costs_one_extra_exchange() {
    let sim = sim().await;
    let c = client(&sim);
    c.list_org_keys(&sim.org_id).await.expect("warm up");
    sim.set_nonce_lifetime(Duration::from_millis(20));
    // Let the cached nonce age past its lifetime.
    tokio::time::sleep(Duration::from_millis(60)).await;
    sim.reset_stats();
    c.list_org_keys(&sim.org_id)
        .await
        .expect("recovers from stale=true");
    let stats = sim.stats();
    assert_eq!(stats.stale_challenges, 1);
    assert_eq!(stats.requests_total, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized_without_a_retry_loop() {
    let sim = sim().await;
    let c = AtlasClient::new(
        ClientConfig::new("zzzzzzzz", "00000000-0000-0000-0000-000000000000")
            .with_base_url(sim.base_url.clone()),
    )
    .expect("client");
    let err = c.list_org_keys(&sim.org_id).await.expect_err("rejected");
    assert!(matches!(err, AtlasError::Unauthorized(_)), "{err:?}");
    assert!(sim.stats().requests_total <= 3, "{:?}", sim.stats());
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limits_and_transient_failures_are_retried() {
    let sim = sim().await;
    let c = client(&sim);
    let org = sim.org_id.clone();
    sim.add_fault(
        FaultRule::status(Some("GET"), "/apiKeys$", 429)
            .retry_after(1)
            .times(1),
    )
    .expect("fault");
    let started = std::time::Instant::now();
    c.list_org_keys(&org).await.expect("429 then success");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    sim.clear_faults();

    for status in [502, 503, 504] {
        sim.add_fault(FaultRule::status(Some("GET"), "/apiKeys$", status).times(2))
            .expect("fault");
        c.list_org_keys(&org)
            .await
            .unwrap_or_else(|e| panic!("{status} retried: {e}"));
        sim.clear_faults();
    }
    sim.add_fault(FaultRule::reset(Some("GET"), "/apiKeys$").times(1))
        .expect("fault");
    c.list_org_keys(&org)
        .await
        .expect("connection reset retried");
    sim.clear_faults();

    sim.add_fault(FaultRule::status(Some("GET"), "/apiKeys$", 503))
        .expect("fault");
    let err = c
        .list_org_keys(&org)
        .await
        .expect_err("persistent 503 gives up");
    assert!(
        matches!(
            err,
            AtlasError::Transient { .. } | AtlasError::Unexpected { .. }
        ),
        "{err:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn atlas_errors_keep_code_and_detail() {
    let sim = sim().await;
    let c = client(&sim);
    let err = c
        .create_org_key(&sim.org_id, "x", &roles(&["GROUP_READ_ONLY"]))
        .await
        .expect_err("wrong role scope");
    assert!(matches!(err, AtlasError::InvalidInput(_)), "{err:?}");
    assert_eq!(err.error_code(), Some("INVALID_ROLE_FOR_ORG"));
    assert!(err.to_string().contains("INVALID_ROLE_FOR_ORG"), "{err}");
    let err = c
        .get_org_key(&sim.org_id, "0123456789abcdef01234567")
        .await
        .expect_err("missing");
    assert!(err.is_not_found(), "{err:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_lost_create_answer_never_leaves_a_second_key() {
    let sim = sim().await;
    let c = client(&sim);
    // Atlas executes the first create but the answer never arrives.
    sim.add_fault(FaultRule::reset_after(Some("POST"), "/orgs/[0-9a-f]+/apiKeys$").times(1))
        .expect("fault");
    let key = c
        .create_org_key(&sim.org_id, "vault-lost-answer-1", &roles(&["ORG_MEMBER"]))
        .await
        .expect("create succeeds in the end");
    assert!(key.private_key.is_some());
    assert_eq!(
        sim.stats().faults_fired,
        1,
        "the answer of the first create was really lost"
    );
    let twins: Vec<_> = sim
        .inventory()
        .issued_keys()
        .filter(|k| k.desc == "vault-lost-answer-1")
        .map(|k| k.id.clone())
        .collect();
    assert_eq!(
        twins,
        vec![key.id.clone()],
        "the orphan whose private key was lost is deleted; only the returned key lives"
    );
    sim.shutdown().await;
}
