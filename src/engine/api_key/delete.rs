//! Deleting the key a lease or WAL entry records: by id, or, when the
//! create's answer never came, by its unique description.

use super::KeyRecord;
use crate::atlas::{AtlasClient, AtlasError};
use crate::engine::{roles, AtlasContext};
use crate::vault::framework::{BackendError, Request};

/// Deletes a key; a key that is already gone counts as deleted.
async fn delete_key(client: &AtlasClient, org_id: &str, key_id: &str) -> Result<(), AtlasError> {
    match client.delete_org_key(org_id, key_id).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Deletes the key a lease or WAL entry names, finding its organization if needed.
async fn delete_recorded_key(client: &AtlasClient, key: &KeyRecord) -> Result<(), AtlasError> {
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

/// Deletes the key a WAL entry records. `Ok(true)`: the key is gone (deleted now
/// or before); `Ok(false)`: no key with the entry's description exists (yet).
pub(super) async fn delete_wal_key(
    client: &AtlasClient,
    req: &Request,
    key: &KeyRecord,
) -> Result<bool, BackendError> {
    const DELETING: &str = "deleting an Atlas API key";
    if !key.programmatic_api_key_id.is_empty() {
        delete_recorded_key(client, key).await.context(DELETING)?;
        return Ok(true);
    }
    if key.description.is_empty() {
        return Ok(false);
    }
    // The create may or may not have happened: look for the key by its unique description.
    let (orgs, projects) = search_scope(req, key).await?;
    for org in &orgs {
        let found = client
            .find_org_key_by_desc(org, &key.description)
            .await
            .context("looking up an Atlas API key")?;
        if let Some(found) = found {
            delete_key(client, org, &found.id).await.context(DELETING)?;
            return Ok(true);
        }
    }
    for project in &projects {
        let keys = match client.list_project_keys(project).await {
            Err(e) if e.is_not_found() => continue,
            other => other.context("looking up an Atlas API key")?,
        };
        if let Some(found) = keys.iter().find(|k| k.desc == key.description) {
            let org = found.org_id().unwrap_or_default();
            delete_key(client, org, &found.id).await.context(DELETING)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// The organizations and projects to search for a key by its description: the
/// entry's own, or, for an entry of the official plugin (which records only the
/// description), those of every role.
async fn search_scope(
    req: &Request,
    key: &KeyRecord,
) -> Result<(Vec<String>, Vec<String>), BackendError> {
    let mut orgs: Vec<String> = [&key.organization_id, &key.key_org_id]
        .into_iter()
        .filter(|o| !o.is_empty())
        .cloned()
        .collect();
    let mut projects: Vec<String> = [&key.project_id]
        .into_iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect();
    if !orgs.is_empty() || !projects.is_empty() {
        return Ok((orgs, projects));
    }
    for name in req.storage.list(roles::PREFIX).await? {
        if let Some(role) = roles::load(req.storage.as_ref(), &name).await? {
            orgs.push(role.organization_id);
            projects.push(role.project_id);
        }
    }
    for ids in [&mut orgs, &mut projects] {
        ids.retain(|id| !id.is_empty());
        ids.sort_unstable();
        ids.dedup();
    }
    Ok((orgs, projects))
}
