//! The `tune` subcommands as the `ringbroker` binary embeds them: argument parsing and exit codes.

use std::process::ExitCode;

use clap::Parser;
use ringbroker_tuning::cli::{self, TuneCommand};

/// How `tools` embeds the subcommand: `ringbroker tune <cmd>`.
#[derive(Parser)]
struct Tune {
    #[command(subcommand)]
    cmd: TuneCommand,
}

fn parse(args: &[&str]) -> TuneCommand {
    let argv = std::iter::once("tune").chain(args.iter().copied());
    match Tune::try_parse_from(argv) {
        Ok(tune) => tune.cmd,
        Err(err) => panic!("{args:?} did not parse: {err}"),
    }
}

#[test]
fn subcommands_parse() {
    assert!(matches!(parse(&["check"]), TuneCommand::Check(_)));
    let TuneCommand::Check(args) = parse(&["check", "--data-dir", "/tmp", "--output", "json"])
    else {
        panic!()
    };
    assert_eq!(args.target.data_dir, std::path::PathBuf::from("/tmp"));
    let TuneCommand::Apply(args) = parse(&["apply", "--dry-run"]) else {
        panic!()
    };
    assert!(args.dry_run);
    let TuneCommand::Iotune(args) = parse(&["iotune", "--data-dir", "/d", "--out", "/o.toml"])
    else {
        panic!()
    };
    assert_eq!(args.out, Some("/o.toml".into()));
    assert!(
        Tune::try_parse_from(["tune", "iotune"]).is_err(),
        "--data-dir is required"
    );
    assert!(Tune::try_parse_from(["tune", "check", "--output", "xml"]).is_err());
}

#[test]
fn check_exit_code_is_zero_or_one() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    for output in ["table", "json"] {
        let code = cli::run(parse(&[
            "check",
            "--data-dir",
            data_dir,
            "--output",
            output,
        ]));
        assert!(
            code == ExitCode::SUCCESS || code == ExitCode::from(1),
            "{code:?}"
        );
    }
}

#[test]
fn check_with_an_unreadable_profile_is_a_usage_error() {
    let code = cli::run(parse(&["check", "--profile", "/nonexistent/profile.toml"]));
    assert_eq!(code, ExitCode::from(2));
}

#[test]
fn check_takes_a_shipped_profile_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let code = cli::run(parse(&[
        "check",
        "--profile",
        "dev",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]));
    // 0 or 1 depending on this machine's settings; 2 would mean the name was not understood.
    assert!(
        code == ExitCode::SUCCESS || code == ExitCode::from(1),
        "{code:?}"
    );
}

#[test]
fn check_with_an_impossible_profile_fails() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(&profile, "shard_cores = [4095]\n").unwrap();
    let code = cli::run(parse(&[
        "check",
        "--profile",
        profile.to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(code, ExitCode::from(1));
}

#[test]
fn apply_dry_run_changes_nothing_and_succeeds() {
    assert_eq!(
        cli::run(parse(&["apply", "--dry-run", "--data-dir", "/tmp"])),
        ExitCode::SUCCESS
    );
}

#[test]
fn quick_iotune_writes_io_properties() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("props.toml");
    let code = cli::run(parse(&[
        "iotune",
        "--quick",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(code, ExitCode::SUCCESS);
    let properties = ringbroker_tuning::IoProperties::load(&out).unwrap();
    assert!(properties.seq_write_mib_per_s > 0.0);
}
