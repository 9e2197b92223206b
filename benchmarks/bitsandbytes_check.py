"""What the `bitsandbytes` check costs, against what importing bitsandbytes costs.

    python benchmarks/bitsandbytes_check.py --python /path/to/venv/bin/python [--runs 7]

The target venv needs bitsandbytes (and torch). Prints, as medians over fresh processes:
`llmdoctor check --only bitsandbytes` (reads files, imports nothing), the same with
`--deep` (adds `python -m bitsandbytes`), a bare `import bitsandbytes` in the target, and
the header read of every native library the installed package ships (doctor/binary.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from versus_collect_env import interleaved_medians  # noqa: E402


def library_reads(python: str) -> tuple:
    from llmdoctor.binary import read_library

    folder = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('bitsandbytes')"
                             ".submodule_search_locations[0])"], capture_output=True, text=True).stdout.strip()
    names = sorted(n for n in os.listdir(folder) if n.startswith("libbitsandbytes_"))
    sizes = sum(os.path.getsize(os.path.join(folder, n)) for n in names)
    started = time.perf_counter()
    for name in names:
        read_library(os.path.join(folder, name))
    return len(names), sizes, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the target interpreter, with bitsandbytes installed")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    llmdoctor = os.path.join(os.path.dirname(sys.executable), "llmdoctor")
    check = [llmdoctor, "check", "--only", "bitsandbytes", "--python", args.python]
    medians = interleaved_medians([check, check + ["--deep"], [args.python, "-c", "import bitsandbytes"]], args.runs)
    count, size, seconds = library_reads(args.python)
    print(f"check --only bitsandbytes          {medians[0] * 1000:8.0f} ms")
    print(f"check --only bitsandbytes --deep   {medians[1] * 1000:8.0f} ms")
    print(f"import bitsandbytes (target)       {medians[2] * 1000:8.0f} ms")
    print(f"read headers of {count} libraries ({size / 2**20:.0f} MB): {seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()
