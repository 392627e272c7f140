//! A mount hosted without Vault: in-memory storage and fixed system values.
//! For tests and fuzz targets that drive an engine in-process.

use std::sync::Arc;
use std::time::Duration;

use super::framework::{Backend, BackendConfig, BackendFactory};
use super::storage::InMemStorage;
use super::system_view::StaticSystemView;

pub struct InMemoryMount {
    pub backend: Backend,
    pub storage: Arc<InMemStorage>,
    pub system: Arc<StaticSystemView>,
}

impl InMemoryMount {
    /// A mount of `factory` with a 1 h default and 24 h maximum lease TTL.
    pub fn new(factory: &impl BackendFactory) -> Result<Self, String> {
        let storage = Arc::new(InMemStorage::default());
        let system = Arc::new(StaticSystemView {
            default_lease_ttl: Duration::from_secs(3600),
            max_lease_ttl: Duration::from_secs(24 * 3600),
            ..StaticSystemView::default()
        });
        let backend = factory.create(&BackendConfig {
            storage: storage.clone(),
            system: system.clone(),
            config: Default::default(),
            backend_uuid: "in-memory".into(),
        })?;
        Ok(Self {
            backend,
            storage,
            system,
        })
    }
}
