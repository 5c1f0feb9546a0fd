#!/usr/bin/env python3
"""Summarizes a bench/scripts/metrics-ab.sh directory: broker CPU per request and throughput, metrics on vs
off, per pair and overall (mean, standard error, median, and the upper end of a 95% interval of the mean CPU
cost, which is what "under 3%" is judged on). Standard library only.

    python3 bench/scripts/metrics_ab_summary.py OUT_DIR
"""

import glob
import json
import math
import os
import statistics
import sys

# Issue 7: metrics may cost the hot path at most this share of broker CPU.
TARGET_PERCENT = 3.0
# Two-sided 95% Student t quantiles by degrees of freedom (df > 30 uses the normal 1.96).
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23,
       11: 2.20, 12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13, 16: 2.12, 17: 2.11, 18: 2.10, 19: 2.09, 20: 2.09,
       25: 2.06, 30: 2.04}


def t95(df):
    return T95.get(df) or next((T95[d] for d in sorted(T95) if d >= df), 1.96)


def load_runs(out_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out_dir, "runs", "*.json"))):
        pair, mode = os.path.basename(path)[:-5].split("-")
        with open(path) as f:
            result = json.load(f)["results"]
        produced = result["produce"]
        requests = produced["records"] / max(1, result_records_per_request(path))
        runs.setdefault(int(pair), {})[mode] = {
            "cpu_s": result["broker_cpu_s"],
            "records": produced["records"],
            "requests": requests,
            "us_per_request": result["broker_cpu_s"] / requests * 1e6,
            "mb_s": produced["mb_per_s"],
        }
    return {pair: modes for pair, modes in runs.items() if {"on", "off"} <= modes.keys()}


def result_records_per_request(path):
    with open(path) as f:
        return json.load(f)["derived"]["records_per_batch"]


def mean_se(values):
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return mean, se


def main(out_dir):
    pairs = load_runs(out_dir)
    if not pairs:
        sys.exit(f"no complete on/off pairs in {out_dir}/runs")
    print(f"# metrics on vs off: {len(pairs)} pairs ({out_dir})\n")
    print("| pair | CPU µs/request on | off | CPU cost | MB/s on | off | MB/s change |")
    print("|---|---|---|---|---|---|---|")
    cpu_costs, mb_changes = [], []
    for pair, m in sorted(pairs.items()):
        cost = (m["on"]["us_per_request"] / m["off"]["us_per_request"] - 1) * 100
        change = (m["on"]["mb_s"] / m["off"]["mb_s"] - 1) * 100
        cpu_costs.append(cost)
        mb_changes.append(change)
        print(f"| {pair} | {m['on']['us_per_request']:.2f} | {m['off']['us_per_request']:.2f} | {cost:+.1f}% "
              f"| {m['on']['mb_s']:.1f} | {m['off']['mb_s']:.1f} | {change:+.1f}% |")
    on_us = statistics.median(m["on"]["us_per_request"] for m in pairs.values())
    off_us = statistics.median(m["off"]["us_per_request"] for m in pairs.values())
    cpu_mean, cpu_se = mean_se(cpu_costs)
    mb_mean, mb_se = mean_se(mb_changes)
    upper = cpu_mean + t95(len(cpu_costs) - 1) * cpu_se
    print()
    print(f"- broker CPU per request, median: on {on_us:.2f} µs, off {off_us:.2f} µs "
          f"({(on_us / off_us - 1) * 100:+.1f}%)")
    print(f"- CPU cost per pair: mean {cpu_mean:+.2f}% (standard error {cpu_se:.2f}%), "
          f"median {statistics.median(cpu_costs):+.2f}%, 95% interval of the mean up to {upper:+.2f}%")
    print(f"- MB/s change per pair: mean {mb_mean:+.2f}% (standard error {mb_se:.2f}%)")
    verdict = "met" if upper < TARGET_PERCENT else "not proven"
    print(f"- target: CPU cost under {TARGET_PERCENT:.0f}% with 95% confidence: {verdict}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
