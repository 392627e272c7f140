//! Vault's view of the mount and server: lease TTL defaults and the Vault version.

use std::time::Duration;

use tonic::transport::Channel;

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
}

#[derive(Clone)]
pub struct GrpcSystemView {
    client: SystemViewClient<Channel>,
}

impl GrpcSystemView {
    pub fn new(channel: Channel) -> Self {
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

    async fn vault_version(&self) -> Result<String, SystemViewError> {
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
        Ok(reply
            .plugin_environment
            .map(|e| e.vault_version)
            .unwrap_or_default())
    }
}

/// Fixed values, for tests.
#[derive(Clone, Debug)]
pub struct StaticSystemView {
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
    pub vault_version: String,
}

impl Default for StaticSystemView {
    fn default() -> Self {
        Self {
            default_lease_ttl: Duration::from_secs(768 * 3600),
            max_lease_ttl: Duration::from_secs(768 * 3600),
            vault_version: "1.21.4".into(),
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
}
