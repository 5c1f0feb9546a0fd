//! `ringbroker tune check`: one [`CheckLine`] per machine setting that matters to a thread-per-core io_uring
//! broker, each with a status, the value seen, why it matters and the [`Fix`] (`tune apply` runs the fixes
//! it can). Checks read /proc and /sys only; they never change anything.

mod cpu;
mod kernel;
mod storage;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::ProfileError;
use crate::machine::Machine;
use crate::profile::ResolvedProfile;

/// Outcome of one check. Only `Fail` makes `tune check` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

/// One step `tune apply` can take by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixAction {
    /// Write `contents` to a /proc/sys or /sys file (what `sysctl -w` and `echo ... >` do).
    WriteFile { path: PathBuf, contents: String },
    /// Run a program (e.g. `systemctl stop irqbalance`).
    Run { program: String, args: Vec<String> },
}

/// How to fix a warn / fail line: the command a person would type, and the actions `tune apply` takes.
/// No actions means the fix needs a person (limits files, hardware, BIOS, the profile itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub command: String,
    pub actions: Vec<FixAction>,
}

impl Fix {
    /// `sysctl -w name=value`, applied by writing /proc/sys/<name with / for .>.
    pub fn sysctl(name: &str, value: impl std::fmt::Display) -> Fix {
        let path = Path::new("/proc/sys").join(name.replace('.', "/"));
        Fix {
            command: format!("sysctl -w {name}={value}"),
            actions: vec![FixAction::WriteFile {
                path,
                contents: value.to_string(),
            }],
        }
    }

    /// `echo value > path` for each path.
    pub fn sysfs(paths: &[PathBuf], value: &str) -> Fix {
        let command = paths
            .iter()
            .map(|p| format!("echo {value} > {}", p.display()))
            .collect::<Vec<_>>()
            .join("; ");
        let actions = paths
            .iter()
            .map(|path| FixAction::WriteFile {
                path: path.clone(),
                contents: value.to_string(),
            })
            .collect();
        Fix { command, actions }
    }

    /// A fix only a person can make.
    pub fn manual(command: impl Into<String>) -> Fix {
        Fix {
            command: command.into(),
            actions: Vec::new(),
        }
    }
}

/// One report line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckLine {
    pub name: &'static str,
    pub status: Status,
    /// What was seen, e.g. "[mq-deadline] none on vda".
    pub value: String,
    /// Why it matters to ringbroker.
    pub why: &'static str,
    /// Present on warn and fail lines that have a remedy.
    pub fix: Option<Fix>,
}

impl CheckLine {
    pub fn ok(name: &'static str, value: impl Into<String>, why: &'static str) -> CheckLine {
        CheckLine {
            name,
            status: Status::Ok,
            value: value.into(),
            why,
            fix: None,
        }
    }

    pub fn warn(
        name: &'static str,
        value: impl Into<String>,
        why: &'static str,
        fix: Fix,
    ) -> CheckLine {
        CheckLine {
            name,
            status: Status::Warn,
            value: value.into(),
            why,
            fix: Some(fix),
        }
    }

    pub fn fail(
        name: &'static str,
        value: impl Into<String>,
        why: &'static str,
        fix: Fix,
    ) -> CheckLine {
        CheckLine {
            name,
            status: Status::Fail,
            value: value.into(),
            why,
            fix: Some(fix),
        }
    }
}

/// What the checks look at.
pub struct CheckContext {
    /// The data directory (its nearest existing ancestor is checked if it does not exist yet).
    pub data_dir: PathBuf,
    /// The profile resolved for this machine, or why it could not be (reported as a fail line).
    pub profile: Result<ResolvedProfile, ProfileError>,
    pub machine: Machine,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub data_dir: PathBuf,
    pub lines: Vec<CheckLine>,
}

impl Report {
    /// 1 if any line failed, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.lines.iter().any(|line| line.status == Status::Fail))
    }

    fn count(&self, status: Status) -> usize {
        self.lines
            .iter()
            .filter(|line| line.status == status)
            .count()
    }

    /// The human-readable table: status, check, value; then why and fix, indented.
    pub fn render_table(&self) -> String {
        let width = self
            .lines
            .iter()
            .map(|line| line.name.len())
            .max()
            .unwrap_or(0);
        let mut out = format!(
            "ringbroker tune check (data dir {})\n",
            self.data_dir.display()
        );
        for line in &self.lines {
            out.push_str(&format!(
                "[{:<4}] {:<width$}  {}\n",
                line.status.to_string(),
                line.name,
                line.value
            ));
            out.push_str(&format!("       {:<width$}  why: {}\n", "", line.why));
            if let Some(fix) = &line.fix {
                let how = if fix.actions.is_empty() {
                    "fix (manual)"
                } else {
                    "fix"
                };
                out.push_str(&format!("       {:<width$}  {how}: {}\n", "", fix.command));
            }
        }
        out.push_str(&format!(
            "{} ok, {} warn, {} fail\n",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail)
        ));
        out
    }
}

