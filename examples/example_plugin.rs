//! A tiny secrets engine built on the project's framework, driven by the Go
//! conformance harness (tests/conformance) to prove the transport and the
//! framework with Vault's own client code. Not shipped.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use vault_mongodbatlas::goplugin::server;
use vault_mongodbatlas::vault::framework::{
    existence_check, handler, Backend, BackendConfig, BackendError, BackendFactory, FieldSchema,
    FieldType, Operation, Path, Response, SecretType, SpecialPaths,
};
use vault_mongodbatlas::vault::plugin_server::{self, crate_version};
use vault_mongodbatlas::vault::storage::{get_json, put_json};

struct Example;

fn kv_key(
    fields: &vault_mongodbatlas::vault::framework::FieldData,
) -> Result<String, BackendError> {
    Ok(format!("kv/{}", fields.required_string("key")?))
}

fn secret_type() -> SecretType {
    SecretType {
        name: "example_secret",
        renew: Some(handler(|req, _| async move {
            let mut secret = req
                .secret
                .ok_or_else(|| BackendError::internal("no secret"))?;
            secret.lease.ttl = Duration::from_secs(1800);
            Ok(Some(Response {
                secret: Some(secret),
                ..Response::default()
            }))
        })),
        revoke: Some(handler(|req, _| async move {
            let counter = req
                .secret
                .as_ref()
                .and_then(|s| s.internal_data.get("counter"))
                .cloned()
                .unwrap_or(Value::Null);
            put_json(
                req.storage.as_ref(),
                &format!("revoked/{counter}"),
                &json!({"revoked": true}),
            )
            .await?;
            Ok(None)
        })),
        rollback: None,
    }
}

impl BackendFactory for Example {
    fn version(&self) -> String {
        crate_version()
    }

    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths {
            seal_wrap_storage: vec!["config".into()],
            local_storage: vec!["wal/".into()],
            ..SpecialPaths::default()
        }
    }

    fn create(&self, _: &BackendConfig) -> Result<Backend, String> {
        let secret = Arc::new(secret_type());
        let issue = secret.clone();
        let key_field = || FieldSchema::new("key", FieldType::String, "Storage key below kv/.");
        let write = handler(|req, fields| async move {
            let key = kv_key(&fields)?;
            let mut data = req.data.clone();
            data.remove("key");
            put_json(req.storage.as_ref(), &key, &data).await?;
            Ok(None)
        });
        let paths = vec![
            Path::new("kv/?")
                .operation(
                    Operation::List,
                    handler(|req, _| async move {
                        Ok(Some(Response::list(req.storage.list("kv/").await?)))
                    }),
                )
                .help("List stored keys.", ""),
            Path::new("kv/(?P<key>.+)")
                .field(key_field())
                .operation(Operation::Create, write.clone())
                .operation(Operation::Update, write)
                .operation(
                    Operation::Read,
                    handler(|req, fields| async move {
                        let data: Option<Map<String, Value>> =
                            get_json(req.storage.as_ref(), &kv_key(&fields)?).await?;
                        Ok(data.map(Response::with_data))
                    }),
                )
                .operation(
                    Operation::Delete,
                    handler(|req, fields| async move {
                        req.storage.delete(&kv_key(&fields)?).await?;
                        Ok(None)
                    }),
                )
                .existence(existence_check(|req, fields| async move {
                    Ok(req.storage.get(&kv_key(&fields)?).await?.is_some())
                }))
                .help("Arbitrary JSON stored in Vault's storage.", ""),
            Path::new("ttl")
                .operation(
                    Operation::Read,
                    handler(|req, _| async move {
                        Ok(Some(Response::json(json!({
                            "default_lease_ttl": req.system.default_lease_ttl().await?.as_secs(),
                            "max_lease_ttl": req.system.max_lease_ttl().await?.as_secs(),
                        }))))
                    }),
                )
                .help("The mount's lease TTLs from the system view.", ""),
            Path::new("env")
                .operation(
                    Operation::Read,
                    handler(|req, _| async move {
                        Ok(Some(Response::json(
                            json!({"vault_version": req.system.vault_version().await?}),
                        )))
                    }),
                )
                .help("The Vault version from the plugin environment.", ""),
            {
                let echo = handler(|_, fields| async move {
                    let name = fields.required_string("name")?;
                    Ok(Some(Response::json(json!({
                        "name": name,
                        "count": fields.int("count")?,
                        "tags": fields.strings("tags")?,
                        "ttl": fields.duration("ttl")?.map(|d| d.as_secs()),
                        "mode": fields.string("mode")?,
                    }))))
                });
                Path::new("echo")
                    .field(FieldSchema::new("name", FieldType::String, "A name.").required())
                    .field(FieldSchema::new("count", FieldType::Int, "A number."))
                    .field(FieldSchema::new(
                        "tags",
                        FieldType::CommaStringSlice,
                        "Tags.",
                    ))
                    .field(FieldSchema::new(
                        "ttl",
                        FieldType::DurationSecond,
                        "A duration.",
                    ))
                    .field(FieldSchema::new(
                        "mode",
                        FieldType::LowerCaseString,
                        "A lower-cased string.",
                    ))
                    .operation(Operation::Update, echo.clone())
                    .operation(Operation::Read, echo)
                    .help("Echoes typed fields.", "")
            },
            Path::new("fail")
                .operation(
                    Operation::Read,
                    handler(|_, _| async move {
                        Err(BackendError::internal("deliberate internal failure"))
                    }),
                )
                .help("Always fails with an internal error.", ""),
            // Test aid of this example plugin only (the production engine has
            // no such path): proves a panicking handler fails its own request
            // and nothing else. Read panics at once; update panics after
            // `after` (a duration), so other requests are in flight meanwhile.
            Path::new("panic")
                .field(FieldSchema::new(
                    "after",
                    FieldType::DurationSecond,
                    "How long to wait before panicking.",
                ))
                .operation(
                    Operation::Read,
                    handler(
                        |_, _| async move { panic!("deliberate panic (example plugin test aid)") },
                    ),
                )
                .operation(
                    Operation::Update,
                    handler(|_, fields| async move {
                        tokio::time::sleep(fields.duration("after")?.unwrap_or_default()).await;
                        panic!("deliberate panic after a wait (example plugin test aid)")
                    }),
                )
                .help("Panics (a test aid of the example plugin).", ""),
            Path::new("secret")
                .operation(
                    Operation::Read,
                    handler(move |_, _| {
                        let issue = issue.clone();
                        async move {
                            let mut data = Map::new();
                            data.insert("value".into(), json!("example"));
                            let mut internal = Map::new();
                            internal.insert("counter".into(), json!(0));
                            Ok(Some(issue.response(
                                data,
                                internal,
                                Duration::from_secs(3600),
                                Duration::from_secs(7200),
                            )))
                        }
                    }),
                )
                .help("Issues a leased secret.", ""),
        ];
        Ok(Backend {
            help: "Example backend for the conformance harness.",
            paths,
            secrets: vec![(*secret).clone()],
            ..Backend::default()
        })
    }
}

fn main() -> ExitCode {
    vault_mongodbatlas::logging::init();
    server::run(|ctx| plugin_server::routes(Example, ctx))
}
