//! The service account, MongoDB's recommended credential: an OAuth 2.0 client
//! (`client_id` + `client_secret`). This module owns the `service_account`
//! secret type (renew, revoke), its WAL kind and rollback, what a role needs
//! to issue one, and the issuance.
//!
//! Atlas expires every service-account secret on its own (8 to 8,760 hours).
//! The secret of an issued account expires no earlier than its lease's maximum
//! lifetime and at most an hour after it, so the credential dies even if Vault
//! loses the lease; renewal never extends a lease past that expiry.

mod delete;
mod issue;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lease::{self, Record};
use super::roles::Role;
use super::tidy::sweep::{object_id_time, rfc3339_time, Found, Listing, Scopes};
use super::Engine;
use crate::atlas::{AccountScope, AtlasClient, ServiceAccount};
use crate::vault::framework::{
    handler_with, BackendError, FieldData, Request, Response, SecretType,
};

pub(crate) use issue::issue;

/// The lease's `secret_type` and the WAL kind.
pub(crate) const SECRET_TYPE: &str = "service_account";

/// Atlas' bounds on a secret's lifetime.
pub(crate) const MIN_SECRET_HOURS: u64 = 8;
pub(crate) const MAX_SECRET_HOURS: u64 = 8760;

/// What finds and deletes an account: the lease's internal data and the data
/// of the issuance's WAL entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct AccountRecord {
    /// The role that issued the account: renewal reads its TTLs.
    #[serde(default)]
    pub role: String,
    /// Unique per issuance: finds an account whose create answer was lost.
    #[serde(default)]
    pub name: String,
    /// The role's organization and project, where the account was created.
    #[serde(default)]
    pub organization_id: String,
    #[serde(default)]
    pub project_id: String,
    #[serde(default)]
    pub client_id: String,
    /// The organization the account lives in (for project accounts, the project's).
    #[serde(default)]
    pub account_org_id: String,
    /// When Atlas expires the account's secret (RFC 3339).
    #[serde(default)]
    pub secret_expires_at: String,
}

impl Record for AccountRecord {
    const KIND: &'static str = SECRET_TYPE;
    const NOUN: &'static str = "service account";

    fn id(&self) -> &str {
        &self.client_id
    }

    async fn delete(&self, client: &AtlasClient, _: &Request) -> Result<bool, BackendError> {
        delete::delete_recorded(client, self).await
    }
}

impl AccountRecord {
    /// The secret's expiry, if the record has a readable one.
    fn secret_expiry(&self) -> Option<SystemTime> {
        let at = time::OffsetDateTime::parse(
            &self.secret_expires_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        Some(SystemTime::from(at))
    }
}

/// Every service account in the scopes, for `tidy`.
pub(crate) async fn list_issued(client: &AtlasClient, scopes: &Scopes, listing: &mut Listing) {
    let found = |account: ServiceAccount, org: &str, project: &str| Found {
        kind: SECRET_TYPE,
        created_at: account
            .created_at
            .as_deref()
            .and_then(rfc3339_time)
            .or_else(|| object_id_time(&account.client_id)),
        organization_id: org.to_owned(),
        record: serde_json::to_value(AccountRecord {
            name: account.name.clone(),
            organization_id: org.to_owned(),
            project_id: project.to_owned(),
            client_id: account.client_id.clone(),
            account_org_id: org.to_owned(),
            ..AccountRecord::default()
        })
        .unwrap_or_default(),
        name: account.name,
        id: account.client_id,
    };
    for org in &scopes.orgs {
        match client.list_service_accounts(AccountScope::Org(org)).await {
            Ok(accounts) => accounts
                .into_iter()
                .for_each(|a| listing.add(found(a, org, ""))),
            Err(e) => listing.failed(SECRET_TYPE, &format!("organization {org}"), e),
        }
    }
    for project in &scopes.projects {
        match client
            .list_service_accounts(AccountScope::Project(project))
            .await
        {
            Ok(accounts) => accounts
                .into_iter()
                .for_each(|a| listing.add(found(a, "", project))),
            Err(e) => listing.failed(SECRET_TYPE, &format!("project {project}"), e),
        }
    }
}

/// Hours of secret lifetime that cover a lease's maximum TTL: rounded up,
/// within Atlas' bounds.
pub(crate) fn secret_hours(max_ttl: Duration) -> u64 {
    max_ttl
        .as_secs()
        .div_ceil(3600)
        .clamp(MIN_SECRET_HOURS, MAX_SECRET_HOURS)
}

/// What a service-account role must hold beyond what every role does.
pub(crate) fn check_role(role: &Role) -> Result<(), BackendError> {
    role.check_scope_roles()?;
    if role.organization_id.is_empty() && !role.project_roles().is_empty() {
        return Err(BackendError::user(
            "project_roles is only for an organization service account invited to a project (organization_id and project_id); a project service account takes its project roles in roles",
        ));
    }
    let max_secret = Duration::from_secs(MAX_SECRET_HOURS * 3600);
    for (field, ttl) in [("ttl", role.ttl), ("max_ttl", role.max_ttl)] {
        if ttl > max_secret {
            return Err(BackendError::user(format!(
                "{field} ({}s) is beyond Atlas' longest service-account secret lifetime ({MAX_SECRET_HOURS} hours): lower {field}",
                ttl.as_secs()
            )));
        }
    }
    Ok(())
}

pub(crate) fn secret_type(engine: &Engine) -> SecretType {
    lease::secret_type::<AccountRecord>(engine, handler_with(engine, renew))
}

/// Renews as every lease does, but never past the secret's expiry in Atlas.
async fn renew(
    engine: Engine,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>, BackendError> {
    let record = match &req.secret {
        Some(secret) => AccountRecord::read(Value::Object(secret.internal_data.clone()))?,
        None => return Err(BackendError::internal("renew without a secret")),
    };
    let mut response = lease::renew::<AccountRecord>(engine, req, fields).await?;
    let (Some(resp), Some(expiry)) = (response.as_mut(), record.secret_expiry()) else {
        return Ok(response);
    };
    let left = expiry.duration_since(SystemTime::now()).unwrap_or_default();
    if let Some(secret) = resp.secret.as_mut() {
        if secret.lease.ttl > left {
            secret.lease.ttl = left;
            resp.add_warning(format!(
                "the lease is capped at the service account's secret expiry ({}): Atlas deletes the secret then, whatever Vault does",
                record.secret_expires_at
            ));
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hours_cover_the_lease_within_atlas_bounds() {
        assert_eq!(secret_hours(Duration::from_secs(60)), 8);
        assert_eq!(secret_hours(Duration::from_secs(8 * 3600 + 1)), 9);
        assert_eq!(secret_hours(Duration::from_secs(24 * 3600)), 24);
        assert_eq!(secret_hours(Duration::from_secs(400 * 24 * 3600)), 8760);
    }

    #[test]
    fn records_read_their_expiry() {
        let record = AccountRecord {
            secret_expires_at: "2030-01-02T03:04:05Z".into(),
            ..AccountRecord::default()
        };
        assert!(record.secret_expiry().is_some());
        assert!(AccountRecord::default().secret_expiry().is_none());
    }
}
