//! The simulator's in-memory Atlas state: organizations, projects, programmatic API keys with
//! their roles and access lists, service accounts (org and project roles, secrets, access
//! lists) and the OAuth access tokens issued to them.
//!
//! Methods here apply changes and report Atlas errors for missing resources; request
//! validation and permission checks live in [`super::atlas_api`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::ApiError;
use super::ids;
pub use super::org_users::InventoryOrgUser;
use http::StatusCode;

/// One role held by an API key, either in an organization or in a project (group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    pub role_name: String,
}

impl RoleAssignment {
    pub fn org(org_id: &str, role: &str) -> Self {
        Self {
            group_id: None,
            org_id: Some(org_id.to_owned()),
            role_name: role.to_owned(),
        }
    }

    pub fn group(group_id: &str, role: &str) -> Self {
        Self {
            group_id: Some(group_id.to_owned()),
            org_id: None,
            role_name: role.to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AccessEntry {
    pub net: IpNet,
    pub created: OffsetDateTime,
    /// Requests from an address in this entry (tracked for service accounts).
    pub request_count: u64,
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_address: Option<IpAddr>,
}

impl AccessEntry {
    pub fn new(net: IpNet, created: OffsetDateTime) -> Self {
        Self {
            net,
            created,
            request_count: 0,
            last_used_at: None,
            last_used_address: None,
        }
    }

    /// The `ipAddress` Atlas reports: only for single-host entries.
    pub fn ip_address(&self) -> Option<String> {
        (self.net.prefix_len() == self.net.max_prefix_len()).then(|| self.net.addr().to_string())
    }

    pub fn cidr_block(&self) -> String {
        self.net.to_string()
    }

    /// The entry as it appears in a URL path (CIDR slash encoded as `%2F`).
    pub fn path_segment(&self) -> String {
        match self.ip_address() {
            Some(ip) => ip,
            None => format!("{}%2F{}", self.net.addr(), self.net.prefix_len()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub org_id: String,
    pub desc: String,
    pub public_key: String,
    pub private_key: String,
    pub roles: Vec<RoleAssignment>,
    pub access_list: Vec<AccessEntry>,
    /// The key the simulator was started with (the "root" Org Owner key).
    pub seeded: bool,
    pub created: OffsetDateTime,
}

impl ApiKey {
    pub fn org_roles(&self) -> impl Iterator<Item = &str> {
        self.roles
            .iter()
            .filter(|r| r.org_id.is_some())
            .map(|r| r.role_name.as_str())
    }

    pub fn group_roles<'a>(&'a self, group_id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.roles
            .iter()
            .filter(move |r| r.group_id.as_deref() == Some(group_id))
            .map(|r| r.role_name.as_str())
    }

    pub fn has_org_role(&self, role: &str) -> bool {
        self.org_roles().any(|r| r == role)
    }

    pub fn in_group(&self, group_id: &str) -> bool {
        self.roles
            .iter()
            .any(|r| r.group_id.as_deref() == Some(group_id))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[serde(skip)]
    pub created: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct ServiceAccountSecret {
    pub id: String,
    pub secret: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Last time the secret obtained an access token.
    pub last_used_at: Option<OffsetDateTime>,
}

impl ServiceAccountSecret {
    pub fn expired(&self, at: OffsetDateTime) -> bool {
        at >= self.expires_at
    }
}

#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub client_id: String,
    pub org_id: String,
    pub name: String,
    pub description: String,
    /// Organization roles.
    pub roles: Vec<String>,
    /// Project id -> roles in that project.
    pub project_roles: BTreeMap<String, Vec<String>>,
    pub created_at: OffsetDateTime,
    pub secrets: Vec<ServiceAccountSecret>,
    pub access_list: Vec<AccessEntry>,
    /// Created at startup or through the admin API (not through the Atlas API).
    pub seeded: bool,
}

impl ServiceAccount {
    pub fn has_org_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn in_group(&self, group_id: &str) -> bool {
        self.project_roles.contains_key(group_id)
    }

    pub fn group_roles(&self, group_id: &str) -> &[String] {
        self.project_roles
            .get(group_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// What a fresh service account may be given explicitly (ids are generated when absent).
#[derive(Debug, Clone, Default)]
pub struct NewServiceAccount {
    pub client_id: Option<String>,
    pub secret: Option<String>,
    pub name: String,
    pub description: String,
    pub org_roles: Vec<String>,
    pub project_roles: BTreeMap<String, Vec<String>>,
    /// Lifetime of the first secret; 0 gives an already expired secret (admin only).
    pub secret_hours: u32,
    pub seeded: bool,
}

/// Changes to a service account; `None` keeps the value. `roles` are organization roles
/// for an org-scoped update and the project's roles for a project-scoped one.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccountUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub roles: Option<Vec<String>>,
}

/// An OAuth access token: opaque to the store, looked up by its string.
#[derive(Debug, Clone)]
struct AccessToken {
    client_id: String,
    secret_id: String,
    expires: Instant,
}

/// A freshly issued access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub access_token: String,
    /// Lifetime in whole seconds, rounded up (`expires_in`).
    pub expires_in: u64,
}

/// Why a client could not authenticate at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthError {
    /// Unknown client, wrong secret, or only expired secrets match.
    InvalidClient,
}

/// Why a revocation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeError {
    /// The token belongs to another client.
    NotIssuedToClient,
}

/// Secrets a service account may hold at once.
pub const MAX_SECRETS_PER_SERVICE_ACCOUNT: usize = 2;
/// Access-list entries a service account may hold.
pub const MAX_SERVICE_ACCOUNT_ACCESS_ENTRIES: usize = 200;
/// A new secret caps the other secrets' remaining lifetime at this.
pub const OTHER_SECRETS_MAX_REMAINING: time::Duration = time::Duration::days(7);

/// What a fresh key may be given explicitly (ids are generated when absent).
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub id: Option<String>,
    pub public_key: Option<String>,
    pub private_key: Option<String>,
    pub desc: String,
    pub roles: Vec<RoleAssignment>,
    pub seeded: bool,
}

#[derive(Debug, Default)]
pub struct Store {
    orgs: HashMap<String, Org>,
    projects: HashMap<String, Project>,
    keys: HashMap<String, ApiKey>,
    by_public_key: HashMap<String, String>,
    service_accounts: HashMap<String, ServiceAccount>,
    /// MongoDB Cloud users (people) and their memberships: see [`super::org_users`].
    pub(crate) users: super::org_users::Users,
    tokens: HashMap<String, AccessToken>,
    /// Token count at which expired tokens are swept next.
    next_token_sweep: usize,
    pub max_keys_per_org: usize,
    pub max_service_accounts_per_org: usize,
}

/// A live API key as the admin inventory reports it (no private key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InventoryKey {
    pub id: String,
    pub public_key: String,
    pub desc: String,
    pub org_id: String,
    pub roles: Vec<RoleAssignment>,
    /// Access-list entries in CIDR notation.
    pub access_list: Vec<String>,
    pub seeded: bool,
    pub created: String,
}

/// A service-account secret as the inventory reports it (never the secret itself).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InventorySecret {
    pub id: String,
    pub created_at: String,
    pub expires_at: String,
    #[serde(default)]
    pub last_used_at: Option<String>,
    #[serde(default)]
    pub expired: bool,
}

/// A live service account as the admin inventory reports it (no secret values).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InventoryServiceAccount {
    pub client_id: String,
    pub org_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Organization roles.
    pub roles: Vec<String>,
    /// Project id -> roles in that project.
    #[serde(default)]
    pub project_roles: BTreeMap<String, Vec<String>>,
    pub secrets: Vec<InventorySecret>,
    /// Access-list entries in CIDR notation.
    #[serde(default)]
    pub access_list: Vec<String>,
    /// Unexpired, unrevoked access tokens.
    #[serde(default)]
    pub active_tokens: usize,
    /// Created at startup or through the admin API.
    #[serde(default)]
    pub seeded: bool,
    #[serde(default)]
    pub created: String,
}

/// Everything alive in the simulator; keys sorted by org, then public key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Inventory {
    pub orgs: Vec<Org>,
    pub projects: Vec<Project>,
    pub api_keys: Vec<InventoryKey>,
    pub service_accounts: Vec<InventoryServiceAccount>,
    /// One entry per organization membership of a MongoDB Cloud user (people), with the
    /// user's organization roles and roles per project.
    #[serde(default)]
    pub org_users: Vec<InventoryOrgUser>,
}

