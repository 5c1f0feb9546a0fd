//! ringbroker-bench: a pipelined Kafka load generator with HdrHistogram latency (coordinated
//! omission corrected), for ringbroker and any other Kafka-compatible broker.
//!
//! `produce`, `consume`, `e2e` and `txn` (transactions, read_committed e2e) run a workload and print a summary (optionally `--json`,
//! `--hdr-log`); `compare` puts result files side by side and can plot them (percentile curves and
//! throughput bars, and latency against offered load for rate sweeps).

mod cli;
mod client;
mod compare;
mod cpu;
mod error;
mod hlog;
mod machine;
mod plot;
mod report;
mod stats;
mod sweep;
mod workload;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, CompareArgs, RunArgs, Workload};
use crate::error::Result;
use crate::workload::pinning::CorePlan;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Produce(args) => run_workload(Workload::Produce, &args),
        Command::Consume(args) => run_workload(Workload::Consume, &args),
        Command::E2e(args) => run_workload(Workload::E2e, &args),
        Command::Txn(args) => run_txn(&args),
        Command::Compare(args) => run_compare(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringbroker-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_workload(workload: Workload, args: &RunArgs) -> Result<()> {
    if let Some(ca) = &args.tls_ca {
        client::tls::enable(ca, args.tls_server_name.clone())?;
    }
    let cores = core_plan(args)?;
    let (result, measurement) = workload::run::run(workload, args, cores)?;
    print!("{}", report::summary_text(&result));
    if let Some(path) = &args.json {
        report::write_json(path, &result)?;
        println!("results written to {}", path.display());
    }
    if let Some(path) = &args.hdr_log {
        hlog::write(path, &measurement.intervals, measurement.started_at)?;
        println!("interval histograms written to {}", path.display());
    }
    Ok(())
}

/// `--cores` wins; otherwise the profile's bench cores; otherwise no pinning.
fn core_plan(args: &RunArgs) -> Result<CorePlan> {
    if !args.cores.is_empty() {
        return Ok(CorePlan::new(args.cores.clone()));
    }
    match &args.profile {
        Some(path) => workload::profile::bench_cores(path).map(CorePlan::new),
        None => Ok(CorePlan::default()),
    }
}

fn run_txn(args: &cli::TxnArgs) -> Result<()> {
    let result = workload::txn::run(args, CorePlan::new(args.cores.clone()))?;
    print!("{}", workload::txn::summary_text(&result));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&result)
            .map_err(|e| error::BenchError::Protocol(format!("encoding the result: {e}")))?;
        std::fs::write(path, text)
            .map_err(|e| error::BenchError::io(format!("writing {}", path.display()), e))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

fn run_compare(args: &CompareArgs) -> Result<()> {
    let runs = args
        .files
        .iter()
        .map(|p| report::read_json(p))
        .collect::<Result<Vec<_>>>()?;
    print!("{}", compare::table(&runs));
    if let Some(path) = &args.plot {
        plot::write(path, &runs)?;
        println!("plot written to {}", path.display());
    }
    if let Some(path) = &args.sweep_plot {
        sweep::write(path, &runs)?;
        println!("sweep plot written to {}", path.display());
    }
    Ok(())
}
