//! Issuing a service account: its part of an [`issuance`](crate::engine::issuance).

use std::time::Duration;

use serde_json::{Map, Value};

use super::{secret_hours, secret_type, AccountRecord};
use crate::atlas::{AccessListEntry, AccountScope, AtlasClient, AtlasError, ServiceAccount};
use crate::engine::issuance::{self, unique_name, Credential, Handout, Ttls};
use crate::engine::roles::{Role, Scope};
use crate::engine::Engine;
use crate::vault::framework::{BackendError, Request, Response};

/// Atlas' limit on a service account's name.
const MAX_NAME: usize = 64;

/// Issues a service account for a validated role, with the mount's Atlas client.
pub(crate) async fn issue(
    engine: &Engine,
    req: Request,
    name: &str,
    role: Role,
    client: AtlasClient,
) -> Result<Response, BackendError> {
    let account = NewAccount {
        tag_suffix: engine.tag_suffix(),
        scope: role.check_scope_roles()?,
        entries: role.access_list()?,
        name: name.to_string(),
        role,
        client,
    };
    issuance::issue(
        engine,
        req,
        name,
        &account.role.clone(),
        secret_type(engine),
        account,
    )
    .await
}

/// `vault-<role>-<20 random base62>` within Atlas' 64 characters, using only
/// characters Atlas allows in a name.
fn account_name(role: &str, tag_suffix: &str) -> String {
    unique_name(role, "-_.", MAX_NAME, tag_suffix)
}

/// The account a role describes, about to be created.
struct NewAccount {
    name: String,
    tag_suffix: String,
    role: Role,
    scope: Scope,
    entries: Vec<AccessListEntry>,
    client: AtlasClient,
}

impl NewAccount {
    fn account_scope(&self) -> AccountScope<'_> {
        match self.scope {
            Scope::Org | Scope::OrgAssignedToProject => {
                AccountScope::Org(&self.role.organization_id)
            }
            Scope::Project => AccountScope::Project(&self.role.project_id),
        }
    }
}

impl Credential for NewAccount {
    type Record = AccountRecord;
    type Issued = ServiceAccount;
    const ISSUED_LOG: &'static str = "issued Atlas service account";
    // The secret's lifetime follows the lease's maximum TTL.
    const TTLS_BEFORE_CREATE: bool = true;

    fn record(&self) -> AccountRecord {
        AccountRecord {
            role: self.name.clone(),
            name: account_name(&self.name, &self.tag_suffix),
            organization_id: self.role.organization_id.clone(),
            project_id: self.role.project_id.clone(),
            account_org_id: self.role.organization_id.clone(),
            ..AccountRecord::default()
        }
    }

    async fn create(
        &self,
        record: &mut AccountRecord,
        ttls: Option<Ttls>,
    ) -> Result<ServiceAccount, AtlasError> {
        let max_ttl = ttls.map(|(_, max)| max).unwrap_or_default();
        let hours = u32::try_from(secret_hours(max_ttl)).unwrap_or(u32::MAX);
        let description = format!("Issued by Vault for role {}", record.role);
        let create = self.client.create_service_account(
            self.account_scope(),
            &record.name,
            &description,
            self.role.roles(),
            hours,
        );
        let account = if self.scope == Scope::Project {
            // A project account lives in the project's organization, which
            // deleting it needs; learn it while Atlas creates the account.
            let (account, org) =
                tokio::join!(create, self.client.project_org_id(&self.role.project_id));
            match org {
                Ok(org) => record.account_org_id = org,
                Err(e) => {
                    tracing::warn!(project_id = %self.role.project_id, error = %e, "could not read the project's organization; deleting the account reads it again")
                }
            }
            account?
        } else {
            create.await?
        };
        record.client_id = account.client_id.clone();
        record.secret_expires_at = account.secret_expires_at.clone().unwrap_or_default();
        Ok(account)
    }

    /// Access list and project invitations of a freshly created account.
    async fn configure(
        &self,
        account: &ServiceAccount,
        _: &AccountRecord,
    ) -> Result<(), AtlasError> {
        self.client
            .add_service_account_access_list(
                self.account_scope(),
                &account.client_id,
                &self.entries,
            )
            .await?;
        if self.scope == Scope::OrgAssignedToProject {
            // A failure here deletes the account, which ends the invitations so far.
            for project in self.role.assigned_projects() {
                self.client
                    .invite_service_account(project, &account.client_id, self.role.project_roles())
                    .await?;
            }
        }
        Ok(())
    }

    fn answer(
        &self,
        account: ServiceAccount,
        record: &AccountRecord,
        (ttl, max_ttl): Ttls,
    ) -> Result<Handout, BackendError> {
        let secret = account.secret.as_ref().ok_or_else(|| {
            BackendError::internal("Atlas created the service account but returned no secret")
        })?;
        // The secret outlives the lease by construction; cap anyway should
        // Atlas have shortened it (an organization setting may).
        let hours = secret_hours(max_ttl);
        let max_ttl = max_ttl.min(Duration::from_secs(hours * 3600));
        let mut data = Map::new();
        data.insert("client_id".into(), Value::String(account.client_id.clone()));
        data.insert(
            "client_secret".into(),
            Value::String(secret.expose().to_string()),
        );
        data.insert("name".into(), Value::String(account.name.clone()));
        data.insert(
            "description".into(),
            Value::String(account.description.clone()),
        );
        data.insert(
            "secret_expires_at".into(),
            Value::String(record.secret_expires_at.clone()),
        );
        Ok(Handout {
            data,
            ttls: (ttl.min(max_ttl), max_ttl),
        })
    }

    fn client(&self) -> &AtlasClient {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_short_and_atlas_safe() {
        let n = account_name("my role/x", "-0123abcd");
        assert!(n.starts_with("vault-my_role_x-"), "{n}");
        assert_ne!(account_name("a", ""), account_name("a", ""));
        let long = account_name(&"r".repeat(400), "-0123abcd");
        assert!(
            long.len() <= MAX_NAME && long.ends_with("-0123abcd"),
            "{long}"
        );
        assert!(long
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    }
}
