//! The gRPC services Vault calls on a backend plugin: `pb.Backend` (one
//! backend instance per mount, keyed by the `multiplex_id` metadata Vault
//! attaches to every call), `logical.PluginVersion` and
//! `pluginutil.multiplexing.PluginMultiplexing`.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};

use futures::FutureExt;

use tonic::metadata::MetadataMap;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use super::framework::{Backend, BackendConfig, BackendError, BackendFactory};
use super::storage::{GrpcStorage, Storage};
use super::system_view::{GrpcSystemView, SystemView};
use super::translate;
use crate::goplugin::broker::Broker;
use crate::goplugin::server::PluginContext;
use crate::goplugin::MAX_MESSAGE_SIZE;
use crate::proto::logical::plugin_version_server::{PluginVersion, PluginVersionServer};
use crate::proto::logical::{Empty as LogicalEmpty, VersionReply};
use crate::proto::multiplexing::plugin_multiplexing_server::{
    PluginMultiplexing, PluginMultiplexingServer,
};
use crate::proto::multiplexing::{MultiplexingSupportRequest, MultiplexingSupportResponse};
use crate::proto::pb;
use crate::proto::pb::backend_server::BackendServer;

/// What Vault (and its user) sees when a handler panicked; the details go to
/// the plugin's log only.
const PANIC_MESSAGE: &str =
    "internal error: the plugin failed while handling this request; see the plugin's log";

/// gRPC metadata key Vault uses to say which mount a call is for.
pub const MULTIPLEX_ID_KEY: &str = "multiplex_id";
/// `TypeReply.type` for a secrets engine.
const BACKEND_TYPE_LOGICAL: u32 = 1;

/// The routes a backend plugin serves, to hand to [`crate::goplugin::server::run`].
pub fn routes<F: BackendFactory>(factory: F, ctx: PluginContext) -> Routes {
    let factory = Arc::new(factory);
    let version = VersionService(factory.version());
    let backend = BackendService {
        factory,
        broker: ctx.broker,
        mounts: Arc::default(),
    };
    let mut routes = Routes::builder();
    routes
        .add_service(
            BackendServer::new(backend)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(PluginVersionServer::new(version))
        .add_service(PluginMultiplexingServer::new(Multiplexing));
    routes.routes()
}

/// One mounted backend with its host connection.
struct Mount {
    backend: Backend,
    storage: Arc<dyn Storage>,
    system: Arc<dyn SystemView>,
}

struct BackendService<F> {
    factory: Arc<F>,
    broker: Broker,
    // Held only to look up or swap an Arc, never across an await.
    mounts: Arc<RwLock<HashMap<String, Arc<Mount>>>>,
}

fn multiplex_id(metadata: &MetadataMap) -> Result<String, Status> {
    let ids: Vec<_> = metadata.get_all(MULTIPLEX_ID_KEY).iter().collect();
    match ids.as_slice() {
        [] => Err(Status::invalid_argument(
            "missing multiplex_id metadata: this plugin serves each mount by its multiplex id",
        )),
        [one] => match one.to_str() {
            Ok(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(Status::invalid_argument(
                "empty or invalid multiplex_id metadata",
            )),
        },
        many => Err(Status::invalid_argument(format!(
            "unexpected number of multiplex ids in metadata: {}",
            many.len()
        ))),
    }
}

/// Runs one call's handling so that a panic in it (a bug) fails that call
/// alone: the process, the connection and the other calls on it carry on.
/// Unwinding cannot leave shared state half-changed in a way later calls
/// trust: the mount table is only ever swapped whole, and every lock is taken
/// through poison recovery.
async fn catch_panic<T>(what: &str, call: impl Future<Output = T>) -> Result<T, ()> {
    AssertUnwindSafe(call).catch_unwind().await.map_err(|payload| {
        tracing::error!(call = what, panic = %panic_text(payload.as_ref()), "a request handler panicked; that request failed, the plugin keeps serving");
    })
}

/// The panic's message (`panic!`, `expect`, overflow...), bounded in length.
fn panic_text(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_string());
    text.chars().take(500).collect()
}

impl<F: BackendFactory> BackendService<F> {
    fn mounts_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Mount>>> {
        self.mounts.read().unwrap_or_else(|e| e.into_inner())
    }

    fn mounts_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Mount>>> {
        self.mounts.write().unwrap_or_else(|e| e.into_inner())
    }

    fn mount(&self, metadata: &MetadataMap) -> Result<Arc<Mount>, Status> {
        let id = multiplex_id(metadata)?;
        self.mounts_read()
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::failed_precondition(format!("no backend is set up for multiplex id {id:?} (Setup not called, or already cleaned up)")))
    }

    fn request(
        mount: &Mount,
        req: Option<pb::Request>,
    ) -> Result<super::framework::Request, BackendError> {
        let req = req.ok_or_else(|| BackendError::internal("request missing"))?;
        translate::request_from_pb(req, mount.storage.clone(), mount.system.clone())
    }

    async fn setup(&self, id: String, args: pb::SetupArgs) -> Result<(), String> {
        let channel = self
            .broker
            .dial(args.broker_id)
            .await
            .map_err(|e| e.to_string())?;
        let config = BackendConfig {
            storage: Arc::new(GrpcStorage::new(channel.clone())),
            system: Arc::new(GrpcSystemView::new(channel)),
            config: args.config,
            backend_uuid: args.backend_uuid,
        };
        let backend = self.factory.create(&config)?;
        let mount = Arc::new(Mount {
            backend,
            storage: config.storage,
            system: config.system,
        });
        if let Some(old) = self.mounts_write().insert(id.clone(), mount) {
            if let Some(clean) = &old.backend.clean {
                clean();
            }
        }
        tracing::debug!(multiplex_id = %id, "backend set up");
        Ok(())
    }
}

