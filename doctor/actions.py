"""The closed set of things a fix may do. Each action knows how to show, check, apply and
reverse itself, as conda's path actions do.

The interface of every action:

- ``describe()``: one line saying what it changes;
- ``bash()`` / ``powershell()``: the script lines it amounts to (``script_setup()`` for lines a
  script needs once, such as a backup);
- ``scope`` (``user`` or ``machine``), ``needs_admin`` and ``new_terminal`` (it takes effect in
  new terminals, not this one): a plan's own scope, rights and "afterwards" derive from these;
- ``preflight(env)``: what would stop it, found before anything changes;
- ``would_change(env)``: False when the machine is already so (re-running a fix is a no-op);
- ``prepare(env)``: its before-state and everything ``reverse`` needs, journaled *before*
  ``apply(env, state)`` runs, so an interrupted fix can still be undone;
- ``reverse_problem(env, state)`` and ``reverse(env, state)``: undo as the inverse of the change,
  computed against the live file or value. When the region the action changed has been changed
  since, ``reverse_problem`` says how (a short diff and the manual step) and nothing is touched.

Keys of a prepared state that start with ``_`` are kept in memory only, never journaled.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from llmdoctor import fileio, textedit

BACKUP_SUFFIX = ".llmdoctor-backup"
HIVES = {"user": "[EnvironmentVariableTarget]::User", "machine": "[EnvironmentVariableTarget]::Machine"}
REG_PATHS = {"user": r"HKCU:\Environment",
             "machine": r"HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Environment"}


class ActionError(Exception):
    """An action could not be applied or reversed; the message says why, in one line."""


@dataclass
class ActionEnv:
    """What actions act on: the registry backend (Windows) and this process's rights."""

    registry: Any = None
    is_admin: bool = False


def ps_quote(value: str) -> str:
    """A PowerShell single-quoted string. PowerShell also ends such a string at the
    typographic single quotes U+2018-U+201B, so each is doubled like ``'``."""
    for quote in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
        value = value.replace(quote, quote * 2)
    return "'" + value + "'"


class Action:
    """Defaults shared by every action; each subclass is a frozen dataclass, and says its
    ``scope`` ("user" or "machine": a field, a property or a class attribute)."""

    needs_admin = False
    new_terminal = False

    def describe(self) -> str:  # pragma: no cover - every action overrides it
        raise NotImplementedError

    def script_setup(self, flavour: str) -> list:
        return []

    def bash(self) -> list:
        return [f"# {self.describe()}"]

    def powershell(self) -> list:
        return [f"# {self.describe()}"]

    def preflight(self, env: ActionEnv) -> list:
        if self.needs_admin and not env.is_admin:
            return [f"{self.describe()}: needs administrator rights"]
        return []

    def would_change(self, env: ActionEnv) -> bool:
        return True

    def prepare(self, env: ActionEnv) -> dict:
        return {}

    def apply(self, env: ActionEnv, state: dict) -> Optional[dict]:  # pragma: no cover
        raise NotImplementedError

    def reverse_problem(self, env: ActionEnv, state: dict) -> Optional[str]:
        return None

    def reverse(self, env: ActionEnv, state: dict) -> str:
        return ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["kind"] = self.kind
        return data


# ----------------------------------------------------------------------------- the registry


def _registry_problem(action, env: ActionEnv) -> list:
    if env.registry is None:
        return [f"{action.describe()}: the Windows registry is not available here"]
    return Action.preflight(action, env)


def _entries(value: str) -> list:
    return [item for item in value.split(";") if item.strip()]


def _entry_key(item: str) -> str:
    return item.strip().strip('"').rstrip("\\").lower()


def _is_list_value(name: str, *values: Optional[str]) -> bool:
    return name.lower() == "path" or any(v and ";" in v for v in values)


def reverse_path_list(live: str, before: str, after: str) -> str:
    """Undo a Path edit entry by entry against the live value: the entries the edit added go,
    the ones it removed come back in their old places, and entries added since by anyone else
    stay. Raises :class:`ActionError` when the edit's own entries changed since."""
    before_items, after_items, live_items = _entries(before), _entries(after), _entries(live)
    before_keys = {_entry_key(e) for e in before_items}
    after_keys = {_entry_key(e) for e in after_items}
    live_keys = {_entry_key(e) for e in live_items}
    added = [e for e in after_items if _entry_key(e) not in before_keys]
    removed = [e for e in before_items if _entry_key(e) not in after_keys]
    gone = [e for e in added if _entry_key(e) not in live_keys]
    back = [e for e in removed if _entry_key(e) in live_keys]
    if gone or back:
        lines = [f"  - {e}  (added by the fix, already removed since)" for e in gone]
        lines += [f"  + {e}  (removed by the fix, already back since)" for e in back]
        raise ActionError("the entries this fix changed were changed since:\n" + "\n".join(lines))
    dropped_since = {_entry_key(e) for e in after_items if _entry_key(e) not in live_keys}
    result = [e for e in before_items if _entry_key(e) not in dropped_since]
    for index, item in enumerate(live_items):
        if _entry_key(item) in after_keys:
            continue
        # an entry someone added since: keep it after the entry it follows now
        anchor = next((_entry_key(live_items[j]) for j in range(index - 1, -1, -1)), None)
        keys = [_entry_key(e) for e in result]
        position = keys.index(anchor) + 1 if anchor in keys else (0 if index == 0 else len(result))
        result.insert(position, item)
    return ";".join(result)


