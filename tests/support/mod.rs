//! The in-process mount the engine's integration tests share: the backend
//! (framework + engine + Atlas client) with in-memory Vault storage, logged in
//! to an Atlas simulator of its own.

// Each test binary uses a part of this; helpers are outside #[test] fns, where
// clippy.toml's allow-*-in-tests does not reach.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use atlas_sim::{SimConfig, SimHandle, Simulator};
use serde_json::{json, Map, Value};
use vault_mongodbatlas::engine::{MongoDbAtlas, Settings};
use vault_mongodbatlas::vault::framework::{
    wal, Backend, BackendError, Operation, Request, Response, Secret,
};
use vault_mongodbatlas::vault::in_memory::InMemoryMount;
use vault_mongodbatlas::vault::storage::{InMemStorage, Storage, StorageEntry, StorageError};
use vault_mongodbatlas::vault::system_view::StaticSystemView;

/// Storage that yields before each operation, as Vault's (over gRPC) does:
/// concurrent requests interleave at every storage call.
pub struct Yielding(pub Arc<InMemStorage>);

#[tonic::async_trait]
impl Storage for Yielding {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        tokio::task::yield_now().await;
        self.0.list(prefix).await
    }
    async fn get(&self, key: &str) -> Result<Option<StorageEntry>, StorageError> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }
    async fn put(&self, entry: StorageEntry) -> Result<(), StorageError> {
        tokio::task::yield_now().await;
        self.0.put(entry).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        tokio::task::yield_now().await;
        self.0.delete(key).await
    }
}

/// How the mount logs in to Atlas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Login {
    /// The simulator's Organization Owner API key (Digest).
    ApiKey,
    /// The simulator's Organization Owner service account (OAuth tokens).
    ServiceAccount,
}

pub struct Mount {
    pub backend: Backend,
    pub storage: Arc<InMemStorage>,
    pub system: Arc<StaticSystemView>,
    pub sim: SimHandle,
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

pub fn data(resp: &Response) -> &Map<String, Value> {
    resp.data.as_ref().expect("data")
}

impl Mount {
    /// A mount logged in with the simulator's API key.
    pub async fn new() -> Self {
        Self::with_sim(SimConfig::default(), Login::ApiKey).await
    }

    pub async fn logged_in(login: Login) -> Self {
        Self::with_sim(SimConfig::default(), login).await
    }

    /// A mount logged in as `login`, with role `name` issuing organization
    /// API keys with ORG_MEMBER (the simplest role).
    pub async fn with_org_role(login: Login, name: &str) -> Self {
        let m = Self::logged_in(login).await;
        let org = m.sim.org_id.clone();
        m.ok(
            Operation::Update,
            &format!("roles/{name}"),
            json!({"organization_id": org, "roles": "ORG_MEMBER"}),
        )
        .await;
        m
    }

    pub async fn with_sim(cfg: SimConfig, login: Login) -> Self {
        Self::with(cfg, Settings::default(), login).await
    }

    pub async fn with_settings(settings: Settings, login: Login) -> Self {
        Self::with(SimConfig::default(), settings, login).await
    }

    pub async fn with(mut cfg: SimConfig, settings: Settings, login: Login) -> Self {
        cfg.listen = "127.0.0.1:0".parse().expect("addr");
        let sim = Simulator::start(cfg).await.expect("simulator starts");
        let InMemoryMount {
            backend,
            storage,
            system,
        } = InMemoryMount::new(&MongoDbAtlas { settings }).expect("backend");
        let mount = Self {
            backend,
            storage,
            system,
            sim,
        };
        mount
            .ok(Operation::Update, "config", mount.login(login))
            .await;
        mount
    }

    /// The config that logs in as `login`.
    pub fn login(&self, login: Login) -> Value {
        match login {
            Login::ApiKey => {
                json!({"public_key": self.sim.public_key, "private_key": self.sim.private_key, "base_url": self.sim.base_url})
            }
            Login::ServiceAccount => {
                json!({"client_id": self.sim.sa_client_id, "client_secret": self.sim.sa_client_secret, "base_url": self.sim.base_url})
            }
        }
    }

    pub fn request(
        &self,
        operation: Operation,
        path: &str,
        data: Value,
        secret: Option<Secret>,
    ) -> Request {
        Request {
            operation,
            path: path.into(),
            data: obj(data),
            secret,
            mount_point: "mongodbatlas/".into(),
            entity_id: String::new(),
            id: "req".into(),
            storage: self.storage.clone(),
            system: self.system.clone(),
        }
    }

    /// `call`, with the request's storage `storage` (e.g. [`Yielding`]).
    pub async fn call_with(
        &self,
        storage: Arc<dyn Storage>,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, BackendError> {
        let mut req = self.request(op, path, data, None);
        req.storage = storage;
        self.backend.handle_request(req).await
    }

    pub async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, BackendError> {
        self.backend
            .handle_request(self.request(op, path, data, None))
            .await
    }

    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> Option<Response> {
        match self.call(op, path, data).await {
            Ok(r) => r,
            Err(e) => panic!("{} {path} failed: {e:?}", op.as_str()),
        }
    }

    pub async fn user_error(&self, op: Operation, path: &str, data: Value) -> String {
        match self.call(op, path, data).await {
            Err(e) if e.is_user() => e.to_string(),
            other => panic!("expected a user error (400) from {path}, got {other:?}"),
        }
    }

    pub async fn issue(&self, role: &str) -> Response {
        self.ok(Operation::Read, &format!("creds/{role}"), json!({}))
            .await
            .expect("creds response")
    }

    pub async fn revoke(&self, secret: Secret) -> Result<Option<Response>, BackendError> {
        self.backend
            .handle_request(self.request(Operation::Revoke, "creds/x", json!({}), Some(secret)))
            .await
    }

    /// Renews as Vault would ask, with the lease issued just now.
    pub async fn renew_response(
        &self,
        mut secret: Secret,
        increment: Duration,
    ) -> Result<Option<Response>, BackendError> {
        secret.lease.increment = increment;
        secret.lease.issue_time = Some(SystemTime::now());
        self.backend
            .handle_request(self.request(Operation::Renew, "creds/x", json!({}), Some(secret)))
            .await
    }

    pub async fn renew(&self, secret: Secret, increment: Duration) -> Secret {
        self.renew_response(secret, increment)
            .await
            .expect("renew")
            .expect("response")
            .secret
            .expect("secret")
    }

    /// Issued (not seeded) API keys in the simulator.
    pub fn issued_keys(&self) -> usize {
        self.sim.inventory().issued_keys().count()
    }

    /// Issued (not seeded) service accounts in the simulator.
    pub fn issued_service_accounts(&self) -> usize {
        self.sim.inventory().issued_service_accounts().count()
    }

    /// Every storage key under `prefix`, however deep.
    pub async fn storage_keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut folders = vec![prefix.to_owned()];
        while let Some(folder) = folders.pop() {
            for key in self.storage.list(&folder).await.expect("list") {
                let full = format!("{folder}{key}");
                if full.ends_with('/') {
                    folders.push(full);
                } else {
                    keys.push(full);
                }
            }
        }
        keys
    }

    pub async fn wal_entries(&self) -> Vec<String> {
        wal::list(self.storage.as_ref()).await.expect("wal list")
    }

    pub async fn rollback_now(&self) -> Result<Option<Response>, BackendError> {
        self.call(Operation::Rollback, "", json!({"immediate": true}))
            .await
    }
}
