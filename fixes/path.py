"""The `path` fix: clean PATH up where it is set, and split an over-long Windows Path.

Windows (scope: the user Path, and the system Path when it needs it, which takes
administrator rights): drop missing, empty, relative and duplicate entries, unquote
quoted ones, turn ``foo.exe`` entries into their folder, and inline helper variables
(``%Path2%``) that did not expand. If a value is still longer than the environment
editor's 2,047 characters, move its tail into REG_SZ helper variables ``Path2``,
``Path3``... of the same scope, referenced from a REG_EXPAND_SZ Path: Windows builds
REG_SZ variables of a scope before it expands that scope's REG_EXPAND_SZ ones, so the
references expand. Types are kept, the change is broadcast, and undo restores the
values byte for byte.

POSIX (scope: the user's own shell startup files, never /etc): remove or repair each
bad entry on the startup-file line that adds it, one line at a time, with a backup.
Entries that no user file sets are explained as manual steps.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import re
from typing import Optional

from llmdoctor.actions import BroadcastEnvironment, DeleteEnvVar, ReplaceLine, SetEnvVar
from llmdoctor.checks.path import disabled_by_llmdoctor, probe_posix
from llmdoctor.knowledge.path_entries import entry_pattern, mentions_entry, split_path
from llmdoctor.knowledge.windows import (
    CORE_MACHINE_VARIABLES,
    CORE_USER_VARIABLES,
    EDITOR_LIMIT,
    PERCENT_REFERENCE,
    expand_windows,
    find_ci,
    normalise_windows,
)
from llmdoctor.models import Fix, FixContext, Plan
from llmdoctor.shellenv import new_terminal_reprobe

HELPER_REFERENCE = re.compile(r"^%([^%;]+)%$")
CORE_NAMES = {n.lower() for n in CORE_MACHINE_VARIABLES + CORE_USER_VARIABLES}


def plan(context: FixContext) -> Plan:
    facts = context.facts.get("path") or {}
    if facts.get("os") == "windows":
        return plan_windows(facts, context.options)
    return plan_posix(facts)


# ----------------------------------------------------------------------------- Windows


def _folder_facts(facts: dict) -> dict:
    known = dict(facts.get("listed_folders") or {})
    for entry in facts.get("entries", []):
        known[normalise_windows(entry["expanded"])] = entry
    return known


def _variables(facts: dict) -> dict:
    values = dict(facts.get("core_variables") or {})
    for scope in ("machine", "user"):
        for name, item in (facts.get("registry") or {}).get(scope, {}).items():
            if name.lower() != "path":
                values[name] = item["value"]
    return values


def plan_windows(facts: dict, options: dict) -> Plan:
    registry = facts.get("registry")
    result = Plan("path", "clean up Path in the registry")
    if not registry:
        result.manual_steps.append("the registry could not be read; edit Path in System "
                                   "Properties > Environment Variables")
        return result
    folders = _folder_facts(facts)
    variables = _variables(facts)
    split_name = options.get("split_variable", "Path2")
    seen: set = set()
    changes: list = []
    helpers_used: set = set()
    for scope in ("machine", "user"):
        values = registry.get(scope, {})
        key = find_ci(values, "Path")
        if key is None:
            continue
        item = values[key]
        entries, inlined = _inline_helpers(item["value"], registry, scope)
        kept = []
        for raw in entries:
            kept_entry = _clean_entry(raw, variables, folders, seen, changes, scope)
            if kept_entry is not None:
                kept.append(kept_entry)
        new_path, helpers = _split(kept, scope, values, split_name, variables, inlined)
        if new_path != item["value"] or item["type"] != "REG_EXPAND_SZ":
            if item["type"] != "REG_EXPAND_SZ":
                changes.append(f"{scope} Path: stored as REG_EXPAND_SZ (was {item['type']})")
            result.actions.append(SetEnvVar(scope, key, new_path, "REG_EXPAND_SZ",
                                            expected=(item["value"], item["type"])))
        for name, value in helpers:
            helpers_used.add((scope, name.lower()))
            existing = values.get(find_ci(values, name) or "")
            if not existing or existing["value"] != value or existing["type"] != "REG_SZ":
                result.actions.append(SetEnvVar(scope, name, value, "REG_SZ", expected=(
                    (existing["value"], existing["type"]) if existing else None)))
                changes.append(f"{scope} Path: {len(value.split(';'))} entries moved into "
                               f"%{name}% (REG_SZ, {len(value):,} characters)")
        for helper_scope, name in inlined:
            if (helper_scope, name.lower()) not in helpers_used and helper_scope == scope:
                result.actions.append(DeleteEnvVar(helper_scope, name))
                changes.append(f"{helper_scope} variable {name}: folded back into Path")
    if result.actions:
        result.actions.append(BroadcastEnvironment())
        result.notes.extend(changes)
        result.notes.append("Open terminals and programs keep the old Path: open a new terminal "
                            "(or sign out and in) afterwards.")
        merged = sum(len(a.value) for a in result.actions if isinstance(a, SetEnvVar))
        if merged > 8_191:
            result.notes.append(
                f"Path still expands to about {merged:,} characters, over cmd.exe's 8,191: the "
                "split only keeps each value editable; uninstall or remove tools you no longer "
                "need to shorten it.")
    return result


def _inline_helpers(value: str, registry: dict, scope: str) -> tuple:
    """Path's entries with ``%Helper%`` references replaced by the helper's own entries."""
    entries, inlined = [], []
    for raw in split_path(value, ";"):
        match = HELPER_REFERENCE.match(raw.strip())
        name = match.group(1) if match else None
        if name and name.lower() not in CORE_NAMES:
            for helper_scope in (scope, "machine", "user"):
                key = find_ci(registry.get(helper_scope, {}), name)
                if key:
                    entries.extend(split_path(registry[helper_scope][key]["value"], ";"))
                    inlined.append((helper_scope, key))
                    break
            else:
                entries.append(raw)
            continue
        entries.append(raw)
    return entries, inlined


def _clean_entry(raw: str, variables: dict, folders: dict, seen: set, changes: list,
                 scope: str) -> Optional[str]:
    label = f"{scope} Path"
    entry = raw.strip()
    if not entry:
        changes.append(f"{label}: empty entry removed")
        return None
    if entry.startswith('"') or entry.endswith('"'):
        unquoted = entry.strip('"')
        changes.append(f"{label}: quotes removed from {entry}")
        entry = unquoted
    expanded = expand_windows(entry, variables)
    if not PERCENT_REFERENCE.search(expanded) and not ntpath.isabs(expanded):
        changes.append(f"{label}: relative entry {entry} removed")
        return None
    info = folders.get(normalise_windows(expanded))
    if info and info.get("is_file"):
        folder = ntpath.dirname(entry)
        changes.append(f"{label}: {entry} names a file; replaced by its folder {folder}")
        entry, expanded = folder, ntpath.dirname(expanded)
    elif info is not None and not info.get("exists") and not PERCENT_REFERENCE.search(expanded):
        changes.append(f"{label}: missing folder {entry} removed")
        return None
    key = normalise_windows(expanded)
    if key in seen:
        changes.append(f"{label}: duplicate {entry} removed")
        return None
    seen.add(key)
    return entry


def _split(entries: list, scope: str, values: dict, preferred: str, variables: dict,
           inlined: list) -> tuple:
    """Path's new value and [(helper name, value)]; helpers only when over the limit."""
    joined = ";".join(entries)
    if len(joined) <= EDITOR_LIMIT:
        return joined, []
    reusable = {name.lower() for s, name in inlined if s == scope}
    names = _helper_names(preferred, values, reusable)
    # the tail moves out; REG_SZ cannot expand, so moved entries are written expanded
    head: list = []
    reserve = 64  # room for the ';%Path2%;%Path3%' references
    for entry in entries:
        if len(";".join(head + [entry])) > EDITOR_LIMIT - reserve:
            break
        head.append(entry)
    tail = [expand_windows(e, variables) for e in entries[len(head):]]
    helpers, chunk = [], []
    for entry in tail:
        if chunk and len(";".join(chunk + [entry])) > EDITOR_LIMIT:
            helpers.append((next(names), ";".join(chunk)))
            chunk = []
        chunk.append(entry)
    if chunk:
        helpers.append((next(names), ";".join(chunk)))
    path_value = ";".join(head + [f"%{name}%" for name, _ in helpers])
    return path_value, helpers


