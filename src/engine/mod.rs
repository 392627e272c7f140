//! The MongoDB Atlas secrets engine, compatible with the official plugin's
//! paths, fields, storage and leases.
//!
//! The paths are `config`, `roles`, `creds`, `rotate-root` and `tidy`, one
//! module each; `lease` holds what every lease shares. Each credential type is
//! one module owning its secret type, WAL kind, rollback and issuance:
//! `api_key` (the programmatic API key), `service_account` and `user_access`
//! (a person's temporary roles).

mod api_key;
mod config;
mod creds;
mod issuance;
mod lease;
mod roles;
mod rotation;
mod schedule;
mod service_account;
mod settings;
mod tidy;
mod user_access;

use crate::atlas::{AtlasClient, AtlasError};
use crate::vault::framework::{
    Backend, BackendConfig, BackendError, BackendFactory, Request, SpecialPaths, Tasks,
};
use crate::vault::plugin_server::crate_version;
use roles::Role;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tidy::MountTag;

pub use config::DEFAULT_BASE_URL;
pub use settings::{
    Settings, SettingsError, ATTEMPT_TIMEOUT_ENV, CALL_TIMEOUT_ENV, ISSUE_TIMEOUT_ENV,
    MIN_ROTATION_PERIOD_ENV, WAL_ROLLBACK_MIN_AGE_ENV,
};

const BACKEND_HELP: &str =
    "The MongoDB Atlas secrets engine issues Atlas programmatic API keys on \
demand, leased by Vault and deleted from Atlas when the lease ends. Write the Atlas credentials to \
`config`, define roles under `roles/`, and read `creds/<role>` for a key.";

/// The plugin's backend factory.
#[derive(Clone, Copy, Debug, Default)]
pub struct MongoDbAtlas {
    pub settings: Settings,
}

impl MongoDbAtlas {
    /// The factory configured from the process environment (see [`Settings`]).
    pub fn from_env() -> Result<Self, SettingsError> {
        Ok(Self {
            settings: Settings::from_env()?,
        })
    }
}

impl BackendFactory for MongoDbAtlas {
    fn version(&self) -> String {
        crate_version()
    }

    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths {
            // Like leases and the WAL, the record of issued credentials is per cluster.
            local_storage: vec![
                crate::vault::framework::wal::WAL_PREFIX.into(),
                tidy::record::PREFIX.into(),
            ],
            seal_wrap_storage: vec![config::CONFIG_KEY.into()],
            ..SpecialPaths::default()
        }
    }

    fn create(&self, config: &BackendConfig) -> Result<Backend, String> {
        let engine = Engine::new(self.settings).with_mount_tag(MountTag::of(&config.backend_uuid));
        Ok(engine.backend())
    }
}

/// Per-mount state: the Atlas client built from `config`, cached.
#[derive(Clone, Default)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    settings: Settings,
    // Ends every credential name this mount issues (none if Vault sent no backend UUID).
    mount_tag: Option<MountTag>,
    // Issuances and revocations, which outlive a request Vault abandons.
    tasks: Tasks,
    // Only ever held to clone or swap the client, never across an await.
    client: RwLock<Option<AtlasClient>>,
    // Bumped on every config change, so a client built from a config read
    // before the change is not cached after it.
    generation: AtomicU64,
    // Roles as issuances and renewals read them, so each does not cost a storage
    // round trip into Vault. A role written or deleted here is dropped after the
    // write; one written elsewhere (another node, replication) is dropped by
    // Vault's invalidate hook. Bumped `role_generation` keeps a read that raced
    // a write from caching what it read.
    roles: RwLock<HashMap<String, Role>>,
    role_generation: AtomicU64,
    // Held across a role's read-merge-write. One lock for all roles: writes are
    // rare admin calls, and Vault sends every write to the active node, so a
    // per-process lock is enough.
    role_writes: tokio::sync::Mutex<()>,
    // Held for a whole root rotation (a second one waits for the first) and
    // for a config write, so neither overwrites the other.
    rotation: tokio::sync::Mutex<()>,
    // One tidy at a time: a scheduled one skips while another runs.
    tidy: tokio::sync::Mutex<()>,
}

