//! Vault drops a request whose client hangs up, wherever the request is
//! waiting. These tests abandon `creds` requests at every step of an issuance
//! and check the promise of `creds.rs`: afterwards every key in Atlas is held by
//! a lease the caller received, and no WAL entry is left that a rollback could
//! use to delete a leased key.

// Test helpers outside #[test] fns: clippy.toml's allow-*-in-tests does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_sim::{FaultRule, SimConfig, SimHandle, Simulator};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use vault_mongodbatlas::engine::{MongoDbAtlas, Settings, ISSUE_TIMEOUT_ENV};
use vault_mongodbatlas::vault::framework::{
    wal, Backend, BackendError, Operation, Request, Response,
};
use vault_mongodbatlas::vault::in_memory::InMemoryMount;
use vault_mongodbatlas::vault::storage::{InMemStorage, Storage, StorageEntry, StorageError};
use vault_mongodbatlas::vault::system_view::StaticSystemView;

/// Storage that signals when its `n`-th operation starts (then performs it).
struct Tripwire {
    inner: Arc<InMemStorage>,
    ops: AtomicUsize,
    at: usize,
    fired: Mutex<Option<oneshot::Sender<()>>>,
}

impl Tripwire {
    fn new(inner: Arc<InMemStorage>, at: usize) -> (Arc<Self>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let wire = Arc::new(Self {
            inner,
            ops: AtomicUsize::new(0),
            at,
            fired: Mutex::new(Some(tx)),
        });
        (wire, rx)
    }

    fn step(&self) {
        if self.ops.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            if let Some(tx) = self.fired.lock().expect("lock").take() {
                let _ = tx.send(());
            }
        }
    }
}

#[tonic::async_trait]
impl Storage for Tripwire {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.step();
        self.inner.list(prefix).await
    }
    async fn get(&self, key: &str) -> Result<Option<StorageEntry>, StorageError> {
        self.step();
        self.inner.get(key).await
    }
    async fn put(&self, entry: StorageEntry) -> Result<(), StorageError> {
        self.step();
        self.inner.put(entry).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.step();
        self.inner.delete(key).await
    }
}

/// How the mount logs in to Atlas.
#[derive(Clone, Copy, Debug)]
enum Login {
    ApiKey,
    /// A service account: every Atlas call may first wait for a token.
    ServiceAccount,
}

struct Mount {
    backend: Backend,
    storage: Arc<InMemStorage>,
    system: Arc<StaticSystemView>,
    sim: SimHandle,
}

impl Mount {
    async fn new(settings: Settings) -> Self {
        Self::logged_in(settings, Login::ApiKey).await
    }

