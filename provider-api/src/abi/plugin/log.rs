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
static SINK: RwLock<Option<(LogFn, HostPtr)>> = RwLock::new(None);

/// Route events to this host callback (the latest `create` wins: one host per
/// process).
pub(super) fn set_sink(log: Option<LogFn>, ctx: HostPtr, max_level: u32) {
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = log.map(|f| (f, ctx));
    MAX_LEVEL.store(if log.is_some() { max_level } else { LOG_OFF }, Ordering::Relaxed);
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
        let sink = *SINK.read().unwrap_or_else(|p| p.into_inner());
        let Some((log, ctx)) = sink else { return };
        let mut text = Text(String::new());
        event.record(&mut text);
        let meta = event.metadata();
        let target = meta.target();
        // SAFETY: `log` and `ctx` come from the host's `HostCallbacks`; the
        // strings outlive the call.
        unsafe { log(ctx.0, level_to_u32(meta.level()), target.as_ptr(), target.len(), text.0.as_ptr(), text.0.len()) }
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
