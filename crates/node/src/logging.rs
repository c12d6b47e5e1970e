//! Log set-up: `FLOTILLA_LOG` filters, and openraft's complaints about an
//! unreachable peer are thinned out.
//!
//! openraft logs an ERROR or WARN for every heartbeat, replication attempt
//! and vote request that cannot reach a peer (several lines a second while a
//! node is down). One line per call site every [`QUIET`] says the same.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How long repeats of an "unreachable peer" line from one call site are dropped.
pub const QUIET: Duration = Duration::from_secs(30);

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG")
        // openraft's own info lines are internal state dumps; ours say what happened.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_target(false);
    tracing_subscriber::registry().with(QuietUnreachable::default()).with(fmt.with_filter(filter)).init();
}

#[derive(Default)]
struct QuietUnreachable {
    last: Mutex<HashMap<Identifier, Instant>>,
}

impl QuietUnreachable {
    fn admit(&self, event: &Event<'_>, now: Instant) -> bool {
        let meta = event.metadata();
        if !meta.target().starts_with("openraft") || *meta.level() > Level::WARN {
            return true;
        }
        let mut finder = MentionsUnreachable(false);
        event.record(&mut finder);
        if !finder.0 {
            return true;
        }
        let mut last = self.last.lock();
        match last.get(&meta.callsite()) {
            Some(&at) if now.duration_since(at) < QUIET => false,
            _ => {
                last.insert(meta.callsite(), now);
                true
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for QuietUnreachable {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        self.admit(event, Instant::now())
    }
}

struct MentionsUnreachable(bool);

impl Visit for MentionsUnreachable {
    fn record_debug(&mut self, _: &Field, value: &dyn Debug) {
        if !self.0 {
            self.0 = format!("{value:?}").contains("Unreachable");
        }
    }
}