def _reverse_value(env: ActionEnv, scope: str, name: str, state: dict, *, check_only: bool) -> Optional[str]:
    """Restore a registry value from ``state`` (``before``/``after`` as [value, type] or None)."""
    before = tuple(state["before"]) if state.get("before") else None
    after = tuple(state["after"]) if state.get("after") else None
    live = env.registry.get(scope, name)
    if live == before:
        return None
    if live == after:
        if not check_only:
            if before is None:
                env.registry.delete(scope, name)
            else:
                env.registry.set(scope, name, before[0], before[1])
        return None
    if before is not None and after is not None and live is not None and \
            _is_list_value(name, before[0], after[0]):
        value = reverse_path_list(live[0], before[0], after[0])  # raises with the entries that conflict
        if not check_only:
            kind = before[1] if live[1] == after[1] else live[1]
            env.registry.set(scope, name, value, kind)
        return None
    shown = lambda item: "(not set)" if item is None else f"{item[0]!r} ({item[1]})"  # noqa: E731
    raise ActionError(f"{scope} variable {name} changed since the fix: the fix left {shown(after)}, "
                      f"it is now {shown(live)}; set it yourself if you want {shown(before)} back")


class _RegistryValue(Action):
    new_terminal = True

    @property
    def needs_admin(self) -> bool:  # the system environment (HKLM) needs administrator rights
        return self.scope == "machine"

    def _name(self) -> str:
        return self.name

    def _after(self, before: Optional[tuple]) -> Optional[tuple]:  # pragma: no cover
        raise NotImplementedError

    def preflight(self, env: ActionEnv) -> list:
        return _registry_problem(self, env)

    def would_change(self, env: ActionEnv) -> bool:
        if env.registry is None:
            return True
        before = env.registry.get(self.scope, self._name())
        return self._after(before) != before

    def prepare(self, env: ActionEnv) -> dict:
        before = env.registry.get(self.scope, self._name())
        after = self._after(before)
        return {"name": self._name(), "before": list(before) if before else None,
                "after": list(after) if after else None}

    def apply(self, env: ActionEnv, state: dict) -> None:
        if env.registry.get(self.scope, self._name()) != (tuple(state["before"]) if state["before"] else None):
            raise ActionError(f"{self.scope} variable {self._name()} changed while the fix ran")
        if state["after"] is None:
            env.registry.delete(self.scope, self._name())
        else:
            env.registry.set(self.scope, self._name(), *state["after"])

    def reverse_problem(self, env: ActionEnv, state: dict) -> Optional[str]:
        if env.registry is None:
            return "the Windows registry is not available here"
        try:
            return _reverse_value(env, self.scope, state["name"], state, check_only=True)
        except ActionError as exc:
            return str(exc)

    def reverse(self, env: ActionEnv, state: dict) -> str:
        _reverse_value(env, self.scope, state["name"], state, check_only=False)
        return ""


@dataclass(frozen=True)
class SetEnvVar(_RegistryValue):
    """Set a persistent Windows environment variable (HKCU or HKLM ``Environment``)."""

    scope: str  # "user" | "machine"
    name: str
    value: str
    value_type: str = "REG_EXPAND_SZ"
    # the (value, type) the plan was made from; refused when the live value differs (changed
    # since, or the plan saw a redacted copy), so nothing is overwritten blind
    expected: Optional[tuple] = None
    kind: str = field(default="set-env", init=False)

    def describe(self) -> str:
        return f"set {self.scope} variable {self.name} ({self.value_type}, {len(self.value):,} characters)"

    def _after(self, before: Optional[tuple]) -> tuple:
        return (self.value, self.value_type)

    def preflight(self, env: ActionEnv) -> list:
        problems = _registry_problem(self, env)
        if not problems and self.expected is not None and \
                env.registry.get(self.scope, self.name) != tuple(self.expected):
            problems.append(f"{self.describe()}: the value changed since it was diagnosed "
                            "(or was seen redacted); run the check again")
        return problems

    def bash(self) -> list:
        return [f"# (Windows only) {self.describe()}"]

    def powershell(self) -> list:
        kind = "ExpandString" if self.value_type == "REG_EXPAND_SZ" else "String"
        return [f"Set-ItemProperty -Path {ps_quote(REG_PATHS[self.scope])} -Name "
                f"{ps_quote(self.name)} -Type {kind} -Value {ps_quote(self.value)}"]


