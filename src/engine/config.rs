//! `config`: the Atlas credentials the engine manages credentials with, an
//! API key (`public_key` + `private_key`, HTTP Digest) or a service account
//! (`client_id` + `client_secret`, OAuth 2.0).
//!
//! Stored at `config` (seal-wrapped) as `{"public_key","private_key"}`, the
//! official plugin's format, plus `base_url` only when it is not the default
//! and `allow_insecure_http` only when true, so a mount can move between the
//! two implementations in either direction. A service-account login stores
//! `client_id` and `client_secret` instead of the key's fields.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{schedule, Engine};
use crate::atlas::{is_insecure_http, parse_base_url, redact_base_url, ClientConfig};
use crate::vault::framework::{
    handler_with, BackendError, FieldData, FieldSchema, FieldType, Operation, Path, Request,
    Response,
};
use crate::vault::storage::{get_json, Storage, StorageEntry};
use crate::vault::system_view::RotationJob;

pub(crate) const CONFIG_KEY: &str = "config";

fn is_zero(n: &u64) -> bool {
    *n == 0
}
pub const DEFAULT_BASE_URL: &str = crate::atlas::DEFAULT_BASE_URL;
/// Generous for Atlas' 8-letter public keys and service-account client ids.
const MAX_PUBLIC_KEY_LEN: usize = 64;

const INSECURE_HTTP_WARNING: &str = "allow_insecure_http is in effect: base_url is plain HTTP to a host that is not a loopback address, so Atlas API keys (including every newly issued private key) and Digest exchanges travel unencrypted. Use https outside a lab.";

#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Config {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub public_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// A service account's client id: set instead of the API key's fields.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_secret: String,
    /// The Atlas id of the credential above (the API key's id, or the
    /// service-account secret's), once a rotation has learnt it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_id: String,
    /// Automated rotation every this many seconds (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rotation_period: u64,
    /// Or automated rotation on this cron schedule (UTC)...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rotation_schedule: String,
    /// ...within this many seconds of each turn (0: any time after it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rotation_window: u64,
    /// The job id Vault Enterprise's rotation manager gave the schedule: set,
    /// Vault sends the `rotate` operation on schedule; empty, the plugin's
    /// periodic tick keeps the schedule itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rotation_job_id: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_automated_rotation: bool,
    /// When the credential was last rotated, or written with a rotation period (RFC 3339).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_rotated: String,
    /// A service account's secret: when it was created and when Atlas expires it (RFC 3339),
    /// once known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_created_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_expires_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base_url: String,
    /// Not in the official plugin's format: optional, and absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
    /// Run `tidy` from the periodic tick this often, in seconds (0: never).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tidy_interval: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("public_key", &self.public_key)
            .field("private_key", &"<redacted>")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("base_url", &redact_base_url(self.base_url()))
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

