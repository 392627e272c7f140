//! The programmatic API key, the credential the official plugin issues (Atlas
//! now calls it a legacy option). This module owns everything about it: the
//! `programmatic_api_key` secret type (renew, revoke), its WAL kind and
//! rollback, what a role needs to issue one, and the issuance itself.

mod delete;
mod issue;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::roles::Role;
use super::{lease, Engine};
use crate::vault::framework::{handler_with, BackendError, SecretType};

pub(crate) use issue::issue;

/// The lease's `secret_type` and the WAL kind, as the official plugin names
/// them: leases issued by either implementation renew and revoke with the other.
pub(crate) const SECRET_TYPE: &str = "programmatic_api_key";

/// What finds and deletes a key: the lease's internal data and the data of
/// the issuance's WAL entry. Keeps the official plugin's lease keys, and reads
/// its WAL entries (Go field names; `Role` holds the key's description).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct KeyRecord {
    /// The role that issued the key: renewal reads its TTLs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// Unique per issuance: finds a key whose create answer was lost.
    #[serde(default, alias = "Role", skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, alias = "OrganizationID")]
    pub organization_id: String,
    #[serde(default, alias = "ProjectID")]
    pub project_id: String,
    #[serde(default, alias = "ProgrammaticAPIKeyID")]
    pub programmatic_api_key_id: String,
    /// The organization the key lives in (for project keys, from Atlas' answer).
    #[serde(default)]
    pub key_org_id: String,
}

impl KeyRecord {
    pub(crate) fn from_value(value: Value) -> Result<Self, BackendError> {
        serde_json::from_value(value)
            .map_err(|e| BackendError::internal(format!("unreadable {SECRET_TYPE} record: {e}")))
    }
}

/// Which key a role issues, from which of its ids are set (the official
/// plugin's rule: its roles have no explicit field for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyScope {
    /// An organization key with `roles`.
    Org,
    /// A project key with `roles`.
    Project,
    /// An organization key with `roles`, assigned to the project with `project_roles`.
    OrgAssignedToProject,
}

impl KeyScope {
    pub(crate) fn of(role: &Role) -> Result<Self, BackendError> {
        match (role.organization_id.is_empty(), role.project_id.is_empty()) {
            (false, true) => Ok(Self::Org),
            (true, false) => Ok(Self::Project),
            (false, false) => Ok(Self::OrgAssignedToProject),
            (true, true) => Err(BackendError::user(
                "organization_id or project_id is required: set organization_id for an organization key, project_id for a project key, or both for an organization key assigned to a project",
            )),
        }
    }
}

/// What an API-key role must hold beyond what every role does.
pub(crate) fn check_role(role: &Role) -> Result<(), BackendError> {
    let scope = KeyScope::of(role)?;
    let (role_scope, prefix) = match scope {
        KeyScope::Org | KeyScope::OrgAssignedToProject => ("organization", "ORG_"),
        KeyScope::Project => ("project", "GROUP_"),
    };
    if role.roles().is_empty() {
        return Err(BackendError::user(format!(
            "roles is required and must not be empty: give at least one {role_scope} role, e.g. {prefix}READ_ONLY"
        )));
    }
    check_role_names("roles", role.roles(), prefix, role_scope)?;
    if scope == KeyScope::OrgAssignedToProject {
        if role.project_roles().is_empty() {
            return Err(BackendError::user(
                "project_roles is required if both organization_id and project_id are supplied: give at least one project role, e.g. GROUP_READ_ONLY",
            ));
        }
        check_role_names("project_roles", role.project_roles(), "GROUP_", "project")?;
    }
    Ok(())
}

fn check_role_names(
    field: &str,
    names: &[String],
    prefix: &str,
    scope: &str,
) -> Result<(), BackendError> {
    match names.iter().find(|n| !n.starts_with(prefix)) {
        Some(bad) => Err(BackendError::user(format!(
            "{field}: {bad:?} is not an Atlas {scope} role (they start with {prefix}, e.g. {prefix}READ_ONLY)"
        ))),
        None => Ok(()),
    }
}

pub(crate) fn secret_type(engine: &Engine) -> SecretType {
    let rolling_back = engine.clone();
    SecretType {
        name: SECRET_TYPE,
        renew: Some(handler_with(engine, lease::renew)),
        revoke: Some(handler_with(engine, delete::revoke)),
        rollback: Some(crate::vault::framework::rollback_handler(
            move |req, data| delete::rollback(rolling_back.clone(), req, data),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_official_wal_entry_and_lease() {
        let wal = json!({"Role": "vault-r-abc", "ProjectID": "p", "OrganizationID": "", "ProgrammaticAPIKeyID": ""});
        let record = KeyRecord::from_value(wal).expect("wal");
        assert_eq!(record.description, "vault-r-abc");
        assert_eq!(record.project_id, "p");
        assert!(record.role.is_empty());
        let lease = json!({"programmatic_api_key_id": "k", "project_id": "", "organization_id": "o", "role": "r", "secret_type": SECRET_TYPE});
        let record = KeyRecord::from_value(lease).expect("lease");
        assert_eq!(
            (
                record.role.as_str(),
                record.programmatic_api_key_id.as_str()
            ),
            ("r", "k")
        );
        assert!(record.description.is_empty());
    }

    #[test]
    fn a_lease_keeps_the_official_keys() {
        let record = KeyRecord {
            role: "r".into(),
            description: "vault-r-abc".into(),
            organization_id: "o".into(),
            programmatic_api_key_id: "k".into(),
            key_org_id: "o".into(),
            ..KeyRecord::default()
        };
        let map = serde_json::to_value(&record).expect("encode");
        for key in [
            "programmatic_api_key_id",
            "project_id",
            "organization_id",
            "role",
        ] {
            assert!(map.get(key).is_some(), "{key} missing from {map}");
        }
    }
}
