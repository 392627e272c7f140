//! Issuing a credential, whatever its type, without ever leaking one.
//!
//! Every credential that exists in Atlas is either handed to Vault as a lease,
//! or deleted before the request returns, or recorded in the WAL so the next
//! rollback deletes it. Nothing else can leak a live credential.
//!
//! Vault drops a request whose client hangs up, at whatever await it is on, so
//! the issuance runs as a detached task ([`Tasks::hand_over`]) that always runs
//! to the end. The WAL entry is written before the create and deleted only when
//! the credential is handed to a request that is still waiting, or once the
//! credential is gone; one nobody is waiting for is deleted by the task itself.
//! The task gives up at the issue timeout and answers at most
//! [`CLEANUP_GRACE`] later, before Vault gives up on the request; a cleanup that
//! takes longer goes on after the answer.
//!
//! A credential type plugs in through [`Credential`]: how to create, configure
//! and delete one, and what its record (WAL data and lease internal data) holds.
//!
//! [`Tasks::hand_over`]: crate::vault::framework::Tasks::hand_over

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value};

use super::lease::Record;
use super::tidy::record as issued_record;
use crate::atlas::AtlasClient;
use tokio::time::{timeout_at, Instant};

use super::{lease, roles::Role, AtlasContext, Engine, ISSUE_TIMEOUT_ENV};
use crate::atlas::AtlasError;
use crate::vault::framework::{wal, BackendError, Handover, Request, Response, SecretType};

/// After a failure or the issue timeout, time to delete what the issuance
/// created before answering. The default issue timeout plus this stays under
/// Vault's default request limit (90 s).
const CLEANUP_GRACE: Duration = Duration::from_secs(10);

/// The lease's TTL and maximum TTL.
pub(crate) type Ttls = (Duration, Duration);

/// What the request gets: the credential's data, under a lease of these TTLs.
pub(crate) struct Handout {
    pub(crate) data: Map<String, Value>,
    pub(crate) ttls: Ttls,
}

/// One credential type's part of an issuance.
pub(crate) trait Credential: Send + Sync + Sized + 'static {
    /// The WAL entry's data and the lease's internal data.
    type Record: Record;
    /// What a create returns: the credential, with its secret.
    type Issued: Send + Sync + 'static;
    /// How the debug log line of an issuance names one.
    const ISSUED_LOG: &'static str;
    /// Whether the create needs the lease's TTLs (else they are read while Atlas creates).
    const TTLS_BEFORE_CREATE: bool = false;

    /// What the WAL records before the create: enough to find what it creates.
    fn record(&self) -> Self::Record;

    /// The create; records the new credential's ids in `record`. An error that
    /// is not [`AtlasError::CreateUncertain`] proves nothing was created.
    fn create(
        &self,
        record: &mut Self::Record,
        ttls: Option<Ttls>,
    ) -> impl Future<Output = Result<Self::Issued, AtlasError>> + Send;

    /// What a new credential needs before it is handed over (access list, projects).
    fn configure(
        &self,
        issued: &Self::Issued,
        record: &Self::Record,
    ) -> impl Future<Output = Result<(), AtlasError>> + Send;

    /// The lease's data, and its TTLs (which the type may shorten).
    fn answer(
        &self,
        issued: Self::Issued,
        record: &Self::Record,
        ttls: Ttls,
    ) -> Result<Handout, BackendError>;

    /// The mount's Atlas client, which also deletes what the issuance created.
    fn client(&self) -> &AtlasClient;
}

/// Random characters that make a name unique per issuance.
pub(crate) const RANDOM_SUFFIX: usize = 20;

/// `vault-<role>-<20 random base62><tag suffix>`: unique per issuance, so a
/// credential whose create answer was lost can be found by it, and marked as
/// this mount's (see [`MountTag`]). Role characters other than ASCII letters,
/// digits and `allowed` become `_`, and the role is shortened so the whole
/// fits `max` characters.
///
/// [`MountTag`]: super::tidy::MountTag
pub(crate) fn unique_name(role: &str, allowed: &str, max: usize, tag_suffix: &str) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let room = max.saturating_sub("vault-".len() + 1 + RANDOM_SUFFIX + tag_suffix.len());
    let sanitized: String = role
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || allowed.contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(room)
        .collect();
    let mut rng = rand::rng();
    let suffix: String = (0..RANDOM_SUFFIX)
        .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
        .collect();
    format!("vault-{sanitized}-{suffix}{tag_suffix}")
}

/// Runs an issuance of `credential` for `role` as a detached task and waits for its answer.
pub(crate) async fn issue<C: Credential>(
    engine: &Engine,
    req: Request,
    name: &str,
    role: &Role,
    secret_type: SecretType,
    credential: C,
) -> Result<Response, BackendError> {
    let issuance = Issuance {
        secret_type,
        limit: engine.settings().issue_timeout,
        req,
        name: name.to_string(),
        role: role.clone(),
        credential,
    };
    engine
        .tasks()
        .hand_over(move |handover| issuance.run(handover))
        .await
}