#[tonic::async_trait]
impl<F: BackendFactory> pb::backend_server::Backend for BackendService<F> {
    async fn handle_request(
        &self,
        request: Request<pb::HandleRequestArgs>,
    ) -> Result<Response<pb::HandleRequestReply>, Status> {
        let mount = self.mount(request.metadata())?;
        let args = request.into_inner();
        let outcome = match Self::request(&mount, args.request) {
            Ok(req) => {
                let (op, path) = (req.operation, req.path.clone());
                let what = format!("HandleRequest {} {path}", op.as_str());
                let result = catch_panic(&what, mount.backend.handle_request(req))
                    .await
                    .unwrap_or_else(|()| Err(BackendError::internal(PANIC_MESSAGE)));
                if let Err(e) = &result {
                    if !(e.is_user()
                        || matches!(
                            e,
                            BackendError::UnsupportedOperation | BackendError::UnsupportedPath
                        ))
                    {
                        tracing::error!(operation = op.as_str(), path = %path, error = %e, "request failed");
                    }
                }
                result
            }
            Err(e) => Err(e),
        };
        let (response, err) = translate::outcome_to_pb(outcome);
        Ok(Response::new(pb::HandleRequestReply {
            response,
            err,
            wal_index: None,
        }))
    }

    async fn special_paths(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::SpecialPathsReply>, Status> {
        let p = self.factory.special_paths();
        Ok(Response::new(pb::SpecialPathsReply {
            paths: Some(pb::Paths {
                root: p.root,
                unauthenticated: p.unauthenticated,
                local_storage: p.local_storage,
                seal_wrap_storage: p.seal_wrap_storage,
                ..Default::default()
            }),
        }))
    }

    async fn handle_existence_check(
        &self,
        request: Request<pb::HandleExistenceCheckArgs>,
    ) -> Result<Response<pb::HandleExistenceCheckReply>, Status> {
        let mount = self.mount(request.metadata())?;
        let args = request.into_inner();
        let result = match Self::request(&mount, args.request) {
            Ok(req) => {
                let what = format!("HandleExistenceCheck {}", req.path);
                catch_panic(&what, mount.backend.handle_existence_check(req))
                    .await
                    .unwrap_or_else(|()| Err(BackendError::internal(PANIC_MESSAGE)))
            }
            Err(e) => Err(e),
        };
        let reply = match result {
            Ok((check_found, exists)) => pb::HandleExistenceCheckReply {
                check_found,
                exists,
                err: None,
            },
            Err(e) => pb::HandleExistenceCheckReply {
                check_found: false,
                exists: false,
                err: Some(translate::error_to_pb(&e)),
            },
        };
        Ok(Response::new(reply))
    }

    async fn cleanup(&self, request: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        let id = multiplex_id(request.metadata())?;
        let removed = self.mounts_write().remove(&id);
        if let Some(mount) = removed {
            if let Some(clean) = &mount.backend.clean {
                catch_panic("Cleanup", async { clean() })
                    .await
                    .map_err(|()| Status::internal(PANIC_MESSAGE))?;
            }
            tracing::debug!(multiplex_id = %id, "backend cleaned up");
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn invalidate_key(
        &self,
        request: Request<pb::InvalidateKeyArgs>,
    ) -> Result<Response<pb::Empty>, Status> {
        let mount = self.mount(request.metadata())?;
        let key = request.into_inner().key;
        if let Some(invalidate) = &mount.backend.invalidate {
            catch_panic("InvalidateKey", async { invalidate(&key) })
                .await
                .map_err(|()| Status::internal(PANIC_MESSAGE))?;
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn setup(
        &self,
        request: Request<pb::SetupArgs>,
    ) -> Result<Response<pb::SetupReply>, Status> {
        let id = multiplex_id(request.metadata())?;
        let setup = catch_panic("Setup", self.setup(id, request.into_inner()));
        let err = match setup
            .await
            .unwrap_or_else(|()| Err(PANIC_MESSAGE.to_string()))
        {
            Ok(()) => String::new(),
            Err(e) => {
                tracing::error!(error = %e, "backend setup failed");
                e
            }
        };
        Ok(Response::new(pb::SetupReply { err }))
    }

    async fn initialize(
        &self,
        request: Request<pb::InitializeArgs>,
    ) -> Result<Response<pb::InitializeReply>, Status> {
        self.mount(request.metadata())?;
        Ok(Response::new(pb::InitializeReply { err: None }))
    }

    async fn r#type(&self, _: Request<pb::Empty>) -> Result<Response<pb::TypeReply>, Status> {
        Ok(Response::new(pb::TypeReply {
            r#type: BACKEND_TYPE_LOGICAL,
        }))
    }
}

struct VersionService(String);

#[tonic::async_trait]
impl PluginVersion for VersionService {
    async fn version(&self, _: Request<LogicalEmpty>) -> Result<Response<VersionReply>, Status> {
        Ok(Response::new(VersionReply {
            plugin_version: self.0.clone(),
        }))
    }
}

struct Multiplexing;

#[tonic::async_trait]
impl PluginMultiplexing for Multiplexing {
    async fn multiplexing_support(
        &self,
        _: Request<MultiplexingSupportRequest>,
    ) -> Result<Response<MultiplexingSupportResponse>, Status> {
        Ok(Response::new(MultiplexingSupportResponse {
            supported: true,
        }))
    }
}

/// The version string Vault expects for this crate: `v` + the crate version.
pub fn crate_version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_call_is_an_error_for_that_call_only() {
        let index = 7;
        let panicked = catch_panic("test", async move { [1, 2, 3][index] }).await;
        assert_eq!(panicked, Err(()));
        assert_eq!(catch_panic("test", async { 5 }).await, Ok(5));
    }

    #[test]
    fn panic_text_reads_str_and_string_payloads() {
        assert_eq!(panic_text(&"static"), "static");
        assert_eq!(panic_text(&format!("formatted {}", 1)), "formatted 1");
        assert_eq!(panic_text(&42u8), "non-text panic payload");
        assert_eq!(panic_text(&"x".repeat(2000)).len(), 500);
    }
}
