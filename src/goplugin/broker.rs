//! `plugin.GRPCBroker`: the host announces where its brokered services listen
//! (one `ConnInfo` per broker id, possibly before we ask for it), and we dial
//! them with the same mTLS identities as the main connection.
//!
//! Every mount has its own brokered connection (its storage and system view), so a
//! connection's fixed cost is paid once per mount: [`BrokerChannel`] is HTTP/2 straight
//! on hyper, without the request queue and reconnect layers of tonic's `Channel`
//! (~10 KB per mount), and redials when the host closes the connection.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::Stream;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, Notify};
use tokio_rustls::TlsConnector;
use tokio_stream::wrappers::ReceiverStream;
use tonic::body::Body;
use tonic::{Request, Response, Status, Streaming};

use super::listener::Io;
use super::tls::SERVER_NAME;
use crate::proto::plugin::grpc_broker_server::GrpcBroker;
use crate::proto::plugin::ConnInfo;

/// How long a dial waits for the host to announce the id (go-plugin's value).
pub const DIAL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the host never announced broker id {0} (waited {DIAL_WAIT:?})")]
    Timeout(u32),
    #[error("broker id {id}: unsupported network {network:?}")]
    Network { id: u32, network: String },
    #[error("broker id {id}: could not connect to {address}: {source}")]
    Connect {
        id: u32,
        address: String,
        source: io::Error,
    },
    #[error("broker id {id}: HTTP/2 handshake with {address} failed: {source}")]
    Handshake {
        id: u32,
        address: String,
        source: hyper::Error,
    },
}

#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    announced: Mutex<HashMap<u32, ConnInfo>>,
    arrived: Notify,
    tls: Option<TlsConnector>,
}

