//! The engine end to end in-process: framework + engine + Atlas client against
//! the Atlas simulator, with in-memory Vault storage. Each defect of the
//! official plugin has a test here that its behaviour would fail.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use atlas_sim::{FaultRule, NewKeyRequest, SimConfig};
use serde_json::{json, Value};
use support::{data, Login, Mount};
use vault_mongodbatlas::vault::framework::{wal, BackendError, Operation, Secret};
use vault_mongodbatlas::vault::storage::{Storage, StorageEntry};

#[tokio::test]
async fn every_role_mode_issues_renews_and_revokes_leaving_nothing() {
    let m = Mount::new().await;
    let (org, project) = (m.sim.org_id.clone(), m.sim.project_id.clone());
    let roles = [
        (
            "org",
            json!({"organization_id": org, "roles": "ORG_MEMBER"}),
        ),
        (
            "org-acl",
            json!({"organization_id": org, "roles": ["ORG_READ_ONLY"], "ip_addresses": "192.0.2.10", "cidr_blocks": "198.51.100.0/24"}),
        ),
        (
            "project",
            json!({"project_id": project, "roles": "GROUP_READ_ONLY"}),
        ),
        (
            "project-acl",
            json!({"project_id": project, "roles": "GROUP_READ_ONLY", "ip_addresses": ["192.0.2.11"]}),
        ),
        (
            "both",
            json!({"organization_id": org, "project_id": project, "roles": "ORG_MEMBER", "project_roles": "GROUP_CLUSTER_MANAGER"}),
        ),
        (
            "both-acl",
            json!({"organization_id": org, "project_id": project, "roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY", "cidr_blocks": "203.0.113.0/28", "ttl": "30m", "max_ttl": "2h"}),
        ),
    ];
    let mut secrets = Vec::new();
    for (name, body) in &roles {
        m.ok(Operation::Update, &format!("roles/{name}"), body.clone())
            .await;
        let resp = m.issue(name).await;
        let d = data(&resp);
        let public_key = d["public_key"].as_str().expect("public_key").to_string();
        assert!(
            d["private_key"].as_str().is_some_and(|p| p.len() == 36),
            "{name}: private key is a UUID"
        );
        assert!(d["description"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("vault-{name}-"))));
        let inv = m.sim.inventory();
        let key = inv
            .key_by_public_key(&public_key)
            .unwrap_or_else(|| panic!("{name}: key exists in Atlas"));
        let body_acl = body.get("ip_addresses").is_some() || body.get("cidr_blocks").is_some();
        assert_eq!(
            !key.access_list.is_empty(),
            body_acl,
            "{name}: access list {:?}",
            key.access_list
        );
        if body.get("project_id").is_some() {
            assert!(
                key.roles
                    .iter()
                    .any(|r| r.group_id.as_deref() == Some(project.as_str())),
                "{name}: in project"
            );
        }
        let secret = resp.secret.clone().expect("lease");
        assert!(secret.lease.renewable);
        assert_eq!(secret.internal_data["secret_type"], "programmatic_api_key");
        assert_eq!(secret.internal_data["role"], *name);
        let renewed = m.renew(secret.clone(), Duration::ZERO).await;
        assert!(
            renewed.lease.ttl > Duration::ZERO,
            "{name}: renew never yields a zero TTL"
        );
        secrets.push(secret);
    }
    assert_eq!(m.issued_keys(), roles.len());
    assert!(
        m.wal_entries().await.is_empty(),
        "no WAL left after successful issues"
    );
    for s in secrets {
        m.revoke(s).await.expect("revoke");
    }
    assert_eq!(
        m.issued_keys(),
        0,
        "inventory empty after every lease is revoked"
    );
}

