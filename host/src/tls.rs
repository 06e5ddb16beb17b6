//! The one TLS client configuration of the host's own connections (the
//! PostgreSQL catalog, completion callbacks): rustls with ring and the
//! system's roots.

use crate::error::{Error, Result};

pub(crate) fn client_config(what: &str) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    Ok(rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS for {what}: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
