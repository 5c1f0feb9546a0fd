//! The `ringbroker tune ...` subcommands. The `ringbroker` binary embeds [`TuneCommand`] as
//! `Tune { #[command(subcommand)] cmd: TuneCommand }` and calls [`run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::check::{self, CheckContext, Report};
use crate::iotune::{self, IoProperties, IotuneConfig};
use crate::machine::Machine;
use crate::profile::Profile;
use crate::{apply, ProfileError};

/// Exit code when arguments or the profile file cannot be used at all.
const EXIT_USAGE: u8 = 2;

/// Check, fix and measure the machine ringbroker runs on.
#[derive(Debug, Subcommand)]
pub enum TuneCommand {
    /// Report the kernel, CPU and disk settings that matter, each with status, value, why, and fix.
    /// Exits 1 only if a check fails.
    Check(CheckArgs),
    /// Apply the fixes `check` suggests (sysctl, sysfs, systemctl); --dry-run only prints them.
    Apply(ApplyArgs),
    /// Measure the data directory (O_DIRECT bandwidth, IOPS per queue depth, fdatasync latency) and write
    /// io-properties.toml, which the broker uses to size in-flight writes.
    Iotune(IotuneArgs),
}

/// Where to look and against which profile.
#[derive(Debug, Args)]
pub struct Target {
    /// The broker's data directory (checked for O_DIRECT, block size, scheduler).
    #[arg(long, default_value = ".")]
    pub data_dir: PathBuf,
    /// Tuning profile to check against: a shipped one by name (default, dev, bare-metal-16c) or a
    /// file (default: the built-in default profile).
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: Target,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print the commands without running them.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct IotuneArgs {
    /// The data directory to measure (must exist; needs about 1 GiB free, less is used if it is short).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Where to write the io properties (default: DATA_DIR/io-properties.toml).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A sub-second smoke run on a small file; its figures are rough.
    #[arg(long)]
    pub quick: bool,
}

/// Runs one `tune` subcommand and returns the process exit code.
pub fn run(cmd: TuneCommand) -> ExitCode {
    match cmd {
        TuneCommand::Check(args) => run_check(&args),
        TuneCommand::Apply(args) => run_apply(&args),
        TuneCommand::Iotune(args) => run_iotune(&args),
    }
}

fn report_for(target: &Target) -> Result<Report, ProfileError> {
    let shipped = target
        .profile
        .as_deref()
        .and_then(|path| path.to_str())
        .and_then(Profile::shipped);
    let profile = match (&target.profile, shipped) {
        (_, Some(shipped)) => shipped?,
        (Some(path), None) => Profile::load(path)?,
        (None, None) => Profile::builtin_default(),
    };
    let machine = Machine::detect()?;
    let context = CheckContext {
        data_dir: target.data_dir.clone(),
        profile: profile.resolve_for(&machine),
        machine,
    };
    Ok(check::run_checks(&context))
}

fn run_check(args: &CheckArgs) -> ExitCode {
    let report = match report_for(&args.target) {
        Ok(report) => report,
        Err(err) => return usage_error(&err),
    };
    match args.output {
        OutputFormat::Table => emit(&report.render_table()),
        OutputFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => emit(&format!("{json}\n")),
            Err(err) => return usage_error(&err),
        },
    }
    ExitCode::from(report.exit_code())
}

fn run_apply(args: &ApplyArgs) -> ExitCode {
    let report = match report_for(&args.target) {
        Ok(report) => report,
        Err(err) => return usage_error(&err),
    };
    let outcomes = apply::apply(&report, args.dry_run);
    emit(&apply::render(&outcomes));
    let failed = outcomes
        .iter()
        .any(|o| matches!(o.result, apply::ApplyResult::Failed(_)));
    if failed {
        emit("some fixes could not be applied (run as root, outside a container, or apply them by hand)\n");
    }
    ExitCode::from(u8::from(failed))
}

fn run_iotune(args: &IotuneArgs) -> ExitCode {
    let config = if args.quick {
        IotuneConfig::quick(&args.data_dir)
    } else {
        IotuneConfig::new(&args.data_dir)
    };
    eprintln!("iotune: measuring {} ...", args.data_dir.display());
    let properties = match iotune::run(&config, &mut |line| eprintln!("  {line}")) {
        Ok(properties) => properties,
        Err(err) => {
            eprintln!("iotune failed: {err}");
            return ExitCode::FAILURE;
        }
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| IoProperties::default_path(&args.data_dir));
    emit(&render_properties(&properties));
    if let Err(err) = properties.write(&out) {
        eprintln!("iotune: {err}");
        return ExitCode::FAILURE;
    }
    emit(&format!("wrote {}\n", out.display()));
    ExitCode::SUCCESS
}

/// The figures as a small table.
pub fn render_properties(p: &IoProperties) -> String {
    let mut out = format!(
        "io properties of {} (scratch file {} MiB)\n",
        p.data_dir,
        p.file_bytes >> 20
    );
    out.push_str(&format!(
        "  sequential write 1 MiB qd1   {:>10.1} MiB/s\n",
        p.seq_write_mib_per_s
    ));
    out.push_str(&format!(
        "  sequential read  1 MiB qd1   {:>10.1} MiB/s\n",
        p.seq_read_mib_per_s
    ));
    for (write, read) in p.rand_write_4k.iter().zip(&p.rand_read_4k) {
        out.push_str(&format!(
            "  random 4 KiB qd{:<3}  write {:>9.0} IOPS   read {:>9.0} IOPS\n",
            write.queue_depth, write.iops, read.iops
        ));
    }
    out.push_str(&format!(
        "  fdatasync after 4 KiB append  p50 {} us   p99 {} us\n",
        p.fdatasync_latency_us_p50, p.fdatasync_latency_us_p99
    ));
    out.push_str(&format!(
        "  recommended dma_writes_in_flight_per_partition = {}\n",
        p.recommended_dma_writes_in_flight
    ));
    out
}

/// Writes to stdout without panicking when the reader went away (`tune check | head`): the exit code
/// still tells the result, and there is no one left to read an error.
fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

fn usage_error(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(EXIT_USAGE)
}
