//! The admin API under `/admin` (no authentication; JSON in and out): inventory, stats,
//! journal, faults, latency, rate limits, nonce and token lifetimes, and direct seeding of
//! orgs, projects, keys, service accounts and organization members (people). [`super::SimHandle`] exposes the same operations in process.
//! The endpoint list is in the module docs of [`crate`].

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::faults::FaultRule;
use super::org_users::{InventoryOrgUser, MembershipStatus, NewOrgUser};
use super::ratelimit::{BucketConfig, RateLimitConfig};
use super::server::{response, Body, Shared};
use super::store::{NewKey, NewServiceAccount, Org, Project, RoleAssignment};

/// Body of `POST /admin/keys`: creates a key directly, bypassing the Atlas API (no role-name
/// validation, so tests can also create odd keys). The org defaults to the seeded one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub desc: Option<String>,
    #[serde(default)]
    pub org_roles: Vec<String>,
    /// Project id -> roles in that project.
    #[serde(default)]
    pub project_roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub private_key: Option<String>,
}

/// A key created through the admin API, private key included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    pub id: String,
    pub org_id: String,
    pub public_key: String,
    pub private_key: String,
    pub roles: Vec<RoleAssignment>,
}

/// Body of `POST /admin/service_accounts`: creates a service account directly, bypassing the
/// Atlas API (no role-name validation). The org defaults to the seeded one. It is reported
/// with `seeded: true` in the inventory (it is test setup, not something a client created).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewServiceAccountRequest {
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub org_roles: Vec<String>,
    /// Project id -> roles in that project.
    #[serde(default)]
    pub project_roles: BTreeMap<String, Vec<String>>,
    /// Lifetime of the secret in hours (default 8760); 0 creates an already expired secret.
    #[serde(default)]
    pub secret_expires_after_hours: Option<u32>,
    /// Explicit `mdb_sa_id_<24 hex>` (random when absent).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Explicit `mdb_sa_sk_<letters and digits>` (random when absent).
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// A service account created through the admin API, its secret included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedServiceAccount {
    pub client_id: String,
    pub client_secret: String,
    pub secret_id: String,
    pub secret_expires_at: String,
    pub org_id: String,
    pub name: String,
    pub description: String,
    pub org_roles: Vec<String>,
    pub project_roles: BTreeMap<String, Vec<String>>,
}

