"""Reading and writing the user's files the way the fix executor must: lines split as the
shell splits them, writes that keep a symlink a symlink, and nothing created through a
link someone planted.

- Lines end at ``\\n`` only. Python's ``str.splitlines`` also breaks at form feed,
  vertical tab, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028/U+2029 and a lone CR, which bash
  and sed do not, so a line number from ``splitlines`` can name a different line than
  the one ``sed -i 'Nc\\...'`` edits.
- :func:`atomic_write` writes through a symlinked file to its target (dotfile managers
  such as stow, chezmoi and yadm keep ``~/.bashrc`` as a link), into a temporary file
  created exclusively (``O_EXCL``: never through a planted link) beside the target, then
  renames it over the target; mode and owner are kept.
- :func:`create_exclusive` makes a new file that did not exist (a backup), complete
  before it becomes visible: a full disk leaves no truncated backup behind.

This module touches the file system; only the executor and probes use it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

MAX_EDIT_BYTES = 4 * 1024 * 1024  # a startup or configuration file larger than this is not edited


class FileIOError(Exception):
    """A file could not be read or written safely (the message says which and why)."""


def shell_lines(text: str) -> list:
    """``text`` split into lines at ``\\n`` only, each line keeping its ending."""
    if not text:
        return []
    lines = text.split("\n")
    result = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        result.append(lines[-1])
    return result


def read_shell_lines(path, limit: int = MAX_EDIT_BYTES, errors: str = "replace") -> list:
    """The lines of a text file as the shell reads them (``\n`` only; a CR before it dropped),
    without their endings; [] when there is no regular file. Raises :class:`FileIOError` for a
    file over ``limit``, so the caller can name it rather than skip it silently."""
    data = read_existing(str(path), limit)
    if data is None:
        return []
    return [line_text(line).rstrip("\r") for line in shell_lines(data.decode("utf-8", errors=errors))]


def line_text(line: str) -> str:
    """A line without its ending (``\\n`` and a CR before it)."""
    return line[:-1] if line.endswith("\n") else line


def newline_of(text: str) -> str:
    """The line ending a file mostly uses: CRLF when most of its lines end so."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf * 2 > text.count("\n") else "\n"


def sha256(data: Optional[bytes]) -> Optional[str]:
    import hashlib

    return None if data is None else hashlib.sha256(data).hexdigest()


def resolve_target(path: str) -> str:
    """The file a write to ``path`` must change: through symlinks to their final target
    (which need not exist yet); a loop of links is an error."""
    try:
        return os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)
    except (OSError, ValueError) as exc:  # pragma: no cover - loops raise on 3.13+ only
        raise FileIOError(f"{path}: {exc}") from None


def read_existing(path: str, limit: int = MAX_EDIT_BYTES) -> Optional[bytes]:
    """The bytes of a regular file, or None when there is none; never follows into a FIFO
    or a device, and refuses a file over ``limit`` by name."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileIOError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FileIOError(f"{path} is not a regular file")
    if info.st_size > limit:
        raise FileIOError(f"{path} is {info.st_size:,} bytes, over the {limit:,} llmdoctor edits")
    try:
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    except OSError as exc:
        raise FileIOError(f"cannot read {path}: {exc.strerror or exc}") from None


def temporary_name(target: str) -> str:
    """A fresh, unguessable name beside ``target`` for an atomic write."""
    folder, name = os.path.split(target)
    return os.path.join(folder, f".{name}.llmdoctor-{os.urandom(6).hex()}.tmp")


def _write_new(path: str, data: bytes, mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags, mode)
    try:
        with open(descriptor, "wb", closefd=True) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise


def atomic_write(path: str, data: bytes, *, temporary: Optional[str] = None,
                 default_mode: int = 0o644, inherit_owner: bool = True) -> None:
    """Replace the content of ``path`` (through a symlink, to its target) all at once.

    ``temporary`` is the name to stage the data under (journaled by the caller, so an
    interrupted write can be cleaned up); it must not exist. The target keeps its mode and,
    when root writes a user's file, its owner.
    """
    target = resolve_target(path)
    folder = os.path.dirname(target) or "."
    temporary = temporary or temporary_name(target)
    if os.path.dirname(os.path.abspath(temporary)) != os.path.abspath(folder):
        raise FileIOError(f"{temporary} is not beside {target}")
    try:
        existing = os.lstat(target)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise FileIOError(f"cannot write {target}: {exc.strerror or exc}") from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise FileIOError(f"{target} is not a regular file")
    mode = stat.S_IMODE(existing.st_mode) if existing else default_mode
    try:
        os.makedirs(folder, exist_ok=True)
        _write_new(temporary, data, 0o600)
        os.chmod(temporary, mode)
        if existing is not None and hasattr(os, "chown") and (
                existing.st_uid != os.geteuid() or existing.st_gid != os.getegid()):
            try:
                os.chown(temporary, existing.st_uid, existing.st_gid)
            except PermissionError:
                pass
        elif existing is None and inherit_owner:
            _inherit_owner(temporary, folder)
        os.replace(temporary, target)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise FileIOError(f"cannot write {target}: {exc.strerror or exc}") from None


def _inherit_owner(path: str, folder: str) -> None:
    """A new file in a folder someone else owns (root fixing a user's HOME) belongs to them."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    try:
        owner = os.stat(folder)
        if owner.st_uid != 0:
            os.chown(path, owner.st_uid, owner.st_gid)
    except OSError:
        pass


def create_exclusive(path: str, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` with ``data`` only if nothing (not even a dangling link) is there;
    the file appears complete or not at all. Returns whether it was created."""
    if os.path.lexists(path):
        return False
    staging = temporary_name(path)
    try:
        _write_new(staging, data, mode)
        _inherit_owner(staging, os.path.dirname(path) or ".")
        try:
            os.link(staging, path)  # fails if anything appeared there meanwhile
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links
            if os.path.lexists(path):
                return False
            os.replace(staging, path)
        return True
    finally:
        try:
            os.unlink(staging)
        except OSError:
            pass


def remove_regular(path: str) -> bool:
    """Remove ``path`` if it is a regular file (never what a link points at)."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
            return True
    except OSError:
        pass
    return False


def writable(path: str) -> bool:
    """Whether this user could create or replace ``path`` (its target, for a link)."""
    target = Path(resolve_target(path))
    if target.exists():
        return os.access(target, os.W_OK) and os.access(target.parent, os.W_OK)
    for parent in target.parents:
        if parent.exists():
            return os.access(parent, os.W_OK)
    return False
