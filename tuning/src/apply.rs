//! `ringbroker tune apply`: takes the fixes of a check report's warn / fail lines. With `dry_run` it only
//! lists the commands; otherwise it performs those it can (sysctl and sysfs writes, `systemctl`) and says
//! which it could not and why.

use std::process::Command;

use serde::Serialize;

use crate::check::{FixAction, Report, Status};

/// What happened to one fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyResult {
    /// Dry run: would have been applied.
    WouldApply,
    Applied,
    /// Tried and failed (read-only /proc/sys in a container, not root, ...).
    Failed(String),
    /// Needs a person: limits files, hardware, the profile.
    Manual,
}

/// One fix and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyOutcome {
    pub check: &'static str,
    pub command: String,
    pub result: ApplyResult,
}

/// Applies (or with `dry_run` lists) the fixes of every warn and fail line.
pub fn apply(report: &Report, dry_run: bool) -> Vec<ApplyOutcome> {
    report
        .lines
        .iter()
        .filter(|line| line.status != Status::Ok)
        .filter_map(|line| line.fix.as_ref().map(|fix| (line.name, fix)))
        .map(|(check, fix)| {
            let result = if fix.actions.is_empty() {
                ApplyResult::Manual
            } else if dry_run {
                ApplyResult::WouldApply
            } else {
                match fix.actions.iter().try_for_each(perform) {
                    Ok(()) => ApplyResult::Applied,
                    Err(reason) => ApplyResult::Failed(reason),
                }
            };
            ApplyOutcome {
                check,
                command: fix.command.clone(),
                result,
            }
        })
        .collect()
}

fn perform(action: &FixAction) -> Result<(), String> {
    match action {
        FixAction::WriteFile { path, contents } => {
            std::fs::write(path, contents).map_err(|e| format!("write {}: {e}", path.display()))
        }
        FixAction::Run { program, args } => {
            let output = Command::new(program)
                .args(args)
                .output()
                .map_err(|e| format!("run {program}: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                let stderr = String::from_utf8_lossy(&output.stderr);
                Err(format!(
                    "{program} {}: {} {}",
                    args.join(" "),
                    output.status,
                    stderr.trim()
                ))
            }
        }
    }
}

/// Prints outcomes as lines: `[applied] check: command`.
pub fn render(outcomes: &[ApplyOutcome]) -> String {
    if outcomes.is_empty() {
        return "nothing to apply: every check is ok\n".to_string();
    }
    let mut out = String::new();
    for outcome in outcomes {
        let (tag, detail) = match &outcome.result {
            ApplyResult::WouldApply => ("would run", String::new()),
            ApplyResult::Applied => ("applied", String::new()),
            ApplyResult::Failed(reason) => ("FAILED", format!("\n    could not apply: {reason}")),
            ApplyResult::Manual => ("manual", String::new()),
        };
        out.push_str(&format!(
            "[{tag}] {}: {}{detail}\n",
            outcome.check, outcome.command
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CheckLine, Fix};

    fn report(lines: Vec<CheckLine>) -> Report {
        Report {
            data_dir: ".".into(),
            lines,
        }
    }

    #[test]
    fn dry_run_lists_without_touching_anything() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("knob");
        let report = report(vec![
            CheckLine::ok("fine", "1", "why"),
            CheckLine::warn(
                "knob",
                "0",
                "why",
                Fix::sysfs(std::slice::from_ref(&target), "1"),
            ),
            CheckLine::fail("limit", "8", "why", Fix::manual("ulimit -l 1")),
        ]);
        let outcomes = apply(&report, true);
        assert_eq!(outcomes.len(), 2);
        assert_eq!(outcomes[0].result, ApplyResult::WouldApply);
        assert_eq!(
            outcomes[0].command,
            format!("echo 1 > {}", target.display())
        );
        assert_eq!(outcomes[1].result, ApplyResult::Manual);
        assert!(!target.exists());
        assert!(render(&outcomes).contains("[would run] knob: echo 1 >"));
    }

    #[test]
    fn applies_writes_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("knob");
        let missing = dir.path().join("no/such/dir/knob");
        let report = report(vec![
            CheckLine::warn(
                "knob",
                "0",
                "why",
                Fix::sysfs(std::slice::from_ref(&target), "performance"),
            ),
            CheckLine::warn("missing", "0", "why", Fix::sysfs(&[missing], "1")),
        ]);
        let outcomes = apply(&report, false);
        assert_eq!(outcomes[0].result, ApplyResult::Applied);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "performance");
        assert!(
            matches!(&outcomes[1].result, ApplyResult::Failed(reason) if reason.contains("no/such/dir"))
        );
    }
}
