"""``llmdoctor report`` over 250, 500 and 1,000 snapshots: time, peak memory and growth.

    python benchmarks/fleet_report.py [--runs 3]

Writes the fleets with tests/fleet_snapshots.py (one real snapshot of this machine, varied
per node) into a temporary folder, then runs ``llmdoctor report DIR --json --html FILE``
for each size, alternating with ``python -c pass`` in the same loop (the machine is shared
and noisy). Prints the median time and the peak RSS (ru_maxrss of the child) per size, and
how time and memory grow from 250 to 1,000 snapshots (4.0x is linear). The targets from
issue 17: under 5 s and 500 MB at 1,000 snapshots.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SIZES = (250, 500, 1000)


def run(argv: list) -> tuple:
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, dict(os.environ),
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
    _, _, usage = os.wait4(pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from fleet_snapshots import base_snapshot, write_fleet

    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as scratch:
        root = Path(scratch)
        base = base_snapshot(root)
        folders = {}
        for size in SIZES:
            folders[size] = root / f"fleet-{size}"
            write_fleet(folders[size], size, base=base)
        megabytes = sum(p.stat().st_size for p in folders[1000].iterdir()) / 1e6
        results = {size: {"times": [], "peaks": []} for size in SIZES}
        baselines = []
        for _ in range(args.runs):
            for size in SIZES:
                argv = [sys.executable, "-m", "llmdoctor", "report", str(folders[size]), "--json", "--html",
                        str(root / f"report-{size}.html")]
                seconds, peak = run(argv)
                results[size]["times"].append(seconds)
                results[size]["peaks"].append(peak)
                baselines.append(run([sys.executable, "-c", "pass"])[0])
    print(f"{args.runs} runs per size; 1,000 snapshots are {megabytes:.0f} MB of JSON")
    print(f"python -c pass: median {statistics.median(baselines) * 1000:.0f} ms")
    for size in SIZES:
        times, peaks = results[size]["times"], results[size]["peaks"]
        print(f"report over {size:>5} snapshots: median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}), peak RSS {max(peaks) / 2**20:.0f} MiB")
    t = {s: statistics.median(results[s]["times"]) for s in SIZES}
    m = {s: max(results[s]["peaks"]) for s in SIZES}
    start = statistics.median(baselines)
    print(f"growth 250 -> 1,000 (4x the snapshots): time {t[1000] / t[250]:.2f}x, "
          f"time less start-up {(t[1000] - start) / (t[250] - start):.2f}x, memory {m[1000] / m[250]:.2f}x")
    print("targets at 1,000: under 5 s and 500 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
