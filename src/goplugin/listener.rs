//! Where the plugin listens: a unix socket (go-plugin's default on Linux) in
//! `PLUGIN_UNIX_SOCKET_DIR` or the temp dir, else loopback TCP; and the accept
//! loop that completes TLS handshakes off the accept path.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// A TLS handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Listener {
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
    Tcp(TcpListener),
}

impl Listener {
    /// Binds a unix socket as go-plugin does, falling back to loopback TCP.
    pub fn bind(env: impl Fn(&str) -> Option<String>) -> io::Result<Self> {
        match bind_unix(&env) {
            Ok(l) => Ok(l),
            Err(e) => {
                tracing::warn!(error = %e, "unix socket unavailable, listening on loopback tcp");
                bind_tcp(&env)
            }
        }
    }

    /// (network, address) for the handshake line.
    pub fn network_address(&self) -> io::Result<(&'static str, String)> {
        match self {
            Listener::Unix { path, .. } => Ok(("unix", path.display().to_string())),
            Listener::Tcp(l) => Ok(("tcp", l.local_addr()?.to_string())),
        }
    }

    pub fn socket_path(&self) -> Option<&Path> {
        match self {
            Listener::Unix { path, .. } => Some(path),
            Listener::Tcp(_) => None,
        }
    }

    async fn accept(&self) -> io::Result<Box<dyn Io>> {
        Ok(match self {
            Listener::Unix { listener, .. } => Box::new(listener.accept().await?.0),
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        })
    }

    /// Accepts connections forever, handing finished (TLS) connections to the stream.
    pub fn incoming(
        self,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> ReceiverStream<io::Result<Conn>> {
        let (tx, rx) = mpsc::channel(16);
        let acceptor = tls.map(TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                let io = match self.accept().await {
                    Ok(io) => io,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let tx = tx.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let conn = match acceptor {
                        None => Conn(Box::pin(io)),
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await
                            {
                                Ok(Ok(tls)) => Conn(Box::pin(tls)),
                                Ok(Err(e)) => {
                                    tracing::warn!(error = %e, "rejected a connection: TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::warn!(
                                        "rejected a connection: TLS handshake timed out"
                                    );
                                    return;
                                }
                            }
                        }
                    };
                    let _ = tx.send(Ok(conn)).await;
                });
            }
        });
        ReceiverStream::new(rx)
    }
}

fn bind_unix(env: &impl Fn(&str) -> Option<String>) -> io::Result<Listener> {
    let dir = env("PLUGIN_UNIX_SOCKET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("plugin{}", rand::random::<u32>()));
    let listener = UnixListener::bind(&path)?;
    if let Some(group) = env("PLUGIN_UNIX_SOCKET_GROUP").filter(|g| !g.is_empty()) {
        set_socket_group(&path, &group)?;
    }
    Ok(Listener::Unix { listener, path })
}

/// Lets a configured group (Vault in another container) use the socket.
fn set_socket_group(path: &Path, group: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let gid = match group.parse::<u32>() {
        Ok(gid) => gid,
        Err(_) => lookup_group(group)?,
    };
    std::os::unix::fs::chown(path, None, Some(gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
}

fn lookup_group(name: &str) -> io::Result<u32> {
    let groups = std::fs::read_to_string("/etc/group")?;
    groups
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(':');
            let n = parts.next()?;
            let gid = parts.nth(1)?.parse().ok()?;
            (n == name).then_some(gid)
        })
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("PLUGIN_UNIX_SOCKET_GROUP: no group named {name:?}"),
            )
        })
}

fn bind_tcp(env: &impl Fn(&str) -> Option<String>) -> io::Result<Listener> {
    let port = |k| env(k).and_then(|v| v.parse::<u16>().ok());
    let listener = match (port("PLUGIN_MIN_PORT"), port("PLUGIN_MAX_PORT")) {
        (Some(min), Some(max)) if min <= max => (min..=max)
            .find_map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("no free port in {min}..={max}"),
                )
            })?,
        _ => std::net::TcpListener::bind(("127.0.0.1", 0))?,
    };
    listener.set_nonblocking(true)?;
    Ok(Listener::Tcp(TcpListener::from_std(listener)?))
}

/// Any byte stream we serve gRPC on.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An accepted (and, with a host certificate, authenticated) connection.
pub struct Conn(Pin<Box<dyn Io>>);

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
