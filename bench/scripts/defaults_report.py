#!/usr/bin/env python3
"""Turns the `defaults` part of bench/scripts/suite.sh (issue 19) into defaults.md (markdown on stdout).

Reads perftools/defaults-*.txt (Kafka's ProducerPerformance / ConsumerPerformance with the Java client's
defaults), runs/defaults-*.json and runs/*-e2e-*.json (ringbroker-bench --json) and limits.json, and prints one
table per target of issue 19 with both brokers' figures, the ratio and whether the target is met. A figure that
is missing (a failed run, a part not run) is shown as "-" and its target as "not measured". Standard library only.

    python3 bench/scripts/defaults_report.py OUT_DIR > OUT_DIR/defaults.md
"""

import glob
import json
import os
import re
import sys

# Target 1: ringbroker's records/s with the Java defaults at least this many times Kafka's.
MAX_RATIO_TARGET = 2.0
# Targets 1 and 3: ringbroker's p99 at the same offered load at most this share of Kafka's.
P99_RATIO_TARGET = 0.2
# Target 1: 64 KiB batches at least this share of the device's O_DIRECT write bandwidth.
MEDIUM_DISK_SHARE_TARGET = 0.85
# Target 2: catch-up reads at least this many times Kafka's MB/s ...
CATCHUP_RATIO_TARGET = 1.5
# ... and, from a cold page cache, at least this share of the device's O_DIRECT read bandwidth.
CATCHUP_DISK_SHARE_TARGET = 0.85
# Target 4: broker CPU per one-record Produce request: half of the 17-20 us (its midpoint).
REQUEST_CPU_TARGET_US = 18.5 / 2

