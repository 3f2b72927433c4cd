//! TLS for tokio-postgres over rustls (ring), with libpq's `sslmode` meanings:
//!
//! - `prefer` / `require`: encrypted, certificate not checked (unless a CA file is given, when
//!   the chain is checked as libpq does); SCRAM channel binding (`tls-server-end-point`) ties
//!   the password exchange to this TLS session, so a man in the middle that relays it fails, but
//!   one that asks for a cleartext password gets it: only `verify-*` stops that;
//! - `verify-ca`: the chain must lead to the CA file (`sslrootcert`, required);
//! - `verify-full`: that, and the certificate must name the host connected to.
//!
//! One small `MakeTlsConnect` of our own over tokio-rustls: it builds on the rustls 0.23 and ring
//! provider the workspace already uses, with no second TLS stack.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::connection::{RootCert, TlsSettings};

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA certificates from sslrootcert {path}: {source}")]
    ReadRootCert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("sslrootcert {path} holds no PEM certificate")]
    NoRootCert { path: PathBuf },
    #[error("a CA certificate in sslrootcert {path} is not usable: {source}")]
    BadRootCert {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("the system's CA certificates cannot be loaded: {0}")]
    SystemRoots(rustls::Error),
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("cannot configure TLS: {0}")]
    Config(rustls::Error),
}

/// Makes the TLS connections of one connection string; cheap to clone (one shared rustls
/// configuration), so a pool holds one.
#[derive(Clone)]
pub struct MakeTls {
    config: Arc<ClientConfig>,
    settings: Arc<TlsSettings>,
}

impl fmt::Debug for MakeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeTls")
            .field("sslmode", &self.settings.mode.as_str())
            .field("sslrootcert", &self.settings.root_cert)
            .finish()
    }
}

impl MakeTls {
    /// Builds the rustls configuration for `settings`, reading the CA file it names.
    pub fn new(settings: &TlsSettings) -> Result<MakeTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = if settings.verifies_chain() {
            let chain: Arc<dyn ServerCertVerifier> = match &settings.root_cert {
                Some(RootCert::File(path)) => WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots_from(path)?),
                    provider.clone(),
                )
                .build()?,
                Some(RootCert::System) | None => Arc::new(
                    rustls_platform_verifier::Verifier::new(provider.clone())
                        .map_err(TlsError::SystemRoots)?,
                ),
            };
            if settings.verifies_host() {
                chain
            } else {
                Arc::new(ChainOnly(chain))
            }
        } else {
            Arc::new(Unchecked(provider.clone()))
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeTls {
            config: Arc::new(config),
            settings: Arc::new(settings.clone()),
        })
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }
}

/// Every certificate in the PEM file at `path`.
fn roots_from(path: &Path) -> Result<RootCertStore, TlsError> {
    let read_err = |source| TlsError::ReadRootCert {
        path: path.to_owned(),
        source,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(read_err)? {
        roots
            .add(cert.map_err(read_err)?)
            .map_err(|source| TlsError::BadRootCert {
                path: path.to_owned(),
                source,
            })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoRootCert {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        // No name for a Unix socket, where the server never offers TLS: only a handshake that
        // actually happens needs one.
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            server_name: ServerName::try_from(domain).ok().map(|n| n.to_owned()),
        })
    }
}

