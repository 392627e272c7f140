//! Issuing a programmatic API key: its part of an [`issuance`](crate::engine::issuance).

use serde_json::{Map, Value};

use super::{secret_type, KeyRecord, KeyScope};
use crate::atlas::{AccessListEntry, ApiKey, AtlasClient, AtlasError};
use crate::engine::issuance::{self, unique_name, Credential, Handout, Ttls};
use crate::engine::roles::Role;
use crate::engine::Engine;
use crate::vault::framework::{BackendError, Request, Response};

/// Atlas' limit on an API key description.
const MAX_DESCRIPTION: usize = 250;

/// Issues a key for a validated role, with the mount's Atlas client.
pub(crate) async fn issue(
    engine: &Engine,
    req: Request,
    name: &str,
    role: Role,
    client: AtlasClient,
) -> Result<Response, BackendError> {
    let key = NewKey {
        tag_suffix: engine.tag_suffix(),
        scope: KeyScope::of(&role)?,
        entries: role.access_list()?,
        name: name.to_string(),
        role,
        client,
    };
    // Nothing above changed anything; from here on, the issuance's task owns it.
    issuance::issue(
        engine,
        req,
        name,
        &key.role.clone(),
        secret_type(engine),
        key,
    )
    .await
}

/// `vault-<role>-<20 random base62>-<mount tag>`, role sanitised as the
/// official plugin does and shortened if needed to stay within Atlas' 250
/// characters.
fn description(role: &str, tag_suffix: &str) -> String {
    unique_name(role, "+=,.@_-", MAX_DESCRIPTION, tag_suffix)
}

/// The key a role describes, about to be created.
struct NewKey {
    name: String,
    tag_suffix: String,
    role: Role,
    scope: KeyScope,
    entries: Vec<AccessListEntry>,
    client: AtlasClient,
}

impl Credential for NewKey {
    type Record = KeyRecord;
    type Issued = ApiKey;
    const ISSUED_LOG: &'static str = "issued Atlas API key";

    fn record(&self) -> KeyRecord {
        KeyRecord {
            role: self.name.clone(),
            description: description(&self.name, &self.tag_suffix),
            organization_id: self.role.organization_id.clone(),
            project_id: self.role.project_id.clone(),
            ..KeyRecord::default()
        }
    }

    async fn create(&self, record: &mut KeyRecord, _: Option<Ttls>) -> Result<ApiKey, AtlasError> {
        let desc = &record.description;
        let key = match self.scope {
            KeyScope::Org | KeyScope::OrgAssignedToProject => {
                self.client
                    .create_org_key(&self.role.organization_id, desc, self.role.roles())
                    .await?
            }
            KeyScope::Project => {
                self.client
                    .create_project_key(&self.role.project_id, desc, self.role.roles())
                    .await?
            }
        };
        record.programmatic_api_key_id = key.id.clone();
        record.key_org_id = key
            .org_id()
            .map(str::to_string)
            .unwrap_or_else(|| self.role.organization_id.clone());
        Ok(key)
    }

    /// Access list and project assignments of a freshly created key. A
    /// failure here deletes the key, which ends the assignments made so far.
    async fn configure(&self, key: &ApiKey, record: &KeyRecord) -> Result<(), AtlasError> {
        if !self.entries.is_empty() {
            self.client
                .add_access_list(&record.key_org_id, &key.id, &self.entries)
                .await?;
        }
        if self.scope == KeyScope::OrgAssignedToProject {
            for project in self.role.assigned_projects() {
                self.client
                    .assign_key_to_project(project, &key.id, self.role.project_roles())
                    .await?;
            }
        }
        Ok(())
    }

    fn answer(&self, key: ApiKey, record: &KeyRecord, ttls: Ttls) -> Result<Handout, BackendError> {
        let private_key = key.private_key.as_ref().ok_or_else(|| {
            BackendError::internal("Atlas created the key but returned no private key")
        })?;
        let mut data = Map::new();
        data.insert("public_key".into(), Value::String(key.public_key.clone()));
        data.insert(
            "private_key".into(),
            Value::String(private_key.expose().to_string()),
        );
        data.insert(
            "description".into(),
            Value::String(record.description.clone()),
        );
        Ok(Handout { data, ttls })
    }

    fn client(&self) -> &AtlasClient {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::issuance::RANDOM_SUFFIX;

    #[test]
    fn descriptions_are_sanitised_unique_and_short_enough() {
        let d = description("my role/x", "-0123abcd");
        assert!(d.starts_with("vault-my_role_x-"), "{d}");
        assert!(d.ends_with("-0123abcd"), "{d}");
        assert_eq!(d.len(), "vault-my_role_x-".len() + RANDOM_SUFFIX + 9);
        assert_ne!(description("a", ""), description("a", ""));
        let long = description(&"r".repeat(400), "-0123abcd");
        assert!(long.len() <= MAX_DESCRIPTION && long.ends_with("-0123abcd"));
    }
}
