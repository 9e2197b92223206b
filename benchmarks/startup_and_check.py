"""Measures what users feel: `llmdoctor --help` and `llmdoctor check` wall time.

Run from an environment where llmdoctor is installed:
    python benchmarks/startup_and_check.py [--runs 15]
Prints the median and spread of each command, run as a fresh process each time, plus the
slowest imports of `llmdoctor --help` (python -X importtime).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

TARGETS = {"llmdoctor --help": 0.25, "llmdoctor check": 0.5, "llmdoctor check --json": 0.5}


def command_for(label: str) -> list:
    executable = shutil.which("llmdoctor") or os.path.join(os.path.dirname(sys.executable), "llmdoctor")
    return [executable, *label.split()[1:]]


def time_command(argv: list, runs: int) -> list:
    timings = []
    for _ in range(runs + 1):  # the first run warms the page cache and is dropped
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        timings.append(time.perf_counter() - started)
    return timings[1:]


def slowest_imports(count: int = 8) -> list:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "llmdoctor", "--help"],
                            capture_output=True, text=True)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        try:
            _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
            rows.append((int(cumulative), name))
        except ValueError:
            continue
    top_level = [(c, n) for c, n in rows if not n.startswith(" ")]
    return sorted(top_level, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores; {args.runs} runs each\n")
    print(f"{'command':<26}{'median':>9}{'min':>9}{'max':>9}{'target':>9}")
    for label, target in TARGETS.items():
        timings = time_command(command_for(label), args.runs)
        median = statistics.median(timings)
        verdict = "ok" if median <= target else "SLOW"
        print(f"{label:<26}{median * 1000:>7.0f}ms{min(timings) * 1000:>7.0f}ms"
              f"{max(timings) * 1000:>7.0f}ms{target * 1000:>7.0f}ms  {verdict}")
    print("\nslowest top-level imports of `llmdoctor --help` (cumulative):")
    for cumulative, name in slowest_imports():
        print(f"  {cumulative / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
