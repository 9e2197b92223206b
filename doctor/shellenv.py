"""Environment variables for new terminals on POSIX: which startup file a user's shell
reads, the marked block that llmdoctor keeps there, and what a fresh login shell sees.

Scope (documented in the README): the user's own interactive startup file, chosen by
``$SHELL`` (bash: ~/.bashrc, zsh: ~/.zshrc, fish: ~/.config/fish/config.fish, anything
else: ~/.profile). Never a system file.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Callable, Optional

from llmdoctor.textedit import BEGIN, END, replace_block  # noqa: F401 - the block format lives there


def _unsafe_character(value: str) -> Optional[str]:
    for character in value:
        code = ord(character)
        if code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F or character in "\u2028\u2029":
            return f"U+{code:04X}"
    return None


def quote_for_shell(shell: str, value: str) -> str:
    """``value`` as one literal word for ``shell``'s startup file.

    POSIX shells (sh, bash, zsh, ksh, dash): single quotes, in which nothing is special
    (https://pubs.opengroup.org/onlinepubs/9799919799/utilities/V3_chap02.html#tag_19_02_02).
    fish: single quotes too, but there ``\\'`` and ``\\\\`` are escapes
    (https://fishshell.com/docs/current/language.html#quotes), so both are escaped, not
    POSIX-quoted (a POSIX-quoted ``\\'`` ends fish's string early and runs what follows).
    Control characters and line separators are refused: no startup file carries them safely.
    """
    bad = _unsafe_character(value)
    if bad:
        raise ValueError(f"it contains a control character ({bad})")
    if os.path.basename(shell or "") == "fish":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return shlex.quote(value)


def block_lines(name: str, shell: str, variables: dict, path_prepend: Optional[str] = None,
                library_path_prepend: tuple = ()) -> list:
    """The lines of a marked block setting ``variables`` (and putting a folder first on PATH,
    and folders first on LD_LIBRARY_PATH), each value quoted for ``shell``. Raises
    ``ValueError`` for a value no shell can carry (see :func:`quote_for_shell`)."""
    fish = os.path.basename(shell or "") == "fish"

    def q(value: str) -> str:
        return quote_for_shell(shell, value)

    lines = [BEGIN.format(name=name) + " (managed by 'llmdoctor fix'; undo with 'llmdoctor undo')"]
    for key, value in variables.items():
        lines.append(f"set -gx {key} {q(value)}" if fish else f"export {key}={q(value)}")
    if path_prepend:
        if fish:
            lines.append(f"fish_add_path --prepend --move {q(path_prepend)}")
        else:
            quoted = q(path_prepend)
            lines.append(f'case ":$PATH:" in *:{quoted}:*) ;; *) export PATH={quoted}":$PATH" ;; esac')
    for folder in reversed(library_path_prepend):  # the first named ends up first
        quoted = q(folder)
        if fish:
            lines.append(f"contains -- {quoted} $LD_LIBRARY_PATH; or set -gx --path LD_LIBRARY_PATH {quoted} "
                         "$LD_LIBRARY_PATH")
        else:
            lines.append(f'case ":${{LD_LIBRARY_PATH:-}}:" in *:{quoted}:*) ;; *) export LD_LIBRARY_PATH={quoted}'
                         '"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac')
    lines.append(END.format(name=name))
    return lines


def login_shell_environment(timeout: float = 10.0) -> Optional[dict]:
    """The environment a new terminal gets: a login, interactive shell from a minimal one."""
    from llmdoctor import proc

    shell = os.environ.get("SHELL") or "/bin/sh"
    home = os.path.expanduser("~")
    env = {"HOME": home, "USER": os.environ.get("USER", ""), "TERM": "dumb", "SHELL": shell,
           "PATH": "/usr/local/bin:/usr/bin:/bin"}
    marker = "LLMDOCTOR-ENV-BEGIN"
    # a new terminal is an interactive shell inside a login session: the login shell reads
    # ~/.profile (bash: ~/.bash_profile; zsh: ~/.zprofile), the interactive one ~/.bashrc or ~/.zshrc
    inner = f"exec {shlex.quote(shell)} -i -c 'echo {marker}; env'"
    result = proc.run([shell, "-l", "-c", inner], timeout=timeout, env=env)
    if marker not in result.stdout:
        return None
    environment = {}
    for line in result.stdout.split(marker, 1)[1].splitlines():
        key, separator, value = line.partition("=")
        if separator and key.replace("_", "").isalnum():
            environment[key] = value
    return environment


def new_terminal_reprobe(build: Callable[[dict, str], dict]) -> Callable[[str], Optional[dict]]:
    """A ``Fix.reprobe`` for fixes that change what new terminals see: ``build`` gets the
    environment of a fresh login shell and the target interpreter, and returns
    ``{check_id: facts}``. On Windows the ordinary probes already read the registry, so it
    gives None there."""

    def reprobe(python: str) -> Optional[dict]:
        if sys.platform == "win32":  # pragma: no cover
            return None
        environment = login_shell_environment()
        return build(environment, python) if environment is not None else None

    return reprobe
