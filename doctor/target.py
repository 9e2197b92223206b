"""The target interpreter: where the user's torch and bitsandbytes live.

llmdoctor often runs from its own pipx environment, so package facts are read by running
a small script in the target interpreter. The script reads metadata only; it never
imports heavy packages.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

from llmdoctor import proc

# Runs inside the target interpreter (any Python 3.7+): versions from metadata, no imports
# of the packages themselves.
PROBE_SCRIPT = r"""
import json, sys, platform
try:
    from importlib import metadata
except ImportError:
    metadata = None
packages = {}
if metadata is not None:
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            continue
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
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
    # no -I: the user site and PYTHONPATH are part of what the user's programs see;
    # a neutral working folder keeps local files from shadowing modules
    result = proc.run([python, "-c", PROBE_SCRIPT], timeout=timeout, cwd=tempfile.gettempdir())
    if not result.ok:
        reason = result.error or (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return {"requested": python, "error": f"could not run the target interpreter: {reason}"}
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return {"requested": python, "error": "the target interpreter printed no JSON"}
    data["requested"] = python
    return data
