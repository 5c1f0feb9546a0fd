#!/usr/bin/env python3
"""Turns the output directory of bench/scripts/suite.sh into summary.md (markdown on stdout).

Reads environment.json, limits.json, runs/*.json (ringbroker-bench --json), perftools/*.txt (Kafka's
ProducerPerformance / ConsumerPerformance output) and prints the tables: produce, catch-up consume, e2e max,
e2e at fixed rates, Kafka's perf tools, metrics on/off, and the issue 11 targets. Standard library only.

    python3 bench/scripts/suite_report.py OUT_DIR > OUT_DIR/summary.md
"""

import glob
import json
import os
import re
import statistics
import sys

BROKERS = ("kafka", "ringbroker")
# Produce target (issue 11): ringbroker at least this many times Kafka's acks=all throughput.
PRODUCE_RATIO_TARGET = 2.0
# e2e target (issue 11): ringbroker's e2e p99 at most this share of Kafka's at the same offered load.
E2E_P99_RATIO_TARGET = 0.2
# Share of the offered rate a broker must acknowledge to count as keeping up (as the sweep plot).
KEPT_UP_SHARE = 0.95
# Metrics cost target (issue 7): under 3%.
METRICS_COST_TARGET_PERCENT = 3.0

PRODUCER_LINE = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbs>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99.9th"
)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt_us(us):
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1e6:.2f} s"


def fmt_count(n):
    return "-" if n is None else f"{n:,.0f}"


def fmt_mb(n):
    return "-" if n is None else f"{n:,.1f}"


def fmt_ratio(a, b):
    if a is None or b is None or b <= 0:
        return "-"
    return f"{a / b:.2f}x"


def share(value, limit):
    if value is None or not limit:
        return "-"
    return f"{100.0 * value / limit:.0f}%"


class Run:
    """The numbers of one ringbroker-bench JSON result."""

    def __init__(self, j):
        r = j["results"]
        self.label = j["label"]
        self.measured_s = r["measured_s"]
        t = r.get("produce") or r.get("consume") or {}
        self.produce = r.get("produce")
        self.consume = r.get("consume")
        self.records_per_s = t.get("records_per_s")
        self.mb_per_s = t.get("mb_per_s")
        self.bytes = t.get("bytes", 0)
        lat = r.get("e2e_latency") or r.get("produce_latency") or {}
        self.p50 = lat.get("p50_us")
        self.p99 = lat.get("p99_us")
        self.p999 = lat.get("p999_us")
        self.max = lat.get("max_us")
        self.errors = r.get("errors", 0)
        self.broker_cpu_s = r.get("broker_cpu_s")
        self.bench_cpu_s = r.get("bench_cpu_s")
        self.rate = j["parameters"].get("rate")
        self.load = j["machine"].get("load_average_1m")

    @property
    def cpu_s_per_gb(self):
        if self.broker_cpu_s is None or not self.bytes:
            return None
        return self.broker_cpu_s / (self.bytes / 1e9)

    @property
    def cpu_share(self):
        if self.broker_cpu_s is None or not self.measured_s:
            return None
        return self.broker_cpu_s / self.measured_s


def runs_by_name(out_dir):
    runs = {}
    for path in glob.glob(os.path.join(out_dir, "runs", "*.json")):
        j = load(path)
        if j:
            runs[os.path.basename(path)[: -len(".json")]] = Run(j)
    return runs


def cpu_cell(run):
    if run is None or run.cpu_s_per_gb is None:
        return "-"
    return f"{run.cpu_s_per_gb:.2f} ({100 * run.cpu_share:.0f}%)"


def header(env, limits):
    out = ["# ringbroker vs Apache Kafka 4.4: suite results", ""]
    if env:
        out += [
            f"- command: `{env.get('command', '?').strip()}` (durations {env.get('duration')} after "
            f"{env.get('warmup')} warm-up; levels: {env.get('levels')}; parts: {env.get('parts')})",
            f"- started {env.get('started_utc')}, finished {env.get('finished_utc', '?')}; load average "
            f"{env.get('load_average_at_start')} at start, {env.get('load_average_at_end', '?')} at end; "
            f"{env.get('cpu_pressure_at_start')} (CPU), {env.get('io_pressure_at_start')} (IO)",
            f"- machine: {env.get('nproc')} cores ({env.get('cpu_model')}), {env.get('memory_gib')} GiB, "
            f"Linux {env.get('kernel')}, data on {env.get('data_filesystem')}",
            f"- versions: {env.get('ringbroker')} (commit {env.get('git_commit')}), {env.get('kafka')}, "
            f"{env.get('java')}",
            f"- brokers pinned to core {env.get('broker_core')} (both alive, idle while the other runs), "
            f"bench and Kafka's perf tools on core {env.get('bench_core')}",
        ]
    if limits:
        out.append(
            f"- limits: disk (dd O_DIRECT 1 MiB writes) **{limits.get('disk_write_mb_s')} MB/s**, reads "
            f"**{limits.get('disk_read_mb_s', '?')} MB/s**, loopback TCP "
            f"(iperf3 core {env.get('broker_core') if env else '?'} -> {env.get('bench_core') if env else '?'}, "
            f"the better of {limits.get('iperf3', '?').strip().rstrip(';')}) **{limits.get('loopback_mb_s')} MB/s**"
        )
    out.append("")
    return out