def prepended(value: str, entry: str) -> str:
    """``entry`` first, its other occurrences (case-insensitive, trailing \\ ignored) removed."""
    rest = [item for item in value.split(";") if item and _entry_key(item) != _entry_key(entry)]
    return ";".join([entry] + rest)


@dataclass(frozen=True)
class PrependPathEntry(_RegistryValue):
    """Put a folder first in a Windows ``Path`` value (user or machine), computed from the
    live value at apply time, keeping its other entries and its registry type."""

    scope: str
    entry: str
    kind: str = field(default="prepend-path", init=False)

    def describe(self) -> str:
        return f"put {self.entry} first in the {self.scope} Path"

    def _name(self) -> str:
        return "Path"

    def _after(self, before: Optional[tuple]) -> tuple:
        value, kind = before or ("", "REG_EXPAND_SZ")
        return (prepended(value, self.entry), kind)

    def bash(self) -> list:
        return [f"# (Windows only) {self.describe()}"]

    def powershell(self) -> list:
        target = HIVES[self.scope]
        return [f"$old = [Environment]::GetEnvironmentVariable('Path', {target})",
                f"$rest = ($old -split ';') | Where-Object {{ $_ -and ($_.TrimEnd('\\') -ne "
                f"{ps_quote(self.entry.rstrip(chr(92)))}) }}",
                f"[Environment]::SetEnvironmentVariable('Path', (@({ps_quote(self.entry)}) + $rest) -join ';', "
                f"{target})"]


@dataclass(frozen=True)
class DeleteEnvVar(_RegistryValue):
    scope: str
    name: str
    kind: str = field(default="delete-env", init=False)

    def describe(self) -> str:
        return f"delete {self.scope} variable {self.name}"

    def _after(self, before: Optional[tuple]) -> None:
        return None

    def bash(self) -> list:
        return [f"# (Windows only) {self.describe()}"]

    def powershell(self) -> list:
        return [f"Remove-ItemProperty -Path {ps_quote(REG_PATHS[self.scope])} -Name {ps_quote(self.name)}"]


@dataclass(frozen=True)
class BroadcastEnvironment(Action):
    """Tell running programs (Explorer, new terminals) that the environment changed. Kept in
    a plan only when something else changes."""

    kind: str = field(default="broadcast-env", init=False)
    scope = "user"
    new_terminal = True
    follows_changes = True

    def describe(self) -> str:
        return "broadcast WM_SETTINGCHANGE ('Environment') so new terminals see the change"

    def preflight(self, env: ActionEnv) -> list:
        return _registry_problem(self, env)

    def would_change(self, env: ActionEnv) -> bool:
        return False

    def apply(self, env: ActionEnv, state: dict) -> None:
        env.registry.broadcast()

    def reverse(self, env: ActionEnv, state: dict) -> str:
        if env.registry is not None:
            env.registry.broadcast()
        return ""

    def bash(self) -> list:
        return [f"# (Windows only) {self.describe()}"]

    def powershell(self) -> list:
        return ["# tell Explorer and new terminals: re-setting a variable broadcasts WM_SETTINGCHANGE",
                "[Environment]::SetEnvironmentVariable('LLMDOCTOR_REFRESH', $null, [EnvironmentVariableTarget]::User)"]


# ----------------------------------------------------------------------------- files


