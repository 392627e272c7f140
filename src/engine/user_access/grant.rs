//! Granting and releasing: a grant's part of an [`issuance`](crate::engine::issuance).
//!
//! Everything that reads or changes a person's roles runs under one lock, so a
//! grant never reads roles that a release is about to remove. For each place,
//! the ledger is stored before Atlas is changed; a failure part-way releases
//! what was recorded, and the WAL entry lets the rollback do it if the plugin
//! stops first.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Map};
use tokio::sync::Mutex;
use wildmatch::WildMatch;

use super::ledger::{self, Ledger, Place};
use super::{secret_type, GrantRecord};
use crate::atlas::{AtlasClient, AtlasError, OrgUser};
use crate::engine::issuance::{self, unique_name, Credential, Handout, Ttls};
use crate::engine::roles::Role;
use crate::engine::schedule::rfc3339;
use crate::engine::{AtlasContext, Engine};
use crate::vault::framework::{BackendError, FieldData, Request, Response};
use crate::vault::storage::Storage;

/// Serializes every read-modify-write of a person's roles in this process
/// (writes reach only the active node, where every mount's plugin runs).
static LEDGERS: Mutex<()> = Mutex::const_new(());

/// Grants `role` to the person the request names (or is).
pub(crate) async fn issue(
    engine: &Engine,
    req: Request,
    name: &str,
    role: Role,
    client: AtlasClient,
    fields: &FieldData,
) -> Result<Response, BackendError> {
    let username = username(&req, &role, fields).await?;
    check_allowed(&role, &username)?;
    let organization_id = match role.organization_id.as_str() {
        "" => {
            let first = role.assigned_projects().first().map(|p| p.to_string());
            client
                .project_org_id(&first.unwrap_or_default())
                .await
                .context("reading the project's organization")?
        }
        org => org.to_owned(),
    };
    let user = member(&client, &organization_id, &username).await?;
    let record = GrantRecord {
        role: name.to_owned(),
        grant_id: unique_name(name, "-_.", 100, ""),
        username: user.username.clone(),
        user_id: user.id.clone(),
        organization_id,
        org_roles: role.roles().to_vec(),
        project_roles: role
            .assigned_projects()
            .into_iter()
            .map(|p| (p.to_owned(), role.project_roles().to_vec()))
            .collect(),
    };
    let grant = NewGrant {
        record,
        client,
        storage: req.storage.clone(),
    };
    issuance::issue(engine, req, name, &role, secret_type(engine), grant).await
}

/// The person to grant: `username`, or the requester's entity metadata.
async fn username(req: &Request, role: &Role, fields: &FieldData) -> Result<String, BackendError> {
    let given = fields
        .string("username")?
        .map(|u| u.trim().to_owned())
        .unwrap_or_default();
    if role.username_from_entity.is_empty() {
        if given.is_empty() {
            return Err(BackendError::user(
                "username is required: the MongoDB Cloud username (email address) of the person to grant, e.g. username=alice@example.com",
            ));
        }
        return Ok(given);
    }
    let key = &role.username_from_entity;
    if req.entity_id.is_empty() {
        return Err(BackendError::user(format!(
            "this role grants the requester their own access, from the {key:?} metadata of their Vault identity entity; the request's token has no entity (a root token, say): log in as the person"
        )));
    }
    let metadata = req
        .system
        .entity_metadata(&req.entity_id)
        .await?
        .unwrap_or_default();
    let own = metadata
        .get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            BackendError::user(format!(
                "the requester's Vault identity entity has no {key:?} metadata: an operator sets it (vault write identity/entity/id/<id> metadata={key}=<MongoDB Cloud username>)"
            ))
        })?;
    if !given.is_empty() && !given.eq_ignore_ascii_case(&own) {
        return Err(BackendError::user(format!(
            "username: this role grants only the requester's own access ({key:?} of their identity entity); leave username out"
        )));
    }
    Ok(own)
}

