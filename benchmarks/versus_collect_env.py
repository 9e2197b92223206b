"""`llmdoctor check` side by side with `python -m torch.utils.collect_env`.

Run in a venv that has both llmdoctor and torch installed:
    python benchmarks/versus_collect_env.py [--runs 7]
Prints each command's median wall time (fresh process each run) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def median_seconds(argv: list, runs: int) -> float:
    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings[1:])  # the first run only warms the page cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    bindir = os.path.dirname(sys.executable)
    ours = median_seconds([os.path.join(bindir, "llmdoctor"), "check"], args.runs)
    theirs = median_seconds([sys.executable, "-m", "torch.utils.collect_env"], args.runs)
    listing = subprocess.run([os.path.join(bindir, "llmdoctor"), "list", "--json"], capture_output=True, text=True)
    checks = len(json.loads(listing.stdout)["checks"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.runs} runs each")
    print(f"llmdoctor check                   {ours * 1000:8.0f} ms  ({checks} checks, with a diagnosis)")
    print(f"python -m torch.utils.collect_env {theirs * 1000:8.0f} ms  (a dump, no diagnosis)")
    print(f"ratio                             {theirs / ours:8.1f}x faster")


if __name__ == "__main__":
    main()
