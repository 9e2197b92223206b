"""A fleet of GPU nodes as ``llmdoctor collect`` snapshots, for ``llmdoctor report``.

One real snapshot is taken on this machine with a stand-in NVML (an RTX 4090 on driver
580, tests/gpu_fakes.py), then varied per node the way real fleets drift: an older driver
on every fifth node (535, CUDA 12.2) under a torch built for CUDA 13.0 (an error), torch
2.8/cu128 on every seventh, a nearly full model disk on two nodes, and one node whose
driver does not answer. ``python tests/fleet_snapshots.py DIR [COUNT]`` writes them.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

GB = 10**9


def base_snapshot(folder: Path) -> dict:
    from gpu_fakes import install_fake_pynvml

    env = dict(os.environ, **install_fake_pynvml(folder / "nvml"), LLMDOCTOR_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "llmdoctor", "collect", "--offline"], capture_output=True,
                          text=True, env=env, timeout=120, check=True)
    return json.loads(done.stdout)


def vary(base: dict, index: int) -> dict:
    snapshot = copy.deepcopy(base)
    snapshot["host"] = f"node{index:02d}"
    facts = snapshot["facts"]
    driver = facts["nvidia-driver"]
    if index % 5 == 3:
        driver.update(driver_version="535.104.05", cuda_driver_version=12020)
    else:
        driver.update(driver_version="580.82.07", cuda_driver_version=13000)
    for gpu in driver.get("gpus", []):
        gpu["uuid"] = f"GPU-{index:08d}-0000-0000-0000-000000000000"
        gpu["memory_free_bytes"] = gpu.get("memory_total_bytes", 24 * 2**30) - (index % 4) * 2**30
    if index == 17:
        facts["nvidia-driver"] = {"nvml": "error", "error_code": "NVML_ERROR_DRIVER_NOT_LOADED",
                                  "error": "NVML error 9: Driver Not Loaded", "gpus": [], "wsl": False}
    version, cuda = ("2.8.0+cu128", "12.8") if index % 7 == 5 else ("2.9.0+cu130", "13.0")
    facts["torch"] = {"installed": True, "version": version, "cuda": cuda, "location": "/opt/venv/torch",
                      "python": "/opt/venv/bin/python", "companions": {}}
    if index in (11, 29):
        for location in facts.get("disk", {}).get("locations", []):
            if location.get("role") == "hf_cache":
                location["free_bytes"] = 3 * GB
    return snapshot


def write_fleet(folder: Path, count: int = 40, base: dict = None) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    base = base or base_snapshot(folder)
    paths = []
    for index in range(count):
        path = folder / f"node{index:02d}.json"
        path.write_text(json.dumps(vary(base, index)), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1])
    print(len(write_fleet(target, int(sys.argv[2]) if len(sys.argv) > 2 else 40)), "snapshots in", target)
