//! Log set-up: `FLOTILLA_LOG` filters, and openraft's complaints about an
//! unreachable peer are thinned out.
//!
//! openraft logs an ERROR or WARN for every heartbeat, replication attempt
//! and vote request that cannot reach a peer (several lines a second while a
//! node is down). One line per call site and peer every [`QUIET`] says the
//! same: a second peer going down is still logged at once, even while the
//! first one's lines are being dropped.

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
    /// When a line was last let through, by call site and the peer its
    /// `target` field names (openraft's replication events carry it).
    last: Mutex<HashMap<(Identifier, Option<String>), Instant>>,
}

impl QuietUnreachable {
    fn admit(&self, event: &Event<'_>, now: Instant) -> bool {
        let meta = event.metadata();
        if !meta.target().starts_with("openraft") || *meta.level() > Level::WARN {
            return true;
        }
        let mut finder = MentionsUnreachable::default();
        event.record(&mut finder);
        if !finder.unreachable {
            return true;
        }
        let key = (meta.callsite(), finder.target);
        let mut last = self.last.lock();
        match last.get(&key) {
            Some(&at) if now.duration_since(at) < QUIET => false,
            _ => {
                last.insert(key, now);
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

/// Whether an event's fields mention `Unreachable`, and which peer its
/// `target` field names.
#[derive(Default)]
struct MentionsUnreachable {
    unreachable: bool,
    target: Option<String>,
}

impl Visit for MentionsUnreachable {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let text = format!("{value:?}");
        if field.name() == "target" {
            self.target = Some(text);
        } else if !self.unreachable {
            self.unreachable = text.contains("Unreachable");
        }
    }
}
