//! `config`: the Atlas credentials the engine manages keys with.
//!
//! Stored at `config` (seal-wrapped) as `{"public_key","private_key"}`, the
//! official plugin's format, plus `base_url` only when it is not the default,
//! so a mount can move between the two implementations in either direction.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Engine;
use crate::vault::framework::{
    handler, BackendError, FieldSchema, FieldType, Operation, Path, Response,
};
use crate::vault::storage::{get_json, Storage, StorageEntry};

pub const CONFIG_KEY: &str = "config";
pub const DEFAULT_BASE_URL: &str = "https://cloud.mongodb.com";

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    pub public_key: String,
    pub private_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base_url: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("public_key", &self.public_key)
            .field("private_key", &"<redacted>")
            .field("base_url", &self.base_url())
            .finish()
    }
}

impl Config {
    pub fn base_url(&self) -> &str {
        if self.base_url.is_empty() {
            DEFAULT_BASE_URL
        } else {
            &self.base_url
        }
    }
}

pub async fn load(storage: &dyn Storage) -> Result<Option<Config>, BackendError> {
    Ok(get_json(storage, CONFIG_KEY).await?)
}

fn validate_base_url(raw: &str) -> Result<String, BackendError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = url::Url::parse(trimmed).map_err(|e| {
        BackendError::user(format!(
            "base_url {raw:?} is not a URL ({e}); use e.g. {DEFAULT_BASE_URL}"
        ))
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(BackendError::user(format!(
            "base_url {raw:?} must be an http(s) URL with a host, e.g. {DEFAULT_BASE_URL}"
        )));
    }
    Ok(trimmed.to_string())
}

pub fn path(engine: &Engine) -> Path {
    let write_engine = engine.clone();
    Path::new("config")
        .field(FieldSchema::new("public_key", FieldType::String, "Public key of an Atlas programmatic API key that may manage API keys (Organization Owner).").required())
        .field(FieldSchema::new("private_key", FieldType::String, "Private key of that API key. Stored seal-wrapped; never returned.").required())
        .field(FieldSchema::new(
            "base_url",
            FieldType::String,
            "Atlas Administration API base URL. Default https://cloud.mongodb.com; https://cloud.mongodbgov.com for Atlas for Government, or a local simulator.",
        ))
        .operation(
            Operation::Update,
            handler(move |req, fields| {
                let engine = write_engine.clone();
                async move {
                    let public_key = fields.string("public_key")?.unwrap_or_default();
                    if public_key.trim().is_empty() {
                        return Err(BackendError::user("public_key is required: the public key of an Atlas Organization Owner API key"));
                    }
                    let private_key = fields.string("private_key")?.unwrap_or_default();
                    if private_key.trim().is_empty() {
                        return Err(BackendError::user("private_key is required: the private key of that Atlas API key"));
                    }
                    let base_url = match fields.string("base_url")? {
                        Some(url) if !url.trim().is_empty() => validate_base_url(&url)?,
                        _ => String::new(),
                    };
                    let base_url = if base_url == DEFAULT_BASE_URL { String::new() } else { base_url };
                    let config = Config { public_key: public_key.trim().into(), private_key: private_key.trim().into(), base_url };
                    let value = serde_json::to_vec(&config).map_err(|e| BackendError::internal(format!("encoding config: {e}")))?;
                    req.storage.put(StorageEntry { key: CONFIG_KEY.into(), value, seal_wrap: true }).await?;
                    engine.reset_client();
                    Ok(None)
                }
            }),
        )
        .operation(
            Operation::Read,
            handler(|req, _| async move {
                let Some(config) = load(req.storage.as_ref()).await? else {
                    return Ok(None);
                };
                Ok(Some(Response::json(json!({
                    "public_key": config.public_key,
                    "base_url": config.base_url(),
                }))))
            }),
        )
        .help(
            "Configure the Atlas API key used to create and delete programmatic API keys.",
            "The engine needs an Atlas programmatic API key with the Organization Owner role (or \
             Project Owner for project-only roles) to create and delete keys. Both public_key and \
             private_key are required on every write; private_key is never returned by a read. \
             base_url points the engine at Atlas for Government or at a local simulator.",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_format_matches_the_official_plugin() {
        let c = Config {
            public_key: "abcdefgh".into(),
            private_key: "p".into(),
            base_url: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            r#"{"public_key":"abcdefgh","private_key":"p"}"#
        );
        let official: Config =
            serde_json::from_str(r#"{"private_key":"p","public_key":"k"}"#).expect("read");
        assert_eq!(official.base_url(), DEFAULT_BASE_URL);
        assert!(!format!("{c:?}").contains("\"p\""));
    }

    #[test]
    fn base_url_must_be_http() {
        assert_eq!(
            validate_base_url("https://cloud.mongodbgov.com/").expect("ok"),
            "https://cloud.mongodbgov.com"
        );
        assert!(validate_base_url("ftp://x").is_err());
        assert!(validate_base_url("nonsense").is_err());
    }
}