def _helper_names(preferred: str, values: dict, reusable: set):
    match = re.match(r"^(.*?)(\d*)$", preferred)
    stem, number = match.group(1), int(match.group(2) or 2)
    while True:
        name = f"{stem}{number}"
        if find_ci(values, name) is None or name.lower() in reusable:
            yield name
        number += 1


# ----------------------------------------------------------------------------- POSIX


def plan_posix(facts: dict) -> Plan:
    result = Plan("path", "remove bad PATH entries from your shell startup files")
    entries = facts.get("entries", [])
    present = {e["expanded"].rstrip("/") for e in entries if e.get("is_dir")}
    problems = []  # (entry text, replacement or None, why)
    for entry in entries:
        raw = entry["raw"]
        if not raw.strip():
            continue  # an empty entry is an extra ':'; found below on the lines themselves
        if raw.strip() != raw or '"' in raw or "'" in raw:
            problems.append((raw, None, "quoted"))
        elif not raw.startswith("/"):
            if "$" not in raw and not raw.startswith("~"):
                problems.append((raw, None, "relative"))
        elif entry.get("is_file"):
            folder = posixpath.dirname(raw)
            problems.append((raw, None if folder.rstrip("/") in present else folder,
                             "names a file"))
        elif not entry.get("exists"):
            problems.append((raw, None, "does not exist"))
    edits: dict = {}  # (file, line) -> [old, new, reasons]
    home = facts.get("home", "")
    for text, replacement, why in problems:
        places = [(s, line, spelled, spelled_replacement)
                  for spelled, spelled_replacement in _spellings(text, replacement, home)
                  for s, line in _lines_setting(spelled, facts)]
        user_places = [p for p in places if p[0]["user"]]
        if not places and disabled_by_llmdoctor(text, facts):
            continue  # an earlier fix took it out: only this terminal still has it (path.stale-terminal)
        if not user_places:
            where = ", ".join(f"{s['file']}:{line['line']}" for s, line, _, _ in places)
            if where:
                result.manual_steps.append(
                    f"{text} ({why}) is added in {where}, a system file: edit it there as root")
            else:
                result.manual_steps.append(
                    f"{text} ({why}) is not added by any startup file llmdoctor knows "
                    "(~/.profile, ~/.bashrc, ~/.zshrc, ...): it comes from this session, a parent "
                    "program or another file; remove it there")
            continue
        for source, line, spelled, spelled_replacement in user_places:
            key = (source["file"], line["line"])
            old, new, reasons = edits.get(key, (line["text"], line["text"], []))
            edited = remove_path_entry(new, spelled, spelled_replacement)
            if edited != new:
                reasons.append(f"{text} {why}" + (f" -> {replacement}" if replacement else ""))
                edits[key] = (old, edited, reasons)
    for (file, number), (old, new, reasons) in sorted(edits.items()):
        if _is_noop_assignment(new):
            new = f"# {old}  # disabled by llmdoctor: {'; '.join(reasons)}"
        result.actions.append(ReplaceLine(file, number, old, new, "; ".join(reasons)))
    if result.actions:
        result.notes.append("Only new terminals get the cleaned PATH; a backup of each edited "
                            "file is kept beside it as NAME.llmdoctor-backup.")
    duplicates = _duplicates(entries)
    if duplicates:
        result.notes.append(
            "Duplicate entries (" + ", ".join(duplicates[:3]) + ") are left alone: they usually "
            "come from a startup file that prepends on every nested shell, and are harmless on "
            "POSIX. Guard such lines with: case \":$PATH:\" in *\":DIR:\"*) ;; *) "
            "PATH=\"DIR:$PATH\";; esac")
    return result


