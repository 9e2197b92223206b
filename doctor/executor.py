"""The fix executor: the only code besides probes that changes the machine.

``preflight`` checks every action's privileges before the first change, so a fix that
needs administrator rights says so and never stops half way. ``apply`` journals each
action's before-state ahead of running it and rolls back what it did if a later action
fails. ``undo`` restores a journal record, newest action first.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Optional

from llmdoctor import proc
from llmdoctor.actions import (
    BroadcastEnvironment,
    CopyFile,
    DeleteEnvVar,
    PipInstall,
    PipUninstall,
    PrependPathEntry,
    ReplaceLine,
    RunCommand,
    SetEnvVar,
    SetJsonValue,
    SetShellBlock,
    WriteFile,
    action_from_json,
    action_to_json,
)
from llmdoctor.journal import JournalRecord

BACKUP_SUFFIX = ".llmdoctor-backup"


class FixError(Exception):
    """A fix could not be applied (and what it did was rolled back)."""


class Executor:
    def __init__(self, registry=None, is_admin: bool = False) -> None:
        self.registry = registry  # llmdoctor.winenv backend, needed for env actions
        self.is_admin = is_admin

    # ------------------------------------------------------------------ preflight

    def preflight(self, actions: list) -> list:
        """Problems that would stop the plan, found before anything changes."""
        problems = []
        for action in actions:
            if isinstance(action, (SetEnvVar, DeleteEnvVar, PrependPathEntry, BroadcastEnvironment)):
                if self.registry is None:
                    problems.append(f"{action.describe()}: the Windows registry is not available here")
                elif action.needs_admin and not self.is_admin:
                    problems.append(f"{action.describe()}: needs administrator rights")
                elif isinstance(action, SetEnvVar) and action.expected is not None and \
                        self.registry.get(action.scope, action.name) != tuple(action.expected):
                    problems.append(f"{action.describe()}: the value changed since it was diagnosed "
                                    "(or was seen redacted); run the check again")
            elif isinstance(action, (WriteFile, ReplaceLine, SetShellBlock, SetJsonValue, CopyFile)):
                target = Path(action.destination if isinstance(action, CopyFile) else action.path)
                if getattr(action, "needs_admin", False) and not self.is_admin:
                    problems.append(f"{action.describe()}: needs administrator rights (run from an elevated "
                                    "terminal)")
                elif not _writable(target):
                    problems.append(f"{action.describe()}: {target} is not writable by this user"
                                    + ("" if self.is_admin else " (administrator rights needed?)"))
                if isinstance(action, ReplaceLine) and _read_line(target, action.line) != action.old:
                    problems.append(f"{action.describe()}: the line changed since it was "
                                    "diagnosed; run the check again")
                if isinstance(action, CopyFile) and not Path(action.source).is_file():
                    problems.append(f"{action.describe()}: {action.source} does not exist")
            elif isinstance(action, RunCommand) and action.needs_admin and not self.is_admin:
                problems.append(f"{action.describe()}: needs administrator rights")
            elif isinstance(action, (PipInstall, PipUninstall)) and not Path(action.python).exists():
                problems.append(f"{action.describe()}: interpreter {action.python} not found")
        return problems

    def effective(self, actions: list) -> list:
        """The actions that would change something; a fix re-run on a healthy machine has none.

        Broadcasts are kept only when something else changes.
        """
        changing = [a for a in actions if not isinstance(a, BroadcastEnvironment) and self._would_change(a)]
        if not changing:
            return []
        return [a for a in actions if a in changing or isinstance(a, BroadcastEnvironment)]

    def _would_change(self, action) -> bool:
        try:
            if isinstance(action, SetEnvVar):
                return self.registry is None or self.registry.get(action.scope, action.name) != (
                    action.value, action.value_type)
            if isinstance(action, DeleteEnvVar):
                return self.registry is None or self.registry.get(action.scope, action.name) is not None
            if isinstance(action, PrependPathEntry):
                current = self.registry.get(action.scope, "Path") if self.registry else None
                return current is None or _prepended(current[0], action.entry) != current[0]
            if isinstance(action, SetShellBlock):
                from llmdoctor.shellenv import replace_block

                path = Path(action.path)
                current = path.read_text(encoding="utf-8", errors="surrogateescape") if path.exists() else ""
                return replace_block(current, action.name, list(action.lines)) != current
            if isinstance(action, WriteFile):
                path = Path(action.path)
                return not path.exists() or path.read_bytes() != action.content.encode("utf-8")
            if isinstance(action, ReplaceLine):
                return _read_line(Path(action.path), action.line) != action.new
            if isinstance(action, SetJsonValue):
                path = Path(action.path)
                return not path.exists() or _set_json_value(path, action) != path.read_bytes()
        except (OSError, ValueError):
            return True
        return True

    # ------------------------------------------------------------------ apply

    def apply(self, actions: list, record: JournalRecord) -> None:
        for action in actions:
            before = self._before_state(action)
            entry = record.begin(action_to_json(action), before)
            try:
                after = self._do(action)
            except Exception as exc:
                record.set_status("failed", f"{action.describe()}: {exc}")
                try:
                    self.undo(record)
                    rolled = "everything it had changed was restored"
                except Exception as undo_exc:  # pragma: no cover - defensive
                    rolled = f"restoring failed too ({undo_exc}); see {record.path}"
                raise FixError(f"{action.describe()} failed: {exc}; {rolled}") from None
            record.finish(entry, after)
        record.set_status("applied")

    def _before_state(self, action) -> dict:
        if isinstance(action, (SetEnvVar, DeleteEnvVar, PrependPathEntry)):
            name = "Path" if isinstance(action, PrependPathEntry) else action.name
            previous = self.registry.get(action.scope, name) if self.registry else None
            return {"exists": previous is not None,
                    "value": previous[0] if previous else None,
                    "type": previous[1] if previous else None}
        if isinstance(action, (WriteFile, ReplaceLine, SetShellBlock, SetJsonValue, CopyFile)):
            path = Path(action.destination if isinstance(action, CopyFile) else action.path)
            return _file_state(path)
        if isinstance(action, PipInstall):
            return {"versions": _installed_versions(action.python, action.requirements)}
        if isinstance(action, PipUninstall):
            return {"versions": _installed_versions(action.python, action.names)}
        return {}

    def _do(self, action) -> Optional[dict]:
        if isinstance(action, SetEnvVar):
            self.registry.set(action.scope, action.name, action.value, action.value_type)
        elif isinstance(action, DeleteEnvVar):
            self.registry.delete(action.scope, action.name)
        elif isinstance(action, PrependPathEntry):
            value, kind = self.registry.get(action.scope, "Path") or ("", "REG_EXPAND_SZ")
            self.registry.set(action.scope, "Path", _prepended(value, action.entry), kind)
        elif isinstance(action, BroadcastEnvironment):
            self.registry.broadcast()
        elif isinstance(action, (WriteFile, ReplaceLine, SetShellBlock, SetJsonValue)):
            path = Path(action.path)
            if isinstance(action, ReplaceLine):
                content = _replace_line(path, action)
            elif isinstance(action, SetJsonValue):
                content = _set_json_value(path, action)
            elif isinstance(action, SetShellBlock):
                from llmdoctor.shellenv import replace_block

                current = path.read_text(encoding="utf-8", errors="surrogateescape") if path.exists() else ""
                content = replace_block(current, action.name, list(action.lines)).encode(
                    "utf-8", errors="surrogateescape")
            else:
                content = action.content.encode("utf-8")
            after = {}
            if (not isinstance(action, WriteFile) or action.backup) and path.exists():
                backup = path.with_name(path.name + BACKUP_SUFFIX)
                if not backup.exists():
                    shutil.copy2(path, backup)
                    after["backup_created"] = str(backup)
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, content)
            return after
        elif isinstance(action, CopyFile):
            destination = Path(action.destination)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(action.source, destination)
        elif isinstance(action, (PipInstall, PipUninstall, RunCommand)):
            argv = action.argv() if isinstance(action, (PipInstall, PipUninstall)) else list(action.argv)
            result = proc.run(argv, timeout=getattr(action, "timeout", 1800.0))
            if not result.ok:
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise RuntimeError(result.error or f"exit {result.returncode}: {' | '.join(tail)}")
        else:  # pragma: no cover
            raise TypeError(f"unknown action {action!r}")
        return None

    # ------------------------------------------------------------------ undo

    def undo(self, record: JournalRecord) -> list:
        """Restore every entry that ran or may have run (pending ones too), newest first."""
        notes = []
        for entry in reversed(record.entries):
            if entry.get("state") == "undone":
                continue
            action = action_from_json(entry["action"])
            before = entry["before"]
            note = self._restore(action, before, entry.get("after") or {})
            if note:
                notes.append(note)
            entry["state"] = "undone"
            record.save()
        record.set_status("undone")
        return notes

    def _restore(self, action, before: dict, after: dict) -> str:
        if isinstance(action, (SetEnvVar, DeleteEnvVar, PrependPathEntry)):
            name = "Path" if isinstance(action, PrependPathEntry) else action.name
            if before["exists"]:
                self.registry.set(action.scope, name, before["value"], before["type"])
            else:
                self.registry.delete(action.scope, name)
        elif isinstance(action, BroadcastEnvironment):
            self.registry.broadcast()
        elif isinstance(action, (WriteFile, ReplaceLine, SetShellBlock, SetJsonValue, CopyFile)):
            path = Path(action.destination if isinstance(action, CopyFile) else action.path)
            _restore_file(path, before)
            backup = after.get("backup_created")
            if backup and Path(backup).exists():
                Path(backup).unlink()
        elif isinstance(action, PipInstall):
            return _restore_pip(action.python, before.get("versions", {}), action.restore_index_url)
        elif isinstance(action, PipUninstall):
            return _restore_pip(action.python, before.get("versions", {}))
        elif isinstance(action, RunCommand):
            if action.undo_argv:
                result = proc.run(list(action.undo_argv), timeout=action.timeout)
                if not result.ok:
                    return f"undoing '{action.description}' failed: {result.error or result.returncode}"
            else:
                return f"'{action.description}' cannot be undone automatically"
        return ""


# ---------------------------------------------------------------------- helpers


def _prepended(value: str, entry: str) -> str:
    """``entry`` first, its other occurrences (case-insensitive, trailing \\ ignored) removed."""
    def key(item: str) -> str:
        return item.strip().rstrip("\\").lower()

    rest = [item for item in value.split(";") if item and key(item) != key(entry)]
    return ";".join([entry] + rest)


def _writable(path: Path) -> bool:
    if path.exists():
        return os.access(path, os.W_OK)
    for parent in path.parents:
        if parent.exists():
            return os.access(parent, os.W_OK)
    return False


def _read_line(path: Path, number: int) -> Optional[str]:
    try:
        lines = path.read_bytes().decode("utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return None
    return lines[number - 1] if 0 < number <= len(lines) else None


def _replace_line(path: Path, action: ReplaceLine) -> bytes:
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    lines = text.splitlines(keepends=True)
    if not 0 < action.line <= len(lines) or lines[action.line - 1].rstrip("\r\n") != action.old:
        raise RuntimeError(f"line {action.line} of {path} changed since it was diagnosed")
    ending = lines[action.line - 1][len(action.old):]
    lines[action.line - 1] = action.new + ending
    return "".join(lines).encode("utf-8", errors="surrogateescape")


def _set_json_value(path: Path, action: SetJsonValue) -> bytes:
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() and path.stat().st_size else {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    node = data
    for key in action.keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"{path}: {key} is not an object")
    node[action.keys[-1]] = action.value
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def _file_state(path: Path) -> dict:
    if not path.exists():
        return {"exists": False}
    data = path.read_bytes()
    return {"exists": True, "content_b64": base64.b64encode(data).decode("ascii"),
            "mode": path.stat().st_mode & 0o7777}


def _restore_file(path: Path, before: dict) -> None:
    if before.get("exists"):
        _atomic_write(path, base64.b64decode(before["content_b64"]))
        try:
            os.chmod(path, before.get("mode", 0o644))
        except OSError:
            pass
    elif path.exists():
        path.unlink()


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.llmdoctor-tmp")
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if mode is not None:
        os.chmod(temporary, mode)
    os.replace(temporary, path)


def _requirement_name(requirement: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(requirement).name
    except InvalidRequirement:
        return requirement


def _installed_versions(python: str, requirements: tuple) -> dict:
    names = [_requirement_name(r) for r in requirements]
    script = ("import json,sys\nfrom importlib import metadata\nout={}\n"
              "for n in sys.argv[1:]:\n"
              "    try: out[n]=metadata.version(n)\n"
              "    except metadata.PackageNotFoundError: out[n]=None\n"
              "print(json.dumps(out))")
    result = proc.run([python, "-c", script, *names], timeout=30)
    try:
        return json.loads(result.stdout)
    except ValueError:
        return {n: None for n in names}


def _restore_pip(python: str, versions: dict, index_url: Optional[str] = None) -> str:
    reinstall = [f"{name}=={version}" for name, version in versions.items() if version]
    remove = [name for name, version in versions.items() if not version]
    problems = []
    if reinstall:
        argv = [python, "-m", "pip", "install", *reinstall]
        if index_url:
            argv += ["--extra-index-url", index_url]
        result = proc.run(argv, timeout=1800)
        if not result.ok:
            problems.append(f"reinstalling {', '.join(reinstall)} failed")
    if remove:
        result = proc.run([python, "-m", "pip", "uninstall", "-y", *remove], timeout=600)
        if not result.ok:
            problems.append(f"removing {', '.join(remove)} failed")
    return "; ".join(problems)
