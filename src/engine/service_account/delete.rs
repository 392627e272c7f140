//! Deleting the service account a lease or WAL entry records: by client id,
//! or, when the create's answer never came, by its unique name.

use super::AccountRecord;
use crate::atlas::{AccountScope, AtlasClient, AtlasError};
use crate::engine::AtlasContext;
use crate::vault::framework::BackendError;

/// Deletes the account a record names, looking it up by name when the create's
/// answer never came. `Ok(true)`: it is gone; `Ok(false)`: no such account (yet).
pub(super) async fn delete_recorded(
    client: &AtlasClient,
    record: &AccountRecord,
) -> Result<bool, BackendError> {
    const DELETING: &str = "deleting an Atlas service account";
    let client_id = if record.client_id.is_empty() {
        let scope = if record.organization_id.is_empty() {
            AccountScope::Project(&record.project_id)
        } else {
            AccountScope::Org(&record.organization_id)
        };
        match client
            .find_service_account_by_name(scope, &record.name)
            .await
        {
            Ok(Some(found)) => found.client_id,
            Ok(None) => return Ok(false),
            // The organization or project itself is gone: so is the account.
            Err(e) if e.is_not_found() => return Ok(true),
            Err(e) => return Err(e).context("looking up an Atlas service account"),
        }
    } else {
        record.client_id.clone()
    };
    delete_account(client, record, &client_id)
        .await
        .context(DELETING)?;
    Ok(true)
}

/// Deletes the account from its organization (everywhere at once). A project
/// account whose record lacks its organization (Atlas failed the lookup during
/// the issuance, or the WAL entry was written before the create) has it read
/// from the project first: removing it from the project alone would leave it in
/// the organization with a live secret. A project account the login may not
/// delete there (a Project Owner), or whose organization it may not read, is
/// removed from its project: it then reaches nothing, and its secret expires.
async fn delete_account(
    client: &AtlasClient,
    record: &AccountRecord,
    client_id: &str,
) -> Result<(), AtlasError> {
    let gone = |r: Result<(), AtlasError>| match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    };
    let project_account = !record.project_id.is_empty() && record.organization_id.is_empty();
    let org_id = if record.account_org_id.is_empty() && project_account {
        match client.project_org_id(&record.project_id).await {
            Ok(org) => org,
            // The project is gone, or the login may not read it: remove the account from
            // the project (below), which also says whether it is gone.
            Err(e)
                if e.is_not_found()
                    || matches!(e, AtlasError::Unauthorized(_) | AtlasError::Forbidden(_)) =>
            {
                String::new()
            }
            Err(e) => return Err(e),
        }
    } else {
        record.account_org_id.clone()
    };
    if !org_id.is_empty() {
        match gone(client.delete_service_account(&org_id, client_id).await) {
            Err(AtlasError::Unauthorized(_) | AtlasError::Forbidden(_)) if project_account => {}
            other => return other,
        }
    }
    gone(
        client
            .remove_service_account_from_project(&record.project_id, client_id)
            .await,
    )
}
