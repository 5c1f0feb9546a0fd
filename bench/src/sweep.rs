//! `compare --sweep-plot`: latency against offered load. Runs made with `--rate` are grouped into
//! series by their label up to the first `@` (the suite labels sweep runs `kafka default @40000`,
//! `ringbroker default @40000`, ...), each series drawn as p50 (dotted), p99 (solid) and p99.9
//! (dashed) over the offered rate. A point where the broker acknowledged less than
//! [`KEPT_UP_SHARE`] of the offered rate is drawn hollow: past that point the latency is the
//! backlog growing, not the broker's latency at that load.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;
use crate::plot::{
    decade_label, escape, frame_with_axis_titles, short_count, write_svg_or_png, PALETTE,
};
use crate::report::{LatencySummary, RunResult};

/// Share of the offered rate a broker must acknowledge for a point to count as "kept up".
pub const KEPT_UP_SHARE: f64 = 0.95;
/// Picture size.
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 640.0;
/// Plot box.
const LEFT: f64 = 90.0;
const RIGHT: f64 = 960.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 480.0;
/// Legend rows start here.
const LEGEND_TOP: f64 = 545.0;
const LEGEND_ROW: f64 = 18.0;
/// Radius of the point markers.
const MARKER_RADIUS: f64 = 4.0;
/// Room left and right of the outermost rates on the (log) rate axis, in decades.
const RATE_AXIS_PAD_DECADES: f64 = 0.1;

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The `--rate` of the run, records/s.
    pub offered_per_s: f64,
    /// Records/s the broker acknowledged.
    pub achieved_per_s: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
}

impl Point {
    /// Whether the broker acknowledged at least [`KEPT_UP_SHARE`] of the offered rate.
    pub fn kept_up(&self) -> bool {
        self.achieved_per_s >= KEPT_UP_SHARE * self.offered_per_s
    }
}

/// The series name of a label: the text before the first `@`, trimmed.
pub fn series_name(label: &str) -> &str {
    label.split('@').next().unwrap_or(label).trim()
}

/// The e2e latency of a run, or its produce latency when it has no e2e part.
fn latency(r: &RunResult) -> Option<&LatencySummary> {
    r.results
        .e2e_latency
        .as_ref()
        .or(r.results.produce_latency.as_ref())
}

/// Groups the fixed-rate runs into series (in order of first appearance), points sorted by rate.
pub fn series(runs: &[RunResult]) -> Vec<(String, Vec<Point>)> {
    let mut order: Vec<String> = Vec::new();
    let mut by_name: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for r in runs {
        let (Some(rate), Some(l), Some(t)) =
            (r.parameters.rate, latency(r), r.results.produce.as_ref())
        else {
            continue;
        };
        let name = series_name(&r.label).to_string();
        if !by_name.contains_key(&name) {
            order.push(name.clone());
        }
        by_name.entry(name).or_default().push(Point {
            offered_per_s: rate,
            achieved_per_s: t.records_per_s,
            p50_us: l.p50_us,
            p99_us: l.p99_us,
            p999_us: l.p999_us,
        });
    }
    order
        .into_iter()
        .map(|name| {
            let mut points = by_name.remove(&name).unwrap_or_default();
            points.sort_by(|a, b| a.offered_per_s.total_cmp(&b.offered_per_s));
            (name, points)
        })
        .collect()
}

struct Axes {
    rate_log_min: f64,
    rate_log_max: f64,
    log_min: f64,
    log_max: f64,
}

impl Axes {
    fn new(all: &[(String, Vec<Point>)]) -> Axes {
        let points = all.iter().flat_map(|(_, p)| p.iter());
        let (mut rate_lo, mut rate_hi) = (f64::MAX, f64::MIN);
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for p in points {
            rate_lo = rate_lo.min(p.offered_per_s.max(1.0));
            rate_hi = rate_hi.max(p.offered_per_s.max(1.0));
            lo = lo.min(p.p50_us.max(0.1));
            hi = hi.max(p.p999_us.max(p.p99_us));
        }
        if rate_lo > rate_hi {
            (rate_lo, rate_hi) = (1.0, 10.0);
        }
        if lo > hi {
            (lo, hi) = (1.0, 1000.0);
        }
        let log_min = lo.log10().floor();
        // Rates span decades (a quarter of the slower broker's max to most of the faster one's), so the
        // rate axis is logarithmic too, padded by a tenth of a decade on each side.
        let rate_log_min = rate_lo.log10() - RATE_AXIS_PAD_DECADES;
        Axes {
            rate_log_min,
            rate_log_max: (rate_hi.log10() + RATE_AXIS_PAD_DECADES).max(rate_log_min + 1.0),
            log_min,
            log_max: hi.log10().ceil().max(log_min + 1.0),
        }
    }

    fn x(&self, rate: f64) -> f64 {
        let l = rate.max(1.0).log10();
        LEFT + (RIGHT - LEFT) * (l - self.rate_log_min) / (self.rate_log_max - self.rate_log_min)
    }

    fn y(&self, us: f64) -> f64 {
        let l = us.max(1e-3).log10();
        BOTTOM - (BOTTOM - TOP) * (l - self.log_min) / (self.log_max - self.log_min)
    }

