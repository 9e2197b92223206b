"""The catalogue of findings: every kind a rule may emit, with why it matters, how to fix it
and the public sources behind it (``llmdoctor explain``, ``docs/findings.md``).

Each check declares its kinds beside its rules (``Check.findings``); the engine declares the
few it emits itself here. Ids of the engine's per-check kinds are written with ``<check>``
(``<check>.probe-failed``) and match that suffix after any check's id.
"""

from __future__ import annotations

import difflib
import fnmatch
import textwrap
from dataclasses import dataclass
from typing import Optional

from llmdoctor.models import FindingKind

__all__ = ["ENGINE_FINDINGS", "Entry", "TEMPLATE", "entries", "lookup", "nearest_id", "render_markdown",
           "render_text", "unknown_pattern"]

TEMPLATE = "<check>"

ENGINE_FINDINGS = (
    FindingKind(
        f"{TEMPLATE}.probe-failed", "warning", "a check's probe could not examine the machine",
        why="A probe records why it failed instead of guessing (a tool that hung, a file it may not read); "
            "the other checks ran, and this area is not judged.",
        fix="The message says what failed; rerun with -v, or collect a snapshot for a bug report.",
    ),
    FindingKind(
        f"{TEMPLATE}.malformed-facts", "error", "a snapshot's facts for a check are malformed",
        why="The snapshot was edited, damaged, or written by an llmdoctor whose facts differ; the field that "
            "broke the rules is named, and the other checks were judged.",
        fix="Collect the snapshot again with 'llmdoctor collect'.",
    ),
    FindingKind(
        f"{TEMPLATE}.rules-failed", "error", "a check's rules raised an error: a bug in that check",
        why="Rules are pure functions of facts; one that raises is a bug, reported instead of crashing the run.",
        fix="Report it with the output of 'llmdoctor collect --share'.",
    ),
    FindingKind(
        "plugins.load-failed", "warning", "a plugin's check or fix could not be loaded",
        why="A third-party package registered an entry point that fails to import or is not a Check/Fix; the "
            "other checks ran.",
        fix="Reinstall or remove the package that provides it; LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD=1 loads "
            "only llmdoctor's own checks.",
        references=("https://packaging.python.org/en/latest/specifications/entry-points/",),
    ),
    FindingKind(
        "config.acknowledgement-expired", "warning", "an acknowledgement in the configuration has expired",
        why="Acknowledged findings do not count towards the exit code until their date; after it they count again.",
        fix="Renew the date in the configuration, or fix the finding.",
    ),
    FindingKind(
        "config.acknowledgement-stale", "info", "an acknowledgement matches no finding any more",
        why="The problem it excused is gone; the entry would silently excuse a future one.",
        fix="Remove it from the configuration.",
    ),
)


@dataclass(frozen=True)
class Entry:
    """A catalogue entry and where it comes from: the check that declares it (empty for the
    engine's own) and the distribution that provides that check."""

    kind: FindingKind
    check: str = ""
    source: str = "llmdoctor"

    def to_json(self) -> dict:
        return {**self.kind.to_json(), "check": self.check or None, "source": self.source}


def entries(registry, *, check_ids=None) -> dict:
    """{id: Entry} of every declared kind: the engine's, then each check's in report order
    (``check_ids``: only these checks', importing no other)."""
    found = {kind.id: Entry(kind) for kind in ENGINE_FINDINGS}
    checks = [registry.checks[c] for c in (registry.checks if check_ids is None else check_ids)]
    for check in sorted(checks, key=lambda c: (c.order, c.id)):
        source = registry.source_of("check", check.id).split(" ")[0]
        for kind in check.findings:
            found.setdefault(kind.id, Entry(kind, check.id, source))
    return found


def lookup(finding_id: str, catalogue: dict, check_ids) -> Optional[Entry]:
    """The entry that declares ``finding_id``: its own, or the engine's ``<check>.suffix`` one."""
    if finding_id in catalogue:
        return catalogue[finding_id]
    check, _, suffix = finding_id.partition(".")
    if check in check_ids:
        return catalogue.get(f"{TEMPLATE}.{suffix}")
    return None


def unknown_pattern(pattern: str, catalogue: dict, check_ids) -> bool:
    """True when an acknowledgement's id (a glob such as ``path.*``) matches no declared kind."""
    if lookup(pattern, catalogue, check_ids):
        return False
    concrete = set(catalogue)
    for template in (i for i in catalogue if i.startswith(TEMPLATE + ".")):
        concrete |= {f"{c}.{template.split('.', 1)[1]}" for c in check_ids}
    return not any(fnmatch.fnmatchcase(i, pattern) for i in concrete)


def nearest_id(word: str, catalogue: dict) -> str:
    """'; did you mean X?' for the closest declared id, or ''."""
    match = difflib.get_close_matches(word[:100], sorted(i for i in catalogue if not i.startswith("<")),
                                      n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _fix_commands(fixes: tuple) -> str:
    return ", ".join(f"llmdoctor fix --{fix}" for fix in fixes)


def _wrapped(text: str) -> list:
    return textwrap.wrap(text, width=88, initial_indent="  ", subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)


def render_text(entry: Entry, *, shown_id: str = "") -> str:
    """The entry as ``llmdoctor explain ID`` prints it (``shown_id``: the id asked for, when the
    engine's ``<check>.`` kind declares it)."""
    kind = entry.kind
    severities = "/".join(kind.severities) if kind.severities else kind.severity
    origin = f"check {entry.check}" if entry.check else "llmdoctor's engine"
    title = kind.id if not shown_id or shown_id == kind.id else f"{shown_id} (declared as {kind.id})"
    lines = [f"{title}  ({severities}; {origin}, {entry.source})", "", kind.summary]
    if kind.why:
        lines += ["", "Why it matters:", *_wrapped(kind.why)]
    if kind.fix or kind.fixes:
        lines += ["", "How to fix it:"]
        if kind.fix:
            lines += _wrapped(kind.fix)
        if kind.fixes:
            lines.append(f"  {_fix_commands(kind.fixes)}")
    if kind.references:
        lines += ["", "References:"] + [f"  {url}" for url in kind.references]
    return "\n".join(lines)


def render_markdown(catalogue: dict) -> str:
    """docs/findings.md: every declared kind, grouped by check."""
    by_check: dict = {}
    for entry in catalogue.values():
        by_check.setdefault(entry.check or "(engine)", []).append(entry)
    out = [
        "# Findings",
        "",
        "Every kind of finding llmdoctor's own checks can report, generated from the declarations beside "
        "their rules by `python docs/make_findings.py`; a test keeps it current. "
        "`llmdoctor explain ID` prints one entry, `llmdoctor explain --list` all of them. "
        f"`{TEMPLATE}` stands for any check's id.",
        "",
    ]
    for check, group in by_check.items():
        out += [f"## {check}", ""]
        for entry in group:
            kind = entry.kind
            severities = "/".join(kind.severities) if kind.severities else kind.severity
            out += [f"### `{kind.id}`", "", f"*{severities}* — {kind.summary}", ""]
            if kind.why:
                out += [f"**Why it matters.** {kind.why}", ""]
            if kind.fix or kind.fixes:
                fix = " ".join(part for part in (kind.fix, f"`{_fix_commands(kind.fixes)}`" if kind.fixes else "")
                               if part)
                out += [f"**How to fix it.** {fix}", ""]
            if kind.references:
                out += ["**References.** " + ", ".join(f"<{url}>" for url in kind.references), ""]
    return "\n".join(out).rstrip() + "\n"
