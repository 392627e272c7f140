//! A local, stateful MongoDB Atlas Administration API simulator (the `atlas-sim` binary),
//! faithful to recorded Atlas traffic for programmatic API keys, and to the official spec
//! for service accounts (resource version 2024-08-05) and MongoDB Cloud users (2025-02-19).
//!
//! # What it simulates
//! - Organizations, projects, programmatic API keys (id = 24 hex, public key = 8 lowercase
//!   letters, private key = UUID) with org/project roles and access lists, and service
//!   accounts (client id `mdb_sa_id_<24 hex>`, secrets `mdb_sa_sk_...`) with org roles,
//!   project roles, up to 2 secrets and access lists; 200 service accounts per org.
//! - HTTP Digest auth exactly like Atlas (see [`digest`](self) docs): realm `MMS Public API`,
//!   expiring nonces (`stale=true`), nonce reuse with increasing `nc`, MD5 and SHA-256.
//! - OAuth 2.0 client credentials (outside `/api/atlas`): `POST /api/oauth/token` with
//!   `Authorization: Basic base64(clientId:secret)` and the form body
//!   `grant_type=client_credentials` answers `{"access_token","expires_in","token_type":"Bearer"}`
//!   (JWT-shaped opaque token, lifetime 3600 s by default, [`SimConfig::token_lifetime`]);
//!   `POST /api/oauth/revoke` (`token=...`, RFC 7009) answers 200 and the token stops working.
//!   Errors are OAuth-shaped: 401 `invalid_client` (unknown client, wrong or expired secret,
//!   no Basic credentials), 400 `invalid_request` (body not form-encoded, missing or repeated
//!   parameter, revoking another client's token), 400 `unsupported_grant_type`, 405 for
//!   other methods. Atlas-shaped: 403 `IP_ADDRESS_NOT_ON_ACCESS_LIST` (the service account's
//!   access list does not admit the caller), 429 `RATE_LIMITED` (token bucket per IP and
//!   client, off by default, see [`RateLimitConfig`]), injected faults. Deleting a secret
//!   revokes the tokens it obtained; deleting a service account revokes all of its tokens.
//! - `Authorization: Bearer <token>` on every `/api/atlas/...` endpoint, beside Digest: the
//!   caller is the service account, with the role rules of API keys and its access list
//!   enforced on every use. An unknown, expired or revoked token gets 401 with Atlas's
//!   unauthenticated body (`UNEXPECTED_ERROR`, "You are not authorized for this resource.",
//!   as for Digest) but no `WWW-Authenticate` challenge; a request without `Authorization`
//!   still gets the Digest challenge.
//! - `/api/atlas/v2/...` with `Accept: application/vnd.atlas.<date>+json` negotiation
//!   (`2023-01-01` for API keys and access lists, `2024-08-05` for service accounts; 406 for a
//!   missing or other version, 400 `INVALID_VERSION_DATE` for a malformed date) and the
//!   deprecated `/api/atlas/v1.0/...` (plain `application/json`) used by the official Go plugin.
//! - Endpoints (under both prefixes unless noted):
//!   `GET|POST /orgs/{orgId}/apiKeys`, `GET|PATCH|DELETE /orgs/{orgId}/apiKeys/{apiUserId}`,
//!   `GET|POST /orgs/{orgId}/apiKeys/{apiUserId}/accessList`,
//!   `GET|DELETE /orgs/{orgId}/apiKeys/{apiUserId}/accessList/{ip or URL-encoded CIDR}`,
//!   `GET|POST /groups/{groupId}/apiKeys`,
//!   `POST` (v2 assign, array body `[{"roles":[..]}]`, 204) `| PATCH` (assign-or-update
//!   `{"roles":[..]}`, 200; what v1.0 clients use to assign) `| DELETE /groups/{groupId}/apiKeys/{apiUserId}`,
//!   `GET /orgs/{orgId}`, `GET /groups/{groupId}`,
//!   v2 only, under `/orgs/{orgId}` and `/groups/{groupId}` alike (`S` = `.../serviceAccounts`):
//!   `GET|POST S` (201; a project SA is an `ORG_MEMBER` with roles in the project),
//!   `GET|PATCH|DELETE S/{clientId}` (project DELETE removes it from that project only),
//!   `POST S/{clientId}/secrets` (201), `DELETE S/{clientId}/secrets/{secretId}` (204),
//!   `GET|POST S/{clientId}/accessList` (the paginated list), `DELETE S/{clientId}/accessList/{ip or
//!   URL-encoded CIDR}` (204); and `GET /orgs/{orgId}/serviceAccounts/{clientId}/groups`,
//!   `POST /groups/{groupId}/serviceAccounts/{clientId}:invite` `{"roles":[..]}` (200, sets its
//!   roles in the project). Org-scoped views list org roles, project-scoped ones the project's.
//!   `secrets[].secret` appears only in the create answers; reads show `maskedSecretValue`.
//!   `secretExpiresAfterHours` must be 8..=8760; a new secret caps the others' expiry at 7 days.
//!   MongoDB Cloud users (people; v2 only, version 2025-02-19, see `users_api`):
//!   `GET /orgs/{orgId}/users` (filters `username`, `orgMembershipStatuses`),
//!   `GET /orgs/{orgId}/users/{userId}`, `POST /orgs/{orgId}/users/{userId}:addRole|:removeRole`
//!   `{"orgRole"}`, `GET|POST /groups/{groupId}/users` (`{"username","roles"}`, 201; a user who
//!   is not an organization member is invited, as the spec says: a `PENDING` user),
//!   `GET|DELETE /groups/{groupId}/users/{userId}`,
//!   `POST /groups/{groupId}/users/{userId}:addRole|:removeRole` `{"groupRole"}`; and
//!   `GET|POST /groups` (create a project: 201 as recorded from real Atlas, `GROUP_OWNER` for
//!   `projectOwnerId` or the oldest active `ORG_OWNER` user).
//!   The deprecated user and invitation endpoints these replace are answered as Atlas does
//!   after their sunset (2027-07-01): 410 `VERSION_GONE` for `PUT /groups/{groupId}/users/{userId}/roles`,
//!   `PUT /orgs/{orgId}/users/{userId}/roles`, `POST /groups/{groupId}/access`, `/users...`,
//!   `/groups/{groupId}/invites...`, `/orgs/{orgId}/invites...`, and for version 2023-01-01
//!   of the user lists and user removals.
//! - Pagination (`pageNum`, `itemsPerPage` 1..=500, `includeCount`) with `self`/`next`/`previous`
//!   links that keep the request's filters.
//! - Errors `{"detail","error","errorCode","parameters","reason"}` + `X-Error-Code`. Codes:
//!   `ORG_NOT_FOUND`, `GROUP_NOT_FOUND`, `API_KEY_NOT_FOUND`, `RESOURCE_NOT_FOUND`,
//!   `SERVICE_ACCOUNT_NOT_FOUND` (404); `PATH_PARAM_PARSE_ERROR`, `INVALID_JSON`,
//!   `INVALID_ATTRIBUTE`, `INVALID_API_KEY_DESC` (desc 1..=250 chars), `MISSING_API_KEY_ROLES`,
//!   `INVALID_ROLE_FOR_ORG`, `INVALID_ROLE_FOR_GROUP`, `INVALID_IP_ADDRESS_OR_CIDR_NOTATION`,
//!   `DUPLICATE_ADDRESSES_IN_INPUT`, `MAX_API_KEYS_PER_ORG_EXCEEDED` (500 keys/org),
//!   `MAX_SERVICE_ACCOUNTS_PER_ORG_EXCEEDED`, `MAX_SERVICE_ACCOUNT_SECRETS_EXCEEDED` (a third
//!   secret), `MAX_ACCESS_LIST_ENTRIES_EXCEEDED` (200 per SA),
//!   `USER_NOT_FOUND`, `USER_NOT_IN_GROUP` (404), `USER_ALREADY_IN_GROUP`,
//!   `USER_ALREADY_HAS_ROLE`, `USER_DOES_NOT_HAVE_ROLE` (409; 400 for organization roles),
//!   `CANNOT_REMOVE_LAST_ROLE` (400), `GROUP_ALREADY_EXISTS` (409), `VERSION_GONE` (410),
//!   `CANNOT_REMOVE_CALLER_FROM_ACCESS_LIST` (an SA removing the entry that admits its own
//!   request), `INVALID_VERSION_DATE` (400; service-account names, descriptions, roles and
//!   hours that break the spec are `INVALID_ATTRIBUTE`, wrong role names
//!   `INVALID_ROLE_FOR_ORG`/`INVALID_ROLE_FOR_GROUP`); `SERVICE_ACCOUNT_SECRET_NOT_FOUND`
//!   (404); `USER_UNAUTHORIZED` (401, authenticated but not allowed:
//!   e.g. an `ORG_MEMBER` key or SA creating keys, or a caller acting on another org);
//!   `IP_ADDRESS_NOT_ON_ACCESS_LIST` (403, the calling key or SA has an access list without
//!   the caller's IP); `NOT_ACCEPTABLE` (406); `DUPLICATE_ACCESS_LIST_ENTRY` (409);
//!   `RATE_LIMITED_TOKEN_BUCKET` (429 + `Retry-After`). Where live Atlas behaviour is
//!   unrecorded (some codes and messages) these are the simulator's documented choices.
//! - Atlas token buckets (org: 500, +250/60 s; project: 1200, +500/60 s) with
//!   `RateLimit-Limit`/`RateLimit-Remaining` headers; on by default. Org service-account
//!   routes take from the org bucket, project ones (and `:invite`) from the project bucket.
//!   The token endpoint's bucket (Atlas: 50/min per IP and client) is off by default.
//! - Reads redact `privateKey` as `********-****-****-<last 12>`; create responses show it once.
//!
//! Permissions: org reads need any org role in that org; org writes (keys, access lists,
//! service accounts, users' org roles) need `ORG_OWNER`; project reads need a role in the
//! project or `ORG_OWNER`/`ORG_READ_ONLY`; project writes (project users and their roles
//! included) need `ORG_OWNER` or `GROUP_OWNER`; creating a project `ORG_OWNER` or
//! `ORG_GROUP_CREATOR`.
//!
//! # Admin API
//! Served on the same listener under `/admin` (so `admin_url = base_url + "/admin"`),
//! unauthenticated, JSON. Admin requests are not counted in stats nor journaled.
//!
//! | method + path | body | answer |
//! |---|---|---|
//! | `GET /admin/health` | | `{"ok":true}` |
//! | `GET /admin/inventory` | | [`Inventory`]: orgs, projects, live `api_keys` (id, public_key, desc, org_id, roles, access_list, `seeded`), `service_accounts` (client_id, name, description, org_id, roles, project_roles, secrets `[{id, created_at, expires_at, last_used_at, expired}]` without values, access_list, active_tokens, `seeded` for startup/admin ones), `org_users` (one per organization membership: id, username, org_id, status, org_roles, project_roles `{"<groupId>":[..]}`, `seeded` for admin ones) |
//! | `GET /admin/stats` | | [`StatsSnapshot`]: `requests_total`, `challenges`, `stale_challenges`, `auth_failures`, `bearer_failures`, `token_failures`, `rate_limited`, `faults_fired`, `routes{"POST /api/atlas/v2/orgs/{orgId}/apiKeys":{total,challenges,by_status}, "POST /api/oauth/token":{..}}` |
//! | `POST /admin/stats/reset` | | 204 |
//! | `GET /admin/journal?since=SEQ` | | `[`[`JournalEntry`]`]` (method, path, route, public_key or client_id, request/response content type and body, status; private keys, SA secrets, access tokens and form `token`/`client_secret` values redacted, no Authorization header) |
//! | `DELETE /admin/journal` | | 204 (clear) |
//! | `PUT /admin/journal` | `{"capacity":N}` | 204 (0 disables) |
//! | `GET /admin/faults` | | `[{id, rule, matched, fired}]` |
//! | `POST /admin/faults` | [`FaultRule`] `{"method"?, "path": regex, "action": "status"\|"reset"\|"reset_after"\|"latency"\|"count", "status"?, "error_code"?, "detail"?, "retry_after"?, "latency_ms"?, "nth"?, "times"?, "skip"?, "before_auth"?}` | `{"id":N}` |
//! | `DELETE /admin/faults` / `DELETE /admin/faults/{id}` | | 204 |
//! | `GET`/`PUT /admin/latency` | `{"ms":N}` | global added latency per HTTP request (challenges included) |
//! | `GET`/`PUT /admin/ratelimit` | `{"enabled"?, "org"?: {capacity, refill, period_ms}, "project"?: {...}, "token_enabled"?, "token"?: {...}}` | the new [`RateLimitConfig`] (buckets refilled) |
//! | `POST /admin/ratelimit/reset` | | 204 (refill all buckets) |
//! | `GET`/`PUT /admin/auth` | `{"nonce_lifetime_ms":N}` | nonce lifetime |
//! | `GET`/`PUT /admin/oauth` | `{"token_lifetime_ms":N}` | lifetime of access tokens issued from now on |
//! | `POST /admin/orgs` | `{"id"?, "name"?}` | the org |
//! | `POST /admin/projects` | `{"id"?, "org_id"?, "name"?}` | the project |
//! | `POST /admin/keys` | [`NewKeyRequest`] `{"org_id"?, "desc"?, "org_roles":[..], "project_roles":{"<groupId>":[..]}, "id"?, "public_key"?, "private_key"?}` | [`CreatedKey`] incl. private key |
//! | `DELETE /admin/keys/{id}` | | 204 (out-of-band deletion) |
//! | `POST /admin/service_accounts` | [`NewServiceAccountRequest`] `{"org_id"?, "name"?, "description"?, "org_roles":[..], "project_roles":{"<groupId>":[..]}, "secret_expires_after_hours"? (default 8760, 0 = already expired), "client_id"?, "client_secret"?}` | [`CreatedServiceAccount`] incl. `client_secret` |
//! | `DELETE /admin/service_accounts/{clientId}` | | 204 (out-of-band deletion everywhere, tokens revoked) |
//! | `POST /admin/org_users` | [`NewOrgUserRequest`] `{"username", "org_id"?, "org_roles"? (default `["ORG_MEMBER"]`), "project_roles"?: {"<groupId>":[..]}, "status"? (default `ACTIVE`), "id"?, "first_name"?, "last_name"?}` | [`InventoryOrgUser`]: an organization member as an accepted invitation leaves them (an open invitation of that username is accepted) |
//! | `DELETE /admin/org_users/{userId}` | | 204 (the user's account deleted: every membership) |
//!
//! # In-process use
//! [`Simulator::start`] serves on the current tokio runtime (use a multi-thread runtime if
//! the test blocks); [`Simulator::start_background`] runs it on its own thread and runtime
//! for synchronous tests. Both give a [`SimHandle`] (public fields `base_url`, `admin_url`,
//! `org_id`, `project_id`, `key_id`, `public_key`, `private_key`, `sa_client_id`,
//! `sa_client_secret` (the seeded ORG_OWNER service account), `proxy_url`, `ca_pem`,
//! `ca_path`, `tls`) with the admin operations as methods.
//! ```no_run
//! # async fn demo() -> Result<(), atlas_sim::SimError> {
//! use atlas_sim::{FaultRule, SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! // sim.base_url, sim.org_id, sim.project_id, sim.public_key, sim.private_key ...
//! sim.add_fault(FaultRule::status(Some("POST"), "/apiKeys$", 503).nth(1)).expect("valid rule");
//! let stats = sim.stats();
//! let leaked: Vec<_> = sim.inventory().issued_keys().cloned().collect();
//! sim.shutdown().await;
//! # let _ = (stats, leaked); Ok(()) }
//! ```

