"""How PATH entries are compared and how a shell startup file spells them: shared by the
`path` check (which traces an entry to the line that adds it) and its fix (which edits that line).
"""

from __future__ import annotations

import re

__all__ = ["entry_pattern", "home_spellings", "mentions_entry", "normalise_posix", "split_path"]


def split_path(value: str, separator: str) -> list:
    return value.split(separator) if value else []


def normalise_posix(entry: str) -> str:
    return entry.rstrip("/") or "/"


def entry_pattern(entry: str) -> re.Pattern:
    """An entry as a whole word of a PATH assignment ('/usr/bin' is not in '/usr/bin/x')."""
    return re.compile(r"(?<=[=:\"' ])" + re.escape(entry) + r"(?=$|[:\"' ;])")


def mentions_entry(line: str, entry: str) -> bool:
    return bool(entry) and "PATH" in line and bool(entry_pattern(entry).search(line))


def home_spellings(entry: str, home: str) -> list:
    """How a startup file may spell an entry under HOME: as is, $HOME/..., ${HOME}/..., ~/..."""
    spellings = [entry]
    if home and home != "/" and (entry == home or entry.startswith(home.rstrip("/") + "/")):
        rest = entry[len(home.rstrip("/")):]
        spellings += [prefix + rest for prefix in ("$HOME", "${HOME}", "~")]
    return spellings