/// Runs every check.
pub fn run_checks(context: &CheckContext) -> Report {
    let profile = context.profile.as_ref().ok();
    let mut lines = vec![profile_line(context)];
    if let Some(profile) = profile {
        lines.extend(profile.warnings.iter().map(|warning| {
            CheckLine::warn(
                "profile warning",
                warning.clone(),
                "a legal profile that will not perform as it could",
                Fix::manual("edit the profile (or pass --profile) as the warning says"),
            )
        }));
    }
    lines.push(kernel::io_uring());
    lines.push(kernel::memlock(profile));
    let data_dir = storage::existing_ancestor(&context.data_dir);
    lines.push(storage::o_direct(&data_dir));
    lines.extend(storage::block_device(&data_dir));
    lines.push(storage::io_properties(&context.data_dir));
    lines.push(cpu::cpu_count(&context.machine, profile));
    let system = Path::new(cpu::SYSTEM_SYSFS);
    lines.push(cpu::numa(system, profile));
    lines.push(cpu::smt_siblings(system, profile));
    lines.push(cpu::governor(system, &context.machine, profile));
    lines.push(kernel::transparent_huge_pages());
    lines.push(kernel::swappiness());
    lines.push(kernel::irqbalance(profile));
    lines.push(kernel::somaxconn());
    lines.push(kernel::socket_buffer_max(
        "net.core.rmem_max",
        profile.map(|p| p.socket_recv_buffer_bytes),
    ));
    lines.push(kernel::socket_buffer_max(
        "net.core.wmem_max",
        profile.map(|p| p.socket_send_buffer_bytes),
    ));
    Report {
        data_dir: context.data_dir.clone(),
        lines,
    }
}

fn profile_line(context: &CheckContext) -> CheckLine {
    const WHY: &str =
        "the profile decides shard cores, pinning and memory; the other checks use it";
    match &context.profile {
        Ok(profile) => CheckLine::ok(
            "profile",
            format!(
                "{}: {} shard(s) on cores {}, bench cores {}, pinning {}",
                profile.name,
                profile.shard_count(),
                crate::sysfs::format_cpulist(&profile.shard_cores),
                crate::sysfs::format_cpulist(&profile.bench_cores),
                if profile.pin_executors { "on" } else { "off" }
            ),
            WHY,
        ),
        Err(err) => CheckLine::fail(
            "profile",
            err.to_string(),
            WHY,
            Fix::manual("apply the fix in the message above"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_this_machine_with_a_sane_exit_code() {
        let machine = Machine::detect().unwrap();
        let context = CheckContext {
            data_dir: std::env::temp_dir(),
            profile: crate::Profile::builtin_default().resolve_for(&machine),
            machine,
        };
        let report = run_checks(&context);
        assert!(report.lines.len() >= 17, "{report:?}");
        let table = report.render_table();
        assert!(
            table.contains("io_uring") && table.contains("why:"),
            "{table}"
        );
        for line in &report.lines {
            assert!(
                line.status == Status::Ok || line.fix.is_some(),
                "warn/fail lines carry a fix: {line:?}"
            );
        }
        let expected = u8::from(report.lines.iter().any(|l| l.status == Status::Fail));
        assert_eq!(report.exit_code(), expected);
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"].is_string()));
    }

    #[test]
    fn a_broken_profile_is_a_fail_line() {
        let machine = Machine {
            online_cores: vec![0],
            usable_cores: vec![0],
            memlock_limit_bytes: Some(8 << 20),
            nofile_limit: None,
        };
        let profile = crate::Profile::from_toml_str("shard_cores = [9]\n", "bad.toml")
            .unwrap()
            .resolve_for(&machine);
        let report = run_checks(&CheckContext {
            data_dir: std::env::temp_dir(),
            profile,
            machine,
        });
        assert_eq!(report.lines[0].status, Status::Fail);
        assert!(report.lines[0].value.contains("shard_cores"));
        assert_eq!(report.exit_code(), 1);
    }

    #[test]
    fn sysctl_fix_writes_proc_sys() {
        let fix = Fix::sysctl("net.core.somaxconn", 4096);
        assert_eq!(fix.command, "sysctl -w net.core.somaxconn=4096");
        assert_eq!(
            fix.actions,
            vec![FixAction::WriteFile {
                path: "/proc/sys/net/core/somaxconn".into(),
                contents: "4096".into()
            }]
        );
    }
}
