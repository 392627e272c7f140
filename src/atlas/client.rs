//! The Atlas calls the secrets engine needs, on top of [`Transport`].

use std::collections::HashSet;
use std::sync::Arc;

use http::Method;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::config::ClientConfig;
use super::error::AtlasError;
use super::models::{
    AccessListEntry, ApiKey, CreateKeyBody, Page, ProjectRolesBody, WireAccessListEntry,
    WireAccessListRequest, WireApiKey,
};
use super::transport::{
    retry_delay, ApiRequest, ApiResponse, Failure, Idempotency, Transport, API_KEYS_MEDIA_TYPE,
};

/// Largest page Atlas serves.
const ITEMS_PER_PAGE: &str = "500";
/// Guard against a server whose `next` links never end (500 keys per org is Atlas' limit).
const MAX_PAGES: usize = 1000;
/// Atlas' limit on key descriptions.
const MAX_DESC_CHARS: usize = 250;
/// Atlas' `errorCode` for adding an access list entry the key already has.
const DUPLICATE_ACCESS_LIST_ENTRY: &str = "DUPLICATE_ACCESS_LIST_ENTRY";

/// MongoDB Atlas Administration API client (v2, programmatic API keys).
///
/// Cheap to clone; clones share connections and the Digest nonce. Every method has its own
/// overall deadline ([`Timeouts::overall`](super::Timeouts::overall)) covering retries,
/// pagination and create recovery.
#[derive(Clone, Debug)]
pub struct AtlasClient {
    pub(super) transport: Arc<Transport>,
}