def _spellings(entry: str, replacement: Optional[str], home: str) -> list:
    """How a startup file may spell an entry under HOME: as is, $HOME/..., ${HOME}/..., ~/..."""
    spellings = [(entry, replacement)]
    if home and home != "/" and (entry == home or entry.startswith(home.rstrip("/") + "/")):
        for spelling in ("$HOME", "${HOME}", "~"):
            spellings.append((spelling + entry[len(home.rstrip("/")):],
                              spelling + replacement[len(home.rstrip("/")):]
                              if replacement and replacement.startswith(home) else replacement))
    return spellings


def _lines_setting(text: str, facts: dict) -> list:
    found = []
    for source in facts.get("startup_files", []):
        for line in source["lines"]:
            if mentions_entry(line["text"], text):
                found.append((source, line))
    return found


def remove_path_entry(line: str, entry: str, replacement: Optional[str] = None) -> str:
    """Take ``entry`` out of a PATH assignment line (or replace it), with one colon."""
    pattern = entry_pattern(entry)
    match = pattern.search(line)
    if not match:
        return line
    start, end = match.span()
    if replacement is not None:
        return line[:start] + replacement + line[end:]
    if end < len(line) and line[end] == ":":
        end += 1
    elif start > 0 and line[start - 1] == ":":
        start -= 1
    return line[:start] + line[end:]


def _is_noop_assignment(line: str) -> bool:
    stripped = line.strip()
    return bool(re.fullmatch(
        r"(export\s+)?PATH=[\"']?(\$PATH|\$\{PATH\})?[\"']?;?\s*(export\s+PATH)?|set -gx PATH \$PATH",
        stripped))


def _duplicates(entries: list) -> list:
    seen, duplicates = set(), []
    for entry in entries:
        key = entry["expanded"].rstrip("/") or "/"
        if key in seen and entry["expanded"]:
            duplicates.append(entry["expanded"])
        seen.add(key)
    return duplicates


def _path_facts(environment: dict, python: str) -> dict:
    """The PATH a new terminal builds from the startup files, checked again."""
    return {"path": probe_posix({"PATH": environment.get("PATH", ""), "HOME": os.path.expanduser("~")})}


FIX = Fix(
    id="path",
    title="Clean up PATH (and split an over-long Windows Path)",
    checks=("path",),
    plan=plan,
    applicability="safe",
    scope="user",
    needs_admin=False,
    undoable=True,
    afterwards="new-terminal",
    reprobe=new_terminal_reprobe(_path_facts),
)