impl Engine {
    pub fn new(settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                ..Inner::default()
            }),
        }
    }

    /// The engine of a mount whose credentials carry `tag` (see [`MountTag`]).
    fn with_mount_tag(self, tag: Option<MountTag>) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: self.inner.settings,
                mount_tag: tag,
                ..Inner::default()
            }),
        }
    }

    pub fn backend(&self) -> Backend {
        let mut paths = roles::paths(self);
        paths.push(config::path(self));
        paths.push(creds::path(self));
        paths.push(rotation::path(self));
        paths.push(tidy::path(self));
        let invalidating = self.clone();
        Backend {
            help: BACKEND_HELP,
            paths,
            secrets: vec![
                api_key::secret_type(self),
                service_account::secret_type(self),
                user_access::secret_type(self),
            ],
            wal_rollbacks: vec![rotation::wal_rollback(self)],
            periodic: Some(self.periodic()),
            rotate_credential: Some(rotation::rotate_credential(self)),
            wal_rollback_min_age: self.inner.settings.wal_rollback_min_age,
            invalidate: Some(Arc::new(move |key: &str| {
                if key == config::CONFIG_KEY {
                    invalidating.reset_client();
                } else if let Some(name) = key.strip_prefix(roles::PREFIX) {
                    invalidating.forget_role(name);
                }
            })),
            clean: None,
            tasks: self.inner.tasks.clone(),
        }
    }

    fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn tasks(&self) -> &Tasks {
        &self.inner.tasks
    }

    fn mount_tag(&self) -> Option<&MountTag> {
        self.inner.mount_tag.as_ref()
    }

    /// What this mount's credential names end with (empty without a tag).
    fn tag_suffix(&self) -> String {
        self.mount_tag().map(MountTag::suffix).unwrap_or_default()
    }

    /// Vault's periodic tick: the rotation schedule, then the tidy schedule;
    /// one failing does not keep the other from running.
    fn periodic(&self) -> crate::vault::framework::Hook {
        let engine = self.clone();
        Arc::new(move |req| {
            let engine = engine.clone();
            Box::pin(async move {
                let rotated = rotation::tick(engine.clone(), req.clone()).await;
                let tidied = tidy::tick(&engine, &req).await;
                rotated.and(tidied)
            })
        })
    }

    /// Drops the cached client (config written here or on another node). A
    /// service account's token is revoked, best effort: it would otherwise
    /// stay valid for up to an hour after the credential was replaced.
    pub fn reset_client(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        let retired = self
            .inner
            .client
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(client) = retired {
            if tokio::runtime::Handle::try_current().is_ok() {
                self.inner.tasks.spawn(async move {
                    match client.revoke_token().await {
                        Ok(true) => tracing::debug!("revoked the replaced service account's token"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "could not revoke the replaced service account's token; it expires on its own within the hour"),
                    }
                });
            }
        }
    }

    /// One root rotation at a time, and no config write during one (see `Inner::rotation`).
    async fn rotation_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.rotation.lock().await
    }

    /// The rotation lock if no rotation is under way.
    fn try_rotation_lock(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>, tokio::sync::TryLockError> {
        self.inner.rotation.try_lock()
    }

    /// The role `name`, from the cache or else from storage (see `Inner::roles`).
    async fn role(&self, req: &Request, name: &str) -> Result<Option<Role>, BackendError> {
        if let Some(role) = self
            .inner
            .roles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(Some(role.clone()));
        }
        let generation = self.inner.role_generation.load(Ordering::SeqCst);
        let role = roles::load(req.storage.as_ref(), name).await?;
        if let Some(role) = &role {
            let mut cached = self.inner.roles.write().unwrap_or_else(|e| e.into_inner());
            if self.inner.role_generation.load(Ordering::SeqCst) == generation {
                cached.insert(name.to_string(), role.clone());
            }
        }
        Ok(role)
    }

    /// Drops a role from the cache: it was written or deleted, here or elsewhere.
    fn forget_role(&self, name: &str) {
        self.inner.role_generation.fetch_add(1, Ordering::SeqCst);
        self.inner
            .roles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Serializes role writes and deletes (see `Inner::role_writes`).
    async fn role_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.role_writes.lock().await
    }

    /// The Atlas client for this mount; `None` when no config is written.
    async fn client(&self, req: &Request) -> Result<Option<AtlasClient>, BackendError> {
        if let Some(client) = self
            .inner
            .client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(Some(client));
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let Some(config) = config::load(req.storage.as_ref()).await? else {
            return Ok(None);
        };
        let vault_version = req.system.vault_version().await.unwrap_or_default();
        let client = AtlasClient::new(
            config
                .client_config()
                .with_vault_version(vault_version)
                .with_timeouts(self.inner.settings.timeouts),
        )
        .map_err(|e| BackendError::user(format!("config: {e}")))?;
        let mut cached = self.inner.client.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = cached.as_ref() {
            // Another request built one meanwhile: share it, and with it the one
            // token (or Digest nonce), or a burst of first requests would each
            // fetch a token of their own.
            return Ok(Some(existing.clone()));
        }
        if self.inner.generation.load(Ordering::SeqCst) == generation {
            *cached = Some(client.clone());
        }
        Ok(Some(client))
    }
}

impl Engine {
    /// The client a revocation or rollback deletes with. Without one it must
    /// fail loudly, or Vault forgets the lease (or WAL entry) and the credential leaks.
    async fn revoking_client(&self, req: &Request) -> Result<AtlasClient, BackendError> {
        match self.client(req).await {
            Ok(Some(client)) => Ok(client),
            Ok(None) => Err(BackendError::internal(
                "cannot delete the Atlas credential: the mount has no config (write <mount>/config); Vault will retry",
            )),
            Err(e) => Err(BackendError::internal(format!(
                "cannot delete the Atlas credential: {e}; Vault will retry"
            ))),
        }
    }
}

/// Atlas' answer as the Vault user sees it: input Atlas rejected, or ids it
/// does not know (a role naming a missing organization or project), is a 400;
/// the rest is a 500. The one place that decides.
impl From<AtlasError> for BackendError {
    fn from(e: AtlasError) -> Self {
        upstream("calling Atlas", e)
    }
}

fn upstream(context: &str, e: AtlasError) -> BackendError {
    BackendError::Upstream {
        context: context.to_owned(),
        caller_input: e.is_caller_input(),
        source: Box::new(e),
    }
}

/// Says what the engine was doing when Atlas failed, keeping Atlas' error as
/// the source and its classification.
pub(crate) trait AtlasContext<T> {
    fn context(self, doing: &str) -> Result<T, BackendError>;
}

impl<T> AtlasContext<T> for Result<T, AtlasError> {
    fn context(self, doing: &str) -> Result<T, BackendError> {
        self.map_err(|e| upstream(doing, e))
    }
}