    async fn logged_in(settings: Settings, login: Login) -> Self {
        let cfg = SimConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..SimConfig::default()
        };
        let sim = Simulator::start(cfg).await.expect("simulator starts");
        let InMemoryMount {
            backend,
            storage,
            system,
        } = InMemoryMount::new(&MongoDbAtlas { settings }).expect("backend");
        let m = Self {
            backend,
            storage,
            system,
            sim,
        };
        let config = match login {
            Login::ApiKey => {
                json!({"public_key": m.sim.public_key, "private_key": m.sim.private_key, "base_url": m.sim.base_url})
            }
            Login::ServiceAccount => {
                json!({"client_id": m.sim.sa_client_id, "client_secret": m.sim.sa_client_secret, "base_url": m.sim.base_url})
            }
        };
        m.call(m.storage.clone(), Operation::Update, "config", config)
            .await
            .expect("config");
        let (org, project) = (m.sim.org_id.clone(), m.sim.project_id.clone());
        m.call(
            m.storage.clone(),
            Operation::Update,
            "roles/acl",
            json!({"organization_id": org, "roles": "ORG_MEMBER", "ip_addresses": "192.0.2.1"}),
        )
        .await
        .expect("role");
        m.call(m.storage.clone(), Operation::Update, "roles/both", json!({"organization_id": org, "project_id": project, "roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"}))
            .await
            .expect("role");
        // The same shapes as service accounts.
        m.call(m.storage.clone(), Operation::Update, "roles/sa-acl", json!({"credential_type": "service_account", "organization_id": org, "roles": "ORG_MEMBER", "ip_addresses": "192.0.2.1"}))
            .await
            .expect("role");
        m.call(m.storage.clone(), Operation::Update, "roles/sa-both", json!({"credential_type": "service_account", "organization_id": org, "project_id": project, "roles": "ORG_MEMBER", "project_roles": "GROUP_READ_ONLY"}))
            .await
            .expect("role");
        m
    }

    fn call(
        &self,
        storage: Arc<dyn Storage>,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> impl std::future::Future<Output = Result<Option<Response>, BackendError>> + '_ {
        let req = Request {
            operation,
            path: path.into(),
            data: data.as_object().cloned().unwrap_or_else(Map::new),
            secret: None,
            mount_point: "mongodbatlas/".into(),
            entity_id: String::new(),
            id: "req".into(),
            storage,
            system: self.system.clone(),
        };
        self.backend.handle_request(req)
    }

    /// Issued credentials in Atlas: API keys' public keys and service accounts' client ids.
    fn keys(&self) -> Vec<String> {
        let inventory = self.sim.inventory();
        inventory
            .issued_keys()
            .map(|k| k.public_key.clone())
            .chain(
                inventory
                    .issued_service_accounts()
                    .map(|a| a.client_id.clone()),
            )
            .collect()
    }

    async fn wal_entries(&self) -> Vec<String> {
        wal::list(self.storage.as_ref()).await.expect("wal list")
    }

    /// The entries of the plugin's record of issued credentials.
    async fn recorded(&self) -> Vec<String> {
        let mut entries = Vec::new();
        for kind in self.storage.list("issued/").await.expect("list") {
            for id in self
                .storage
                .list(&format!("issued/{kind}"))
                .await
                .expect("list")
            {
                entries.push(format!("issued/{kind}{id}"));
            }
        }
        entries
    }

    /// Waits for the detached issuances, then checks the invariant: the keys in
    /// Atlas are exactly `leased`, each recorded, and no WAL entry is left.
    async fn settle(&self, leased: &[String], what: &str) {
        self.backend.tasks.idle().await;
        let mut keys = self.keys();
        keys.sort();
        let mut want = leased.to_vec();
        want.sort();
        assert_eq!(
            keys, want,
            "{what}: keys in Atlas vs keys the caller received"
        );
        assert_eq!(
            self.wal_entries().await,
            Vec::<String>::new(),
            "{what}: WAL entries left"
        );
        assert_eq!(
            self.recorded().await.len(),
            leased.len(),
            "{what}: the record of issued credentials vs keys the caller received"
        );
    }

    /// Clears the simulator's faults, runs an immediate rollback, and checks the invariant.
    async fn roll_back_after_faults(&self, what: &str) {
        self.sim.clear_faults();
        self.call(
            self.storage.clone(),
            Operation::Rollback,
            "",
            json!({"immediate": true}),
        )
        .await
        .expect("rollback");
        self.settle(&[], what).await;
    }

    /// Deletes the credentials of completed issuances in the simulator (no Vault holds their leases here).
    async fn forget_issued_keys(&self) {
        let inventory = self.sim.inventory();
        for key in inventory.issued_keys() {
            self.sim.delete_key(&key.id);
        }
        for account in inventory.issued_service_accounts() {
            self.sim.delete_service_account(&account.client_id);
        }
        for entry in self.recorded().await {
            self.storage.delete(&entry).await.expect("delete");
        }
    }
}

/// The issued credential's public half: an API key's public key or a service account's client id.
fn public_key(resp: &Response) -> String {
    let data = resp.data.as_ref().expect("data");
    data.get("public_key")
        .or_else(|| data.get("client_id"))
        .and_then(Value::as_str)
        .expect("public_key or client_id")
        .to_string()
}

fn settings() -> Settings {
    Settings::default()
}

#[tokio::test]
async fn abandoning_a_request_at_each_storage_step_leaves_nothing_behind() {
    let m = Mount::new(settings()).await;
    for role in ["acl", "both", "sa-acl", "sa-both"] {
        let mut abandoned = 0;
        for at in 1.. {
            let (wire, fired) = Tripwire::new(m.storage.clone(), at);
            let issue = m.call(wire, Operation::Read, &format!("creds/{role}"), json!({}));
            let what = format!("creds/{role} abandoned at storage operation {at}");
            tokio::select! {
                done = issue => {
                    // The issuance finished before its `at`-th storage operation: all points are covered.
                    let resp = done.expect("issued").expect("response");
                    m.settle(&[public_key(&resp)], &what).await;
                    m.forget_issued_keys().await;
                    break;
                }
                _ = fired => {
                    abandoned += 1;
                    m.settle(&[], &what).await;
                }
            }
            assert!(
                at < 50,
                "an issuance should take a handful of storage operations"
            );
        }
        assert!(
            abandoned >= 3,
            "creds/{role}: only {abandoned} storage steps abandoned"
        );
    }
}