/// A username outside the role's patterns is a 400 naming them.
fn check_allowed(role: &Role, username: &str) -> Result<(), BackendError> {
    let patterns = role.allowed_users.as_deref().unwrap_or_default();
    if patterns.is_empty()
        || patterns
            .iter()
            .any(|p| WildMatch::new_case_insensitive(p.trim()).matches(username))
    {
        return Ok(());
    }
    Err(BackendError::user(format!(
        "username {username:?} is not allowed by this role: allowed_users is {}",
        patterns.join(", ")
    )))
}

/// The organization member named `username`; anyone else is a 400 (Atlas
/// would invite them, and an invitation must be accepted first).
async fn member(client: &AtlasClient, org: &str, username: &str) -> Result<OrgUser, BackendError> {
    match client
        .find_org_user_by_username(org, username)
        .await
        .context("looking up the person in the organization")?
    {
        Some(user) if user.is_active() => Ok(user),
        Some(_) => Err(BackendError::user(format!(
            "{username:?} has not accepted their invitation to organization {org} yet: only members can be granted access"
        ))),
        None => Err(BackendError::user(format!(
            "{username:?} is not a member of organization {org}: only existing members can be granted access (invite them in Atlas first)"
        ))),
    }
}

/// A grant about to be made.
struct NewGrant {
    record: GrantRecord,
    client: AtlasClient,
    storage: Arc<dyn Storage>,
}

/// Every place of a grant, with the roles it needs there.
fn places(record: &GrantRecord) -> Vec<(Place, BTreeSet<String>)> {
    let org = (!record.org_roles.is_empty()).then(|| {
        (
            Place::Org(record.organization_id.clone()),
            record.org_roles.iter().cloned().collect(),
        )
    });
    org.into_iter()
        .chain(
            record
                .project_roles
                .iter()
                .map(|(p, roles)| (Place::Project(p.clone()), roles.iter().cloned().collect())),
        )
        .collect()
}

impl Credential for NewGrant {
    type Record = GrantRecord;
    type Issued = ();
    const ISSUED_LOG: &'static str = "granted Atlas roles to a person";

    fn record(&self) -> GrantRecord {
        self.record.clone()
    }

    /// The whole grant: each place recorded in its ledger, then changed in
    /// Atlas. A failure releases what was done before it returns.
    async fn create(&self, record: &mut GrantRecord, _: Option<Ttls>) -> Result<(), AtlasError> {
        // Not Atlas' doing, but the issuance reports what stopped a create as one (a 500).
        let storage_failure = |e: BackendError| {
            AtlasError::InvalidArgument(format!(
                "recording the grant in the plugin's storage failed, before Atlas was changed: {e}"
            ))
        };
        let storage = self.storage.as_ref();
        let _one_at_a_time = LEDGERS.lock().await;
        let mut done = Vec::new();
        for (place, roles) in places(record) {
            done.push(place.clone());
            if let Err(e) = grant_place(&self.client, storage, record, &place, &roles).await {
                let failure = match e {
                    Grant::Atlas(e) => e,
                    Grant::Storage(e) => storage_failure(e),
                };
                return Err(
                    match release_places(&self.client, storage, record, &done).await {
                        Ok(()) => failure,
                        // Left to the issuance's cleanup and the WAL rollback.
                        Err(_) => AtlasError::CreateUncertain {
                            desc: format!("grant {}", record.grant_id),
                            orphan_key_id: None,
                            source: Box::new(failure),
                        },
                    },
                );
            }
        }
        Ok(())
    }

    async fn configure(&self, _: &(), _: &GrantRecord) -> Result<(), AtlasError> {
        Ok(())
    }

    fn answer(
        &self,
        _: (),
        record: &GrantRecord,
        (ttl, max_ttl): Ttls,
    ) -> Result<Handout, BackendError> {
        let now = SystemTime::now();
        let mut data = Map::new();
        data.insert("username".into(), json!(record.username));
        data.insert("user_id".into(), json!(record.user_id));
        data.insert("organization_id".into(), json!(record.organization_id));
        data.insert("org_roles".into(), json!(record.org_roles));
        data.insert("project_roles".into(), json!(record.project_roles));
        data.insert("expires_at".into(), json!(rfc3339(now + ttl)));
        data.insert(
            "expires_at_latest".into(),
            json!(rfc3339(now + max_ttl.max(ttl))),
        );
        Ok(Handout {
            data,
            ttls: (ttl, max_ttl),
        })
    }

