//! The programmatic API key, the credential the official plugin issues (Atlas
//! now calls it a legacy option). This module owns everything about it: the
//! `programmatic_api_key` secret type (renew, revoke), its WAL kind and
//! rollback, what a role needs to issue one, and the issuance itself.

mod delete;
mod issue;

use serde::{Deserialize, Serialize};

use super::lease::{self, Record};
use super::roles::{Role, Scope as KeyScope};
use super::tidy::sweep::{object_id_time, Found, Listing, Scopes};
use super::Engine;
use crate::atlas::{ApiKey, AtlasClient};
use crate::vault::framework::{handler_with, BackendError, Request, SecretType};

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

impl Record for KeyRecord {
    const KIND: &'static str = SECRET_TYPE;
    const NOUN: &'static str = "API key";

    fn id(&self) -> &str {
        &self.programmatic_api_key_id
    }

    async fn delete(&self, client: &AtlasClient, req: &Request) -> Result<bool, BackendError> {
        delete::delete_wal_key(client, req, self).await
    }
}

/// Every API key in the scopes, for `tidy`: an organization's keys, and a
/// project's (which live in its organization: an organization listing that
/// finds them too is not needed).
pub(crate) async fn list_issued(client: &AtlasClient, scopes: &Scopes, listing: &mut Listing) {
    let found = |key: ApiKey, org: &str, project: &str| Found {
        kind: SECRET_TYPE,
        created_at: object_id_time(&key.id),
        organization_id: key.org_id().unwrap_or(org).to_owned(),
        record: serde_json::to_value(KeyRecord {
            description: key.desc.clone(),
            organization_id: org.to_owned(),
            project_id: project.to_owned(),
            programmatic_api_key_id: key.id.clone(),
            key_org_id: key.org_id().unwrap_or(org).to_owned(),
            ..KeyRecord::default()
        })
        .unwrap_or_default(),
        name: key.desc,
        id: key.id,
    };
    for org in &scopes.orgs {
        match client.list_org_keys(org).await {
            Ok(keys) => keys
                .into_iter()
                .for_each(|k| listing.add(found(k, org, ""))),
            Err(e) => listing.failed(SECRET_TYPE, &format!("organization {org}"), e),
        }
    }
    for project in &scopes.projects {
        match client.list_project_keys(project).await {
            Ok(keys) => keys
                .into_iter()
                .for_each(|k| listing.add(found(k, "", project))),
            Err(e) => listing.failed(SECRET_TYPE, &format!("project {project}"), e),
        }
    }
}

/// What an API-key role must hold beyond what every role does.
pub(crate) fn check_role(role: &Role) -> Result<(), BackendError> {
    role.check_scope_roles().map(drop)
}

pub(crate) fn secret_type(engine: &Engine) -> SecretType {
    lease::secret_type::<KeyRecord>(engine, handler_with(engine, lease::renew::<KeyRecord>))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_official_wal_entry_and_lease() {
        let wal = json!({"Role": "vault-r-abc", "ProjectID": "p", "OrganizationID": "", "ProgrammaticAPIKeyID": ""});
        let record = KeyRecord::read(wal).expect("wal");
        assert_eq!(record.description, "vault-r-abc");
        assert_eq!(record.project_id, "p");
        assert!(record.role.is_empty());
        let lease = json!({"programmatic_api_key_id": "k", "project_id": "", "organization_id": "o", "role": "r", "secret_type": SECRET_TYPE});
        let record = KeyRecord::read(lease).expect("lease");
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