#[tokio::test]
async fn abandoning_a_request_while_atlas_works_leaves_nothing_behind() {
    for login in [Login::ApiKey, Login::ServiceAccount] {
        let m = Mount::logged_in(settings(), login).await;
        // Tokens live a second: some abandonments land while one is fetched.
        m.sim.set_token_lifetime(Duration::from_secs(1));
        abandon_while_atlas_works(&m, login).await;
    }
}

async fn abandon_while_atlas_works(m: &Mount, login: Login) {
    // Each Atlas call takes 30 ms: abandoning every 5 ms lands in every call of
    // an issuance (create, access list, project assignment) and between them.
    m.sim.set_latency(Duration::from_millis(30));
    for role in ["acl", "both", "sa-acl", "sa-both"] {
        let (mut completed, mut deleted_by_the_task) = (0, 0);
        for step in 0.. {
            let journal = m.sim.journal(0).len();
            let after = Duration::from_millis(5 * step);
            let issue = m.call(
                m.storage.clone(),
                Operation::Read,
                &format!("creds/{role}"),
                json!({}),
            );
            let what = format!("creds/{role} ({login:?} login) abandoned after {after:?}");
            match tokio::time::timeout(after, issue).await {
                Ok(done) => {
                    let resp = done.expect("issued").expect("response");
                    m.settle(&[public_key(&resp)], &what).await;
                    m.forget_issued_keys().await;
                    completed += 1;
                }
                Err(_) => {
                    m.settle(&[], &what).await;
                    let deletes = m.sim.journal(0)[journal..]
                        .iter()
                        .filter(|e| e.method == "DELETE" && e.status == 204)
                        .count();
                    deleted_by_the_task += deletes;
                }
            }
            if completed == 2 {
                break;
            }
            assert!(step < 200, "creds/{role} never completed");
        }
        assert!(
            deleted_by_the_task > 0,
            "creds/{role}: no abandonment fell after the create: the sweep missed the key's setup"
        );
    }
}

#[tokio::test]
async fn an_issuance_answers_within_the_issue_timeout_and_cleans_up() {
    let m = Mount::new(Settings {
        issue_timeout: Duration::from_secs(1),
        ..settings()
    })
    .await;
    // The access list takes longer than the whole issuance may.
    m.sim
        .add_fault(FaultRule::latency(
            Some("POST"),
            "/accessList$",
            Duration::from_secs(3),
        ))
        .expect("fault");
    let started = tokio::time::Instant::now();
    let err = m
        .call(m.storage.clone(), Operation::Read, "creds/acl", json!({}))
        .await
        .expect_err("times out");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered after {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(
        msg.contains(ISSUE_TIMEOUT_ENV) && msg.contains("the API key was deleted"),
        "{msg}"
    );
    m.settle(&[], "issue timeout during the access list").await;
    m.sim.clear_faults();

    // A create still unanswered at the deadline: nothing proves there is no key,
    // so the entry stays for the rollback, which finds none and drops it.
    m.sim
        .add_fault(FaultRule::latency(
            Some("POST"),
            "/apiKeys$",
            Duration::from_secs(3),
        ))
        .expect("fault");
    let err = m
        .call(m.storage.clone(), Operation::Read, "creds/acl", json!({}))
        .await
        .expect_err("times out");
    let msg = err.to_string();
    assert!(
        msg.contains(ISSUE_TIMEOUT_ENV) && msg.contains("WAL rollback"),
        "{msg}"
    );
    m.backend.tasks.idle().await;
    assert_eq!(
        m.wal_entries().await.len(),
        1,
        "the uncertain create stays recorded"
    );
    m.roll_back_after_faults("rollback after an uncertain create")
        .await;
}

#[tokio::test]
async fn a_failure_says_whether_the_key_was_really_deleted() {
    let m = Mount::new(settings()).await;
    m.sim
        .add_fault(FaultRule::status(Some("POST"), "/accessList$", 400))
        .expect("fault");
    m.sim
        .add_fault(FaultRule::status(
            Some("DELETE"),
            "/apiKeys/[0-9a-f]{24}$",
            400,
        ))
        .expect("fault");
    let msg = m
        .call(m.storage.clone(), Operation::Read, "creds/acl", json!({}))
        .await
        .expect_err("access list fails")
        .to_string();
    assert!(!msg.contains("the API key was deleted"), "{msg}");
    assert!(
        msg.contains("could not be deleted yet") && msg.contains("WAL rollback"),
        "{msg}"
    );
    m.backend.tasks.idle().await;
    assert_eq!(
        m.keys().len(),
        1,
        "the key whose delete failed still exists"
    );
    assert_eq!(
        m.wal_entries().await.len(),
        1,
        "and is recorded for the rollback"
    );
    m.roll_back_after_faults("rollback after a failed delete")
        .await;
}
