//! One tidy run: what Atlas holds in the mount's organizations and projects,
//! judged against the record of issued credentials and the WAL, and what is
//! deleted.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::{self, Entry};
use super::MountTag;
use crate::atlas::{AtlasClient, AtlasError};
use crate::engine::api_key::{self, KeyRecord};
use crate::engine::lease::Record;
use crate::engine::roles;
use crate::engine::schedule::rfc3339;
use crate::engine::service_account::{self, AccountRecord};
use crate::engine::user_access::GrantRecord;
use crate::vault::framework::{wal, BackendError, Request};

/// Deletes at once: few enough to stay well inside Atlas' rate limits.
const CONCURRENT_DELETES: usize = 4;
/// The credentials a report names (counts are always complete).
const REPORTED: usize = 100;

/// Where the mount's credentials may be: every organization and project its
/// roles and its record name.
#[derive(Debug, Default)]
pub(crate) struct Scopes {
    pub orgs: BTreeSet<String>,
    pub projects: BTreeSet<String>,
}

impl Scopes {
    fn add_ids(&mut self, data: &Value) {
        let id = |field: &str| {
            data.get(field)
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
        };
        for field in ["organization_id", "key_org_id", "account_org_id"] {
            self.orgs.extend(id(field));
        }
        self.projects.extend(id("project_id"));
    }
}

/// A credential Atlas lists.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub kind: &'static str,
    pub id: String,
    /// The API key's description, the service account's name.
    pub name: String,
    pub organization_id: String,
    /// Unix seconds, when Atlas says (or its id does).
    pub created_at: Option<i64>,
    /// The credential type's record of it: what deletes it.
    pub record: Value,
}

/// What the listings found, and where they failed.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub found: Vec<Found>,
    pub errors: Vec<String>,
    /// Kinds with a failed listing: their record entries are not pruned.
    pub incomplete: BTreeSet<&'static str>,
}

impl Listing {
    /// Adds what one listing found, unless an earlier one found it already
    /// (an organization key assigned to a listed project).
    pub(crate) fn add(&mut self, found: Found) {
        if !self
            .found
            .iter()
            .any(|f| f.kind == found.kind && f.id == found.id)
        {
            self.found.push(found);
        }
    }

    /// Notes a failed listing; a scope that no longer exists holds nothing.
    pub(crate) fn failed(&mut self, kind: &'static str, scope: &str, e: AtlasError) {
        if e.is_not_found() {
            return;
        }
        self.errors
            .push(format!("listing {kind} credentials in {scope}: {e}"));
        self.incomplete.insert(kind);
    }
}

/// The creation time in a MongoDB ObjectId (Atlas' ids): its first 4 bytes.
pub(crate) fn object_id_time(id: &str) -> Option<i64> {
    let hex = id.get(id.len().checked_sub(24)?..)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(&hex[..8], 16).ok().map(i64::from)
}