def _decode(data: Optional[bytes]) -> str:
    return "" if data is None else data.decode("utf-8", errors="surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


class _FileAction(Action):
    """An edit of one file. Subclasses say what the new content is and how to take their own
    change back out of a file that has changed since (``_reverse_region``)."""

    backup_wanted = True
    scope = "user"

    @property
    def file(self) -> str:
        return self.path

    def _new_content(self, current: Optional[bytes]) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def _undo_data(self, current: Optional[bytes], new: bytes) -> dict:  # pragma: no cover
        raise NotImplementedError

    def _reverse_region(self, current: bytes, state: dict) -> Optional[bytes]:
        """The current content without this action's change; None: remove the file."""
        raise textedit.EditConflict(f"{self.file} was rewritten as a whole by this fix and has changed since")

    def _manual_step(self, state: dict) -> str:
        return f"compare {state['target']} with its state before the fix and edit it yourself"

    def _link_problem(self) -> Optional[str]:
        """A symlinked file is written through to its target, unless the link is dangling or
        points at a file owned by someone other than the link's owner (a planted link)."""
        if not os.path.islink(self.file):
            return None
        target = fileio.resolve_target(self.file)
        if not os.path.exists(target):
            return f"{self.file} is a symbolic link to {target}, which does not exist"
        try:
            if os.lstat(self.file).st_uid not in (0, os.stat(target).st_uid):
                return f"{self.file} is a symbolic link to {target}, a file its owner does not own"
        except OSError as exc:
            return f"{self.file}: {exc}"
        return None

    def preflight(self, env: ActionEnv) -> list:
        problems = Action.preflight(self, env)
        link = self._link_problem()
        if link:
            return problems + [f"{self.describe()}: {link}"]
        if not fileio.writable(self.file):
            problems.append(f"{self.describe()}: {self.file} is not writable by this user"
                            + ("" if env.is_admin else " (administrator rights needed?)"))
            return problems
        try:
            self._new_content(fileio.read_existing(fileio.resolve_target(self.file)))
        except (fileio.FileIOError, textedit.EditConflict, ActionError, ValueError) as exc:
            problems.append(f"{self.describe()}: {exc}")
        return problems

    def would_change(self, env: ActionEnv) -> bool:
        try:
            current = fileio.read_existing(fileio.resolve_target(self.file))
            return self._new_content(current) != current
        except (fileio.FileIOError, textedit.EditConflict, ActionError, ValueError):
            return True

    def prepare(self, env: ActionEnv) -> dict:
        target = fileio.resolve_target(self.file)
        try:
            current = fileio.read_existing(target)
            new = self._new_content(current)
        except (fileio.FileIOError, textedit.EditConflict, ValueError) as exc:
            raise ActionError(str(exc)) from None
        backup = self.file + BACKUP_SUFFIX
        state = {"target": target, "existed": current is not None, "before_sha": fileio.sha256(current),
                 "after_sha": fileio.sha256(new), "temporary": fileio.temporary_name(target),
                 "backup": backup if self.backup_wanted and current is not None and not os.path.lexists(backup)
                 else None, "_before": current, "_new": new}
        state.update(self._undo_data(current, new))
        return state

    def apply(self, env: ActionEnv, state: dict) -> Optional[dict]:
        target = state["target"]
        try:
            current = fileio.read_existing(target)
            if fileio.sha256(current) != state["before_sha"]:
                raise ActionError(f"{target} changed while the fix ran")
            if state.get("backup") and current is not None:
                fileio.create_exclusive(state["backup"], current)
            fileio.atomic_write(target, state["_new"], temporary=state["temporary"])
        except fileio.FileIOError as exc:
            raise ActionError(str(exc)) from None
        return None

    def _reversed_content(self, state: dict) -> tuple:
        """(what the file should become; None to remove it, and whether it changes at all)."""
        current = fileio.read_existing(state["target"])
        digest = fileio.sha256(current)
        if digest == state["before_sha"]:
            return current, False
        if current is None:
            raise textedit.EditConflict(f"{state['target']} was removed since the fix")
        if digest == state["after_sha"] and "before_b64" in state:
            before = state["before_b64"]
            return (None if before is None else base64.b64decode(before)), True
        reversed_content = self._reverse_region(current, state)
        if reversed_content is not None and not state.get("existed") and not reversed_content.strip():
            reversed_content = None  # the fix created the file and nothing else is in it
        return reversed_content, True

    def reverse_problem(self, env: ActionEnv, state: dict) -> Optional[str]:
        target = state.get("target")
        if not isinstance(target, str) or target != fileio.resolve_target(self.file):
            return (f"{self.file} no longer leads to {target} (a link changed since the fix, or the journal "
                    "entry does not match its action); nothing is written there")
        if os.path.islink(target):
            return f"{target} is now a symbolic link; undo never writes through one it did not write through"
        try:
            self._reversed_content(state)
        except (textedit.EditConflict, fileio.FileIOError, ActionError) as exc:
            return (f"{state['target']} changed where this fix edited it:\n{exc}\n"
                    f"manual step: {self._manual_step(state)}")
        return None

    def reverse(self, env: ActionEnv, state: dict) -> str:
        try:
            content, changes = self._reversed_content(state)
            if changes:
                if content is None:
                    fileio.remove_regular(state["target"])
                else:
                    fileio.atomic_write(state["target"], content)
        except (textedit.EditConflict, fileio.FileIOError) as exc:
            raise ActionError(f"{state['target']}: {exc}") from None
        self.clean_up(state)
        return ""

    def clean_up(self, state: dict) -> None:
        """Remove what an interrupted apply may have left: its staging file, and the backup it
        made (only a regular file holding exactly the before-state)."""
        fileio.remove_regular(state.get("temporary") or "")
        backup = state.get("backup")
        if backup and not os.path.islink(backup):
            try:
                with open(backup, "rb") as handle:
                    if fileio.sha256(handle.read(fileio.MAX_EDIT_BYTES + 1)) == state["before_sha"]:
                        fileio.remove_regular(backup)
            except OSError:
                pass

    def script_setup(self, flavour: str) -> list:
        if flavour != "bash" or not self.backup_wanted:
            return []
        q = shlex.quote
        return [f"[ -e {q(self.file)} ] && cp -n {q(self.file)} {q(self.file + BACKUP_SUFFIX)}"]


class _TextEdit(_FileAction):
    """A text edit whose undo takes out exactly the lines it changed (see ``textedit``)."""

    def _undo_data(self, current: Optional[bytes], new: bytes) -> dict:
        return {"hunk": textedit.make_hunk(_decode(current), _decode(new))}

    def _reverse_region(self, current: bytes, state: dict) -> Optional[bytes]:
        return _encode(textedit.reverse_hunk(_decode(current), state["hunk"]))

    def _manual_step(self, state: dict) -> str:
        hunk = state["hunk"]
        if hunk["removed"]:
            shown = "\n".join("    " + fileio.line_text(line) for line in hunk["removed"])
            return f"edit {state['target']} and put back what the fix replaced:\n{shown}"
        return f"edit {state['target']} and remove what the fix added (shown above as 'as the fix left it')"


@dataclass(frozen=True)
class ReplaceLine(_TextEdit):
    """Replace one line of a text file (a shell startup file, say). Refuses when the line
    no longer reads ``old``: the file changed since it was diagnosed."""

    path: str
    line: int  # 1-based, lines ending at \n only, as the shell and sed count them
    old: str
    new: str
    reason: str = ""
    kind: str = field(default="replace-line", init=False)

    def describe(self) -> str:
        return f"edit {self.path} line {self.line}" + (f" ({self.reason})" if self.reason else "")

    @property
    def masked(self) -> bool:
        """Planned from redacted facts: the line holds a secret the plan never saw."""
        from llmdoctor.redact import REDACTED

        return REDACTED in self.old

    def _live_pair(self, live: Optional[str]) -> tuple:
        """(old, new) for the line as it is on disk. A masked plan's placeholders stand for
        whatever the live line holds there; the new line gets the same values back."""
        if not self.masked or live is None:
            return self.old, self.new
        import re

        from llmdoctor.redact import REDACTED

        pieces = self.old.split(REDACTED)
        match = re.fullmatch("(.+?)".join(re.escape(p) for p in pieces), live, re.DOTALL)
        if match is None or self.new.count(REDACTED) != len(match.groups()):
            return self.old, self.new
        new_pieces = self.new.split(REDACTED)
        new = new_pieces[0] + "".join(value + rest for value, rest in zip(match.groups(), new_pieces[1:]))
        return live, new

    def _new_content(self, current: Optional[bytes]) -> bytes:
        text = _decode(current)
        live = textedit.read_line(text, self.line)
        old, new = self._live_pair(live)
        if live == new:
            return current
        try:
            return _encode(textedit.replace_line(text, self.line, old, new))
        except textedit.EditConflict:
            raise ActionError(f"line {self.line} changed since it was diagnosed; run the check again") from None

    def bash(self) -> list:
        if self.masked:  # a runnable script never holds a placeholder that would replace the secret
            return [f"#   line {self.line} of {self.path} holds a secret (masked here); llmdoctor edits it itself",
                    f"#   was: {self.old}", f"#   new: {self.new}"]
        # GNU sed's "Nc\" command replaces line N; backslashes in the text are doubled
        program = str(self.line) + "c\\\n" + self.new.replace("\\", "\\\\")
        return [f"#   was: {self.old}", f"sed -i {shlex.quote(program)} {shlex.quote(self.path)}"]

    def powershell(self) -> list:
        if self.masked:
            return [f"# line {self.line} of {self.path} holds a secret (masked here); llmdoctor edits it itself"]
        return [f"$lines = Get-Content -LiteralPath {ps_quote(self.path)}",
                f"$lines[{self.line - 1}] = {ps_quote(self.new)}",
                f"Set-Content -LiteralPath {ps_quote(self.path)} -Value $lines"]


@dataclass(frozen=True)
class SetShellBlock(_TextEdit):
    """Replace (or append) llmdoctor's marked block ``name`` in a shell startup file."""

    path: str
    name: str
    lines: tuple
    kind: str = field(default="shell-block", init=False)
    new_terminal = True

    def describe(self) -> str:
        return f"set the '{self.name}' block in {self.path}"

    def _new_content(self, current: Optional[bytes]) -> bytes:
        return _encode(textedit.replace_block(_decode(current), self.name, list(self.lines)))

    def _manual_step(self, state: dict) -> str:
        return (f"edit {state['target']}: remove the lines between '# >>> llmdoctor {self.name} >>>' and "
                f"'# <<< llmdoctor {self.name} <<<' if you no longer want them")

    def bash(self) -> list:
        return [f"# (an earlier '{self.name}' block, if any, is replaced rather than repeated)",
                f"cat >> {shlex.quote(self.path)} <<'LLMDOCTOR'", *self.lines, "LLMDOCTOR"]


_MISSING = object()


@dataclass(frozen=True)
class SetJsonValue(_FileAction):
    """Set one value inside a JSON file (creating the file and objects on the way), leaving
    everything else in it untouched: for files whose other values llmdoctor must not see."""

    path: str
    keys: tuple  # ("env_vars", "HF_ENDPOINT")
    value: str
    reason: str = ""
    kind: str = field(default="json-value", init=False)
    backup_wanted = False

    def describe(self) -> str:
        return f"set {'.'.join(self.keys)} in {self.path}" + (f" ({self.reason})" if self.reason else "")

    @staticmethod
    def _load(current: Optional[bytes]) -> dict:
        data = json.loads(current.decode("utf-8")) if current and current.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("it does not hold a JSON object")
        return data

    def _lookup(self, data: dict):
        node: Any = data
        for key in self.keys:
            if not isinstance(node, dict) or key not in node:
                return _MISSING
            node = node[key]
        return node

    def _new_content(self, current: Optional[bytes]) -> bytes:
        data = self._load(current)
        if current is not None and self._lookup(data) == self.value:
            return current
        node = data
        for key in self.keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key} is not an object")
        node[self.keys[-1]] = self.value
        return (json.dumps(data, indent=2) + "\n").encode("utf-8")

    def _undo_data(self, current: Optional[bytes], new: bytes) -> dict:
        data = self._load(current)
        old = self._lookup(data)
        created = 0  # how many of the enclosing objects the edit created
        node: Any = data
        for key in self.keys[:-1]:
            if isinstance(node, dict) and key in node:
                node = node[key]
            else:
                created = len(self.keys) - 1 - self.keys.index(key)
                break
        return {"before_b64": None if current is None else base64.b64encode(current).decode("ascii"),
                "had_value": old is not _MISSING, "old_value": None if old is _MISSING else old,
                "created_objects": created}

    def _reverse_region(self, current: bytes, state: dict) -> Optional[bytes]:
        try:
            data = self._load(current)
        except ValueError as exc:
            raise textedit.EditConflict(f"it is no longer a JSON object ({exc})") from None
        now = self._lookup(data)
        if now != self.value:
            raise textedit.EditConflict(f"{'.'.join(self.keys)} was set to {self.value!r} by the fix and is now "
                                        f"{'(absent)' if now is _MISSING else repr(now)}")
        parents = [data]
        for key in self.keys[:-1]:
            parents.append(parents[-1][key])
        if state["had_value"]:
            parents[-1][self.keys[-1]] = state["old_value"]
        else:
            del parents[-1][self.keys[-1]]
            for depth in range(len(self.keys) - 1, len(self.keys) - 1 - state["created_objects"], -1):
                if not parents[depth]:
                    del parents[depth - 1][self.keys[depth - 1]]
        if not data and not state.get("existed"):
            return None
        return (json.dumps(data, indent=2) + "\n").encode("utf-8")

    def _manual_step(self, state: dict) -> str:
        previous = repr(state["old_value"]) if state["had_value"] else "nothing (remove the key)"
        return f"set {'.'.join(self.keys)} in {state['target']} back to {previous} yourself"

    def bash(self) -> list:
        chain = "".join(f".setdefault({k!r}, {{}})" for k in self.keys[:-1])
        return [f"python3 - {shlex.quote(self.path)} {shlex.quote(self.value)} <<'LLMDOCTOR'",
                "import json, os, sys",
                "path, value = sys.argv[1], sys.argv[2]",
                "data = json.load(open(path)) if os.path.exists(path) else {}",
                f"data{chain}[{self.keys[-1]!r}] = value",
                "json.dump(data, open(path, 'w'), indent=2)",
                "LLMDOCTOR"]


