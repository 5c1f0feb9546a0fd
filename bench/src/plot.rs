//! `compare --plot`: a hand-written SVG (no font files needed) with the latency percentile
//! distributions on HdrHistogram's log "percentile" axis (x = 1/(1-p): 90%, 99%, 99.9%, ... equally
//! spaced) for each run (produce solid, e2e dashed), and a throughput bar chart beside it.
//! A `.png` path is rendered from the SVG with `rsvg-convert` when it is installed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::error::{BenchError, Result};
use crate::report::{format_count, LatencySummary, RunResult};

/// Picture size.
const WIDTH: f64 = 1280.0;
const HEIGHT_MIN: f64 = 620.0;
/// Legend under the latency panel: two columns of entries this far apart.
const LEGEND_TOP: f64 = 545.0;
const LEGEND_ROW: f64 = 18.0;
const LEGEND_COLUMN: f64 = 370.0;
/// Latency panel box.
const LAT_LEFT: f64 = 90.0;
const LAT_RIGHT: f64 = 820.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 470.0;
/// Throughput panel box.
const BAR_LEFT: f64 = 920.0;
const BAR_RIGHT: f64 = 1250.0;
/// Width of one character of the 12 px bar labels (DejaVu Sans averages about 7 px).
const BAR_LABEL_CHAR_WIDTH: f64 = 7.0;
/// Most nines the percentile axis shows (99.9999%).
const MAX_NINES: f64 = 6.0;
/// Colours of the runs, in order (colour-blind-safe palette of Okabe and Ito).
pub(crate) const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// x position on the percentile axis (in "nines") of a percentile in %.
pub fn nines(percentile: f64, count: u64) -> f64 {
    let resolution = (count.max(1) as f64).log10().min(MAX_NINES);
    if percentile >= 100.0 {
        return resolution;
    }
    (1.0 / (1.0 - percentile / 100.0)).log10().min(resolution)
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Axes {
    x_max: f64,
    y_min_log: f64,
    y_max_log: f64,
}

impl Axes {
    fn x(&self, n: f64) -> f64 {
        LAT_LEFT + (LAT_RIGHT - LAT_LEFT) * n / self.x_max
    }

    fn y(&self, us: f64) -> f64 {
        let l = us.max(1e-3).log10();
        BOTTOM - (BOTTOM - TOP) * (l - self.y_min_log) / (self.y_max_log - self.y_min_log)
    }
}

fn latencies(r: &RunResult) -> [(&'static str, Option<&LatencySummary>); 2] {
    [
        ("produce", r.results.produce_latency.as_ref()),
        ("e2e", r.results.e2e_latency.as_ref()),
    ]
}

fn axes(runs: &[RunResult]) -> Axes {
    let mut x_max: f64 = 2.0;
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for r in runs {
        for (_, l) in latencies(r) {
            if let Some(l) = l {
                x_max = x_max.max(nines(100.0, l.count).ceil());
                for &(_, us) in &l.distribution {
                    lo = lo.min(us.max(0.1));
                    hi = hi.max(us);
                }
            }
        }
    }
    if lo > hi {
        (lo, hi) = (1.0, 1000.0);
    }
    Axes {
        x_max: x_max.min(MAX_NINES),
        y_min_log: lo.log10().floor(),
        y_max_log: hi.log10().ceil().max(lo.log10().floor() + 1.0),
    }
}

fn latency_panel(svg: &mut String, runs: &[RunResult]) {
    let a = axes(runs);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="36" font-size="18" text-anchor="middle" font-weight="bold">Latency by percentile</text>"#,
        (LAT_LEFT + LAT_RIGHT) / 2.0
    );
    for n in 0..=(a.x_max as usize) {
        let x = a.x(n as f64);
        let label = match n {
            0 => "0%".to_string(),
            1 => "90%".to_string(),
            k => format!("99.{}%", "9".repeat(k - 2)).replace("99.%", "99%"),
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="#ddd"/><text x="{x:.1}" y="{}" font-size="13" text-anchor="middle">{label}</text>"##,
            BOTTOM + 20.0
        );
    }
    for e in (a.y_min_log as i32)..=(a.y_max_log as i32) {
        let us = 10f64.powi(e);
        let y = a.y(us);
        let label = decade_label(us);
        let _ = writeln!(
            svg,
            r##"<line x1="{LAT_LEFT}" y1="{y:.1}" x2="{LAT_RIGHT}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="13" text-anchor="end">{label}</text>"##,
            LAT_LEFT - 8.0,
            y + 4.0
        );
    }
    frame_with_axis_titles(
        svg,
        (LAT_LEFT, LAT_RIGHT, TOP, BOTTOM),
        "percentile (log scale of 1/(1-p))",
        "latency (log scale)",
    );
    let mut entry = 0usize;
    for (i, r) in runs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        for (kind, l) in latencies(r) {
            let Some(l) = l else { continue };
            let dash = if kind == "e2e" {
                r#" stroke-dasharray="8 5""#
            } else {
                ""
            };
            let points: Vec<String> = l
                .distribution
                .iter()
                .map(|&(p, us)| format!("{:.1},{:.1}", a.x(nines(p, l.count)), a.y(us)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.5"{dash}/>"#,
                points.join(" ")
            );
            let legend_x = LAT_LEFT + LEGEND_COLUMN * (entry % 2) as f64;
            let legend_y = LEGEND_TOP + LEGEND_ROW * (entry / 2) as f64;
            let _ = writeln!(
                svg,
                r#"<line x1="{legend_x:.1}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{color}" stroke-width="2.5"{dash}/><text x="{:.1}" y="{:.1}" font-size="13">{} {kind}</text>"#,
                legend_x + 32.0,
                legend_x + 38.0,
                legend_y + 4.0,
                escape(&r.label)
            );
            entry += 1;
        }
    }
}

fn throughput_panel(svg: &mut String, runs: &[RunResult]) {
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="36" font-size="18" text-anchor="middle" font-weight="bold">Throughput (records/s)</text>"#,
        (BAR_LEFT + BAR_RIGHT) / 2.0
    );
    let bars: Vec<(usize, &str, f64)> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            [
                ("produce", r.results.produce.as_ref()),
                ("consume", r.results.consume.as_ref()),
            ]
            .into_iter()
            .filter_map(move |(k, t)| t.map(|t| (i, k, t.records_per_s)))
        })
        .collect();
    let max = bars.iter().map(|b| b.2).fold(0.0, f64::max).max(1.0) * 1.15;
    let y = |v: f64| BOTTOM - (BOTTOM - TOP) * v / max;
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{BAR_LEFT}" y1="{:.1}" x2="{BAR_RIGHT}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"##,
            y(v),
            y(v),
            BAR_LEFT - 6.0,
            y(v) + 4.0,
            short_count(v)
        );
    }
    let slot = (BAR_RIGHT - BAR_LEFT) / bars.len().max(1) as f64;
    for (n, &(run, kind, v)) in bars.iter().enumerate() {
        let x = BAR_LEFT + slot * n as f64 + slot * 0.15;
        let w = slot * 0.7;
        let color = PALETTE[run % PALETTE.len()];
        let opacity = if kind == "consume" { "0.55" } else { "1" };
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{color}" fill-opacity="{opacity}"/>"#,
            y(v),
            BOTTOM - y(v)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            x + w / 2.0,
            y(v) - 5.0,
            short_count(v)
        );
        let cx = x + w / 2.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end" transform="rotate(-90 {:.1} {:.1})">{} {kind}</text>"#,
            cx + 4.0,
            BOTTOM + 10.0,
            cx + 4.0,
            BOTTOM + 10.0,
            escape(&runs[run].label)
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{BAR_LEFT}" y1="{BOTTOM}" x2="{BAR_RIGHT}" y2="{BOTTOM}" stroke="#444"/>"##
    );
}

