//! TLS to the catalog as libpq does it: `sslmode` (disable, allow, prefer,
//! require, verify-ca, verify-full) with libpq's meaning, `sslrootcert`,
//! `sslcert` and `sslkey`, read from the catalog URL.
//!
//! tokio-postgres knows disable/prefer/require only, and its rustls
//! connector verifies every certificate against the system's roots and the
//! host name: Debian's default server (a self-signed "snakeoil"
//! certificate) then fails with "error performing TLS handshake" under the
//! default `prefer`, and a managed database signed by a CA outside the
//! system roots (RDS, Azure, Cloud SQL) cannot be reached at all. As in
//! libpq, `prefer` and `require` encrypt without checking who answers
//! (unless `sslrootcert` is given: then they check the chain, as
//! verify-ca), verify-ca checks the chain, verify-full the chain and the
//! host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_postgres::config::SslMode as WireMode;

use crate::error::{Error, Result};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    /// Without TLS first; with it if the server insists.
    Allow,
    /// With TLS if the server offers it (libpq's default).
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres is told (allow tries `Disable` first).
    pub fn wire(self) -> WireMode {
        match self {
            Self::Disable | Self::Allow => WireMode::Disable,
            Self::Prefer => WireMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => WireMode::Require,
        }
    }
}

/// The TLS settings of a catalog URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of CA certificates, or `system` for the
    /// system's roots.
    pub root_cert: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The URL without libpq's TLS parameters (tokio-postgres refuses the ones
/// it does not know), and those parameters.
pub fn split(url: &str) -> Result<(String, TlsSettings)> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_owned(), TlsSettings::default())) };
    let mut settings = TlsSettings::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned();
        match key {
            "sslmode" => settings.mode = SslMode::parse(&value).ok_or_else(|| {
                Error::Config(format!(
                    "`catalog`: sslmode={value:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            })?,
            "sslrootcert" => settings.root_cert = Some(value),
            "sslcert" => settings.cert = Some(PathBuf::from(value)),
            "sslkey" => settings.key = Some(PathBuf::from(value)),
            _ => kept.push(pair),
        }
    }
    if settings.cert.is_some() != settings.key.is_some() {
        return Err(Error::Config(
            "`catalog`: give sslcert and sslkey together (a client certificate and its key)".into(),
        ));
    }
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, settings))
}

/// The rustls configuration `settings` call for.
pub fn client_config(settings: &TlsSettings) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match (settings.mode, settings.root_cert.as_deref()) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => match default_root_file() {
            Some(file) => Some(roots_from(&file)?),
            None => {
                return Err(Error::Config(format!(
                    "`catalog`: sslmode={} checks the server's certificate: set sslrootcert to the CA's PEM file (or sslrootcert=system for the system's roots)",
                    if settings.mode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" }
                )));
            }
        },
        (_, None) => None,
        (_, Some("system")) => Some(system_roots()),
        (_, Some(file)) => Some(roots_from(Path::new(file))?),
    };
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        // libpq: without a root certificate, prefer and require encrypt
        // without checking who answers.
        None => Arc::new(AnyServer(provider.clone())),
        Some(roots) => {
            let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| Error::Config(format!("`catalog`: sslrootcert: {e}")))?;
            if settings.mode == SslMode::VerifyFull { chain } else { Arc::new(ChainOnly(chain)) }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS for the catalog: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => {
            let certs = read_pem(cert, "sslcert", |r| rustls_pemfile_certs(r))?;
            let key = read_pem(key, "sslkey", |r| PrivateKeyDer::from_pem_reader(r).ok())?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                Error::Config(format!("`catalog`: sslcert and sslkey do not make a client certificate: {e}"))
            })
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn rustls_pemfile_certs(r: &mut dyn std::io::BufRead) -> Option<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_reader_iter(r).collect::<std::result::Result<_, _>>().ok()?;
    (!certs.is_empty()).then_some(certs)
}

fn read_pem<T>(path: &Path, what: &str, parse: impl FnOnce(&mut dyn std::io::BufRead) -> Option<T>) -> Result<T> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::Config(format!("`catalog`: {what} {}: {e}", path.display())))?;
    parse(&mut std::io::BufReader::new(file))
        .ok_or_else(|| Error::Config(format!("`catalog`: {what} {} holds no PEM {what}", path.display())))
}

/// libpq's default root file, when it exists.
fn default_root_file() -> Option<PathBuf> {
    let file = dirs::home_dir()?.join(".postgresql/root.crt");
    file.is_file().then_some(file)
}

fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

fn roots_from(file: &Path) -> Result<rustls::RootCertStore> {
    let certs = read_pem(file, "sslrootcert", |r| rustls_pemfile_certs(r))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| Error::Config(format!("`catalog`: sslrootcert {}: {e}", file.display())))?;
    }
    Ok(roots)
}

/// Any certificate: libpq's prefer and require without a root certificate.
/// The handshake's signatures are still checked (the connection is
/// encrypted to whoever holds the certificate's key).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The chain, not the name: libpq's verify-ca.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_out_of_the_url() {
        let (url, s) =
            split("postgres://u@db/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fca.pem&connect_timeout=5")
                .unwrap();
        assert_eq!(url, "postgres://u@db/x?application_name=a&connect_timeout=5");
        assert_eq!((s.mode, s.root_cert.as_deref()), (SslMode::VerifyFull, Some("/ca.pem")));
        let (url, s) = split("postgres://u@db/x?sslmode=disable").unwrap();
        assert_eq!((url.as_str(), s.mode), ("postgres://u@db/x", SslMode::Disable));
        assert_eq!(split("postgres://u@db/x").unwrap().1.mode, SslMode::Prefer);
        let bad = split("postgres://u@db/x?sslmode=strict").unwrap_err().to_string();
        assert!(bad.contains("disable, allow, prefer, require, verify-ca, verify-full"), "{bad}");
        assert!(split("postgres://u@db/x?sslcert=/c.pem").unwrap_err().to_string().contains("together"));
    }
}