/// One issuance, owned by its detached task.
struct Issuance<C: Credential> {
    secret_type: SecretType,
    limit: Duration,
    req: Request,
    name: String,
    role: Role,
    credential: C,
}

/// What exists in Atlas, as far as the issuance knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Created {
    /// No create was sent, or Atlas refused it in a way that proves nothing exists.
    Nothing,
    /// A create was sent and its outcome is unknown (in flight, or its answer lost).
    Unknown,
    /// The credential exists; its ids are in `Progress::record`.
    Exists,
}

struct Progress<R> {
    wal_id: Option<String>,
    record: R,
    created: Created,
    /// An entry in the record of issued credentials may exist.
    recorded: bool,
}

/// What became of the credential of an issuance that failed or was abandoned.
enum Cleanup {
    NothingCreated,
    Deleted,
    /// Still recorded in the WAL: the periodic rollback deletes it.
    LeftForRollback(String),
}

impl Cleanup {
    fn note(&self, noun: &str) -> Option<String> {
        match self {
            Self::NothingCreated => None,
            Self::Deleted => Some(format!("the {noun} was deleted")),
            Self::LeftForRollback(why) => Some(format!(
                "the {noun} it may have created could not be deleted yet ({why}); it is recorded, and Vault's periodic WAL rollback deletes it"
            )),
        }
    }
}

type Answer = Handover<Result<Response, BackendError>>;

fn to_value<R: Serialize>(record: &R) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

