//! Vault secrets-engine plugin for MongoDB Atlas, in Rust.
//!
//! Layers, bottom up:
//! - [`goplugin`]: hashicorp/go-plugin transport (launch, handshake, AutoMTLS, broker, controller).
//! - [`vault`]: Vault's backend protocol and a small backend framework engines plug into.
//! - [`atlas`]: MongoDB Atlas Administration API client.
//! - [`engine`]: the MongoDB Atlas secrets engine (config, roles, creds, secret).
//! - [`sim`]: a local, stateful Atlas simulator (the `atlas-sim` binary).
pub mod atlas;
pub mod engine;
pub mod goplugin;
pub mod logging;
pub mod proto;
// The simulator is moving to its own crate: its lint fixes happen there.
#[allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]
pub mod sim;
pub mod vault;
