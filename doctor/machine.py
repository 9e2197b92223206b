"""The platform probe: which OS, architecture and Python, and the notebook or WSL context.

These facts travel at the top of every snapshot, so rules can tell a Windows snapshot
from a Linux one wherever they run.
"""

from __future__ import annotations

import os
import sys


def _is_admin() -> bool:
    if sys.platform == "win32":
        try:
            import ctypes

            return bool(ctypes.windll.shell32.IsUserAnAdmin())
        except Exception:
            return False
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _is_wsl() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/sys/kernel/osrelease", encoding="utf-8") as handle:
            release = handle.read().lower()
    except OSError:
        return False
    return "microsoft" in release or "wsl" in release


def notebook_platform(env: dict) -> str:
    """Kaggle first: its images are built on Colab's and set Colab's variables too."""
    if env.get("KAGGLE_KERNEL_RUN_TYPE") or env.get("KAGGLE_DATA_PROXY_URL"):
        return "kaggle"
    if env.get("COLAB_RELEASE_TAG") or env.get("COLAB_GPU") is not None:
        return "colab"
    return ""


def system_name() -> str:
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform.startswith("linux"):
        return "linux"
    return sys.platform


def _uname() -> dict:
    """The kernel's release, version and machine, as ``platform`` reports them (os.uname on
    POSIX: the same values, without importing platform)."""
    if hasattr(os, "uname"):
        name = os.uname()
        return {"release": name.release, "version": name.version, "machine": name.machine}
    import platform

    return {"release": platform.release(), "version": platform.version(), "machine": platform.machine()}


def probe_platform() -> dict:
    return {
        "system": system_name(),
        **_uname(),
        "python": sys.version.split()[0],  # what platform.python_version() reads
        "python_executable": sys.executable,
        "is_admin": _is_admin(),
        "wsl": _is_wsl(),
        "notebook": notebook_platform(dict(os.environ)),
        "shell": os.environ.get("SHELL", "") if sys.platform != "win32" else os.environ.get("ComSpec", ""),
        "home": os.path.expanduser("~"),
    }
