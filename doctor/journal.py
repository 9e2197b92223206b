"""The journal: one JSON file per applied fix, in the user's state folder.

Written ahead: before an action runs, its before-state is recorded and the entry marked
``pending``; afterwards it is marked ``done``. A fix killed between two actions leaves a
journal that ``llmdoctor undo`` can still restore. Files are replaced atomically.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import time
from pathlib import Path
from typing import Optional

from llmdoctor.errors import UserError


class JournalError(UserError):
    pass


def state_dir() -> Path:
    override = os.environ.get("LLMDOCTOR_STATE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_state_dir

    return Path(user_state_dir("llmdoctor", appauthor=False))


def journal_dir() -> Path:
    return state_dir() / "journal"


class JournalRecord:
    def __init__(self, path: Path, data: dict) -> None:
        self.path = path
        self.data = data

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def fix_id(self) -> str:
        return self.data["fix"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def entries(self) -> list:
        return self.data["entries"]

    @classmethod
    def create(cls, fix_id: str, summary: str, platform: str) -> JournalRecord:
        now = _dt.datetime.now(_dt.timezone.utc)
        record_id = f"{now.strftime('%Y%m%dT%H%M%S')}-{fix_id}-{secrets.token_hex(2)}"
        folder = journal_dir()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {"id": record_id, "fix": fix_id, "summary": summary, "platform": platform,
                "created": now.isoformat(timespec="seconds"), "sequence": time.time_ns(), "status": "in-progress",
                "entries": []}
        record = cls(folder / f"{record_id}.json", data)
        record.save()
        return record

    def save(self) -> None:
        # before-states can hold file contents: keep the journal private to the user
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def begin(self, action: dict, before: dict) -> dict:
        entry = {"action": action, "before": before, "state": "pending"}
        self.entries.append(entry)
        self.save()
        return entry

    def finish(self, entry: dict, after: Optional[dict] = None) -> None:
        entry["state"] = "done"
        if after:
            entry["after"] = after
        self.save()

    def set_status(self, status: str, note: str = "") -> None:
        self.data["status"] = status
        if note:
            self.data["note"] = note
        self.data["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.save()


def load_records() -> list:
    folder = journal_dir()
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            records.append(JournalRecord(path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: (r.data.get("sequence", 0), r.data.get("created", "")))


UNDOABLE = ("applied", "in-progress", "failed")


def find_record(selector: Optional[str]) -> JournalRecord:
    """The last undoable record, or the one with this journal id or fix id."""
    records = [r for r in load_records() if r.status in UNDOABLE]
    if selector:
        records = [r for r in records if r.id == selector or r.fix_id == selector]
    if not records:
        what = f" for {selector!r}" if selector else ""
        raise JournalError(f"nothing to undo{what}: the journal in {journal_dir()} has no applied fix")
    return records[-1]