/// An RFC 3339 time as Unix seconds.
pub(crate) fn rfc3339_time(at: &str) -> Option<i64> {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// What the plugin knows of: recorded (handed to Vault) or in the WAL (being
/// issued, or awaiting rollback).
#[derive(Debug, Default)]
struct Known {
    recorded: HashSet<(String, String)>,
    wal_ids: HashSet<String>,
    wal_names: HashSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Without this mount's tag: never touched.
    NotOurs,
    InUse,
    /// Unknown, but younger than the margin (or of unknown age).
    TooRecent,
    Orphaned,
}

fn judge(found: &Found, tag: &MountTag, known: &Known, now: i64, margin: i64) -> Verdict {
    if !tag.marks(&found.name) {
        return Verdict::NotOurs;
    }
    if known
        .recorded
        .contains(&(found.kind.to_owned(), found.id.clone()))
        || known.wal_ids.contains(&found.id)
        || known.wal_names.contains(&found.name)
    {
        return Verdict::InUse;
    }
    match found.created_at {
        Some(created) if now.saturating_sub(created) >= margin => Verdict::Orphaned,
        _ => Verdict::TooRecent,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Trigger {
    Manual,
    Scheduled,
}

/// One credential a run deleted (or would have).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Swept {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
    pub organization_id: String,
    pub created_at: String,
    /// `orphaned` (no record, no WAL entry), `expired` (past its lease's
    /// lifetime) or `too_recent` (unknown, younger than the margin: kept).
    pub reason: String,
    pub deleted: bool,
}

/// A run's answer, also kept as the last run's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub trigger: Option<Trigger>,
    pub dry_run: bool,
    /// Seconds.
    pub safety_margin: u64,
    pub started_at: String,
    pub finished_at: String,
    /// Credentials Atlas lists in the searched organizations and projects.
    pub listed: usize,
    /// Those bearing this mount's tag.
    pub tagged: usize,
    /// Tagged and recorded (and not expired), or in the WAL.
    pub in_use: usize,
    /// Tagged, unknown, older than the margin.
    pub orphaned: usize,
    /// Recorded, past their lease's maximum lifetime plus the margin.
    pub expired: usize,
    /// Tagged and unknown, but younger than the margin: left alone.
    pub too_recent: usize,
    pub deleted: usize,
    pub delete_failed: usize,
    /// Record entries of credentials Atlas no longer has.
    pub stale_records: usize,
    pub scope_errors: Vec<String>,
    /// Why something found was not deleted, beyond the counts.
    pub notes: Vec<String>,
    /// The orphaned, expired and too recent credentials (deleted or not), the
    /// first [`REPORTED`] by type and id.
    pub credentials: Vec<Swept>,
}

pub(crate) struct Options {
    pub dry_run: bool,
    pub margin: Duration,
    pub trigger: Trigger,
}

/// Everything the mount's record and roles say about where to look.
async fn scopes(req: &Request, entries: &[Entry]) -> Result<Scopes, BackendError> {
    let storage = req.storage.as_ref();
    let mut scopes = Scopes::default();
    for name in storage.list(roles::PREFIX).await? {
        if let Some(role) = roles::load(storage, &name).await? {
            if !role.organization_id.is_empty() {
                scopes.orgs.insert(role.organization_id.clone());
            }
            for project in role.assigned_projects() {
                scopes.projects.insert(project.to_owned());
            }
        }
    }
    for entry in entries {
        scopes.add_ids(&entry.data);
    }
    Ok(scopes)
}

/// The ids and names of the credentials the WAL records.
async fn wal_known(req: &Request, known: &mut Known) -> Result<(), BackendError> {
    let storage = req.storage.as_ref();
    for id in wal::list(storage).await? {
        let Some(entry) = wal::get(storage, &id).await? else {
            continue;
        };
        let (id, name) = match entry.kind.as_str() {
            KeyRecord::KIND => match KeyRecord::read(entry.data) {
                Ok(r) => (r.programmatic_api_key_id, r.description),
                Err(_) => continue,
            },
            AccountRecord::KIND => match AccountRecord::read(entry.data) {
                Ok(r) => (r.client_id, r.name),
                Err(_) => continue,
            },
            _ => continue,
        };
        for (set, value) in [(&mut known.wal_ids, id), (&mut known.wal_names, name)] {
            if !value.is_empty() {
                set.insert(value);
            }
        }
    }
    Ok(())
}

const REPLICATED: &str = "orphans are reported, not deleted: this mount is replicated to other performance clusters, which issue credentials with the same mount tag and keep their own record (compare with a dry run there, then delete by hand)";

/// Whether a performance replica of this mount issues credentials too: a
/// replicated mount has the same backend UUID, so the same tag, everywhere.
/// Only Vault Enterprise replicates (OpenBao's active node calls itself a
/// performance primary all the same).
async fn shared_with_other_clusters(req: &Request) -> Result<bool, BackendError> {
    use crate::vault::system_view::{
        REPLICATION_PERFORMANCE_PRIMARY, REPLICATION_PERFORMANCE_SECONDARY,
    };
    let system = &req.system;
    if !system.vault_version_metadata().await?.contains("ent") {
        return Ok(false);
    }
    let state = system.replication_state().await?;
    let replicated =
        state & (REPLICATION_PERFORMANCE_PRIMARY | REPLICATION_PERFORMANCE_SECONDARY) != 0;
    Ok(replicated && !system.local_mount().await?)
}

/// Every API key and service account in the scopes.
async fn list(client: &AtlasClient, scopes: &Scopes) -> Listing {
    let mut listing = Listing::default();
    api_key::list_issued(client, scopes, &mut listing).await;
    service_account::list_issued(client, scopes, &mut listing).await;
    listing
}

/// Deletes what a record of kind `kind` names. `Ok(true)`: it is gone.
async fn delete(
    kind: &str,
    data: Value,
    client: &AtlasClient,
    req: &Request,
) -> Result<bool, BackendError> {
    async fn as_record<R: Record>(
        data: Value,
        client: &AtlasClient,
        req: &Request,
    ) -> Result<bool, BackendError> {
        R::read(data)?.delete(client, req).await
    }
    match kind {
        KeyRecord::KIND => as_record::<KeyRecord>(data, client, req).await,
        AccountRecord::KIND => as_record::<AccountRecord>(data, client, req).await,
        GrantRecord::KIND => as_record::<GrantRecord>(data, client, req).await,
        other => Err(BackendError::internal(format!(
            "a recorded credential of unknown type {other:?}"
        ))),
    }
}

/// One tidy run.
///
/// Atlas is listed first, then the WAL, then the record: an issuance writes
/// its WAL entry before the create and its record entry before deleting the
/// WAL entry, so a credential the listing shows is in one of them when read,
/// and even a zero margin takes no issuance in flight for an orphan.
pub(crate) async fn run(
    tag: &MountTag,
    client: &AtlasClient,
    req: &Request,
    options: Options,
) -> Result<Report, BackendError> {
    let started = SystemTime::now();
    let storage = req.storage.as_ref();
    let margin = i64::try_from(options.margin.as_secs()).unwrap_or(i64::MAX);
    let scopes = scopes(req, &record::list(storage).await?).await?;

    let listing_started = record::unix(SystemTime::now());
    let listing = list(client, &scopes).await;

    let mut known = Known::default();
    wal_known(req, &mut known).await?;
    let entries = record::list(storage).await?;
    known.recorded = entries
        .iter()
        .map(|e| (e.kind.clone(), e.id.clone()))
        .collect();
    let now = record::unix(SystemTime::now());

    let mut report = Report {
        trigger: Some(options.trigger),
        dry_run: options.dry_run,
        safety_margin: options.margin.as_secs(),
        started_at: rfc3339(started),
        listed: listing.found.len(),
        scope_errors: listing.errors.clone(),
        ..Report::default()
    };
    // (kind, record data, what the report says of it)
    let mut doomed: Vec<(String, Value, Swept)> = Vec::new();
    let (mut orphans, mut young, mut in_use) = (Vec::new(), Vec::new(), HashSet::new());
    for found in &listing.found {
        match judge(found, tag, &known, now, margin) {
            Verdict::NotOurs => continue,
            Verdict::InUse => {
                in_use.insert((found.kind, found.id.as_str()));
            }
            Verdict::TooRecent => young.push(found),
            Verdict::Orphaned => orphans.push(found),
        }
        report.tagged += 1;
    }
    report.too_recent = young.len();
    if !orphans.is_empty() {
        // A credential revoked after the listing is neither in the WAL nor in
        // the record any more: only one Atlas still lists now is an orphan.
        let again = list(client, &scopes).await;
        orphans.retain(|o| {
            !again.incomplete.contains(o.kind)
                && again.found.iter().any(|f| f.kind == o.kind && f.id == o.id)
        });
        for error in again.errors {
            if !report.scope_errors.contains(&error) {
                report.scope_errors.push(error);
            }
        }
    }
    report.orphaned = orphans.len();
    let mut kept = young
        .iter()
        .map(|f| swept(f, "too_recent"))
        .collect::<Vec<_>>();
    if !orphans.is_empty() && shared_with_other_clusters(req).await? {
        // Another cluster issues under the same tag, and keeps its own record.
        report.notes.push(REPLICATED.to_owned());
        kept.extend(orphans.drain(..).map(|f| swept(f, "orphaned")));
    }
    for found in orphans {
        doomed.push((
            found.kind.to_owned(),
            found.record.clone(),
            swept(found, "orphaned"),
        ));
    }
    let listed: HashSet<(&str, &str)> = listing
        .found
        .iter()
        .map(|f| (f.kind, f.id.as_str()))
        .collect();
    let mut stale = Vec::new();
    for entry in &entries {
        let is_listed = listed.contains(&(entry.kind.as_str(), entry.id.as_str()));
        if entry.lives_until.saturating_add(margin) < now {
            report.expired += 1;
            // Counted once: expired, not also in use.
            in_use.remove(&(entry.kind.as_str(), entry.id.as_str()));
            let found = listing
                .found
                .iter()
                .find(|f| f.kind == entry.kind && f.id == entry.id);
            let described = match found {
                Some(found) => swept(found, "expired"),
                None => Swept {
                    kind: entry.kind.clone(),
                    id: entry.id.clone(),
                    name: String::new(),
                    organization_id: String::new(),
                    created_at: at(Some(entry.issued_at)),
                    reason: "expired".into(),
                    deleted: false,
                },
            };
            doomed.push((entry.kind.clone(), entry.data.clone(), described));
        } else if !is_listed
            && [KeyRecord::KIND, AccountRecord::KIND].contains(&entry.kind.as_str())
            && !listing.incomplete.contains(entry.kind.as_str())
            // Recorded (so created) in an earlier second than the listing began.
            && entry.issued_at < listing_started
            && now.saturating_sub(entry.issued_at) >= margin
        {
            stale.push(entry);
        }
    }
    report.stale_records = stale.len();
    report.in_use = in_use.len();

    if !options.dry_run {
        let outcomes: Vec<(Swept, Result<bool, BackendError>)> = stream::iter(doomed)
            .map(|(kind, data, described)| async move {
                let outcome = delete(&kind, data, client, req).await;
                (described, outcome)
            })
            .buffer_unordered(CONCURRENT_DELETES)
            .collect()
            .await;
        for (mut described, outcome) in outcomes {
            match outcome {
                // Gone, or (a credential found by a listing) nothing left to find.
                Ok(_) => {
                    described.deleted = true;
                    report.deleted += 1;
                    record::forget(storage, &described.kind, &described.id).await;
                    tracing::info!(kind = %described.kind, id = %described.id, reason = %described.reason, "tidy deleted a credential");
                }
                Err(e) => {
                    report.delete_failed += 1;
                    tracing::warn!(kind = %described.kind, id = %described.id, error = %e, "tidy could not delete a credential; the next run tries again");
                }
            }
            report.credentials.push(described);
        }
        for entry in stale {
            record::forget(storage, &entry.kind, &entry.id).await;
        }
    } else {
        report.credentials = doomed.into_iter().map(|(_, _, d)| d).collect();
    }
    report.credentials.extend(kept);
    report
        .credentials
        .sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    report.credentials.truncate(REPORTED);
    report.finished_at = rfc3339(SystemTime::now());
    Ok(report)
}

fn at(unix: Option<i64>) -> String {
    unix.and_then(|s| u64::try_from(s).ok())
        .map(|s| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s)))
        .unwrap_or_default()
}

