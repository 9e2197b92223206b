"""The target interpreter: where the user's torch and bitsandbytes live.

llmdoctor often runs from its own pipx environment, so package facts are read by running
a small script in the target interpreter. The script reads metadata only; it never
imports heavy packages.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

from llmdoctor import proc

# Runs inside the target interpreter (any Python 3.7+): versions from metadata, no imports
# of the packages themselves.
PROBE_SCRIPT = r"""
import json, os, sys, platform
# name and version from the .dist-info / .egg-info folder names on sys.path: listing
# folders is several times faster than parsing every METADATA file
packages = {}
for folder in sys.path:
    try:
        names = os.listdir(folder or ".")
    except OSError:
        continue
    for name in names:
        if not name.endswith((".dist-info", ".egg-info")):
            continue
        stem = name.rsplit(".", 1)[0]
        dist, _, version = stem.partition("-")
        version = version.split("-py")[0]
        key = dist.lower().replace("_", "-").replace(".", "-")
        if version and key not in packages:  # the first on sys.path wins, as for imports
            packages[key] = version
paths = []
try:
    import site, sysconfig
    candidates = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    candidates += list(getattr(site, "getsitepackages", lambda: [])())
    if getattr(site, "ENABLE_USER_SITE", False):
        candidates.append(site.getusersitepackages())
    for path in candidates + [p for p in sys.path if p.endswith("-packages")]:
        if path not in paths:
            paths.append(path)
except Exception:
    pass
print(json.dumps({
    "executable": sys.executable,
    "site_packages": paths,
    "version": platform.python_version(),
    "prefix": sys.prefix,
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "implementation": platform.python_implementation(),
    "packages": packages,
    "path": [p for p in sys.path if p],
}))
"""


def default_target_python(env: Optional[dict] = None) -> str:
    """The active venv, else the active conda env, else this interpreter."""
    env = dict(os.environ) if env is None else env
    for variable in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        prefix = env.get(variable)
        if prefix:
            candidate = interpreter_in(Path(prefix))
            if candidate:
                return str(candidate)
    return sys.executable


def interpreter_in(prefix: Path) -> Optional[Path]:
    names = ("Scripts/python.exe", "python.exe") if sys.platform == "win32" else (
        "bin/python", "bin/python3")
    for name in names:
        candidate = prefix / name
        if candidate.exists():
            return candidate
    return None


def probe_target(python: str, timeout: float = 10.0) -> dict:
    # no -I: the user site and PYTHONPATH are part of what the user's programs see; a
    # private, empty working folder keeps planted files (./json.py, /tmp/json.py) from running
    result = proc.run_python([python, "-c", PROBE_SCRIPT], timeout=timeout, max_output=8 * 1024 * 1024)
    if result.truncated:
        return {"requested": python, "error": "the target interpreter printed more than 8 MiB; it was cut off"}
    if not result.ok:
        reason = result.error or (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return {"requested": python, "error": f"could not run the target interpreter: {reason}"}
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return {"requested": python, "error": "the target interpreter printed no JSON"}
    data["requested"] = python
    return data