impl Config {
    /// The client settings for this login.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let config = if self.client_id.is_empty() {
            ClientConfig::new(self.public_key.clone(), self.private_key.clone())
        } else {
            ClientConfig::service_account(self.client_id.clone(), self.client_secret.clone())
        };
        config
            .with_base_url(self.base_url())
            .with_allow_insecure_http(self.allow_insecure_http)
    }

    pub(crate) fn base_url(&self) -> &str {
        if self.base_url.is_empty() {
            DEFAULT_BASE_URL
        } else {
            &self.base_url
        }
    }

    /// Whether the opt-in is actually used: a valid plain-HTTP, non-loopback base_url.
    fn insecure_http_in_effect(&self) -> bool {
        self.allow_insecure_http
            && parse_base_url(self.base_url(), true).is_ok_and(|url| is_insecure_http(&url))
    }

    /// What a read shows: never the private key, and base_url redacted (a
    /// config written by an older version may hold a password in it).
    fn to_response(&self, min_gap: Duration) -> Response {
        let mut resp = Response::json(json!({
            "login": if self.client_id.is_empty() { "api_key" } else { "service_account" },
            "public_key": self.public_key,
            "client_id": self.client_id,
            "base_url": self.shown_base_url(),
            "allow_insecure_http": self.allow_insecure_http,
            "rotation_period": self.rotation_period,
            "rotation_schedule": self.rotation_schedule,
            "rotation_window": self.rotation_window,
            "disable_automated_rotation": self.disable_automated_rotation,
            "rotation_managed_by": self.rotation_managed_by(),
            "last_rotated": self.last_rotated,
            "next_rotation": schedule::next_rotation(self, SystemTime::now(), min_gap).map(schedule::rfc3339).unwrap_or_default(),
            "secret_expires_at": self.secret_expires_at,
            "tidy_interval": self.tidy_interval,
        }));
        if let Err(e) = parse_base_url(self.base_url(), self.allow_insecure_http) {
            resp.add_warning(format!(
                "the stored config is unusable: {e}; write config again"
            ));
        }
        if self.insecure_http_in_effect() {
            resp.add_warning(INSECURE_HTTP_WARNING);
        }
        resp
    }

    /// Whether a rotation schedule is set (not disabled).
    pub(crate) fn has_schedule(&self) -> bool {
        !self.disable_automated_rotation
            && (self.rotation_period > 0 || !self.rotation_schedule.is_empty())
    }

    /// Who keeps the rotation schedule: Vault Enterprise's rotation manager,
    /// the plugin (Community Edition, OpenBao), or nobody.
    fn rotation_managed_by(&self) -> &'static str {
        match (self.has_schedule(), self.rotation_job_id.is_empty()) {
            (false, _) => "",
            (true, false) => "vault",
            (true, true) => "plugin",
        }
    }

    /// base_url as stored when valid (so it round-trips), else redacted.
    fn shown_base_url(&self) -> String {
        match parse_base_url(self.base_url(), true) {
            Ok(_) => self.base_url().to_owned(),
            Err(_) => {
                let quoted = redact_base_url(self.base_url());
                quoted
                    .strip_prefix('"')
                    .and_then(|q| q.strip_suffix('"'))
                    .map(str::to_owned)
                    .unwrap_or(quoted)
            }
        }
    }
}

pub(crate) async fn load(storage: &dyn Storage) -> Result<Option<Config>, BackendError> {
    Ok(get_json(storage, CONFIG_KEY).await?)
}

/// Writes the config, seal-wrapped.
pub(crate) async fn store(storage: &dyn Storage, config: &Config) -> Result<(), BackendError> {
    let value = serde_json::to_vec(config)
        .map_err(|e| BackendError::internal(format!("encoding config: {e}")))?;
    storage
        .put(StorageEntry {
            key: CONFIG_KEY.into(),
            value,
            seal_wrap: true,
        })
        .await?;
    Ok(())
}

/// The base URL to store: checked by the client's own rules, normalised, and
/// empty for the default (the official format).
fn validate_base_url(raw: &str, allow_insecure_http: bool) -> Result<String, BackendError> {
    let url =
        parse_base_url(raw, allow_insecure_http).map_err(|e| BackendError::user(e.to_string()))?;
    let normalized = url.as_str().trim_end_matches('/');
    Ok(if normalized == DEFAULT_BASE_URL {
        String::new()
    } else {
        normalized.to_owned()
    })
}

/// Atlas public keys are 8 lowercase letters; accept a wider, still header-safe shape.
fn validate_public_key(key: &str) -> Result<(), BackendError> {
    validate_id(
        key,
        "public_key must be 1 to 64 letters, digits, '_' or '-' (an Atlas public key is 8 lowercase letters, e.g. abcdefgh)",
    )
}

/// Service-account client ids are `mdb_sa_id_` and 24 hexadecimal digits.
fn validate_client_id(id: &str) -> Result<(), BackendError> {
    validate_id(
        id,
        "client_id must be 1 to 64 letters, digits, '_' or '-' (a service account's client id looks like mdb_sa_id_0123456789abcdef01234567)",
    )
}

/// The public half of a login: header-safe, and never echoed (a secret pasted
/// into the wrong field must not show up in an error). `rule` starts with the field's name.
fn validate_id(id: &str, rule: &str) -> Result<(), BackendError> {
    let field = rule.split(' ').next().unwrap_or_default();
    if id.is_empty() {
        return Err(BackendError::user(format!("{field} is required: {rule}")));
    }
    if id.len() > MAX_PUBLIC_KEY_LEN {
        return Err(BackendError::user(format!(
            "{rule}; this one has {} characters",
            id.chars().count()
        )));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        Some(c) => Err(BackendError::user(format!("{rule}; found {c:?}"))),
        None => Ok(()),
    }
}

