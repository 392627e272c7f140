//! The `programmatic_api_key` secret: lease TTLs, renew, revoke, and the WAL
//! rollback that deletes keys a failed or interrupted issuance left behind.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::role::{self, Role};
use super::{atlas_error, Engine, SECRET_TYPE};
use crate::atlas::{AtlasClient, AtlasError};
use crate::vault::framework::{handler, BackendError, Request, Response, SecretType};

/// What a WAL entry records to find and delete a key. Also reads entries the
/// official plugin wrote (`Role` holds the description, ids are Go field names).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct WalKey {
    #[serde(default, alias = "Role")]
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

impl WalKey {
    pub(crate) fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Deletes a key; a key that is already gone counts as deleted.
pub(crate) async fn delete_key(
    client: &AtlasClient,
    org_id: &str,
    key_id: &str,
) -> Result<(), AtlasError> {
    match client.delete_org_key(org_id, key_id).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Lease TTLs for a role: its own when set, else the mount's.
pub(crate) async fn ttls(req: &Request, role: &Role) -> Result<(Duration, Duration), BackendError> {
    let ttl = if role.ttl.is_zero() {
        req.system.default_lease_ttl().await?
    } else {
        role.ttl
    };
    let max_ttl = if role.max_ttl.is_zero() {
        req.system.max_lease_ttl().await?
    } else {
        role.max_ttl
    };
    Ok((ttl, max_ttl.max(ttl)))
}

pub(crate) fn secret_type(engine: &Engine) -> SecretType {
    let revoking = engine.clone();
    SecretType {
        name: SECRET_TYPE,
        renew: Some(handler(|req, _| async move { renew(req).await.map(Some) })),
        revoke: Some(handler(move |req, _| {
            let engine = revoking.clone();
            async move { revoke(&engine, req).await.map(|()| None) }
        })),
        rollback: Some(wal_rollback(engine)),
    }
}

/// Extends by the requested increment, else the role's ttl, else the mount
/// default, never past max_ttl from the original issue time.
async fn renew(req: Request) -> Result<Response, BackendError> {
    let mut secret = req
        .secret
        .clone()
        .ok_or_else(|| BackendError::internal("renew without a secret"))?;
    let name = secret.internal_str("role").unwrap_or_default().to_string();
    let role = role::load(req.storage.as_ref(), &name).await?.ok_or_else(|| {
        BackendError::user(format!(
            "role {name:?} no longer exists, so its leases cannot be renewed; they stay valid until they expire"
        ))
    })?;
    let (role_ttl, max_ttl) = ttls(&req, &role).await?;
    let mut ttl = if secret.lease.increment.is_zero() {
        role_ttl
    } else {
        secret.lease.increment
    };
    if let Some(issued) = secret.lease.issue_time {
        let age = SystemTime::now().duration_since(issued).unwrap_or_default();
        ttl = ttl.min(max_ttl.saturating_sub(age));
    }
    secret.lease.ttl = ttl;
    secret.lease.max_ttl = max_ttl;
    Ok(Response {
        secret: Some(secret),
        ..Response::default()
    })
}

/// Deletes the key behind a lease. Fails (so Vault retries) unless the key is gone.
async fn revoke(engine: &Engine, req: Request) -> Result<(), BackendError> {
    let secret = req
        .secret
        .as_ref()
        .ok_or_else(|| BackendError::internal("revoke without a secret"))?;
    let key_id = secret
        .internal_str("programmatic_api_key_id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            BackendError::internal(
                "the lease has no programmatic_api_key_id; nothing identifies the key to delete",
            )
        })?
        .to_string();
    let key = WalKey {
        organization_id: secret
            .internal_str("organization_id")
            .unwrap_or_default()
            .into(),
        project_id: secret.internal_str("project_id").unwrap_or_default().into(),
        key_org_id: secret.internal_str("key_org_id").unwrap_or_default().into(),
        programmatic_api_key_id: key_id,
        description: String::new(),
    };
    let client = revoking_client(engine, &req).await?;
    delete_recorded_key(&client, &key).await.map_err(|e| {
        BackendError::internal(format!(
            "revoking Atlas API key {}: {e}",
            key.programmatic_api_key_id
        ))
    })?;
    tracing::debug!(key_id = %key.programmatic_api_key_id, "revoked Atlas API key");
    Ok(())
}