STEADY_LINE = re.compile(
    r"(?P<records>\d+) steady state records sent, (?P<rps>[\d.]+) records/sec \((?P<mbs>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def steady(path):
    """The steady-state line of a ProducerPerformance output, as a dict of floats, or None."""
    try:
        text = open(path).read()
    except OSError:
        return None
    found = None
    for m in STEADY_LINE.finditer(text):
        found = {k: float(v) for k, v in m.groupdict().items()}
    return found


def consumer_fetch_mb_s(path):
    """ConsumerPerformance's fetch.MB.sec (the read rate without the group join), or None."""
    try:
        lines = [line for line in open(path).read().splitlines() if line.strip()]
    except OSError:
        return None
    for i, line in enumerate(lines):
        if line.startswith("start.time") and i + 1 < len(lines):
            header = [h.strip() for h in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            try:
                return float(values[header.index("fetch.MB.sec")])
            except (ValueError, IndexError):
                return None
    return None


def bench_value(out, name, pick):
    j = load_json(os.path.join(out, "runs", name + ".json"))
    if not j:
        return None
    try:
        return pick(j["results"] if "results" in j else j)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def verdict(value, target, at_least):
    if value is None:
        return "not measured"
    ok = value >= target if at_least else value <= target
    return "**met**" if ok else "**missed**"


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def levels_of(out):
    found = set()
    for path in glob.glob(os.path.join(out, "perftools", "defaults-*-kafka-*")) + glob.glob(
        os.path.join(out, "perftools", "defaults-*-ringbroker-*")
    ):
        found.add(os.path.basename(path).split("-")[1])
    return sorted(found)


def producer_tables(out, level):
    P = os.path.join(out, "perftools", f"defaults-{level}")
    rows_max, rows_half = [], []
    for path in sorted(glob.glob(f"{P}-kafka-max-*.txt")):
        workload = path[len(f"{P}-kafka-max-") : -len(".txt")]  # e.g. 1024-p1
        size, parts = workload.split("-p")
        k = steady(f"{P}-kafka-max-{workload}.txt")
        r = steady(f"{P}-ringbroker-max-{workload}.txt")
        kr, rr = (k or {}).get("rps"), (r or {}).get("rps")
        rows_max.append((size, parts, kr, rr, ratio(rr, kr)))
        kh = steady(f"{P}-kafka-half-{workload}.txt")
        rh = steady(f"{P}-ringbroker-half-{workload}.txt")
        try:
            half = int(open(f"{P}-half-rate-{workload}.txt").read().strip())
        except (OSError, ValueError):
            half = None
        kp, rp = (kh or {}).get("p99"), (rh or {}).get("p99")
        rows_half.append((size, parts, half, (kh or {}).get("rps"), (rh or {}).get("rps"), kp, rp, ratio(rp, kp)))
    print(f"### ProducerPerformance with the Java client's defaults, unthrottled ({level})\n")
    print(f"Target: ringbroker at least {MAX_RATIO_TARGET:g}x Kafka's steady-state records/s.\n")
    print("| record | partitions | Kafka records/s | ringbroker records/s | ratio | target |")
    print("|---|---|---|---|---|---|")
    for size, parts, kr, rr, q in rows_max:
        print(f"| {size} B | {parts} | {fmt(kr)} | {fmt(rr)} | {fmt(q, 2)} | {verdict(q, MAX_RATIO_TARGET, True)} |")
    print()
    print(f"### ProducerPerformance at half of Kafka's max rate: steady-state p99 ({level})\n")
    print(f"Target: ringbroker's p99 at most {P99_RATIO_TARGET:g}x Kafka's (ProducerPerformance reports whole ms).\n")
    print("| record | partitions | offered records/s | Kafka achieved | ringbroker achieved | Kafka p99 ms | ringbroker p99 ms | ratio | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, parts, half, ka, ra, kp, rp, q in rows_half:
        print(
            f"| {size} B | {parts} | {fmt(half)} | {fmt(ka)} | {fmt(ra)} | {fmt(kp)} | {fmt(rp)} | {fmt(q, 2)} | "
            f"{verdict(q, P99_RATIO_TARGET, False)} |"
        )
    print()


def catchup_table(out, level, limits):
    P = os.path.join(out, "perftools", f"defaults-{level}")
    disk_read = (limits or {}).get("disk_read_mb_s")
    print(f"### Catch-up reads of the backlog ({level})\n")
    print(
        f"Targets: ringbroker at least {CATCHUP_RATIO_TARGET:g}x Kafka's MB/s; cold (page cache dropped) also at least "
        f"{CATCHUP_DISK_SHARE_TARGET:.0%} of the device's O_DIRECT read bandwidth ({fmt(disk_read)} MB/s, limits part).\n"
    )
    print("| reader | cache | Kafka MB/s | ringbroker MB/s | ratio | target | share of device read | target |")
    print("|---|---|---|---|---|---|---|---|")
    for cache in ("hot", "cold"):
        kc = consumer_fetch_mb_s(f"{P}-kafka-catchup-{cache}.txt")
        rc = consumer_fetch_mb_s(f"{P}-ringbroker-catchup-{cache}.txt")
        kb = bench_value(out, f"defaults-{level}-kafka-catchup-{cache}", lambda j: j["consume"]["mb_per_s"])
        rb = bench_value(out, f"defaults-{level}-ringbroker-catchup-{cache}", lambda j: j["consume"]["mb_per_s"])
        for reader, k, r in (("ConsumerPerformance (fetch.MB.sec)", kc, rc), ("ringbroker-bench consume", kb, rb)):
            q = ratio(r, k)
            share = ratio(r, disk_read) if cache == "cold" else None
            share_verdict = verdict(share, CATCHUP_DISK_SHARE_TARGET, True) if cache == "cold" else "-"
            print(
                f"| {reader} | {cache} | {fmt(k, 1)} | {fmt(r, 1)} | {fmt(q, 2)} | {verdict(q, CATCHUP_RATIO_TARGET, True)} | "
                f"{fmt(share * 100 if share is not None else None, 0)}{'%' if share is not None else ''} | {share_verdict} |"
            )
    print()


def medium_and_request_tables(out, level, limits):
    disk_write = (limits or {}).get("disk_write_mb_s")
    k = bench_value(out, f"defaults-{level}-kafka-medium", lambda j: j["produce"]["mb_per_s"])
    r = bench_value(out, f"defaults-{level}-ringbroker-medium", lambda j: j["produce"]["mb_per_s"])
    share = ratio(r, disk_write)
    print(f"### 64 KiB batches, 4 partitions, acks=1 (`ringbroker-bench produce`, {level})\n")
    print(f"Target: ringbroker at least {MEDIUM_DISK_SHARE_TARGET:.0%} of the O_DIRECT write bandwidth ({fmt(disk_write)} MB/s).\n")
    print("| Kafka MB/s | ringbroker MB/s | ratio to Kafka | share of device write | target |")
    print("|---|---|---|---|---|")
    print(
        f"| {fmt(k, 1)} | {fmt(r, 1)} | {fmt(ratio(r, k), 2)} | "
        f"{fmt(share * 100 if share is not None else None)}{'%' if share is not None else ''} | "
        f"{verdict(share, MEDIUM_DISK_SHARE_TARGET, True)} |\n"
    )

    def per_request_us(j):
        records = j["produce"]["records"]
        return j["broker_cpu_s"] * 1e6 / records if j.get("broker_cpu_s") is not None and records else None

    kq = bench_value(out, f"defaults-{level}-kafka-request", per_request_us)
    rq = bench_value(out, f"defaults-{level}-ringbroker-request", per_request_us)
    print(f"### Broker CPU per one-record Produce request ({level}, `--batch-size 1`, acks=1, 1 partition)\n")
    print(f"Target: ringbroker at most {REQUEST_CPU_TARGET_US:.2f} us (half of the issue's 17-20 us). CPU from /proc (user + system).\n")
    print("| Kafka us/request | ringbroker us/request | ratio | target |")
    print("|---|---|---|---|")
    print(f"| {fmt(kq, 1)} | {fmt(rq, 1)} | {fmt(ratio(rq, kq), 2)} | {verdict(rq, REQUEST_CPU_TARGET_US, False)} |\n")


def tail_read_table(out, level):
    """Target 3 from the e2e and sweep parts: e2e p99 at half of the slower broker's max."""
    maxes = {}
    for broker in ("kafka", "ringbroker"):
        best = [
            bench_value(out, f"{level}-{broker}-e2e-max{a}", lambda j: j["produce"]["records_per_s"]) for a in (1, 2)
        ]
        best = [b for b in best if b]
        if best:
            maxes[broker] = max(best)
    print(f"### Tail reads: e2e p99 at half of the slower broker's max (e2e and sweep parts, {level})\n")
    if len(maxes) < 2:
        print("Not measured (run the e2e and sweep parts).\n")
        return
    half = int(round(min(maxes.values()) * 0.5, -2))
    p99 = {
        b: bench_value(out, f"{level}-{b}-e2e-rate{half}", lambda j: j["e2e_latency"]["p99_us"])
        for b in ("kafka", "ringbroker")
    }
    q = ratio(p99["ringbroker"], p99["kafka"])
    print(f"Target: ringbroker's p99 at most {P99_RATIO_TARGET:g}x Kafka's.\n")
    print("| offered records/s | Kafka p99 us | ringbroker p99 us | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| {fmt(half)} | {fmt(p99['kafka'])} | {fmt(p99['ringbroker'])} | {fmt(q, 2)} | {verdict(q, P99_RATIO_TARGET, False)} |\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ringbroker-suite"
    env = load_json(os.path.join(out, "environment.json")) or {}
    limits = load_json(os.path.join(out, "limits.json"))
    print("# Issue 19 targets: Kafka's perf tools with the Java client's defaults, catch-up and tail reads\n")
    print(
        f"Commit {env.get('git_commit', '?')}, {env.get('started_utc', '?')}, {env.get('nproc', '?')} cores, "
        f"load average {env.get('load_average_at_start', '?')} at the start and {env.get('load_average_at_end', '?')} "
        f"at the end; both brokers on core {env.get('broker_core', '?')}, the tools on core {env.get('bench_core', '?')}.\n"
    )
    levels = levels_of(out)
    if not levels:
        print("No `defaults` runs found (PARTS must include defaults).")
        return
    for level in levels:
        print(f"## Level {level}\n")
        producer_tables(out, level)
        catchup_table(out, level, limits)
        medium_and_request_tables(out, level, limits)
        tail_read_table(out, level)


if __name__ == "__main__":
    main()
