//! A scripted HTTP/1.1 server for the client's unit tests, plus an Atlas-like Digest gate.
//! The script sees every request and decides the reply: a response, a dropped connection, or a
//! stall long enough to trip the client's timeout. The gate is the simulator's Digest verifier
//! (`atlas_sim::digest`, a dev-dependency), so the repository has one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use atlas_sim::digest::{challenge_header, verify, AuthOutcome, NonceStore};

#[derive(Clone, Debug)]
pub(crate) struct SeenRequest {
    pub(crate) version: http::Version,
    pub(crate) method: Method,
    pub(crate) path_and_query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl SeenRequest {
    pub(crate) fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    pub(crate) fn is(&self, method: &str, path: &str) -> bool {
        self.method.as_str() == method && self.path() == path
    }
}

enum ReplyKind {
    Respond,
    /// Close the connection without answering (the client sees a reset / incomplete message).
    Drop,
    /// Wait this long before answering.
    Stall(Duration),
}

pub(crate) struct Reply {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: String,
    kind: ReplyKind,
}

impl Reply {
    pub(crate) fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("status"),
            headers: vec![(
                "content-type".to_owned(),
                "application/vnd.atlas.2023-01-01+json;charset=utf-8".to_owned(),
            )],
            body: body.into(),
            kind: ReplyKind::Respond,
        }
    }

    pub(crate) fn empty(status: u16) -> Self {
        Self::json(status, "")
    }

    /// An Atlas error document.
    pub(crate) fn error(status: u16, code: &str, detail: &str) -> Self {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        Self::json(
            status,
            serde_json::json!({"detail": detail, "error": status, "errorCode": code, "parameters": [], "reason": reason})
                .to_string(),
        )
        .header("content-type", "application/json")
        .header("x-error-code", code)
    }

    pub(crate) fn drop_connection() -> Self {
        Self {
            kind: ReplyKind::Drop,
            ..Self::empty(500)
        }
    }

    pub(crate) fn stall(for_: Duration) -> Self {
        Self {
            kind: ReplyKind::Stall(for_),
            ..Self::empty(200)
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = self.status;
        for (name, value) in self.headers {
            response.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        response
    }
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

pub(crate) struct TestServer {
    pub(crate) base_url: String,
    log: Arc<Mutex<Vec<SeenRequest>>>,
    accept_loop: JoinHandle<()>,
}

impl TestServer {
    pub(crate) async fn start(
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept_log = log.clone();
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = accept_log.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let log = log.clone();
                        let handler = handler.clone();
                        async move { serve(request, &log, handler.as_ref()).await }
                    });
                    // Errors here are the dropped connections the scripts ask for.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base_url: format!("http://{addr}"),
            log,
            accept_loop,
        }
    }

    /// HTTPS (HTTP/1.1 or HTTP/2 by ALPN) with a fresh self-signed certificate for 127.0.0.1;
    /// also returns that certificate's PEM for the client to trust.
    pub(crate) async fn start_tls(
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> (Self, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("self-signed certificate");
        let cert_pem = certified.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .expect("key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("server config");
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept_log = log.clone();
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = accept_log.clone();
                let handler = handler.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that rejects our certificate ends the handshake here.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request: Request<Incoming>| {
                        let log = log.clone();
                        let handler = handler.clone();
                        async move { serve(request, &log, handler.as_ref()).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        let server = Self {
            base_url: format!("https://{addr}"),
            log,
            accept_loop,
        };
        (server, cert_pem)
    }

    pub(crate) fn requests(&self) -> Vec<SeenRequest> {
        self.log.lock().expect("log").clone()
    }

    pub(crate) fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.is(method, path))
            .count()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn serve(
    request: Request<Incoming>,
    log: &Mutex<Vec<SeenRequest>>,
    handler: &Handler,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let seen = SeenRequest {
        version: parts.version,
        method: parts.method,
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(String::new, |pq| pq.as_str().to_owned()),
        headers: parts.headers,
        body,
    };
    log.lock().expect("log").push(seen.clone());
    let reply = handler(&seen);
    match reply.kind {
        ReplyKind::Respond => Ok(reply.into_response()),
        ReplyKind::Drop => Err(std::io::Error::other("scripted connection drop")),
        ReplyKind::Stall(wait) => {
            tokio::time::sleep(wait).await;
            Ok(reply.into_response())
        }
    }
}

/// Atlas-like Digest checking with the simulator's verifier: realm "MMS Public API", MD5 (or
/// SHA-256), qop=auth; a nonce accepts each `nc` once; nonces from before
/// [`expire_nonces`](Self::expire_nonces) are answered with `stale=true`.
pub(crate) struct DigestGate {
    user: String,
    password: String,
    /// Replaced by an empty store to expire every nonce issued so far.
    nonces: Mutex<Arc<NonceStore>>,
}

/// Long enough that no nonce expires by itself during a test.
const NONCE_LIFETIME: Duration = Duration::from_secs(3600);

impl DigestGate {
    pub(crate) fn new(user: &str, password: &str) -> Arc<Self> {
        Arc::new(Self {
            user: user.to_owned(),
            password: password.to_owned(),
            nonces: Mutex::new(Arc::new(NonceStore::new(NONCE_LIFETIME))),
        })
    }

    /// `Ok` if the request is properly signed, else the 401 Atlas would send.
    pub(crate) fn check(&self, request: &SeenRequest) -> Result<(), Reply> {
        let nonces = self.nonces.lock().expect("gate").clone();
        let outcome = verify(
            &nonces,
            request.method.as_str(),
            &request.path_and_query,
            request.header("authorization"),
            |user| (user == self.user).then(|| self.password.clone()),
        );
        let reason = match outcome {
            AuthOutcome::Authenticated { .. } => return Ok(()),
            AuthOutcome::Challenge(reason) => reason,
        };
        let challenge = challenge_header(&nonces.issue(), reason.stale());
        Err(Reply::error(
            401,
            "UNEXPECTED_ERROR",
            "You are not authorized for this resource.",
        )
        .header("www-authenticate", &challenge))
    }

    /// Every nonce issued so far becomes stale.
    pub(crate) fn expire_nonces(&self) {
        *self.nonces.lock().expect("gate") = Arc::new(NonceStore::new(NONCE_LIFETIME));
    }
}
