//! TLS for the Atlas client: rustls with the aws-lc-rs provider chosen explicitly (no reliance on
//! a process-wide default provider) and the platform's trusted roots.
//!
//! Roots come from `rustls-native-certs` rather than a compiled-in list (webpki-roots): Vault runs
//! in enterprises that add their own CA for TLS-inspecting proxies, and operators expect
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` and the OS trust store to be honoured, as Go's HTTP client
//! (used by the official plugin) does.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::error::AtlasError;

/// `require_roots` is false for plain-HTTP base URLs (local simulators), where TLS is never used.
pub(crate) fn client_config(
    extra_roots_pem: Option<&str>,
    require_roots: bool,
) -> Result<rustls::ClientConfig, AtlasError> {
    let mut roots = RootCertStore::empty();

    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "skipping unreadable platform CA certificate source");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "loaded platform CA certificates");

    if let Some(pem) = extra_roots_pem {
        let mut count = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| {
                AtlasError::Config(format!("extra root certificates are not valid PEM: {e}"))
            })?;
            roots
                .add(cert)
                .map_err(|e| AtlasError::Config(format!("extra root certificate rejected: {e}")))?;
            count += 1;
        }
        if count == 0 {
            return Err(AtlasError::Config(
                "extra root certificates contain no PEM certificate".to_owned(),
            ));
        }
    }

    if require_roots && roots.is_empty() {
        return Err(AtlasError::Config(
            "no trusted CA certificates found: install the system CA bundle or set SSL_CERT_FILE"
                .to_owned(),
        ));
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AtlasError::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // reqwest leaves ALPN to whoever builds the config; offer HTTP/2 like Atlas' own clients.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_extra_root_and_rejects_garbage() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("self-signed certificate");
        let pem = cert.cert.pem();
        let config = client_config(Some(&pem), true).expect("config with extra root");
        assert_eq!(config.alpn_protocols[0], b"h2");

        let err = client_config(Some("not a certificate"), false).expect_err("garbage PEM");
        assert!(matches!(err, AtlasError::Config(_)), "{err}");
    }
}
