//! The broker's log output on stderr: `text` lines, coloured only when stderr is a terminal (and
//! `NO_COLOR` is unset), so that files and journald get no escape codes; or `json`, one object per
//! line with the event's fields at the top level, for log shippers. The filter and the limit on
//! repeated warnings can change while the broker runs (SIGHUP).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use super::rate_limit::RepeatLimit;
use super::values::{LogFilter, LogFormat};
use super::ServeSettings;

/// Handles to change the running log setup.
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    limit: RepeatLimit,
}

impl Logging {
    /// Replaces the filter.
    pub fn set_filter(&self, filter: &LogFilter) -> Result<(), String> {
        let filter = EnvFilter::try_new(&filter.0).map_err(|e| e.to_string())?;
        self.filter.reload(filter).map_err(|e| e.to_string())
    }

    /// Replaces the limit on repeated warnings (0: none).
    pub fn set_warnings_per_second(&self, per_second: u64) {
        self.limit.set_per_second(per_second);
    }
}

/// Whether text logs get colour: only on a terminal, and never with `NO_COLOR` set (no-color.org).
pub fn colour_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Installs the global subscriber. `None` if one is installed already (tests) or the filter is
/// refused (it was checked when parsed).
pub fn init(settings: &ServeSettings) -> Option<Logging> {
    let filter = EnvFilter::try_new(&settings.log.value.0).ok()?;
    let (filter, filter_handle) = reload::Layer::new(filter);
    let per_second = u64::try_from(settings.log_warnings_per_second.value.0).unwrap_or(0);
    let limit = RepeatLimit::new(per_second);
    let format = settings.log_format.value;
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour_wanted())
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(limit.clone())
        .with(text)
        .with(json)
        .try_init()
        .ok()?;
    if let Err(e) = limit.spawn_reporter() {
        tracing::warn!(error = %e, "cannot start the thread reporting suppressed warnings");
    }
    Some(Logging {
        filter: filter_handle,
        limit,
    })
}