impl<C: Credential> Issuance<C> {
    fn kind(&self) -> &'static str {
        self.secret_type.name
    }

    async fn run(self, answer: Answer) {
        let deadline = Instant::now() + self.limit;
        let mut progress = Progress {
            wal_id: None,
            record: self.credential.record(),
            created: Created::Nothing,
            recorded: false,
        };
        let failure = match timeout_at(deadline, self.create(&mut progress, &answer)).await {
            Ok(Ok(response)) => return self.hand_over(progress, response, answer).await,
            Ok(Err(e)) => e,
            Err(_) => BackendError::internal(format!(
                "Atlas did not finish issuing the {} within {}s ({ISSUE_TIMEOUT_ENV}); the issuance was abandoned",
                C::Record::NOUN,
                self.limit.as_secs()
            )),
        };
        if answer.abandoned() {
            return self.clean_up_abandoned(progress).await;
        }
        // Clean up before answering if time allows; otherwise answer, then finish.
        let cleanup = self.clean_up(&mut progress);
        tokio::pin!(cleanup);
        match timeout_at(deadline + CLEANUP_GRACE, &mut cleanup).await {
            Ok(outcome) => {
                let failure = match outcome.note(C::Record::NOUN) {
                    Some(note) => failure.with_note(&note),
                    None => failure,
                };
                let _ = answer.deliver(Err(failure)).await;
            }
            Err(_) => {
                let _ = answer
                    .deliver(Err(failure.with_note(&format!(
                        "the plugin is still deleting any {} it created, and records it for the WAL rollback until it is gone",
                        C::Record::NOUN
                    ))))
                    .await;
                if let Some(note) = cleanup.await.note(C::Record::NOUN) {
                    tracing::warn!(role = %self.name, outcome = %note, "finished cleaning up an issuance that ran out of time");
                }
            }
        }
    }

    /// WAL entry, create, configuration: the response to hand over.
    async fn create(
        &self,
        progress: &mut Progress<C::Record>,
        answer: &Answer,
    ) -> Result<Response, BackendError> {
        let storage = self.req.storage.as_ref();
        let wal_id = wal::put(storage, self.kind(), to_value(&progress.record)).await?;
        progress.wal_id = Some(wal_id.clone());
        if answer.abandoned() {
            return Err(self.abandoned());
        }
        let early_ttls = if C::TTLS_BEFORE_CREATE {
            Some(self.ttls().await?)
        } else {
            None
        };
        progress.created = Created::Unknown;
        // Otherwise the mount's TTLs come from Vault while Atlas creates.
        let create = self.credential.create(&mut progress.record, early_ttls);
        let (created, ttls) = match early_ttls {
            Some(ttls) => (create.await, Ok(ttls)),
            None => tokio::join!(create, self.ttls()),
        };
        let issued = match created {
            Ok(issued) => issued,
            Err(e) => {
                // Only an answer that proves nothing was created clears the record.
                if !matches!(e, AtlasError::CreateUncertain { .. }) {
                    progress.created = Created::Nothing;
                }
                return Err(e).context(&format!("creating the Atlas {}", C::Record::NOUN));
            }
        };
        progress.created = Created::Exists;
        if answer.abandoned() {
            return Err(self.abandoned());
        }
        let ttls = ttls?;
        let data = to_value(&progress.record);
        let entry =
            issued_record::Entry::new(self.kind(), progress.record.id(), data.clone(), ttls.1);
        progress.recorded = true;
        // Recording the ids (so a rollback deletes the credential directly
        // instead of searching for it) and the record of issued credentials
        // (which `tidy` trusts) overlap with its remaining setup.
        let (logged, recorded, configured) = tokio::join!(
            wal::put_at(storage, &wal_id, self.kind(), data.clone()),
            issued_record::put(storage, &entry),
            self.credential.configure(&issued, &progress.record),
        );
        configured.context(&format!("configuring the new Atlas {}", C::Record::NOUN))?;
        logged?;
        recorded?;
        let handout = self.credential.answer(issued, &progress.record, ttls)?;
        let (ttl, max_ttl) = handout.ttls;
        let mut internal = match data {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        internal.insert(issued_record::LIVES_UNTIL.into(), entry.lives_until.into());
        Ok(self
            .secret_type
            .response(handout.data, internal, ttl, max_ttl))
    }

    async fn ttls(&self) -> Result<Ttls, BackendError> {
        lease::ttls(&self.req, &self.role)
            .await
            .map_err(|e| BackendError::internal(format!("reading the mount's lease TTLs: {e}")))
    }

    /// Gives the credential to the request if it still waits; else deletes it.
    async fn hand_over(
        self,
        mut progress: Progress<C::Record>,
        response: Response,
        answer: Answer,
    ) {
        let storage = self.req.storage.as_ref();
        let failure = match progress.wal_id.clone() {
            _ if answer.abandoned() => self.abandoned(),
            // The entry goes first: once Vault may hold a lease on the
            // credential, no rollback may delete it.
            Some(wal_id) => match wal::delete(storage, &wal_id).await {
                Ok(()) => {
                    if answer.deliver(Ok(response)).await {
                        tracing::debug!(role = %self.name, key_id = %progress.record.id(), "{}", C::ISSUED_LOG);
                        return;
                    }
                    // The request went before taking it: record it again, then delete it.
                    if let Err(e) =
                        wal::put_at(storage, &wal_id, self.kind(), to_value(&progress.record)).await
                    {
                        tracing::warn!(key_id = %progress.record.id(), error = %e, "could not record an abandoned credential again; deleting it now");
                    }
                    return self.clean_up_abandoned(progress).await;
                }
                Err(e) => BackendError::from(e),
            },
            None => BackendError::internal("an issued credential without a WAL entry"),
        };
        if answer.abandoned() {
            return self.clean_up_abandoned(progress).await;
        }
        let outcome = self.clean_up(&mut progress).await;
        let failure = match outcome.note(C::Record::NOUN) {
            Some(note) => failure.with_note(&note),
            None => failure,
        };
        let _ = answer.deliver(Err(failure)).await;
    }

    async fn clean_up_abandoned(self, mut progress: Progress<C::Record>) {
        let outcome = self.clean_up(&mut progress).await;
        tracing::warn!(
            role = %self.name,
            key_id = %progress.record.id(),
            outcome = outcome.note(C::Record::NOUN).as_deref().unwrap_or("nothing was created"),
            "the request for this credential was abandoned (the client went away or Vault's deadline passed)"
        );
    }

    /// Deletes whatever the issuance created; the WAL entry goes only with
    /// proof that nothing is left.
    async fn clean_up(&self, progress: &mut Progress<C::Record>) -> Cleanup {
        let storage = self.req.storage.as_ref();
        let Some(wal_id) = progress.wal_id.clone() else {
            return Cleanup::NothingCreated;
        };
        let outcome = match progress.created {
            Created::Nothing => Cleanup::NothingCreated,
            Created::Exists | Created::Unknown => {
                match progress
                    .record
                    .delete(self.credential.client(), &self.req)
                    .await
                {
                    Ok(true) => {
                        if progress.recorded {
                            issued_record::forget(storage, self.kind(), progress.record.id()).await;
                        }
                        Cleanup::Deleted
                    }
                    // A create still in flight at Atlas may land later: keep the record.
                    Ok(false) => {
                        return Cleanup::LeftForRollback(format!(
                            "Atlas shows no {} by that name yet",
                            C::Record::NOUN
                        ))
                    }
                    Err(e) => {
                        // The entry may lack the id (its write failed or raced): write it again.
                        if let Err(e) =
                            wal::put_at(storage, &wal_id, self.kind(), to_value(&progress.record))
                                .await
                        {
                            tracing::warn!(wal_id = %wal_id, error = %e, "could not update the WAL entry of a credential awaiting deletion");
                        }
                        return Cleanup::LeftForRollback(e.to_string());
                    }
                }
            }
        };
        if let Err(e) = wal::delete(storage, &wal_id).await {
            // Harmless: the rollback finds the credential gone and drops the entry.
            tracing::debug!(wal_id = %wal_id, error = %e, "could not delete a settled WAL entry");
        }
        progress.wal_id = None;
        outcome
    }

    fn abandoned(&self) -> BackendError {
        BackendError::internal(format!(
            "the request was abandoned before the {} was handed over",
            C::Record::NOUN
        ))
    }
}
