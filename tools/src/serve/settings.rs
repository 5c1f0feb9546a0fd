//! The settings layer of `ringbroker serve`: how one declared setting becomes a flag, a config-file
//! key and an environment variable, and how its value is chosen.
//!
//! A broker setting is declared once, in the `serve_settings!` invocation of `serve.rs`: the clap
//! field (its flag and, from its doc comment, its help line) under a `#[setting(...)]` line naming
//! its config-file key, environment variable, default, Kafka name and whether it changes live
//! (SIGHUP). From that one declaration come the flag, the file key, the variable, the start-up
//! printout, the reload check, `ringbroker config check` and the table in docs/CONFIGURATION.md.
//!
//! Precedence, for every setting: flag, then environment (`RINGBROKER_*`), then config file, then
//! default. Values from every source go through the same `FromStr`, so a bad value gets the same
//! error wherever it was written, naming where.

use std::fmt::Display;
use std::str::FromStr;

use ringbroker_tuning::Provenance;

use super::config_file::ConfigFile;
use super::SettingsError;

/// The prefix of every environment variable `serve` reads.
pub const ENV_PREFIX: &str = "RINGBROKER_";

/// One declared setting of `ringbroker serve` (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingDef {
    /// The clap argument id: the `ServeArgs` field name (the flag is it with `-` for `_`).
    pub field: &'static str,
    /// The config-file key: Kafka's setting name where Kafka has the setting.
    pub key: &'static str,
    /// The environment variable: `RINGBROKER_` and the key in capitals, `_` for `.`.
    pub env: &'static str,
    /// The default, in the syntax a flag takes.
    pub default: &'static str,
    /// The Kafka broker setting with the same meaning, if any.
    pub kafka: Option<&'static str>,
    /// Whether a running broker takes a new value on SIGHUP.
    pub live: bool,
}

impl SettingDef {
    /// The command-line flag, `--` included.
    pub fn flag(&self) -> String {
        format!("--{}", self.field.replace('_', "-"))
    }
}

/// The environment variable a config-file key is read from.
pub fn env_var_for_key(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_ascii_uppercase().replace(['.', '-'], "_")
    )
}

/// A setting's value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Provenance,
}

/// The environment as `serve` sees it (a map in tests).
pub type Environment<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The sources below the command line: environment and config file.
pub struct Layers<'a> {
    pub env: Environment<'a>,
    pub file: Option<&'a ConfigFile>,
}

impl Layers<'_> {
    /// The effective value of `def`: the flag if given, else the environment, else the file, else
    /// the default.
    pub fn resolve<T>(
        &self,
        def: &SettingDef,
        flag: Option<&T>,
    ) -> Result<Sourced<T>, SettingsError>
    where
        T: FromStr + Clone,
        T::Err: Display,
    {
        if let Some(value) = flag {
            return Ok(Sourced {
                value: value.clone(),
                source: Provenance::Flag,
            });
        }
        let invalid = |origin: String, value: &str, reason: T::Err| SettingsError::Invalid {
            origin,
            key: def.key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if let Some(text) = (self.env)(def.env) {
            let value = text
                .parse()
                .map_err(|e| invalid(format!("environment {}", def.env), &text, e))?;
            return Ok(Sourced {
                value,
                source: Provenance::Env,
            });
        }
        if let Some(file) = self.file {
            if let Some(text) = file.text(def.key)? {
                let value = text.parse().map_err(|e| {
                    invalid(format!("config file {}", file.path.display()), &text, e)
                })?;
                return Ok(Sourced {
                    value,
                    source: Provenance::File,
                });
            }
        }
        let value = def
            .default
            .parse()
            .map_err(|e| invalid("built-in default".to_string(), def.default, e))?;
        Ok(Sourced {
            value,
            source: Provenance::Default,
        })
    }
}

/// One effective setting for printing and for comparing two resolutions (reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    /// The config-file key.
    pub key: &'static str,
    pub value: String,
    pub source: Provenance,
    /// How the value was derived ("auto: 2 usable cores"), if it was.
    pub note: Option<String>,
    /// Whether a running broker takes a new value on SIGHUP.
    pub live: bool,
    /// The environment variable, named when the value came from it.
    pub env: String,
}

impl std::fmt::Display for SettingRow {
    /// `key = value (source)`, the environment variable named when it is the source.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {} ({}", self.key, self.value, self.source)?;
        if self.source == Provenance::Env {
            write!(f, " {}", self.env)?;
        }
        if let Some(note) = &self.note {
            write!(f, "; {note}")?;
        }
        f.write_str(")")
    }
}

/// Declares `ServeArgs` (the clap flags of `ringbroker serve`), `SERVE_SETTINGS` (every declared
/// setting) and `ServeSettings` (their effective values with sources) from one list. Each field
/// starts with `#[setting(key = .., env = .., default = .., kafka = Some(..) | None, live = ..)]`,
/// then its doc comment (the help line) and clap attributes, and has type `Option<T>` where
/// `T: FromStr + Display + Clone`. The first field is the flattened non-setting flags.
macro_rules! serve_settings {
    (
        $(#[$struct_meta:meta])*
        pub struct $args:ident {
            $(#[$sources_meta:meta])*
            pub $sources:ident: $sources_ty:ty,
            $(
                #[setting(
                    key = $key:literal,
                    env = $env:literal,
                    default = $default:expr,
                    kafka = $kafka:expr,
                    live = $live:literal $(,)?
                )]
                $(#[$meta:meta])*
                pub $field:ident: Option<$ty:ty>,
            )*
        }
    ) => {
        $(#[$struct_meta])*
        pub struct $args {
            $(#[$sources_meta])*
            pub $sources: $sources_ty,
            $(
                $(#[$meta])*
                pub $field: Option<$ty>,
            )*
        }

        /// Every declared setting of `ringbroker serve`, in declaration order.
        pub const SERVE_SETTINGS: &[$crate::serve::settings::SettingDef] = &[
            $(
                $crate::serve::settings::SettingDef {
                    field: stringify!($field),
                    key: $key,
                    env: $env,
                    default: $default,
                    kafka: $kafka,
                    live: $live,
                },
            )*
        ];

        /// The effective value of every declared setting, with where it came from.
        #[derive(Debug, Clone)]
        pub struct ServeSettings {
            $(pub $field: $crate::serve::settings::Sourced<$ty>,)*
        }

        impl ServeSettings {
            /// Flags from `args`, then the environment and config file of `layers`, then defaults.
            pub fn resolve(
                args: &$args,
                layers: &$crate::serve::settings::Layers<'_>,
            ) -> Result<ServeSettings, $crate::serve::SettingsError> {
                Ok(ServeSettings {
                    $(
                        $field: layers.resolve(
                            &$crate::serve::settings::SettingDef {
                                field: stringify!($field),
                                key: $key,
                                env: $env,
                                default: $default,
                                kafka: $kafka,
                                live: $live,
                            },
                            args.$field.as_ref(),
                        )?,
                    )*
                })
            }

            /// One row per setting, in declaration order.
            pub fn rows(&self) -> Vec<$crate::serve::settings::SettingRow> {
                vec![
                    $(
                        $crate::serve::settings::SettingRow {
                            key: $key,
                            value: self.$field.value.to_string(),
                            source: self.$field.source,
                            note: None,
                            live: $live,
                            env: $env.to_string(),
                        },
                    )*
                ]
            }
        }
    };
}

pub(crate) use serve_settings;
