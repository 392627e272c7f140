//! `rotate-root` in-process against the simulator: both login kinds, leases
//! issued before a rotation, failures at each step, abandoned requests, and
//! rotations racing each other. After each, exactly one login credential
//! exists in Atlas, `config` holds it, and it works.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use atlas_sim::FaultRule;
use serde_json::json;
use support::{data, Login, Mount};
use vault_mongodbatlas::atlas::{AccessListEntry, AtlasClient, AtlasError, ClientConfig};
use vault_mongodbatlas::engine::Settings;
use vault_mongodbatlas::vault::framework::Operation;

/// The login credentials in Atlas: Organization Owner keys that are not
/// leases' keys, and the login service account's secrets.
fn login_credentials(m: &Mount, login: Login) -> usize {
    let inventory = m.sim.inventory();
    match login {
        Login::ApiKey => inventory
            .api_keys
            .iter()
            .filter(|k| k.roles.iter().any(|r| r.role_name == "ORG_OWNER"))
            .count(),
        Login::ServiceAccount => inventory
            .service_account(&m.sim.sa_client_id)
            .map(|a| a.secrets.len())
            .unwrap_or_default(),
    }
}

/// The stored config's client, built as the plugin would.
async fn stored_login_works(m: &Mount) -> bool {
    // Issuing a key exercises the stored login end to end.
    m.call(Operation::Read, "creds/probe", json!({}))
        .await
        .map(|resp| resp.is_some())
        .unwrap_or(false)
}

/// A mount whose login key has an access list (a rotation must carry it over).
async fn mount(login: Login) -> Mount {
    let m = Mount::with_org_role(login, "probe").await;
    let org = m.sim.org_id.clone();
    if login == Login::ApiKey {
        let loopback = vec![AccessListEntry::CidrBlock(
            "127.0.0.0/8".parse().expect("cidr"),
        )];
        old_client(&m, login)
            .add_access_list(&org, &m.sim.key_id, &loopback)
            .await
            .expect("access list of the login key");
    }
    m
}

/// Settles detached work and runs an immediate rollback; then the invariant.
async fn assert_one_working_login(m: &Mount, login: Login, what: &str) {
    m.backend.tasks.idle().await;
    m.rollback_now().await.expect("rollback");
    assert!(m.wal_entries().await.is_empty(), "{what}: WAL entries left");
    assert_eq!(
        login_credentials(m, login),
        1,
        "{what}: exactly one login credential in Atlas"
    );
    assert!(
        stored_login_works(m).await,
        "{what}: the stored login works"
    );
}

fn old_client(m: &Mount, login: Login) -> AtlasClient {
    let config = match login {
        Login::ApiKey => ClientConfig::new(m.sim.public_key.clone(), m.sim.private_key.clone()),
        Login::ServiceAccount => ClientConfig::service_account(
            m.sim.sa_client_id.clone(),
            m.sim.sa_client_secret.clone(),
        ),
    };
    AtlasClient::new(config.with_base_url(m.sim.base_url.clone())).expect("client")
}

