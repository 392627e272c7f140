//! Client settings: where Atlas is, who we are, and how long we are willing to wait.

use std::fmt;
use std::time::Duration;

use url::Url;

use super::secret::PrivateKey;

/// Atlas commercial cloud. Atlas for Government is `https://cloud.mongodbgov.com`.
pub const DEFAULT_BASE_URL: &str = "https://cloud.mongodb.com";

/// Everything [`AtlasClient::new`](super::AtlasClient::new) needs.
///
/// `Debug` is safe to log: the private key and any userinfo in the base URL are redacted.
#[derive(Clone)]
pub struct ClientConfig {
    /// Scheme, host and optional path prefix; `/api/atlas/v2/...` is appended.
    /// Must pass [`parse_base_url`].
    pub base_url: String,
    /// Accept `http://` to a host that is not a loopback address (labs only:
    /// Digest exchanges and new private keys then travel unencrypted).
    pub allow_insecure_http: bool,
    /// Who the client is: an API key (Digest) or a service account (OAuth 2.0).
    pub login: Login,
    /// Vault's version (from the plugin environment), reported in the User-Agent.
    pub vault_version: Option<String>,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    /// Extra PEM CA certificates trusted in addition to the platform roots
    /// (which already honour `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    pub extra_root_certs_pem: Option<String>,
}

impl ClientConfig {
    /// Defaults for everything but the credentials: a programmatic API key.
    pub fn new(public_key: impl Into<String>, private_key: impl Into<PrivateKey>) -> Self {
        Self::with_login(Login::ApiKey {
            public_key: public_key.into(),
            private_key: private_key.into(),
        })
    }

    /// Defaults for everything but the credentials: a service account.
    pub fn service_account(
        client_id: impl Into<String>,
        client_secret: impl Into<PrivateKey>,
    ) -> Self {
        Self::with_login(Login::ServiceAccount {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        })
    }

    fn with_login(login: Login) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            allow_insecure_http: false,
            login,
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

    pub fn with_allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
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

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &redact_base_url(&self.base_url))
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("login", &self.login)
            .field("vault_version", &self.vault_version)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .field(
                "extra_root_certs_pem",
                &self.extra_root_certs_pem.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// The credential the client authenticates with. `Debug` shows the public
/// half only.
#[derive(Clone, Debug)]
pub enum Login {
    /// A programmatic API key: HTTP Digest with the public key as user name.
    ApiKey {
        public_key: String,
        private_key: PrivateKey,
    },
    /// A service account: OAuth 2.0 client credentials, then bearer tokens.
    ServiceAccount {
        client_id: String,
        client_secret: PrivateKey,
    },
}

/// Why a base URL is refused. Messages name `base_url` and the fix, and show the
/// URL only through [`redact_base_url`], so a password in it never reaches an
/// error, a response or a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error("base_url {shown} is not an absolute URL: use e.g. {DEFAULT_BASE_URL}")]
    NotAUrl { shown: String },
    #[error("base_url {shown} must use https (e.g. {DEFAULT_BASE_URL}); http is accepted only to a loopback address")]
    Scheme { shown: String },
    #[error("base_url {shown} has no host: use e.g. {DEFAULT_BASE_URL}")]
    NoHost { shown: String },
    #[error("base_url {shown} must not contain a user name or password: remove the part before '@' (the engine authenticates with public_key and private_key)")]
    Credentials { shown: String },
    #[error(
        "base_url {shown} must not contain a query or fragment: remove everything from '?' or '#'"
    )]
    QueryOrFragment { shown: String },
    #[error("base_url {shown} is plain HTTP to a host that is not a loopback address, so Digest exchanges and new private keys would travel unencrypted: use https, or for a lab set allow_insecure_http=true")]
    InsecureHttp { shown: String },
}

/// Parses and checks a base URL: `https://host[:port][/path]`, or `http://`
/// to a loopback address (any host with `allow_insecure_http`); no userinfo,
/// query or fragment. The one set of rules for `config` writes and the client.
pub fn parse_base_url(raw: &str, allow_insecure_http: bool) -> Result<Url, BaseUrlError> {
    let shown = || redact_base_url(raw);
    let url = Url::parse(raw.trim()).map_err(|_| BaseUrlError::NotAUrl { shown: shown() })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(BaseUrlError::Scheme { shown: shown() });
    }
    if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err(BaseUrlError::NoHost { shown: shown() });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BaseUrlError::Credentials { shown: shown() });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(BaseUrlError::QueryOrFragment { shown: shown() });
    }
    if url.scheme() == "http" && !is_loopback(&url) && !allow_insecure_http {
        return Err(BaseUrlError::InsecureHttp { shown: shown() });
    }
    Ok(url)
}

