//! `tidy` in-process against the simulator: after a restored snapshot it
//! deletes exactly the credentials this mount issued that Vault forgot, never
//! one without the mount's tag; recorded credentials past their lease's
//! lifetime go too; the record follows issuance, revocation and renewal; the
//! schedule on `config`.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use atlas_sim::{NewKeyRequest, NewServiceAccountRequest};
use serde_json::{json, Map, Value};
use support::{data, Login, Mount};
use vault_mongodbatlas::vault::framework::{Operation, Response, Secret};
use vault_mongodbatlas::vault::storage::{Storage, StorageEntry};

/// A mount with an API-key role `keys` and a service-account role `accounts`.
async fn mount() -> Mount {
    let m = Mount::new().await;
    let org = m.sim.org_id.clone();
    m.ok(
        Operation::Update,
        "roles/keys",
        json!({"organization_id": org, "roles": "ORG_MEMBER"}),
    )
    .await;
    m.ok(
        Operation::Update,
        "roles/accounts",
        json!({"credential_type": "service_account", "organization_id": org, "roles": "ORG_MEMBER"}),
    )
    .await;
    m
}

/// Every storage entry: what a raft snapshot holds of the mount.
async fn snapshot(m: &Mount) -> Vec<StorageEntry> {
    let mut entries = Vec::new();
    for key in m.storage_keys("").await {
        entries.push(m.storage.get(&key).await.expect("get").expect("entry"));
    }
    entries
}

/// Puts the storage back as it was at `snapshot`.
async fn restore(m: &Mount, snapshot: &[StorageEntry]) {
    for key in m.storage_keys("").await {
        m.storage.delete(&key).await.expect("delete");
    }
    for entry in snapshot {
        m.storage.put(entry.clone()).await.expect("put");
    }
}

async fn tidy(m: &Mount, fields: Value) -> Map<String, Value> {
    let resp = m
        .ok(Operation::Update, "tidy", fields)
        .await
        .expect("tidy answers");
    data(&resp).clone()
}

fn count(report: &Map<String, Value>, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {report:?}"))
}

/// Live credentials in the simulator: API key ids and service-account client ids.
fn live(m: &Mount) -> BTreeSet<String> {
    let inv = m.sim.inventory();
    inv.api_keys
        .iter()
        .map(|k| k.id.clone())
        .chain(inv.service_accounts.iter().map(|s| s.client_id.clone()))
        .collect()
}

/// The Atlas id a lease names.
fn atlas_id(secret: &Secret) -> String {
    let internal = &secret.internal_data;
    internal
        .get("programmatic_api_key_id")
        .or_else(|| internal.get("client_id"))
        .and_then(Value::as_str)
        .expect("an Atlas id")
        .to_owned()
}

async fn issue(m: &Mount, role: &str) -> Secret {
    m.issue(role).await.secret.expect("a lease")
}

/// Edits a stored record entry in place (as if written long ago).
async fn edit_entry(m: &Mount, key: &str, edit: impl FnOnce(&mut Value)) {
    let mut entry = m.storage.get(key).await.expect("get").expect("entry");
    let mut stored: Value = serde_json::from_slice(&entry.value).expect("json");
    edit(&mut stored);
    entry.value = serde_json::to_vec(&stored).expect("json");
    m.storage.put(entry).await.expect("put");
}

async fn mount_tag(m: &Mount) -> String {
    let resp = m
        .ok(Operation::Read, "tidy", json!({}))
        .await
        .expect("read");
    data(&resp)["mount_tag"].as_str().expect("tag").to_owned()
}

