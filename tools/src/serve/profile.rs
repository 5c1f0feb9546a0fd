//! The tuning-profile keys among `serve`'s settings. They are declared in `ringbroker_tuning`
//! (`Key`: name, meaning, bounds, Kafka name) and take values in the same precedence as every
//! setting: the embedded default or the `--profile` file, then the config file (under the key's
//! Kafka name where Kafka has the setting, else its profile name), then the environment
//! (`RINGBROKER_` + that key), then `--set KEY=VALUE`.

use ringbroker_tuning::{Key, Profile, Provenance};

use super::config_file::ConfigFile;
use super::settings::{env_var_for_key, Environment};
use super::values::ProfileChoice;
use super::SettingsError;

/// Whether a running broker takes a new value of `key` on SIGHUP (the engine reads it at each
/// compaction pass; every other profile key sizes something built at start-up).
pub fn is_live(key: Key) -> bool {
    matches!(key, Key::LogCleanerIntervalMs | Key::LogCleanerMaxKeys)
}

/// The profile key a config-file key names, if it names one.
pub fn key_for_config_key(config_key: &str) -> Option<Key> {
    Key::ALL
        .into_iter()
        .find(|key| key.config_key() == config_key)
}

/// The profile with every layer applied (not yet resolved against the machine).
pub fn build(
    choice: &ProfileChoice,
    file: Option<&ConfigFile>,
    env: Environment<'_>,
    overrides: &[String],
) -> Result<Profile, SettingsError> {
    let mut profile = match choice {
        ProfileChoice::File(path) => Profile::load(path)?,
        ProfileChoice::Shipped(name) => Profile::shipped(name).ok_or_else(|| {
            SettingsError::Other(format!("no shipped profile is called `{name}`"))
        })??,
    };
    if let Some(file) = file {
        let origin = format!("config file {}", file.path.display());
        for key in Key::ALL {
            let Some(value) = file.value(key.config_key()) else {
                continue;
            };
            let applied = match value {
                // Properties files hold text; TOML strings may hold sizes ("64MiB") or words.
                toml::Value::String(text) => {
                    profile.set_text(key.name(), text, &origin, Provenance::File)
                }
                other => profile.set_value(key.name(), other.clone(), &origin, Provenance::File),
            };
            applied.map_err(|e| name_config_key(e, key))?;
        }
    }
    for key in Key::ALL {
        let var = env_var_for_key(key.config_key());
        if let Some(text) = env(&var) {
            profile
                .set_text(
                    key.name(),
                    &text,
                    &format!("environment {var}"),
                    Provenance::Env,
                )
                .map_err(|e| name_config_key(e, key))?;
        }
    }
    for assignment in overrides {
        let (name, value) = assignment.split_once('=').ok_or_else(|| {
            SettingsError::Other(format!(
                "--set {assignment}: expected KEY=VALUE, e.g. --set flush_policy=always"
            ))
        })?;
        // `--set` takes the profile name or the config-file (Kafka) name of a key.
        let name: &str = match key_for_config_key(name.trim()) {
            Some(key) => key.name(),
            None => name.trim(),
        };
        profile.set_from_flag(name, value.trim())?;
    }
    Ok(profile)
}

/// A profile error about `key`, reworded to name the key as a config file writes it when that
/// differs from its profile name.
fn name_config_key(error: ringbroker_tuning::ProfileError, key: Key) -> SettingsError {
    if key.config_key() == key.name() {
        return error.into();
    }
    SettingsError::Other(format!(
        "{error} (`{}` is the config-file name of profile key `{}`)",
        key.config_key(),
        key.name()
    ))
}