impl Inventory {
    /// Keys other than the seeded one: what a test checks for leaks.
    pub fn issued_keys(&self) -> impl Iterator<Item = &InventoryKey> {
        self.api_keys.iter().filter(|k| !k.seeded)
    }

    pub fn key_by_public_key(&self, public_key: &str) -> Option<&InventoryKey> {
        self.api_keys.iter().find(|k| k.public_key == public_key)
    }

    /// Service accounts created through the Atlas API: what a test checks for leaks.
    pub fn issued_service_accounts(&self) -> impl Iterator<Item = &InventoryServiceAccount> {
        self.service_accounts.iter().filter(|s| !s.seeded)
    }

    pub fn service_account(&self, client_id: &str) -> Option<&InventoryServiceAccount> {
        self.service_accounts
            .iter()
            .find(|s| s.client_id == client_id)
    }

    /// The membership of `username` (any case) in `org_id`.
    pub fn org_user(&self, org_id: &str, username: &str) -> Option<&InventoryOrgUser> {
        self.org_users
            .iter()
            .find(|u| u.org_id == org_id && u.username.eq_ignore_ascii_case(username))
    }

    /// Username -> roles of the users with roles in the project.
    pub fn project_members(&self, project_id: &str) -> BTreeMap<String, Vec<String>> {
        self.org_users
            .iter()
            .filter_map(|u| {
                u.project_roles
                    .get(project_id)
                    .map(|roles| (u.username.clone(), roles.clone()))
            })
            .collect()
    }
}

