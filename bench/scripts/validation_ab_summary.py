#!/usr/bin/env python3
"""Summarizes a bench/scripts/validation-ab.sh directory: per workload, produce throughput (MB/s of record
batches) and broker CPU per GB of record payload (key + value bytes, what the producer compressed), before and
after record validation; the per-pair change (mean, standard error, min..max: the spread), and the medians.
Standard library only.

    python3 bench/scripts/validation_ab_summary.py OUT_DIR
"""

import glob
import json
import math
import os
import statistics
import sys


def load(out_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out_dir, "runs", "*.json"))):
        workload, pair, side = os.path.basename(path)[:-5].rsplit("-", 2)
        with open(path) as f:
            data = json.load(f)
        result = data["results"]
        produced = result["produce"]
        record_size = data["parameters"]["record_size"]
        payload_gb = produced["records"] * record_size / 1e9
        runs.setdefault(workload, {}).setdefault(int(pair), {})[side] = {
            "mb_s": produced["mb_per_s"],
            "cpu_s": result.get("broker_cpu_s"),
            "payload_gb": payload_gb,
            "batch_gb": produced["bytes"] / 1e9,
        }
    return runs


def mean_se(values):
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return mean, se


def cpu_per_gb(run):
    return run["cpu_s"] / run["payload_gb"] if run["cpu_s"] and run["payload_gb"] else float("nan")


def main(out_dir):
    runs = load(out_dir)
    if not runs:
        sys.exit(f"no runs in {out_dir}/runs")
    print(f"# record validation, before vs after ({out_dir})\n")
    print("| workload | pairs | MB/s before (median) | after | MB/s change per pair: mean (SE) [min..max] "
          "| broker CPU s/GB payload before | after | CPU change per pair: mean (SE) [min..max] |")
    print("|---|---|---|---|---|---|---|---|")
    for workload, pairs in runs.items():
        pairs = {p: s for p, s in pairs.items() if {"before", "after"} <= s.keys()}
        if not pairs:
            continue
        mb = [(s["after"]["mb_s"] / s["before"]["mb_s"] - 1) * 100 for s in pairs.values()]
        cpu = [(cpu_per_gb(s["after"]) / cpu_per_gb(s["before"]) - 1) * 100 for s in pairs.values()]
        mb_mean, mb_se = mean_se(mb)
        cpu_mean, cpu_se = mean_se(cpu)
        med = lambda side, f: statistics.median(f(s[side]) for s in pairs.values())
        print(f"| {workload} | {len(pairs)} | {med('before', lambda r: r['mb_s']):.0f} "
              f"| {med('after', lambda r: r['mb_s']):.0f} | {mb_mean:+.1f}% ({mb_se:.1f}) [{min(mb):+.1f}..{max(mb):+.1f}] "
              f"| {med('before', cpu_per_gb):.2f} | {med('after', cpu_per_gb):.2f} "
              f"| {cpu_mean:+.1f}% ({cpu_se:.1f}) [{min(cpu):+.1f}..{max(cpu):+.1f}] |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
