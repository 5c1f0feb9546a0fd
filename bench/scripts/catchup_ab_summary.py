#!/usr/bin/env python3
"""Summarizes a bench/scripts/catchup-ab.sh directory: per pass (cold, warm), catch-up consume throughput (MB/s
of record batches) and broker CPU per GB consumed, before and after; the per-pair change (mean, standard error,
min..max). Standard library only.

    python3 bench/scripts/catchup_ab_summary.py OUT_DIR
"""

import glob
import json
import math
import os
import statistics
import sys


def main(out_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(out_dir, "runs", "*.json"))):
        which, pair, side = os.path.basename(path)[:-5].rsplit("-", 2)
        with open(path) as f:
            result = json.load(f)["results"]
        consumed = result["consume"]
        runs.setdefault(which, {}).setdefault(int(pair), {})[side] = {
            "mb_s": consumed["mb_per_s"],
            "cpu_s_gb": (result.get("broker_cpu_s") or float("nan")) / (consumed["bytes"] / 1e9),
        }
    print(f"# catch-up consume, before vs after ({out_dir})\n")
    print("| pass | pairs | MB/s before (median) | after | MB/s change per pair: mean (SE) [min..max] "
          "| broker CPU s/GB before | after |")
    print("|---|---|---|---|---|---|---|")
    for which, pairs in runs.items():
        pairs = {p: s for p, s in pairs.items() if {"before", "after"} <= s.keys()}
        if not pairs:
            continue
        change = [(s["after"]["mb_s"] / s["before"]["mb_s"] - 1) * 100 for s in pairs.values()]
        mean = statistics.fmean(change)
        se = statistics.stdev(change) / math.sqrt(len(change)) if len(change) > 1 else float("nan")
        med = lambda side, key: statistics.median(s[side][key] for s in pairs.values())
        print(f"| {which} | {len(pairs)} | {med('before', 'mb_s'):.0f} | {med('after', 'mb_s'):.0f} "
              f"| {mean:+.1f}% ({se:.1f}) [{min(change):+.1f}..{max(change):+.1f}] "
              f"| {med('before', 'cpu_s_gb'):.2f} | {med('after', 'cpu_s_gb'):.2f} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