/// Body of `POST /admin/org_users`: adds an organization member directly, as an accepted
/// invitation leaves them (no role-name validation). The org defaults to the seeded one; the
/// status to `ACTIVE`; the organization roles to `["ORG_MEMBER"]`. A username already known
/// (in another organization) keeps its user id; an open invitation (`PENDING`) of the same
/// username in the organization is accepted (it keeps its project roles). It is reported
/// with `seeded: true` in the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrgUserRequest {
    /// The user's email address.
    pub username: String,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub org_roles: Vec<String>,
    /// Project id -> roles in that project.
    #[serde(default)]
    pub project_roles: BTreeMap<String, Vec<String>>,
    /// `ACTIVE` (default), `PENDING`, `INVITATION_EXPIRED` or `INVITATION_REJECTED`.
    #[serde(default)]
    pub status: Option<MembershipStatus>,
    /// Explicit 24-hex user id (random when absent).
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProject {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    org_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyBody {
    ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthBody {
    nonce_lifetime_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OAuthBody {
    token_lifetime_ms: u64,
}

/// Partial rate-limit update: absent fields keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitPatch {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    org: Option<BucketConfig>,
    #[serde(default)]
    project: Option<BucketConfig>,
    #[serde(default)]
    token_enabled: Option<bool>,
    #[serde(default)]
    token: Option<BucketConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalBody {
    capacity: usize,
}

impl Shared {
    pub fn create_key(&self, req: NewKeyRequest) -> Result<CreatedKey, String> {
        let org_id = req.org_id.unwrap_or_else(|| self.seeded_org.clone());
        let mut store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut roles: Vec<RoleAssignment> = req
            .org_roles
            .iter()
            .map(|r| RoleAssignment::org(&org_id, r))
            .collect();
        for (group, group_roles) in &req.project_roles {
            let project = store.project(group).map_err(|e| e.detail)?;
            if project.org_id != org_id {
                return Err(format!("project {group} is not in org {org_id}"));
            }
            roles.extend(group_roles.iter().map(|r| RoleAssignment::group(group, r)));
        }
        if let Some(pk) = &req.public_key {
            if !super::ids::is_public_key(pk) {
                return Err(format!("public key {pk:?} is not 8 lowercase letters"));
            }
        }
        if let Some(id) = &req.id {
            if !super::ids::is_object_id(id) {
                return Err(format!("key id {id:?} is not 24 lowercase hex digits"));
            }
        }
        let new = NewKey {
            id: req.id,
            public_key: req.public_key,
            private_key: req.private_key,
            desc: req
                .desc
                .unwrap_or_else(|| "created by atlas-sim admin".into()),
            roles,
            seeded: false,
        };
        let key = store.create_key(&org_id, new).map_err(|e| e.detail)?;
        Ok(CreatedKey {
            id: key.id,
            org_id: key.org_id,
            public_key: key.public_key,
            private_key: key.private_key,
            roles: key.roles,
        })
    }

    /// Deletes any key (an out-of-band deletion, as if done in the Atlas UI).
    pub fn delete_key(&self, key_id: &str) -> bool {
        let mut store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(org) = store.key_by_id(key_id).map(|k| k.org_id.clone()) else {
            return false;
        };
        store.delete_key(&org, key_id).is_ok()
    }

    pub fn create_service_account(
        &self,
        req: NewServiceAccountRequest,
    ) -> Result<CreatedServiceAccount, String> {
        let org_id = req.org_id.unwrap_or_else(|| self.seeded_org.clone());
        if let Some(id) = &req.client_id {
            if !super::ids::is_service_account_client_id(id) {
                return Err(format!("client id {id:?} is not mdb_sa_id_<24 hex>"));
            }
        }
        if let Some(secret) = &req.client_secret {
            if !super::ids::is_service_account_secret(secret) {
                return Err("client secret is not mdb_sa_sk_<letters and digits>".into());
            }
        }
        let new = NewServiceAccount {
            client_id: req.client_id,
            secret: req.client_secret,
            name: req
                .name
                .unwrap_or_else(|| "atlas-sim admin service account".into()),
            description: req
                .description
                .unwrap_or_else(|| "created by atlas-sim admin".into()),
            org_roles: req.org_roles,
            project_roles: req.project_roles,
            secret_hours: req.secret_expires_after_hours.unwrap_or(8760),
            seeded: true,
        };
        let sa = self
            .lock_store()
            .create_service_account(&org_id, new)
            .map_err(|e| e.detail)?;
        let secret = sa
            .secrets
            .first()
            .ok_or("service account created without a secret")?;
        Ok(CreatedServiceAccount {
            client_secret: secret.secret.clone(),
            secret_id: secret.id.clone(),
            secret_expires_at: super::store::format_time(secret.expires_at),
            client_id: sa.client_id,
            org_id: sa.org_id,
            name: sa.name,
            description: sa.description,
            org_roles: sa.roles,
            project_roles: sa.project_roles,
        })
    }

    /// Deletes any service account everywhere, revoking its tokens (out of band).
    pub fn delete_service_account(&self, client_id: &str) -> bool {
        let mut store = self.lock_store();
        let Some(org) = store
            .service_account_by_id(client_id)
            .map(|sa| sa.org_id.clone())
        else {
            return false;
        };
        store.delete_service_account(&org, client_id).is_ok()
    }

    pub fn add_org_user(&self, req: NewOrgUserRequest) -> Result<InventoryOrgUser, String> {
        let org_id = req.org_id.unwrap_or_else(|| self.seeded_org.clone());
        self.lock_store().add_org_member(
            &org_id,
            NewOrgUser {
                id: req.id,
                username: req.username,
                first_name: req.first_name,
                last_name: req.last_name,
                org_roles: req.org_roles,
                project_roles: req.project_roles,
                status: req.status,
            },
        )
    }

    /// Deletes a user's account (every membership), out of band.
    pub fn remove_org_user(&self, user_id: &str) -> bool {
        self.lock_store().remove_user(user_id)
    }

    pub fn create_org(&self, id: Option<String>, name: Option<String>) -> Result<Org, String> {
        let mut store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        store.create_org(id, name.unwrap_or_else(|| "atlas-sim-org".into()))
    }

    pub fn create_project(
        &self,
        id: Option<String>,
        org_id: Option<String>,
        name: Option<String>,
    ) -> Result<Project, String> {
        let org_id = org_id.unwrap_or_else(|| self.seeded_org.clone());
        let mut store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        store.create_project(
            id,
            &org_id,
            name.unwrap_or_else(|| "atlas-sim-project".into()),
        )
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms.store(
            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }
}

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    response(
        status,
        Some("application/json"),
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

fn bad_request(msg: impl std::fmt::Display) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": msg.to_string() }),
    )
}

fn no_content() -> Response<Body> {
    response(StatusCode::NO_CONTENT, None, Vec::new())
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

macro_rules! body {
    ($body:expr) => {
        match parse($body) {
            Ok(v) => v,
            Err(msg) => return bad_request(msg),
        }
    };
}

pub fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &Bytes,
) -> Response<Body> {
    let sub = path.trim_start_matches("/admin").trim_end_matches('/');
    match (method.as_str(), sub) {
        ("GET", "" | "/health") => json_response(StatusCode::OK, &json!({ "ok": true })),
        ("GET", "/inventory") => {
            let inventory = shared
                .store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .inventory();
            json_response(StatusCode::OK, &inventory)
        }
        ("GET", "/stats") => json_response(StatusCode::OK, &shared.stats.snapshot()),
        ("POST", "/stats/reset") => {
            shared.stats.reset();
            no_content()
        }
        ("GET", "/journal") => {
            let since = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .find(|(k, _)| k == "since")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            json_response(StatusCode::OK, &shared.journal.entries(since))
        }
        ("DELETE", "/journal") => {
            shared.journal.clear();
            no_content()
        }
        ("PUT", "/journal") => {
            let b: JournalBody = body!(body);
            shared.journal.set_capacity(b.capacity);
            no_content()
        }
        ("GET", "/faults") => json_response(StatusCode::OK, &shared.faults.list()),
        ("POST", "/faults") => {
            let rule: FaultRule = body!(body);
            match shared.faults.add(rule) {
                Ok(id) => json_response(StatusCode::OK, &json!({ "id": id })),
                Err(e) => bad_request(e),
            }
        }
        ("DELETE", "/faults") => {
            shared.faults.clear();
            no_content()
        }
        ("DELETE", s) if s.starts_with("/faults/") => match s["/faults/".len()..].parse::<u64>() {
            Ok(id) if shared.faults.remove(id) => no_content(),
            Ok(_) => json_response(StatusCode::NOT_FOUND, &json!({ "error": "no such fault" })),
            Err(_) => bad_request("fault id must be a number"),
        },
        ("GET", "/latency") => json_response(
            StatusCode::OK,
            &json!({ "ms": shared.latency().as_millis() }),
        ),
        ("PUT" | "POST", "/latency") => {
            let b: LatencyBody = body!(body);
            shared.set_latency(Duration::from_millis(b.ms));
            json_response(StatusCode::OK, &json!({ "ms": b.ms }))
        }
        ("GET", "/ratelimit") => json_response(StatusCode::OK, &shared.limits.config()),
        ("PUT" | "POST", "/ratelimit") => {
            let patch: RateLimitPatch = body!(body);
            let mut config: RateLimitConfig = shared.limits.config();
            if let Some(enabled) = patch.enabled {
                config.enabled = enabled;
            }
            if let Some(org) = patch.org {
                config.org = org;
            }
            if let Some(project) = patch.project {
                config.project = project;
            }
            if let Some(token_enabled) = patch.token_enabled {
                config.token_enabled = token_enabled;
            }
            if let Some(token) = patch.token {
                config.token = token;
            }
            shared.limits.set_config(config);
            json_response(StatusCode::OK, &config)
        }
        ("POST", "/ratelimit/reset") => {
            shared.limits.reset();
            no_content()
        }
        ("GET", "/auth") => json_response(
            StatusCode::OK,
            &json!({ "nonce_lifetime_ms": shared.nonces.lifetime().as_millis() }),
        ),
        ("PUT" | "POST", "/auth") => {
            let b: AuthBody = body!(body);
            shared
                .nonces
                .set_lifetime(Duration::from_millis(b.nonce_lifetime_ms));
            json_response(
                StatusCode::OK,
                &json!({ "nonce_lifetime_ms": b.nonce_lifetime_ms }),
            )
        }
        ("GET", "/oauth") => json_response(
            StatusCode::OK,
            &json!({ "token_lifetime_ms": shared.token_lifetime().as_millis() }),
        ),
        ("PUT" | "POST", "/oauth") => {
            let b: OAuthBody = body!(body);
            shared.set_token_lifetime(Duration::from_millis(b.token_lifetime_ms));
            json_response(
                StatusCode::OK,
                &json!({ "token_lifetime_ms": b.token_lifetime_ms }),
            )
        }
        ("POST", "/service_accounts") => {
            let b: NewServiceAccountRequest = body!(body);
            match shared.create_service_account(b) {
                Ok(sa) => json_response(StatusCode::OK, &sa),
                Err(e) => bad_request(e),
            }
        }
        ("DELETE", s) if s.starts_with("/service_accounts/") => {
            if shared.delete_service_account(&s["/service_accounts/".len()..]) {
                no_content()
            } else {
                json_response(
                    StatusCode::NOT_FOUND,
                    &json!({ "error": "no such service account" }),
                )
            }
        }
        ("POST", "/org_users") => {
            let b: NewOrgUserRequest = body!(body);
            match shared.add_org_user(b) {
                Ok(user) => json_response(StatusCode::OK, &user),
                Err(e) => bad_request(e),
            }
        }
        ("DELETE", s) if s.starts_with("/org_users/") => {
            if shared.remove_org_user(&s["/org_users/".len()..]) {
                no_content()
            } else {
                json_response(StatusCode::NOT_FOUND, &json!({ "error": "no such user" }))
            }
        }
        ("POST", "/orgs") => {
            let b: NewOrg = body!(body);
            match shared.create_org(b.id, b.name) {
                Ok(org) => json_response(StatusCode::OK, &org),
                Err(e) => bad_request(e),
            }
        }
        ("POST", "/projects") => {
            let b: NewProject = body!(body);
            match shared.create_project(b.id, b.org_id, b.name) {
                Ok(project) => json_response(StatusCode::OK, &project),
                Err(e) => bad_request(e),
            }
        }
        ("POST", "/keys") => {
            let b: NewKeyRequest = body!(body);
            match shared.create_key(b) {
                Ok(key) => json_response(StatusCode::OK, &key),
                Err(e) => bad_request(e),
            }
        }
        ("DELETE", s) if s.starts_with("/keys/") => {
            if shared.delete_key(&s["/keys/".len()..]) {
                no_content()
            } else {
                json_response(StatusCode::NOT_FOUND, &json!({ "error": "no such key" }))
            }
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": format!("no admin endpoint {method} {path}") }),
        ),
    }
}
