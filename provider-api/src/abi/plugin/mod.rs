//! The plugin side of the ABI: a [`Provider`] exposed as a [`PluginTable`].
//!
//! A plugin crate implements [`PluginFactory`] and invokes
//! [`export_provider!`](crate::export_provider). Everything else here is
//! machinery the macro wires up: one tokio runtime per plugin library, one
//! task per call that has to wait (a call that can answer at once answers
//! inside `start`), an emitter that guarantees exactly one terminal per
//! accepted call, `catch_unwind` around every exported body and around every
//! provider future, and `tracing` forwarding to the host.

mod dispatch;
mod log;

use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::task::{Context, Waker};

use futures::FutureExt;
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use super::{
    Buf, EMIT_DONE, EMIT_ERROR, EMIT_ITEM, HostCallbacks, STATUS_BAD_ARGUMENT, STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};
use crate::{Manifest, Provider, ProviderError};

/// How a plugin crate describes and builds its provider.
pub trait PluginFactory {
    /// The manifest; must not fail.
    fn manifest() -> Manifest;

    /// Validate the connection settings (a JSON object) and build a provider.
    /// Must not block: connect lazily on the first call. Errors say which
    /// setting is wrong (`InvalidInput`). Runs inside the plugin's runtime,
    /// so it may spawn tasks.
    fn create(config: serde_json::Value) -> Result<Arc<dyn Provider>, ProviderError>;
}

/// The plugin library's own runtime, shared by all its instances. Worker
/// threads: `POLYSYNC_PLUGIN_THREADS`, default 2.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let threads = std::env::var("POLYSYNC_PLUGIN_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("polysync-plugin")
            .enable_all()
            .build()
            .expect("the plugin could not start its tokio runtime (out of threads or memory?)")
    })
}

/// The raw `ctx` pointer of the host. The host promises it may be used from
/// any thread until `destroy` returns.
#[derive(Debug, Clone, Copy)]
struct HostPtr(*mut c_void);
// SAFETY: the ABI requires `ctx` and the callbacks to be usable from any
// thread (see `EmitFn`); the plugin never dereferences it itself.
unsafe impl Send for HostPtr {}
// SAFETY: as above.
unsafe impl Sync for HostPtr {}

struct Instance {
    provider: Arc<dyn Provider>,
    emit: super::EmitFn,
    ctx: HostPtr,
    calls: Mutex<HashMap<u64, Arc<Call>>>,
}

/// One accepted call. `done` is held while emitting, so no item can follow
/// the terminal and the terminal is sent exactly once.
#[derive(Default)]
struct Call {
    done: Mutex<bool>,
    abort: OnceLock<AbortHandle>,
}

/// Sends one call's items and its terminal to the host.
pub(crate) struct Emitter {
    instance: Arc<Instance>,
    call: Arc<Call>,
    id: u64,
}

impl Emitter {
    /// Send an item; false once the call has ended (aborted), so producers stop.
    pub(crate) fn item(&self, body: &[u8]) -> bool {
        let done = self.call.done.lock().unwrap_or_else(|p| p.into_inner());
        if *done {
            return false;
        }
        self.instance.send(self.id, EMIT_ITEM, body);
        true
    }

    /// Send the terminal unless one was sent already.
    fn finish(&self, result: Result<Vec<u8>, ProviderError>) {
        finish_call(&self.instance, &self.call, self.id, result);
    }
}

fn finish_call(instance: &Instance, call: &Call, id: u64, result: Result<Vec<u8>, ProviderError>) {
    let mut done = call.done.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return;
    }
    *done = true;
    match result {
        Ok(body) => instance.send(id, EMIT_DONE, &body),
        Err(err) => instance.send(id, EMIT_ERROR, &error_json(&err)),
    }
}

impl Instance {
    fn send(&self, id: u64, code: u32, body: &[u8]) {
        // SAFETY: `emit` and `ctx` come from the host's `HostCallbacks`, valid
        // until `destroy` returns; `destroy` marks every call done (under the
        // same lock this runs under) before it returns, so no send happens
        // after it. `body` outlives the call.
        unsafe { (self.emit)(self.ctx.0, id, code, body.as_ptr(), body.len()) }
    }
}