impl Broker {
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                announced: Mutex::new(HashMap::new()),
                arrived: Notify::new(),
                tls: tls.map(TlsConnector::from),
            }),
        }
    }

    fn announce(&self, info: ConnInfo) {
        tracing::trace!(id = info.service_id, network = %info.network, "broker: connection info received");
        self.announced().insert(info.service_id, info);
        self.inner.arrived.notify_waiters();
    }

    fn announced(&self) -> std::sync::MutexGuard<'_, HashMap<u32, ConnInfo>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.inner
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn wait_for(&self, id: u32) -> Result<ConnInfo, BrokerError> {
        let deadline = tokio::time::Instant::now() + DIAL_WAIT;
        loop {
            let arrived = self.inner.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(info) = self.announced().remove(&id) {
                return Ok(info);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(BrokerError::Timeout(id));
            }
        }
    }

    /// Dials the host service announced under `id`.
    pub async fn dial(&self, id: u32) -> Result<BrokerChannel, BrokerError> {
        let info = self.wait_for(id).await?;
        if info.network != "unix" && info.network != "tcp" {
            return Err(BrokerError::Network {
                id,
                network: info.network,
            });
        }
        let target = Target {
            id,
            network: info.network,
            address: info.address,
            tls: self.inner.tls.clone(),
        };
        let sender = target.dial().await?;
        Ok(BrokerChannel {
            inner: Arc::new(ChannelInner {
                target,
                sender: Mutex::new(sender),
                redial: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

/// Where a brokered service listens. go-plugin serves every connection made to the
/// address for as long as the service lives, so a closed connection can be redialled.
struct Target {
    id: u32,
    network: String,
    address: String,
    tls: Option<TlsConnector>,
}

impl Target {
    async fn dial(&self) -> Result<SendRequest<Body>, BrokerError> {
        let connect = async {
            let io = connect(&self.network, &self.address, self.tls.clone())
                .await
                .map_err(|source| BrokerError::Connect {
                    id: self.id,
                    address: self.address.clone(),
                    source,
                })?;
            hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(io))
                .await
                .map_err(|source| BrokerError::Handshake {
                    id: self.id,
                    address: self.address.clone(),
                    source,
                })
        };
        let (sender, connection) =
            tokio::time::timeout(DIAL_WAIT, connect)
                .await
                .map_err(|_| BrokerError::Connect {
                    id: self.id,
                    address: self.address.clone(),
                    source: io::ErrorKind::TimedOut.into(),
                })??;
        let id = self.id;
        tokio::spawn(async move {
            // Ends when the host closes the connection or the last sender is dropped.
            if let Err(error) = connection.await {
                tracing::debug!(id, %error, "broker: connection closed");
            }
        });
        Ok(sender)
    }
}

/// A gRPC channel to one brokered host service (a tonic client's transport).
#[derive(Clone)]
pub struct BrokerChannel {
    inner: Arc<ChannelInner>,
}

struct ChannelInner {
    target: Target,
    sender: Mutex<SendRequest<Body>>,
    /// One redial at a time: callers that find the connection closed together share it.
    redial: tokio::sync::Mutex<()>,
}

impl BrokerChannel {
    /// The live connection's sender, redialling once if the host closed it.
    async fn sender(&self) -> Result<SendRequest<Body>, BrokerError> {
        let current = self.lock_sender().clone();
        if !current.is_closed() {
            return Ok(current);
        }
        let _one_at_a_time = self.inner.redial.lock().await;
        let current = self.lock_sender().clone();
        if !current.is_closed() {
            // Another caller redialled while this one waited.
            return Ok(current);
        }
        tracing::debug!(
            id = self.inner.target.id,
            "broker: redialling a closed connection"
        );
        let fresh = self.inner.target.dial().await?;
        *self.lock_sender() = fresh.clone();
        Ok(fresh)
    }

    fn lock_sender(&self) -> std::sync::MutexGuard<'_, SendRequest<Body>> {
        // Replacing a sender cannot leave it half-written.
        self.inner.sender.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl tower::Service<http::Request<Body>> for BrokerChannel {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // HTTP/2 multiplexes: readiness is awaited per request, on the connection in use.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let channel = self.clone();
        Box::pin(async move {
            // tonic's clients send the path only; HTTP/2 needs a scheme and an authority.
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            *request.uri_mut() = http::Uri::builder()
                .scheme("http")
                .authority("localhost")
                .path_and_query(path)
                .build()?;
            let mut sender = channel.sender().await?;
            sender.ready().await?;
            Ok(sender.send_request(request).await?)
        })
    }
}

async fn connect(
    network: &str,
    address: &str,
    tls: Option<TlsConnector>,
) -> io::Result<Pin<Box<dyn Io>>> {
    let io: Box<dyn Io> = if network == "unix" {
        Box::new(UnixStream::connect(address).await?)
    } else {
        let s = TcpStream::connect(address).await?;
        s.set_nodelay(true)?;
        Box::new(s)
    };
    match tls {
        None => Ok(Box::into_pin(io)),
        Some(tls) => {
            let name = ServerName::try_from(SERVER_NAME).map_err(io::Error::other)?;
            Ok(Box::pin(tls.connect(name, io).await?))
        }
    }
}

type ConnInfoStream = Pin<Box<dyn Stream<Item = Result<ConnInfo, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcBroker for Broker {
    type StartStreamStream = ConnInfoStream;

    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut incoming = request.into_inner();
        let broker = self.clone();
        // We host no brokered services, so we never send; the reply stream
        // ends when the host closes its side.
        let (done_tx, done_rx) = mpsc::channel::<Result<ConnInfo, Status>>(1);
        tokio::spawn(async move {
            while let Ok(Some(info)) = incoming.message().await {
                broker.announce(info);
            }
            drop(done_tx);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(done_rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn info_announced_before_or_after_the_wait_is_found() {
        let broker = Broker::new(None);
        broker.announce(ConnInfo {
            service_id: 1,
            network: "unix".into(),
            address: "/a".into(),
            knock: None,
        });
        assert_eq!(broker.wait_for(1).await.expect("early").address, "/a");

        let late = broker.clone();
        let waiter = tokio::spawn(async move { late.wait_for(2).await });
        tokio::task::yield_now().await;
        broker.announce(ConnInfo {
            service_id: 2,
            network: "unix".into(),
            address: "/b".into(),
            knock: None,
        });
        assert_eq!(waiter.await.expect("join").expect("late").address, "/b");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_id_times_out() {
        let broker = Broker::new(None);
        assert!(matches!(
            broker.wait_for(9).await,
            Err(BrokerError::Timeout(9))
        ));
    }

    /// A health service on a unix socket, as the host's broker serves a brokered service;
    /// counts the connections it accepts.
    async fn serve_health(
        path: &std::path::Path,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use futures::StreamExt;
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("storage", tonic_health::ServingStatus::Serving)
            .await;
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).expect("bind the unix socket");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _keep = reporter;
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::UnixListenerStream::new(listener).inspect(move |_| {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
        });
        (stop, accepted)
    }

    async fn check(channel: &BrokerChannel) -> Result<i32, Status> {
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::HealthCheckRequest;
        let reply = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: "storage".into(),
            })
            .await?;
        Ok(reply.into_inner().status)
    }

    #[tokio::test]
    async fn calls_go_over_the_dialled_connection_and_redial_after_the_host_closes_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("broker.sock");
        let (stop, _) = serve_health(&path).await;
        let broker = Broker::new(None);
        broker.announce(ConnInfo {
            service_id: 3,
            network: "unix".into(),
            address: path.to_string_lossy().into_owned(),
            knock: None,
        });
        let channel = broker.dial(3).await.expect("dial");
        let serving = tonic_health::ServingStatus::Serving as i32;
        assert_eq!(check(&channel).await.expect("first call"), serving);
        assert_eq!(check(&channel).await.expect("second call"), serving);

        // The host ends the service's connections and serves the address again.
        stop.send(()).expect("server running");
        let closed = async {
            while !channel.lock_sender().is_closed() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), closed)
            .await
            .expect("the closed connection is noticed");
        let (_stop, accepted) = serve_health(&path).await;
        let first = channel.lock_sender().clone();
        // Callers that find the connection closed together redial once.
        let calls = (0..8).map(|_| check(&channel));
        for reply in futures::future::join_all(calls).await {
            assert_eq!(reply.expect("call after redial"), serving);
        }
        assert!(first.is_closed(), "the old connection stays closed");
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one redial for all"
        );
        let redialled = channel.lock_sender().clone();
        assert_eq!(check(&channel).await.expect("later call"), serving);
        assert!(
            !redialled.is_closed(),
            "later calls use the redialled connection"
        );
    }

    #[tokio::test]
    async fn dialling_an_address_nobody_serves_names_it() {
        let broker = Broker::new(None);
        broker.announce(ConnInfo {
            service_id: 4,
            network: "unix".into(),
            address: "/nonexistent/broker.sock".into(),
            knock: None,
        });
        let err = broker.dial(4).await.err().expect("no server");
        assert!(matches!(err, BrokerError::Connect { id: 4, .. }), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/broker.sock"),
            "{err}"
        );
    }
}