mod admin;
mod atlas_api;
pub mod cli;
mod config;
pub mod digest;
mod error;
mod faults;
mod ids;
mod journal;
mod oauth;
mod org_users;
mod proxy;
mod ratelimit;
mod router;
mod sa_api;
mod server;
mod stats;
mod store;
mod tls;
mod users_api;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use admin::{
    CreatedKey, CreatedServiceAccount, NewKeyRequest, NewOrgUserRequest, NewServiceAccountRequest,
};
pub use config::{FileConfig, SeedKey, SimConfig, StartupInfo};
pub use error::{ApiError, SimError};
pub use faults::{FaultAction, FaultRule, FaultStatus};
pub use journal::JournalEntry;
pub use org_users::MembershipStatus;
pub use ratelimit::{BucketConfig, RateLimitConfig};
pub use stats::{RouteStats, StatsSnapshot};
pub use store::{
    Inventory, InventoryKey, InventoryOrgUser, InventorySecret, InventoryServiceAccount, Org,
    Project, RoleAssignment,
};

use digest::NonceStore;
use faults::Faults;
use journal::Journal;
use ratelimit::RateLimiter;
use server::Shared;
use stats::Stats;
use store::{NewKey, NewServiceAccount, Store};

/// Starts simulators.
pub struct Simulator;

