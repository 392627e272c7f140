//! An HTTP CONNECT proxy that never leaves the machine: `CONNECT cloud.mongodb.com:443`
//! (or localhost / 127.0.0.1 / ::1, any port) is answered `200` and the tunnel is terminated
//! by the simulator's own TLS endpoint, so programs that insist on `https://cloud.mongodb.com`
//! work with `HTTPS_PROXY=http://127.0.0.1:<port>` and `SSL_CERT_FILE=<ca.pem>`.
//! Other hosts get `403`; other methods `405`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::server::{drain, serve_connection, stopped, ConnInfo, Shared};

const MAX_HEAD: usize = 8 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Hosts the proxy terminates locally.
pub const TUNNEL_HOSTS: &[&str] = &[
    "cloud.mongodb.com",
    "cloud.mongodbgov.com",
    "localhost",
    "127.0.0.1",
    "[::1]",
];

/// Reads the request head byte by byte, so nothing after it (the TLS hello) is consumed.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD || stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

/// `CONNECT host:port HTTP/1.1` → Some(host) if the host is one we terminate.
fn tunnel_target(request_line: &str) -> Result<&str, &'static str> {
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err("400 Bad Request");
    };
    if method != "CONNECT" {
        return Err("405 Method Not Allowed");
    }
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    if TUNNEL_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        Ok(host)
    } else {
        Err("403 Forbidden")
    }
}

async fn handle(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    tls: tokio_rustls::TlsAcceptor,
    stop: watch::Receiver<bool>,
) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let Ok(Some(head)) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await else {
        return;
    };
    let request_line = head.lines().next().unwrap_or("");
    match tunnel_target(request_line) {
        Ok(host) => {
            tracing::debug!(host, "CONNECT tunnel");
            if stream
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
        }
        Err(status) => {
            let reply =
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes()).await;
            return;
        }
    }
    match tokio::time::timeout(HEAD_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(tls_stream)) => {
            serve_connection(tls_stream, shared, ConnInfo { peer, https: true }, stop).await
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake in tunnel failed"),
        Err(_) => tracing::debug!("TLS handshake in tunnel timed out"),
    }
}

pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: tokio_rustls::TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(handle(stream, shared.clone(), tls.clone(), shutdown.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    drain(connections).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_and_atlas_hosts_are_tunnelled() {
        assert_eq!(
            tunnel_target("CONNECT cloud.mongodb.com:443 HTTP/1.1"),
            Ok("cloud.mongodb.com")
        );
        assert_eq!(
            tunnel_target("CONNECT 127.0.0.1:8443 HTTP/1.1"),
            Ok("127.0.0.1")
        );
        assert_eq!(tunnel_target("CONNECT [::1]:443 HTTP/1.1"), Ok("[::1]"));
        assert_eq!(
            tunnel_target("CONNECT example.com:443 HTTP/1.1"),
            Err("403 Forbidden")
        );
        assert_eq!(
            tunnel_target("GET http://cloud.mongodb.com/ HTTP/1.1"),
            Err("405 Method Not Allowed")
        );
        assert_eq!(tunnel_target(""), Err("400 Bad Request"));
    }
}