    fn client(&self) -> &AtlasClient {
        &self.client
    }
}

enum Grant {
    Atlas(AtlasError),
    Storage(BackendError),
}

/// The person's roles in `place` now; `None`: not in the project.
async fn current_roles(
    client: &AtlasClient,
    record: &GrantRecord,
    place: &Place,
) -> Result<Option<BTreeSet<String>>, AtlasError> {
    Ok(match place {
        Place::Org(org) => Some(
            client
                .get_org_user(org, &record.user_id)
                .await?
                .org_roles
                .into_iter()
                .collect(),
        ),
        Place::Project(project) => client
            .project_user(project, &record.user_id)
            .await?
            .map(|u| u.roles.into_iter().collect()),
    })
}

/// Records the grant in the place's ledger, then adds what the person lacks.
async fn grant_place(
    client: &AtlasClient,
    storage: &dyn Storage,
    record: &GrantRecord,
    place: &Place,
    roles: &BTreeSet<String>,
) -> Result<(), Grant> {
    let current = current_roles(client, record, place)
        .await
        .map_err(Grant::Atlas)?;
    let mut ledger = ledger::load(storage, place, &record.user_id)
        .await
        .map_err(Grant::Storage)?
        .unwrap_or_else(|| Ledger::first(current.as_ref()));
    let held = current.clone().unwrap_or_default();
    let missing = ledger.grant(&record.grant_id, roles, &held);
    ledger::store(storage, place, &record.user_id, &ledger)
        .await
        .map_err(Grant::Storage)?;
    match place {
        Place::Org(org) => {
            for role in &missing {
                client
                    .add_org_role(org, &record.user_id, role)
                    .await
                    .map_err(Grant::Atlas)?;
            }
        }
        Place::Project(project) if current.is_none() => {
            client
                .add_user_to_project(project, &record.username, &missing)
                .await
                .map_err(Grant::Atlas)?;
        }
        Place::Project(project) => {
            for role in &missing {
                client
                    .add_project_role(project, &record.user_id, role)
                    .await
                    .map_err(Grant::Atlas)?;
            }
        }
    }
    Ok(())
}

/// Ends a grant everywhere: what no other live grant needs, and the person
/// did not hold before, is removed. Idempotent (a revocation is retried).
pub(super) async fn release(
    client: &AtlasClient,
    storage: &dyn Storage,
    record: &GrantRecord,
) -> Result<(), BackendError> {
    let _one_at_a_time = LEDGERS.lock().await;
    let all: Vec<Place> = places(record).into_iter().map(|(p, _)| p).collect();
    release_places(client, storage, record, &all).await
}

/// [`release`] of some places; the caller holds the lock.
async fn release_places(
    client: &AtlasClient,
    storage: &dyn Storage,
    record: &GrantRecord,
    places: &[Place],
) -> Result<(), BackendError> {
    for place in places {
        let Some(mut ledger) = ledger::load(storage, place, &record.user_id).await? else {
            continue;
        };
        let release = ledger.release(&record.grant_id);
        match place {
            Place::Project(project) if release.remove_member => {
                gone_is_fine(
                    client
                        .remove_user_from_project(project, &record.user_id)
                        .await,
                )
                .context("removing the person from the project")?;
            }
            Place::Project(project) => {
                for role in &release.remove_roles {
                    gone_is_fine(
                        client
                            .remove_project_role(project, &record.user_id, role)
                            .await
                            .map(drop),
                    )
                    .context("removing a project role")?;
                }
            }
            Place::Org(org) => {
                for role in &release.remove_roles {
                    gone_is_fine(
                        client
                            .remove_org_role(org, &record.user_id, role)
                            .await
                            .map(drop),
                    )
                    .context("removing an organization role")?;
                }
            }
        }
        // Only once Atlas holds what the ledger will say: a retry recomputes the rest.
        ledger::store(storage, place, &record.user_id, &ledger).await?;
    }
    Ok(())
}

/// A person or role already gone is what a release wants.
fn gone_is_fine(result: Result<(), AtlasError>) -> Result<(), AtlasError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
