//! Vault's backend protocol and a small framework for writing backends.
//!
//! - [`storage`] / [`system_view`]: Vault's services, reached over the broker.
//! - [`framework`]: paths, fields, secrets, WAL, errors: what engine code uses.
//! - [`in_memory`]: a mount without Vault, for tests and fuzzing.
//! - [`translate`]: framework types to and from the wire messages.
//! - [`plugin_server`]: the `pb.Backend` gRPC service, one backend per mount
//!   (`multiplex_id`), plus `PluginVersion` and `PluginMultiplexing`.

pub mod framework;
pub mod in_memory;
pub mod plugin_server;
pub mod storage;
pub mod system_view;
pub mod translate;