fn error_json(err: &ProviderError) -> Vec<u8> {
    serde_json::to_vec(err).unwrap_or_else(|_| br#"{"kind":"Internal","message":"unencodable error"}"#.to_vec())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    format!("the provider panicked: {text}. This is a bug in the plugin; please report it with the plugin's log")
}

fn into_buf(mut bytes: Vec<u8>) -> Buf {
    let buf = Buf { ptr: bytes.as_mut_ptr(), len: bytes.len(), cap: bytes.capacity() };
    std::mem::forget(bytes);
    buf
}

/// `manifest` of the table.
pub fn manifest<F: PluginFactory>() -> Buf {
    let json = catch_unwind(|| serde_json::to_vec(&F::manifest()).unwrap_or_default()).unwrap_or_default();
    into_buf(json)
}

/// `create` of the table.
///
/// # Safety
/// The pointers must be valid as the C header describes.
pub unsafe fn create<F: PluginFactory>(
    config: *const u8,
    config_len: usize,
    host: *const HostCallbacks,
    instance_out: *mut *mut c_void,
    error_out: *mut Buf,
) -> u32 {
    if host.is_null() || instance_out.is_null() || (config.is_null() && config_len != 0) {
        return STATUS_BAD_ARGUMENT;
    }
    // SAFETY: checked non-null above; the host owns it for this call.
    let host = unsafe { *host };
    if (host.size as usize) < std::mem::size_of::<HostCallbacks>() {
        return STATUS_BAD_ARGUMENT;
    }
    let bytes = if config_len == 0 {
        &b"{}"[..]
    } else {
        // SAFETY: non-null with `config_len` readable bytes, per the contract.
        unsafe { std::slice::from_raw_parts(config, config_len) }
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        install_process_wide_state();
        let config: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            ProviderError::invalid_input(format!(
                "the connection settings are not valid JSON ({e}); pass a JSON object"
            ))
        })?;
        let _rt = runtime().enter();
        F::create(config)
    }));
    let provider = match result {
        Ok(Ok(provider)) => provider,
        Ok(Err(err)) => {
            if !error_out.is_null() {
                // SAFETY: non-null; the host gave us a slot to write.
                unsafe { error_out.write(into_buf(error_json(&err))) };
            }
            return STATUS_ERROR;
        }
        Err(_) => return STATUS_PANIC,
    };
    let instance =
        Arc::new(Instance { provider, emit: host.emit, ctx: HostPtr(host.ctx), calls: Mutex::new(HashMap::new()) });
    let raw = Arc::into_raw(instance);
    log::add_sink(raw as usize, host.log, HostPtr(host.ctx), host.max_log_level);
    // SAFETY: checked non-null above.
    unsafe { instance_out.write(raw as *mut c_void) };
    STATUS_OK
}

/// Things every plugin needs once per process: the TLS crypto provider and
/// the tracing forwarder.
fn install_process_wide_state() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another copy may have installed one already; either is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        log::install();
        // This library has its own copy of std's panic hook. A panic is
        // already reported to the caller as an `Internal` error; its detail
        // goes to the host's log, not straight onto the host's stderr.
        std::panic::set_hook(Box::new(|info| tracing::error!(target: "polysync::panic", "{info}")));
    });
}

/// Borrow the instance behind a host-held pointer.
///
/// # Safety
/// `ptr` must come from `create` and not yet be destroyed.
unsafe fn instance_ref(ptr: *mut c_void) -> Arc<Instance> {
    let ptr = ptr as *const Instance;
    // SAFETY: `ptr` came from `Arc::into_raw` in `create` and is still owned
    // by the host; bump the count so the returned Arc is ours.
    unsafe {
        Arc::increment_strong_count(ptr);
        Arc::from_raw(ptr)
    }
}

/// `destroy` of the table.
///
/// # Safety
/// `instance` must come from `create`; it is invalid afterwards.
pub unsafe extern "C" fn destroy(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    let _ = catch_unwind(|| {
        log::remove_sink(instance as usize);
        // SAFETY: the host gives back the pointer `create` made, once.
        let instance = unsafe { Arc::from_raw(instance as *const Instance) };
        let calls: Vec<_> = instance.calls.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for (id, call) in calls {
            if let Some(handle) = call.abort.get() {
                handle.abort();
            }
            finish_call(&instance, &call, id, Err(ProviderError::cancelled()));
        }
    });
}

