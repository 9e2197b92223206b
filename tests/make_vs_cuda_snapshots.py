"""Writes the recorded Windows snapshots of the `vs-cuda` check under tests/data/ (run from
the repository root: ``python tests/make_vs_cuda_snapshots.py``). Each is the probe's facts
over a scenario tree of tests/vs_trees.py, with its paths rewritten to C:\\ as on the
Windows machine it models. They are committed; test_vs_cuda.py checks they still match."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from vs_trees import as_windows, probe_scenario  # noqa: E402

SNAPSHOTS = {"windows-vs-cuda-healthy.json": "healthy",
             "windows-vs-cuda-missing-integration.json": "cuda-before-vs",
             "windows-vs-cuda-msvc-too-new.json": "msvc-too-new"}
CWD = "C:\\Users\\ada\\projects\\chat"


def snapshot(scenario: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        facts = as_windows(probe_scenario(scenario, root, cwd=CWD), root)
    return {
        "schema": 1, "kind": "llmdoctor-snapshot", "llmdoctor_version": "0.1.0",
        "created": "2026-11-27T10:00:00+00:00",
        "platform": {"system": "windows", "release": "11", "version": "10.0.26100", "machine": "AMD64",
                     "python": "3.12.7", "python_executable": "C:\\Users\\ada\\miniconda3\\python.exe",
                     "is_admin": False, "wsl": False, "notebook": ""},
        "target": {"executable": "C:\\Users\\ada\\miniconda3\\python.exe", "version": "3.12.7",
                   "packages": {"torch": "2.5.1+cu124"}},
        "facts": {"vs-cuda": facts},
        "probes": {"vs-cuda": {"duration_ms": 180.0}},
    }


def main() -> None:
    data = Path(__file__).parent / "data"
    for name, scenario in SNAPSHOTS.items():
        (data / name).write_text(json.dumps(snapshot(scenario), indent=1, sort_keys=True) + "\n")
        print(f"wrote {data / name}")


if __name__ == "__main__":
    main()