#[tokio::test]
async fn renew_extends_by_role_ttl_or_increment_capped_by_max_ttl() {
    let m = Mount::new().await;
    m.ok(
        Operation::Update,
        "roles/r",
        json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER", "ttl": 600}),
    )
    .await;
    let secret = m.issue("r").await.secret.expect("lease");
    assert_eq!(secret.lease.ttl, Duration::from_secs(600));
    // Official plugin: ttl set and max_ttl unset renews to max_ttl = 0.
    assert_eq!(
        m.renew(secret.clone(), Duration::ZERO).await.lease.ttl,
        Duration::from_secs(600)
    );
    assert_eq!(
        m.renew(secret.clone(), Duration::from_secs(120))
            .await
            .lease
            .ttl,
        Duration::from_secs(120)
    );
    m.ok(Operation::Update, "roles/r", json!({"max_ttl": 900}))
        .await;
    let capped = m.renew(secret.clone(), Duration::from_secs(5000)).await;
    assert!(
        capped.lease.ttl <= Duration::from_secs(900),
        "{:?}",
        capped.lease.ttl
    );
    assert_eq!(capped.lease.max_ttl, Duration::from_secs(900));
    m.revoke(secret).await.expect("revoke");
}

#[tokio::test]
async fn lease_ttls_default_to_the_mount() {
    let m = Mount::new().await;
    m.ok(
        Operation::Update,
        "roles/r",
        json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER"}),
    )
    .await;
    let secret = m.issue("r").await.secret.expect("lease");
    assert_eq!(secret.lease.ttl, Duration::from_secs(3600));
    assert_eq!(secret.lease.max_ttl, Duration::from_secs(24 * 3600));
    m.revoke(secret).await.expect("revoke");
}

/// Counts the storage reads of one key, passing every call through.
struct CountingGets {
    inner: std::sync::Arc<dyn Storage>,
    key: &'static str,
    gets: std::sync::atomic::AtomicUsize,
}

