"""The `bitsandbytes` check and fix against real interpreters, through the command line.

The dry-run test puts a broken fixture into a real (pip-less) venv. The slow test installs
the real bitsandbytes 0.50.2 and CPU torch 2.13.0 wheels into a temporary venv, diagnoses
it (``--deep`` included), breaks it with bitsandbytes 0.42.0, repairs it with ``fix
--bitsandbytes`` (whose smoke test then runs on the CPU backend), and undoes the repair.
It never reaches the internet: the wheels come from the folder named by
``LLMDOCTOR_BNB_WHEELS``, which ``.ci/run`` fills; without it the test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bnb_trees import compile_library, make_bitsandbytes, make_distribution, make_torch

WHEELS = os.environ.get("LLMDOCTOR_BNB_WHEELS")


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3.*/site-packages")
    return found


def findings_of(report) -> dict:
    return {f["id"]: f for c in report["checks"] for f in c["findings"]}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the fixture's libraries")
def test_dry_run_on_a_broken_fixture_prints_the_exact_plan(cli, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = site_packages(venv)
    make_bitsandbytes(site, "0.42.0", compile_library(tmp_path / "stub", "libstub.so"))
    make_distribution(site, "bitsandbytes-cuda117", "0.26.0")
    make_torch(site, None)
    python = str(venv / "bin" / "python")

    report = cli("check", "--only", "bitsandbytes", "--json", "--python", python)
    assert report.code == 1
    assert set(findings_of(report.json())) == {"bitsandbytes.conflicting-distribution",
                                              "bitsandbytes.no-cpu-backend"}

    release = "0.50.2" if sys.version_info >= (3, 10) else "0.48.2"  # 0.49+ need Python 3.10
    dry = cli("fix", "--bitsandbytes", "--dry-run", "--python", python)
    assert dry.code == 0, dry.output
    script = dry.stdout.split("The plan as a bash script:\n", 1)[1].splitlines()
    assert script[:6] == [
        "# llmdoctor fix bitsandbytes: make bitsandbytes load a native library that works here",
        "set -euo pipefail",
        "# pip uninstall bitsandbytes-cuda117 bitsandbytes",
        f"{python} -m pip uninstall -y bitsandbytes-cuda117 bitsandbytes",
        f"# pip install bitsandbytes=={release} torch==2.13.0+cpu",
        f"{python} -m pip install bitsandbytes=={release} torch==2.13.0+cpu",
    ]
    assert f"bitsandbytes 0.42.0 -> {release}" in dry.stdout
    assert (site / "bitsandbytes-cuda117-0.26.0.dist-info").exists() or \
        (site / "bitsandbytes_cuda117-0.26.0.dist-info").exists()  # nothing changed


def python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    return shutil.which("python3.11") or pytest.skip("needs Python 3.11 (the CPU torch wheel is cp311)")


@pytest.mark.slow
@pytest.mark.skipif(not WHEELS, reason="set LLMDOCTOR_BNB_WHEELS to a folder of wheels (.ci/run does)")
def test_real_wheels_diagnose_repair_and_undo(cli, tmp_path):
    wheels = Path(WHEELS)
    for pattern in ("bitsandbytes-0.50.2-*.whl", "bitsandbytes-0.42.0-*.whl", "torch-2.13.0+cpu-*.whl"):
        assert list(wheels.glob(pattern)), f"{pattern} is missing from {wheels}"
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    venv = tmp_path / "venv"
    subprocess.run([python311(), "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")

    def pip(*args):
        subprocess.run([python, "-m", "pip", "install", "-q", *args], check=True, timeout=900,
                       env=dict(os.environ, **offline))

    def installed_bitsandbytes() -> str:
        return subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('bitsandbytes'))"],
                              capture_output=True, text=True, timeout=60).stdout.strip()

    # 1. the real 0.50.2 beside a CPU torch: the CPU backend, and `python -m bitsandbytes` agrees
    pip("torch==2.13.0", "bitsandbytes==0.50.2")
    healthy = cli("check", "--only", "bitsandbytes", "--json", "--deep", "--python", python, timeout=300)
    assert healthy.code == 0, healthy.output
    found = findings_of(healthy.json())
    assert found["bitsandbytes.cpu"]["message"] == \
        "bitsandbytes 0.50.2 will load libbitsandbytes_cpu.so (no GPU for torch: CPU backend)"
    assert found["bitsandbytes.diagnostics-cpu"]["severity"] == "ok"
    snapshot = tmp_path / "snapshot.json"
    assert cli("collect", "--only", "bitsandbytes", "--python", python, "-o", str(snapshot)).code == 0
    facts = json.loads(snapshot.read_text())["facts"]["bitsandbytes"]
    assert {"libbitsandbytes_cpu.so", "libbitsandbytes_cuda128.so", "libbitsandbytes_cuda130.so"} <= set(facts["files"])
    assert facts["libraries"]["libbitsandbytes_cpu.so"]["missing"] == []  # the real wheel's ELF, resolved

    # 2. broken: 0.42.0 has no CPU kernels at all
    pip("bitsandbytes==0.42.0")
    broken = cli("check", "--only", "bitsandbytes", "--json", "--python", python)
    assert broken.code == 1 and "bitsandbytes.no-cpu-backend" in findings_of(broken.json())

    dry = cli("fix", "--bitsandbytes", "--dry-run", "--python", python)
    assert f"{python} -m pip install bitsandbytes==0.50.2 torch==2.13.0+cpu" in dry.stdout.splitlines()

    # 3. repaired, verified by the check and the smoke test on the CPU backend
    applied = cli("fix", "--bitsandbytes", "--yes", "--python", python, env=offline, timeout=900)
    assert applied.code == 0, applied.output
    assert "✓ bitsandbytes: fixed" in applied.stdout
    assert installed_bitsandbytes() == "0.50.2"
    smoke = cli("smoke", "--only", "bitsandbytes", "--json", "--python", python, timeout=600).json()["smoke"]
    assert smoke[0]["status"] == "pass", smoke
    assert smoke[0]["figures"]["nf4_mean_abs_error"] < 0.15 and "8-bit Adam step" in smoke[0]["message"]
    assert cli("check", "--only", "bitsandbytes", "--python", python).code == 0

    # 4. undo reinstalls what was there
    undone = cli("undo", "--yes", env=offline, timeout=900)
    assert undone.code == 0, undone.output
    assert installed_bitsandbytes() == "0.42.0"
