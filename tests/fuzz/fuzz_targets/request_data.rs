//! The request body Vault forwards (a JSON string, numbers verbatim) on each
//! of the engine's paths and operations: the first byte picks the operation,
//! the second the path; the rest is the data, as text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_mongodbatlas::proto::pb;

mod common;

const OPERATIONS: [&str; 8] = [
    "create", "read", "update", "delete", "list", "patch", "help", "rollback",
];
const PATHS: [&str; 8] = [
    "config",
    "roles/r",
    "roles/new",
    "roles/",
    "creds/r",
    "creds/missing",
    "",
    "roles/R.x-1",
];

fuzz_target!(|bytes: &[u8]| {
    let [op, path, data @ ..] = bytes else {
        return;
    };
    common::dispatch(pb::Request {
        operation: OPERATIONS[usize::from(*op) % OPERATIONS.len()].into(),
        path: PATHS[usize::from(*path) % PATHS.len()].into(),
        data: String::from_utf8_lossy(data).into_owned(),
        mount_point: "mongodbatlas/".into(),
        entity_id: String::new(),
        ..Default::default()
    });
});
