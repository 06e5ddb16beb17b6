//! The host side of the ABI: a plugin's function table as a [`Provider`].
//!
//! [`PluginLibrary::from_table`] checks the ABI and API versions before it
//! calls anything else in the library. [`PluginLibrary::connect`] creates an
//! instance and returns a [`PluginProvider`], which implements the same
//! trait as an in-process provider. Dropping a future or stream of a
//! `PluginProvider` aborts the call inside the plugin.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::{
    ABI_VERSION, Buf, EMIT_DONE, EMIT_ERROR, EMIT_ITEM, HostCallbacks, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_TRACE,
    LOG_WARN, Op, PluginTable, STATUS_ERROR, STATUS_OK,
};
use crate::{
    CancelOutcome, CancelRequest, ClustersPage, ClustersRequest, DiscoverPage, DiscoverRequest, EventsRequest,
    LogChunk, LogRequest, Manifest, MonitorUrl, PollRequest, Provider, ProviderError, Result, ResultStream, RunEvent,
    RunHandle, RunRequest, RunStatus, UrlRequest, WatchRequest,
};

/// Why a library was refused. Each message is one line that says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error(
        "it speaks plugin ABI {found}, this host speaks ABI {expected}; rebuild the plugin against this host's provider-api"
    )]
    AbiMismatch { found: u32, expected: u32 },
    #[error(
        "its function table is {found} bytes, smaller than the {needed} ABI {ABI_VERSION} requires; the library is corrupt or not a polysync plugin"
    )]
    TableTooSmall { found: u32, needed: usize },
    #[error("its manifest is not valid ({0}); the library is corrupt or not a polysync plugin")]
    BadManifest(String),
    #[error(
        "it was built for provider API {found}, this host supports {supported}; install a plugin build for this host"
    )]
    ApiMismatch { found: String, supported: String },
    #[error("its entry point returned no function table; the library is not a polysync plugin")]
    NullTable,
}

impl LoadError {
    /// A stable short name of the failure, for logs and JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AbiMismatch { .. } => "abi_mismatch",
            Self::TableTooSmall { .. } => "table_too_small",
            Self::BadManifest(_) => "bad_manifest",
            Self::ApiMismatch { .. } => "api_mismatch",
            Self::NullTable => "null_table",
        }
    }
}

/// A plugin library whose versions were checked.
#[derive(Debug, Clone)]
pub struct PluginLibrary {
    table: &'static PluginTable,
    manifest: Manifest,
}

