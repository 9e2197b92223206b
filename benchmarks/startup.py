"""Start-up and scaling figures: what a user waits for, beside `python -c pass` and
`python -m torch.utils.collect_env` in the same interleaved run (machines are shared and noisy).

Run from a (non-editable) environment that has llmdoctor, and torch for the comparison:
    python benchmarks/startup.py [--runs 15] [--no-scaling]
The environment is the target interpreter, as when it is activated ($VIRTUAL_ENV).

Part 1 runs each command as a fresh process, in turn (A B C A B C ...), and prints medians and
ratios. The targets (issue 15, medians on a 2-core machine): `check --only path` <= 0.10 s,
`check --offline` <= 0.18 s and at least 7x faster than collect_env, `--help` <= 0.06 s.

Part 2 times each dimension at n and 10n (PATH entries, installed distributions, model
layers, string length): a ratio near 10 is linear, near 100 quadratic.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"--help": 0.06, "check --only path --offline": 0.10, "check --offline": 0.18}


def llmdoctor() -> str:
    return shutil.which("llmdoctor", path=os.path.dirname(sys.executable)) or "llmdoctor"


def interleaved(commands: dict, runs: int, env: dict) -> dict:
    """{label: [seconds]} of each command, run in turn; the first round only warms caches."""
    timings: dict = {label: [] for label in commands}
    for round_number in range(runs + 1):
        for label, argv in commands.items():
            started = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
            if round_number:
                timings[label].append(time.perf_counter() - started)
    return timings


def part_one(runs: int) -> None:
    # as from an activated venv: the target interpreter (whose packages are diagnosed) is this one,
    # not whatever python3 comes first on PATH (which may start slowly for reasons of its own)
    env = dict(os.environ, VIRTUAL_ENV=os.environ.get("VIRTUAL_ENV") or sys.prefix)
    commands = {"python -c pass": [sys.executable, "-c", "pass"]}
    commands.update({f"llmdoctor {args}": [llmdoctor(), *args.split()] for args in TARGETS})
    has_torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    if has_torch:
        commands["python -m torch.utils.collect_env"] = [sys.executable, "-m", "torch.utils.collect_env"]
    timings = interleaved(commands, runs, env)
    medians = {label: statistics.median(values) for label, values in timings.items()}
    baseline = medians["python -c pass"]
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores, {runs} interleaved rounds "
          f"(load {os.getloadavg()[0]:.2f})\n")
    print(f"{'command':<40}{'median':>9}{'min':>9}{'max':>9}{'x pass':>8}{'target':>9}")
    for label, values in timings.items():
        target = TARGETS.get(label.replace("llmdoctor ", "", 1), None) if label.startswith("llmdoctor") else None
        verdict = "" if target is None else f"{target:.2f}{' ok' if medians[label] <= target else ' MISS'}"
        print(f"{label:<40}{medians[label]:>8.3f}s{min(values):>8.3f}s{max(values):>8.3f}s"
              f"{medians[label] / baseline:>7.1f}x {verdict:>8}")
    if has_torch:
        ratio = medians["python -m torch.utils.collect_env"] / medians["llmdoctor check --offline"]
        print(f"\ncollect_env / check --offline: {ratio:.1f}x (target: at least 7x)")
    else:
        print("\n(torch is not installed here: no collect_env comparison)")


def _median_time(action, repeat: int = 5) -> float:
    values = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        values.append(time.perf_counter() - started)
    return statistics.median(values)


def _path_entries(count: int) -> float:
    """`check --only path` with PATH holding ``count`` missing entries (each reported)."""
    missing = [f"/n/{i}" for i in range(count)]  # short: one variable holds at most 128 KiB
    env = dict(os.environ, PATH=":".join(missing + ["/usr/bin", "/bin"]))
    argv = [llmdoctor(), "check", "--only", "path", "--offline", "--json"]
    return _median_time(lambda: subprocess.run(argv, env=env, capture_output=True, check=False), 3)


def _distributions(count: int, root: Path) -> float:
    """The plugin scan (cache cold) over ``count`` extra installed distributions."""
    site = root / f"site-{count}"
    for i in range(count):
        info = site / f"fake_dist_{i}-1.0.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-dist-{i}\nVersion: 1.0\n")
    code = "from llmdoctor.registry import _scan_distributions as s; s(('llmdoctor.checks', 'llmdoctor.fixes'))"
    env = dict(os.environ, PYTHONPATH=str(site))
    return _median_time(lambda: subprocess.run([sys.executable, "-c", code], env=env, check=False), 3)


def _layers(count: int) -> float:
    """`fit`'s placement over four GPUs for a model of ``count`` blocks (a name's shape, stretched)."""
    from dataclasses import replace

    from llmdoctor.fit import fit
    from llmdoctor.model_sources import from_name

    base = from_name("llama-3-8b-q4_k_m")
    per_layer = {name: [getattr(base, name)[0]] * count for name in ("n_head", "n_head_kv", "layer_bytes")}
    spec = replace(base, n_layer=count, expert_bytes=[0] * count, **per_layer)
    gpus = [{"name": f"GPU {i}", "memory_free_bytes": 24 * 2**30, "bandwidth_gb_s": 900.0} for i in range(4)]
    return _median_time(lambda: fit(spec, gpus, 64 * 2**30, ctx=4096))


def _string_length(length: int) -> float:
    from llmdoctor.redact import Redactor

    redactor = Redactor.from_environment()
    text = "a1+.-" * (length // 5)
    return _median_time(lambda: redactor.text(text))


def part_two() -> None:
    print("\nscaling (time at 10n / time at n; ~10 is linear, ~100 quadratic)")
    with tempfile.TemporaryDirectory() as folder:
        rows = [
            ("PATH entries (check --only path)", _path_entries, 1_000),
            ("installed distributions (plugin scan)", lambda n: _distributions(n, Path(folder)), 1_000),
            ("model layers (fit placement, 4 GPUs)", _layers, 100),
            ("redacted string length", _string_length, 16_000),
        ]
        for label, measure, n in rows:
            small, large = measure(n), measure(10 * n)
            print(f"  {label:<40} n={n:>6,}: {small * 1000:8.1f} ms  10n: {large * 1000:8.1f} ms  "
                  f"ratio {large / small:5.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-scaling", action="store_true")
    args = parser.parse_args()
    part_one(args.runs)
    if not args.no_scaling:
        part_two()


if __name__ == "__main__":
    main()
