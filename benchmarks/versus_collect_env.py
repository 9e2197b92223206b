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


def interleaved_medians(commands: list, runs: int) -> list:
    """Median seconds of each command, run in turn (A B A B ...) so that a noisy machine
    slows both alike; the first round only warms the page cache."""
    timings: list = [[] for _ in commands]
    for round_number in range(runs + 1):
        for index, argv in enumerate(commands):
            started = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if round_number:
                timings[index].append(time.perf_counter() - started)
    return [statistics.median(t) for t in timings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    bindir = os.path.dirname(sys.executable)
    ours, theirs = interleaved_medians([[os.path.join(bindir, "llmdoctor"), "check"],
                                        [sys.executable, "-m", "torch.utils.collect_env"]], args.runs)
    listing = subprocess.run([os.path.join(bindir, "llmdoctor"), "list", "--json"], capture_output=True, text=True)
    checks = len(json.loads(listing.stdout)["checks"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.runs} runs each")
    print(f"llmdoctor check                   {ours * 1000:8.0f} ms  ({checks} checks, with a diagnosis)")
    print(f"python -m torch.utils.collect_env {theirs * 1000:8.0f} ms  (a dump, no diagnosis)")
    print(f"ratio                             {theirs / ours:8.1f}x faster")


if __name__ == "__main__":
    main()