    /// Rate ticks at 1, 2 and 5 times each power of ten inside the axis.
    fn rate_ticks(&self) -> Vec<f64> {
        let mut ticks = Vec::new();
        for e in (self.rate_log_min.floor() as i32)..=(self.rate_log_max.ceil() as i32) {
            for m in [1.0, 2.0, 5.0] {
                let rate = m * 10f64.powi(e);
                let l = rate.log10();
                if l >= self.rate_log_min && l <= self.rate_log_max {
                    ticks.push(rate);
                }
            }
        }
        ticks
    }
}

fn grid(svg: &mut String, a: &Axes) {
    for rate in a.rate_ticks() {
        let x = a.x(rate);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="#ddd"/><text x="{x:.1}" y="{}" font-size="13" text-anchor="middle">{}</text>"##,
            BOTTOM + 20.0,
            short_count(rate)
        );
    }
    for e in (a.log_min as i32)..=(a.log_max as i32) {
        let us = 10f64.powi(e);
        let y = a.y(us);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="13" text-anchor="end">{}</text>"##,
            LEFT - 8.0,
            y + 4.0,
            decade_label(us)
        );
    }
    frame_with_axis_titles(
        svg,
        (LEFT, RIGHT, TOP, BOTTOM),
        "offered load (records/s, log scale)",
        "latency (log scale)",
    );
}

/// One percentile line of a series: name, SVG dash attribute, the value it draws.
type PercentileLine = (&'static str, &'static str, fn(&Point) -> f64);

/// The three percentile lines of a series.
const LINES: [PercentileLine; 3] = [
    ("p50", r#" stroke-dasharray="2 4""#, |p| p.p50_us),
    ("p99", "", |p| p.p99_us),
    ("p99.9", r#" stroke-dasharray="8 5""#, |p| p.p999_us),
];

fn draw_series(svg: &mut String, a: &Axes, index: usize, name: &str, points: &[Point]) {
    let color = PALETTE[index % PALETTE.len()];
    for (q, dash, value) in LINES {
        let coords: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", a.x(p.offered_per_s), a.y(value(p))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.2"{dash}/>"#,
            coords.join(" ")
        );
        for p in points {
            let fill = if p.kept_up() { color } else { "white" };
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="{MARKER_RADIUS}" fill="{fill}" stroke="{color}" stroke-width="1.5"><title>{} {q}: {:.0} µs at {:.0}/s offered, {:.0}/s acknowledged</title></circle>"#,
                a.x(p.offered_per_s),
                a.y(value(p)),
                escape(name),
                value(p),
                p.offered_per_s,
                p.achieved_per_s
            );
        }
    }
    let y = LEGEND_TOP + LEGEND_ROW * index as f64;
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{:.1}" width="24" height="8" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="13">{}</text>"#,
        y - 4.0,
        LEFT + 32.0,
        y + 4.0,
        escape(name)
    );
}

/// The whole picture as SVG text.
pub fn svg(runs: &[RunResult]) -> String {
    let all = series(runs);
    let a = Axes::new(&all);
    let height = HEIGHT.max(LEGEND_TOP + LEGEND_ROW * (all.len() + 1) as f64 + 10.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="36" font-size="18" text-anchor="middle" font-weight="bold">Latency against offered load (p50 dotted, p99 solid, p99.9 dashed)</text>"#,
        (LEFT + RIGHT) / 2.0
    );
    grid(&mut s, &a);
    for (i, (name, points)) in all.iter().enumerate() {
        draw_series(&mut s, &a, i, name, points);
    }
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{:.1}" font-size="13">hollow marker: the broker acknowledged less than {:.0}% of the offered rate (fell behind)</text>"#,
        LEGEND_TOP + LEGEND_ROW * all.len() as f64 + 4.0,
        KEPT_UP_SHARE * 100.0
    );
    s.push_str("</svg>\n");
    s
}

/// Writes the sweep plot (`.png` through `rsvg-convert`, as `compare --plot`).
pub fn write(path: &Path, runs: &[RunResult]) -> Result<()> {
    write_svg_or_png(path, svg(runs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    fn at(label: &str, rate: f64, scale: f64) -> RunResult {
        let mut r = sample(label, scale);
        r.parameters.rate = Some(rate);
        r
    }

    #[test]
    fn series_group_by_label_prefix_and_sort_by_rate() {
        let runs = vec![
            at("kafka @200", 200.0, 1.0),
            at("ours @200", 200.0, 0.5),
            at("kafka @100", 100.0, 1.0),
            sample("no rate", 1.0),
        ];
        let s = series(&runs);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "kafka");
        assert_eq!(s[1].0, "ours");
        let rates: Vec<f64> = s[0].1.iter().map(|p| p.offered_per_s).collect();
        assert_eq!(rates, vec![100.0, 200.0]);
        assert_eq!(series_name("x y @ 5"), "x y");
        assert_eq!(series_name("plain"), "plain");
    }

    #[test]
    fn falling_behind_is_marked_hollow() {
        // sample(scale 1) acknowledges 1,000,000 records/s.
        let runs = vec![at("a @500000", 500_000.0, 1.0), at("a @2000000", 2e6, 1.0)];
        let s = series(&runs);
        assert!(s[0].1[0].kept_up());
        assert!(!s[0].1[1].kept_up());
        let text = svg(&runs);
        assert_eq!(text.matches("<polyline").count(), 3);
        assert_eq!(text.matches(r#"fill="white" stroke"#).count(), 3);
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    }
}
