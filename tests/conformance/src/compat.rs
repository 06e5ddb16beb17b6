//! Compatibility across minor API versions, both ways.
//!
//! [`v1_2`] is the wire format of API 1.2 frozen as it shipped: what an
//! older host (or plugin) parses. The conformance check
//! [`crate::checks::payloads_parse_as_api_1_2`] feeds a provider's real
//! payloads to it; the tests below feed 1.2 payloads to this version's
//! types.

/// API 1.2's payload types, as a 1.2 host reads them. Only the types that
/// changed in 1.3 are frozen here.
pub mod v1_2 {
    use serde::Deserialize;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum Direction {
        Input,
        Output,
        #[serde(other)]
        Unknown,
    }

    #[derive(Debug, Clone, Deserialize)]
    pub struct Parameter {
        pub name: String,
        #[serde(default)]
        pub default: Option<String>,
        #[serde(default = "input")]
        pub direction: Direction,
    }

    fn input() -> Direction {
        Direction::Input
    }

    #[derive(Debug, Clone, Deserialize)]
    pub struct CatalogEntry {
        pub external_id: String,
        #[serde(default)]
        pub parameters: Vec<Parameter>,
    }

    #[derive(Debug, Clone, Deserialize)]
    pub struct DiscoverPage {
        #[serde(default)]
        pub entries: Vec<CatalogEntry>,
        #[serde(default)]
        pub next_page_token: Option<String>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum RunState {
        Starting,
        Running,
        Success,
        Failed,
        Cancelled,
        #[serde(other)]
        Unknown,
    }

    impl RunState {
        /// The state's word, to compare with 1.3's.
        pub fn as_str(self) -> &'static str {
            match self {
                Self::Starting => "Starting",
                Self::Running => "Running",
                Self::Success => "Success",
                Self::Failed => "Failed",
                Self::Cancelled => "Cancelled",
                Self::Unknown => "Unknown",
            }
        }
    }

    #[derive(Debug, Clone, Deserialize)]
    pub struct RunStatus {
        pub run_id: String,
        pub state: RunState,
        #[serde(default)]
        pub reason: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use polysync_provider_api::{CatalogEntry, Direction, Parameter, RunState, RunStatus};
    use serde_json::json;

    use super::v1_2;

    #[test]
    fn a_1_2_status_and_entry_read_as_1_3() {
        let status: RunStatus =
            serde_json::from_value(json!({"run_id": "r", "state": "Success", "reason": "Completed", "units": []}))
                .unwrap();
        assert!(status.outputs.is_empty() && status.output_error.is_none());
        let entry: CatalogEntry = serde_json::from_value(json!({
            "external_id": "e", "kind": "Job",
            "parameters": [{"name": "A", "default": "1", "direction": "Input", "data_type": "String"}]
        }))
        .unwrap();
        assert_eq!(entry.parameters[0].direction, Direction::Input);
    }

    #[test]
    fn a_1_3_status_and_entry_read_as_1_2() {
        let mut status = RunStatus::new("r", RunState::Success);
        status.outputs.insert("ROWS".into(), "42".into());
        status.output_error = Some("x".into());
        let old: v1_2::RunStatus = serde_json::from_value(serde_json::to_value(&status).unwrap()).unwrap();
        assert_eq!((old.run_id.as_str(), old.state), ("r", v1_2::RunState::Success));
        let mut both = Parameter::input("COUNT", "1");
        both.direction = Direction::InputOutput;
        let params = vec![both, Parameter::output("ROWS")];
        let old: Vec<v1_2::Parameter> = serde_json::from_value(serde_json::to_value(&params).unwrap()).unwrap();
        assert_eq!(old[0].direction, v1_2::Direction::Unknown, "a 1.2 host does not know InputOutput");
        assert_eq!(old[0].default.as_deref(), Some("1"), "but keeps the input's default");
        assert_eq!(old[1].direction, v1_2::Direction::Output);
    }
}