pub fn format_time(t: OffsetDateTime) -> String {
    const FMT: &[time::format_description::FormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(FMT)
        .unwrap_or_default()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Tokens kept before expired ones are swept.
const TOKEN_SWEEP_MIN: usize = 1024;

fn sa_secret_not_found(secret_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "SERVICE_ACCOUNT_SECRET_NOT_FOUND",
        format!("Secret with ID {secret_id} not found."),
    )
    .with_params([secret_id])
}

fn duplicate_access_entry(net: &IpNet, owner: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "DUPLICATE_ACCESS_LIST_ENTRY",
        format!("The access list entry {net} already exists for {owner}."),
    )
    .with_params([net.to_string()])
}

impl Store {
    pub fn new(max_keys_per_org: usize) -> Self {
        Self {
            max_keys_per_org,
            max_service_accounts_per_org: 200,
            next_token_sweep: TOKEN_SWEEP_MIN,
            ..Self::default()
        }
    }

    // ---- organizations and projects -------------------------------------------------------

    pub fn create_org(&mut self, id: Option<String>, name: String) -> Result<Org, String> {
        let id = id.unwrap_or_else(ids::object_id);
        if !ids::is_object_id(&id) {
            return Err(format!("org id {id:?} is not 24 lowercase hex digits"));
        }
        if self.orgs.contains_key(&id) {
            return Err(format!("org {id} already exists"));
        }
        let org = Org {
            id: id.clone(),
            name,
        };
        self.orgs.insert(id, org.clone());
        Ok(org)
    }

    pub fn create_project(
        &mut self,
        id: Option<String>,
        org_id: &str,
        name: String,
    ) -> Result<Project, String> {
        let id = id.unwrap_or_else(ids::object_id);
        if !ids::is_object_id(&id) {
            return Err(format!("project id {id:?} is not 24 lowercase hex digits"));
        }
        if !self.orgs.contains_key(org_id) {
            return Err(format!("org {org_id} does not exist"));
        }
        if self.projects.contains_key(&id) || self.orgs.contains_key(&id) {
            return Err(format!("id {id} is already in use"));
        }
        let project = Project {
            id: id.clone(),
            org_id: org_id.to_owned(),
            name,
            created: Some(now()),
        };
        self.projects.insert(id, project.clone());
        Ok(project)
    }

    pub fn org(&self, org_id: &str) -> Result<&Org, ApiError> {
        self.orgs
            .get(org_id)
            .ok_or_else(|| ApiError::org_not_found(org_id))
    }

    /// The organization's project with this name, if any (names are unique per organization).
    pub fn project_by_name(&self, org_id: &str, name: &str) -> Option<&Project> {
        self.projects
            .values()
            .find(|p| p.org_id == org_id && p.name == name)
    }

    /// Projects of an organization, oldest first.
    pub fn org_projects(&self, org_id: &str) -> Vec<&Project> {
        let mut list: Vec<&Project> = self
            .projects
            .values()
            .filter(|p| p.org_id == org_id)
            .collect();
        list.sort_unstable_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        list
    }

    pub fn project(&self, group_id: &str) -> Result<&Project, ApiError> {
        self.projects
            .get(group_id)
            .ok_or_else(|| ApiError::group_not_found(group_id))
    }

    // ---- API keys -------------------------------------------------------------------------

    /// Id and private key for a public key: what digest verification needs.
    pub fn credentials(&self, public_key: &str) -> Option<(&str, &str)> {
        let id = self.by_public_key.get(public_key)?;
        let key = self.keys.get(id)?;
        Some((key.id.as_str(), key.private_key.as_str()))
    }

    pub fn key_by_id(&self, key_id: &str) -> Option<&ApiKey> {
        self.keys.get(key_id)
    }

    fn keys_in_org(&self, org_id: &str) -> usize {
        self.keys.values().filter(|k| k.org_id == org_id).count()
    }