/// A running simulator. Dropping it stops the listeners; [`SimHandle::shutdown`] also waits.
pub struct SimHandle {
    pub base_url: String,
    pub admin_url: String,
    pub org_id: String,
    pub project_id: String,
    /// Seeded ORG_OWNER key.
    pub key_id: String,
    pub public_key: String,
    pub private_key: String,
    /// Seeded ORG_OWNER service account: OAuth client id and secret.
    pub sa_client_id: String,
    pub sa_client_secret: String,
    pub proxy_url: Option<String>,
    /// The CA that signed the server certificate (TLS or proxy mode).
    pub ca_pem: Option<String>,
    pub ca_path: Option<std::path::PathBuf>,
    pub tls: bool,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn config_err(msg: impl Into<String>) -> SimError {
    SimError::Config(msg.into())
}

fn check_opt(value: Option<&String>, what: &str, valid: fn(&str) -> bool) -> Result<(), SimError> {
    match value {
        Some(v) if !valid(v) => Err(config_err(format!("{what} {v:?} has the wrong format"))),
        _ => Ok(()),
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })
}

fn url_host(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        SocketAddr::V6(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        a => a.to_string(),
    }
}

/// What [`seed`] creates: the store and the seeded ids and credentials.
struct Seeded {
    store: Store,
    org_id: String,
    project_id: String,
    root: store::ApiKey,
    sa_client_id: String,
    sa_client_secret: String,
}

