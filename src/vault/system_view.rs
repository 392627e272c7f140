//! Vault's view of the mount and server: lease TTL defaults, the Vault
//! version, and Vault Enterprise's rotation manager.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::goplugin::broker::BrokerChannel;
use crate::goplugin::MAX_MESSAGE_SIZE;
use crate::proto::pb;
use crate::proto::pb::system_view_client::SystemViewClient;

#[derive(Debug, thiserror::Error)]
#[error("Vault system view {call} failed: {message}")]
pub struct SystemViewError {
    call: &'static str,
    message: String,
}

#[tonic::async_trait]
pub trait SystemView: Send + Sync {
    /// The mount's default lease TTL (mount tune, else the server default).
    async fn default_lease_ttl(&self) -> Result<Duration, SystemViewError>;
    /// The mount's maximum lease TTL.
    async fn max_lease_ttl(&self) -> Result<Duration, SystemViewError>;
    /// The Vault server version, e.g. "1.21.4" (empty if unknown).
    async fn vault_version(&self) -> Result<String, SystemViewError>;
    /// The metadata of a Vault identity entity (`None`: no such entity).
    async fn entity_metadata(
        &self,
        entity_id: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SystemViewError>;
    /// Hands a rotation schedule to Vault Enterprise's rotation manager, which
    /// then sends the `rotate` operation; returns the job's id. Community
    /// Edition answers with an error, OpenBao has no such call.
    async fn register_rotation_job(&self, job: &RotationJob) -> Result<String, SystemViewError>;
    /// Withdraws the job of `path` on this mount.
    async fn deregister_rotation_job(
        &self,
        mount_point: &str,
        path: &str,
    ) -> Result<(), SystemViewError>;
    /// The build metadata of the server's version: "ent" on Vault Enterprise.
    async fn vault_version_metadata(&self) -> Result<String, SystemViewError>;
    /// The cluster's replication state flags. Only Vault Enterprise replicates;
    /// OpenBao's active node reports itself a performance primary regardless.
    async fn replication_state(&self) -> Result<u32, SystemViewError>;
    /// Whether the mount is local (never replicated to other clusters).
    async fn local_mount(&self) -> Result<bool, SystemViewError>;
}

/// Replication state flags (Vault's `consts.ReplicationState`): a cluster in
/// a performance replication set, as primary or secondary.
pub const REPLICATION_PERFORMANCE_PRIMARY: u32 = 1 << 5;
pub const REPLICATION_PERFORMANCE_SECONDARY: u32 = 1 << 6;

/// A rotation job as Vault's rotation manager takes it: a cron schedule (with
/// an optional window) or a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationJob {
    pub name: String,
    pub mount_point: String,
    /// The path whose credential rotates; the `rotate` operation names it.
    pub path: String,
    pub schedule: String,
    pub window: Duration,
    pub period: Duration,
}

/// What Vault Community Edition answers to a registration.
pub const ROTATION_MANAGER_UNSUPPORTED: &str =
    "rotation manager capabilities not supported in Vault community edition";

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[derive(Clone)]
pub struct GrpcSystemView {
    client: SystemViewClient<BrokerChannel>,
}

impl GrpcSystemView {
    pub fn new(channel: BrokerChannel) -> Self {
        let client = SystemViewClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Self { client }
    }
}

fn failed(call: &'static str, message: impl ToString) -> SystemViewError {
    SystemViewError {
        call,
        message: message.to_string(),
    }
}

