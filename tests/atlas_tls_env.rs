//! The Atlas client trusts a CA named by `SSL_CERT_FILE` (how operators and test simulators
//! with their own CA configure it). A separate test binary because it sets a process-wide
//! environment variable before any client exists.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use vault_mongodbatlas::atlas::{AtlasClient, ClientConfig};

#[tokio::test]
async fn ssl_cert_file_names_the_trusted_ca() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("self-signed certificate");
    let ca_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ca_file.path(), certified.cert.pem()).expect("write CA");
    // Only this test runs in this binary, and it sets the variable before any client exists.
    std::env::set_var("SSL_CERT_FILE", ca_file.path());

    let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .expect("key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|_request| async {
                    let mut response = hyper::Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = hyper::StatusCode::NO_CONTENT;
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let config = ClientConfig::new("abcdefgh", "00000000-0000-0000-0000-000000000000")
        .with_base_url(format!("https://{addr}"));
    let client = AtlasClient::new(config).expect("client");
    client
        .delete_org_key("a0123456789abcdef012345a", "6a793f752c88faeba59bba49")
        .await
        .expect("TLS to a server whose CA is in SSL_CERT_FILE");
    server.abort();
}
