"""Snapshots: the facts of one machine as versioned, redacted JSON.

``llmdoctor collect`` writes one; ``llmdoctor check --snapshot FILE`` diagnoses one
that came from elsewhere (a bug report, a CI machine, a Windows box) without touching
this machine.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from llmdoctor import __version__
from llmdoctor.errors import UserError

SCHEMA = 1
MAX_SNAPSHOT_BYTES = 50 * 1024 * 1024


class SnapshotError(UserError):
    """A snapshot file cannot be used."""


def new_snapshot(platform: dict, target: dict, facts: dict, probe_meta: dict) -> dict:
    return {
        "schema": SCHEMA,
        "kind": "llmdoctor-snapshot",
        "llmdoctor_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform,
        "target": target,
        "facts": facts,
        "probes": probe_meta,
    }


def write_snapshot(snapshot: dict, path: Path) -> None:
    text = json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def load_snapshot(path: Path) -> dict:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc.strerror or exc}") from None
    if size > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(f"{path}: {size} bytes is too large for a snapshot")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SnapshotError(f"{path}: not a snapshot (not UTF-8 text)") from None
    except ValueError as exc:
        raise SnapshotError(f"{path}: not a snapshot (invalid JSON: {exc})") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc.strerror or exc}") from None
    return validate_snapshot(data, str(path))


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
    for check_id, facts in data["facts"].items():
        if not isinstance(facts, dict):
            raise SnapshotError(f"{where}: facts of '{check_id}' are not an object")
    data.setdefault("target", {})
    data.setdefault("probes", {})
    return data