/// Vault sends nanoseconds; negative values are treated as zero.
fn nanos(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

impl GrpcSystemView {
    async fn plugin_env(
        &self,
    ) -> Result<crate::proto::logical::PluginEnvironment, SystemViewError> {
        let reply = self
            .client
            .clone()
            .plugin_env(pb::Empty {})
            .await
            .map_err(|s| failed("PluginEnv", s.message()))?
            .into_inner();
        if !reply.err.is_empty() {
            return Err(failed("PluginEnv", reply.err));
        }
        Ok(reply.plugin_environment.unwrap_or_default())
    }
}

#[tonic::async_trait]
impl SystemView for GrpcSystemView {
    async fn default_lease_ttl(&self) -> Result<Duration, SystemViewError> {
        let r = self.client.clone().default_lease_ttl(pb::Empty {}).await;
        r.map(|r| nanos(r.into_inner().ttl))
            .map_err(|s| failed("DefaultLeaseTTL", s.message()))
    }

    async fn max_lease_ttl(&self) -> Result<Duration, SystemViewError> {
        let r = self.client.clone().max_lease_ttl(pb::Empty {}).await;
        r.map(|r| nanos(r.into_inner().ttl))
            .map_err(|s| failed("MaxLeaseTTL", s.message()))
    }

    async fn replication_state(&self) -> Result<u32, SystemViewError> {
        let r = self.client.clone().replication_state(pb::Empty {}).await;
        r.map(|r| u32::try_from(r.into_inner().state).unwrap_or_default())
            .map_err(|s| failed("ReplicationState", s.message()))
    }

    async fn local_mount(&self) -> Result<bool, SystemViewError> {
        let r = self.client.clone().local_mount(pb::Empty {}).await;
        r.map(|r| r.into_inner().local)
            .map_err(|s| failed("LocalMount", s.message()))
    }

    async fn vault_version(&self) -> Result<String, SystemViewError> {
        Ok(self.plugin_env().await?.vault_version)
    }

    async fn vault_version_metadata(&self) -> Result<String, SystemViewError> {
        Ok(self.plugin_env().await?.vault_version_metadata)
    }

    async fn entity_metadata(
        &self,
        entity_id: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SystemViewError> {
        let reply = self
            .client
            .clone()
            .entity_info(pb::EntityInfoArgs {
                entity_id: entity_id.to_owned(),
            })
            .await
            .map_err(|s| failed("EntityInfo", s.message()))?
            .into_inner();
        if !reply.err.is_empty() {
            return Err(failed("EntityInfo", reply.err));
        }
        Ok(reply.entity.map(|e| e.metadata.into_iter().collect()))
    }

    async fn register_rotation_job(&self, job: &RotationJob) -> Result<String, SystemViewError> {
        let request = pb::RegisterRotationJobRequest {
            job: Some(pb::RotationJobInput {
                name: job.name.clone(),
                mount_point: job.mount_point.clone(),
                path: job.path.clone(),
                rotation_schedule: job.schedule.clone(),
                rotation_window: seconds(job.window),
                rotation_period: seconds(job.period),
                ..pb::RotationJobInput::default()
            }),
        };
        let reply = self
            .client
            .clone()
            .register_rotation_job(request)
            .await
            .map_err(|s| failed("RegisterRotationJob", s.message()))?
            .into_inner();
        if !reply.err.is_empty() {
            return Err(failed("RegisterRotationJob", reply.err));
        }
        Ok(reply.rotation_id)
    }

    async fn deregister_rotation_job(
        &self,
        mount_point: &str,
        path: &str,
    ) -> Result<(), SystemViewError> {
        let request = pb::DeregisterRotationJobRequest {
            req: Some(pb::DeregisterRotationRequestInput {
                mount_point: mount_point.to_owned(),
                req_path: path.to_owned(),
            }),
        };
        self.client
            .clone()
            .deregister_rotation_job(request)
            .await
            .map(drop)
            .map_err(|s| failed("DeregisterRotationJob", s.message()))
    }
}

/// Fixed values, for tests.
#[derive(Clone, Debug)]
pub struct StaticSystemView {
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
    pub vault_version: String,
    /// `Some`: a rotation manager (Vault Enterprise) holding the registered
    /// jobs; `None`: registration is refused, as Community Edition does.
    pub rotation_jobs: Option<Arc<Mutex<Vec<RotationJob>>>>,
    /// Identity entities by id: their metadata.
    pub entities: BTreeMap<String, BTreeMap<String, String>>,
    /// "ent": Vault Enterprise.
    pub vault_version_metadata: String,
    pub replication_state: u32,
    pub local_mount: bool,
}

impl Default for StaticSystemView {
    fn default() -> Self {
        Self {
            default_lease_ttl: Duration::from_secs(768 * 3600),
            max_lease_ttl: Duration::from_secs(768 * 3600),
            vault_version: "1.21.4".into(),
            rotation_jobs: None,
            entities: BTreeMap::new(),
            vault_version_metadata: String::new(),
            replication_state: 0,
            local_mount: false,
        }
    }
}

#[tonic::async_trait]
impl SystemView for StaticSystemView {
    async fn default_lease_ttl(&self) -> Result<Duration, SystemViewError> {
        Ok(self.default_lease_ttl)
    }
    async fn max_lease_ttl(&self) -> Result<Duration, SystemViewError> {
        Ok(self.max_lease_ttl)
    }
    async fn vault_version(&self) -> Result<String, SystemViewError> {
        Ok(self.vault_version.clone())
    }
    async fn vault_version_metadata(&self) -> Result<String, SystemViewError> {
        Ok(self.vault_version_metadata.clone())
    }
    async fn replication_state(&self) -> Result<u32, SystemViewError> {
        Ok(self.replication_state)
    }
    async fn local_mount(&self) -> Result<bool, SystemViewError> {
        Ok(self.local_mount)
    }

    async fn entity_metadata(
        &self,
        entity_id: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SystemViewError> {
        Ok(self.entities.get(entity_id).cloned())
    }

    async fn register_rotation_job(&self, job: &RotationJob) -> Result<String, SystemViewError> {
        let jobs = self
            .rotation_jobs
            .as_ref()
            .ok_or_else(|| failed("RegisterRotationJob", ROTATION_MANAGER_UNSUPPORTED))?;
        let mut jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.retain(|j| (&j.mount_point, &j.path) != (&job.mount_point, &job.path));
        jobs.push(job.clone());
        Ok(format!("{}{}", job.mount_point, job.path))
    }

    async fn deregister_rotation_job(
        &self,
        mount_point: &str,
        path: &str,
    ) -> Result<(), SystemViewError> {
        let jobs = self
            .rotation_jobs
            .as_ref()
            .ok_or_else(|| failed("DeregisterRotationJob", ROTATION_MANAGER_UNSUPPORTED))?;
        jobs.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|j| (j.mount_point.as_str(), j.path.as_str()) != (mount_point, path));
        Ok(())
    }
}
