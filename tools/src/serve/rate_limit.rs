//! A limit on repeated warnings: at most `log_warnings_per_second` WARN and ERROR lines per second
//! from one call site (one `tracing::warn!` in the code); the rest are counted, and a reporter
//! thread logs one line per call site saying how many were suppressed, once per second.
//!
//! Why per call site: a flood is one place firing over and over (a refused connection per accept, a
//! failing disk per write), and it must not hide the one different warning that explains it.
//! The state is behind a mutex taken only for WARN and ERROR events, which are rare by definition;
//! when they are not, this is what keeps them from costing the broker its disk and its operators
//! their patience. INFO and below never touch it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The length of one counting window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// The target of the "suppressed" report lines (never limited themselves).
pub const REPORT_TARGET: &str = "ringbroker::log_limit";

/// One call site's current window.
#[derive(Debug)]
struct Window {
    started: Instant,
    passed: u64,
    suppressed: u64,
    metadata: &'static Metadata<'static>,
}

/// A finished window that suppressed lines: what the reporter logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub count: u64,
    pub target: &'static str,
    pub location: String,
}

#[derive(Debug, Default)]
struct State {
    windows: HashMap<Identifier, Window>,
    /// Windows that ended (a new one started) with lines still to report.
    ended: Vec<Suppressed>,
}

/// The layer; clones share the limit and the counts.
#[derive(Debug, Clone)]
pub struct RepeatLimit {
    per_second: Arc<AtomicU64>,
    state: Arc<Mutex<State>>,
}

impl RepeatLimit {
    /// At most `per_second` lines per call site and second (0: no limit).
    pub fn new(per_second: u64) -> RepeatLimit {
        RepeatLimit {
            per_second: Arc::new(AtomicU64::new(per_second)),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Changes the limit (a reload); takes effect with the next line.
    pub fn set_per_second(&self, per_second: u64) {
        self.per_second.store(per_second, Ordering::Relaxed);
    }

    /// Starts the thread that logs the suppressed counts once per window.
    pub fn spawn_reporter(&self) -> std::io::Result<()> {
        let limit = self.clone();
        std::thread::Builder::new()
            .name("ringbroker-log-limit".into())
            .spawn(move || loop {
                std::thread::sleep(WINDOW);
                limit.report(Instant::now());
            })
            .map(|_| ())
    }

    /// Logs (and forgets) every count of windows that ended by `now`.
    pub fn report(&self, now: Instant) {
        let per_second = self.per_second.load(Ordering::Relaxed);
        for suppressed in self.take_ended(now) {
            tracing::warn!(
                target: REPORT_TARGET,
                suppressed = suppressed.count,
                at = %suppressed.location,
                "suppressed {} repeats of a warning from {} in {} s (log_warnings_per_second = {per_second})",
                suppressed.count,
                suppressed.target,
                WINDOW.as_secs()
            );
        }
    }

    /// The counts of windows that ended by `now`; their call sites start afresh.
    pub fn take_ended(&self, now: Instant) -> Vec<Suppressed> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let mut ended = std::mem::take(&mut state.ended);
        state.windows.retain(|_, window| {
            if now.duration_since(window.started) < WINDOW {
                return true;
            }
            if window.suppressed > 0 {
                ended.push(suppressed_of(window));
            }
            false
        });
        ended
    }

    /// Whether an event from `metadata` at `now` may be written.
    fn admit(&self, metadata: &'static Metadata<'static>, now: Instant) -> bool {
        let per_second = self.per_second.load(Ordering::Relaxed);
        if per_second == 0 || *metadata.level() > Level::WARN || metadata.target() == REPORT_TARGET
        {
            return true;
        }
        // A poisoned lock (a panic elsewhere while holding it) must not silence the logs.
        let Ok(mut state) = self.state.lock() else {
            return true;
        };
        let State { windows, ended } = &mut *state;
        let window = windows
            .entry(metadata.callsite())
            .or_insert_with(|| Window {
                started: now,
                passed: 0,
                suppressed: 0,
                metadata,
            });
        if now.duration_since(window.started) >= WINDOW {
            if window.suppressed > 0 {
                ended.push(suppressed_of(window));
            }
            *window = Window {
                started: now,
                passed: 0,
                suppressed: 0,
                metadata,
            };
        }
        if window.passed < per_second {
            window.passed += 1;
            true
        } else {
            window.suppressed += 1;
            false
        }
    }
}

fn suppressed_of(window: &Window) -> Suppressed {
    let metadata = window.metadata;
    Suppressed {
        count: window.suppressed,
        target: metadata.target(),
        location: format!(
            "{}:{}",
            metadata.file().unwrap_or("?"),
            metadata.line().unwrap_or(0)
        ),
    }
}

impl<S: Subscriber> Layer<S> for RepeatLimit {
    fn event_enabled(&self, event: &Event<'_>, _context: Context<'_, S>) -> bool {
        self.admit(event.metadata(), Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tracing_subscriber::layer::SubscriberExt;

    /// Collects everything written by a fmt layer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Runs `body` under a subscriber limited by `limit`, returning what it wrote.
    fn with_limit(limit: &RepeatLimit, body: impl FnOnce()) -> Captured {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(limit.clone()).with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, body);
        captured
    }

    fn warn_from_one_place(times: usize) {
        for i in 0..times {
            tracing::warn!(i, "the same warning");
        }
    }

    #[test]
    fn repeats_from_one_call_site_are_limited_and_counted() {
        let limit = RepeatLimit::new(3);
        let captured = with_limit(&limit, || {
            warn_from_one_place(100);
            tracing::warn!("another warning, from elsewhere");
            tracing::info!("info lines are never limited");
            tracing::info!("info lines are never limited");
            // The window ends: the count is reported once, then the site starts afresh.
            limit.report(Instant::now() + WINDOW);
            warn_from_one_place(2);
        });
        let text = captured.text();
        assert_eq!(text.matches("the same warning").count(), 3 + 2, "{text}");
        assert_eq!(text.matches("another warning").count(), 1, "{text}");
        assert_eq!(text.matches("never limited").count(), 2, "{text}");
        assert_eq!(text.matches("suppressed 97 repeats").count(), 1, "{text}");
        assert!(text.contains("rate_limit.rs:"), "{text}");
    }

    #[test]
    fn zero_means_no_limit_and_the_limit_changes_live() {
        let limit = RepeatLimit::new(0);
        let captured = with_limit(&limit, || {
            warn_from_one_place(50);
            limit.set_per_second(1);
            warn_from_one_place(50);
        });
        let text = captured.text();
        assert_eq!(text.matches("the same warning").count(), 51, "{text}");
        assert_eq!(
            limit.take_ended(Instant::now() + WINDOW),
            vec![Suppressed {
                count: 49,
                target: module_path!(),
                location: format!("{}:{}", file!(), line_of_warn()),
            }]
        );
    }

    /// The line of the `tracing::warn!` in `warn_from_one_place`.
    fn line_of_warn() -> u32 {
        let source = include_str!("rate_limit.rs");
        let at = source
            .lines()
            .position(|line| line.contains("tracing::warn!(i, \"the same warning\")"))
            .unwrap();
        at as u32 + 1
    }
}
