//! Just-in-time access for people: a lease grants an existing organization
//! member organization and/or project roles, and its end takes away exactly
//! what it added. No credential is created; the "credential" is the grant.
//!
//! This module owns the `user_access` secret type (renew, revoke), its WAL
//! kind and rollback, what a role needs, and the grant itself. Which roles a
//! grant added, and which a person held before, live in per-person, per-place
//! [`ledger`]s in the plugin's storage, written before Atlas is changed.

mod grant;
mod ledger;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lease::{self, Record};
use super::roles::Role;
use super::Engine;
use crate::atlas::AtlasClient;
use crate::vault::framework::{BackendError, Request, SecretType};

pub(crate) use grant::issue;

/// The lease's `secret_type` and the WAL kind.
pub(crate) const SECRET_TYPE: &str = "user_access";

/// What a grant gave whom, where: the lease's internal data and the WAL
/// entry's data. Revoking or rolling it back releases it from every ledger.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct GrantRecord {
    /// The role that granted it: renewal reads its TTLs.
    #[serde(default)]
    pub role: String,
    /// Unique per issuance: the grant's name in the ledgers.
    #[serde(default)]
    pub grant_id: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub organization_id: String,
    /// Organization roles the grant needs.
    #[serde(default)]
    pub org_roles: Vec<String>,
    /// Project id -> the project roles the grant needs there.
    #[serde(default)]
    pub project_roles: BTreeMap<String, Vec<String>>,
}

impl Record for GrantRecord {
    const KIND: &'static str = SECRET_TYPE;
    const NOUN: &'static str = "access grant";

    fn id(&self) -> &str {
        &self.grant_id
    }

    async fn delete(&self, client: &AtlasClient, req: &Request) -> Result<bool, BackendError> {
        grant::release(client, req.storage.as_ref(), self)
            .await
            .map(|()| true)
    }
}

/// What a user-access role must hold: where and what to grant, and whom.
pub(crate) fn check_role(role: &Role) -> Result<(), BackendError> {
    let projects = role.assigned_projects();
    if role.organization_id.is_empty() && projects.is_empty() {
        return Err(BackendError::user(
            "organization_id, project_id or project_ids is required: where the roles are granted (the organization's members are the people who may be granted)",
        ));
    }
    if !role.project_id.is_empty() && !role.project_ids().is_empty() {
        return Err(BackendError::user(
            "project_id and project_ids were both given: use one",
        ));
    }
    if !role.roles().is_empty() && role.organization_id.is_empty() {
        return Err(BackendError::user(
            "roles of a user_access role are organization roles (ORG_*): give organization_id with them, or grant project roles with project_roles",
        ));
    }
    check_prefix("roles", role.roles(), "ORG_", "organization")?;
    check_prefix("project_roles", role.project_roles(), "GROUP_", "project")?;
    if !projects.is_empty() && role.project_roles().is_empty() {
        return Err(BackendError::user(
            "project_roles is required with project_id or project_ids: the project roles to grant, e.g. GROUP_OWNER",
        ));
    }
    if role.roles().is_empty() && role.project_roles().is_empty() {
        return Err(BackendError::user(
            "nothing to grant: give roles (organization roles, with organization_id) and/or project_roles (with project_id or project_ids)",
        ));
    }
    if !role.ip_addresses().is_empty() || !role.cidr_blocks().is_empty() {
        return Err(BackendError::user(
            "ip_addresses and cidr_blocks are for credentials; a user_access role grants roles to a person: leave them out",
        ));
    }
    let patterns = role.allowed_users.as_deref().unwrap_or_default();
    if patterns.is_empty() && role.username_from_entity.is_empty() {
        return Err(BackendError::user(
            "allowed_users or username_from_entity is required: say whom the role may grant (patterns such as *@example.com), or that people grant themselves (the metadata key of their Vault entity holding their username, e.g. email)",
        ));
    }
    if let Some(bad) = patterns.iter().find(|p| p.trim().is_empty()) {
        return Err(BackendError::user(format!(
            "allowed_users: {bad:?} is an empty pattern"
        )));
    }
    Ok(())
}

fn check_prefix(
    field: &str,
    roles: &[String],
    prefix: &str,
    scope: &str,
) -> Result<(), BackendError> {
    match roles.iter().find(|r| !r.starts_with(prefix)) {
        Some(bad) => Err(BackendError::user(format!(
            "{field}: {bad:?} is not an Atlas {scope} role (they start with {prefix}, e.g. {prefix}READ_ONLY)"
        ))),
        None => Ok(()),
    }
}

pub(crate) fn secret_type(engine: &Engine) -> SecretType {
    lease::secret_type::<GrantRecord>(
        engine,
        crate::vault::framework::handler_with(engine, lease::renew::<GrantRecord>),
    )
}
