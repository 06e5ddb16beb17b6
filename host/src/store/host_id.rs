//! Who holds a run or a sync: the identity a host writes into the
//! catalog's leases. It lives beneath the store because both engines read
//! it (a holder whose process is gone on this machine is taken over at
//! once); the workflows re-export it.

/// A host's identity as the owner of runs and syncs:
/// `HOSTNAME/PID/RANDOM`, unique per process, so a restarted process never
/// mistakes its predecessor's leases for its own. `POLYSYNC_HOST_NAME`
/// replaces the machine's name (a pod name, where hostnames repeat).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct HostId(String);

impl HostId {
    pub fn new() -> Self {
        let host = machine_name();
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Self(format!("{host}/{}/{}", std::process::id(), &tag[..8]))
    }

    /// An owner as the catalog recorded it (any host's).
    pub(crate) fn stored(owner: String) -> Self {
        Self(owner)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `owner` names a process on this machine that has ended (its
    /// lease need not be waited out). Owners elsewhere are judged by their
    /// lease alone.
    pub fn is_gone(owner: &str) -> bool {
        let mut parts = owner.split('/');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else { return false };
        host == machine_name()
            && pid.parse::<u32>().is_ok_and(|p| !std::path::Path::new("/proc").join(p.to_string()).exists())
    }
}

/// This machine's name as owners record it.
fn machine_name() -> String {
    std::env::var("POLYSYNC_HOST_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().replace('/', "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Default for HostId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
