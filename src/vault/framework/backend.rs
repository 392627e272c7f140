//! A backend: routing, field validation, secrets, WAL rollback, help.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::error::BackendError;
use super::field::FieldData;
use super::path::Path;
use super::request::{Operation, Request, Response, SecretType};
use super::{openapi, wal, Tasks};
use crate::vault::storage::Storage;
use crate::vault::system_view::SystemView;

/// Undoes the side effect a WAL entry describes, given the entry's data;
/// `Ok` deletes the entry.
pub type WalRollback = Arc<
    dyn Fn(
            Request,
            Value,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send>>
        + Send
        + Sync,
>;

/// Wraps an async closure `(request, data)` as a [`WalRollback`].
pub fn rollback_handler<F, Fut>(f: F) -> WalRollback
where
    F: Fn(Request, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BackendError>> + Send + 'static,
{
    Arc::new(move |req, data| Box::pin(f(req, data)))
}

/// Backend-wide work on a request that names no path: Vault's periodic tick
/// (the rollback operation, every minute on the active node), or the `rotate`
/// operation of Vault Enterprise's rotation manager.
pub type Hook = Arc<
    dyn Fn(Request) -> std::pin::Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send>>
        + Send
        + Sync,
>;

/// Reacts to a storage key changed elsewhere in the cluster.
pub(crate) type Invalidate = Arc<dyn Fn(&str) + Send + Sync>;

/// Paths Vault's core treats specially for this plugin.
#[derive(Debug, Clone, Default)]
pub struct SpecialPaths {
    pub root: Vec<String>,
    pub unauthenticated: Vec<String>,
    /// Not replicated to performance secondaries.
    pub local_storage: Vec<String>,
    /// Encrypted again with the seal on Vault Enterprise.
    pub seal_wrap_storage: Vec<String>,
}

/// What a backend is created with, once per mount.
pub struct BackendConfig {
    pub storage: Arc<dyn Storage>,
    pub system: Arc<dyn SystemView>,
    /// Mount options plus `plugin_name`, `plugin_type`, `plugin_version`.
    pub config: HashMap<String, String>,
    pub backend_uuid: String,
}

/// Creates one backend per mount; describes what is common to all mounts.
pub trait BackendFactory: Send + Sync + 'static {
    /// Reported by `logical.PluginVersion`; must equal the registered version.
    fn version(&self) -> String;
    fn special_paths(&self) -> SpecialPaths;
    fn create(&self, config: &BackendConfig) -> Result<Backend, String>;
}

#[derive(Clone, Default)]
pub struct Backend {
    pub help: &'static str,
    pub paths: Vec<Path>,
    /// Secret types; each rolls back the WAL entries of its own kind.
    pub secrets: Vec<SecretType>,
    /// WAL kinds that are not secret types (work on the backend's own
    /// credential, say), with what rolls each back.
    pub wal_rollbacks: Vec<(&'static str, WalRollback)>,
    /// Runs on each of Vault's periodic ticks, before the WAL pass.
    pub periodic: Option<Hook>,
    /// Answers the `rotate` operation (Vault Enterprise's rotation manager).
    pub rotate_credential: Option<Hook>,
    /// WAL entries younger than this are left alone (their request may still be running).
    pub wal_rollback_min_age: Duration,
    /// Called when another node changed a storage key (e.g. `config`).
    pub invalidate: Option<Invalidate>,
    /// Called when the mount goes away.
    pub clean: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Work that outlives the request that started it (see [`Tasks`]).
    pub tasks: Tasks,
}

const UNRECOGNIZED: &str = "Endpoint ignored these unrecognized parameters";

impl Backend {
    fn route(&self, path: &str) -> Option<(&Path, Map<String, Value>)> {
        self.paths
            .iter()
            .find_map(|p| p.matches(path).map(|caps| (p, caps)))
    }

    /// Request data with path captures taking priority, plus the names of unknown fields.
    fn field_data(
        path: &Path,
        req: &Request,
        captures: Map<String, Value>,
    ) -> (FieldData, Vec<String>) {
        let mut ignored: Vec<String> = req
            .data
            .keys()
            .filter(|k| !path.fields.iter().any(|f| f.name == k.as_str()))
            .cloned()
            .collect();
        ignored.sort();
        let mut raw = req.data.clone();
        raw.extend(captures);
        (FieldData::new(raw, &path.fields), ignored)
    }

    pub async fn handle_request(&self, req: Request) -> Result<Option<Response>, BackendError> {
        match req.operation {
            Operation::Renew | Operation::Revoke => return self.handle_secret(req).await,
            Operation::Rollback => return self.handle_rollback(req).await,
            Operation::Rotate => return self.handle_rotation(req).await,
            Operation::Help if req.path.is_empty() => return Ok(Some(self.root_help())),
            _ => {}
        }
        let (path, captures) = self.route(&req.path).ok_or(BackendError::UnsupportedPath)?;
        if req.operation == Operation::Help {
            return Ok(Some(self.path_help(path)));
        }
        // Without an existence check Vault may send `create`; treat it as `update`.
        let handler = path
            .handler(req.operation)
            .or_else(|| {
                (req.operation == Operation::Create)
                    .then(|| path.handler(Operation::Update))
                    .flatten()
            })
            .cloned()
            .ok_or(BackendError::UnsupportedOperation)?;
        let (fields, ignored) = Self::field_data(path, &req, captures);
        fields.validate()?;
        let mut resp = handler(req, fields).await?;
        if let Some(resp) = resp.as_mut() {
            if !ignored.is_empty() {
                resp.add_warning(format!("{UNRECOGNIZED}: [{}]", ignored.join(" ")));
            }
        }
        Ok(resp)
    }

    /// `(check_found, exists)` as Vault's HandleExistenceCheck expects.
    pub async fn handle_existence_check(&self, req: Request) -> Result<(bool, bool), BackendError> {
        let Some((path, captures)) = self.route(&req.path) else {
            return Err(BackendError::UnsupportedPath);
        };
        let Some(check) = path.existence.clone() else {
            return Ok((false, false));
        };
        let (fields, _) = Self::field_data(path, &req, captures);
        Ok((true, check(req, fields).await?))
    }

    async fn handle_secret(&self, req: Request) -> Result<Option<Response>, BackendError> {
        let secret = req
            .secret
            .as_ref()
            .ok_or_else(|| BackendError::internal("request has no secret"))?;
        let kind = secret.internal_str("secret_type").unwrap_or_default();
        let secret_type = self
            .secrets
            .iter()
            .find(|s| s.name == kind)
            .ok_or_else(|| {
                BackendError::internal(format!(
                    "secret type {kind:?} is unsupported by this backend"
                ))
            })?;
        let handler = match req.operation {
            Operation::Renew => secret_type.renew.clone(),
            _ => secret_type.revoke.clone(),
        }
        .ok_or(BackendError::UnsupportedOperation)?;
        let fields = FieldData::new(req.data.clone(), &[]);
        match req.operation {
            // A revocation Vault stops waiting for still deletes the credential
            // (Vault retries it anyway, and deleting twice is harmless).
            Operation::Revoke => self.tasks.run(handler(req, fields)).await,
            _ => handler(req, fields).await,
        }
    }

    /// Rolls back WAL entries old enough that their request cannot still be
    /// running. The pass runs detached: a rollback Vault stops waiting for still
    /// finishes what it started in Atlas and records it.
    async fn handle_rollback(&self, req: Request) -> Result<Option<Response>, BackendError> {
        let rollbacks: Vec<(&'static str, WalRollback)> = self
            .secrets
            .iter()
            .filter_map(|s| s.rollback.clone().map(|r| (s.name, r)))
            .chain(self.wal_rollbacks.iter().cloned())
            .collect();
        if rollbacks.is_empty() {
            return Err(BackendError::UnsupportedOperation);
        }
        if let Some(periodic) = &self.periodic {
            // Its failure is its own: the WAL pass runs regardless.
            let tick = periodic(req.clone());
            if let Err(e) = self.tasks.run(tick).await {
                tracing::warn!(error = %e, "periodic work failed; it runs again on the next tick");
            }
        }
        let min_age = if req.data.contains_key("immediate") {
            Duration::ZERO
        } else {
            self.wal_rollback_min_age
        };
        self.tasks
            .run(rollback_pass(rollbacks, req, min_age))
            .await
            .map(|()| None)
    }

    /// Rotates the backend's own credential. Detached: a rotation Vault stops
    /// waiting for still finishes (or rolls back) what it started.
    async fn handle_rotation(&self, req: Request) -> Result<Option<Response>, BackendError> {
        let rotate = self
            .rotate_credential
            .clone()
            .ok_or(BackendError::UnsupportedOperation)?;
        self.tasks
            .run(rotate(req))
            .await
            .map(|()| Some(Response::default()))
    }

    fn root_help(&self) -> Response {
        let mut text = format!("{}\n\n## PATHS\n", self.help.trim());
        for p in &self.paths {
            text.push_str(&format!("\n    ^{}$\n        {}\n", p.pattern, p.synopsis));
        }
        let mut data = Map::new();
        data.insert("help".into(), Value::String(text));
        data.insert(
            "openapi".into(),
            openapi::document(self.paths.iter(), self.help),
        );
        Response::with_data(data)
    }

    fn path_help(&self, path: &Path) -> Response {
        let mut data = Map::new();
        data.insert("help".into(), Value::String(path.help_text()));
        data.insert("see_also".into(), Value::Null);
        data.insert(
            "openapi".into(),
            openapi::document(std::iter::once(path), self.help),
        );
        Response::with_data(data)
    }
}

/// One pass over the WAL: each entry old enough goes to the secret type of its
/// kind. An entry of a kind nobody owns may stand for a live credential (a newer
/// plugin version wrote it, say), so it is kept and reported, never deleted.
async fn rollback_pass(
    rollbacks: Vec<(&'static str, WalRollback)>,
    req: Request,
    min_age: Duration,
) -> Result<(), BackendError> {
    let storage = req.storage.clone();
    let now = SystemTime::now();
    let mut failures = Vec::new();
    for id in wal::list(storage.as_ref()).await? {
        let entry = match wal::get(storage.as_ref(), &id).await {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(e) => {
                failures.push(format!("{id}: {e}"));
                continue;
            }
        };
        let created = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(entry.created_at).unwrap_or(0));
        let age = now.duration_since(created).unwrap_or_default();
        if age < min_age {
            continue;
        }
        let Some((_, rollback)) = rollbacks.iter().find(|(kind, _)| *kind == entry.kind) else {
            tracing::warn!(wal_id = %id, kind = %entry.kind, age_seconds = age.as_secs(), "keeping a WAL entry of a kind this plugin does not know; it may stand for a live credential");
            continue;
        };
        match rollback(req.clone(), entry.data.clone()).await {
            Ok(()) => wal::delete(storage.as_ref(), &id).await?,
            Err(e) => {
                tracing::warn!(wal_id = %id, kind = %entry.kind, error = %e, "WAL rollback failed; will retry");
                failures.push(format!("{id}: {e}"));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(BackendError::internal(format!(
            "WAL rollback failed for {} entries: {}",
            failures.len(),
            failures.join("; ")
        )))
    }
}