/// A power of ten of microseconds as `1µs`, `100µs`, `10ms`, `1s`.
/// A plot area's border and its axis titles (x below, y rotated on the left). `area` is
/// (left, right, top, bottom) in SVG units; titles are plain text (escaped here).
pub(crate) fn frame_with_axis_titles(
    svg: &mut String,
    area: (f64, f64, f64, f64),
    x_title: &str,
    y_title: &str,
) {
    let (left, right, top, bottom) = area;
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        right - left,
        bottom - top
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="14" text-anchor="middle">{}</text>"#,
        (left + right) / 2.0,
        bottom + 44.0,
        escape(x_title)
    );
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{}" font-size="14" text-anchor="middle" transform="rotate(-90 20 {})">{}</text>"#,
        (top + bottom) / 2.0,
        (top + bottom) / 2.0,
        escape(y_title)
    );
}

pub(crate) fn decade_label(us: f64) -> String {
    if us < 1.0 {
        format!("{}ns", (us * 1000.0).round())
    } else if us < 1000.0 {
        format!("{}µs", us.round())
    } else if us < 1_000_000.0 {
        format!("{}ms", (us / 1000.0).round())
    } else {
        format!("{}s", (us / 1_000_000.0).round())
    }
}

/// 1.2M, 350k, 12.
pub(crate) fn short_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format_count(v)
    }
}