impl PluginLibrary {
    /// Check a function table and read the manifest.
    ///
    /// # Safety
    /// `table` must be what a library's entry point returned (or null), and
    /// the library must never be unloaded.
    pub unsafe fn from_table(table: *const PluginTable, supported: &semver::VersionReq) -> Result<Self, LoadError> {
        if table.is_null() {
            return Err(LoadError::NullTable);
        }
        // SAFETY: every ABI version starts the table with `abi_version` and
        // `size` (two u32s), so these two reads are valid for any plugin.
        let (abi_version, size) = unsafe { ((*table).abi_version, (*table).size) };
        if abi_version != ABI_VERSION {
            return Err(LoadError::AbiMismatch { found: abi_version, expected: ABI_VERSION });
        }
        if (size as usize) < std::mem::size_of::<PluginTable>() {
            return Err(LoadError::TableTooSmall { found: size, needed: std::mem::size_of::<PluginTable>() });
        }
        // SAFETY: the table is at least as large as ours and lives as long as
        // the library, which is never unloaded.
        let table: &'static PluginTable = unsafe { &*table };
        // SAFETY: `manifest` takes no arguments; its buffer goes back to
        // `free_buf` below and is read before that.
        let manifest = unsafe {
            let buf = (table.manifest)();
            let parsed = serde_json::from_slice::<Manifest>(buf_bytes(&buf));
            (table.free_buf)(buf);
            parsed
        }
        .map_err(|e| LoadError::BadManifest(e.to_string()))?;
        let api = semver::Version::parse(&manifest.api_version)
            .map_err(|e| LoadError::BadManifest(format!("api_version {:?}: {e}", manifest.api_version)))?;
        if !supported.matches(&api) {
            return Err(LoadError::ApiMismatch {
                found: manifest.api_version.clone(),
                supported: supported.to_string(),
            });
        }
        Ok(Self { table, manifest })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Create a provider instance for one connection. `max_log_level` is the
    /// most verbose plugin log level to forward (`LOG_*`).
    pub fn connect(&self, settings: &serde_json::Value, max_log_level: u32) -> Result<PluginProvider> {
        let config = serde_json::to_vec(settings)
            .map_err(|e| ProviderError::internal(format!("could not encode connection settings: {e}")))?;
        let ctx = Box::into_raw(Box::new(HostCtx { plugin: self.manifest.name.clone(), calls: Mutex::default() }));
        let callbacks = HostCallbacks {
            size: std::mem::size_of::<HostCallbacks>() as u32,
            max_log_level,
            ctx: ctx as *mut c_void,
            emit: on_emit,
            log: Some(on_log),
        };
        let mut instance: *mut c_void = std::ptr::null_mut();
        let mut error = Buf::EMPTY;
        // SAFETY: all pointers are valid for the call; `ctx` stays alive
        // until after `destroy` (see `Connection::drop`).
        let status =
            unsafe { (self.table.create)(config.as_ptr(), config.len(), &callbacks, &mut instance, &mut error) };
        if status != STATUS_OK || instance.is_null() {
            // SAFETY: the plugin made no instance, so nothing uses `ctx`.
            drop(unsafe { Box::from_raw(ctx) });
            let err = if status == STATUS_ERROR {
                // SAFETY: on STATUS_ERROR the plugin wrote its buffer to `error`.
                let parsed = serde_json::from_slice::<ProviderError>(unsafe { buf_bytes(&error) });
                parsed.unwrap_or_else(|e| ProviderError::internal(format!("the plugin's error is not readable: {e}")))
            } else {
                ProviderError::internal(format!(
                    "plugin {} failed to create a connection (status {status}); see the plugin's log",
                    self.manifest.name
                ))
            };
            // SAFETY: `error` is either EMPTY or the plugin's own buffer.
            unsafe { (self.table.free_buf)(error) };
            return Err(err);
        }
        let conn = Connection { table: self.table, instance, ctx };
        Ok(PluginProvider { conn: Arc::new(conn), manifest: self.manifest.clone() })
    }
}

/// # Safety
/// `buf` must be a live buffer from the plugin (or empty).
unsafe fn buf_bytes(buf: &Buf) -> &[u8] {
    if buf.ptr.is_null() || buf.len == 0 {
        return &[];
    }
    // SAFETY: the plugin owns `len` initialized bytes at `ptr` until freed.
    unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }
}

/// What the plugin reports for a call.
enum Reply {
    Item(Vec<u8>),
    Done(Vec<u8>),
    Error(Vec<u8>),
}

/// The host's per-instance callback state: where each call's replies go.
struct HostCtx {
    plugin: String,
    calls: Mutex<HashMap<u64, mpsc::UnboundedSender<Reply>>>,
}

unsafe extern "C" fn on_emit(ctx: *mut c_void, call_id: u64, code: u32, body: *const u8, len: usize) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `ctx` is the `HostCtx` we passed to `create`, alive until
        // after `destroy`.
        let ctx = unsafe { &*(ctx as *const HostCtx) };
        let bytes = if body.is_null() || len == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin lends `len` bytes for this callback.
            unsafe { std::slice::from_raw_parts(body, len) }.to_vec()
        };
        let mut calls = ctx.calls.lock().unwrap_or_else(|p| p.into_inner());
        let (reply, terminal) = match code {
            EMIT_ITEM => (Reply::Item(bytes), false),
            EMIT_DONE => (Reply::Done(bytes), true),
            EMIT_ERROR => (Reply::Error(bytes), true),
            other => {
                let msg = format!("plugin {} sent unknown code {other}; upgrade the host", ctx.plugin);
                (Reply::Error(serde_json::to_vec(&ProviderError::internal(msg)).unwrap_or_default()), true)
            }
        };
        let sender = if terminal { calls.remove(&call_id) } else { calls.get(&call_id).cloned() };
        drop(calls);
        if let Some(sender) = sender {
            let _ = sender.send(reply);
        }
    });
}

