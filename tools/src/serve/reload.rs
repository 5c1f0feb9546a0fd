//! SIGHUP: re-read the config file (and the environment), resolve every setting again as at start,
//! apply what a running broker can take, and log each change: what was reloaded, and what changed
//! but takes effect only after a restart. A file that no longer resolves changes nothing.
//!
//! Live settings are the ones declared `live = true` (and the profile keys `profile::is_live`):
//! the log filter and the warning limit (applied here), and the engine's `LiveSettings` (broker
//! retention defaults, compaction interval and offset-map size, shutdown drain), read by the
//! shards where they use them.

use std::sync::Arc;
use std::thread::JoinHandle;

use ringbroker_engine::config::LiveSettings;
use ringbroker_engine::security::inter_broker::ClientTls;
use ringbroker_engine::security::tls::ServerTls;
use signal_hook::consts::SIGHUP;
use signal_hook::iterator::{Handle, Signals};

use super::logging::Logging;
use super::settings::{process_environment, SettingRow};
use super::{Resolved, ServeArgs};

/// The running SIGHUP handler thread.
pub struct Reloader {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl Reloader {
    /// Ends the handler thread (after the broker stopped).
    pub fn stop(self) {
        self.handle.close();
        if self.thread.join().is_err() {
            tracing::error!("the SIGHUP handler thread panicked");
        }
    }
}

/// One setting whose value differs between two resolutions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: &'static str,
    pub old: String,
    pub new: String,
    pub live: bool,
}

/// The settings that differ from `running` in `reloaded`, by config key.
pub fn changes(running: &[SettingRow], reloaded: &[SettingRow]) -> Vec<Change> {
    reloaded
        .iter()
        .filter_map(|new| {
            let old = running.iter().find(|old| old.key == new.key)?;
            (old.value != new.value).then(|| Change {
                key: new.key,
                old: old.value.clone(),
                new: new.value.clone(),
                live: new.live,
            })
        })
        .collect()
}

/// Installs the SIGHUP handler. `start` is what the broker started with.
pub fn spawn(
    args: ServeArgs,
    start: &Resolved,
    live: Arc<LiveSettings>,
    tls: Option<Arc<ServerTls>>,
    inter_broker_tls: Option<Arc<ClientTls>>,
    logging: Option<Logging>,
) -> std::io::Result<Reloader> {
    let mut signals = Signals::new([SIGHUP])?;
    let handle = signals.handle();
    let mut running = start.rows();
    let thread = std::thread::Builder::new()
        .name("ringbroker-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                let certificates = Certificates {
                    server: tls.as_deref(),
                    inter_broker: inter_broker_tls.as_deref(),
                };
                reload(&args, &mut running, &live, certificates, logging.as_ref());
            }
        })?;
    Ok(Reloader { handle, thread })
}

/// The TLS configurations SIGHUP re-reads (`None`: not in use).
#[derive(Clone, Copy)]
struct Certificates<'a> {
    server: Option<&'a ServerTls>,
    inter_broker: Option<&'a ClientTls>,
}

