"""Snapshots: the facts of one machine as versioned, redacted JSON.

``llmdoctor collect`` writes one; ``llmdoctor check --snapshot FILE`` diagnoses one
that came from elsewhere (a bug report, a CI machine, a Windows box) without touching
this machine.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from llmdoctor import __version__
from llmdoctor.errors import UserError

# 2: probes[check]["facts_version"] says which version of a check's facts a snapshot holds
# (schema 1 snapshots hold version 1 of every check's facts)
SCHEMA = 2
MAX_SNAPSHOT_BYTES = 50 * 1024 * 1024


class SnapshotError(UserError):
    """A snapshot file cannot be used."""


def new_snapshot(platform: dict, target: dict, facts: dict, probe_meta: dict) -> dict:
    return {
        "schema": SCHEMA,
        "kind": "llmdoctor-snapshot",
        "llmdoctor_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),  # UTC, ISO 8601
        "platform": platform,
        "target": target,
        "facts": facts,
        "probes": probe_meta,
    }


def write_snapshot(snapshot: dict, path: Path) -> None:
    import json

    text = json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False)
    # bytes that were not UTF-8 (in PATH, say) are lone surrogates here; backslashreplace
    # writes them as \udcXX, which is the same string again in JSON
    path.write_bytes((text + "\n").encode("utf-8", errors="backslashreplace"))


MAX_NESTING = 64  # far deeper than any snapshot llmdoctor writes


def load_snapshot(path: Path) -> dict:
    """A snapshot from a regular file of at most ``MAX_SNAPSHOT_BYTES`` (never a FIFO or a
    device: ``/dev/zero`` would be read until memory runs out, a FIFO would block)."""
    from llmdoctor.fileio import FileIOError, read_existing

    try:
        raw = read_existing(str(path), MAX_SNAPSHOT_BYTES)
    except (FileIOError, ValueError) as exc:
        raise SnapshotError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
    if raw is None:
        raise SnapshotError(f"{path}: cannot read snapshot: no such file")
    try:
        text = raw.decode("utf-8")
        if _nesting(text) > MAX_NESTING:
            raise SnapshotError(f"{path}: not a snapshot (nested more than {MAX_NESTING} levels deep)")
        import json

        data = json.loads(text)
    except UnicodeDecodeError:
        raise SnapshotError(f"{path}: not a snapshot (not UTF-8 text)") from None
    except (ValueError, RecursionError) as exc:
        raise SnapshotError(f"{path}: not a snapshot (invalid JSON: {exc})") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc.strerror or exc}") from None
    return validate_snapshot(data, str(path))


_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _nesting(text: str) -> int:
    """How deep brackets nest (strings included: an over-estimate is harmless). The other
    characters are dropped first, in C: a fleet report reads a thousand snapshots."""
    depth = deepest = 0
    for character in _NOT_BRACKETS.sub("", text):
        if character in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_NESTING:
                    break
        else:
            depth -= 1
    return deepest


def validate_snapshot(data, where: str) -> dict:
    if not isinstance(data, dict) or data.get("kind", "llmdoctor-snapshot") != "llmdoctor-snapshot":
        raise SnapshotError(f"{where}: not a llmdoctor snapshot")
    schema = data.get("schema")
    if not isinstance(schema, int):
        raise SnapshotError(f"{where}: not a llmdoctor snapshot (no schema number)")
    if schema > SCHEMA:
        raise SnapshotError(
            f"{where}: snapshot schema {schema} is newer than this llmdoctor understands "
            f"({SCHEMA}); upgrade llmdoctor"
        )
    for key in ("platform", "facts"):
        if not isinstance(data.get(key), dict):
            raise SnapshotError(f"{where}: snapshot has no '{key}' object")
    if not isinstance(data["platform"].get("system"), str):
        raise SnapshotError(f"{where}: snapshot platform has no 'system'")
    for key, value in data["platform"].items():
        if key in PLATFORM_STRINGS and value is not None and not isinstance(value, str):
            raise SnapshotError(f"{where}: platform.{key} must be a string")
        if key in PLATFORM_FLAGS and value is not None and not isinstance(value, bool):
            raise SnapshotError(f"{where}: platform.{key} must be true or false")
    for check_id, facts in data["facts"].items():
        if not isinstance(facts, dict):
            raise SnapshotError(f"{where}: facts of '{check_id}' are not an object")
    for key in ("target", "probes"):
        data.setdefault(key, {})
        if not isinstance(data[key], dict):
            raise SnapshotError(f"{where}: snapshot '{key}' is not an object")
    data["loaded_from"] = where  # its facts came from a file: rules that fail on them name the field
    return data


PLATFORM_STRINGS = ("system", "release", "version", "machine", "shell", "home", "python", "python_executable",
                    "notebook")
PLATFORM_FLAGS = ("is_admin", "wsl")