unsafe extern "C" fn on_log(
    ctx: *mut c_void,
    level: u32,
    target: *const u8,
    target_len: usize,
    message: *const u8,
    message_len: usize,
) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: as in `on_emit`; the strings are lent for this callback.
        let (ctx, target, message) = unsafe {
            (
                &*(ctx as *const HostCtx),
                std::slice::from_raw_parts(target, target_len),
                std::slice::from_raw_parts(message, message_len),
            )
        };
        let target = String::from_utf8_lossy(target);
        let message = String::from_utf8_lossy(message);
        let plugin = ctx.plugin.as_str();
        match level {
            LOG_ERROR => tracing::error!(plugin, target = %target, "{message}"),
            LOG_WARN => tracing::warn!(plugin, target = %target, "{message}"),
            LOG_INFO => tracing::info!(plugin, target = %target, "{message}"),
            LOG_DEBUG => tracing::debug!(plugin, target = %target, "{message}"),
            LOG_TRACE => tracing::trace!(plugin, target = %target, "{message}"),
            _ => {}
        }
    });
}

/// One live plugin instance. Destroyed when the last call and provider
/// handle are gone.
struct Connection {
    table: &'static PluginTable,
    instance: *mut c_void,
    ctx: *mut HostCtx,
}

// SAFETY: the ABI makes every table function callable from any thread for a
// live instance; `ctx` is only read through `&HostCtx`, which is Sync.
unsafe impl Send for Connection {}
// SAFETY: as above.
unsafe impl Sync for Connection {}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: `instance` came from `create` and is destroyed once; after
        // `destroy` returns the plugin makes no callback with `ctx`, so it is
        // freed last.
        unsafe {
            (self.table.destroy)(self.instance);
            drop(Box::from_raw(self.ctx));
        }
    }
}

fn next_call_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A call in flight. Dropping it before its terminal aborts it in the plugin.
struct Pending {
    conn: Arc<Connection>,
    id: u64,
    rx: mpsc::UnboundedReceiver<Reply>,
    finished: bool,
}

impl Pending {
    fn start(conn: &Arc<Connection>, op: Op, request: &[u8]) -> Result<Self> {
        let id = next_call_id();
        let (tx, rx) = mpsc::unbounded_channel();
        // SAFETY: `ctx` is alive as long as `conn`.
        let ctx = unsafe { &*conn.ctx };
        ctx.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        // SAFETY: the instance is live while `conn` is; the request outlives
        // the call (the plugin copies it).
        let status = unsafe { (conn.table.start)(conn.instance, id, op as u32, request.as_ptr(), request.len()) };
        if status != STATUS_OK {
            ctx.calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return Err(ProviderError::internal(format!(
                "plugin {} refused to start {} (status {status}); see the plugin's log",
                ctx.plugin,
                op.name()
            )));
        }
        Ok(Self { conn: conn.clone(), id, rx, finished: false })
    }

    async fn next(&mut self) -> Reply {
        match self.rx.recv().await {
            Some(reply) => {
                if !matches!(reply, Reply::Item(_)) {
                    self.finished = true;
                }
                reply
            }
            None => {
                self.finished = true;
                Reply::Error(
                    serde_json::to_vec(&ProviderError::internal("the plugin ended a call without an answer"))
                        .unwrap_or_default(),
                )
            }
        }
    }

    fn plugin(&self) -> &str {
        // SAFETY: `ctx` is alive as long as `conn`.
        unsafe { &(*self.conn.ctx).plugin }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // SAFETY: `ctx` and the instance are alive as long as `conn`.
        unsafe {
            (*self.conn.ctx).calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
            (self.conn.table.abort_call)(self.conn.instance, self.id);
        }
    }
}

fn decode<T: DeserializeOwned>(plugin: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        ProviderError::internal(format!(
            "plugin {plugin} sent an answer this host cannot read ({e}); the plugin and host versions may not match"
        ))
    })
}

