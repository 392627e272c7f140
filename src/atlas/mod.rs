//! MongoDB Atlas Administration API client (v2): programmatic API keys, their project
//! assignments and IP access lists; service accounts; MongoDB Cloud users (people) in
//! organizations and projects, and project creation.
//!
//! - HTTP Digest as Atlas does it, nonce cached and reused (one round trip per warm call).
//! - Versioned media types (`application/vnd.atlas.2023-01-01+json` for `/apiKeys`,
//!   `2024-08-05` for `/serviceAccounts`, `2025-02-19` for users).
//! - Per-call deadline; transient failures retried with backoff and `Retry-After`; creates are
//!   never resent blindly (see [`AtlasClient::create_org_key`]).
//! - rustls with the aws-lc-rs provider and the platform's roots (`SSL_CERT_FILE` honoured).
//!
//! Debug logs carry method, path, status and Atlas error code; never keys or auth headers.

mod client;
mod config;
mod digest;
mod error;
mod http_client;
mod models;
mod oauth;
mod secret;
mod service_accounts;
#[cfg(test)]
mod test_server;
mod tls;
mod transport;
mod users;

pub use client::AtlasClient;
pub use config::{
    is_insecure_http, parse_base_url, redact_base_url, BaseUrlError, ClientConfig, Login,
    RetryPolicy, Timeouts, DEFAULT_BASE_URL,
};
pub use error::{ApiProblem, AtlasError};
pub use models::{
    AccessListEntry, AccountSecret, ApiKey, MembershipStatus, OrgUser, Project, ProjectUser,
    RoleAssignment, RoleChange, ServiceAccount,
};
pub use secret::PrivateKey;
pub use service_accounts::AccountScope;
pub use transport::{
    API_KEYS_MEDIA_TYPE, PROJECTS_MEDIA_TYPE, SERVICE_ACCOUNTS_MEDIA_TYPE, USERS_MEDIA_TYPE,
};
pub use users::ORG_ROLES;