/// Whether a URL is plain HTTP to a host other than a loopback address.
pub fn is_insecure_http(url: &Url) -> bool {
    url.scheme() == "http" && !is_loopback(url)
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A base URL fit to show (quoted): userinfo, query and fragment replaced by `***`.
///
/// Works on the text, not on a parsed URL, because a value that fails to parse
/// (say a bad port after `user:password@`) must be redacted too. Over-redacts
/// rather than risk showing a password: everything from the host's start to
/// the last `@` goes.
pub fn redact_base_url(raw: &str) -> String {
    let raw = raw.trim();
    // Where the authority starts: after `scheme:` and any slashes (the URL
    // parser accepts backslashes there too); at 0 when there is no scheme.
    let authority = raw
        .find(':')
        .filter(|&colon| {
            raw[..colon]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
        .map(|colon| {
            let after = &raw[colon + 1..];
            colon + 1 + (after.len() - after.trim_start_matches(['/', '\\']).len())
        })
        .unwrap_or(0);
    let mut shown = raw[..authority].to_owned();
    let mut rest = &raw[authority..];
    if let Some(at) = rest.rfind('@') {
        shown.push_str("***@");
        rest = &rest[at + 1..];
    }
    match rest.find(['?', '#']) {
        Some(cut) => {
            shown.push_str(&rest[..=cut]);
            shown.push_str("***");
        }
        None => shown.push_str(rest),
    }
    format!("{shown:?}")
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
    fn base_url_rules() {
        for good in [
            "https://cloud.mongodb.com",
            " https://cloud.mongodbgov.com/ ",
            "https://proxy.example:8443/atlas/",
            "http://127.0.0.1:8080",
            "http://[::1]:1",
            "http://localhost/sim",
        ] {
            assert!(parse_base_url(good, false).is_ok(), "{good}");
        }
        let kind = |e: &BaseUrlError| match e {
            BaseUrlError::NotAUrl { .. } => "not a URL",
            BaseUrlError::Scheme { .. } => "scheme",
            BaseUrlError::NoHost { .. } => "no host",
            BaseUrlError::Credentials { .. } => "credentials",
            BaseUrlError::QueryOrFragment { .. } => "query",
            BaseUrlError::InsecureHttp { .. } => "insecure",
        };
        for (bad, expected) in [
            ("cloud.mongodb.com", "not a URL"),
            ("", "not a URL"),
            ("https://h:99999", "not a URL"),
            ("ftp://cloud.mongodb.com", "scheme"),
            ("mailto:owner@example.com", "scheme"),
            ("https://user:s3cretpw@cloud.mongodb.com", "credentials"),
            ("https://user@cloud.mongodb.com", "credentials"),
            ("https://cloud.mongodb.com/?x=1", "query"),
            ("https://cloud.mongodb.com#frag", "query"),
            ("http://10.0.0.5:8080", "insecure"),
            ("http://sim.lab.example", "insecure"),
        ] {
            let e = parse_base_url(bad, false).expect_err(bad);
            assert_eq!(kind(&e), expected, "{bad}: {e:?}");
            assert!(e.to_string().starts_with("base_url "), "{e}");
        }
        assert!(parse_base_url("http://10.0.0.5:8080", true).is_ok());
        // The opt-in relaxes nothing else.
        assert!(parse_base_url("http://u:p@10.0.0.5", true).is_err());
    }

    #[test]
    fn base_url_errors_never_show_a_password() {
        for bad in [
            "https://user:s3cretpw@cloud.mongodb.com",
            "https://user:s3cretpw@cloud.mongodb.com:99999",
            "https://user:s3cret/pw@cloud.mongodb.com",
            "https://user:s3cret?pw@host",
            "https://user:s3cret#pw@host",
            "https:\\\\user:s3cretpw@host",
            "user:s3cretpw@host",
            "https://cloud.mongodb.com/?token=s3cretpw",
            "https://cloud.mongodb.com/#s3cretpw",
            "https://user:s3cretpw@",
        ] {
            let e = parse_base_url(bad, true).expect_err(bad).to_string();
            assert!(!e.contains("s3cret"), "{bad} -> {e}");
            let shown = redact_base_url(bad);
            assert!(!shown.contains("s3cret"), "{bad} -> {shown}");
        }
        assert_eq!(
            redact_base_url("https://u:pw@cloud.mongodb.com/x?y#z"),
            r#""https://***@cloud.mongodb.com/x?***""#
        );
        assert_eq!(
            redact_base_url("https://cloud.mongodb.com"),
            r#""https://cloud.mongodb.com""#
        );
        let config = ClientConfig::new("abcdefgh", "secret").with_base_url("https://u:s3cretpw@h");
        assert!(!format!("{config:?}").contains("s3cret"));
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