fn decode_error(plugin: &str, bytes: &[u8]) -> ProviderError {
    decode::<ProviderError>(plugin, bytes).unwrap_or_else(|e| e)
}

/// A plugin instance behind the [`Provider`] trait.
#[derive(Clone)]
pub struct PluginProvider {
    conn: Arc<Connection>,
    manifest: Manifest,
}

impl std::fmt::Debug for PluginProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginProvider").field("plugin", &self.manifest.name).finish_non_exhaustive()
    }
}

impl PluginProvider {
    async fn unary<Req: Serialize, Resp: DeserializeOwned>(&self, op: Op, request: &Req) -> Result<Resp> {
        let body = serde_json::to_vec(request)
            .map_err(|e| ProviderError::internal(format!("could not encode the {} request: {e}", op.name())))?;
        let mut call = Pending::start(&self.conn, op, &body)?;
        loop {
            match call.next().await {
                Reply::Item(_) => continue,
                Reply::Done(bytes) => return decode(call.plugin(), &bytes),
                Reply::Error(bytes) => return Err(decode_error(call.plugin(), &bytes)),
            }
        }
    }

    /// Start a streaming call. Like an in-process provider, a failure to set
    /// the stream up is returned here, not as the stream's first item: the
    /// first reply is awaited before the stream is handed out.
    async fn stream<Req: Serialize, T: DeserializeOwned + Send + 'static>(
        &self,
        op: Op,
        request: &Req,
    ) -> Result<ResultStream<T>> {
        let body = serde_json::to_vec(request)
            .map_err(|e| ProviderError::internal(format!("could not encode the {} request: {e}", op.name())))?;
        let mut call = Pending::start(&self.conn, op, &body)?;
        let first = match call.next().await {
            Reply::Error(bytes) => return Err(decode_error(call.plugin(), &bytes)),
            Reply::Done(_) => return Ok(futures::stream::empty().boxed()),
            Reply::Item(bytes) => decode::<T>(call.plugin(), &bytes),
        };
        let rest = futures::stream::unfold(Some(call), |state| async move {
            let mut call = state?;
            match call.next().await {
                Reply::Item(bytes) => {
                    let item = decode::<T>(call.plugin(), &bytes);
                    let keep = item.is_ok().then_some(call);
                    Some((item, keep))
                }
                Reply::Done(_) => None,
                Reply::Error(bytes) => Some((Err(decode_error(call.plugin(), &bytes)), None)),
            }
        });
        let first_failed = first.is_err();
        let head = futures::stream::once(async move { first });
        if first_failed {
            // `rest` is dropped unpolled, which aborts the call.
            return Ok(head.boxed());
        }
        Ok(head.chain(rest).boxed())
    }
}

#[async_trait]
impl Provider for PluginProvider {
    fn manifest(&self) -> Manifest {
        self.manifest.clone()
    }
    async fn discover(&self, request: DiscoverRequest) -> Result<DiscoverPage> {
        self.unary(Op::Discover, &request).await
    }
    async fn run(&self, request: RunRequest) -> Result<RunHandle> {
        self.unary(Op::Run, &request).await
    }
    async fn poll(&self, request: PollRequest) -> Result<RunStatus> {
        self.unary(Op::Poll, &request).await
    }
    async fn watch(&self, request: WatchRequest) -> Result<ResultStream<RunStatus>> {
        self.stream(Op::Watch, &request).await
    }
    async fn cancel(&self, request: CancelRequest) -> Result<CancelOutcome> {
        self.unary(Op::Cancel, &request).await
    }
    async fn monitor_url(&self, request: UrlRequest) -> Result<MonitorUrl> {
        self.unary(Op::MonitorUrl, &request).await
    }
    async fn logs(&self, request: LogRequest) -> Result<ResultStream<LogChunk>> {
        self.stream(Op::Logs, &request).await
    }
    async fn events(&self, request: EventsRequest) -> Result<ResultStream<RunEvent>> {
        self.stream(Op::Events, &request).await
    }
    async fn list_clusters(&self, request: ClustersRequest) -> Result<ClustersPage> {
        self.unary(Op::ListClusters, &request).await
    }
}