class _WholeFile(_FileAction):
    """A file whose whole content the fix decides: undo restores the old bytes, or removes a
    file the fix created, only while the file is still as the fix left it."""

    def _undo_data(self, current: Optional[bytes], new: bytes) -> dict:
        return {"before_b64": None if current is None else base64.b64encode(current).decode("ascii")}

    def _manual_step(self, state: dict) -> str:
        if state.get("existed"):
            return f"compare {state['target']} with {state.get('backup') or 'your own copy'} and merge by hand"
        return f"remove {state['target']} yourself if you no longer need it"


@dataclass(frozen=True)
class WriteFile(_WholeFile):
    """Replace a file's content (creating it if needed); the old content is journaled and,
    with ``backup``, also kept beside it as ``NAME.llmdoctor-backup``."""

    path: str
    content: str
    backup: bool = True
    reason: str = ""
    kind: str = field(default="write-file", init=False)

    @property
    def backup_wanted(self) -> bool:
        return self.backup

    def describe(self) -> str:
        return f"rewrite {self.path}" + (f" ({self.reason})" if self.reason else "")

    def _new_content(self, current: Optional[bytes]) -> bytes:
        return self.content.encode("utf-8")

    def bash(self) -> list:
        return [f"cat > {shlex.quote(self.path)} <<'LLMDOCTOR'", self.content.rstrip("\n"), "LLMDOCTOR"]

    def powershell(self) -> list:
        return [f"Set-Content -LiteralPath {ps_quote(self.path)} -Encoding utf8 -Value @'",
                self.content.rstrip("\n"), "'@"]