fn seed(cfg: &SimConfig) -> Result<Seeded, SimError> {
    check_opt(cfg.org_id.as_ref(), "org id", ids::is_object_id)?;
    check_opt(cfg.project_id.as_ref(), "project id", ids::is_object_id)?;
    check_opt(cfg.key_id.as_ref(), "key id", ids::is_object_id)?;
    check_opt(cfg.public_key.as_ref(), "public key", ids::is_public_key)?;
    check_opt(cfg.private_key.as_ref(), "private key", ids::is_private_key)?;
    check_opt(
        cfg.sa_client_id.as_ref(),
        "service account client id",
        ids::is_service_account_client_id,
    )?;
    if cfg
        .sa_client_secret
        .as_ref()
        .is_some_and(|s| !ids::is_service_account_secret(s))
    {
        return Err(config_err(
            "service account secret has the wrong format (mdb_sa_sk_<letters and digits>)",
        ));
    }
    if cfg.max_keys_per_org == 0 {
        return Err(config_err("max_keys_per_org must be at least 1"));
    }
    if cfg.max_service_accounts_per_org == 0 {
        return Err(config_err(
            "max_service_accounts_per_org must be at least 1",
        ));
    }
    let mut store = Store::new(cfg.max_keys_per_org);
    store.max_service_accounts_per_org = cfg.max_service_accounts_per_org;
    let org = store
        .create_org(cfg.org_id.clone(), cfg.org_name.clone())
        .map_err(config_err)?;
    let project = store
        .create_project(cfg.project_id.clone(), &org.id, cfg.project_name.clone())
        .map_err(config_err)?;
    let root = store
        .create_key(
            &org.id,
            NewKey {
                id: cfg.key_id.clone(),
                public_key: cfg.public_key.clone(),
                private_key: cfg.private_key.clone(),
                desc: cfg.key_desc.clone(),
                roles: vec![RoleAssignment::org(&org.id, "ORG_OWNER")],
                seeded: true,
            },
        )
        .map_err(|e| config_err(e.detail))?;
    let root_sa = store
        .create_service_account(
            &org.id,
            NewServiceAccount {
                client_id: cfg.sa_client_id.clone(),
                secret: cfg.sa_client_secret.clone(),
                name: cfg.sa_name.clone(),
                description: "atlas-sim seeded organization owner".into(),
                org_roles: vec!["ORG_OWNER".into()],
                secret_hours: 8760,
                seeded: true,
                ..NewServiceAccount::default()
            },
        )
        .map_err(|e| config_err(e.detail))?;
    let sa_client_secret = root_sa
        .secrets
        .first()
        .map(|s| s.secret.clone())
        .unwrap_or_default();
    for extra in &cfg.extra_keys {
        check_opt(extra.id.as_ref(), "extra key id", ids::is_object_id)?;
        check_opt(
            extra.public_key.as_ref(),
            "extra public key",
            ids::is_public_key,
        )?;
        check_opt(
            extra.private_key.as_ref(),
            "extra private key",
            ids::is_private_key,
        )?;
        let mut roles: Vec<RoleAssignment> = extra
            .org_roles
            .iter()
            .map(|r| RoleAssignment::org(&org.id, r))
            .collect();
        roles.extend(
            extra
                .project_roles
                .iter()
                .map(|r| RoleAssignment::group(&project.id, r)),
        );
        store
            .create_key(
                &org.id,
                NewKey {
                    id: extra.id.clone(),
                    public_key: extra.public_key.clone(),
                    private_key: extra.private_key.clone(),
                    desc: extra.desc.clone(),
                    roles,
                    seeded: false,
                },
            )
            .map_err(|e| config_err(e.detail))?;
    }
    Ok(Seeded {
        store,
        org_id: org.id,
        project_id: project.id,
        root,
        sa_client_id: root_sa.client_id,
        sa_client_secret,
    })
}