fn swept(found: &Found, reason: &str) -> Swept {
    Swept {
        kind: found.kind.to_owned(),
        id: found.id.clone(),
        name: found.name.clone(),
        organization_id: found.organization_id.clone(),
        created_at: at(found.created_at),
        reason: reason.to_owned(),
        deleted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::issuance::RANDOM_SUFFIX;

    fn found(name: &str, created_at: Option<i64>) -> Found {
        Found {
            kind: KeyRecord::KIND,
            id: format!("id-{name}"),
            name: name.to_owned(),
            organization_id: "o".into(),
            created_at,
            record: Value::Null,
        }
    }

    #[test]
    fn only_tagged_unknown_credentials_older_than_the_margin_are_orphans() {
        let tag = MountTag::of("this-mount").expect("tag");
        let other = MountTag::of("that-mount").expect("tag");
        let random = "x".repeat(RANDOM_SUFFIX);
        let ours = |n: &str| format!("vault-r-{n}{}{}", &random[n.len()..], tag.suffix());
        let now = 10_000;
        let margin = 900;
        let mut known = Known::default();
        known
            .recorded
            .insert((KeyRecord::KIND.into(), format!("id-{}", ours("rec"))));
        known.wal_names.insert(ours("wal"));
        let old = Some(now - margin);
        let cases = [
            (found(&ours("orphan"), old), Verdict::Orphaned),
            (found(&ours("rec"), old), Verdict::InUse),
            (found(&ours("wal"), old), Verdict::InUse),
            (
                found(&ours("young"), Some(now - margin + 1)),
                Verdict::TooRecent,
            ),
            (found(&ours("ageless"), None), Verdict::TooRecent),
            (
                found(&format!("vault-r-{random}{}", other.suffix()), old),
                Verdict::NotOurs,
            ),
            (found(&format!("vault-r-{random}"), old), Verdict::NotOurs),
            (found("made by hand", old), Verdict::NotOurs),
        ];
        for (f, want) in cases {
            assert_eq!(judge(&f, &tag, &known, now, margin), want, "{}", f.name);
        }
    }

    #[test]
    fn ages_come_from_object_ids_and_rfc3339() {
        // 0x6a793f75: a recorded Atlas key id's creation second.
        assert_eq!(object_id_time("6a793f752c88faeba59bba49"), Some(0x6a793f75));
        assert_eq!(
            object_id_time("mdb_sa_id_6a793f752c88faeba59bba49"),
            Some(0x6a793f75)
        );
        assert_eq!(object_id_time("not-an-object-id-at-all!"), None);
        assert_eq!(object_id_time("short"), None);
        assert_eq!(rfc3339_time("1970-01-01T00:01:00Z"), Some(60));
        assert_eq!(rfc3339_time("yesterday"), None);
    }

    #[test]
    fn a_listing_keeps_one_of_each_credential() {
        let mut listing = Listing::default();
        listing.add(found("a", None));
        listing.add(found("a", None));
        listing.failed(
            KeyRecord::KIND,
            "organization o",
            AtlasError::NotFound(crate::atlas::ApiProblem {
                status: 404,
                error_code: None,
                detail: None,
                reason: None,
            }),
        );
        assert_eq!(listing.found.len(), 1);
        assert!(listing.errors.is_empty() && listing.incomplete.is_empty());
    }
}
