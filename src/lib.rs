//! Vault secrets-engine plugin for MongoDB Atlas, in Rust.
//!
//! Layers, bottom up:
//! - [`goplugin`]: hashicorp/go-plugin transport (launch, handshake, AutoMTLS, broker, controller).
//! - [`vault`]: Vault's backend protocol and a small backend framework engines plug into.
//! - [`atlas`]: MongoDB Atlas Administration API client.
//! - [`engine`]: the MongoDB Atlas secrets engine (config, roles, creds, secret).
//!
//! The Atlas simulator the tests run against is its own package, `atlas-sim` (`tests/atlas-sim`).
pub mod atlas;
pub mod engine;
pub mod goplugin;
pub mod logging;
pub mod proto;
pub mod vault;
