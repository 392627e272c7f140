//! Runs a go-plugin gRPC server: launch checks, TLS, listener, handshake line,
//! go-plugin's own services around the application's, and shutdown.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tonic::service::Routes;
use tonic::transport::Server;

use super::broker::Broker;
use super::handshake::{self, LaunchError};
use super::listener::Listener;
use super::services::{Controller, ShutdownSignal, Stdio};
use super::tls;
use crate::proto::plugin::grpc_broker_server::GrpcBrokerServer;
use crate::proto::plugin::grpc_controller_server::GrpcControllerServer;
use crate::proto::plugin::grpc_stdio_server::GrpcStdioServer;

/// After a shutdown request, in-flight calls (normally just the Shutdown
/// reply: Vault cleans up every mount first) get this long before we exit.
/// The host keeps its streams open until we are gone, so this is always
/// waited in full; the host kills the process 2 s after asking.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(150);

/// How often we check that the process that launched us is still our parent.
const PARENT_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error("could not listen: {0}")]
    Listen(std::io::Error),
    #[error("could not write the handshake line to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Everything the application needs from the transport to build its services.
pub struct PluginContext {
    /// Dials host services announced through the broker.
    pub broker: Broker,
    /// Triggered to stop the process.
    pub shutdown: ShutdownSignal,
}

/// Entry point for a plugin binary: returns the process exit code.
/// `services` builds the application's gRPC services (e.g. `pb.Backend`).
pub fn run(services: impl FnOnce(PluginContext) -> Routes) -> ExitCode {
    // First thing: a host that dies later must not be mistaken for the one we record.
    let host_pid = std::os::unix::process::parent_id();
    let env = |k: &str| std::env::var(k).ok();
    if let Err(e) = handshake::negotiate(env) {
        match e {
            LaunchError::NotLaunchedByHost => eprint!("{e}"),
            LaunchError::UnsupportedProtocol { .. } => tracing::error!("{e}"),
        }
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "could not start the async runtime");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(env, host_pid, services)) {
        Ok(()) => {
            // Do not wait for lingering tasks (the host's open broker stream).
            runtime.shutdown_background();
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(
    env: impl Fn(&str) -> Option<String>,
    host_pid: u32,
    services: impl FnOnce(PluginContext) -> Routes,
) -> Result<(), ServeError> {
    let host_cert = env("PLUGIN_CLIENT_CERT")
        .filter(|pem| !pem.trim().is_empty())
        .map(|pem| tls::parse_host_cert(&pem))
        .transpose()?;
    // With a host certificate: mutual TLS pinned to it. Without one the host
    // asked for plaintext (AutoMTLS off), as go-plugin allows.
    let (server_tls, client_tls, our_cert) = match host_cert {
        Some(host_cert) => {
            let identity = tls::Identity::generate()?;
            let server = Arc::new(tls::server_config(&identity, host_cert.clone())?);
            let client = Arc::new(tls::client_config(&identity, host_cert)?);
            (Some(server), Some(client), Some(identity.cert))
        }
        None => {
            tracing::warn!("PLUGIN_CLIENT_CERT not set: serving without TLS");
            (None, None, None)
        }
    };

    let listener = Listener::bind(&env).map_err(ServeError::Listen)?;
    let (network, address) = listener.network_address().map_err(ServeError::Listen)?;
    let socket_path = listener.socket_path().map(|p| p.to_path_buf());
    let line = handshake::handshake_line(network, &address, our_cert.as_ref().map(|c| c.as_ref()));
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(ServeError::Stdout)?;
    }
    tracing::debug!(network, address = %address, "plugin listening");

    let shutdown = ShutdownSignal::default();
    spawn_signal_handlers(shutdown.clone());
    spawn_host_watch(host_pid, shutdown.clone());
    let broker = Broker::new(client_tls);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let app = services(PluginContext {
        broker: broker.clone(),
        shutdown: shutdown.clone(),
    });

    let server = Server::builder()
        .add_routes(app)
        .add_service(health_service)
        .add_service(GrpcBrokerServer::new(broker))
        .add_service(GrpcControllerServer::new(Controller {
            shutdown: shutdown.clone(),
        }))
        .add_service(GrpcStdioServer::new(Stdio))
        .serve_with_incoming_shutdown(listener.incoming(server_tls), shutdown.wait());
    tokio::pin!(server);

    let result = tokio::select! {
        r = &mut server => r.map_err(ServeError::from),
        () = shutdown.wait() => {
            // Graceful drain, bounded: the host keeps streams open forever.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await;
            Ok(())
        }
    };
    if let Some(path) = socket_path {
        let _ = std::fs::remove_file(path);
    }
    tracing::debug!("plugin stopped");
    result
}

/// A host killed without asking us to stop (SIGKILL, OOM) leaves us reparented to init or a
/// subreaper, with nobody left to call us: stop then. Not PR_SET_PDEATHSIG, which fires when
/// the launching *thread* exits, and Go's runtime may end that thread in a healthy Vault.
fn spawn_host_watch(host_pid: u32, shutdown: ShutdownSignal) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PARENT_POLL);
        loop {
            tick.tick().await;
            if std::os::unix::process::parent_id() != host_pid {
                tracing::warn!(
                    host_pid,
                    "the Vault process that started this plugin is gone; exiting"
                );
                shutdown.trigger();
                return;
            }
        }
    });
}

/// go-plugin servers ignore SIGINT (the host handles Ctrl-C for its process
/// group); SIGTERM stops us like a shutdown request.
fn spawn_signal_handlers(shutdown: ShutdownSignal) {
    use tokio::signal::unix::{signal, SignalKind};
    if let Ok(mut sigint) = signal(SignalKind::interrupt()) {
        tokio::spawn(async move { while sigint.recv().await.is_some() {} });
    }
    if let Ok(mut sigterm) = signal(SignalKind::terminate()) {
        tokio::spawn(async move {
            if sigterm.recv().await.is_some() {
                shutdown.trigger();
            }
        });
    }
}
