"""Edits to text files as data, and their inverse: pure functions, no I/O.

A fix changes a region of a file (a marked block, one line). What it changed is kept as a
*hunk*: the lines it removed, the lines it added, and the lines around them. Undo puts the
removed lines back where the added ones still stand, so whatever else happened to the file
since (the user's own edits, another fix's block) survives; when the added lines are no
longer there as the fix left them, undo refuses with a diff instead of guessing. This is
``patch -R`` with context, at line granularity.

Lines end at ``\\n`` only (see :func:`llmdoctor.fileio.shell_lines`); CRLF files keep
their CRLF, and a missing final newline stays missing where the fix did not touch it.
"""

from __future__ import annotations

import difflib
from typing import Optional

from llmdoctor.fileio import line_text, newline_of, shell_lines

BEGIN = "# >>> llmdoctor {name} >>>"
END = "# <<< llmdoctor {name} <<<"


class EditConflict(Exception):
    """The region an edit needs is not as expected; the message says how it differs."""


def replace_block(content: str, name: str, lines: list) -> str:
    """``content`` with llmdoctor's block ``name`` replaced by ``lines`` (appended if absent);
    everything outside the block is kept byte for byte."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    existing = shell_lines(content)
    newline = newline_of(content) if content else "\n"
    block = [line + newline for line in lines]
    start = next((i for i, line in enumerate(existing) if line.startswith(begin)), None)
    stop = None if start is None else next(
        (i for i in range(start, len(existing)) if existing[i].startswith(end)), None)
    if start is not None and stop is not None:
        return "".join(existing[:start] + block + existing[stop + 1:])
    prefix = content if not content or content.endswith("\n") else content + newline
    return prefix + (newline if prefix else "") + "".join(block)


def read_line(content: str, number: int) -> Optional[str]:
    """Line ``number`` (1-based) without its ending, or None past the end."""
    lines = shell_lines(content)
    if not 0 < number <= len(lines):
        return None
    return line_text(lines[number - 1]).rstrip("\r")


def replace_line(content: str, number: int, old: str, new: str) -> str:
    """``content`` with line ``number`` changed from ``old`` to ``new``, its ending kept."""
    lines = shell_lines(content)
    if read_line(content, number) != old:
        raise EditConflict(f"line {number} no longer reads {old!r}")
    current = lines[number - 1]
    lines[number - 1] = new + current[len(old):]
    return "".join(lines)


def make_hunk(before: str, after: str) -> dict:
    """What changed from ``before`` to ``after``: one contiguous run of whole lines."""
    a, b = shell_lines(before), shell_lines(after)
    prefix = 0
    while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(a), len(b)) - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    return {"line": prefix, "removed": a[prefix:len(a) - suffix], "added": b[prefix:len(b) - suffix],
            "context_before": a[prefix - 1] if prefix else None,
            "context_after": a[len(a) - suffix] if suffix else None}


def _score(lines: list, start: int, length: int, hunk: dict) -> int:
    score = 0
    before, after = hunk.get("context_before"), hunk.get("context_after")
    if (before is None and start == 0) or (start > 0 and lines[start - 1] == before):
        score += 1
    end = start + length
    if (after is None and end == len(lines)) or (end < len(lines) and lines[end] == after):
        score += 1
    return score


def reverse_hunk(current: str, hunk: dict) -> str:
    """``current`` with the hunk's added lines replaced by its removed ones.

    Raises :class:`EditConflict` with a short diff when the added lines are not there as the
    edit left them (changed or removed since).
    """
    lines = shell_lines(current)
    added, removed = list(hunk["added"]), list(hunk["removed"])
    size = len(added)
    candidates = [i for i in range(len(lines) - size + 1) if lines[i:i + size] == added]
    if size == 0:  # a pure deletion: only the context says where it was
        candidates = [i for i in candidates if _score(lines, i, 0, hunk) == 2]
    if not candidates:
        raise EditConflict(conflict_diff(lines, hunk))
    best = max(_score(lines, i, size, hunk) for i in candidates)
    nearest = min((i for i in candidates if _score(lines, i, size, hunk) == best),
                  key=lambda i: abs(i - hunk.get("line", 0)))
    end = nearest + size
    if removed and not removed[-1].endswith("\n") and end < len(lines):
        # the fix added the final newline of a file that had none; more now follows it
        removed[-1] += newline_of(current)
    return "".join(lines[:nearest] + removed + lines[end:])


def conflict_diff(lines: list, hunk: dict, limit: int = 12) -> str:
    """A short unified diff: what the fix left (``added``) against the closest region now."""
    added = hunk["added"]
    size = max(len(added), 1)
    best_start, best_ratio = min(hunk.get("line", 0), max(len(lines) - size, 0)), -1.0
    for start in range(0, max(len(lines) - size + 1, 1)):
        ratio = difflib.SequenceMatcher(a=added, b=lines[start:start + size], autojunk=False).ratio()
        if ratio > best_ratio:
            best_start, best_ratio = start, ratio
    region = lines[best_start:best_start + size]
    diff = list(difflib.unified_diff([line_text(x) for x in added], [line_text(x) for x in region],
                                     "as the fix left it", "now", lineterm="", n=1))
    if len(diff) > limit:
        diff = diff[:limit] + [f"... ({len(diff) - limit} more diff lines)"]
    return "\n".join(diff) if diff else "the lines the fix wrote are gone"