/// Revocation without credentials must fail loudly, or Vault forgets the lease and the key leaks.
async fn revoking_client(engine: &Engine, req: &Request) -> Result<AtlasClient, BackendError> {
    match engine.client(req).await {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(BackendError::internal(
            "cannot delete the Atlas API key: the mount has no config (write <mount>/config); Vault will retry the revocation",
        )),
        Err(e) => Err(BackendError::internal(format!("cannot delete the Atlas API key: {e}; Vault will retry the revocation"))),
    }
}

/// Deletes the key a lease or WAL entry names, finding its organization if needed.
async fn delete_recorded_key(client: &AtlasClient, key: &WalKey) -> Result<(), AtlasError> {
    let id = &key.programmatic_api_key_id;
    let org = [&key.key_org_id, &key.organization_id]
        .into_iter()
        .find(|o| !o.is_empty());
    if let Some(org) = org {
        return delete_key(client, org, id).await;
    }
    // A project key leased by the official plugin: its organization is in Atlas' listing.
    let keys = match client.list_project_keys(&key.project_id).await {
        Err(e) if e.is_not_found() => return Ok(()),
        other => other?,
    };
    match keys.iter().find(|k| &k.id == id) {
        Some(found) => match found.org_id() {
            Some(org) => delete_key(client, org, id).await,
            None => Err(AtlasError::Unexpected {
                message: format!(
                    "Atlas lists key {id} in project {} without an organization role",
                    key.project_id
                ),
                problem: None,
            }),
        },
        None => {
            tracing::warn!(key_id = %id, project_id = %key.project_id, "key not found in its project; treating it as already deleted");
            Ok(())
        }
    }
}

fn wal_rollback(engine: &Engine) -> crate::vault::framework::WalRollback {
    let engine = engine.clone();
    crate::vault::framework::rollback_handler(move |req, data| {
        let engine = engine.clone();
        async move { rollback(&engine, req, data).await }
    })
}

async fn rollback(engine: &Engine, req: Request, data: Value) -> Result<(), BackendError> {
    let key: WalKey = serde_json::from_value(data)
        .map_err(|e| BackendError::internal(format!("unreadable WAL entry: {e}")))?;
    let client = revoking_client(engine, &req).await?;
    delete_wal_key(&client, &req, &key).await.map(|_| ())
}

/// Deletes the key a WAL entry records. `Ok(true)`: the key is gone (deleted now
/// or before); `Ok(false)`: no key with the entry's description exists (yet).
pub(crate) async fn delete_wal_key(
    client: &AtlasClient,
    req: &Request,
    key: &WalKey,
) -> Result<bool, BackendError> {
    if !key.programmatic_api_key_id.is_empty() {
        return delete_recorded_key(client, key)
            .await
            .map(|()| true)
            .map_err(|e| atlas_error("rolling back an Atlas API key", e));
    }
    if key.description.is_empty() {
        return Ok(false);
    }
    // The create may or may not have happened: look for the key by its unique description.
    let mut orgs: Vec<String> = [key.organization_id.clone(), key.key_org_id.clone()]
        .into_iter()
        .filter(|o| !o.is_empty())
        .collect();
    let mut projects: Vec<String> = [key.project_id.clone()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if orgs.is_empty() && projects.is_empty() {
        // An entry of the official plugin records only the description: search every role's scope.
        for name in req.storage.list("roles/").await? {
            if let Some(role) = role::load(req.storage.as_ref(), &name).await? {
                orgs.push(role.organization_id);
                projects.push(role.project_id);
            }
        }
        orgs.retain(|o| !o.is_empty());
        projects.retain(|p| !p.is_empty());
        orgs.sort_unstable();
        orgs.dedup();
        projects.sort_unstable();
        projects.dedup();
    }
    for org in &orgs {
        let found = client
            .find_org_key_by_desc(org, &key.description)
            .await
            .map_err(|e| atlas_error("rollback lookup", e))?;
        if let Some(found) = found {
            return delete_key(client, org, &found.id)
                .await
                .map(|()| true)
                .map_err(|e| atlas_error("rolling back an Atlas API key", e));
        }
    }
    for project in &projects {
        let keys = match client.list_project_keys(project).await {
            Err(e) if e.is_not_found() => continue,
            other => other.map_err(|e| atlas_error("rollback lookup", e))?,
        };
        if let Some(found) = keys.iter().find(|k| k.desc == key.description) {
            let org = found.org_id().unwrap_or_default().to_string();
            return delete_key(client, &org, &found.id)
                .await
                .map(|()| true)
                .map_err(|e| atlas_error("rolling back an Atlas API key", e));
        }
    }
    Ok(false)
}