/// `start` of the table.
///
/// # Safety
/// `instance` must be live; `request` must point to `len` readable bytes.
pub unsafe extern "C" fn start(instance: *mut c_void, call_id: u64, op: u32, request: *const u8, len: usize) -> u32 {
    if instance.is_null() || (request.is_null() && len != 0) {
        return STATUS_BAD_ARGUMENT;
    }
    let body = if len == 0 {
        Vec::new()
    } else {
        // SAFETY: non-null with `len` readable bytes, per the contract; copied
        // because the task outlives this call.
        unsafe { std::slice::from_raw_parts(request, len) }.to_vec()
    };
    let started = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: live per the contract.
        let instance = unsafe { instance_ref(instance) };
        let call = Arc::new(Call::default());
        instance.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id, call.clone());
        let emitter = Emitter { instance: instance.clone(), call: call.clone(), id: call_id };
        let provider = instance.provider.clone();
        let task = async move {
            let result = AssertUnwindSafe(dispatch::dispatch(&*provider, op, &body, &emitter)).catch_unwind().await;
            let result = result.unwrap_or_else(|panic| Err(ProviderError::internal(panic_message(&*panic))));
            emitter.finish(result);
            emitter.instance.calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&call_id);
        };
        // Poll once right here, inside the plugin runtime's context: a call
        // that can answer at once (a cached page, a validation error) emits
        // its terminal before `start` returns and never pays for waking a
        // runtime worker and then the host. Work that has to wait moves to
        // the runtime; its next poll there registers the real waker.
        let _context = runtime().enter();
        let mut task = Box::pin(task);
        let mut cx = Context::from_waker(Waker::noop());
        if task.as_mut().poll(&mut cx).is_pending() {
            let handle = runtime().spawn(task);
            let _ = call.abort.set(handle.abort_handle());
        }
    }));
    if started.is_ok() { STATUS_OK } else { STATUS_PANIC }
}

/// `abort_call` of the table.
///
/// # Safety
/// `instance` must be live.
pub unsafe extern "C" fn abort_call(instance: *mut c_void, call_id: u64) {
    if instance.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: live per the contract.
        let instance = unsafe { instance_ref(instance) };
        let call = instance.calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&call_id);
        if let Some(call) = call {
            if let Some(handle) = call.abort.get() {
                handle.abort();
            }
            finish_call(&instance, &call, call_id, Err(ProviderError::cancelled()));
        }
    }));
}

/// `free_buf` of the table.
///
/// # Safety
/// `buf` must come from this plugin and not be freed before.
pub unsafe extern "C" fn free_buf(buf: Buf) {
    if buf.ptr.is_null() {
        return;
    }
    let _ = catch_unwind(|| {
        // SAFETY: `buf` was made by `into_buf` from a Vec with exactly these parts.
        drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
    });
}

/// Export a [`PluginFactory`] as this library's provider: defines the
/// `polysync_provider_v1` entry point and its static function table.
///
/// ```ignore
/// struct Factory;
/// impl polysync_provider_api::abi::plugin::PluginFactory for Factory { /* ... */ }
/// polysync_provider_api::export_provider!(Factory);
/// ```
///
/// Or, for a provider made by a function from its settings:
///
/// ```ignore
/// // fn manifest() -> Manifest; fn build(settings: serde_json::Value) -> Result<impl Provider>
/// polysync_provider_api::export_provider!(manifest = manifest, build = build);
/// ```
#[macro_export]
macro_rules! export_provider {
    (manifest = $manifest:path, build = $build:path $(,)?) => {
        /// The plugin entry.
        #[derive(Debug)]
        pub struct Factory;

        impl $crate::abi::plugin::PluginFactory for Factory {
            fn manifest() -> $crate::Manifest {
                $manifest()
            }

            fn create(config: $crate::serde_json::Value) -> $crate::Result<::std::sync::Arc<dyn $crate::Provider>> {
                Ok(::std::sync::Arc::new($build(config)?))
            }
        }

        $crate::export_provider!(Factory);
    };
    ($factory:ty) => {
        #[doc(hidden)]
        #[allow(unsafe_code)]
        pub mod __polysync_export {
            use super::*;
            use $crate::abi::plugin as p;
            use $crate::abi::{Buf, HostCallbacks, PluginTable};

            unsafe extern "C" fn manifest() -> Buf {
                p::manifest::<$factory>()
            }

            unsafe extern "C" fn create(
                config: *const u8,
                config_len: usize,
                host: *const HostCallbacks,
                instance_out: *mut *mut ::std::ffi::c_void,
                error_out: *mut Buf,
            ) -> u32 {
                // SAFETY: the host upholds the ABI's pointer rules.
                unsafe { p::create::<$factory>(config, config_len, host, instance_out, error_out) }
            }

            static TABLE: PluginTable = PluginTable {
                abi_version: $crate::abi::ABI_VERSION,
                size: ::std::mem::size_of::<PluginTable>() as u32,
                manifest,
                create,
                destroy: p::destroy,
                start: p::start,
                abort_call: p::abort_call,
                free_buf: p::free_buf,
            };

            /// The plugin's entry point.
            #[unsafe(no_mangle)]
            pub extern "C" fn polysync_provider_v1() -> *const PluginTable {
                &TABLE
            }
        }
    };
}