@dataclass(frozen=True)
class CopyFile(_WholeFile):
    """Copy one file; the destination's previous content (or its absence) is journaled, so
    undo restores what was replaced and removes what was added."""

    source: str
    destination: str
    needs_admin: bool = False  # into Program Files, say
    kind: str = field(default="copy-file", init=False)
    backup_wanted = False

    @property
    def file(self) -> str:
        return self.destination

    @property
    def scope(self) -> str:
        return "machine" if self.needs_admin else "user"

    def describe(self) -> str:
        return f"copy {self.source} to {self.destination}"

    def preflight(self, env: ActionEnv) -> list:
        if self.needs_admin and not env.is_admin:
            return [f"{self.describe()}: needs administrator rights (run from an elevated terminal)"]
        if not os.path.isfile(self.source):
            return [f"{self.describe()}: {self.source} does not exist"]
        return _FileAction.preflight(self, env)

    def _new_content(self, current: Optional[bytes]) -> bytes:
        try:
            with open(self.source, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise ActionError(f"cannot read {self.source}: {exc.strerror or exc}") from None

    def bash(self) -> list:
        return [f"cp {shlex.quote(self.source)} {shlex.quote(self.destination)}"]

    def powershell(self) -> list:
        return [f"Copy-Item -LiteralPath {ps_quote(self.source)} -Destination {ps_quote(self.destination)} -Force"]


# ----------------------------------------------------------------------------- programs


def _run(argv: list, timeout: float, env: Optional[dict] = None) -> None:
    from llmdoctor import proc

    result = proc.run_python(argv, timeout=timeout, env=env)  # a private folder: `-m pip` imports nothing planted
    if not result.ok:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ActionError(result.error or f"exit {result.returncode}: {' | '.join(tail)}")


def _requirement_name(requirement: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(requirement).name
    except InvalidRequirement:
        return requirement


VERSIONS_SCRIPT = ("import json,sys\nfrom importlib import metadata\nout={}\n"
                   "for n in sys.argv[1:]:\n"
                   "    try: out[n]=metadata.version(n)\n"
                   "    except metadata.PackageNotFoundError: out[n]=None\n"
                   "print(json.dumps(out))")


def installed_versions(python: str, names: list) -> dict:
    from llmdoctor import proc

    result = proc.run_python([python, "-c", VERSIONS_SCRIPT, *names], timeout=30)
    try:
        return json.loads(result.stdout)
    except ValueError:
        return {n: None for n in names}


def restore_pip(python: str, versions: dict, index_url: Optional[str] = None) -> str:
    reinstall = [f"{name}=={version}" for name, version in versions.items() if version]
    remove = [name for name, version in versions.items() if not version]
    problems = []
    if reinstall:
        argv = [python, "-m", "pip", "install", *reinstall]
        if index_url:
            argv += ["--extra-index-url", index_url]
        try:
            _run(argv, 1800)
        except ActionError:
            problems.append(f"reinstalling {', '.join(reinstall)} failed")
    if remove:
        try:
            _run([python, "-m", "pip", "uninstall", "-y", *remove], 600)
        except ActionError:
            problems.append(f"removing {', '.join(remove)} failed")
    return "; ".join(problems)


class _PipAction(Action):
    scope = "user"  # the target interpreter's environment
    def _names(self) -> list:  # pragma: no cover
        raise NotImplementedError

    def preflight(self, env: ActionEnv) -> list:
        if not os.path.exists(self.python):
            return [f"{self.describe()}: interpreter {self.python} not found"]
        return []

    def prepare(self, env: ActionEnv) -> dict:
        return {"versions": installed_versions(self.python, self._names())}

    def apply(self, env: ActionEnv, state: dict) -> None:
        _run(self.argv(), 1800)

    def reverse(self, env: ActionEnv, state: dict) -> str:
        return restore_pip(self.python, state.get("versions", {}), getattr(self, "restore_index_url", None))

    def bash(self) -> list:
        return [" ".join(shlex.quote(a) for a in self.argv())]

    def powershell(self) -> list:
        return ["& " + " ".join(ps_quote(a) for a in self.argv())]


@dataclass(frozen=True)
class PipInstall(_PipAction):
    """``python -m pip install`` in the target interpreter; previous versions are journaled."""

    python: str
    requirements: tuple
    index_url: Optional[str] = None
    extra_args: tuple = ()
    restore_index_url: Optional[str] = None  # where the versions it replaces came from, for undo
    kind: str = field(default="pip-install", init=False)

    def argv(self) -> list:
        argv = [self.python, "-m", "pip", "install", *self.requirements]
        if self.index_url:
            argv += ["--index-url", self.index_url]
        return argv + list(self.extra_args)

    def _names(self) -> list:
        return [_requirement_name(r) for r in self.requirements]

    def describe(self) -> str:
        return "pip install " + " ".join(self.requirements) + (f" from {self.index_url}" if self.index_url else "")


@dataclass(frozen=True)
class PipUninstall(_PipAction):
    """``python -m pip uninstall -y`` in the target interpreter; undo reinstalls the versions."""

    python: str
    names: tuple
    kind: str = field(default="pip-uninstall", init=False)

    def argv(self) -> list:
        return [self.python, "-m", "pip", "uninstall", "-y", *self.names]

    def _names(self) -> list:
        return list(self.names)

    def describe(self) -> str:
        return "pip uninstall " + " ".join(self.names)


@dataclass(frozen=True)
class RunCommand(Action):
    """A command with a named inverse (``undo_argv``); without one it cannot be undone."""

    argv: tuple
    description: str
    undo_argv: Optional[tuple] = None
    needs_admin: bool = False
    timeout: float = 600.0
    kind: str = field(default="run", init=False)

    @property
    def scope(self) -> str:
        return "machine" if self.needs_admin else "user"

    def describe(self) -> str:
        return self.description

    def apply(self, env: ActionEnv, state: dict) -> None:
        _run(list(self.argv), self.timeout)

    def reverse(self, env: ActionEnv, state: dict) -> str:
        if not self.undo_argv:
            return f"'{self.description}' cannot be undone automatically"
        try:
            _run(list(self.undo_argv), self.timeout)
        except ActionError as exc:
            return f"undoing '{self.description}' failed: {exc}"
        return ""

    def bash(self) -> list:
        return [("sudo " if self.needs_admin else "") + " ".join(shlex.quote(a) for a in self.argv)]

    def powershell(self) -> list:
        return ["& " + " ".join(ps_quote(a) for a in self.argv)]


def _package_action():
    from llmdoctor.package_install import PackageInstall

    return PackageInstall


ACTION_TYPES = {cls.__dataclass_fields__["kind"].default: cls for cls in (
    SetEnvVar, PrependPathEntry, DeleteEnvVar, BroadcastEnvironment, WriteFile, ReplaceLine, SetShellBlock,
    SetJsonValue, CopyFile, PipInstall, PipUninstall, RunCommand)}
TUPLE_FIELDS = ("requirements", "extra_args", "argv", "undo_argv", "lines", "keys", "expected", "names", "packages")


def action_from_json(data: dict):
    """An action from its journal form; unknown kinds and bad fields are an :class:`ActionError`."""
    if not isinstance(data, dict):
        raise ActionError("a journal entry's action is not an object")
    data = dict(data)
    kind = data.pop("kind", None)
    types = dict(ACTION_TYPES)
    types["package-install"] = _package_action()
    cls = types.get(kind)
    if cls is None:
        raise ActionError(f"unknown action kind {kind!r}")
    for key in TUPLE_FIELDS:
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    try:
        return cls(**data)
    except TypeError as exc:
        raise ActionError(f"a {kind} action with wrong fields ({exc})") from None
