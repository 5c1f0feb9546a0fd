//! ringbroker-tuning: everything about fitting the broker to a machine.
//!
//! - [`profile`]: tuning profiles (TOML files in `tuning/profiles/`), their validation against this machine
//!   and the resolved settings with where each came from (default, profile, flag, iotune).
//! - [`machine`]: the few machine facts a profile is resolved against (usable cores, locked-memory limit).
//! - [`check`]: `ringbroker tune check`, a report on the kernel and hardware settings that matter to a
//!   thread-per-core io_uring broker, each with the command that fixes it; [`apply`] runs those commands.
//! - [`iotune`]: `ringbroker tune iotune`, measures the data directory and writes `io-properties.toml`.
//! - [`cli`]: the `ringbroker tune ...` clap subcommands the `ringbroker` binary embeds.
//!
//! The broker and the bench call [`Profile::load`] / [`Profile::builtin_default`], then
//! [`Profile::resolve`], and print the [`ResolvedProfile`] (`key = value (source)`) at start.

pub mod apply;
pub mod check;
pub mod cli;
mod error;
pub mod iotune;
pub mod machine;
pub mod profile;
mod sysfs;

pub use error::{ProfileError, TuneError};
pub use iotune::IoProperties;
pub use machine::Machine;
pub use profile::{CoreSpec, FlushPolicy, Key, Profile, Provenance, ResolvedProfile};