#[tokio::test]
async fn both_logins_rotate_and_earlier_leases_still_renew_and_revoke() {
    for login in [Login::ApiKey, Login::ServiceAccount] {
        let m = mount(login).await;
        let org = m.sim.org_id.clone();
        m.ok(Operation::Update, "roles/sa", json!({"credential_type": "service_account", "organization_id": org, "roles": "ORG_MEMBER"}))
            .await;
        let before = [m.issue("probe").await, m.issue("sa").await];
        let rotated = m
            .ok(Operation::Update, "rotate-root", json!({}))
            .await
            .expect("answer");
        let shown = serde_json::to_string(data(&rotated)).expect("json");
        match login {
            Login::ApiKey => {
                let new = data(&rotated)["public_key"].as_str().expect("public_key");
                assert_ne!(new, m.sim.public_key);
                assert!(!shown.contains(&m.sim.private_key));
                // The new key has the old one's roles.
                let inventory = m.sim.inventory();
                let key = inventory.key_by_public_key(new).expect("new key");
                assert!(
                    key.roles.iter().any(|r| r.role_name == "ORG_OWNER"),
                    "{:?}",
                    key.roles
                );
            }
            Login::ServiceAccount => {
                assert_eq!(data(&rotated)["client_id"], m.sim.sa_client_id.as_str());
                assert!(data(&rotated)["secret_expires_at"].is_string());
            }
        }
        assert!(
            !shown.contains("mdb_sa_sk_"),
            "no secret in the answer: {shown}"
        );
        // The old credential no longer works.
        let refused = old_client(&m, login).list_org_ids().await;
        assert!(
            matches!(refused, Err(AtlasError::Unauthorized(_))),
            "{login:?}: the old credential still works: {refused:?}"
        );
        let config = m
            .ok(Operation::Read, "config", json!({}))
            .await
            .expect("config");
        assert!(!serde_json::to_string(data(&config))
            .expect("json")
            .contains("mdb_sa_sk_"));
        assert_one_working_login(&m, login, &format!("{login:?} rotation")).await;
        for resp in before {
            let lease = resp.secret.clone().expect("lease");
            m.renew(lease.clone(), Duration::from_secs(60)).await;
            m.revoke(lease).await.expect("revoke after the rotation");
        }
        assert_eq!(m.issued_service_accounts(), 0);
    }
}

#[tokio::test]
async fn a_failure_at_each_step_keeps_the_old_login_and_leaves_nothing() {
    let steps = [
        (Login::ApiKey, Some("POST"), "/orgs/[0-9a-f]{24}/apiKeys$"),
        (
            Login::ApiKey,
            Some("POST"),
            "/apiKeys/[0-9a-f]{24}/accessList$",
        ),
        (
            Login::ApiKey,
            Some("GET"),
            "/orgs/[0-9a-f]{24}/apiKeys/[0-9a-f]{24}$",
        ),
        (Login::ApiKey, Some("GET"), "/orgs$"),
        (Login::ServiceAccount, Some("POST"), "/secrets$"),
        (
            Login::ServiceAccount,
            Some("GET"),
            "/serviceAccounts/mdb_sa_id_[0-9a-f]{24}$",
        ),
        (Login::ServiceAccount, Some("GET"), "/orgs$"),
    ];
    for (n, (login, method, path)) in steps.into_iter().enumerate() {
        // Atlas refusing, and (for a few steps; retries take time) Atlas down.
        let statuses: &[u16] = if n % 3 == 0 { &[400, 503] } else { &[400] };
        for &status in statuses {
            let m = mount(login).await;
            let what = format!("{login:?} login, {status} on {method:?} {path}");
            m.sim
                .add_fault(FaultRule::status(method, path, status).times(20))
                .expect("fault");
            let outcome = m.call(Operation::Update, "rotate-root", json!({})).await;
            m.sim.clear_faults();
            assert!(outcome.is_err(), "{what}: {outcome:?}");
            assert_one_working_login(&m, login, &what).await;
        }
    }
}

#[tokio::test]
async fn a_lost_create_answer_is_cleaned_up_by_the_rollback() {
    for (login, path) in [
        (Login::ApiKey, "/orgs/[0-9a-f]{24}/apiKeys$"),
        (Login::ServiceAccount, "/secrets$"),
    ] {
        let m = mount(login).await;
        m.sim
            .add_fault(FaultRule::reset_after(Some("POST"), path).times(5))
            .expect("fault");
        let outcome = m.call(Operation::Update, "rotate-root", json!({})).await;
        m.sim.clear_faults();
        let what = format!("{login:?}: create answer lost ({outcome:?})");
        assert_one_working_login(&m, login, &what).await;
    }
}