impl Simulator {
    /// Seeds the state, binds the listener(s) and serves in background tasks of the current
    /// tokio runtime.
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        let Seeded {
            store,
            org_id,
            project_id,
            root,
            sa_client_id,
            sa_client_secret,
        } = seed(&cfg)?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            nonces: NonceStore::new(cfg.nonce_lifetime),
            limits: RateLimiter::new(cfg.rate_limit),
            faults: Faults::default(),
            stats: Stats::default(),
            journal: Journal::new(cfg.journal_capacity),
            latency_ms: AtomicU64::new(u64::try_from(cfg.latency.as_millis()).unwrap_or(u64::MAX)),
            token_lifetime_ms: AtomicU64::new(
                u64::try_from(cfg.token_lifetime.as_millis()).unwrap_or(u64::MAX),
            ),
            seeded_org: org_id.clone(),
        });

        let material = if cfg.tls || cfg.proxy {
            Some(tls::generate()?)
        } else {
            None
        };
        if let (Some(m), Some(path)) = (&material, &cfg.ca_path) {
            std::fs::write(path, &m.ca_pem)?;
        }
        let acceptor = material
            .as_ref()
            .map(|m| tokio_rustls::TlsAcceptor::from(m.server_config.clone()));

        let (shutdown, stop) = watch::channel(false);
        let listener = bind(cfg.listen).await?;
        let local = listener.local_addr()?;
        let scheme = if cfg.tls { "https" } else { "http" };
        let base_url = format!("{scheme}://{}", url_host(local));
        let mut tasks = Vec::new();
        let main_tls = if cfg.tls { acceptor.clone() } else { None };
        tasks.push(tokio::spawn(server::accept_loop(
            listener,
            shared.clone(),
            main_tls,
            stop.clone(),
        )));

        let mut proxy_url = None;
        if cfg.proxy {
            if let Some(acceptor) = acceptor {
                let proxy_listener = bind(cfg.proxy_listen).await?;
                proxy_url = Some(format!("http://{}", url_host(proxy_listener.local_addr()?)));
                tasks.push(tokio::spawn(proxy::accept_loop(
                    proxy_listener,
                    shared.clone(),
                    acceptor,
                    stop.clone(),
                )));
            }
        }
        tracing::info!(%base_url, proxy = ?proxy_url, "atlas-sim listening");
        Ok(SimHandle {
            admin_url: format!("{base_url}/admin"),
            base_url,
            org_id,
            project_id,
            key_id: root.id,
            public_key: root.public_key,
            private_key: root.private_key,
            sa_client_id,
            sa_client_secret,
            proxy_url,
            ca_pem: material.map(|m| m.ca_pem),
            ca_path: cfg.ca_path.clone(),
            tls: cfg.tls,
            shared,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }
}

