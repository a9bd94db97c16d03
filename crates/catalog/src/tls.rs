//! TLS to PostgreSQL, with libpq's `sslmode` meanings:
//!
//! | ssl_mode | encrypted | certificate checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | - | - |
//! | `prefer` | when the server offers it | no | no |
//! | `require` | yes | only against `ca_cert_path`, when given | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! Trust anchors are the certificates in `ca_cert_path`, else the system's store.

use std::sync::Arc;

use ferrostack_config::{PostgresBackendConfig, SslMode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What connecting to a backend needs: the driver's mode and, unless TLS is off, a connector.
pub(crate) struct Tls {
    pub(crate) mode: tokio_postgres::config::SslMode,
    pub(crate) connector: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("mode", &self.mode).field("tls", &self.connector.is_some()).finish()
    }
}

/// The TLS set-up of a backend, or why it cannot be made (an unreadable CA file, say).
pub(crate) fn for_backend(pg: &PostgresBackendConfig) -> Result<Tls, String> {
    use tokio_postgres::config::SslMode as Driver;
    let (mode, check) = match pg.ssl_mode {
        SslMode::Disable => return Ok(Tls { mode: Driver::Disable, connector: None }),
        SslMode::Prefer => (Driver::Prefer, Check::Nothing),
        SslMode::Require if pg.ca_cert_path.is_some() => (Driver::Require, Check::Chain),
        SslMode::Require => (Driver::Require, Check::Nothing),
        SslMode::VerifyCa => (Driver::Require, Check::Chain),
        SslMode::VerifyFull => (Driver::Require, Check::ChainAndName),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(Unchecked(Arc::clone(&provider))),
        Check::Chain | Check::ChainAndName => {
            let roots = Arc::new(roots(pg.ca_cert_path.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| format!("cannot set up certificate checks: {e}"))?;
            if check == Check::Chain { Arc::new(ChainOnly(webpki)) } else { webpki }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Tls { mode, connector: Some(MakeRustlsConnect::new(config)) })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

fn roots(ca_cert_path: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_cert_path {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ca_cert_path {path}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("ca_cert_path {path}: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("ca_cert_path {path} holds no usable certificate"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no ca_cert_path given and the system has no CA certificates".to_owned());
            }
        }
    }
    Ok(roots)
}

/// `prefer` and `require`: encrypted, the certificate not checked (libpq's meaning of these modes).
/// Handshake signatures are still verified.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
