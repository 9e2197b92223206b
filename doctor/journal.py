"""The journal: one JSON file per applied fix, in the user's state folder.

Written ahead: before an action runs, its prepared state (before-state and what its undo
needs) is recorded and the entry marked ``pending``; afterwards it is marked ``done``. A fix
killed at any point leaves a journal that ``llmdoctor undo`` can still reverse. Files are
replaced atomically.

One writer at a time: ``fix`` and ``undo`` hold :func:`journal_lock` for their whole run; a
second one waits a few seconds and then refuses with one line.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from llmdoctor.errors import UserError


class JournalError(UserError):
    pass


def state_dir() -> Path:
    from llmdoctor.dirs import user_dir

    return user_dir("state")


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
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise JournalError(f"cannot create the journal folder {folder}: {exc.strerror or exc}") from None
        data = {"version": RECORD_VERSION, "id": record_id, "fix": fix_id, "summary": summary, "platform": platform,
                "created": now.isoformat(timespec="seconds"), "sequence": time.time_ns(), "status": "in-progress",
                "entries": []}
        record = cls(folder / f"{record_id}.json", data)
        record.save()
        return record

    def save(self) -> None:
        # before-states can hold file contents: keep the journal private to the user
        from llmdoctor.fileio import FileIOError, atomic_write

        try:
            # the journal belongs to whoever runs the fix (undo checks that), never to the folder's owner
            atomic_write(str(self.path), json.dumps(self.data, indent=2).encode("utf-8"), default_mode=0o600,
                         inherit_owner=False)
        except FileIOError as exc:
            raise JournalError(f"cannot write the journal: {exc}") from None

    def begin(self, action: dict, data: dict) -> dict:
        entry = {"action": action, "data": data, "state": "pending"}
        self.entries.append(entry)
        self.save()
        return entry

    def finish(self, entry: dict, after: Optional[dict] = None) -> None:
        entry["state"] = "done"
        if after:
            entry["data"].update(after)
        self.save()

    def set_status(self, status: str, note: str = "") -> None:
        self.data["status"] = status
        if note:
            self.data["note"] = note
        self.data["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.save()


RECORD_VERSION = 2  # 2: entries carry the data their action's reverse needs (1: whole before-states)
RECORD_FIELDS = {"id": str, "fix": str, "status": str, "entries": list}


def _valid(data) -> Optional[str]:
    if not isinstance(data, dict):
        return "not a JSON object"
    for key, kind in RECORD_FIELDS.items():
        if not isinstance(data.get(key), kind):
            return f"'{key}' is missing or not a {kind.__name__}"
    for number, entry in enumerate(data["entries"], start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("action"), dict):
            return f"entry {number} has no action"
    return None


def load_records(*, damaged: Optional[list] = None) -> list:
    """The journal's records, oldest first. Unreadable or malformed ones are left out and,
    when ``damaged`` is given, named there (a damaged journal is not an empty one)."""
    folder = journal_dir()
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            problem = f"unreadable ({type(exc).__name__})"
        else:
            problem = _valid(data) or _foreign(path)
            if problem is None:
                records.append(JournalRecord(path, data))
                continue
        if damaged is not None:
            damaged.append(f"{path.name}: {problem}")
    return sorted(records, key=lambda r: (r.data.get("sequence", 0), r.data.get("created", "")))


def _foreign(path: Path) -> Optional[str]:
    """Why a record file must not be trusted: someone else owns it, or others may write it
    (undo writes where a record says; root running undo must not follow a user's record)."""
    if not hasattr(os, "geteuid"):  # pragma: no cover - Windows: the profile folder's ACLs
        return None
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not by you"
    if info.st_mode & 0o022:
        return "writable by others"
    return None


LOCK_WAIT_S = 5.0


@contextmanager
def journal_lock(wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the journal for one ``fix`` or ``undo``: never two writers on one user's files.
    Waits up to ``wait_s`` for another run to finish, then raises :class:`JournalError`."""
    folder = state_dir()
    path = folder / "journal.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise JournalError(f"cannot use the journal in {folder}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + wait_s
        while not _try_lock(descriptor):
            if time.monotonic() >= deadline:
                holder = _read_holder(descriptor)
                raise JournalError("another llmdoctor fix or undo is running" + (f" (pid {holder})" if holder else "")
                                   + "; try again when it has finished")
            time.sleep(0.1)
        if hasattr(os, "pwrite"):
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _try_lock(descriptor: int) -> bool:
    if os.name == "nt":  # pragma: no cover - needs Windows
        import msvcrt

        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _read_holder(descriptor: int) -> str:
    try:
        return os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() if hasattr(os, "pread") else ""
    except OSError:
        return ""


UNDOABLE = ("applied", "in-progress", "failed")


def find_record(selector: Optional[str]) -> JournalRecord:
    """The last undoable record, or the one with this journal id or fix id."""
    damaged: list = []
    records = [r for r in load_records(damaged=damaged) if r.status in UNDOABLE]
    if selector:
        records = [r for r in records if r.id == selector or r.fix_id == selector]
    if not records:
        what = f" for {selector!r}" if selector else ""
        if damaged:
            raise JournalError(f"nothing to undo{what} among the readable records; the journal in {journal_dir()} "
                               f"has {len(damaged)} damaged one(s): {damaged[0]}")
        raise JournalError(f"nothing to undo{what}: the journal in {journal_dir()} has no applied fix")
    return records[-1]