#[tonic::async_trait]
impl Storage for CountingGets {
    async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<String>, vault_mongodbatlas::vault::storage::StorageError> {
        self.inner.list(prefix).await
    }
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<StorageEntry>, vault_mongodbatlas::vault::storage::StorageError> {
        if key == self.key {
            self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.get(key).await
    }
    async fn put(
        &self,
        entry: StorageEntry,
    ) -> Result<(), vault_mongodbatlas::vault::storage::StorageError> {
        self.inner.put(entry).await
    }
    async fn delete(
        &self,
        key: &str,
    ) -> Result<(), vault_mongodbatlas::vault::storage::StorageError> {
        self.inner.delete(key).await
    }
}

// Each storage read is a gRPC round trip into Vault: an issuance reads its role
// once per mount, and sees every change written here, or elsewhere once Vault
// invalidates the key.
#[tokio::test]
async fn issuances_read_a_role_from_storage_once_until_it_changes() {
    let m = Mount::new().await;
    let role =
        |ttl: u64| json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER", "ttl": ttl});
    m.ok(Operation::Update, "roles/r", role(600)).await;
    let counting = std::sync::Arc::new(CountingGets {
        inner: m.storage.clone(),
        key: "roles/r",
        gets: 0.into(),
    });
    let issue = || async {
        let resp = m
            .call_with(counting.clone(), Operation::Read, "creds/r", json!({}))
            .await
            .expect("issue")
            .expect("creds response");
        resp.secret.expect("lease")
    };
    let mut leases = Vec::new();
    for _ in 0..3 {
        let s = issue().await;
        assert_eq!(s.lease.ttl, Duration::from_secs(600));
        leases.push(s);
    }
    assert_eq!(
        counting.gets.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "three issuances read the role once"
    );

    // Written through the mount: the next issuance uses the new role.
    m.ok(Operation::Update, "roles/r", role(700)).await;
    leases.push(issue().await);
    assert_eq!(leases[3].lease.ttl, Duration::from_secs(700));

    // Written elsewhere (another node): seen once Vault invalidates the key.
    let mut stored: Value = serde_json::from_slice(
        &m.storage
            .get("roles/r")
            .await
            .expect("get")
            .expect("role")
            .value,
    )
    .expect("json");
    stored["ttl"] = json!(800_000_000_000_u64); // nanoseconds, as the official plugin stores it
    m.storage
        .put(StorageEntry {
            key: "roles/r".into(),
            value: stored.to_string().into_bytes(),
            seal_wrap: false,
        })
        .await
        .expect("put");
    leases.push(issue().await);
    assert_eq!(
        leases[4].lease.ttl,
        Duration::from_secs(700),
        "nobody told us yet"
    );
    m.backend.invalidate.as_ref().expect("hook")("roles/r");
    leases.push(issue().await);
    assert_eq!(leases[5].lease.ttl, Duration::from_secs(800));

    for s in leases {
        m.revoke(s).await.expect("revoke");
    }
    // Deleted: no more issuances.
    m.ok(Operation::Delete, "roles/r", json!({})).await;
    let err = m
        .call_with(counting.clone(), Operation::Read, "creds/r", json!({}))
        .await
        .expect_err("deleted role");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(m.issued_keys(), 0);
}

#[tokio::test]
async fn partial_failures_delete_the_key_before_returning() {
    let m = Mount::new().await;
    let (org, project) = (m.sim.org_id.clone(), m.sim.project_id.clone());
    m.ok(
        Operation::Update,
        "roles/acl",
        json!({"organization_id": org, "roles": "ORG_MEMBER", "ip_addresses": "192.0.2.1"}),
    )
    .await;
    m.ok(Operation::Update, "roles/both", json!({"organization_id": org, "project_id": project, "roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"})).await;

    m.sim
        .add_fault(FaultRule::status(Some("POST"), "/accessList$", 400))
        .expect("fault");
    let err = m
        .call(Operation::Read, "creds/acl", json!({}))
        .await
        .expect_err("access list fails");
    assert!(err.to_string().contains("the API key was deleted"), "{err}");
    assert_eq!(
        m.issued_keys(),
        0,
        "no key left behind after an access-list failure"
    );
    m.sim.clear_faults();

    m.sim
        .add_fault(FaultRule::status(
            Some("POST"),
            &format!("/groups/{project}/apiKeys/[0-9a-f]{{24}}$"),
            400,
        ))
        .expect("fault");
    m.call(Operation::Read, "creds/both", json!({}))
        .await
        .expect_err("assignment fails");
    assert_eq!(
        m.issued_keys(),
        0,
        "no key left behind after an assignment failure"
    );
    assert!(
        m.wal_entries().await.is_empty(),
        "cleanup succeeded, so no WAL entry remains"
    );
}

#[tokio::test]
async fn wal_rollback_deletes_keys_a_crash_left_behind() {
    let m = Mount::new().await;
    let org = m.sim.org_id.clone();
    m.ok(
        Operation::Update,
        "roles/r",
        json!({"organization_id": org, "roles": "ORG_MEMBER"}),
    )
    .await;
    // A key created, recorded in the WAL, and then the plugin died.
    let known = m
        .sim
        .create_key(NewKeyRequest {
            org_id: Some(org.clone()),
            desc: Some("vault-r-crashed1".into()),
            org_roles: vec!["ORG_MEMBER".into()],
            ..Default::default()
        })
        .expect("key");
    wal::put(m.storage.as_ref(), "programmatic_api_key", json!({"description": "vault-r-crashed1", "organization_id": org, "programmatic_api_key_id": known.id})).await.expect("wal");
    // Died before the id was recorded: found by its unique description.
    m.sim
        .create_key(NewKeyRequest {
            org_id: Some(org.clone()),
            desc: Some("vault-r-crashed2".into()),
            org_roles: vec!["ORG_MEMBER".into()],
            ..Default::default()
        })
        .expect("key");
    wal::put(
        m.storage.as_ref(),
        "programmatic_api_key",
        json!({"description": "vault-r-crashed2", "organization_id": org}),
    )
    .await
    .expect("wal");
    // The official plugin's entry: only the description, under Go field names.
    m.sim
        .create_key(NewKeyRequest {
            org_id: Some(org.clone()),
            desc: Some("vault-r-official".into()),
            org_roles: vec!["ORG_MEMBER".into()],
            ..Default::default()
        })
        .expect("key");
    wal::put(m.storage.as_ref(), "programmatic_api_key", json!({"Role": "vault-r-official", "ProjectID": "", "OrganizationID": "", "ProgrammaticAPIKeyID": ""})).await.expect("wal");
    assert_eq!(m.issued_keys(), 3);

    // Young entries are left alone: their request may still be running.
    m.call(Operation::Rollback, "", json!({}))
        .await
        .expect("rollback");
    assert_eq!(m.wal_entries().await.len(), 3);

    m.rollback_now().await.expect("rollback");
    assert_eq!(m.issued_keys(), 0, "rollback deleted every recorded key");
    assert!(m.wal_entries().await.is_empty());
}

#[tokio::test]
async fn a_wal_entry_of_an_unknown_kind_is_kept_not_dropped() {
    let m = Mount::new().await;
    // Say a newer version's credential type recorded a live credential.
    let id = wal::put(
        m.storage.as_ref(),
        "database_user",
        json!({"username": "vault-r-0123"}),
    )
    .await
    .expect("wal");
    m.rollback_now().await.expect("rollback");
    m.rollback_now().await.expect("rollback");
    assert_eq!(
        m.wal_entries().await,
        vec![id],
        "an unknown kind must survive rollbacks"
    );
}

#[tokio::test]
async fn rollback_and_revoke_fail_without_config_so_vault_retries() {
    let m = Mount::new().await;
    m.ok(
        Operation::Update,
        "roles/r",
        json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER"}),
    )
    .await;
    let secret = m.issue("r").await.secret.expect("lease");
    m.storage.delete("config").await.expect("delete config");
    m.backend.invalidate.as_ref().expect("invalidate hook")("config");
    match m.revoke(secret.clone()).await {
        Err(BackendError::Internal(msg)) => assert!(msg.contains("no config"), "{msg}"),
        other => panic!("revoke without config must fail, got {other:?}"),
    }
    assert_eq!(
        m.issued_keys(),
        1,
        "the key is still there, and Vault still holds the lease"
    );
}

#[tokio::test]
async fn revoking_a_key_that_is_already_gone_succeeds() {
    let m = Mount::new().await;
    m.ok(
        Operation::Update,
        "roles/r",
        json!({"project_id": m.sim.project_id, "roles": "GROUP_READ_ONLY"}),
    )
    .await;
    let secret = m.issue("r").await.secret.expect("lease");
    let id = secret
        .internal_str("programmatic_api_key_id")
        .expect("id")
        .to_string();
    assert!(m.sim.delete_key(&id), "deleted out of band");
    m.revoke(secret.clone())
        .await
        .expect("revoke of a deleted key succeeds");
    // The official plugin's lease shape (no key_org_id) takes the project listing path.
    let mut legacy = secret;
    legacy.internal_data.remove("key_org_id");
    m.revoke(legacy)
        .await
        .expect("legacy revoke of a deleted key succeeds");
}

#[tokio::test]
async fn project_key_leases_of_the_official_plugin_revoke_beyond_500_keys() {
    let m = Mount::with_sim(
        SimConfig {
            max_keys_per_org: 2000,
            ..SimConfig::default()
        },
        Login::ApiKey,
    )
    .await;
    let project = m.sim.project_id.clone();
    let mut last = None;
    for i in 0..520 {
        let mut roles = BTreeMap::new();
        roles.insert(project.clone(), vec!["GROUP_READ_ONLY".to_string()]);
        last = Some(
            m.sim
                .create_key(NewKeyRequest {
                    org_id: Some(m.sim.org_id.clone()),
                    desc: Some(format!("bulk-{i}")),
                    org_roles: vec!["ORG_MEMBER".into()],
                    project_roles: roles,
                    ..Default::default()
                })
                .expect("key"),
        );
    }
    let last = last.expect("created");
    // Exactly what the official plugin stores for a project key: no organization.
    let internal = support::obj(
        json!({"programmatic_api_key_id": last.id, "project_id": project, "organization_id": "", "role": "r", "secret_type": "programmatic_api_key"}),
    );
    let secret = Secret {
        internal_data: internal,
        ..Secret::default()
    };
    m.revoke(secret).await.expect("revoke past the first page");
    assert!(
        m.sim.inventory().api_keys.iter().all(|k| k.id != last.id),
        "key deleted"
    );
}

#[tokio::test]
async fn user_errors_are_400s_with_clear_messages() {
    let m = Mount::new().await;
    let org = m.sim.org_id.clone();
    let msg = m.user_error(Operation::Read, "creds/nope", json!({})).await;
    assert!(msg.contains("role \"nope\" does not exist"), "{msg}");
    let msg = m
        .user_error(
            Operation::Update,
            "roles/a",
            json!({"organization_id": org}),
        )
        .await;
    assert!(msg.contains("roles is required"), "{msg}");
    let msg = m
        .user_error(
            Operation::Update,
            "roles/a",
            json!({"organization_id": org, "roles": ""}),
        )
        .await;
    assert!(
        msg.contains("roles is required and must not be empty"),
        "{msg}"
    );
    let msg = m
        .user_error(
            Operation::Update,
            "roles/a",
            json!({"organization_id": org, "roles": "ORG_MEMBER", "ip_addresses": "1.2.3"}),
        )
        .await;
    assert!(msg.contains("ip_addresses"), "{msg}");
    let msg = m
        .user_error(
            Operation::Update,
            "roles/a",
            json!({"organization_id": org, "roles": "ORG_MEMBER", "cidr_blocks": "1.2.3.0/40"}),
        )
        .await;
    assert!(msg.contains("cidr_blocks"), "{msg}");
    let msg = m
        .user_error(
            Operation::Update,
            "roles/a",
            json!({"organization_id": org, "roles": "ORG_MEMBER", "ttl": "2h", "max_ttl": "1h"}),
        )
        .await;
    assert!(msg.contains("exceeds max_ttl"), "{msg}");
    let msg = m
        .user_error(
            Operation::Update,
            "roles/a",
            json!({"organization_id": org, "project_id": m.sim.project_id, "roles": "ORG_MEMBER"}),
        )
        .await;
    assert!(msg.starts_with("project_roles is required"), "{msg}");
    let msg = m
        .user_error(
            Operation::Update,
            "roles/a",
            json!({"organization_id": org, "roles": "ORG_MEMBER", "ttl": "soon"}),
        )
        .await;
    assert!(msg.contains("\"ttl\""), "{msg}");
    let msg = m
        .user_error(Operation::Update, "config", json!({"private_key": "x"}))
        .await;
    assert!(msg.contains("public_key is required"), "{msg}");
    // Atlas' own rejection is passed on as a 400 with what Atlas said.
    m.ok(
        Operation::Update,
        "roles/bad",
        json!({"project_id": "0123456789abcdef01234567", "roles": "GROUP_READ_ONLY"}),
    )
    .await;
    let msg = m.user_error(Operation::Read, "creds/bad", json!({})).await;
    assert!(msg.contains("GROUP_NOT_FOUND"), "{msg}");
}

#[tokio::test]
async fn roles_merge_lowercase_list_and_read_like_upstream() {
    let m = Mount::new().await;
    m.ok(
        Operation::Update,
        "roles/MyRole",
        json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER", "ttl": "1h"}),
    )
    .await;
    m.ok(
        Operation::Update,
        "roles/myrole",
        json!({"max_ttl": "2h", "unknown_field": 1}),
    )
    .await;
    let role = m
        .ok(Operation::Read, "roles/myrole", json!({}))
        .await
        .expect("role");
    let d = data(&role);
    assert_eq!(d["ttl"], json!(3600));
    assert_eq!(d["max_ttl"], json!(7200));
    assert_eq!(d["roles"], json!(["ORG_MEMBER"]));
    assert_eq!(d["database_name"], json!(""));
    let list = m
        .ok(Operation::List, "roles/", json!({}))
        .await
        .expect("list");
    assert_eq!(data(&list)["keys"], json!(["myrole"]));
    let stored = m
        .storage
        .get("roles/myrole")
        .await
        .expect("get")
        .expect("stored");
    let v: Value = serde_json::from_slice(&stored.value).expect("json");
    assert_eq!(
        v["ttl"],
        json!(3_600_000_000_000i64),
        "nanoseconds, like Go's time.Duration"
    );
    m.ok(Operation::Delete, "roles/myrole", json!({})).await;
    assert!(m
        .ok(Operation::Read, "roles/myrole", json!({}))
        .await
        .is_none());
}

#[tokio::test]
async fn config_written_by_the_official_plugin_works_and_reads_hide_the_private_key() {
    let m = Mount::new().await;
    let official = json!({"private_key": m.sim.private_key, "public_key": m.sim.public_key});
    m.storage
        .put(StorageEntry {
            key: "config".into(),
            value: official.to_string().into_bytes(),
            seal_wrap: true,
        })
        .await
        .expect("put");
    m.backend.invalidate.as_ref().expect("hook")("config");
    let cfg = m
        .ok(Operation::Read, "config", json!({}))
        .await
        .expect("config");
    assert!(!data(&cfg).contains_key("private_key"));
    assert_eq!(data(&cfg)["base_url"], "https://cloud.mongodb.com");
    // Point it back at the simulator; a role in the official storage format issues.
    m.ok(Operation::Update, "config", json!({"public_key": m.sim.public_key, "private_key": m.sim.private_key, "base_url": m.sim.base_url})).await;
    let role = json!({"project_id": "", "database_name": "", "roles": ["ORG_MEMBER"], "organization_id": m.sim.org_id, "cidr_blocks": null, "ip_addresses": null, "project_roles": null, "ttl": 0, "max_ttl": 0});
    m.storage
        .put(StorageEntry {
            key: "roles/legacy".into(),
            value: role.to_string().into_bytes(),
            seal_wrap: false,
        })
        .await
        .expect("put");
    let secret = m.issue("legacy").await.secret.expect("lease");
    m.revoke(secret).await.expect("revoke");
    assert_eq!(m.issued_keys(), 0);
}

#[tokio::test]
async fn invalidate_drops_the_cached_client_when_config_changes_elsewhere() {
    let m = Mount::new().await;
    m.ok(
        Operation::Update,
        "roles/r",
        json!({"organization_id": m.sim.org_id, "roles": "ORG_MEMBER"}),
    )
    .await;
    let s = m.issue("r").await.secret.expect("lease");
    // Another node rotates the config to credentials Atlas rejects.
    let bad = json!({"public_key": "zzzzzzzz", "private_key": "00000000-0000-0000-0000-000000000000", "base_url": m.sim.base_url});
    m.storage
        .put(StorageEntry {
            key: "config".into(),
            value: bad.to_string().into_bytes(),
            seal_wrap: true,
        })
        .await
        .expect("put");
    m.issue("r").await; // still the cached, valid client: nobody told us
    m.backend.invalidate.as_ref().expect("hook")("config");
    assert!(
        m.call(Operation::Read, "creds/r", json!({})).await.is_err(),
        "the new config is used after invalidation"
    );
    m.ok(Operation::Update, "config", json!({"public_key": m.sim.public_key, "private_key": m.sim.private_key, "base_url": m.sim.base_url})).await;
    m.revoke(s).await.expect("revoke");
}

#[tokio::test]
async fn help_describes_every_path() {
    let m = Mount::new().await;
    for path in ["config", "roles/x", "roles/", "creds/x"] {
        let resp = m.ok(Operation::Help, path, json!({})).await.expect("help");
        let help = data(&resp)["help"].as_str().expect("help text").to_string();
        assert!(help.len() > 100, "{path}: {help}");
        assert!(data(&resp)["openapi"]["paths"]
            .as_object()
            .is_some_and(|p| !p.is_empty()));
    }
    let root = m
        .ok(Operation::Help, "", json!({}))
        .await
        .expect("root help");
    let paths = data(&root)["openapi"]["paths"]
        .as_object()
        .expect("paths")
        .clone();
    for p in ["/config", "/roles/{name}", "/roles/", "/creds/{name}"] {
        assert!(paths.contains_key(p), "openapi has {p}: {:?}", paths.keys());
    }
}
