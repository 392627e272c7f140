//! `plugin.GRPCBroker`: the host announces where its brokered services listen
//! (one `ConnInfo` per broker id, possibly before we ask for it), and we dial
//! them with the same mTLS identities as the main connection.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, Notify};
use tokio_rustls::TlsConnector;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
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
        source: tonic::transport::Error,
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
    pub async fn dial(&self, id: u32) -> Result<Channel, BrokerError> {
        let info = self.wait_for(id).await?;
        let network = info.network.clone();
        if network != "unix" && network != "tcp" {
            return Err(BrokerError::Network { id, network });
        }
        let address = info.address.clone();
        let tls = self.inner.tls.clone();
        let connector = tower::service_fn(move |_: http::Uri| {
            let (network, address, tls) = (network.clone(), address.clone(), tls.clone());
            async move { connect(&network, &address, tls).await.map(TokioIo::new) }
        });
        Endpoint::from_static("http://localhost")
            .connect_timeout(DIAL_WAIT)
            .connect_with_connector(connector)
            .await
            .map_err(|source| BrokerError::Connect {
                id,
                address: info.address,
                source,
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
}
