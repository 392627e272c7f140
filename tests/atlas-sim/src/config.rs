//! Simulator configuration: seeds (org, project, root key, extra keys, root service
//! account), auth (nonces, token lifetime), rate limits, latency, journal, TLS and proxy. Built in code ([`SimConfig::default`]) or from a JSON
//! file ([`FileConfig`]) plus command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ratelimit::RateLimitConfig;

/// An additional API key created at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedKey {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub private_key: Option<String>,
    #[serde(default = "default_seed_desc")]
    pub desc: String,
    /// Roles in the seeded organization.
    #[serde(default)]
    pub org_roles: Vec<String>,
    /// Roles in the seeded project.
    #[serde(default)]
    pub project_roles: Vec<String>,
}

fn default_seed_desc() -> String {
    "atlas-sim seed key".into()
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Main listener (Atlas API and /admin). Port 0 picks a free port.
    pub listen: SocketAddr,
    pub org_id: Option<String>,
    pub org_name: String,
    pub project_id: Option<String>,
    pub project_name: String,
    /// The seeded ORG_OWNER key (random when None).
    pub key_id: Option<String>,
    pub public_key: Option<String>,
    pub private_key: Option<String>,
    pub key_desc: String,
    pub extra_keys: Vec<SeedKey>,
    /// The seeded ORG_OWNER service account (random when None): client id
    /// `mdb_sa_id_<24 hex>` and secret `mdb_sa_sk_<letters and digits>`.
    pub sa_client_id: Option<String>,
    pub sa_client_secret: Option<String>,
    pub sa_name: String,
    /// How long a digest nonce stays valid (then `stale=true`).
    pub nonce_lifetime: Duration,
    /// Lifetime of OAuth access tokens (`expires_in`, rounded up to whole seconds).
    pub token_lifetime: Duration,
    /// Added to every HTTP request, digest challenges included (models network RTT).
    pub latency: Duration,
    pub rate_limit: RateLimitConfig,
    pub max_keys_per_org: usize,
    pub max_service_accounts_per_org: usize,
    /// Journal entries kept (oldest dropped first); 0 disables the journal.
    pub journal_capacity: usize,
    /// Serve the main listener over HTTPS with a generated CA.
    pub tls: bool,
    /// Where to write the generated CA certificate (PEM), for SSL_CERT_FILE.
    pub ca_path: Option<PathBuf>,
    /// Run an HTTP CONNECT proxy that terminates `cloud.mongodb.com:443` at the simulator.
    pub proxy: bool,
    pub proxy_listen: SocketAddr,
}

impl Default for SimConfig {
    fn default() -> Self {
        let loopback: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            listen: loopback,
            org_id: None,
            org_name: "atlas-sim-org".into(),
            project_id: None,
            project_name: "atlas-sim-project".into(),
            key_id: None,
            public_key: None,
            private_key: None,
            key_desc: "atlas-sim root key".into(),
            extra_keys: Vec::new(),
            sa_client_id: None,
            sa_client_secret: None,
            sa_name: "atlas-sim root service account".into(),
            nonce_lifetime: Duration::from_secs(300),
            token_lifetime: Duration::from_secs(3600),
            latency: Duration::ZERO,
            rate_limit: RateLimitConfig::default(),
            max_keys_per_org: 500,
            max_service_accounts_per_org: 200,
            journal_capacity: 10_000,
            tls: false,
            ca_path: None,
            proxy: false,
            proxy_listen: loopback,
        }
    }
}

/// The optional JSON config file (`--config FILE`); every field is optional and flags win.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub org_id: Option<String>,
    pub org_name: Option<String>,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub key_id: Option<String>,
    pub public_key: Option<String>,
    pub private_key: Option<String>,
    pub key_desc: Option<String>,
    #[serde(default)]
    pub extra_keys: Vec<SeedKey>,
    pub sa_client_id: Option<String>,
    pub sa_client_secret: Option<String>,
    pub sa_name: Option<String>,
    pub nonce_lifetime_secs: Option<u64>,
    pub token_lifetime_ms: Option<u64>,
    pub latency_ms: Option<u64>,
    pub rate_limit: Option<RateLimitConfig>,
    pub max_keys_per_org: Option<usize>,
    pub max_service_accounts_per_org: Option<usize>,
    pub journal_capacity: Option<usize>,
    pub tls: Option<bool>,
    pub ca_path: Option<PathBuf>,
    pub proxy: Option<bool>,
    pub proxy_listen: Option<SocketAddr>,
}

impl FileConfig {
    /// Overlays the file's values onto `cfg`.
    pub fn apply(self, cfg: &mut SimConfig) {
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = self.$field {
                    cfg.$field = v;
                }
            };
            (opt $field:ident) => {
                if self.$field.is_some() {
                    cfg.$field = self.$field;
                }
            };
        }
        set!(listen);
        set!(opt org_id);
        set!(org_name);
        set!(opt project_id);
        set!(project_name);
        set!(opt key_id);
        set!(opt public_key);
        set!(opt private_key);
        set!(key_desc);
        cfg.extra_keys.extend(self.extra_keys);
        set!(opt sa_client_id);
        set!(opt sa_client_secret);
        set!(sa_name);
        if let Some(s) = self.nonce_lifetime_secs {
            cfg.nonce_lifetime = Duration::from_secs(s);
        }
        if let Some(ms) = self.token_lifetime_ms {
            cfg.token_lifetime = Duration::from_millis(ms);
        }
        if let Some(ms) = self.latency_ms {
            cfg.latency = Duration::from_millis(ms);
        }
        set!(rate_limit);
        set!(max_keys_per_org);
        set!(max_service_accounts_per_org);
        set!(journal_capacity);
        set!(tls);
        set!(opt ca_path);
        set!(proxy);
        set!(proxy_listen);
    }
}

/// The line the binary prints on stdout once it listens (and what [`super::SimHandle`] holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartupInfo {
    pub base_url: String,
    /// `base_url + "/admin"`: the admin API shares the main listener.
    pub admin_url: String,
    pub org_id: String,
    pub project_id: String,
    pub public_key: String,
    pub private_key: String,
    pub key_id: String,
    /// The seeded ORG_OWNER service account's client id and secret (OAuth client
    /// credentials for `POST /api/oauth/token`).
    #[serde(default)]
    pub sa_client_id: String,
    #[serde(default)]
    pub sa_client_secret: String,
    pub tls: bool,
    /// `http://127.0.0.1:<port>` when the CONNECT proxy runs.
    pub proxy_url: Option<String>,
    /// Path of the CA certificate PEM when TLS material was generated and written.
    pub ca_path: Option<PathBuf>,
}
