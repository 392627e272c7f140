//! hashicorp/go-plugin transport: everything between "Vault execs our binary"
//! and "a gRPC service is reachable over mutual TLS".
//!
//! - [`handshake`]: launch checks (magic cookie, protocol version) and the stdout line.
//! - [`tls`]: our one-off certificate and verifiers pinned to the host's certificate.
//! - [`listener`]: the unix socket (or loopback tcp) and TLS accept loop.
//! - [`broker`]: `plugin.GRPCBroker`: learns where the host's services listen and dials back.
//! - [`services`]: `plugin.GRPCController` (shutdown) and `plugin.GRPCStdio`.
//! - [`server`]: ties them together around the application's gRPC services.

pub mod broker;
pub mod handshake;
pub mod listener;
pub mod server;
pub mod services;
pub mod tls;

/// Vault's message size limit (Go's `math.MaxInt32`); tonic's default is 4 MiB.
pub const MAX_MESSAGE_SIZE: usize = i32::MAX as usize;