/// Where a key is created, which is also where a possibly-created key is looked for.
#[derive(Clone, Copy)]
enum KeyScope<'a> {
    Org(&'a str),
    Project(&'a str),
}

impl AtlasClient {
    pub fn new(config: ClientConfig) -> Result<Self, AtlasError> {
        Ok(Self {
            transport: Arc::new(Transport::new(&config)?),
        })
    }

    /// Creates an organization API key with organization roles (`ORG_*`). The answer carries the
    /// private key, which Atlas never shows again.
    ///
    /// `desc` must be unique to this call (e.g. carry a random suffix): if the create's outcome
    /// is unknown (timeout or reset after sending, 502/503/504) the client looks for a key with
    /// this description, deletes it (its private key cannot be read back) and creates again. See
    /// [`AtlasError::CreateUncertain`] for when that cannot be completed.
    pub async fn create_org_key(
        &self,
        org_id: &str,
        desc: &str,
        roles: &[String],
    ) -> Result<ApiKey, AtlasError> {
        self.create_key(KeyScope::Org(org_id), desc, roles).await
    }

    /// Creates an organization API key assigned to one project with project roles (`GROUP_*`);
    /// Atlas adds `ORG_MEMBER` in the organization. Same `desc` contract as [`Self::create_org_key`].
    pub async fn create_project_key(
        &self,
        project_id: &str,
        desc: &str,
        roles: &[String],
    ) -> Result<ApiKey, AtlasError> {
        self.create_key(KeyScope::Project(project_id), desc, roles)
            .await
    }

    pub async fn get_org_key(&self, org_id: &str, key_id: &str) -> Result<ApiKey, AtlasError> {
        let url = self.url(&[("orgs", org_id), ("apiKeys", key_id)])?;
        let deadline = self.deadline();
        let response = self
            .send(
                ApiRequest::new(Method::GET, url, Idempotency::Idempotent),
                deadline,
            )
            .await?;
        Ok(decode::<WireApiKey>(&response, "API key")?.into())
    }

    /// Revokes the service-account token this client holds, if any: for a client being
    /// retired (its config changed). One attempt; `Ok(false)` when there was none.
    pub async fn revoke_token(&self) -> Result<bool, AtlasError> {
        let deadline = Instant::now() + self.transport.timeouts.attempt;
        self.transport.revoke_token(deadline).await
    }

    /// Every organization API key (all pages).
    pub async fn list_org_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, AtlasError> {
        let url = self.url(&[("orgs", org_id)])?;
        self.list_keys(with_segment(url, "apiKeys"), self.deadline())
            .await
    }

    /// Deletes an organization API key (which also removes it from every project).
    /// A key that is already gone is reported as [`AtlasError::NotFound`].
    pub async fn delete_org_key(&self, org_id: &str, key_id: &str) -> Result<(), AtlasError> {
        self.delete_org_key_by(org_id, key_id, self.deadline())
            .await
    }

    /// Assigns an existing organization key to a project with project roles.
    pub async fn assign_key_to_project(
        &self,
        project_id: &str,
        key_id: &str,
        roles: &[String],
    ) -> Result<(), AtlasError> {
        let url = self.url(&[("groups", project_id), ("apiKeys", key_id)])?;
        let body = to_json(&[ProjectRolesBody { roles }])?;
        // Assigning the same roles twice has the same effect as once.
        let request =
            ApiRequest::new(Method::POST, url, Idempotency::Idempotent).with_json_body(body);
        self.send(request, self.deadline()).await.map(drop)
    }

    /// Removes an organization key from a project (the key itself stays).
    pub async fn unassign_key_from_project(
        &self,
        project_id: &str,
        key_id: &str,
    ) -> Result<(), AtlasError> {
        let url = self.url(&[("groups", project_id), ("apiKeys", key_id)])?;
        let request = ApiRequest::new(Method::DELETE, url, Idempotency::Idempotent);
        self.send(request, self.deadline()).await.map(drop)
    }

    /// Every organization key assigned to the project (all pages).
    pub async fn list_project_keys(&self, project_id: &str) -> Result<Vec<ApiKey>, AtlasError> {
        let url = self.url(&[("groups", project_id)])?;
        self.list_keys(with_segment(url, "apiKeys"), self.deadline())
            .await
    }

    /// Adds entries to a key's IP access list. Nothing is sent for an empty list.
    pub async fn add_access_list(
        &self,
        org_id: &str,
        key_id: &str,
        entries: &[AccessListEntry],
    ) -> Result<(), AtlasError> {
        if entries.is_empty() {
            return Ok(());
        }
        let url = self.url(&[("orgs", org_id), ("apiKeys", key_id)])?;
        let body: Vec<WireAccessListRequest> = entries.iter().map(Into::into).collect();
        let list_url = with_segment(url, "accessList");
        let request = ApiRequest::new(Method::POST, list_url.clone(), Idempotency::Idempotent)
            .with_json_body(to_json(&body)?);
        self.add_entries(request, list_url, API_KEYS_MEDIA_TYPE, entries)
            .await
    }

    /// Sends an access-list add, which is safe to resend: the entries are either added or
    /// already there. Atlas answers an add of an existing entry with 409
    /// DUPLICATE_ACCESS_LIST_ENTRY (and adds nothing), which is what a resend gets after Atlas
    /// executed an add whose answer was lost: the add succeeded if every entry is on the list
    /// (`list_url`, read as `media_type`) now; else the conflict stands.
    pub(super) async fn add_entries(
        &self,
        request: ApiRequest,
        list_url: Url,
        media_type: &'static str,
        entries: &[AccessListEntry],
    ) -> Result<(), AtlasError> {
        let deadline = self.deadline();
        match self.send(request, deadline).await {
            Err(AtlasError::InvalidInput(problem))
                if problem.error_code() == Some(DUPLICATE_ACCESS_LIST_ENTRY) =>
            {
                let wire: Vec<WireAccessListEntry> =
                    self.list_all_as(list_url, media_type, deadline).await?;
                let present = wire
                    .into_iter()
                    .map(AccessListEntry::try_from)
                    .collect::<Result<Vec<_>, _>>()?;
                if entries
                    .iter()
                    .all(|e| present.iter().any(|p| p.same_range(e)))
                {
                    Ok(())
                } else {
                    Err(AtlasError::InvalidInput(problem))
                }
            }
            other => other.map(drop),
        }
    }

    /// A key's IP access list (all pages).
    pub async fn list_access_list(
        &self,
        org_id: &str,
        key_id: &str,
    ) -> Result<Vec<AccessListEntry>, AtlasError> {
        let url = self.url(&[("orgs", org_id), ("apiKeys", key_id)])?;
        let wire: Vec<WireAccessListEntry> = self
            .list_all(with_segment(url, "accessList"), self.deadline())
            .await?;
        wire.into_iter().map(AccessListEntry::try_from).collect()
    }

    pub async fn delete_access_list_entry(
        &self,
        org_id: &str,
        key_id: &str,
        entry: &AccessListEntry,
    ) -> Result<(), AtlasError> {
        let url = self.url(&[("orgs", org_id), ("apiKeys", key_id)])?;
        let url = with_segment(with_segment(url, "accessList"), &entry.path_value());
        let request = ApiRequest::new(Method::DELETE, url, Idempotency::Idempotent);
        self.send(request, self.deadline()).await.map(drop)
    }

    /// The organization key with exactly this description, if any (the first, should there be
    /// several). For cleaning up after a create whose answer was lost.
    pub async fn find_org_key_by_desc(
        &self,
        org_id: &str,
        desc: &str,
    ) -> Result<Option<ApiKey>, AtlasError> {
        Ok(self
            .list_org_keys(org_id)
            .await?
            .into_iter()
            .find(|key| key.desc == desc))
    }

    /// The key assigned to the project with exactly this description, if any (the first,
    /// should there be several). Like [`Self::find_org_key_by_desc`], for callers that only know
    /// the project.
    pub async fn find_project_key_by_desc(
        &self,
        project_id: &str,
        desc: &str,
    ) -> Result<Option<ApiKey>, AtlasError> {
        Ok(self
            .list_project_keys(project_id)
            .await?
            .into_iter()
            .find(|key| key.desc == desc))
    }

    // ---- internals ----

    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.transport.timeouts.overall
    }

    /// Builds `<api root>/<collection>/<id>/...` after checking that ids are plain tokens.
    pub(super) fn url(&self, parts: &[(&str, &str)]) -> Result<Url, AtlasError> {
        let mut segments = Vec::with_capacity(parts.len() * 2);
        for (collection, id) in parts {
            validate_id(collection, id)?;
            segments.push(*collection);
            segments.push(*id);
        }
        Ok(self.transport.url(&segments))
    }

    pub(super) async fn send(
        &self,
        request: ApiRequest,
        deadline: Instant,
    ) -> Result<ApiResponse, AtlasError> {
        self.transport
            .send(&request, deadline)
            .await
            .map_err(|failure| *failure.error)
    }

    async fn list_keys(&self, url: Url, deadline: Instant) -> Result<Vec<ApiKey>, AtlasError> {
        let wire: Vec<WireApiKey> = self.list_all(url, deadline).await?;
        Ok(wire.into_iter().map(ApiKey::from).collect())
    }

    /// GETs every page, following `next` links, 500 items per page.
    pub(super) async fn list_all<T: DeserializeOwned>(
        &self,
        url: Url,
        deadline: Instant,
    ) -> Result<Vec<T>, AtlasError> {
        self.list_all_as(url, API_KEYS_MEDIA_TYPE, deadline).await
    }

    /// [`Self::list_all`] with another resource version.
    pub(super) async fn list_all_as<T: DeserializeOwned>(
        &self,
        mut url: Url,
        media_type: &'static str,
        deadline: Instant,
    ) -> Result<Vec<T>, AtlasError> {
        url.query_pairs_mut()
            .append_pair("itemsPerPage", ITEMS_PER_PAGE)
            .append_pair("pageNum", "1");
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            seen.insert(url.to_string());
            let request = ApiRequest::new(Method::GET, url.clone(), Idempotency::Idempotent)
                .with_media_type(media_type);
            let response = self.send(request, deadline).await?;
            let page: Page<T> = decode(&response, "page")?;
            let next = page
                .next_href()
                .map(|href| self.transport.resolve_link(href));
            items.extend(page.results);
            match next {
                None => return Ok(items),
                Some(next) => {
                    let next = next?;
                    if seen.contains(next.as_str()) {
                        return Err(AtlasError::Unexpected {
                            message: format!("Atlas pagination loops back to {}", next.path()),
                            problem: None,
                        });
                    }
                    url = next;
                }
            }
        }
        Err(AtlasError::Unexpected {
            message: format!("Atlas pagination did not end after {MAX_PAGES} pages"),
            problem: None,
        })
    }

    async fn delete_org_key_by(
        &self,
        org_id: &str,
        key_id: &str,
        deadline: Instant,
    ) -> Result<(), AtlasError> {
        let url = self.url(&[("orgs", org_id), ("apiKeys", key_id)])?;
        let request = ApiRequest::new(Method::DELETE, url, Idempotency::Idempotent);
        self.send(request, deadline).await.map(drop)
    }

    /// Create with recovery. A create is never resent blindly once Atlas may have acted on it:
    /// first any key carrying `desc` is deleted (we could not hand it out: a read never shows
    /// the private key), then the create is tried again. Deleting and recreating, rather than
    /// returning an error, gives the caller a usable key whenever Atlas recovers in time.
    async fn create_key(
        &self,
        scope: KeyScope<'_>,
        desc: &str,
        roles: &[String],
    ) -> Result<ApiKey, AtlasError> {
        let (collection, id) = match scope {
            KeyScope::Org(org_id) => ("orgs", org_id),
            KeyScope::Project(project_id) => ("groups", project_id),
        };
        let url = with_segment(self.url(&[(collection, id)])?, "apiKeys");
        if desc.trim().is_empty() || desc.chars().count() > MAX_DESC_CHARS {
            return Err(AtlasError::InvalidArgument(format!(
                "an API key description must have 1 to {MAX_DESC_CHARS} characters"
            )));
        }
        let body = to_json(&CreateKeyBody { desc, roles })?;
        let request =
            ApiRequest::new(Method::POST, url, Idempotency::NonIdempotent).with_json_body(body);

        let deadline = self.deadline();
        let mut backoff = self.transport.backoff();
        let mut recovering = false;
        loop {
            match self.transport.send(&request, deadline).await {
                Ok(response) => {
                    return self.finish_create(scope, desc, &response, recovering).await
                }
                Err(failure) if failure.may_have_taken_effect() => {
                    tracing::warn!(
                        desc,
                        error = %failure.error,
                        "Atlas API key create may have taken effect; removing any such key before trying again"
                    );
                    recovering = true;
                    let wait = retry_delay(&failure, Iterator::next(&mut backoff), deadline);
                    if let Some(wait) = wait {
                        tokio::time::sleep(wait).await;
                    }
                    // Whatever the previous create did, no key with this description may stay,
                    // even if that takes a little past the deadline.
                    self.remove_keys_with_desc(scope, desc, None, self.grace_deadline(deadline))
                        .await
                        .map_err(|e| e.into_uncertain(desc))?;
                    if wait.is_none() {
                        // Out of attempts or time, but nothing is left behind.
                        return Err(*failure.error);
                    }
                }
                Err(failure) => return Err(create_failure(failure, desc)),
            }
        }
    }

    async fn finish_create(
        &self,
        scope: KeyScope<'_>,
        desc: &str,
        response: &ApiResponse,
        recovering: bool,
    ) -> Result<ApiKey, AtlasError> {
        let key = decode::<WireApiKey>(response, "created API key")
            .map(ApiKey::from)
            .and_then(|key| match key.private_key {
                Some(_) => Ok(key),
                None => Err(AtlasError::Unexpected {
                    message: "Atlas created an API key but returned no private key".to_owned(),
                    problem: None,
                }),
            });
        let key = match key {
            Ok(key) => key,
            Err(error) => {
                // A key exists that nobody can use: remove it now, and still report the create
                // as uncertain (a success we cannot read is no proof of what Atlas holds), so
                // the caller keeps its record for the rollback to search by description.
                let deadline = self.grace_deadline(Instant::now());
                let orphan_key_id = self
                    .remove_keys_with_desc(scope, desc, None, deadline)
                    .await
                    .err()
                    .and_then(|e| e.orphan_key_id);
                return Err(AtlasError::CreateUncertain {
                    desc: desc.to_owned(),
                    orphan_key_id,
                    source: Box::new(error),
                });
            }
        };
        if recovering {
            // An earlier create may have landed after our check; remove such late twins.
            let deadline = self.grace_deadline(Instant::now());
            if let Err(e) = self
                .remove_keys_with_desc(scope, desc, Some(&key.id), deadline)
                .await
            {
                tracing::warn!(
                    desc,
                    orphan_key_id = e.orphan_key_id.as_deref(),
                    error = %e.error,
                    "could not verify that an interrupted create left no duplicate API key"
                );
            }
        }
        Ok(key)
    }

    /// Time granted to clean-up work that must not be skipped because the deadline ran out.
    fn grace_deadline(&self, deadline: Instant) -> Instant {
        deadline.max(Instant::now() + self.transport.timeouts.attempt)
    }

    /// Deletes every key in `scope` whose description is `desc`, except `keep`.
    async fn remove_keys_with_desc(
        &self,
        scope: KeyScope<'_>,
        desc: &str,
        keep: Option<&str>,
        deadline: Instant,
    ) -> Result<(), CleanupError> {
        let listed = match scope {
            KeyScope::Org(org_id) => {
                let url = with_segment(
                    self.url(&[("orgs", org_id)]).map_err(CleanupError::from)?,
                    "apiKeys",
                );
                self.list_keys(url, deadline).await
            }
            KeyScope::Project(project_id) => {
                let url = with_segment(
                    self.url(&[("groups", project_id)])
                        .map_err(CleanupError::from)?,
                    "apiKeys",
                );
                self.list_keys(url, deadline).await
            }
        }
        .map_err(CleanupError::from)?;
        let leftovers = listed
            .into_iter()
            .filter(|key| key.desc == desc && Some(key.id.as_str()) != keep);
        for key in leftovers {
            let org_id = match scope {
                KeyScope::Org(org_id) => Some(org_id.to_owned()),
                KeyScope::Project(_) => key.org_id().map(str::to_owned),
            };
            let Some(org_id) = org_id else {
                return Err(CleanupError {
                    error: AtlasError::Unexpected {
                        message: "Atlas listed the key without its organization".to_owned(),
                        problem: None,
                    },
                    orphan_key_id: Some(key.id),
                });
            };
            match self.delete_org_key_by(&org_id, &key.id, deadline).await {
                Ok(()) | Err(AtlasError::NotFound(_)) => {
                    tracing::warn!(desc, key_id = %key.id, "deleted an API key left by an interrupted create");
                }
                Err(error) => {
                    return Err(CleanupError {
                        error,
                        orphan_key_id: Some(key.id),
                    })
                }
            }
        }
        Ok(())
    }
}

