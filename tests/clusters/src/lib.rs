//! The clusters polysync's Kubernetes tests run against.
//!
//! A green test against only our own sandbox proves little, so every
//! Kubernetes test runs twice: on the [sandbox](polysync_sandbox) and on a
//! [real control plane](realkube::RealKube) — etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler built from the official Go
//! modules (`tests/realkube`), with the sandbox's kubelet as the one node
//! ([`node_agent`]). Where the two differ the real one is right.
//!
//! [`Cluster`] is what a test sees of either: a kubeconfig, an admin HTTP
//! client, and what only one of them can do (the sandbox's fault injection,
//! the real one's apiserver restart and etcd compaction).

mod cluster;
pub mod node_agent;
mod pki;
pub mod postgres;
pub mod process;
pub mod realkube;
pub mod seed;
pub mod webhook;

use std::path::{Path, PathBuf};

pub use cluster::{ApiStatus, Cluster, Flavor, write_private};

/// Why a cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
    #[error("could not start {name}: {message}")]
    Start { name: String, message: String },
    #[error("{name} exited ({status}); the end of its log:\n{log_tail}")]
    Exited { name: String, status: String, log_tail: String },
    #[error("{what} was not ready after {secs} s; {hint}")]
    NotReady { what: String, secs: u64, hint: String },
    #[error(
        "the real control plane binaries are missing: {0}; build them with `tests/realkube/build.sh` (scripts/test does) or set POLYSYNC_REALKUBE_BIN to the directory it prints"
    )]
    Binaries(String),
}

impl ClusterError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Setup(_) => "setup",
            Self::Start { .. } => "start",
            Self::Exited { .. } => "exited",
            Self::NotReady { .. } => "not_ready",
            Self::Binaries(_) => "binaries",
        }
    }
}