#[tokio::test]
async fn a_rotation_before_the_rollback_of_one_whose_old_credential_delete_failed_leaves_one_login()
{
    for (login, old) in [
        (Login::ApiKey, "/apiKeys/[0-9a-f]{24}$"),
        (Login::ServiceAccount, "/secrets/[^/]+$"),
    ] {
        let m = mount(login).await;
        // Atlas refuses the old credential's delete: config holds the new one, the WAL
        // entry stays for the rollback, which Vault runs minutes later.
        m.sim
            .add_fault(FaultRule::status(Some("DELETE"), old, 400))
            .expect("fault");
        let first = m
            .call(Operation::Update, "rotate-root", json!({}))
            .await
            .expect("the first rotation succeeds")
            .expect("answer");
        m.sim.clear_faults();
        assert!(
            first.warnings.iter().any(|w| w.contains("WAL rollback")),
            "{login:?}: {:?}",
            first.warnings
        );
        assert_eq!(m.wal_entries().await.len(), 1, "{login:?}");
        // Rotated again before that rollback (on demand, or on schedule): the credential
        // the first rotation replaced must not outlive both.
        let second = m.call(Operation::Update, "rotate-root", json!({})).await;
        assert!(second.is_ok(), "{login:?}: the second rotation: {second:?}");
        assert_one_working_login(
            &m,
            login,
            &format!("{login:?}: rotated twice, then rolled back"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_abandoned_rotation_finishes_or_is_undone() {
    for login in [Login::ApiKey, Login::ServiceAccount] {
        let m = mount(login).await;
        m.sim.set_latency(Duration::from_millis(20));
        for step in 0..12u64 {
            let rotate = m.call(Operation::Update, "rotate-root", json!({}));
            let outcome = tokio::time::timeout(Duration::from_millis(15 * step), rotate).await;
            let what = format!(
                "{login:?} rotation abandoned after {} ms ({outcome:?})",
                15 * step
            );
            assert_one_working_login(&m, login, &what).await;
        }
    }
}

#[tokio::test]
async fn concurrent_rotations_run_one_after_the_other() {
    for login in [Login::ApiKey, Login::ServiceAccount] {
        let m = mount(login).await;
        let (a, b) = tokio::join!(
            m.call(Operation::Update, "rotate-root", json!({})),
            m.call(Operation::Update, "rotate-root", json!({})),
        );
        assert!(a.is_ok() && b.is_ok(), "{login:?}: {a:?} {b:?}");
        assert_one_working_login(&m, login, &format!("{login:?} twice at once")).await;
    }
}

#[tokio::test]
async fn a_rotation_period_rotates_on_vaults_periodic_tick() {
    for login in [Login::ApiKey, Login::ServiceAccount] {
        // Test-only knob (MONGODBATLAS_MIN_ROTATION_PERIOD): periods under an hour.
        let settings = Settings {
            min_rotation_period: Duration::from_secs(1),
            ..Settings::default()
        };
        let m = Mount::with_settings(settings, login).await;
        let org = m.sim.org_id.clone();
        m.ok(
            Operation::Update,
            "roles/probe",
            json!({"organization_id": org, "roles": "ORG_MEMBER"}),
        )
        .await;
        let mut config = m.login(login);
        config["rotation_period"] = json!("1s");
        m.ok(Operation::Update, "config", config).await;
        let shown = m
            .ok(Operation::Read, "config", json!({}))
            .await
            .expect("config");
        let before = data(&shown).clone();
        assert_eq!(before["rotation_period"], 1);
        assert!(
            before["next_rotation"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{before:?}"
        );
        // Vault's rollback tick runs the schedule; poll it, bounded.
        let mut rotated = false;
        for _ in 0..100 {
            m.rollback_now().await.expect("tick");
            let now = m
                .ok(Operation::Read, "config", json!({}))
                .await
                .expect("config");
            if data(&now)["last_rotated"] != before["last_rotated"] {
                rotated = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            rotated,
            "{login:?}: no rotation within 10 s of a 1 s period"
        );
        let refused = old_client(&m, login).list_org_ids().await;
        assert!(
            matches!(refused, Err(AtlasError::Unauthorized(_))),
            "{refused:?}"
        );
        assert_one_working_login(&m, login, &format!("{login:?} scheduled rotation")).await;
    }
}