/// A secret goes into Digest hashes or a Basic header only; a line break or
/// other control character means a bad paste. Never echoes the value.
fn validate_secret(field: &str, value: &str, what: &str) -> Result<(), BackendError> {
    if value.is_empty() {
        return Err(BackendError::user(format!(
            "{field} is required: the {what}"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(BackendError::user(format!(
            "{field} contains a line break or another control character: give the {what} alone, on one line"
        )));
    }
    Ok(())
}

fn validate_private_key(key: &str) -> Result<(), BackendError> {
    validate_secret("private_key", key, "private key of that Atlas API key")
}

const SYNOPSIS: &str =
    "Configure the Atlas credential the engine creates and deletes credentials with.";
const DESCRIPTION: &str = "The engine logs in to Atlas with either a programmatic API key \
(public_key and private_key, HTTP Digest) or a service account (client_id and client_secret, \
OAuth 2.0 client credentials; MongoDB's recommended method). Give exactly one pair on every \
write. It needs the Organization Owner role (or Project Owner for project-only roles). Neither \
private_key nor client_secret is ever returned by a read. base_url points the engine at Atlas \
for Government or at a local simulator; it must be https unless it names a loopback address or \
allow_insecure_http is true (labs only: credentials then travel unencrypted, and every config \
write and read warns).";

pub(crate) fn path(engine: &Engine) -> Path {
    Path::new("config")
        .field(FieldSchema::new("public_key", FieldType::String, "Public key of an Atlas programmatic API key that may manage credentials (Organization Owner): 1 to 64 letters, digits, '_' or '-'. With private_key; or give client_id and client_secret instead."))
        .field(FieldSchema::new("private_key", FieldType::String, "Private key of that API key. Stored seal-wrapped; never returned."))
        .field(FieldSchema::new("client_id", FieldType::String, "Client id of an Atlas service account that may manage credentials (Organization Owner), e.g. mdb_sa_id_0123456789abcdef01234567. With client_secret; or give public_key and private_key instead."))
        .field(FieldSchema::new("client_secret", FieldType::String, "Secret of that service account. Stored seal-wrapped; never returned."))
        .field(FieldSchema::new(
            "base_url",
            FieldType::String,
            "Atlas Administration API base URL: https://host[:port][/path], no user name, password, query or fragment. Default https://cloud.mongodb.com; https://cloud.mongodbgov.com for Atlas for Government, or a local simulator (http is accepted to a loopback address).",
        ))
        .field(FieldSchema::new(
            "rotation_period",
            FieldType::DurationSecond,
            "Rotate the credential automatically this often, counted from the last rotation (at least 1h; 0 or unset: no period). Mutually exclusive with rotation_schedule.",
        ))
        .field(FieldSchema::new(
            "rotation_schedule",
            FieldType::String,
            "Rotate the credential automatically on this cron schedule, in UTC: five fields, minute hour day-of-month month day-of-week, e.g. \"0 3 * * SUN\" (at most one rotation an hour). Mutually exclusive with rotation_period.",
        ))
        .field(FieldSchema::new(
            "rotation_window",
            FieldType::DurationSecond,
            "With rotation_schedule: a turn may run this long after its time (at least 1h); a turn missed by more waits for the next one. Unset: any time after.",
        ))
        .field(FieldSchema::new(
            "disable_automated_rotation",
            FieldType::Bool,
            "Never rotate automatically, not even a service account's expiring secret; the schedule is withdrawn from Vault's rotation manager.",
        ))
        .field(FieldSchema::new(
            "allow_insecure_http",
            FieldType::Bool,
            "Labs only: accept an http:// base_url to a host that is not a loopback address. Credentials then travel unencrypted; every config write and read warns. Default false.",
        ))
        .field(FieldSchema::new(
            "tidy_interval",
            FieldType::DurationSecond,
            "Run tidy (with its default safety margin) from Vault's periodic tick on the active node this often, at least 5m; 0 or unset: only when written to <mount>/tidy.",
        ))
        .operation(Operation::Update, handler_with(engine, write_config))
        .operation(Operation::Read, handler_with(engine, read_config))
        .help(SYNOPSIS, DESCRIPTION)
}

async fn read_config(
    engine: Engine,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>, BackendError> {
    let min_gap = engine.settings().min_rotation_period;
    Ok(load(req.storage.as_ref())
        .await?
        .map(|config| config.to_response(min_gap)))
}

/// A trimmed string field, empty when absent.
fn trimmed(fields: &FieldData, name: &str) -> Result<String, BackendError> {
    Ok(fields
        .string(name)?
        .map(|v| v.trim().to_owned())
        .unwrap_or_default())
}

const ONE_LOGIN: &str = "give either public_key and private_key (an API key) or client_id and client_secret (a service account)";

/// Exactly one login: an API key or a service account, each complete.
fn login(fields: &FieldData) -> Result<Config, BackendError> {
    let public_key = trimmed(fields, "public_key")?;
    let private_key = trimmed(fields, "private_key")?;
    let client_id = trimmed(fields, "client_id")?;
    let client_secret = trimmed(fields, "client_secret")?;
    let api_key = !public_key.is_empty() || !private_key.is_empty();
    let service_account = !client_id.is_empty() || !client_secret.is_empty();
    match (api_key, service_account) {
        (true, true) => Err(BackendError::user(format!(
            "public_key/private_key and client_id/client_secret were both given: {ONE_LOGIN}, not both"
        ))),
        (false, true) => {
            validate_client_id(&client_id)?;
            validate_secret(
                "client_secret",
                &client_secret,
                "secret of that service account",
            )?;
            Ok(Config {
                client_id,
                client_secret,
                ..Config::default()
            })
        }
        (true, false) | (false, false) => {
            if !api_key {
                return Err(BackendError::user(format!(
                    "public_key and private_key are required: {ONE_LOGIN}"
                )));
            }
            validate_public_key(&public_key)?;
            validate_private_key(&private_key)?;
            Ok(Config {
                public_key,
                private_key,
                ..Config::default()
            })
        }
    }
}

async fn write_config(
    engine: Engine,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>, BackendError> {
    let mut config = login(&fields)?;
    rotation_fields(&fields, engine.settings().min_rotation_period, &mut config)?;
    if config.has_schedule() {
        config.last_rotated = schedule::rfc3339(SystemTime::now());
    }
    config.allow_insecure_http = fields.bool("allow_insecure_http")?.unwrap_or(false);
    config.tidy_interval = tidy_interval(&fields)?;
    config.base_url = match fields.string("base_url")? {
        Some(url) if !url.trim().is_empty() => validate_base_url(&url, config.allow_insecure_http)?,
        _ => String::new(),
    };
    // A rotation (on demand or on the periodic tick) stores the config it
    // rotated; it must not overwrite this write, nor this write its rotation.
    let _no_rotation = engine.rotation_lock().await;
    config.rotation_job_id = hand_schedule_to_vault(&req, &config).await;
    store(req.storage.as_ref(), &config).await?;
    engine.reset_client();
    if config.insecure_http_in_effect() {
        let mut resp = Response::default();
        resp.add_warning(INSECURE_HTTP_WARNING);
        return Ok(Some(resp));
    }
    Ok(None)
}

/// At least [`MIN_TIDY_INTERVAL`], or 0 for none.
fn tidy_interval(fields: &FieldData) -> Result<u64, BackendError> {
    let interval = fields.duration("tidy_interval")?.unwrap_or_default();
    if !interval.is_zero() && interval < MIN_TIDY_INTERVAL {
        return Err(BackendError::user(format!(
            "tidy_interval ({}s) is shorter than {}s: give at least 5m, or 0 to run tidy only on demand",
            interval.as_secs(),
            MIN_TIDY_INTERVAL.as_secs()
        )));
    }
    Ok(interval.as_secs())
}

/// Each tidy lists every credential in the roles' organizations and projects.
const MIN_TIDY_INTERVAL: Duration = Duration::from_secs(300);

/// The automated-rotation fields, checked as Vault checks them, plus a floor
/// of `least` on the period and the window.
fn rotation_fields(
    fields: &FieldData,
    least: Duration,
    config: &mut Config,
) -> Result<(), BackendError> {
    let period = fields.duration("rotation_period")?.unwrap_or_default();
    let schedule = trimmed(fields, "rotation_schedule")?;
    let window = fields.duration("rotation_window")?.unwrap_or_default();
    let floor = |field: &str, value: Duration, what: &str| {
        if !value.is_zero() && value < least {
            return Err(BackendError::user(format!(
                "{field} ({}s) is shorter than {}s: {what}",
                value.as_secs(),
                least.as_secs()
            )));
        }
        Ok(())
    };
    if !period.is_zero() && !schedule.is_empty() {
        return Err(BackendError::user(
            "rotation_period and rotation_schedule were both given: they are mutually exclusive; give one",
        ));
    }
    floor(
        "rotation_period",
        period,
        "rotate at most once an hour, or set 0 for no period",
    )?;
    if !schedule.is_empty() {
        schedule::parse_schedule(&schedule).map_err(|reason| {
            BackendError::user(format!("rotation_schedule {schedule:?} {reason}"))
        })?;
    }
    if !window.is_zero() && schedule.is_empty() {
        return Err(BackendError::user(
            "rotation_window applies to rotation_schedule only: give a rotation_schedule with it, or leave it out",
        ));
    }
    floor(
        "rotation_window",
        window,
        "give a window of at least an hour, or leave it out",
    )?;
    config.rotation_period = period.as_secs();
    config.rotation_schedule = schedule;
    config.rotation_window = window.as_secs();
    config.disable_automated_rotation = fields.bool("disable_automated_rotation")?.unwrap_or(false);
    Ok(())
}

/// The name of the config's job in Vault's rotation manager.
const ROTATION_JOB_NAME: &str = "mongodbatlas-root-credential";

/// Registers the schedule with Vault Enterprise's rotation manager, or
/// withdraws it; returns the job's id, empty when the plugin keeps the
/// schedule itself (Community Edition and OpenBao refuse the registration).
async fn hand_schedule_to_vault(req: &Request, config: &Config) -> String {
    if !config.has_schedule() {
        if let Err(e) = req
            .system
            .deregister_rotation_job(&req.mount_point, &req.path)
            .await
        {
            tracing::debug!(error = %e, "no rotation job to withdraw from Vault's rotation manager");
        }
        return String::new();
    }
    let job = RotationJob {
        name: ROTATION_JOB_NAME.into(),
        mount_point: req.mount_point.clone(),
        path: req.path.clone(),
        schedule: config.rotation_schedule.clone(),
        window: Duration::from_secs(config.rotation_window),
        period: Duration::from_secs(config.rotation_period),
    };
    match req.system.register_rotation_job(&job).await {
        Ok(id) => {
            tracing::info!(rotation_id = %id, "Vault's rotation manager keeps the rotation schedule");
            id
        }
        Err(e) => {
            tracing::info!(reason = %e, "Vault has no rotation manager here (Community Edition or OpenBao): the plugin keeps the rotation schedule on Vault's periodic tick");
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn config(base_url: &str, allow_insecure_http: bool) -> Config {
        Config {
            public_key: "abcdefgh".into(),
            private_key: "p".into(),
            base_url: base_url.into(),
            allow_insecure_http,
            ..Config::default()
        }
    }

    #[test]
    fn a_service_account_login_stores_its_own_fields_only() {
        let c = Config {
            client_id: "mdb_sa_id_0123456789abcdef01234567".into(),
            client_secret: "mdb_sa_sk_s3cret".into(),
            ..Config::default()
        };
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            r#"{"client_id":"mdb_sa_id_0123456789abcdef01234567","client_secret":"mdb_sa_sk_s3cret"}"#
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let shown = c.to_response(Duration::from_secs(3600)).data.expect("data");
        assert!(!serde_json::to_string(&shown)
            .expect("json")
            .contains("s3cret"));
        assert_eq!(shown["client_id"], "mdb_sa_id_0123456789abcdef01234567");
    }

    #[test]
    fn storage_format_matches_the_official_plugin() {
        let c = config("", false);
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            r#"{"public_key":"abcdefgh","private_key":"p"}"#
        );
        let official: Config =
            serde_json::from_str(r#"{"private_key":"p","public_key":"k"}"#).expect("read");
        assert_eq!(official.base_url(), DEFAULT_BASE_URL);
        assert!(!official.allow_insecure_http);
        assert!(!format!("{c:?}").contains("\"p\""));
        let lab = config("http://10.0.0.5:8080", true);
        let stored = serde_json::to_string(&lab).expect("json");
        assert_eq!(
            stored,
            r#"{"public_key":"abcdefgh","private_key":"p","base_url":"http://10.0.0.5:8080","allow_insecure_http":true}"#
        );
        assert_eq!(serde_json::from_str::<Config>(&stored).expect("read"), lab);
    }

    #[test]
    fn base_url_uses_the_client_rules() {
        assert_eq!(
            validate_base_url("https://cloud.mongodbgov.com/", false).expect("ok"),
            "https://cloud.mongodbgov.com"
        );
        assert_eq!(
            validate_base_url(" https://cloud.mongodb.com/ ", false).expect("ok"),
            ""
        );
        assert_eq!(
            validate_base_url("http://127.0.0.1:8080", false).expect("ok"),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "ftp://x",
            "nonsense",
            "https://user:s3cretpw@cloud.mongodb.com",
            "https://cloud.mongodb.com/?a=b",
            "https://cloud.mongodb.com/#f",
            "http://10.0.0.5:8080",
        ] {
            match validate_base_url(bad, false) {
                Err(BackendError::User(msg)) => {
                    assert!(msg.starts_with("base_url "), "{msg}");
                    assert!(!msg.contains("s3cret"), "{msg}");
                }
                other => panic!("{bad}: want a user error, got {other:?}"),
            }
        }
        assert_eq!(
            validate_base_url("http://10.0.0.5:8080", true).expect("opt-in"),
            "http://10.0.0.5:8080"
        );
    }

    #[test]
    fn a_stored_password_in_base_url_is_never_shown() {
        let old = config("https://user:s3cretpw@cloud.mongodb.com", false);
        assert!(!format!("{old:?}").contains("s3cret"));
        let resp = old.to_response(HOUR);
        let data = resp.data.expect("data");
        assert_eq!(data["base_url"], "https://***@cloud.mongodb.com");
        assert!(!format!("{:?}", resp.warnings).contains("s3cret"));
        assert!(resp.warnings.iter().any(|w| w.contains("base_url")));
    }

    #[test]
    fn insecure_http_warns_only_when_in_effect() {
        let lab = config("http://10.0.0.5:8080", true).to_response(HOUR);
        assert_eq!(lab.warnings, vec![INSECURE_HTTP_WARNING.to_owned()]);
        assert_eq!(lab.data.expect("data")["allow_insecure_http"], true);
        for quiet in [
            config("", true),
            config("http://127.0.0.1:1", true),
            config("", false),
        ] {
            assert!(quiet.to_response(HOUR).warnings.is_empty(), "{quiet:?}");
        }
        // Written by an older version: plain HTTP without the opt-in.
        let old = config("http://10.0.0.5:8080", false).to_response(HOUR);
        assert!(
            old.warnings
                .iter()
                .any(|w| w.contains("allow_insecure_http")),
            "{:?}",
            old.warnings
        );
    }

    #[test]
    fn key_shapes() {
        for good in [
            "abcdefgh",
            "ABC_def-123",
            "mdb_sa_id_0123456789abcdef01234567",
        ] {
            assert!(validate_public_key(good).is_ok(), "{good}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "abc\"def",
            "abc\ndef",
            "abc def",
            "ab/cd",
            long.as_str(),
        ] {
            match validate_public_key(bad) {
                Err(BackendError::User(msg)) => assert!(msg.contains("public_key"), "{msg}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(validate_private_key("c8150efd-c7a0-4afd-8c4f-01bdd56c8977").is_ok());
        for bad in ["", "s3cret\nline", "s3cret\u{0}", "s3cret\rx"] {
            match validate_private_key(bad) {
                Err(BackendError::User(msg)) => {
                    assert!(msg.contains("private_key"), "{msg}");
                    assert!(!msg.contains("s3cret"), "{msg}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
