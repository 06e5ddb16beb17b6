//! The certificates and keys of one real control plane: a CA, the
//! apiserver's serving certificate, the apiserver's client certificate for
//! kubelets, the node agent's serving certificate, and the service-account
//! signing key. Fresh for every cluster, written into its directory.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::ClusterError;

/// Paths of the PEM files, and the CA to issue client certificates with.
#[derive(Clone)]
pub struct Pki {
    issuer: std::sync::Arc<Issuer<'static, KeyPair>>,
    pub ca_cert: PathBuf,
    pub ca_pem: String,
    pub apiserver_cert: PathBuf,
    pub apiserver_key: PathBuf,
    pub kubelet_client_cert: PathBuf,
    pub kubelet_client_key: PathBuf,
    pub node_cert_pem: String,
    pub node_key_pem: String,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("ca_cert", &self.ca_cert).finish_non_exhaustive()
    }
}

impl Pki {
    /// A client certificate and key (PEM) for `user` in `groups`, as the
    /// apiserver's `--client-ca-file` authenticates them (CN and O).
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<(String, String), ClusterError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_error)?;
        params.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(pki_error)?;
        let cert = params.signed_by(&key, &*self.issuer).map_err(pki_error)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A server certificate for 127.0.0.1 signed by the CA.
    pub fn issue_server(&self, cn: &str) -> Result<(String, String), ClusterError> {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).map_err(pki_error)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(pki_error)?;
        let cert = params.signed_by(&key, &*self.issuer).map_err(pki_error)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn pki_error(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Setup(format!("generating certificates: {e}"))
}

impl Pki {
    pub fn generate(dir: &Path) -> Result<Self, ClusterError> {
        let write = |name: &str, pem: &str| -> Result<PathBuf, ClusterError> {
            let path = dir.join(name);
            std::fs::write(&path, pem).map_err(|e| ClusterError::io(&path, e))?;
            Ok(path)
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki_error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "polysync-realkube-ca");
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(pki_error)?;
        let ca = ca_params.self_signed(&ca_key).map_err(pki_error)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf =
            |cn: &str, org: Option<&str>, names: &[&str], client: bool| -> Result<(String, String), ClusterError> {
                let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                    .map_err(pki_error)?;
                params.distinguished_name.push(DnType::CommonName, cn);
                if let Some(o) = org {
                    params.distinguished_name.push(DnType::OrganizationName, o);
                }
                params.extended_key_usages = vec![if client {
                    rcgen::ExtendedKeyUsagePurpose::ClientAuth
                } else {
                    rcgen::ExtendedKeyUsagePurpose::ServerAuth
                }];
                let key = KeyPair::generate().map_err(pki_error)?;
                let cert = params.signed_by(&key, &issuer).map_err(pki_error)?;
                Ok((cert.pem(), key.serialize_pem()))
            };
        let (api_cert, api_key) = leaf(
            "kube-apiserver",
            None,
            &["127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            false,
        )?;
        let (kc_cert, kc_key) = leaf("kube-apiserver-kubelet-client", Some("system:masters"), &[], true)?;
        let (node_cert, node_key) = leaf("realkube-node", None, &["127.0.0.1", "localhost"], false)?;
        let sa = KeyPair::generate().map_err(pki_error)?;
        Ok(Self {
            issuer: std::sync::Arc::new(issuer),
            ca_cert: write("ca.crt", &ca.pem())?,
            ca_pem: ca.pem(),
            apiserver_cert: write("apiserver.crt", &api_cert)?,
            apiserver_key: write("apiserver.key", &api_key)?,
            kubelet_client_cert: write("kubelet-client.crt", &kc_cert)?,
            kubelet_client_key: write("kubelet-client.key", &kc_key)?,
            node_cert_pem: node_cert,
            node_key_pem: node_key,
            sa_key: write("sa.key", &sa.serialize_pem())?,
            sa_pub: write("sa.pub", &sa.public_key_pem())?,
        })
    }
}
