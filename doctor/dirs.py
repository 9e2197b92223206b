"""llmdoctor's own folders for its configuration, cache and state (the journal).

``LLMDOCTOR_CONFIG_DIR`` / ``LLMDOCTOR_CACHE_DIR`` / ``LLMDOCTOR_STATE_DIR`` when set, else
platformdirs' answer. On Linux that answer (the XDG base directories,
https://specifications.freedesktop.org/basedir-spec/latest/) is computed here, as platformdirs
computes it, without importing platformdirs: 7 ms that every command would pay.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["user_dir"]

_XDG = {"config": ("XDG_CONFIG_HOME", "~/.config"), "cache": ("XDG_CACHE_HOME", "~/.cache"),
        "state": ("XDG_STATE_HOME", "~/.local/state")}


def user_dir(kind: str) -> Path:
    """The folder for ``kind`` ("config", "cache" or "state")."""
    override = os.environ.get(f"LLMDOCTOR_{kind.upper()}_DIR")
    if override:
        return Path(override)
    if sys.platform.startswith("linux"):
        variable, default = _XDG[kind]
        return Path(os.environ.get(variable, "").strip() or os.path.expanduser(default)) / "llmdoctor"
    import platformdirs

    return Path(getattr(platformdirs, f"user_{kind}_dir")("llmdoctor", appauthor=False))