/// The whole picture as SVG text.
pub fn svg(runs: &[RunResult]) -> String {
    let entries: usize = runs
        .iter()
        .map(|r| latencies(r).iter().filter(|(_, l)| l.is_some()).count())
        .sum();
    // The bar labels stand upright under the bars: room for the longest one.
    let longest_bar_label = runs
        .iter()
        .map(|r| r.label.chars().count() + " produce".len())
        .max()
        .unwrap_or(0);
    let height = HEIGHT_MIN
        .max(LEGEND_TOP + LEGEND_ROW * entries.div_ceil(2) as f64 + 10.0)
        .max(BOTTOM + 20.0 + BAR_LABEL_CHAR_WIDTH * longest_bar_label as f64);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    latency_panel(&mut s, runs);
    throughput_panel(&mut s, runs);
    s.push_str("</svg>\n");
    s
}

/// Writes the plot; `.png` goes through `rsvg-convert`.
pub fn write(path: &Path, runs: &[RunResult]) -> Result<()> {
    write_svg_or_png(path, svg(runs))
}

/// Writes SVG text to `path`, or, for a `.png` path, the SVG beside it and the PNG rendered from it.
pub(crate) fn write_svg_or_png(path: &Path, text: String) -> Result<()> {
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return std::fs::write(path, text)
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e));
    }
    let svg_path = path.with_extension("svg");
    std::fs::write(&svg_path, text)
        .map_err(|e| BenchError::io(format!("writing {}", svg_path.display()), e))?;
    let status = Command::new("rsvg-convert")
        .arg("-o")
        .arg(path)
        .arg(&svg_path)
        .status()
        .map_err(|e| {
            BenchError::io(
                "running rsvg-convert (install librsvg2-bin, or ask for .svg)",
                e,
            )
        })?;
    if !status.success() {
        return Err(BenchError::InvalidArgument(format!(
            "rsvg-convert failed ({status}); the SVG is at {}",
            svg_path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn decade_labels_are_compact() {
        assert_eq!(decade_label(100.0), "100µs");
        assert_eq!(decade_label(10_000.0), "10ms");
        assert_eq!(decade_label(1_000_000.0), "1s");
    }

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0, 1_000_000), 0.0);
        assert!((nines(90.0, 1_000_000) - 1.0).abs() < 1e-9);
        assert!((nines(99.9, 1_000_000) - 3.0).abs() < 1e-9);
        assert!((nines(100.0, 1_000) - 3.0).abs() < 1e-9);
        assert!(
            (nines(99.999, 1_000) - 3.0).abs() < 1e-9,
            "capped by the sample count"
        );
    }

    #[test]
    fn svg_has_a_curve_per_latency_and_bars() {
        let runs = vec![sample("ours", 1.0), sample("<theirs>", 2.0)];
        let s = svg(&runs);
        assert_eq!(s.matches("<polyline").count(), 4);
        assert!(s.contains("&lt;theirs&gt; e2e"));
        assert!(s.contains("99.9%"));
        assert!(s.contains("1.0M"));
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    }
}
