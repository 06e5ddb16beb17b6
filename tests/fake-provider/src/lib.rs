//! `fake`: an in-memory provider with the full contract and no network.
//!
//! It exists so the conformance suite and the ABI benchmark have a plugin
//! whose behaviour is known exactly. Entries are `job-0000` …; a run moves
//! Starting → Running → Success/Failed on the tokio clock (so tests can
//! pause time). Run parameters steer it:
//!
//! * `EXIT_CODE` — non-zero ends the run Failed;
//! * `DURATION_MS` — how long the run stays Running (default 3 ticks).
//!
//! The external id `__panic__` makes `run` panic, for the panic check.

mod config;
mod runs;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use polysync_provider_api::abi::plugin::PluginFactory;
use polysync_provider_api::{
    CancelOutcome, CancelRequest, Capability, CatalogEntry, DiscoverPage, DiscoverRequest, EntryKind, EventsRequest,
    FallbackAttributes, LogChunk, LogRequest, Manifest, MonitorUrl, Parameter, PollRequest, Provider, ProviderError,
    Result, ResultStream, RunEvent, RunHandle, RunRequest, RunStatus, SettingDoc, UrlRequest, WatchRequest,
    async_trait,
};

pub use config::FakeConfig;
use runs::Runs;

/// The fake provider.
#[derive(Debug)]
pub struct FakeProvider {
    config: FakeConfig,
    runs: Arc<Runs>,
}

impl FakeProvider {
    /// Instances with the same namespace share their runs, as connections
    /// to one real platform do.
    pub fn new(config: FakeConfig) -> Self {
        static PLATFORMS: Mutex<BTreeMap<String, Arc<Runs>>> = Mutex::new(BTreeMap::new());
        let mut platforms = PLATFORMS.lock().unwrap_or_else(|p| p.into_inner());
        let runs =
            platforms.entry(config.namespace.clone()).or_insert_with(|| Arc::new(Runs::new(config.tick))).clone();
        Self { config, runs }
    }

    fn entry(&self, index: usize) -> CatalogEntry {
        let name = format!("job-{index:04}");
        CatalogEntry {
            external_id: name.clone(),
            kind: EntryKind::Job,
            display_name: name,
            namespace: Some(self.config.namespace.clone()),
            cluster: None,
            parameters: vec![Parameter::input("GREETING", "hello"), Parameter::input("INDEX", index.to_string())],
            fallback: FallbackAttributes {
                image: Some("busybox".into()),
                command: vec!["sh".into(), "-c".into()],
                args: vec!["echo $GREETING".into()],
                env: Default::default(),
                template: None,
            },
            fingerprint: format!("fake-{index}-v1"),
            labels: Default::default(),
        }
    }

    fn entry_index(&self, external_id: &str) -> Option<usize> {
        let index: usize = external_id.strip_prefix("job-")?.parse().ok()?;
        (index < self.config.entries && external_id == format!("job-{index:04}")).then_some(index)
    }
}

fn manifest() -> Manifest {
    let mut m = Manifest::new("fake", env!("CARGO_PKG_VERSION"));
    m.description = "In-memory test provider (not shipped)".into();
    m.settings = vec![
        SettingDoc::optional("entries", "number of entries (default 250)"),
        SettingDoc::optional("namespace", "namespace label"),
        SettingDoc::optional("tick_ms", "state step in ms (default 20)"),
    ];
    m.capabilities = vec![Capability::PushWatch, Capability::FollowLogs, Capability::FallbackRun];
    m
}

#[async_trait]
impl Provider for FakeProvider {
    fn manifest(&self) -> Manifest {
        manifest()
    }

    async fn discover(&self, request: DiscoverRequest) -> Result<DiscoverPage> {
        let start = match request.page_token.as_deref() {
            None => 0,
            Some(token) => token.parse::<usize>().map_err(|_| {
                ProviderError::invalid_input(format!(
                    "page token {token:?} was not issued by this provider; start over"
                ))
            })?,
        };
        let size = request.page_size.unwrap_or(100).clamp(1, 1000) as usize;
        let end = (start + size).min(self.config.entries);
        let entries = (start..end).map(|i| self.entry(i)).collect();
        let next_page_token = (end < self.config.entries).then(|| end.to_string());
        Ok(DiscoverPage { entries, next_page_token, restarted: false })
    }

    async fn run(&self, request: RunRequest) -> Result<RunHandle> {
        if request.external_id == "__panic__" {
            panic!("asked to panic by the conformance suite");
        }
        runs::validate(&request)?;
        let live = self.entry_index(&request.external_id).is_some();
        if !live && request.fallback.is_none() {
            return Err(ProviderError::not_found(format!(
                "entry {} does not exist and no fallback attributes were given; run discover again",
                request.external_id
            )));
        }
        let mut handle = self.runs.start(request, live);
        handle.monitor_url = Some(format!("https://fake.invalid/runs/{}", handle.run_id));
        tracing::debug!(run_id = %handle.run_id, adopted = handle.adopted, "run started");
        Ok(handle)
    }

    async fn poll(&self, request: PollRequest) -> Result<RunStatus> {
        self.runs.status(&request.run_id)
    }

    async fn watch(&self, request: WatchRequest) -> Result<ResultStream<RunStatus>> {
        self.runs.watch(request.run_ids)
    }

    async fn cancel(&self, request: CancelRequest) -> Result<CancelOutcome> {
        Ok(self.runs.cancel(&request.run_id))
    }

    async fn monitor_url(&self, request: UrlRequest) -> Result<MonitorUrl> {
        let url = match request {
            UrlRequest::Entry { external_id } => format!("https://fake.invalid/entries/{external_id}"),
            UrlRequest::Run { run_id } => format!("https://fake.invalid/runs/{run_id}"),
        };
        Ok(MonitorUrl { url: Some(url) })
    }

    async fn logs(&self, request: LogRequest) -> Result<ResultStream<LogChunk>> {
        self.runs.logs(request)
    }

    async fn events(&self, request: EventsRequest) -> Result<ResultStream<RunEvent>> {
        self.runs.events(request)
    }
}

/// The plugin entry for `export_provider!`.
#[derive(Debug)]
pub struct Factory;

impl PluginFactory for Factory {
    fn manifest() -> Manifest {
        manifest()
    }

    fn create(config: serde_json::Value) -> Result<Arc<dyn Provider>> {
        Ok(Arc::new(FakeProvider::new(FakeConfig::from_json(config)?)))
    }
}

polysync_provider_api::export_provider!(Factory);