/// One connection's handshake.
pub struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = self.server_name.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the host is not a valid DNS name or IP address for TLS",
                )
            })?;
            let stream = self.connector.connect(name, stream).await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// An established TLS session.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S> TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(tls_server_end_point)
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// `verify-ca`: the chain is checked, the name is not. The inner verifier checks the chain
/// before the name (rustls' WebPKI verifier, which the platform verifier uses on Linux too), so
/// a name mismatch is only ever reported for a certificate whose chain is good.
#[derive(Debug)]
struct ChainOnly(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
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

/// `prefer` / `require` without a CA: any certificate is accepted (libpq's meaning), but the
/// handshake's signatures are still checked, so the session's key belongs to that certificate
/// (which channel binding relies on).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// RFC 5929 `tls-server-end-point`: the server certificate hashed with its signature's hash,
/// SHA-256 standing in for MD5 and SHA-1. `None` when the signature names no single hash
/// (Ed25519, RSA-PSS), where channel binding is undefined; SCRAM then runs without it.
fn tls_server_end_point(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let oid = signature_algorithm(cert)?;
    // OID contents (DER, without tag and length).
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    let hash = match oid {
        o if o
            .strip_prefix(RSA)
            .is_some_and(|s| s == [0x04] || s == [0x05] || s == [0x0b]) =>
        {
            256
        }
        o if o == ECDSA_SHA1 => 256,
        o if o.strip_prefix(RSA) == Some(&[0x0c]) => 384,
        o if o.strip_prefix(RSA) == Some(&[0x0d]) => 512,
        o if o.strip_prefix(ECDSA_SHA2) == Some(&[0x02]) => 256,
        o if o.strip_prefix(ECDSA_SHA2) == Some(&[0x03]) => 384,
        o if o.strip_prefix(ECDSA_SHA2) == Some(&[0x04]) => 512,
        _ => return None,
    };
    let der = cert.as_ref();
    Some(match hash {
        256 => sha2::Sha256::digest(der).to_vec(),
        384 => sha2::Sha384::digest(der).to_vec(),
        _ => sha2::Sha512::digest(der).to_vec(),
    })
}

/// The OID of a certificate's `signatureAlgorithm`: `Certificate ::= SEQUENCE { tbsCertificate,
/// signatureAlgorithm AlgorithmIdentifier, signature }`, `AlgorithmIdentifier ::= SEQUENCE {
/// algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }`.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = der_element(cert, 0x30)?;
    let (_tbs, rest) = der_element(certificate, 0x30)?;
    let (algorithm, _) = der_element(rest, 0x30)?;
    let (oid, _) = der_element(algorithm, 0x06)?;
    Some(oid)
}

/// The contents of the DER element at the start of `input` if its tag is `tag`, and what follows.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, input) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, rest) = input.split_at(count);
        input = rest;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    (input.len() >= len).then(|| input.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::SslMode;

    /// A self-signed P-256 certificate signed with ecdsa-with-SHA256 (made with openssl).
    const ECDSA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfTCCASOgAwIBAgIUEAHIoWZ3YfutPt20M8uO3wyOb2IwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJdGVzdCBjZXJ0MB4XDTI2MTIwMjAwNDIyNFoXDTM2MTEyOTAw
NDIyNFowFDESMBAGA1UEAwwJdGVzdCBjZXJ0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEoxKiWyq+EO/wcxBy3oi4QUrXgwdpYl1/fsZiL6Wd+Hat6+BUxownHZ/H
mi4mDV4+uCB8CvzSJTLBINEhSTteUKNTMFEwHQYDVR0OBBYEFCldnKZdKm3H10sP
nThyjyOSPITCMB8GA1UdIwQYMBaAFCldnKZdKm3H10sPnThyjyOSPITCMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgMenqtRbqHOnE2v5lMtlgYWgm
T4WZJoxYyr1sG/mmw/0CIQDdP+qlTPyOCM++02T47kTzcAHKH7I0FsXpGzVTqcao
hQ==
-----END CERTIFICATE-----
";

    #[test]
    fn the_signature_algorithm_oid_is_read_from_the_certificate() {
        let cert = CertificateDer::from_pem_slice(ECDSA_CERT.as_bytes()).unwrap();
        assert_eq!(
            signature_algorithm(cert.as_ref()),
            Some(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02][..])
        );
        let binding = tls_server_end_point(&cert).unwrap();
        assert_eq!(binding, sha2::Sha256::digest(cert.as_ref()).to_vec());
    }

    #[test]
    fn a_truncated_or_foreign_der_gives_no_binding() {
        let cert = CertificateDer::from_pem_slice(ECDSA_CERT.as_bytes()).unwrap();
        let der = cert.as_ref();
        assert_eq!(signature_algorithm(&der[..der.len() / 2]), None);
        assert_eq!(signature_algorithm(&[0x31, 0x00]), None);
        assert_eq!(signature_algorithm(&[]), None);
    }

    #[test]
    fn a_missing_ca_file_is_an_error_naming_it() {
        let err = MakeTls::new(&TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCert::File("/nonexistent/ca.pem".into())),
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("covid-etl-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = MakeTls::new(&TlsSettings {
            mode: SslMode::VerifyCa,
            root_cert: Some(RootCert::File(path.clone())),
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::NoRootCert { .. }), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_mode_builds_without_a_ca_file() {
        for mode in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            let tls = MakeTls::new(&TlsSettings {
                mode,
                root_cert: None,
            })
            .unwrap();
            assert!(format!("{tls:?}").contains(mode.as_str()));
        }
    }
}
