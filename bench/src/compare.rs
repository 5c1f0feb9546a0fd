//! `compare`: a side-by-side table of runs (throughput and latency percentiles), each run after the
//! first with its ratio to the first (the baseline).

use std::fmt::Write as _;

use crate::report::{
    format_count, format_us, LatencySummary, RunResult, Throughput, SUMMARY_QUANTILES,
};

/// One row: a metric's name and its value in each run (`None`: the run has no such number).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Metric name.
    pub metric: String,
    /// Value per run.
    pub values: Vec<Option<f64>>,
    /// How to print a value.
    pub unit: Unit,
}

/// How a row's values print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Records per second.
    RecordsPerSecond,
    /// MB per second.
    MegabytesPerSecond,
    /// Microseconds of latency.
    Micros,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::RecordsPerSecond => format_count(v),
            Unit::MegabytesPerSecond => format!("{v:.1}"),
            Unit::Micros => format_us(v),
        }
    }
}

fn throughput_rows(
    rows: &mut Vec<Row>,
    name: &str,
    runs: &[RunResult],
    pick: fn(&RunResult) -> &Option<Throughput>,
) {
    if runs.iter().all(|r| pick(r).is_none()) {
        return;
    }
    rows.push(Row {
        metric: format!("{name} records/s"),
        values: runs
            .iter()
            .map(|r| pick(r).as_ref().map(|t| t.records_per_s))
            .collect(),
        unit: Unit::RecordsPerSecond,
    });
    rows.push(Row {
        metric: format!("{name} MB/s"),
        values: runs
            .iter()
            .map(|r| pick(r).as_ref().map(|t| t.mb_per_s))
            .collect(),
        unit: Unit::MegabytesPerSecond,
    });
}

fn latency_rows(
    rows: &mut Vec<Row>,
    name: &str,
    runs: &[RunResult],
    pick: fn(&RunResult) -> &Option<LatencySummary>,
) {
    if runs.iter().all(|r| pick(r).is_none()) {
        return;
    }
    for (i, (q, _)) in SUMMARY_QUANTILES.iter().enumerate() {
        rows.push(Row {
            metric: format!("{name} {q}"),
            values: runs
                .iter()
                .map(|r| pick(r).as_ref().map(|l| l.columns()[i]))
                .collect(),
            unit: Unit::Micros,
        });
    }
}

/// The rows of the comparison.
pub fn rows(runs: &[RunResult]) -> Vec<Row> {
    let mut rows = Vec::new();
    throughput_rows(&mut rows, "produce", runs, |r| &r.results.produce);
    throughput_rows(&mut rows, "consume", runs, |r| &r.results.consume);
    latency_rows(&mut rows, "produce", runs, |r| &r.results.produce_latency);
    latency_rows(&mut rows, "e2e", runs, |r| &r.results.e2e_latency);
    rows
}

/// The ratio of a value to the baseline, printed as `1.23x`.
pub fn ratio(value: Option<f64>, baseline: Option<f64>) -> String {
    match (value, baseline) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}x", v / b),
        _ => "-".into(),
    }
}

/// Renders the table.
pub fn table(runs: &[RunResult]) -> String {
    let rows = rows(runs);
    let mut header = vec!["metric".to_string()];
    for (i, r) in runs.iter().enumerate() {
        header.push(r.label.clone());
        if i > 0 {
            header.push(format!("vs {}", runs[0].label));
        }
    }
    let mut cells: Vec<Vec<String>> = vec![header];
    for row in &rows {
        let mut line = vec![row.metric.clone()];
        for (i, v) in row.values.iter().enumerate() {
            line.push(v.map_or("-".into(), |v| row.unit.format(v)));
            if i > 0 {
                line.push(ratio(*v, row.values[0]));
            }
        }
        cells.push(line);
    }
    let columns = cells[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            cells
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, line) in cells.iter().enumerate() {
        for (c, cell) in line.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                let _ = write!(out, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "  {}{cell}", " ".repeat(pad));
            }
        }
        out.push('\n');
        if n == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (columns - 1)));
            out.push('\n');
        }
    }
    out.push_str("(lower latency is better; ratios are each run over the first)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn table_shows_values_and_ratios() {
        let runs = vec![sample("base", 1.0), sample("slow", 2.0)];
        let text = table(&runs);
        assert!(text.lines().next().expect("header").contains("vs base"));
        let tput = text
            .lines()
            .find(|l| l.starts_with("produce records/s"))
            .expect("row");
        assert!(
            tput.contains("1,000,000") && tput.contains("500,000") && tput.contains("0.50x"),
            "{tput}"
        );
        let p99 = text
            .lines()
            .find(|l| l.starts_with("e2e p99 "))
            .expect("row");
        assert!(p99.contains("2.00x"), "{p99}");
    }

    #[test]
    fn missing_values_show_a_dash() {
        let mut b = sample("b", 1.0);
        b.results.e2e_latency = None;
        let runs = vec![sample("a", 1.0), b];
        let r = rows(&runs);
        let e2e = r.iter().find(|r| r.metric == "e2e p50").expect("row");
        assert_eq!(e2e.values[1], None);
        assert_eq!(ratio(None, Some(1.0)), "-");
    }
}
