//! `tidy`: no credential outlives Vault's knowledge of it.
//!
//! A restored snapshot makes Vault forget every lease issued after it was
//! taken; a node that dies between our answer and Vault storing the lease
//! forgets one. `vault write <mount>/tidy` finds what Atlas holds with this
//! mount's tag that the plugin's record of issued credentials and its WAL do
//! not (orphans), and recorded credentials past their lease's maximum lifetime
//! (expired), and deletes those older than a safety margin, so an issuance in
//! flight is never touched. `dry_run=true` only reports. `tidy_interval` on
//! `config` runs it from Vault's periodic tick on the active node.

pub(crate) mod record;
pub(crate) mod sweep;
mod tag;

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::{config, Engine};
use crate::vault::framework::{
    handler_with, BackendError, FieldData, FieldSchema, FieldType, Operation, Path, Request,
    Response,
};
use crate::vault::storage::{get_json, put_json};
use sweep::{Options, Report, Trigger};
pub(crate) use tag::MountTag;

/// Where the last run's report is kept.
const STATUS_KEY: &str = "tidy/status";

/// Older than this, an unknown credential is no issuance in flight: an
/// issuance gives up within the issue timeout (60 s by default) plus cleanup.
pub(crate) const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_secs(15 * 60);

const SYNOPSIS: &str = "Delete Atlas credentials this mount issued that Vault no longer knows of.";
const DESCRIPTION: &str = "Lists the API keys and service accounts in the organizations and projects \
of the mount's roles and records, and deletes those that bear this mount's tag (mount_tag, from the \
mount's backend UUID, at the end of their description or name) but that neither the plugin's record \
of issued credentials nor its WAL holds (orphaned: their leases went with a restored snapshot), and \
recorded credentials past their lease's maximum lifetime (expired: Vault lost the lease), when older \
than safety_margin. A credential without this mount's tag is never touched. Write to run (dry_run=true \
reports without deleting); read for the mount tag and the last run.";

pub(crate) fn path(engine: &Engine) -> Path {
    Path::new("tidy")
        .field(FieldSchema::new(
            "dry_run",
            FieldType::Bool,
            "Report what would be deleted without deleting anything. Default false.",
        ))
        .field(FieldSchema::new(
            "safety_margin",
            FieldType::DurationSecond,
            "Leave alone credentials younger than this (issuances in flight). Default 15m; 0 takes every orphan, which is only safe when nothing is being issued.",
        ))
        .operation(Operation::Update, handler_with(engine, write_tidy))
        .operation(Operation::Read, handler_with(engine, read_tidy))
        .help(SYNOPSIS, DESCRIPTION)
}

async fn write_tidy(
    engine: Engine,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>, BackendError> {
    let options = Options {
        dry_run: fields.bool("dry_run")?.unwrap_or(false),
        margin: fields
            .duration("safety_margin")?
            .unwrap_or(DEFAULT_SAFETY_MARGIN),
        trigger: Trigger::Manual,
    };
    let _one_at_a_time = engine.inner.tidy.lock().await;
    let report = run(&engine, &req, options).await?;
    let mut resp = Response::json(report_json(&report));
    for error in &report.scope_errors {
        resp.add_warning(format!("{error}: credentials there were not tidied"));
    }
    for note in &report.notes {
        resp.add_warning(note.clone());
    }
    if report.delete_failed > 0 {
        resp.add_warning(format!(
            "{} credentials could not be deleted (see the plugin's log); run tidy again",
            report.delete_failed
        ));
    }
    Ok(Some(resp))
}

async fn read_tidy(
    engine: Engine,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>, BackendError> {
    let storage = req.storage.as_ref();
    let last: Option<Report> = get_json(storage, STATUS_KEY).await?;
    let interval = config::load(storage)
        .await?
        .map(|c| c.tidy_interval)
        .unwrap_or_default();
    Ok(Some(Response::json(json!({
        "mount_tag": engine.mount_tag().map(MountTag::as_str).unwrap_or_default(),
        "tidy_interval": interval,
        "last_run": last.as_ref().map(report_json).unwrap_or(Value::Null),
    }))))
}

fn report_json(report: &Report) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// Runs tidy with the mount's client and keeps the report as the last run's.
async fn run(engine: &Engine, req: &Request, options: Options) -> Result<Report, BackendError> {
    let tag = engine.mount_tag().ok_or_else(|| {
        BackendError::user(
            "tidy needs the mount's backend UUID, which this Vault did not send: the mount's credentials carry no tag to recognise them by",
        )
    })?;
    let client = engine.client(req).await?.ok_or_else(|| {
        BackendError::user("the mount has no config: write <mount>/config before running tidy")
    })?;
    let report = sweep::run(tag, &client, req, options).await?;
    put_json(req.storage.as_ref(), STATUS_KEY, &report).await?;
    Ok(report)
}

/// The tidy schedule's part of Vault's periodic tick: a run when
/// `tidy_interval` has passed since the last one that deleted (not a dry run).
pub(crate) async fn tick(engine: &Engine, req: &Request) -> Result<(), BackendError> {
    let storage = req.storage.as_ref();
    let Some(config) = config::load(storage).await? else {
        return Ok(());
    };
    if config.tidy_interval == 0 || engine.mount_tag().is_none() {
        return Ok(());
    }
    let Ok(_one_at_a_time) = engine.inner.tidy.try_lock() else {
        return Ok(());
    };
    let last: Option<Report> = get_json(storage, STATUS_KEY).await?;
    let due = match last.filter(|r| !r.dry_run) {
        None => true,
        Some(last) => match sweep::rfc3339_time(&last.finished_at) {
            Some(finished) => {
                let interval = i64::try_from(config.tidy_interval).unwrap_or(i64::MAX);
                record::unix(SystemTime::now()) >= finished.saturating_add(interval)
            }
            None => true,
        },
    };
    if !due {
        return Ok(());
    }
    let options = Options {
        dry_run: false,
        margin: DEFAULT_SAFETY_MARGIN,
        trigger: Trigger::Scheduled,
    };
    let report = run(engine, req, options).await?;
    tracing::info!(
        tagged = report.tagged,
        orphaned = report.orphaned,
        expired = report.expired,
        deleted = report.deleted,
        delete_failed = report.delete_failed,
        stale_records = report.stale_records,
        scope_errors = report.scope_errors.len(),
        "scheduled tidy"
    );
    Ok(())
}
