//! Client settings: where Atlas is, who we are, and how long we are willing to wait.

use std::time::Duration;

use super::secret::PrivateKey;

/// Atlas commercial cloud. Atlas for Government is `https://cloud.mongodbgov.com`.
pub const DEFAULT_BASE_URL: &str = "https://cloud.mongodb.com";

/// Everything [`AtlasClient::new`](super::AtlasClient::new) needs.
///
/// `Debug` is safe to log: the private key is redacted by [`PrivateKey`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Scheme, host and optional path prefix; `/api/atlas/v2/...` is appended.
    pub base_url: String,
    /// Programmatic API key public half (the Digest user name).
    pub public_key: String,
    /// Programmatic API key private half (the Digest password).
    pub private_key: PrivateKey,
    /// Vault's version (from the plugin environment), reported in the User-Agent.
    pub vault_version: Option<String>,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    /// Extra PEM CA certificates trusted in addition to the platform roots
    /// (which already honour `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    pub extra_root_certs_pem: Option<String>,
}

impl ClientConfig {
    /// Defaults for everything but the credentials.
    pub fn new(public_key: impl Into<String>, private_key: impl Into<PrivateKey>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            public_key: public_key.into(),
            private_key: private_key.into(),
            vault_version: None,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            extra_root_certs_pem: None,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    pub fn with_vault_version(mut self, version: impl Into<String>) -> Self {
        self.vault_version = Some(version.into());
        self
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// `vault-plugin-secrets-mongodbatlas/<crate version> (Vault <vault version>)`.
    pub fn user_agent(&self) -> String {
        let vault = self
            .vault_version
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or("unknown");
        format!(
            "vault-plugin-secrets-mongodbatlas/{} (Vault {vault})",
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// Time limits applied to every client method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connection establishment.
    pub connect: Duration,
    /// One HTTP exchange, from sending the request to the end of the response body.
    pub attempt: Duration,
    /// Whole method call, including retries, backoff sleeps, pagination and create recovery.
    pub overall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(30),
            overall: Duration::from_secs(90),
        }
    }
}

/// Exponential backoff with jitter for transient failures (the overall deadline still rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per HTTP request, the first included; 1 disables retries.
    pub max_attempts: usize,
    /// First backoff delay; doubles each retry.
    pub min_delay: Duration,
    /// Backoff ceiling (a server's `Retry-After` may ask for longer).
    pub max_delay: Duration,
    /// Randomise delays so that many clients do not retry in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            jitter: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_plugin_and_vault() {
        let config = ClientConfig::new("abcdefgh", "secret").with_vault_version("1.20.3");
        assert_eq!(
            config.user_agent(),
            format!(
                "vault-plugin-secrets-mongodbatlas/{} (Vault 1.20.3)",
                env!("CARGO_PKG_VERSION")
            )
        );
        let unknown = ClientConfig::new("abcdefgh", "secret");
        assert!(unknown.user_agent().ends_with("(Vault unknown)"));
    }

    #[test]
    fn debug_redacts_private_key() {
        let config = ClientConfig::new("abcdefgh", "c8150efd-c7a0-4afd-8c4f-01bdd56c8977");
        let shown = format!("{config:?}");
        assert!(shown.contains("abcdefgh"));
        assert!(!shown.contains("c8150efd"), "{shown}");
        assert!(!shown.contains("01bdd56c8977"), "{shown}");
    }
}