fn reload(
    args: &ServeArgs,
    running: &mut [SettingRow],
    live: &LiveSettings,
    certificates: Certificates<'_>,
    logging: Option<&Logging>,
) {
    let reloaded = match Resolved::load(args, &process_environment) {
        Ok(reloaded) => reloaded,
        Err(e) => {
            tracing::error!("SIGHUP: cannot reload, the running settings stay: {e}");
            return;
        }
    };
    // Certificates are re-read on every SIGHUP: a rotation replaces the files' contents, not
    // their names. New connections get the new ones; open connections keep theirs.
    if let Some(tls) = certificates.server {
        reload_tls(&reloaded, tls);
    }
    if let Some(tls) = certificates.inter_broker {
        reload_inter_broker_tls(&reloaded, tls);
    }
    let rows = reloaded.rows();
    let found = changes(running, &rows);
    if found.is_empty() {
        tracing::info!("SIGHUP: settings re-read, nothing changed");
        return;
    }
    reloaded.apply_live(live);
    if let Some(logging) = logging {
        logging.set_warnings_per_second(
            u64::try_from(reloaded.settings.log_warnings_per_second.value.0).unwrap_or(0),
        );
    }
    for change in &found {
        let Change { key, old, new, .. } = change;
        if change.live {
            tracing::info!("SIGHUP: reloaded {key}: {old} -> {new}");
        } else {
            tracing::warn!(
                "SIGHUP: {key} changed ({old} -> {new}) but cannot change while the broker runs: it \
                 takes effect after a restart"
            );
        }
    }
    // What is running now: live values replaced, the others as the broker started.
    for change in found.iter().filter(|change| change.live) {
        if let Some(row) = running.iter_mut().find(|row| row.key == change.key) {
            row.value.clone_from(&change.new);
        }
    }
    // The filter goes last, so the lines above are written under the filter they were decided in.
    let filter = &reloaded.settings.log;
    if found.iter().any(|change| change.key == "log_filter") {
        match logging.map(|logging| logging.set_filter(&filter.value)) {
            Some(Ok(())) => tracing::info!("SIGHUP: log filter is now {}", filter.value),
            Some(Err(e)) => {
                tracing::error!("SIGHUP: cannot apply log filter {}: {e}", filter.value)
            }
            None => {}
        }
    }
}

/// Re-reads the certificate files named by `reloaded`; on any error the running certificate stays.
fn reload_tls(reloaded: &Resolved, tls: &ServerTls) {
    match reloaded.tls_files() {
        Ok(Some(files)) => match tls.reload(&files) {
            Ok(()) => {
                tracing::info!(cert = %files.cert.display(), "SIGHUP: TLS certificate reloaded")
            }
            Err(e) => {
                tracing::error!("SIGHUP: TLS certificate not reloaded, the running one stays: {e}")
            }
        },
        Ok(None) => tracing::warn!(
            "SIGHUP: ssl.cert and ssl.key are no longer set: the running certificate stays until a restart"
        ),
        Err(e) => tracing::error!("SIGHUP: TLS certificate not reloaded: {e}"),
    }
}

/// Re-reads the inter-broker CA and this broker's certificate for its connections to other
/// brokers; on any error the running configuration stays.
fn reload_inter_broker_tls(reloaded: &Resolved, tls: &ClientTls) {
    match reloaded.inter_broker_tls_files() {
        Ok(Some(files)) => match tls.reload(&files) {
            Ok(()) => tracing::info!(ca = %files.ca.display(), "SIGHUP: inter-broker TLS reloaded"),
            Err(e) => tracing::error!(
                "SIGHUP: inter-broker TLS not reloaded, the running configuration stays: {e}"
            ),
        },
        Ok(None) => tracing::warn!(
            "SIGHUP: inter.broker.ssl.ca.file is no longer set: the running one stays until a restart"
        ),
        Err(e) => tracing::error!("SIGHUP: inter-broker TLS not reloaded: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbroker_tuning::Provenance;

    fn row(key: &'static str, value: &str, live: bool) -> SettingRow {
        SettingRow {
            key,
            value: value.to_string(),
            source: Provenance::File,
            note: None,
            live,
            env: String::new(),
        }
    }

    #[test]
    fn changes_name_old_and_new_values() {
        let running = [
            row("log_filter", "info", true),
            row("num.partitions", "1", false),
        ];
        let reloaded = [
            row("log_filter", "debug", true),
            row("num.partitions", "1", false),
        ];
        assert_eq!(
            changes(&running, &reloaded),
            vec![Change {
                key: "log_filter",
                old: "info".into(),
                new: "debug".into(),
                live: true
            }]
        );
        assert!(changes(&running, &running).is_empty());
    }
}