/// Why clean-up after an interrupted create failed, and which key (if known) may be left.
struct CleanupError {
    error: AtlasError,
    orphan_key_id: Option<String>,
}

impl From<AtlasError> for CleanupError {
    fn from(error: AtlasError) -> Self {
        Self {
            error,
            orphan_key_id: None,
        }
    }
}

impl CleanupError {
    fn into_uncertain(self, desc: &str) -> AtlasError {
        AtlasError::CreateUncertain {
            desc: desc.to_owned(),
            orphan_key_id: self.orphan_key_id,
            source: Box::new(self.error),
        }
    }
}

/// A failed create is definite only when the failure proves Atlas did nothing (never sent, or
/// Atlas' own 4xx). Anything else (a proxy's 3xx or 4xx, an unexpected status) may have
/// followed a create Atlas carried out, so the caller must keep its record of `desc`.
pub(super) fn create_failure(failure: Failure, desc: &str) -> AtlasError {
    if failure.not_acted_on {
        *failure.error
    } else {
        AtlasError::CreateUncertain {
            desc: desc.to_owned(),
            orphan_key_id: None,
            source: failure.error,
        }
    }
}

pub(super) fn with_segment(mut url: Url, segment: &str) -> Url {
    if let Ok(mut path) = url.path_segments_mut() {
        path.push(segment);
    }
    url
}

/// Ids go into URL paths: allow only the characters Atlas ids use (24 hex for most).
fn validate_id(what: &str, id: &str) -> Result<(), AtlasError> {
    let plain = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(AtlasError::InvalidArgument(format!(
            "{id:?} is not a valid id for {what}"
        )))
    }
}

pub(super) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, AtlasError> {
    serde_json::to_vec(value)
        .map_err(|e| AtlasError::InvalidArgument(format!("cannot encode request: {e}")))
}

/// Decodes a JSON answer. The error names only the position: serde's message can quote the
/// offending value, and a create's answer holds a private key.
pub(super) fn decode<T: DeserializeOwned>(
    response: &ApiResponse,
    what: &str,
) -> Result<T, AtlasError> {
    serde_json::from_slice(&response.body).map_err(|e| AtlasError::Unexpected {
        message: format!(
            "cannot read the {what} Atlas returned (HTTP {}, {:?} error at line {} column {})",
            response.status.as_u16(),
            e.classify(),
            e.line(),
            e.column()
        ),
        problem: None,
    })
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