    pub fn create_key(&mut self, org_id: &str, new: NewKey) -> Result<ApiKey, ApiError> {
        self.org(org_id)?;
        if self.keys_in_org(org_id) >= self.max_keys_per_org {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MAX_API_KEYS_PER_ORG_EXCEEDED",
                format!(
                    "Maximum number of API keys ({}) per organization exceeded.",
                    self.max_keys_per_org
                ),
            )
            .with_params([self.max_keys_per_org.to_string()]));
        }
        let id = new.id.unwrap_or_else(ids::object_id);
        let public_key = match new.public_key {
            Some(pk) => pk,
            None => loop {
                let pk = ids::public_key();
                if !self.by_public_key.contains_key(&pk) {
                    break pk;
                }
            },
        };
        if self.keys.contains_key(&id) || self.by_public_key.contains_key(&public_key) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "DUPLICATE_API_KEY",
                "An API key with this id or public key already exists.",
            ));
        }
        let key = ApiKey {
            id: id.clone(),
            org_id: org_id.to_owned(),
            desc: new.desc,
            public_key: public_key.clone(),
            private_key: new.private_key.unwrap_or_else(ids::private_key),
            roles: new.roles,
            access_list: Vec::new(),
            seeded: new.seeded,
            created: now(),
        };
        self.by_public_key.insert(public_key, id.clone());
        self.keys.insert(id, key.clone());
        Ok(key)
    }

    /// The key `key_id` if it belongs to `org_id`; Atlas answers 404 for both cases.
    pub fn key_in_org(&self, org_id: &str, key_id: &str) -> Result<&ApiKey, ApiError> {
        self.keys
            .get(key_id)
            .filter(|k| k.org_id == org_id)
            .ok_or_else(|| ApiError::api_key_not_found(key_id))
    }

    fn key_in_org_mut(&mut self, org_id: &str, key_id: &str) -> Result<&mut ApiKey, ApiError> {
        self.keys
            .get_mut(key_id)
            .filter(|k| k.org_id == org_id)
            .ok_or_else(|| ApiError::api_key_not_found(key_id))
    }

    /// Keys of an organization, ordered by public key like Atlas lists them.
    pub fn org_keys(&self, org_id: &str) -> Vec<&ApiKey> {
        let mut keys: Vec<&ApiKey> = self.keys.values().filter(|k| k.org_id == org_id).collect();
        keys.sort_unstable_by(|a, b| a.public_key.cmp(&b.public_key));
        keys
    }

    /// Keys holding at least one role in the project, ordered by public key.
    pub fn project_keys(&self, group_id: &str) -> Vec<&ApiKey> {
        let mut keys: Vec<&ApiKey> = self
            .keys
            .values()
            .filter(|k| k.in_group(group_id))
            .collect();
        keys.sort_unstable_by(|a, b| a.public_key.cmp(&b.public_key));
        keys
    }

    /// Changes the description and/or the organization roles (project roles are kept).
    pub fn update_key(
        &mut self,
        org_id: &str,
        key_id: &str,
        desc: Option<String>,
        org_roles: Option<Vec<String>>,
    ) -> Result<ApiKey, ApiError> {
        let key = self.key_in_org_mut(org_id, key_id)?;
        if let Some(desc) = desc {
            key.desc = desc;
        }
        if let Some(roles) = org_roles {
            key.roles.retain(|r| r.org_id.is_none());
            let org_assignments = roles.iter().map(|role| RoleAssignment::org(org_id, role));
            key.roles.splice(0..0, org_assignments);
        }
        Ok(key.clone())
    }

    pub fn delete_key(&mut self, org_id: &str, key_id: &str) -> Result<ApiKey, ApiError> {
        self.key_in_org(org_id, key_id)?;
        let key = self
            .keys
            .remove(key_id)
            .ok_or_else(|| ApiError::api_key_not_found(key_id))?;
        self.by_public_key.remove(&key.public_key);
        Ok(key)
    }

    /// Replaces the key's roles in the project (assigning it when it had none there).
    /// The key must belong to the project's organization.
    pub fn set_project_roles(
        &mut self,
        group_id: &str,
        key_id: &str,
        roles: &[String],
    ) -> Result<ApiKey, ApiError> {
        let org_id = self.project(group_id)?.org_id.clone();
        let key = self.key_in_org_mut(&org_id, key_id)?;
        key.roles
            .retain(|r| r.group_id.as_deref() != Some(group_id));
        key.roles.extend(
            roles
                .iter()
                .map(|role| RoleAssignment::group(group_id, role)),
        );
        if !key.roles.iter().any(|r| r.org_id.is_some()) {
            key.roles
                .insert(0, RoleAssignment::org(&org_id, "ORG_MEMBER"));
        }
        Ok(key.clone())
    }

    /// Removes the key from the project; 404 if it was not assigned.
    pub fn unassign(&mut self, group_id: &str, key_id: &str) -> Result<(), ApiError> {
        let org_id = self.project(group_id)?.org_id.clone();
        let key = self.key_in_org_mut(&org_id, key_id)?;
        if !key.in_group(group_id) {
            return Err(ApiError::api_key_not_found(key_id));
        }
        key.roles
            .retain(|r| r.group_id.as_deref() != Some(group_id));
        Ok(())
    }

    // ---- access lists ---------------------------------------------------------------------

    /// Adds entries; 409 if one is already present (nothing is added then).
    pub fn add_access_entries(
        &mut self,
        org_id: &str,
        key_id: &str,
        nets: &[IpNet],
    ) -> Result<(), ApiError> {
        let key = self.key_in_org_mut(org_id, key_id)?;
        if let Some(dup) = nets
            .iter()
            .find(|n| key.access_list.iter().any(|e| e.net == **n))
        {
            return Err(duplicate_access_entry(dup, &format!("API key {key_id}")));
        }
        let created = now();
        key.access_list
            .extend(nets.iter().map(|net| AccessEntry::new(*net, created)));
        Ok(())
    }

    pub fn access_entry(
        &self,
        org_id: &str,
        key_id: &str,
        net: &IpNet,
    ) -> Result<&AccessEntry, ApiError> {
        let key = self.key_in_org(org_id, key_id)?;
        key.access_list
            .iter()
            .find(|e| e.net == *net)
            .ok_or_else(|| ApiError::access_list_entry_not_found(key_id, &net.to_string()))
    }

    pub fn delete_access_entry(
        &mut self,
        org_id: &str,
        key_id: &str,
        net: &IpNet,
    ) -> Result<(), ApiError> {
        let key = self.key_in_org_mut(org_id, key_id)?;
        let before = key.access_list.len();
        key.access_list.retain(|e| e.net != *net);
        if key.access_list.len() == before {
            return Err(ApiError::access_list_entry_not_found(
                key_id,
                &net.to_string(),
            ));
        }
        Ok(())
    }

    // ---- service accounts -----------------------------------------------------------------

    fn service_accounts_in_org(&self, org_id: &str) -> usize {
        self.service_accounts
            .values()
            .filter(|s| s.org_id == org_id)
            .count()
    }

    /// Creates a service account with one secret. Project roles must name projects of the
    /// organization.
    pub fn create_service_account(
        &mut self,
        org_id: &str,
        new: NewServiceAccount,
    ) -> Result<ServiceAccount, ApiError> {
        self.org(org_id)?;
        for group in new.project_roles.keys() {
            if self.project(group)?.org_id != org_id {
                return Err(ApiError::group_not_found(group));
            }
        }
        if self.service_accounts_in_org(org_id) >= self.max_service_accounts_per_org {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MAX_SERVICE_ACCOUNTS_PER_ORG_EXCEEDED",
                format!(
                    "Maximum number of service accounts ({}) per organization exceeded.",
                    self.max_service_accounts_per_org
                ),
            )
            .with_params([self.max_service_accounts_per_org.to_string()]));
        }
        let client_id = match new.client_id {
            Some(id) => id,
            None => loop {
                let id = ids::service_account_client_id();
                if !self.service_accounts.contains_key(&id) {
                    break id;
                }
            },
        };
        if self.service_accounts.contains_key(&client_id) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "DUPLICATE_SERVICE_ACCOUNT",
                "A service account with this client id already exists.",
            ));
        }
        let created_at = now();
        let secret = ServiceAccountSecret {
            id: ids::object_id(),
            secret: new.secret.unwrap_or_else(ids::service_account_secret),
            created_at,
            expires_at: created_at + time::Duration::hours(i64::from(new.secret_hours)),
            last_used_at: None,
        };
        let sa = ServiceAccount {
            client_id: client_id.clone(),
            org_id: org_id.to_owned(),
            name: new.name,
            description: new.description,
            roles: new.org_roles,
            project_roles: new.project_roles,
            created_at,
            secrets: vec![secret],
            access_list: Vec::new(),
            seeded: new.seeded,
        };
        self.service_accounts.insert(client_id, sa.clone());
        Ok(sa)
    }

    /// Any service account by client id (token endpoint, admin API).
    pub fn service_account_by_id(&self, client_id: &str) -> Option<&ServiceAccount> {
        self.service_accounts.get(client_id)
    }

    fn sa_mut(&mut self, client_id: &str) -> Result<&mut ServiceAccount, ApiError> {
        self.service_accounts
            .get_mut(client_id)
            .ok_or_else(|| ApiError::service_account_not_found(client_id))
    }

    /// The service account if it belongs to `org_id` (404 otherwise).
    pub fn service_account(
        &self,
        org_id: &str,
        client_id: &str,
    ) -> Result<&ServiceAccount, ApiError> {
        self.service_accounts
            .get(client_id)
            .filter(|sa| sa.org_id == org_id)
            .ok_or_else(|| ApiError::service_account_not_found(client_id))
    }

    /// The service account if it has roles in the project (404 otherwise).
    pub fn group_service_account(
        &self,
        group_id: &str,
        client_id: &str,
    ) -> Result<&ServiceAccount, ApiError> {
        self.project(group_id)?;
        self.service_accounts
            .get(client_id)
            .filter(|sa| sa.in_group(group_id))
            .ok_or_else(|| ApiError::service_account_not_found(client_id))
    }

    /// Service accounts of an organization, oldest first.
    pub fn org_service_accounts(&self, org_id: &str) -> Vec<&ServiceAccount> {
        self.sorted_service_accounts(|s| s.org_id == org_id)
    }

    /// Service accounts with roles in the project, oldest first.
    pub fn project_service_accounts(&self, group_id: &str) -> Vec<&ServiceAccount> {
        self.sorted_service_accounts(|s| s.in_group(group_id))
    }

    fn sorted_service_accounts(
        &self,
        keep: impl Fn(&ServiceAccount) -> bool,
    ) -> Vec<&ServiceAccount> {
        let mut list: Vec<&ServiceAccount> =
            self.service_accounts.values().filter(|s| keep(s)).collect();
        list.sort_unstable_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.client_id.cmp(&b.client_id))
        });
        list
    }

    /// Applies an update: `roles` replace the organization roles, or with `group` the roles
    /// in that project.
    pub fn update_service_account(
        &mut self,
        client_id: &str,
        group: Option<&str>,
        update: ServiceAccountUpdate,
    ) -> Result<ServiceAccount, ApiError> {
        let sa = self.sa_mut(client_id)?;
        if let Some(name) = update.name {
            sa.name = name;
        }
        if let Some(description) = update.description {
            sa.description = description;
        }
        if let Some(roles) = update.roles {
            match group {
                Some(group) => {
                    sa.project_roles.insert(group.to_owned(), roles);
                }
                None => sa.roles = roles,
            }
        }
        Ok(sa.clone())
    }

    /// Deletes the service account everywhere and revokes its tokens.
    pub fn delete_service_account(
        &mut self,
        org_id: &str,
        client_id: &str,
    ) -> Result<ServiceAccount, ApiError> {
        self.service_account(org_id, client_id)?;
        let sa = self
            .service_accounts
            .remove(client_id)
            .ok_or_else(|| ApiError::service_account_not_found(client_id))?;
        self.tokens.retain(|_, t| t.client_id != client_id);
        Ok(sa)
    }

    /// Gives the service account exactly `roles` in the project (it must belong to the
    /// project's organization).
    pub fn assign_service_account(
        &mut self,
        group_id: &str,
        client_id: &str,
        roles: Vec<String>,
    ) -> Result<ServiceAccount, ApiError> {
        let org_id = self.project(group_id)?.org_id.clone();
        self.service_account(&org_id, client_id)?;
        let sa = self.sa_mut(client_id)?;
        sa.project_roles.insert(group_id.to_owned(), roles);
        Ok(sa.clone())
    }

    /// Removes the service account from the project only (its tokens stay valid).
    pub fn unassign_service_account(
        &mut self,
        group_id: &str,
        client_id: &str,
    ) -> Result<(), ApiError> {
        self.group_service_account(group_id, client_id)?;
        self.sa_mut(client_id)?.project_roles.remove(group_id);
        Ok(())
    }

    /// Adds a secret (at most [`MAX_SECRETS_PER_SERVICE_ACCOUNT`]); the other secrets then
    /// expire within [`OTHER_SECRETS_MAX_REMAINING`] at the latest.
    pub fn add_service_account_secret(
        &mut self,
        client_id: &str,
        hours: u32,
    ) -> Result<ServiceAccountSecret, ApiError> {
        let sa = self.sa_mut(client_id)?;
        if sa.secrets.len() >= MAX_SECRETS_PER_SERVICE_ACCOUNT {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MAX_SERVICE_ACCOUNT_SECRETS_EXCEEDED",
                format!(
                    "A service account can have at most {MAX_SECRETS_PER_SERVICE_ACCOUNT} secrets."
                ),
            )
            .with_params([MAX_SECRETS_PER_SERVICE_ACCOUNT.to_string()]));
        }
        let created_at = now();
        let cap = created_at + OTHER_SECRETS_MAX_REMAINING;
        for other in &mut sa.secrets {
            other.expires_at = other.expires_at.min(cap);
        }
        let secret = ServiceAccountSecret {
            id: ids::object_id(),
            secret: ids::service_account_secret(),
            created_at,
            expires_at: created_at + time::Duration::hours(i64::from(hours)),
            last_used_at: None,
        };
        sa.secrets.push(secret.clone());
        Ok(secret)
    }

    /// Deletes a secret and revokes the tokens it obtained.
    pub fn delete_service_account_secret(
        &mut self,
        client_id: &str,
        secret_id: &str,
    ) -> Result<(), ApiError> {
        let sa = self.sa_mut(client_id)?;
        let before = sa.secrets.len();
        sa.secrets.retain(|s| s.id != secret_id);
        if sa.secrets.len() == before {
            return Err(sa_secret_not_found(secret_id));
        }
        self.tokens
            .retain(|_, t| !(t.client_id == client_id && t.secret_id == secret_id));
        Ok(())
    }

    /// Adds access-list entries; 409 if one is already present, 400 past the limit
    /// (nothing is added then).
    pub fn add_service_account_access_entries(
        &mut self,
        client_id: &str,
        nets: &[IpNet],
    ) -> Result<(), ApiError> {
        let sa = self.sa_mut(client_id)?;
        if let Some(dup) = nets
            .iter()
            .find(|n| sa.access_list.iter().any(|e| e.net == **n))
        {
            return Err(duplicate_access_entry(
                dup,
                &format!("service account {client_id}"),
            ));
        }
        if sa.access_list.len() + nets.len() > MAX_SERVICE_ACCOUNT_ACCESS_ENTRIES {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MAX_ACCESS_LIST_ENTRIES_EXCEEDED",
                format!(
                    "A service account access list can have at most {MAX_SERVICE_ACCOUNT_ACCESS_ENTRIES} entries."
                ),
            )
            .with_params([MAX_SERVICE_ACCOUNT_ACCESS_ENTRIES.to_string()]));
        }
        let created = now();
        sa.access_list
            .extend(nets.iter().map(|net| AccessEntry::new(*net, created)));
        Ok(())
    }

    pub fn delete_service_account_access_entry(
        &mut self,
        client_id: &str,
        net: &IpNet,
    ) -> Result<(), ApiError> {
        let sa = self.sa_mut(client_id)?;
        let before = sa.access_list.len();
        sa.access_list.retain(|e| e.net != *net);
        if sa.access_list.len() == before {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
                format!(
                    "Cannot find resource access list entry {net} for service account {client_id}."
                ),
            )
            .with_params([net.to_string()]));
        }
        Ok(())
    }

    // ---- OAuth tokens -----------------------------------------------------------------------

    /// Checks client credentials: a known client and one of its unexpired secrets.
    /// Returns the matching secret's id.
    pub fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<String, ClientAuthError> {
        let at = now();
        self.service_accounts
            .get(client_id)
            .and_then(|sa| {
                sa.secrets
                    .iter()
                    .find(|s| s.secret == secret && !s.expired(at))
            })
            .map(|s| s.id.clone())
            .ok_or(ClientAuthError::InvalidClient)
    }

    /// Issues an access token for valid client credentials and records the secret's use.
    pub fn issue_token(
        &mut self,
        client_id: &str,
        secret: &str,
        lifetime: Duration,
    ) -> Result<IssuedToken, ClientAuthError> {
        let secret_id = self.authenticate_client(client_id, secret)?;
        let issued = now();
        if let Some(s) = self
            .service_accounts
            .get_mut(client_id)
            .and_then(|sa| sa.secrets.iter_mut().find(|s| s.id == secret_id))
        {
            s.last_used_at = Some(issued);
        }
        let expires_in = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
        let exp = issued.unix_timestamp() + i64::try_from(expires_in).unwrap_or(i64::MAX / 2);
        let instant = Instant::now();
        if self.tokens.len() >= self.next_token_sweep {
            self.tokens.retain(|_, t| t.expires > instant);
            self.next_token_sweep = (self.tokens.len() * 2).max(TOKEN_SWEEP_MIN);
        }
        let access_token = loop {
            let t = ids::access_token(client_id, issued.unix_timestamp(), exp);
            if !self.tokens.contains_key(&t) {
                break t;
            }
        };
        self.tokens.insert(
            access_token.clone(),
            AccessToken {
                client_id: client_id.to_owned(),
                secret_id,
                expires: instant.checked_add(lifetime).unwrap_or(instant),
            },
        );
        Ok(IssuedToken {
            access_token,
            expires_in,
        })
    }

    /// The client id a live token belongs to; records the request against the matching
    /// access-list entry of the service account.
    pub fn bearer(&mut self, token: &str, peer: IpAddr) -> Option<String> {
        let t = self.tokens.get(token)?;
        if t.expires <= Instant::now() {
            self.tokens.remove(token);
            return None;
        }
        let client_id = t.client_id.clone();
        let sa = self.service_accounts.get_mut(&client_id)?;
        if let Some(entry) = sa.access_list.iter_mut().find(|e| e.net.contains(&peer)) {
            entry.request_count += 1;
            entry.last_used_at = Some(now());
            entry.last_used_address = Some(peer);
        }
        Some(client_id)
    }

    /// Revokes one of the client's tokens; unknown or expired tokens are not an error
    /// (RFC 7009), another client's token is.
    pub fn revoke_token(&mut self, client_id: &str, token: &str) -> Result<(), RevokeError> {
        match self.tokens.get(token) {
            Some(t) if t.client_id != client_id => Err(RevokeError::NotIssuedToClient),
            Some(_) => {
                self.tokens.remove(token);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Unexpired tokens of a client.
    pub fn active_tokens(&self, client_id: &str) -> usize {
        let instant = Instant::now();
        self.tokens
            .values()
            .filter(|t| t.client_id == client_id && t.expires > instant)
            .count()
    }

    // ---- inventory --------------------------------------------------------------------------

    pub fn inventory(&self) -> Inventory {
        let mut orgs: Vec<Org> = self.orgs.values().cloned().collect();
        orgs.sort_by(|a, b| a.id.cmp(&b.id));
        let mut projects: Vec<Project> = self.projects.values().cloned().collect();
        projects.sort_by(|a, b| a.id.cmp(&b.id));
        let mut api_keys: Vec<InventoryKey> = self
            .keys
            .values()
            .map(|k| InventoryKey {
                id: k.id.clone(),
                public_key: k.public_key.clone(),
                desc: k.desc.clone(),
                org_id: k.org_id.clone(),
                roles: k.roles.clone(),
                access_list: k.access_list.iter().map(AccessEntry::cidr_block).collect(),
                seeded: k.seeded,
                created: format_time(k.created),
            })
            .collect();
        api_keys.sort_by(|a, b| {
            a.org_id
                .cmp(&b.org_id)
                .then_with(|| a.public_key.cmp(&b.public_key))
        });
        let at = now();
        let mut service_accounts: Vec<InventoryServiceAccount> = self
            .service_accounts
            .values()
            .map(|s| InventoryServiceAccount {
                client_id: s.client_id.clone(),
                org_id: s.org_id.clone(),
                name: s.name.clone(),
                description: s.description.clone(),
                roles: s.roles.clone(),
                project_roles: s.project_roles.clone(),
                secrets: s
                    .secrets
                    .iter()
                    .map(|x| InventorySecret {
                        id: x.id.clone(),
                        created_at: format_time(x.created_at),
                        expires_at: format_time(x.expires_at),
                        last_used_at: x.last_used_at.map(format_time),
                        expired: x.expired(at),
                    })
                    .collect(),
                access_list: s.access_list.iter().map(AccessEntry::cidr_block).collect(),
                active_tokens: self.active_tokens(&s.client_id),
                seeded: s.seeded,
                created: format_time(s.created_at),
            })
            .collect();
        service_accounts.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Inventory {
            orgs,
            projects,
            api_keys,
            service_accounts,
            org_users: self.inventory_org_users(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_org() -> (Store, String, String) {
        let mut store = Store::new(3);
        let org = store.create_org(None, "org".into()).unwrap();
        let project = store.create_project(None, &org.id, "p".into()).unwrap();
        (store, org.id, project.id)
    }

    fn new_key(org: &str, role: &str) -> NewKey {
        NewKey {
            desc: "d".into(),
            roles: vec![RoleAssignment::org(org, role)],
            ..NewKey::default()
        }
    }

    #[test]
    fn key_limit_per_org_is_enforced() {
        let (mut store, org, _) = store_with_org();
        for _ in 0..3 {
            store.create_key(&org, new_key(&org, "ORG_MEMBER")).unwrap();
        }
        let err = store
            .create_key(&org, new_key(&org, "ORG_MEMBER"))
            .unwrap_err();
        assert_eq!(err.code, "MAX_API_KEYS_PER_ORG_EXCEEDED");
    }

    #[test]
    fn project_assignment_adds_org_member_and_unassign_keeps_key() {
        let (mut store, org, group) = store_with_org();
        let key = store
            .create_key(
                &org,
                NewKey {
                    desc: "x".into(),
                    ..NewKey::default()
                },
            )
            .unwrap();
        let key = store
            .set_project_roles(&group, &key.id, &["GROUP_READ_ONLY".into()])
            .unwrap();
        assert!(key.has_org_role("ORG_MEMBER"));
        assert_eq!(store.project_keys(&group).len(), 1);
        store.unassign(&group, &key.id).unwrap();
        assert!(store.project_keys(&group).is_empty());
        assert_eq!(
            store.unassign(&group, &key.id).unwrap_err().code,
            "API_KEY_NOT_FOUND"
        );
        assert!(store.key_by_id(&key.id).is_some());
    }

    #[test]
    fn keys_are_scoped_to_their_org() {
        let (mut store, org, _) = store_with_org();
        let other = store.create_org(None, "other".into()).unwrap();
        let key = store.create_key(&org, new_key(&org, "ORG_OWNER")).unwrap();
        assert_eq!(
            store.key_in_org(&other.id, &key.id).unwrap_err().code,
            "API_KEY_NOT_FOUND"
        );
        assert_eq!(
            store.delete_key(&other.id, &key.id).unwrap_err().code,
            "API_KEY_NOT_FOUND"
        );
        store.delete_key(&org, &key.id).unwrap();
        assert!(store.credentials(&key.public_key).is_none());
    }

    #[test]
    fn access_list_duplicates_conflict() {
        let (mut store, org, _) = store_with_org();
        let key = store.create_key(&org, new_key(&org, "ORG_OWNER")).unwrap();
        let net: IpNet = "10.0.0.0/24".parse().unwrap();
        store.add_access_entries(&org, &key.id, &[net]).unwrap();
        assert_eq!(
            store
                .add_access_entries(&org, &key.id, &[net])
                .unwrap_err()
                .status,
            StatusCode::CONFLICT
        );
        let entry = store.access_entry(&org, &key.id, &net).unwrap();
        assert_eq!(entry.path_segment(), "10.0.0.0%2F24");
        assert_eq!(entry.ip_address(), None);
        store.delete_access_entry(&org, &key.id, &net).unwrap();
        assert!(store.delete_access_entry(&org, &key.id, &net).is_err());
    }

    #[test]
    fn update_replaces_org_roles_only() {
        let (mut store, org, group) = store_with_org();
        let key = store.create_key(&org, new_key(&org, "ORG_OWNER")).unwrap();
        store
            .set_project_roles(&group, &key.id, &["GROUP_OWNER".into()])
            .unwrap();
        let key = store
            .update_key(
                &org,
                &key.id,
                Some("new".into()),
                Some(vec!["ORG_READ_ONLY".into()]),
            )
            .unwrap();
        assert_eq!(key.desc, "new");
        assert_eq!(key.org_roles().collect::<Vec<_>>(), ["ORG_READ_ONLY"]);
        assert_eq!(key.group_roles(&group).collect::<Vec<_>>(), ["GROUP_OWNER"]);
    }
}