def latency_cells(run):
    if run is None:
        return ["-"] * 4
    return [fmt_us(run.p50), fmt_us(run.p99), fmt_us(run.p999), fmt_us(run.max)]


def produce_table(runs, levels, limits):
    disk = limits.get("disk_write_mb_s") if limits else None
    loop = limits.get("loopback_mb_s") if limits else None
    keys = sorted(
        {tuple(n.split("-", 3)[3].split("-")) for n in runs if n.split("-")[2:3] == ["produce"]},
        key=lambda k: (0 if k[0].endswith("B") and not k[0].endswith("KiB") else 1, k),
    )
    out = [
        "## Produce (1 MiB batches, 5 in flight, latency request → ack)",
        "",
        "| level | record | acks | partitions | broker | records/s | MB/s | % disk | % loopback | p50 | p99 | "
        "p99.9 | max | broker CPU s/GB (% of core) | ours/Kafka throughput | ours/Kafka p99 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for level in levels:
        for size, acks, parts in keys:
            k = runs.get(f"{level}-kafka-produce-{size}-{acks}-{parts}")
            r = runs.get(f"{level}-ringbroker-produce-{size}-{acks}-{parts}")
            for broker, run in (("Kafka", k), ("ringbroker", r)):
                if run is None:
                    continue
                ratio_t = fmt_ratio(r.records_per_s, k.records_per_s) if broker == "ringbroker" and k else ""
                ratio_l = fmt_ratio(r.p99, k.p99) if broker == "ringbroker" and k else ""
                out.append(
                    f"| {level} | {size} | {acks[4:]} | {parts[1:]} | {broker} | {fmt_count(run.records_per_s)} | "
                    f"{fmt_mb(run.mb_per_s)} | {share(run.mb_per_s, disk)} | {share(run.mb_per_s, loop)} | "
                    + " | ".join(latency_cells(run))
                    + f" | {cpu_cell(run)} | {ratio_t} | {ratio_l} |"
                )
            if k and r and k.records_per_s and acks == "acksall":
                ratios.append((level, size, parts[1:], r.records_per_s / k.records_per_s))
    out.append("")
    return out, ratios


def consume_table(runs, levels, limits):
    loop = limits.get("loopback_mb_s") if limits else None
    disk_read = limits.get("disk_read_mb_s") if limits else None
    parts_list = sorted({n.rsplit("-p", 1)[1] for n in runs if "-consume-1KiB-p" in n}, key=int)
    if not parts_list:
        return []
    out = [
        "## Catch-up consume (1 KiB records written just before with acks=all; Kafka reads from the page cache, "
        "ringbroker's segments were written with O_DIRECT)",
        "",
        "| level | partitions | broker | GB read | records/s | MB/s | % disk read | % loopback | "
        "broker CPU s/GB (% of core) | fill: records/s (acks=all) | ours/Kafka read |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        for parts in parts_list:
            k = runs.get(f"{level}-kafka-consume-1KiB-p{parts}")
            for broker in BROKERS:
                run = runs.get(f"{level}-{broker}-consume-1KiB-p{parts}")
                fill = runs.get(f"{level}-{broker}-fill-1KiB-p{parts}")
                if run is None:
                    continue
                ratio = fmt_ratio(run.mb_per_s, k.mb_per_s) if broker == "ringbroker" and k else ""
                out.append(
                    f"| {level} | {parts} | {'Kafka' if broker == 'kafka' else broker} | {run.bytes / 1e9:.2f} | "
                    f"{fmt_count(run.records_per_s)} | {fmt_mb(run.mb_per_s)} | {share(run.mb_per_s, disk_read)} | "
                    f"{share(run.mb_per_s, loop)} | "
                    f"{cpu_cell(run)} | {fmt_count(fill.records_per_s) if fill else '-'} | {ratio} |"
                )
    out.append("")
    return out


def e2e_tables(runs, levels):
    out = [
        "## End to end (1 KiB records, 64 KiB batches, acks=all, 1 partition; latency = consume time minus "
        "intended send time)",
        "",
        "| level | offered records/s | broker | acknowledged records/s | MB/s | e2e p50 | p99 | p99.9 | max | "
        "broker CPU s/GB (% of core) | ours/Kafka p99 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    targets = []
    for level in levels:
        attempts = [{b: runs.get(f"{level}-{b}-e2e-max{i}") for b in BROKERS} for i in (1, 2)]
        rates = sorted(
            {int(n.rsplit("rate", 1)[1]) for n in runs if n.startswith(f"{level}-") and "-e2e-rate" in n}
        )
        rows = [(f"max{i}", a) for i, a in enumerate(attempts, start=1)] + [
            (rate, {b: runs.get(f"{level}-{b}-e2e-rate{rate}") for b in BROKERS}) for rate in rates
        ]
        # Each broker's max is its better unthrottled run; half of the slower one is the common load.
        best = {}
        for a in attempts:
            for b, m in a.items():
                if m is not None:
                    best[b] = max(best.get(b, 0.0), m.records_per_s)
        half = round(min(best.values()) * 0.5, -2) if best else None
        for rate, pair in rows:
            k, r = pair["kafka"], pair["ringbroker"]
            for broker in BROKERS:
                run = pair[broker]
                if run is None:
                    continue
                unthrottled = isinstance(rate, str)
                offered = f"unthrottled #{rate[3:]}" if unthrottled else fmt_count(rate)
                if not unthrottled and half is not None and rate == half:
                    offered += " (half of the slower max)"
                # Unthrottled, the two brokers carry different loads: a p99 ratio would compare unlike things.
                ratio = fmt_ratio(r.p99, k.p99) if broker == "ringbroker" and k and r and not unthrottled else ""
                behind = "" if unthrottled or run.records_per_s >= KEPT_UP_SHARE * rate else " (fell behind)"
                out.append(
                    f"| {level} | {offered} | {'Kafka' if broker == 'kafka' else broker} | "
                    f"{fmt_count(run.records_per_s)}{behind} | {fmt_mb(run.mb_per_s)} | "
                    + " | ".join(latency_cells(run))
                    + f" | {cpu_cell(run)} | {ratio} |"
                )
            if not isinstance(rate, str) and k and r and k.p99 and r.p99 is not None:
                targets.append((level, rate, rate == half, r.p99 / k.p99, k, r))
    out.append("")
    return out, targets


def parse_producer(path):
    try:
        text = open(path).read()
    except OSError:
        return None
    matches = list(PRODUCER_LINE.finditer(text))
    if not matches:
        return None
    return {k: float(v) for k, v in matches[-1].groupdict().items()}


def parse_consumer(path):
    try:
        lines = [line.strip() for line in open(path) if line.strip()]
    except OSError:
        return None
    for i, line in enumerate(lines):
        if line.startswith("start.time") and i + 1 < len(lines):
            names = [c.strip() for c in line.split(",")]
            values = [c.strip() for c in lines[i + 1].split(",")]
            row = dict(zip(names, values))
            try:
                return {
                    "mb": float(row["data.consumed.in.MB"]),
                    "mb_s": float(row["MB.sec"]),
                    "records": float(row["data.consumed.in.nMsg"]),
                    "records_s": float(row["nMsg.sec"]),
                    "rebalance_ms": float(row.get("rebalance.time.ms", "nan")),
                    "fetch_mb_s": float(row.get("fetch.MB.sec", "nan")),
                }
            except (KeyError, ValueError):
                return None
    return None


def perftools_table(out_dir, levels):
    rows = []
    for level in levels:
        base = {b: os.path.join(out_dir, "perftools", f"{level}-{b}") for b in BROKERS}
        prod = {b: parse_producer(base[b] + "-producer.txt") for b in BROKERS}
        cons = {b: parse_consumer(base[b] + "-consumer.txt") for b in BROKERS}
        for b in BROKERS:
            p, c = prod[b], cons[b]
            if p is None and c is None:
                continue
            pk, ck = prod["kafka"], cons["kafka"]
            mine = b == "ringbroker"
            rows.append(
                f"| {level} | {'Kafka' if b == 'kafka' else b} | "
                + (
                    f"{fmt_count(p['rps'])} | {p['mbs']:.1f} | {p['avg']:.1f} | {p['p50']:.0f} | {p['p99']:.0f} | "
                    f"{p['p999']:.0f} | {p['max']:.0f} | "
                    if p
                    else "failed | | | | | | | "
                )
                + (
                    f"{c['mb_s']:.1f} | {fmt_count(c['records_s'])} | {c['rebalance_ms']:.0f} | {c['fetch_mb_s']:.1f} | "
                    if c
                    else "failed | | | | "
                )
                + (f"{fmt_ratio(p['rps'], pk['rps']) if p and pk else '-'} | " if mine else " | ")
                + (
                    f"{fmt_ratio(c['mb_s'], ck['mb_s'])} / {fmt_ratio(c['fetch_mb_s'], ck['fetch_mb_s'])} |"
                    if mine and c and ck
                    else " |"
                )
            )
    if not rows:
        return []
    return [
        "## Kafka's own perf tools (kafka-clients 4.4 on the bench core, 1 KiB records, 1 partition)",
        "",
        "`ProducerPerformance --num-records N --record-size 1024 --throughput -1 --producer-props "
        "bootstrap.servers=... acks=all` (Java producer defaults otherwise: idempotent, 16 KiB batches, linger 5 ms), "
        "then `ConsumerPerformance --messages N` on the same topic (a consumer group; both brokers wait Kafka's default "
        "3 s initial rebalance delay, counted in the consumer MB/s but not in the fetch MB/s). MB here is 2^20 bytes "
        "of record values, as the tools print it.",
        "",
        "| level | broker | producer records/s | MB/s | avg ms | p50 ms | p99 ms | p99.9 ms | max ms | consumer MB/s | "
        "records/s | group join ms | fetch MB/s (after the join) | ours/Kafka producer | ours/Kafka consumer (total / fetch) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ] + rows + [""]


def metrics_table(runs):
    pairs = {}
    for name, run in runs.items():
        m = re.fullmatch(r"metrics-(on|off)-b(\d+)-(\d+)", name)
        if m:
            pairs.setdefault((int(m.group(2)), int(m.group(3))), {})[m.group(1)] = run
    if not pairs:
        return [], []
    out = [
        "## Metrics cost (issue 7): ringbroker default level, metrics on vs `--metrics-listen none`",
        "",
        "Alternating pairs (odd pairs on first, even pairs off first), a fresh broker per half, produce 1 KiB "
        "records, acks=1, 1 partition. Difference = (on - off) / off: positive CPU or negative MB/s is the cost.",
        "",
        "| batch | pair | on MB/s | off MB/s | MB/s diff | on CPU s/GB | off CPU s/GB | CPU/GB diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    medians = []
    for batch in sorted({b for b, _ in pairs}, reverse=True):
        mb_diffs, cpu_diffs = [], []
        for (b, i), pair in sorted(pairs.items()):
            if b != batch or "on" not in pair or "off" not in pair:
                continue
            on, off = pair["on"], pair["off"]
            mb = 100.0 * (on.mb_per_s - off.mb_per_s) / off.mb_per_s if off.mb_per_s else None
            cpu = (
                100.0 * (on.cpu_s_per_gb - off.cpu_s_per_gb) / off.cpu_s_per_gb
                if on.cpu_s_per_gb is not None and off.cpu_s_per_gb
                else None
            )
            if mb is not None:
                mb_diffs.append(mb)
            if cpu is not None:
                cpu_diffs.append(cpu)
            out.append(
                f"| {batch // 1024} KiB | {i} | {fmt_mb(on.mb_per_s)} | {fmt_mb(off.mb_per_s)} | "
                f"{'-' if mb is None else f'{mb:+.1f}%'} | {cpu_cell(on)} | {cpu_cell(off)} | "
                f"{'-' if cpu is None else f'{cpu:+.1f}%'} |"
            )
        if mb_diffs:
            mb_med = statistics.median(mb_diffs)
            cpu_med = statistics.median(cpu_diffs) if cpu_diffs else None
            out.append(
                f"| {batch // 1024} KiB | **median** | | | **{mb_med:+.1f}%** | | | "
                f"**{'-' if cpu_med is None else f'{cpu_med:+.1f}%'}** |"
            )
            spread = max(cpu_diffs or mb_diffs) - min(cpu_diffs or mb_diffs)
            medians.append((batch, mb_med, cpu_med, len(mb_diffs), spread))
    out.append("")
    return out, medians


def targets_section(produce_ratios, e2e_targets, metric_medians):
    out = ["## Against the targets", ""]
    if produce_ratios:
        worst = min(produce_ratios, key=lambda t: t[3])
        met = all(t[3] >= PRODUCE_RATIO_TARGET for t in produce_ratios)
        out.append(
            f"- produce throughput at acks=all, ringbroker/Kafka (target >= {PRODUCE_RATIO_TARGET:.0f}x): "
            + ", ".join(f"{lvl} {size} p{parts} **{ratio:.2f}x**" for lvl, size, parts, ratio in produce_ratios)
            + f": {'met in every cell' if met else f'missed, lowest {worst[0]} {worst[1]} p{worst[2]} {worst[3]:.2f}x'}"
        )
    half = [t for t in e2e_targets if t[2]]
    if half:
        parts = []
        for level, rate, _, ratio, k, r in half:
            verdict = "met" if ratio <= E2E_P99_RATIO_TARGET else "missed"
            parts.append(
                f"{level} at {rate:,.0f}/s: {fmt_us(r.p99)} vs {fmt_us(k.p99)} = **{ratio:.3f}** ({verdict})"
            )
        out.append(
            f"- e2e p99 at the same offered load (half of the slower broker's max), ringbroker/Kafka "
            f"(target <= {E2E_P99_RATIO_TARGET}): " + "; ".join(parts)
        )
    if e2e_targets:
        out.append(
            "- e2e p99 ratio at every swept rate: "
            + ", ".join(f"{lvl} {rate:,.0f}/s {ratio:.3f}" for lvl, rate, _, ratio, _, _ in e2e_targets)
        )
    for batch, mb, cpu, n, spread in metric_medians:
        if spread > 2 * METRICS_COST_TARGET_PERCENT:
            verdict = (
                f"inconclusive against the {METRICS_COST_TARGET_PERCENT:.0f}% target: the pairs spread over "
                f"{spread:.0f} points"
            )
        elif cpu is not None and cpu < METRICS_COST_TARGET_PERCENT and -mb < METRICS_COST_TARGET_PERCENT:
            verdict = f"under the {METRICS_COST_TARGET_PERCENT:.0f}% target"
        else:
            verdict = f"not under the {METRICS_COST_TARGET_PERCENT:.0f}% target"
        out.append(
            f"- metrics cost, {batch // 1024} KiB batches, median of {n} pairs: MB/s {mb:+.1f}%, broker CPU per GB "
            f"{'-' if cpu is None else f'{cpu:+.1f}%'} ({verdict})"
        )
    out.append("")
    return out


def neighbour_section(out_dir, runs):
    """CPU the idle broker used on the shared core while the other one was measured."""
    shares = {b: [] for b in BROKERS}
    for path in glob.glob(os.path.join(out_dir, "runs", "*.neighbour-cpu")):
        name = os.path.basename(path)[: -len(".neighbour-cpu")]
        run = runs.get(name)
        try:
            cpu = float(open(path).read().strip())
        except (OSError, ValueError):
            continue
        if run is None or not run.measured_s:
            continue
        idle = "kafka" if "-ringbroker-" in name else "ringbroker"
        # The neighbour was sampled over warm-up + measured time; dividing by the measured time alone
        # overstates its share, which is the safe side.
        shares[idle].append(100.0 * cpu / run.measured_s)
    out = []
    for b in BROKERS:
        if shares[b]:
            out.append(
                f"- idle {'Kafka' if b == 'kafka' else b} beside the measured broker on the shared core: median "
                f"{statistics.median(shares[b]):.1f}%, at most {max(shares[b]):.1f}% of the core over "
                f"{len(shares[b])} runs"
            )
    return ["## The idle neighbour", ""] + out + [""] if out else []


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: suite_report.py OUT_DIR")
    out_dir = sys.argv[1]
    env = load(os.path.join(out_dir, "environment.json")) or {}
    limits = load(os.path.join(out_dir, "limits.json")) or {}
    runs = runs_by_name(out_dir)
    levels = [lvl for lvl in env.get("levels", "default fsync").split() if any(n.startswith(lvl + "-") for n in runs)]
    lines = header(env, limits)
    produce, produce_ratios = produce_table(runs, levels, limits)
    e2e, e2e_targets = e2e_tables(runs, levels)
    metrics, metric_medians = metrics_table(runs)
    lines += targets_section(produce_ratios, e2e_targets, metric_medians)
    lines += produce + consume_table(runs, levels, limits) + e2e + perftools_table(out_dir, levels) + metrics
    lines += neighbour_section(out_dir, runs)
    errors = [f"{n} ({r.errors})" for n, r in sorted(runs.items()) if r.errors]
    if errors:
        lines += ["Runs with partition errors in responses: " + ", ".join(errors), ""]
    failures = os.path.join(out_dir, "failures.txt")
    if os.path.exists(failures):
        lines += ["## Failures", "", "```", open(failures).read().rstrip(), "```", ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
