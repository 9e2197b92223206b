"""``llmdoctor fit`` on a 20 GB GGUF: time and peak memory, beside ``python -c pass``.

    python benchmarks/fit_large_gguf.py [--runs 15]

Writes a sparse GGUF with Qwen2.5-32B's shape in Q4_K (64 layers, 771 tensors, about 19 GB
of data that is never written: fit reads the header only) into a temporary folder, then
runs ``python -m llmdoctor fit FILE --json`` and ``python -c pass`` alternately (the machine
is shared and noisy, so each fit run has a baseline run beside it) and prints the medians,
the difference, and the peak RSS of the fit process (ru_maxrss of the child). The targets
from issue 18: at most 0.3 s and 64 MB. Needs the ``gguf`` package (the test extra).
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


def run(argv: list) -> tuple:
    """(seconds, peak RSS in bytes) of one fresh process."""
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, dict(os.environ, LLMDOCTOR_OFFLINE="1"),
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
    _, _, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - started
    return elapsed, usage.ru_maxrss * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    from gguf_models import write_gguf

    with tempfile.TemporaryDirectory(prefix="fit-bench-") as folder:
        path = write_gguf(Path(folder) / "Qwen2.5-32B-Q4_K.gguf", "qwen2", 64, 5120, 40, 8, 27648, 152064,
                          ctx=32768)
        size = path.stat().st_size
        fit_argv = [sys.executable, "-m", "llmdoctor", "fit", str(path), "--json"]
        base_argv = [sys.executable, "-c", "pass"]
        run(fit_argv)  # warm the page cache and the byte-code cache
        fits, bases, peaks = [], [], []
        for _ in range(args.runs):
            seconds, peak = run(fit_argv)
            fits.append(seconds)
            peaks.append(peak)
            bases.append(run(base_argv)[0])
    fit_median, base_median = statistics.median(fits), statistics.median(bases)
    print(f"file: {size / 1e9:.1f} GB (sparse), {args.runs} interleaved runs each")
    print(f"llmdoctor fit --json: median {fit_median * 1000:.0f} ms (min {min(fits) * 1000:.0f}, "
          f"max {max(fits) * 1000:.0f}); target 300 ms")
    print(f"python -c pass:       median {base_median * 1000:.0f} ms; fit is {fit_median / base_median:.1f}x that")
    print(f"peak RSS of fit: {max(peaks) / 2**20:.1f} MiB (median {statistics.median(peaks) / 2**20:.1f}); "
          f"target 64 MB ({64e6 / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
