//! Operation numbers of `start`, shared by both sides of the ABI.

/// The operations of the [`Provider`](crate::Provider) trait as the `op`
/// argument of `start`. Numbers are stable and only ever added; a plugin
/// answers a number it does not know with an `Unsupported` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Op {
    Discover = 1,
    Run = 2,
    Poll = 3,
    Watch = 4,
    Cancel = 5,
    MonitorUrl = 6,
    Logs = 7,
    Events = 8,
    /// API 1.2.
    ListClusters = 9,
}

impl Op {
    pub const ALL: [Op; 9] = [
        Op::Discover,
        Op::Run,
        Op::Poll,
        Op::Watch,
        Op::Cancel,
        Op::MonitorUrl,
        Op::Logs,
        Op::Events,
        Op::ListClusters,
    ];

    pub fn from_u32(op: u32) -> Option<Op> {
        Self::ALL.into_iter().find(|o| *o as u32 == op)
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Discover => "discover",
            Op::Run => "run",
            Op::Poll => "poll",
            Op::Watch => "watch",
            Op::Cancel => "cancel",
            Op::MonitorUrl => "monitor_url",
            Op::Logs => "logs",
            Op::Events => "events",
            Op::ListClusters => "list_clusters",
        }
    }
}
