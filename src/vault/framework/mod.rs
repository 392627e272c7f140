//! The backend framework: what an engine writes against.
//!
//! An engine declares [`Path`]s (regex patterns with typed [`FieldSchema`]s and
//! one async handler per [`Operation`]) and [`SecretType`]s (renew and revoke
//! callbacks), and gets Vault's semantics for free: field parsing like Vault's
//! Go framework, warnings for unrecognized fields, `help` and OpenAPI, renew /
//! revoke dispatch on `secret_type`, WAL rollback, and error mapping where a
//! user error is a 400 with the engine's message.

mod backend;
mod detached;
mod duration;
mod error;
mod field;
mod openapi;
mod path;
mod request;
pub mod wal;

pub use backend::{
    rollback_handler, Backend, BackendConfig, BackendFactory, Hook, SpecialPaths, WalRollback,
};
pub use detached::{Handover, Tasks};
pub use duration::parse_duration;
pub use error::BackendError;
pub use field::{FieldData, FieldSchema, FieldType};
pub use path::{existence_check, handler, handler_with, ExistenceCheck, Handler, Path};
pub use request::{LeaseOptions, Operation, Request, Response, Secret, SecretType};
