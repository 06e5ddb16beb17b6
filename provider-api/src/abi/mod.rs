//! The C ABI between a host and a provider plugin.
//!
//! A plugin is a C dynamic library exporting one symbol,
//! [`ENTRY_SYMBOL`] (`polysync_provider_v1`), a function that returns a
//! pointer to a static [`PluginTable`]. The table starts with
//! `abi_version` and `size`; fields are only ever appended, so a host reads
//! the fields it knows and checks `size` before touching newer ones.
//!
//! Every payload is a JSON byte slice in the shapes of this crate's types.
//! Calls never block: [`PluginTable::start`] returns at once and the plugin,
//! on its own tokio runtime, reports through the host's [`EmitFn`] zero or
//! more [`EMIT_ITEM`]s and then exactly one terminal code ([`EMIT_DONE`] with
//! the result, or [`EMIT_ERROR`] with a [`ProviderError`](crate::ProviderError)).
//! [`PluginTable::abort_call`] ends a call early with a `Cancelled` error.
//!
//! Memory: a buffer passed to a callback is borrowed for the duration of the
//! callback only; a [`Buf`] returned by the plugin is owned by the plugin and
//! given back with [`PluginTable::free_buf`]. Status codes are plain `u32`s,
//! never Rust enums, so an unknown value is never undefined behaviour.
//!
//! `include/polysync_provider.h` declares the same ABI in C.
#![allow(unsafe_code)]

use std::ffi::c_void;

#[cfg(feature = "host")]
pub mod host;
mod ops;
#[cfg(feature = "plugin")]
pub mod plugin;

pub use ops::Op;

/// The ABI major version. It is part of the entry symbol's name, so a host
/// never even finds the entry point of a library with another major.
pub const ABI_VERSION: u32 = 1;

/// The NUL-terminated name of the entry point for [`ABI_VERSION`].
pub const ENTRY_SYMBOL: &[u8] = b"polysync_provider_v1\0";

/// Signature of the entry point.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginTable;

/// An item of a streaming call (a log chunk, an event, a status change).
pub const EMIT_ITEM: u32 = 1;
/// Terminal: the call succeeded; the body is the result (empty for streams).
pub const EMIT_DONE: u32 = 2;
/// Terminal: the call failed; the body is a `ProviderError` as JSON.
pub const EMIT_ERROR: u32 = 3;

/// `create` / `start` succeeded.
pub const STATUS_OK: u32 = 0;
/// `create` failed; `error_out` holds a `ProviderError` as JSON.
pub const STATUS_ERROR: u32 = 1;
/// A required pointer was null or a size was impossible; nothing happened.
pub const STATUS_BAD_ARGUMENT: u32 = 2;
/// The plugin panicked inside the call; nothing will be emitted for it.
pub const STATUS_PANIC: u32 = 3;

/// Log levels of the [`LogFn`] callback and of `max_log_level`.
pub const LOG_OFF: u32 = 0;
pub const LOG_ERROR: u32 = 1;
pub const LOG_WARN: u32 = 2;
pub const LOG_INFO: u32 = 3;
pub const LOG_DEBUG: u32 = 4;
pub const LOG_TRACE: u32 = 5;

/// Receives every item and terminal of every call of one instance.
/// Called from the plugin's runtime threads (and possibly from inside
/// `start`); it must be thread-safe, must return quickly, and must not call
/// back into the plugin. `body` is valid only until it returns.
pub type EmitFn = unsafe extern "C" fn(ctx: *mut c_void, call_id: u64, code: u32, body: *const u8, len: usize);

/// Receives the plugin's `tracing` events. `target` and `message` are UTF-8,
/// valid only until it returns.
pub type LogFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    level: u32,
    target: *const u8,
    target_len: usize,
    message: *const u8,
    message_len: usize,
);

/// What the host hands to `create`. `ctx` is passed back unchanged to every
/// callback of the instance; the plugin makes no callback with it after
/// `destroy` has returned.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostCallbacks {
    /// `size_of::<HostCallbacks>()` as the host knows it.
    pub size: u32,
    /// The most verbose level the host wants (`LOG_OFF` ..= `LOG_TRACE`).
    pub max_log_level: u32,
    pub ctx: *mut c_void,
    pub emit: EmitFn,
    pub log: Option<LogFn>,
}

/// A byte buffer allocated by the plugin; give it back with `free_buf`.
#[repr(C)]
#[derive(Debug)]
pub struct Buf {
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
}

impl Buf {
    /// The empty buffer; `free_buf` accepts it.
    pub const EMPTY: Buf = Buf { ptr: std::ptr::null_mut(), len: 0, cap: 0 };
}

/// The function table. Fields are only ever appended.
#[repr(C)]
#[derive(Debug)]
pub struct PluginTable {
    /// [`ABI_VERSION`] of the plugin.
    pub abi_version: u32,
    /// `size_of::<PluginTable>()` as the plugin knows it.
    pub size: u32,
    /// The manifest as JSON. Never fails; free with `free_buf`.
    pub manifest: unsafe extern "C" fn() -> Buf,
    /// Validate `config` (a JSON object of connection settings) and make an
    /// instance. On `STATUS_ERROR`, `*error_out` holds a `ProviderError`.
    pub create: unsafe extern "C" fn(
        config: *const u8,
        config_len: usize,
        host: *const HostCallbacks,
        instance_out: *mut *mut c_void,
        error_out: *mut Buf,
    ) -> u32,
    /// End an instance: outstanding calls end `Cancelled`, then no callback
    /// with its `ctx` is made again.
    pub destroy: unsafe extern "C" fn(instance: *mut c_void),
    /// Begin call `call_id` (unique per instance, chosen by the host) of
    /// operation `op` (an [`Op`] number) with a JSON request. On
    /// `STATUS_OK` exactly one terminal code follows through `emit`; on
    /// anything else nothing does.
    pub start:
        unsafe extern "C" fn(instance: *mut c_void, call_id: u64, op: u32, request: *const u8, len: usize) -> u32,
    /// End a call early. Its terminal, if not yet sent, is `EMIT_ERROR`
    /// with kind `Cancelled`. Unknown or finished call ids are ignored.
    pub abort_call: unsafe extern "C" fn(instance: *mut c_void, call_id: u64),
    /// Give back a buffer the plugin returned.
    pub free_buf: unsafe extern "C" fn(buf: Buf),
}

/// Numeric log level of a `tracing` level.
pub fn level_to_u32(level: &tracing::Level) -> u32 {
    match *level {
        tracing::Level::ERROR => LOG_ERROR,
        tracing::Level::WARN => LOG_WARN,
        tracing::Level::INFO => LOG_INFO,
        tracing::Level::DEBUG => LOG_DEBUG,
        tracing::Level::TRACE => LOG_TRACE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C header hard-codes these; a change here must change it too.
    #[test]
    fn layout_matches_the_c_header() {
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(std::mem::size_of::<PluginTable>(), 56);
            assert_eq!(std::mem::size_of::<HostCallbacks>(), 32);
            assert_eq!(std::mem::size_of::<Buf>(), 24);
        }
    }
}
