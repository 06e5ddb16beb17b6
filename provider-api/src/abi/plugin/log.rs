//! Forward the plugin's `tracing` events to the host's `log` callback.
//!
//! A plugin library has its own copy of `tracing`'s globals, so the host's
//! subscriber never sees plugin events unless they are handed over. The
//! forwarder is the plugin's global subscriber; it formats each event once,
//! only when the host wants that level.

use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU32, Ordering};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use super::HostPtr;
use crate::abi::{LOG_OFF, LogFn, level_to_u32};

static MAX_LEVEL: AtomicU32 = AtomicU32::new(LOG_OFF);

/// One live instance's log callback.
#[derive(Clone, Copy)]
struct Sink {
    instance: usize,
    log: LogFn,
    ctx: HostPtr,
    level: u32,
}

/// The sinks of live instances; events go to the newest. An instance's sink
/// is removed (under the write lock, so no callback is in flight) before
/// `destroy` returns: the host may free `ctx` right after.
static SINKS: RwLock<Vec<Sink>> = RwLock::new(Vec::new());

fn refresh_level(sinks: &[Sink]) {
    MAX_LEVEL.store(sinks.last().map_or(LOG_OFF, |s| s.level), Ordering::Relaxed);
}

/// Route events to `instance`'s host callback while it lives.
pub(super) fn add_sink(instance: usize, log: Option<LogFn>, ctx: HostPtr, level: u32) {
    let Some(log) = log else { return };
    let mut sinks = SINKS.write().unwrap_or_else(|p| p.into_inner());
    sinks.push(Sink { instance, log, ctx, level });
    refresh_level(&sinks);
}

/// Stop using `instance`'s callback; returns once no event is being sent to it.
pub(super) fn remove_sink(instance: usize) {
    let mut sinks = SINKS.write().unwrap_or_else(|p| p.into_inner());
    sinks.retain(|s| s.instance != instance);
    refresh_level(&sinks);
}

pub(super) fn install() {
    // Fails only if the plugin set its own global subscriber; keep that one.
    let _ = tracing_subscriber::registry().with(Forward).try_init();
}

struct Forward;

impl<S: Subscriber> Layer<S> for Forward {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change with every `create`; decide per event.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        level_to_u32(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        let meta = event.metadata();
        let target = meta.target();
        // Hold the read lock while calling, so `remove_sink` waits for us.
        let sinks = SINKS.read().unwrap_or_else(|p| p.into_inner());
        let Some(sink) = sinks.last() else { return };
        // SAFETY: the sink's `log` and `ctx` come from a live instance's
        // `HostCallbacks` (removed before `destroy` returns, and not while we
        // hold the lock); the strings outlive the call.
        unsafe {
            (sink.log)(
                sink.ctx.0,
                level_to_u32(meta.level()),
                target.as_ptr(),
                target.len(),
                text.0.as_ptr(),
                text.0.len(),
            )
        }
    }
}

/// `message` first, then `key=value` for every other field.
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            if !rest.is_empty() {
                self.0.push(' ');
                self.0.push_str(&rest);
            }
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value}", field.name());
        }
    }
}
