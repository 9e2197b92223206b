"""The ``llmdoctor`` program: the commands people run most start without typer.

Importing typer (and its vendored click) costs more than everything ``llmdoctor check --only
path`` does, so three forms are served here directly, with typer's own behaviour:

- ``--help`` / ``-h``: the text typer prints, kept in ``llmdoctor.help_text`` (a test compares
  it with typer's output); only where typer would print it 78 columns wide (a terminal of 80
  columns or more, or no terminal);
- ``--version``;
- ``check`` with the options below, each given in a plain form; the values go to the same
  ``run_check`` the typer command calls (a test parses a corpus both ways and compares).

Anything else (another command, ``check --help``, an unknown or malformed option) goes to
the typer application, which also produces every usage error.
"""

from __future__ import annotations

import sys
from typing import Optional

__all__ = ["main", "parse_check"]

# check's options: flag -> (parameter, takes a value, repeatable)
CHECK_OPTIONS = {
    "--only": ("only", True, True),
    "--skip": ("skip", True, True),
    "--format": ("output_format", True, False),
    "-o": ("output", True, False),
    "--output": ("output", True, False),
    "--json": ("as_json", False, False),
    "-v": ("verbose", False, False),
    "--verbose": ("verbose", False, False),
    "--snapshot": ("snapshot", True, False),
    "--python": ("python", True, False),
    "--strict": ("strict", False, False),
    "--offline": ("offline", False, False),
    "--model": ("models", True, True),
    "--deep": ("deep", False, False),
    "--require": ("require", True, False),
}
PATH_PARAMETERS = ("output", "snapshot", "require")


def parse_check(argv: list) -> Optional[dict]:
    """``run_check``'s keyword arguments for ``check ARGS``, or None when typer must parse them."""
    from llmdoctor.cli_support import FORMATS

    if not argv or argv[0] != "check":
        return None
    values: dict = {}
    args = list(argv[1:])
    while args:
        token = args.pop(0)
        flag, equals, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        if flag not in CHECK_OPTIONS:
            return None
        name, takes_value, repeatable = CHECK_OPTIONS[flag]
        if not takes_value:
            if equals:
                return None
            values[name] = True
            continue
        if equals:
            value = inline
        elif args and not args[0].startswith("-"):
            value = args.pop(0)
        else:
            return None  # a missing value, or one click might read otherwise: typer says what is wrong
        if name == "output_format" and value not in FORMATS:
            return None
        if repeatable:
            values.setdefault(name, []).append(value)
        elif name in values:
            return None  # given twice: click keeps the last one; typer decides
        else:
            values[name] = value
    for name in PATH_PARAMETERS:
        if name in values:
            from pathlib import Path

            values[name] = Path(values[name])
    return values


def _help_fits() -> bool:
    """Whether typer would print exactly the kept text: full width (78 columns, on a terminal of 80
    or more, or none), and the program called llmdoctor (``python -m llmdoctor`` says so instead)."""
    import os
    import shutil

    name = os.path.basename(sys.argv[0]).lower()
    return name in ("llmdoctor", "llmdoctor.exe") and shutil.get_terminal_size().columns >= 80


def _start_target_probe(python: Optional[str]):
    """A full check reads the target interpreter: start it before anything else is imported (a
    --python that names nothing is left for the check to report)."""
    from llmdoctor.config import DEFAULT_THRESHOLDS
    from llmdoctor.target import TargetError, choose_target, start_probe

    try:  # the configuration is not read yet: its default probe timeout, doubled as run_check doubles it
        return start_probe(choose_target(python)[0], timeout=DEFAULT_THRESHOLDS["probe_timeout_s"] * 2)
    except TargetError:
        return None


def main() -> None:
    argv = sys.argv[1:]
    if argv in (["--help"], ["-h"]) and _help_fits():
        from llmdoctor.help_text import TOP_LEVEL_HELP

        sys.stdout.write(TOP_LEVEL_HELP)
        sys.stdout.flush()
        return
    if argv == ["--version"]:
        from llmdoctor import __version__

        print(f"llmdoctor {__version__}")
        return
    parsed = parse_check(argv)
    if parsed is not None:
        if not parsed.get("only") and parsed.get("snapshot") is None:
            parsed["target_started"] = _start_target_probe(parsed.get("python"))
        from llmdoctor.cli_support import guarded, run_check

        guarded(lambda: run_check(**parsed))
        return
    from llmdoctor.cli import main as typer_main

    typer_main()


if __name__ == "__main__":
    main()
