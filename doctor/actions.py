"""The closed set of things a fix may do, as data.

Because a plan is a list of these, it can be shown as a bash or PowerShell script before
anything happens, checked for privileges, applied, journaled with its before-state and
undone. The executor (``llmdoctor.executor``) is what carries them out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional


@dataclass(frozen=True)
class SetEnvVar:
    """Set a persistent Windows environment variable (HKCU or HKLM ``Environment``)."""

    scope: str  # "user" | "machine"
    name: str
    value: str
    value_type: str = "REG_EXPAND_SZ"
    # the (value, type) the plan was made from; the executor refuses when the live value
    # differs (changed since, or the plan saw a redacted copy), so nothing is overwritten blind
    expected: Optional[tuple] = None
    kind: str = field(default="set-env", init=False)

    @property
    def needs_admin(self) -> bool:
        return self.scope == "machine"

    def describe(self) -> str:
        return f"set {self.scope} variable {self.name} ({self.value_type}, {len(self.value):,} characters)"


@dataclass(frozen=True)
class PrependPathEntry:
    """Put a folder first in a Windows ``Path`` value (user or machine), computed from the
    live value at apply time, keeping its other entries and its registry type."""

    scope: str
    entry: str
    kind: str = field(default="prepend-path", init=False)

    @property
    def needs_admin(self) -> bool:
        return self.scope == "machine"

    def describe(self) -> str:
        return f"put {self.entry} first in the {self.scope} Path"


@dataclass(frozen=True)
class DeleteEnvVar:
    scope: str
    name: str
    kind: str = field(default="delete-env", init=False)

    @property
    def needs_admin(self) -> bool:
        return self.scope == "machine"

    def describe(self) -> str:
        return f"delete {self.scope} variable {self.name}"


@dataclass(frozen=True)
class BroadcastEnvironment:
    """Tell running programs (Explorer, new terminals) that the environment changed."""

    kind: str = field(default="broadcast-env", init=False)
    needs_admin = False

    def describe(self) -> str:
        return "broadcast WM_SETTINGCHANGE ('Environment') so new terminals see the change"


@dataclass(frozen=True)
class WriteFile:
    """Replace a file's content (creating it if needed); the old content is journaled and,
    with ``backup``, also kept beside it as ``NAME.llmdoctor-backup``."""

    path: str
    content: str
    backup: bool = True
    reason: str = ""
    kind: str = field(default="write-file", init=False)
    needs_admin = False  # decided at preflight from the file's permissions

    def describe(self) -> str:
        return f"rewrite {self.path}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class ReplaceLine:
    """Replace one line of a text file (a shell startup file, say). Refuses when the line
    no longer reads ``old``: the file changed since it was diagnosed."""

    path: str
    line: int  # 1-based
    old: str
    new: str
    reason: str = ""
    kind: str = field(default="replace-line", init=False)
    needs_admin = False

    def describe(self) -> str:
        return f"edit {self.path} line {self.line}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class SetShellBlock:
    """Replace (or append) llmdoctor's marked block ``name`` in a shell startup file."""

    path: str
    name: str
    lines: tuple
    kind: str = field(default="shell-block", init=False)
    needs_admin = False

    def describe(self) -> str:
        return f"set the '{self.name}' block in {self.path}"


@dataclass(frozen=True)
class SetJsonValue:
    """Set one value inside a JSON file (creating the file and objects on the way), leaving
    everything else in it untouched: for files whose other values llmdoctor must not see."""

    path: str
    keys: tuple  # ("env_vars", "HF_ENDPOINT")
    value: str
    reason: str = ""
    kind: str = field(default="json-value", init=False)
    needs_admin = False

    def describe(self) -> str:
        return f"set {'.'.join(self.keys)} in {self.path}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class CopyFile:
    """Copy one file; the destination's previous content (or its absence) is journaled, so
    undo restores what was replaced and removes what was added."""

    source: str
    destination: str
    needs_admin: bool = False  # into Program Files, say
    kind: str = field(default="copy-file", init=False)

    def describe(self) -> str:
        return f"copy {self.source} to {self.destination}"


@dataclass(frozen=True)
class PipInstall:
    """``python -m pip install`` in the target interpreter; previous versions are journaled."""

    python: str
    requirements: tuple
    index_url: Optional[str] = None
    extra_args: tuple = ()
    restore_index_url: Optional[str] = None  # where the versions it replaces came from, for undo
    kind: str = field(default="pip-install", init=False)
    needs_admin = False

    def argv(self) -> list:
        argv = [self.python, "-m", "pip", "install", *self.requirements]
        if self.index_url:
            argv += ["--index-url", self.index_url]
        return argv + list(self.extra_args)

    def describe(self) -> str:
        return "pip install " + " ".join(self.requirements) + (
            f" from {self.index_url}" if self.index_url else "")


@dataclass(frozen=True)
class PipUninstall:
    """``python -m pip uninstall -y`` in the target interpreter; undo reinstalls the versions."""

    python: str
    names: tuple
    kind: str = field(default="pip-uninstall", init=False)
    needs_admin = False

    def argv(self) -> list:
        return [self.python, "-m", "pip", "uninstall", "-y", *self.names]

    def describe(self) -> str:
        return "pip uninstall " + " ".join(self.names)


@dataclass(frozen=True)
class RunCommand:
    argv: tuple
    description: str
    undo_argv: Optional[tuple] = None
    needs_admin: bool = False
    timeout: float = 600.0
    kind: str = field(default="run", init=False)

    def describe(self) -> str:
        return self.description


ACTION_TYPES = {cls.__dataclass_fields__["kind"].default: cls for cls in (
    SetEnvVar, PrependPathEntry, DeleteEnvVar, BroadcastEnvironment, WriteFile, ReplaceLine, SetShellBlock,
    SetJsonValue, CopyFile, PipInstall, PipUninstall, RunCommand)}


def action_to_json(action) -> dict:
    data = asdict(action)
    data["kind"] = action.kind
    return data


def action_from_json(data: dict):
    data = dict(data)
    cls = ACTION_TYPES[data.pop("kind")]
    for key in ("requirements", "extra_args", "argv", "undo_argv", "lines", "keys", "expected", "names"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    return cls(**data)