/// Credentials that look like this mount's but are not: no tag, another
/// mount's tag, made by hand. Returns their ids.
fn decoys(m: &Mount, tag: &str) -> BTreeSet<String> {
    let other = if tag == "0badc0de" {
        "0ddba11s"
    } else {
        "0badc0de"
    };
    let random = "Ab3".repeat(7)[..20].to_owned();
    let mut ids = BTreeSet::new();
    for desc in [
        format!("vault-keys-{random}"),
        format!("vault-keys-{random}-{other}"),
        format!("vault-keys-{random}{tag}"),
        "made by hand".to_owned(),
    ] {
        let key = m
            .sim
            .create_key(NewKeyRequest {
                org_id: Some(m.sim.org_id.clone()),
                desc: Some(desc),
                org_roles: vec!["ORG_MEMBER".into()],
                ..NewKeyRequest::default()
            })
            .expect("decoy key");
        ids.insert(key.id);
    }
    for name in [
        format!("vault-accounts-{random}-{other}"),
        format!("accounts-{random}-{tag}"),
    ] {
        let account = m
            .sim
            .create_service_account(NewServiceAccountRequest {
                org_id: Some(m.sim.org_id.clone()),
                name: Some(name),
                org_roles: vec!["ORG_MEMBER".into()],
                ..NewServiceAccountRequest::default()
            })
            .expect("decoy account");
        ids.insert(account.client_id);
    }
    ids
}

