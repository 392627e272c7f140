//! What both targets share: a fresh engine mount per input (in-memory storage
//! holding a valid role and no Atlas config, so no input reaches the network)
//! and the dispatch every decoded request goes through in the plugin.

use std::sync::OnceLock;

use vault_mongodbatlas::engine::MongoDbAtlas;
use vault_mongodbatlas::proto::pb;
use vault_mongodbatlas::vault::framework::BackendError;
use vault_mongodbatlas::vault::in_memory::InMemoryMount;
use vault_mongodbatlas::vault::storage::{Storage, StorageEntry};
use vault_mongodbatlas::vault::translate;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

const ROLE: &str = r#"{"organization_id":"5f0c4f2b8c1e4a3d2b1a0f9e","roles":["ORG_MEMBER"],"ip_addresses":["192.0.2.1"],"ttl":3600000000000}"#;

/// Decodes nothing itself: runs `req` through the plugin's translation and
/// the engine's dispatch (request, then existence check), as pb.Backend does.
pub fn dispatch(req: pb::Request) {
    runtime().block_on(async move {
        let InMemoryMount {
            backend,
            storage,
            system,
        } = InMemoryMount::new(&MongoDbAtlas::default()).expect("backend");
        storage
            .put(StorageEntry {
                key: "roles/r".into(),
                value: ROLE.as_bytes().to_vec(),
                seal_wrap: false,
            })
            .await
            .expect("seed role");
        let Ok(request) = translate::request_from_pb(req, storage, system) else {
            return;
        };
        let outcome = backend.handle_request(request.clone()).await;
        // What Vault receives must always encode.
        let _ = translate::outcome_to_pb(outcome);
        if let Err(BackendError::Internal(msg)) = backend.handle_existence_check(request).await {
            assert!(!msg.is_empty());
        }
    });
}
