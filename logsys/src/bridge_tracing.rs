//! Bridge from [`tracing`]: a [`tracing_subscriber::Layer`] that writes every event to a
//! [`Logger`].
//!
//! The event's target becomes the subsystem. Typed fields stay unformatted arguments:
//! an event `info!(ring = 12u64, "formed")` is stored with the format `"{} ring={}"` and
//! the arguments `"formed"`, `12`.
//!
//! ```
//! use phalanx_logsys::{Logger, bridge_tracing::FlightLayer};
//! use tracing_subscriber::layer::SubscriberExt;
//! let rec = Logger::memory(1 << 16);
//! let subscriber = tracing_subscriber::registry().with(FlightLayer::new(rec.clone(), 2));
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::warn!(target: "cib", epoch = 7u64, ok = false, "diff rejected");
//! });
//! let r = &rec.records()[0];
//! assert_eq!(r.subsystem, "cib");
//! assert_eq!(r.message, "diff rejected epoch=7 ok=false");
//! ```

use crate::{Arg, Level, Logger, monotonic_ns};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// A `tracing_subscriber` layer feeding the flight recorder.
#[derive(Clone, Debug)]
pub struct FlightLayer {
    logger: Logger,
    node: u32,
}

impl FlightLayer {
    /// Events go to `logger` with node id `node` and `CLOCK_MONOTONIC` time.
    pub fn new(logger: Logger, node: u32) -> Self {
        Self { logger, node }
    }
}

enum Owned {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Str(String),
}

#[derive(Default)]
struct Fields {
    format: String,
    args: Vec<Owned>,
}

impl Fields {
    fn push(&mut self, field: &Field, v: Owned) {
        if !self.format.is_empty() {
            self.format.push(' ');
        }
        if field.name() != "message" {
            self.format.push_str(field.name());
            self.format.push('=');
        }
        self.format.push_str("{}");
        self.args.push(v);
    }
}

impl Visit for Fields {
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.push(f, Owned::U64(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.push(f, Owned::I64(v));
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.push(f, Owned::F64(v));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.push(f, Owned::Bool(v));
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        self.push(f, Owned::Str(v.to_string()));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.push(f, Owned::Str(format!("{v:?}")));
    }
}

fn level(l: &tracing::Level) -> Level {
    match *l {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::INFO => Level::Info,
        tracing::Level::DEBUG => Level::Debug,
        _ => Level::Trace,
    }
}

impl<S: Subscriber> Layer<S> for FlightLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !self.logger.is_enabled() {
            return;
        }
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let args: Vec<Arg<'_>> = fields
            .args
            .iter()
            .map(|a| match a {
                Owned::U64(v) => Arg::U64(*v),
                Owned::I64(v) => Arg::I64(*v),
                Owned::F64(v) => Arg::F64(*v),
                Owned::Bool(v) => Arg::Bool(*v),
                Owned::Str(s) => Arg::Str(s),
            })
            .collect();
        self.logger.write_parts(
            level(meta.level()),
            meta.target(),
            meta.file().unwrap_or(""),
            meta.line().unwrap_or(0),
            &fields.format,
            self.node,
            monotonic_ns(),
            &args,
        );
    }
}
