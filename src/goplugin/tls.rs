//! AutoMTLS: our one-off identity, and verifiers pinned to exactly one peer
//! certificate.
//!
//! Vault's certificate is a self-signed P-521 certificate with `CA:TRUE` used
//! as an end entity. WebPKI path validation rejects that (`CaUsedAsEndEntity`),
//! so instead of chain building we pin: the peer must present byte-for-byte
//! the certificate Vault gave us (`PLUGIN_CLIENT_CERT`) or the one the broker
//! handshake refers to, within its validity window, and prove possession of
//! its key in the TLS handshake. aws-lc-rs is required: ring cannot verify
//! P-521 signatures, and a server that cannot verify them silently receives
//! no client certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error as TlsError, SignatureScheme};

/// The name both sides use for each other, as go-plugin does.
pub const SERVER_NAME: &str = "localhost";
const ALPN_H2: &[u8] = b"h2";

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("could not generate the plugin's TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("PLUGIN_CLIENT_CERT does not hold a PEM certificate: {0}")]
    HostCert(String),
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] TlsError),
}

/// The crypto provider for every TLS config in the process.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// This process' certificate and key, generated at start and never stored.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// ECDSA P-256 self-signed certificate for `localhost`, usable as client and server.
    pub fn generate() -> Result<Self, TlsSetupError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, SERVER_NAME);
        params.distinguished_name.push(
            rcgen::DnType::OrganizationName,
            "vault-plugin-secrets-mongodbatlas",
        );
        let now = time::OffsetDateTime::now_utc();
        // A little slack for clock skew between Vault and us, as go-plugin allows.
        params.not_before = now - time::Duration::seconds(30);
        params.not_after = now + time::Duration::days(3650);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.self_signed(&key_pair)?;
        Ok(Self {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        })
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// Parses the host certificate from `PLUGIN_CLIENT_CERT`'s PEM.
pub fn parse_host_cert(pem: &str) -> Result<CertificateDer<'static>, TlsSetupError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TlsSetupError::HostCert(e.to_string()))
}

/// Server side of the plugin's main listener: client auth mandatory and pinned.
pub fn server_config(
    identity: &Identity,
    host_cert: CertificateDer<'static>,
) -> Result<rustls::ServerConfig, TlsSetupError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCertVerifier::new(host_cert, provider.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert.clone()], identity.key())?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Client side, for dialing back into the host through the broker.
pub fn client_config(
    identity: &Identity,
    host_cert: CertificateDer<'static>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCertVerifier::new(host_cert, provider.clone()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key())?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Accepts exactly one certificate, in either direction.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    expected: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl PinnedCertVerifier {
    pub fn new(expected: CertificateDer<'static>, provider: Arc<CryptoProvider>) -> Self {
        Self { expected, provider }
    }

    fn check(
        &self,
        presented: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), TlsError> {
        if !intermediates.is_empty() || presented.as_ref() != self.expected.as_ref() {
            return Err(TlsError::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        check_validity(presented, now)
    }
}

fn check_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| TlsError::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = parsed.validity();
    if now < validity.not_before.timestamp() {
        return Err(TlsError::InvalidCertificate(
            rustls::CertificateError::NotValidYet,
        ));
    }
    if now > validity.not_after.timestamp() {
        return Err(TlsError::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
    }
    Ok(())
}

/// Handshake signatures are checked the same way in both directions, with
/// the provider's algorithms (aws-lc-rs: P-521 included).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

impl ClientCertVerifier for PinnedCertVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        self.check(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        self.check(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_p256_for_localhost() {
        let id = Identity::generate().expect("generate");
        let (_, cert) = x509_parser::parse_x509_certificate(id.cert.as_ref()).expect("parse");
        let san = cert
            .subject_alternative_name()
            .expect("ext")
            .expect("san present");
        assert!(format!("{:?}", san.value).contains("localhost"));
        assert_eq!(
            cert.public_key()
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok()),
            Some(x509_parser::oid_registry::OID_EC_P256)
        );
    }

    #[test]
    fn pin_rejects_any_other_certificate() {
        let a = Identity::generate().expect("a");
        let b = Identity::generate().expect("b");
        let v = PinnedCertVerifier::new(a.cert.clone(), provider());
        let now = UnixTime::now();
        assert!(v.check(&a.cert, &[], now).is_ok());
        assert!(v.check(&b.cert, &[], now).is_err());
        assert!(v
            .check(&a.cert, std::slice::from_ref(&b.cert), now)
            .is_err());
        assert!(ClientCertVerifier::client_auth_mandatory(&v));
    }

    #[test]
    fn pin_rejects_expired_certificate() {
        let a = Identity::generate().expect("a");
        let v = PinnedCertVerifier::new(a.cert.clone(), provider());
        let far_future =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(4_102_444_800 * 2));
        assert!(v.check(&a.cert, &[], far_future).is_err());
    }

    #[test]
    fn provider_verifies_p521() {
        let schemes = provider()
            .signature_verification_algorithms
            .supported_schemes();
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
    }
}
