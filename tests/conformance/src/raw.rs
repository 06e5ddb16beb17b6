//! A recording host for the bare ABI: every `emit` is kept, so a check can
//! count terminals per call and see what follows an abort.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use polysync_provider_api::abi::{
    Buf, EMIT_DONE, EMIT_ERROR, EMIT_ITEM, ENTRY_SYMBOL, EntryFn, HostCallbacks, LOG_OFF, PluginTable, STATUS_OK,
};
use polysync_provider_api::{ErrorKind, ProviderError};

/// One callback as the plugin made it.
#[derive(Clone)]
pub struct Emission {
    pub code: u32,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Emission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Emission({}, {})", self.code, String::from_utf8_lossy(&self.body))
    }
}

impl Emission {
    pub fn is_terminal(&self) -> bool {
        self.code == EMIT_DONE || self.code == EMIT_ERROR
    }

    /// The error of an `EMIT_ERROR`.
    pub fn error(&self) -> Option<ProviderError> {
        (self.code == EMIT_ERROR)
            .then(|| serde_json::from_slice(&self.body).expect("EMIT_ERROR body is a ProviderError"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Recorder {
    calls: Mutex<HashMap<u64, Vec<Emission>>>,
    changed: Condvar,
    logs: std::sync::Arc<LogCounter>,
}

/// Log callbacks one instance received, before and after its `destroy`.
#[derive(Debug, Default)]
pub struct LogCounter {
    pub before_destroy: AtomicU64,
    pub after_destroy: AtomicU64,
    destroyed: std::sync::atomic::AtomicBool,
}

unsafe extern "C" fn count_log(ctx: *mut c_void, _: u32, _: *const u8, _: usize, _: *const u8, _: usize) {
    // SAFETY: `ctx` is a Recorder that `open_with_log` never frees.
    let recorder = unsafe { &*(ctx as *const Recorder) };
    let counter = if recorder.logs.destroyed.load(Ordering::SeqCst) {
        &recorder.logs.after_destroy
    } else {
        &recorder.logs.before_destroy
    };
    counter.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn record(ctx: *mut c_void, call_id: u64, code: u32, body: *const u8, len: usize) {
    // SAFETY: `ctx` is the boxed Recorder of a live `RawInstance`.
    let recorder = unsafe { &*(ctx as *const Recorder) };
    let body = if len == 0 {
        Vec::new()
    } else {
        // SAFETY: the plugin lends `len` bytes for this callback.
        unsafe { std::slice::from_raw_parts(body, len) }.to_vec()
    };
    recorder.calls.lock().unwrap().entry(call_id).or_default().push(Emission { code, body });
    recorder.changed.notify_all();
}

/// A plugin instance driven through its bare function table.
#[derive(Debug)]
pub struct RawInstance {
    table: &'static PluginTable,
    instance: *mut c_void,
    recorder: *mut Recorder,
    next_id: AtomicU64,
    /// Keep the recorder after destroy, so a late log callback is counted
    /// instead of touching freed memory.
    keep_recorder: bool,
}

// SAFETY: the ABI makes the table callable from any thread; the Recorder is Sync.
unsafe impl Send for RawInstance {}
// SAFETY: as above.
unsafe impl Sync for RawInstance {}

impl RawInstance {
    /// Load `path` (never unloaded) and create an instance with `settings`.
    pub fn open(path: &Path, settings: &serde_json::Value) -> Self {
        Self::create(path, settings, None)
    }

    /// Like [`open`](Self::open), with a log callback at TRACE that counts
    /// calls. The recorder outlives the instance (it is leaked), so the
    /// counter also sees callbacks made after `destroy`, which the ABI forbids.
    pub fn open_with_log(path: &Path, settings: &serde_json::Value) -> (Self, std::sync::Arc<LogCounter>) {
        let raw = Self::create(path, settings, Some(count_log));
        let logs = raw.recorder().logs.clone();
        (raw, logs)
    }

    fn create(path: &Path, settings: &serde_json::Value, log: Option<polysync_provider_api::abi::LogFn>) -> Self {
        // SAFETY: a test loads the plugin under test; it is leaked below.
        let library = unsafe { libloading::Library::new(path) }.expect("the plugin loads");
        // SAFETY: the entry symbol's type is fixed by the ABI.
        let entry = unsafe { *library.get::<EntryFn>(ENTRY_SYMBOL).expect("the plugin exports its entry point") };
        std::mem::forget(library);
        // SAFETY: the entry point returns a static table.
        let table = unsafe { &*entry() };
        let recorder = Box::into_raw(Box::<Recorder>::default());
        let host = HostCallbacks {
            size: std::mem::size_of::<HostCallbacks>() as u32,
            max_log_level: if log.is_some() { polysync_provider_api::abi::LOG_TRACE } else { LOG_OFF },
            ctx: recorder as *mut c_void,
            emit: record,
            log,
        };
        let config = serde_json::to_vec(settings).unwrap();
        let mut instance = std::ptr::null_mut();
        let mut error = Buf::EMPTY;
        // SAFETY: valid pointers for the call; the recorder outlives the instance.
        let status = unsafe { (table.create)(config.as_ptr(), config.len(), &host, &mut instance, &mut error) };
        assert_eq!(status, STATUS_OK, "create failed");
        Self { table, instance, recorder, next_id: AtomicU64::new(1), keep_recorder: log.is_some() }
    }

    fn recorder(&self) -> &Recorder {
        // SAFETY: freed only in Drop.
        unsafe { &*self.recorder }
    }

    /// Start a call; returns its id.
    pub fn start(&self, op: u32, request: &serde_json::Value) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(request).unwrap();
        // SAFETY: the instance is live; the body outlives the call.
        let status = unsafe { (self.table.start)(self.instance, id, op, body.as_ptr(), body.len()) };
        assert_eq!(status, STATUS_OK, "start refused op {op}");
        id
    }

    pub fn abort(&self, id: u64) {
        // SAFETY: the instance is live.
        unsafe { (self.table.abort_call)(self.instance, id) }
    }

    /// Everything emitted for `id` so far.
    pub fn emissions(&self, id: u64) -> Vec<Emission> {
        self.recorder().calls.lock().unwrap().get(&id).cloned().unwrap_or_default()
    }

    /// Wait for `id`'s terminal and return it.
    pub fn wait_terminal(&self, id: u64, timeout: Duration) -> Emission {
        self.wait_until(timeout, |e| e.iter().find(|e| e.is_terminal()).cloned(), id)
            .unwrap_or_else(|| panic!("call {id} got no terminal callback within {timeout:?}"))
    }

    /// Wait for the first item of `id` (or its terminal).
    pub fn wait_first(&self, id: u64, timeout: Duration) -> Emission {
        self.wait_until(timeout, |e| e.first().cloned(), id)
            .unwrap_or_else(|| panic!("call {id} emitted nothing within {timeout:?}"))
    }

    fn wait_until<T>(&self, timeout: Duration, f: impl Fn(&[Emission]) -> Option<T>, id: u64) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut calls = self.recorder().calls.lock().unwrap();
        loop {
            if let Some(v) = calls.get(&id).and_then(|e| f(e)) {
                return Some(v);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            calls = self.recorder().changed.wait_timeout(calls, left).unwrap().0;
        }
    }

    /// The result of a unary call, or its error.
    pub fn call(
        &self,
        op: u32,
        request: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, ProviderError> {
        let id = self.start(op, request);
        let terminal = self.wait_terminal(id, timeout);
        terminal.error().map_or_else(|| Ok(terminal.json()), Err)
    }
}

impl Drop for RawInstance {
    fn drop(&mut self) {
        // SAFETY: destroy once; after it returns no callback uses the
        // recorder, which is then freed.
        unsafe {
            (self.table.destroy)(self.instance);
            let recorder: &Recorder = &*self.recorder;
            recorder.logs.destroyed.store(true, Ordering::SeqCst);
            if !self.keep_recorder {
                drop(Box::from_raw(self.recorder));
            }
        }
    }
}

/// Assert the ABI's per-call rule: items only, then exactly one terminal, last.
pub fn assert_one_terminal_last(id: u64, emissions: &[Emission]) {
    let terminals = emissions.iter().filter(|e| e.is_terminal()).count();
    assert_eq!(terminals, 1, "call {id} got {terminals} terminal callbacks: {emissions:?}");
    assert!(emissions.last().is_some_and(Emission::is_terminal), "call {id} got a callback after its terminal");
    assert!(
        emissions.iter().all(|e| [EMIT_ITEM, EMIT_DONE, EMIT_ERROR].contains(&e.code)),
        "unknown code in {emissions:?}"
    );
}

/// The error kind of a terminal, if it is an error.
pub fn error_kind(e: &Emission) -> Option<ErrorKind> {
    e.error().map(|e| e.kind())
}