#[tokio::test]
async fn after_a_restored_snapshot_tidy_deletes_the_forgotten_credentials_and_nothing_else() {
    let m = mount().await;
    let tag = mount_tag(&m).await;
    assert_eq!(tag.len(), 8, "{tag}");
    let mut before = Vec::new();
    for role in ["keys", "accounts", "keys"] {
        before.push(issue(&m, role).await);
    }
    let saved = snapshot(&m).await;
    let mut forgotten = BTreeSet::new();
    for role in ["keys", "accounts", "keys", "accounts", "keys"] {
        forgotten.insert(atlas_id(&issue(&m, role).await));
    }
    restore(&m, &saved).await;
    let decoys = decoys(&m, &tag);
    let everything = live(&m);
    assert!(forgotten.is_subset(&everything));

    // The default margin protects what may be an issuance in flight.
    let report = tidy(&m, json!({})).await;
    assert_eq!(count(&report, "too_recent"), 5, "{report:?}");
    assert_eq!(count(&report, "deleted"), 0);
    let reasons: Vec<&Value> = report["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .map(|c| &c["reason"])
        .collect();
    assert_eq!(reasons, vec![&json!("too_recent"); 5]);
    assert_eq!(report["safety_margin"], 900);

    let report = tidy(&m, json!({"dry_run": true, "safety_margin": "0s"})).await;
    assert_eq!(count(&report, "orphaned"), 5, "{report:?}");
    assert_eq!(count(&report, "in_use"), 3);
    assert_eq!(count(&report, "tagged"), 8);
    assert_eq!(count(&report, "deleted"), 0);
    assert_eq!(live(&m), everything, "a dry run deletes nothing");
    let named: BTreeSet<String> = report["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(named, forgotten);

    let report = tidy(&m, json!({"safety_margin": "0s"})).await;
    assert_eq!(count(&report, "deleted"), 5, "{report:?}");
    assert_eq!(count(&report, "delete_failed"), 0);
    let left = live(&m);
    assert!(left.is_disjoint(&forgotten), "every orphan is gone");
    assert_eq!(
        left,
        everything.difference(&forgotten).cloned().collect(),
        "nothing else is touched"
    );
    assert!(decoys.is_subset(&left));

    // The leases of the restored state still hold their credentials, and end them.
    for secret in before {
        let id = atlas_id(&secret);
        assert!(left.contains(&id));
        m.revoke(secret).await.expect("revoke");
        assert!(!live(&m).contains(&id));
    }
    assert!(m.storage_keys("issued/").await.is_empty());
    let again = tidy(&m, json!({"safety_margin": "0s"})).await;
    assert_eq!(count(&again, "tagged"), 0, "{again:?}");
    assert!(decoys.is_subset(&live(&m)));

    // The last run is kept.
    let resp = m
        .ok(Operation::Read, "tidy", json!({}))
        .await
        .expect("read");
    assert_eq!(data(&resp)["last_run"]["trigger"], "manual");
}

#[tokio::test]
async fn the_record_follows_issuance_revocation_and_credentials_deleted_elsewhere() {
    let m = mount().await;
    let key = issue(&m, "keys").await;
    let account = issue(&m, "accounts").await;
    let recorded: BTreeSet<String> = m.storage_keys("issued/").await.into_iter().collect();
    let expected: BTreeSet<String> = [
        format!("issued/programmatic_api_key/{}", atlas_id(&key)),
        format!("issued/service_account/{}", atlas_id(&account)),
    ]
    .into();
    assert_eq!(recorded, expected);
    assert!(key.internal_data["lives_until"].is_i64());

    m.revoke(key).await.expect("revoke");
    assert_eq!(m.storage_keys("issued/").await.len(), 1);

    // Deleted in Atlas by someone else: tidy prunes the stale entry, once it
    // was recorded before the listing began (here: a minute before).
    assert!(m.sim.delete_service_account(&atlas_id(&account)));
    let report = tidy(&m, json!({"safety_margin": "0s"})).await;
    assert_eq!(count(&report, "stale_records"), 0, "{report:?}");
    let key = format!("issued/service_account/{}", atlas_id(&account));
    edit_entry(&m, &key, |entry| {
        entry["issued_at"] = json!(entry["issued_at"].as_i64().expect("issued_at") - 60);
    })
    .await;
    let report = tidy(&m, json!({"safety_margin": "0s"})).await;
    assert_eq!(count(&report, "stale_records"), 1, "{report:?}");
    assert!(m.storage_keys("issued/").await.is_empty());
}

#[tokio::test]
async fn a_credential_past_its_lease_lifetime_is_deleted_and_a_renewal_extends_it() {
    let m = mount().await;
    let org = m.sim.org_id.clone();
    m.ok(
        Operation::Update,
        "roles/keys",
        json!({"organization_id": org, "roles": "ORG_MEMBER", "ttl": "1h", "max_ttl": "2h"}),
    )
    .await;
    let lost = issue(&m, "keys").await;
    let kept = issue(&m, "keys").await;
    let entry_key = |s: &Secret| format!("issued/programmatic_api_key/{}", atlas_id(s));
    let lives_until = |entry: &StorageEntry| {
        serde_json::from_slice::<Value>(&entry.value).expect("json")["lives_until"]
            .as_i64()
            .expect("lives_until")
    };

    // A raised max_ttl lets a renewal take the lease further: the record follows.
    let original = lives_until(&m.storage.get(&entry_key(&kept)).await.unwrap().unwrap());
    m.ok(
        Operation::Update,
        "roles/keys",
        json!({"organization_id": org, "roles": "ORG_MEMBER", "ttl": "1h", "max_ttl": "5h"}),
    )
    .await;
    let renewed = m.renew(kept.clone(), Duration::from_secs(3600)).await;
    let extended = lives_until(&m.storage.get(&entry_key(&kept)).await.unwrap().unwrap());
    assert!(extended >= original + 3 * 3600, "{original} -> {extended}");
    assert_eq!(renewed.internal_data["lives_until"], json!(extended));

    // Vault lost `lost`'s lease long ago: its recorded lifetime is over.
    edit_entry(&m, &entry_key(&lost), |entry| {
        entry["lives_until"] =
            json!(entry["lives_until"].as_i64().expect("lives_until") - 3 * 3600);
    })
    .await;

    let report = tidy(&m, json!({"dry_run": true})).await;
    assert_eq!(count(&report, "expired"), 1, "{report:?}");
    assert_eq!(
        count(&report, "in_use"),
        1,
        "the expired one is not also in use"
    );
    assert_eq!(report["credentials"][0]["reason"], "expired");
    let report = tidy(&m, json!({})).await;
    assert_eq!(count(&report, "deleted"), 1, "{report:?}");
    let left = live(&m);
    assert!(!left.contains(&atlas_id(&lost)));
    assert!(left.contains(&atlas_id(&kept)));
    assert_eq!(m.storage_keys("issued/").await, vec![entry_key(&kept)]);
}

#[tokio::test]
async fn tidy_never_takes_the_rotated_root_credential() {
    let m = mount().await;
    m.ok(Operation::Update, "rotate-root", json!({}))
        .await
        .expect("rotated");
    let report = tidy(&m, json!({"safety_margin": "0s"})).await;
    assert_eq!(count(&report, "tagged"), 0, "{report:?}");
    assert_eq!(count(&report, "deleted"), 0);
    // The login still works.
    let secret = issue(&m, "keys").await;
    m.revoke(secret).await.expect("revoke");
}

async fn last_run(m: &Mount) -> Value {
    let resp = m
        .ok(Operation::Read, "tidy", json!({}))
        .await
        .expect("read");
    data(&resp)["last_run"].clone()
}

#[tokio::test]
async fn tidy_interval_runs_tidy_from_the_periodic_tick() {
    let m = mount().await;
    let mut config = m.login(Login::ApiKey);
    config["tidy_interval"] = json!("1m");
    let says = m
        .user_error(Operation::Update, "config", config.clone())
        .await;
    assert!(
        says.contains("tidy_interval (60s) is shorter than 300s"),
        "{says}"
    );
    config["tidy_interval"] = json!("1h");
    m.ok(Operation::Update, "config", config).await;
    let resp = m
        .ok(Operation::Read, "config", json!({}))
        .await
        .expect("read");
    assert_eq!(data(&resp)["tidy_interval"], 3600);

    assert_eq!(last_run(&m).await, Value::Null);
    m.rollback_now().await.expect("tick");
    let first = last_run(&m).await;
    assert_eq!(first["trigger"], "scheduled", "{first:?}");
    assert_eq!(first["safety_margin"], 900);
    // Not due again for an hour.
    m.rollback_now().await.expect("tick");
    assert_eq!(last_run(&m).await, first);
}

#[tokio::test]
async fn tidy_without_a_config_says_what_to_do() {
    let m = Mount::new().await;
    m.storage.delete("config").await.expect("delete");
    // What Vault does when the key changes (here, or on another node).
    let invalidate = m.backend.invalidate.as_ref().expect("an invalidate hook");
    invalidate("config");
    let says = m.user_error(Operation::Update, "tidy", json!({})).await;
    assert!(says.contains("write <mount>/config"), "{says}");
}

/// `tidy safety_margin=0s` while Atlas answers `status` to `method` on paths matching
/// `path`: the whole response (its warnings too) and the fault, still in place.
async fn tidy_while(m: &Mount, method: Option<&str>, path: &str, status: u16) -> (Response, u64) {
    let fault = m
        .sim
        .add_fault(atlas_sim::FaultRule::status(method, path, status))
        .expect("fault");
    let resp = m
        .ok(Operation::Update, "tidy", json!({"safety_margin": "0s"}))
        .await
        .expect("tidy answers");
    (resp, fault)
}

#[tokio::test]
async fn a_listing_atlas_refuses_is_reported_and_nothing_of_its_kind_is_judged_on_it() {
    let m = mount().await;
    let saved = snapshot(&m).await;
    let forgotten = atlas_id(&issue(&m, "keys").await);
    // Forgotten too, but service accounts cannot be listed: left for the next run.
    issue(&m, "accounts").await;
    restore(&m, &saved).await;
    let (resp, _) = tidy_while(&m, Some("GET"), "/serviceAccounts$", 403).await;
    let report = data(&resp);
    let errors = report["scope_errors"].as_array().expect("scope_errors");
    assert_eq!(errors.len(), 1, "{report:?}");
    assert!(
        errors[0]
            .as_str()
            .expect("text")
            .contains("service_account"),
        "{errors:?}"
    );
    assert!(!resp.warnings.is_empty(), "the answer warns");
    // API keys were listed: their orphan goes; no service account is touched.
    assert_eq!(count(report, "deleted"), 1, "{report:?}");
    assert!(!live(&m).contains(&forgotten));
    assert_eq!(m.issued_service_accounts(), 1);
}

#[tokio::test]
async fn a_mount_replicated_to_other_performance_clusters_only_reports_its_orphans() {
    use std::sync::Arc;
    use vault_mongodbatlas::vault::system_view::{
        StaticSystemView, REPLICATION_PERFORMANCE_PRIMARY, REPLICATION_PERFORMANCE_SECONDARY,
    };
    let m = mount().await;
    let saved = snapshot(&m).await;
    let forgotten = atlas_id(&issue(&m, "keys").await);
    restore(&m, &saved).await;
    let tidy_as = |state: u32, local: bool, metadata: &str| {
        let mut req = m.request(
            Operation::Update,
            "tidy",
            json!({"safety_margin": "0s"}),
            None,
        );
        req.system = Arc::new(StaticSystemView {
            vault_version_metadata: metadata.to_owned(),
            replication_state: state,
            local_mount: local,
            ..StaticSystemView::default()
        });
        m.backend.handle_request(req)
    };
    for state in [
        REPLICATION_PERFORMANCE_PRIMARY,
        REPLICATION_PERFORMANCE_SECONDARY,
    ] {
        let resp = tidy_as(state, false, "ent")
            .await
            .expect("tidy")
            .expect("answer");
        let report = data(&resp);
        assert_eq!(count(report, "orphaned"), 1, "{report:?}");
        assert_eq!(count(report, "deleted"), 0);
        assert_eq!(report["credentials"][0]["id"], json!(forgotten));
        assert_eq!(report["credentials"][0]["deleted"], false);
        assert!(report["scope_errors"].as_array().expect("list").is_empty());
        assert!(resp.warnings.iter().any(|w| w.contains("replicated")));
        assert!(live(&m).contains(&forgotten));
    }
    // A local mount is this cluster's alone.
    let resp = tidy_as(REPLICATION_PERFORMANCE_PRIMARY, true, "ent")
        .await
        .expect("tidy")
        .expect("answer");
    assert_eq!(count(data(&resp), "deleted"), 1);
    assert!(!live(&m).contains(&forgotten));

    // OpenBao's active node calls itself a performance primary, and replicates nothing.
    let forgotten = atlas_id(&issue(&m, "keys").await);
    restore(&m, &saved).await;
    let resp = tidy_as(REPLICATION_PERFORMANCE_PRIMARY, false, "")
        .await
        .expect("tidy")
        .expect("answer");
    assert_eq!(count(data(&resp), "deleted"), 1, "{:?}", data(&resp));
    assert!(!live(&m).contains(&forgotten));
}

#[tokio::test]
async fn a_delete_atlas_refuses_is_counted_and_the_next_run_takes_it() {
    let m = mount().await;
    let saved = snapshot(&m).await;
    let forgotten = atlas_id(&issue(&m, "keys").await);
    restore(&m, &saved).await;
    let (resp, fault) = tidy_while(&m, Some("DELETE"), "/apiKeys/[^/]+$", 500).await;
    let report = data(&resp);
    assert_eq!(count(report, "orphaned"), 1, "{report:?}");
    assert_eq!(count(report, "delete_failed"), 1);
    assert_eq!(count(report, "deleted"), 0);
    assert!(resp.warnings.iter().any(|w| w.contains("run tidy again")));
    assert!(live(&m).contains(&forgotten));
    assert!(m.sim.remove_fault(fault));
    let report = tidy(&m, json!({"safety_margin": "0s"})).await;
    assert_eq!(count(&report, "deleted"), 1, "{report:?}");
    assert!(!live(&m).contains(&forgotten));
}
