//! What every lease of this engine shares, whatever its credential type: TTLs
//! come from its role (else the mount), and renewal extends within them.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use super::roles::{self, Role};
use super::Engine;
use crate::vault::framework::{BackendError, FieldData, Request, Response};

/// The part of every lease's internal data that renewal reads.
#[derive(Deserialize)]
struct Issued {
    #[serde(default)]
    role: String,
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

/// Extends by the requested increment, else the role's ttl, else the mount
/// default, never past max_ttl from the original issue time.
pub(crate) async fn renew(
    _: Engine,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>, BackendError> {
    let mut secret = req
        .secret
        .clone()
        .ok_or_else(|| BackendError::internal("renew without a secret"))?;
    let issued: Issued = serde_json::from_value(Value::Object(secret.internal_data.clone()))
        .map_err(|e| BackendError::internal(format!("unreadable lease data: {e}")))?;
    let name = issued.role;
    let role = roles::load(req.storage.as_ref(), &name).await?.ok_or_else(|| {
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
    Ok(Some(Response {
        secret: Some(secret),
        ..Response::default()
    }))
}
