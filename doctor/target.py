"""The target interpreter: where the user's torch and bitsandbytes live.

llmdoctor often runs from its own pipx environment, so package facts are read by running
a small script in the target interpreter. The script reads metadata only; it never
imports heavy packages.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

from llmdoctor.errors import UserError

# Runs inside the target interpreter (any Python 3.7+): versions from metadata, no imports
# of the packages themselves.
PROBE_SCRIPT = r"""
import os, sys
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
def encode(value):
    # JSON without importing json (and with it re: a third of this script's time), \u-escaped
    # as json.dumps escapes, lone surrogates of undecodable file names included
    if isinstance(value, dict):
        return "{" + ",".join(encode(str(k)) + ":" + encode(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode(v) for v in value) + "]"
    out = []
    for character in str(value):
        code = ord(character)
        if 32 <= code < 127 and character not in '"\\':
            out.append(character)
        elif code < 0x10000:
            out.append("\\u%04x" % code)
        else:
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
    return '"' + "".join(out) + '"'
implementation = {"cpython": "CPython", "pypy": "PyPy", "ironpython": "IronPython", "jython": "Jython"}
print(encode({
    "executable": sys.executable,
    "site_packages": paths,
    "version": sys.version.split()[0],  # platform.python_version(), without importing platform
    "prefix": sys.prefix,
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "implementation": implementation.get(sys.implementation.name, sys.implementation.name),
    "packages": packages,
    "path": [p for p in sys.path if p],
}))
"""


def default_target_python(env: Optional[dict] = None) -> str:
    return choose_target(None, env)[0]


def _own(candidate: str) -> bool:
    """Whether ``candidate`` is llmdoctor's own interpreter (or lives in its environment)."""
    absolute = os.path.abspath(candidate)
    if absolute.startswith(os.path.join(os.path.abspath(sys.prefix), "")):
        return True
    try:
        return os.path.samefile(absolute, sys.executable)
    except OSError:
        return False


def choose_target(requested: Optional[str], env: Optional[dict] = None) -> tuple:
    """(interpreter, how it was chosen): the environment the user is working in.

    ``--python`` (a path, relative or not; a venv or conda env folder; a command such as
    ``python3.11``), else ``$VIRTUAL_ENV``, else ``$CONDA_PREFIX``, else the first ``python3``
    or ``python`` on PATH that is not llmdoctor's own, else llmdoctor's own interpreter.
    Raises :class:`TargetError` for a ``--python`` that names nothing runnable.
    """
    env = dict(os.environ) if env is None else env
    if requested is not None:
        return resolve_requested(requested, env), f"--python {requested}"
    for variable, what in (("VIRTUAL_ENV", "the active virtual environment"),
                           ("CONDA_PREFIX", "the active conda environment")):
        prefix = env.get(variable)
        if prefix:
            candidate = interpreter_in(Path(prefix))
            if candidate:
                return str(candidate), f"{what} (${variable})"
    for folder in env.get("PATH", "").split(os.pathsep):
        for name in ("python3", "python"):
            found = shutil.which(name, path=folder) if folder else None
            if found and not _own(found):
                real = pyenv_shim_target(found, env)
                if real is not None:  # starting the shim costs a bash and pyenv each time
                    return real, f"the first {name} on PATH, through pyenv's shim"
                return found, f"the first {name} on PATH"
    return sys.executable, "llmdoctor's own interpreter (no other Python on PATH, and no active environment)"


def pyenv_shim_target(shim: str, env: dict, cwd: Optional[str] = None) -> Optional[str]:
    """The interpreter a pyenv shim runs, by pyenv's own rules (https://github.com/pyenv/pyenv
    #choosing-the-python-version): ``$PYENV_VERSION``, else the nearest ``.python-version`` from
    the working folder up, else ``$PYENV_ROOT/version``; the first listed version that has the
    program. None when ``shim`` is no pyenv shim or the version is "system" or missing."""
    folder = os.path.dirname(shim)
    if os.path.basename(folder) != "shims":
        return None
    root = os.path.dirname(folder)
    if not os.path.isdir(os.path.join(root, "versions")):
        return None
    names = (env.get("PYENV_VERSION") or "").replace(":", " ").split()
    if not names:
        here = Path(cwd or os.getcwd())
        for candidate in [here, *here.parents, None]:
            path = Path(root) / "version" if candidate is None else candidate / ".python-version"
            try:
                names = [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
            except (OSError, UnicodeDecodeError):
                continue
            names = [n for n in names if n]
            break
    for name in names:
        if name == "system":
            return None
        program = os.path.join(root, "versions", name, "bin", os.path.basename(shim))
        if os.access(program, os.X_OK):
            return program
    return None


class TargetError(UserError):
    """A --python that names no interpreter."""


def resolve_requested(value: str, env: Optional[dict] = None) -> str:
    env = dict(os.environ) if env is None else env
    if not value.strip():
        raise TargetError("--python needs an interpreter, an environment folder or a command name")
    path = Path(value).expanduser()
    looks_like_path = os.sep in value or (os.altsep and os.altsep in value) or value.startswith(".") or path.exists()
    if looks_like_path:
        if path.is_dir():
            candidate = interpreter_in(path)
            if candidate is None:
                raise TargetError(f"--python {value}: a folder without bin/python (not a venv or conda env)")
            return str(candidate.absolute())
        if not path.is_file():
            raise TargetError(f"--python {value}: no such interpreter")
        if not os.access(path, os.X_OK):
            raise TargetError(f"--python {value}: not executable")
        return str(path.absolute())
    found = shutil.which(value, path=env.get("PATH", ""))
    if not found:
        raise TargetError(f"--python {value}: no such interpreter, environment folder or command on PATH")
    return found


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
    from llmdoctor import proc

    result = proc.run_python([python, "-c", PROBE_SCRIPT], timeout=timeout, max_output=8 * 1024 * 1024)
    if result.truncated:
        return {"requested": python, "error": "the target interpreter printed more than 8 MiB; it was cut off"}
    if not result.ok:
        reason = result.error or (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return {"requested": python, "error": f"could not run the target interpreter: {reason}"}
    try:
        import json

        data = json.loads(result.stdout)
    except ValueError:
        return {"requested": python, "error": "the target interpreter printed no JSON"}
    data["requested"] = python
    return data


class StartedProbe:
    """The target's probe running in a thread from the start of a run, so that starting the other
    interpreter overlaps with importing the checks; ``result()`` waits for it."""

    def __init__(self, python: str, timeout: float) -> None:
        import threading

        self.python = python
        self._value: Optional[dict] = None
        self._thread = threading.Thread(target=self._run, args=(timeout,), name="probe-target", daemon=True)
        self._thread.start()

    def _run(self, timeout: float) -> None:
        try:
            self._value = probe_target(self.python, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a probe reports, never raises
            self._value = {"requested": self.python, "error": f"{type(exc).__name__}: {exc}"}

    def result(self) -> dict:
        self._thread.join()
        return self._value or {"requested": self.python, "error": "target probe did not finish"}


def start_probe(python: str, *, timeout: float) -> StartedProbe:
    return StartedProbe(python, timeout)