/// A simulator on its own thread and runtime, for synchronous tests (or async tests on a
/// current-thread runtime that block). Derefs to [`SimHandle`]; dropping it shuts the
/// simulator down and joins the thread.
pub struct BackgroundSim {
    handle: Option<SimHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for BackgroundSim {
    type Target = SimHandle;

    fn deref(&self) -> &SimHandle {
        self.handle
            .as_ref()
            .unwrap_or_else(|| unreachable!("handle is only taken in drop"))
    }
}

impl Drop for BackgroundSim {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.shutdown.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Simulator {
    /// Starts a simulator on a dedicated thread with a two-worker tokio runtime; works
    /// without (or outside) any runtime.
    pub fn start_background(cfg: SimConfig) -> Result<BackgroundSim, SimError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("atlas-sim".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(SimError::Io(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Simulator::start(cfg).await {
                        Ok(handle) => {
                            let mut stop = handle.shutdown.subscribe();
                            let tasks = handle.take_tasks();
                            if tx.send(Ok(handle)).is_ok() {
                                server::stopped(&mut stop).await;
                            }
                            for task in tasks {
                                let _ = task.await;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        match rx.recv() {
            Ok(Ok(handle)) => Ok(BackgroundSim {
                handle: Some(handle),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(SimError::Config(
                    "simulator thread exited during start".into(),
                ))
            }
        }
    }
}

impl SimHandle {
    fn take_tasks(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The startup line's content (what the binary prints).
    pub fn startup_info(&self) -> StartupInfo {
        StartupInfo {
            base_url: self.base_url.clone(),
            admin_url: self.admin_url.clone(),
            org_id: self.org_id.clone(),
            project_id: self.project_id.clone(),
            public_key: self.public_key.clone(),
            private_key: self.private_key.clone(),
            key_id: self.key_id.clone(),
            sa_client_id: self.sa_client_id.clone(),
            sa_client_secret: self.sa_client_secret.clone(),
            tls: self.tls,
            proxy_url: self.proxy_url.clone(),
            ca_path: self.ca_path.clone(),
        }
    }

    pub fn inventory(&self) -> Inventory {
        self.shared
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .inventory()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Journal entries with `seq > since` (0 for all kept entries).
    pub fn journal(&self, since: u64) -> Vec<JournalEntry> {
        self.shared.journal.entries(since)
    }

    /// Writes the journal (all kept entries) as a JSON array, e.g. for the OpenAPI
    /// conformance check: `ATLAS_SIM_JOURNAL=<path> go test ./...` in `tests/openapi`.
    pub fn write_journal(&self, path: &std::path::Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.journal(0)).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }

    pub fn clear_journal(&self) {
        self.shared.journal.clear();
    }

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> Result<u64, String> {
        self.shared.faults.add(rule)
    }

    pub fn remove_fault(&self, id: u64) -> bool {
        self.shared.faults.remove(id)
    }

    pub fn faults(&self) -> Vec<FaultStatus> {
        self.shared.faults.list()
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Latency added to every HTTP request (digest challenges included).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.set_latency(latency);
    }

    pub fn rate_limits(&self) -> RateLimitConfig {
        self.shared.limits.config()
    }

    /// Replaces the rate-limit configuration and refills all buckets.
    pub fn set_rate_limits(&self, config: RateLimitConfig) {
        self.shared.limits.set_config(config);
    }

    pub fn set_nonce_lifetime(&self, lifetime: Duration) {
        self.shared.nonces.set_lifetime(lifetime);
    }

    /// Creates a key directly (no Atlas API call, not counted in stats).
    pub fn create_key(&self, req: NewKeyRequest) -> Result<CreatedKey, String> {
        self.shared.create_key(req)
    }

    /// Deletes a key out of band; false if it does not exist.
    pub fn delete_key(&self, key_id: &str) -> bool {
        self.shared.delete_key(key_id)
    }

    /// Creates a service account directly (no Atlas API call, not counted in stats); it is
    /// `seeded` in the inventory. The answer holds its client secret.
    pub fn create_service_account(
        &self,
        req: NewServiceAccountRequest,
    ) -> Result<CreatedServiceAccount, String> {
        self.shared.create_service_account(req)
    }

    /// Deletes a service account everywhere (revoking its tokens) out of band; false if it
    /// does not exist.
    pub fn delete_service_account(&self, client_id: &str) -> bool {
        self.shared.delete_service_account(client_id)
    }

    /// Adds an organization member (a MongoDB Cloud user, a person) directly, as an accepted
    /// invitation leaves them: `ACTIVE` unless the request says otherwise, `ORG_MEMBER` unless
    /// it names organization roles. An open invitation of the same username is accepted.
    pub fn add_org_user(&self, req: NewOrgUserRequest) -> Result<InventoryOrgUser, String> {
        self.shared.add_org_user(req)
    }

    /// Deletes a MongoDB Cloud user's account (every membership) out of band; false if unknown.
    pub fn remove_org_user(&self, user_id: &str) -> bool {
        self.shared.remove_org_user(user_id)
    }

    /// Lifetime of OAuth access tokens issued from now on.
    pub fn token_lifetime(&self) -> Duration {
        self.shared.token_lifetime()
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.set_token_lifetime(lifetime);
    }

    pub fn create_org(&self, id: Option<String>, name: Option<String>) -> Result<Org, String> {
        self.shared.create_org(id, name)
    }

    /// Creates a project in `org_id` (default: the seeded org).
    pub fn create_project(
        &self,
        id: Option<String>,
        org_id: Option<String>,
        name: Option<String>,
    ) -> Result<Project, String> {
        self.shared.create_project(id, org_id, name)
    }

    /// Stops accepting, lets in-flight requests finish (bounded), and waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.take_tasks() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
