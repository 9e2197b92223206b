"""The `path` check: PATH entries that are missing, name a file, repeat, are quoted,
empty, relative or carry unexpanded variables; on Windows also the registry values
behind Path, their types, their lengths against Windows' limits, and whether a
``%Path2%``-style reference will expand given the order Windows builds the environment.

Windows rules run anywhere: they read recorded facts (the registry values and which
entries exist), so a snapshot from a Windows machine is diagnosed on Linux.
"""

from __future__ import annotations

import ntpath
import os
import re
from pathlib import Path
from typing import Callable, Optional

from llmdoctor.fileio import FileIOError, read_shell_lines
from llmdoctor.knowledge.path_entries import (
    entry_pattern,
    home_spellings,
    mentions_entry,
    normalise_posix,
    split_path,
)
from llmdoctor.knowledge.shells import SYSTEM_STARTUP_FILES, USER_STARTUP_FILES
from llmdoctor.knowledge.windows import (
    CMD_LINE_LIMIT,
    CORE_MACHINE_VARIABLES,
    CORE_USER_VARIABLES,
    EDITOR_LIMIT,
    PERCENT_REFERENCE,
    SETX_LIMIT,
    VARIABLE_LIMIT,
    build_windows_path,
    expand_windows,
    find_ci,
    get_ci,
    normalise_windows,
)
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext
from llmdoctor.redact import REDACTED, is_secret_name

# ----------------------------------------------------------------------------- helpers


# ----------------------------------------------------------------------------- probe


def _entry_facts(expanded: str, base: Optional[Callable] = None) -> dict:
    candidate = expanded.strip()
    if candidate.startswith('"') and candidate.endswith('"') and len(candidate) >= 2:
        candidate = candidate[1:-1]
    facts = {"exists": False, "is_dir": False, "is_file": False}
    if not candidate:
        return facts
    try:
        st = os.stat(candidate)
    except (OSError, ValueError):
        return facts
    import stat as stat_module

    facts["exists"] = True
    facts["is_dir"] = stat_module.S_ISDIR(st.st_mode)
    facts["is_file"] = stat_module.S_ISREG(st.st_mode)
    return facts


def _startup_sources(home: Path) -> list:
    """Lines of shell startup files that set PATH, so rules can say where an entry comes from."""
    sources = []
    candidates = [home / name for name in USER_STARTUP_FILES] + [Path(p) for p in SYSTEM_STARTUP_FILES]
    for path in candidates:
        try:
            text_lines = read_shell_lines(path)
        except FileIOError as exc:  # too large, or not a regular file: named, not skipped silently
            sources.append({"file": str(path), "user": str(path).startswith(str(home)), "lines": [],
                            "unread": str(exc)})
            continue
        lines = [
            {"line": number, "text": line[:2000]}
            for number, line in enumerate(text_lines, start=1)
            if "PATH" in line and not line.lstrip().startswith("#")
        ]
        # what 'llmdoctor fix --path' took out: lines it disabled, and the PATH lines of the copy it
        # kept from before (NAME.llmdoctor-backup); an entry only there makes this terminal stale
        disabled = [{"line": number, "text": line[:2000]} for number, line in enumerate(text_lines, start=1)
                    if line.startswith("# ") and "# disabled by llmdoctor" in line]
        try:
            backup = read_shell_lines(str(path) + ".llmdoctor-backup")
        except FileIOError:
            backup = []
        disabled += [{"line": number, "text": line[:2000]} for number, line in enumerate(backup, start=1)
                     if "PATH" in line and not line.lstrip().startswith("#")]
        if lines or disabled:
            # a user's own file by its place under HOME, even when it is a link into a
            # dotfiles repository elsewhere (stow, chezmoi, yadm)
            own = os.path.abspath(path).startswith(os.path.join(os.path.abspath(home), ""))
            sources.append({"file": str(path), "user": own or _is_under(path, home), "lines": lines,
                            "disabled": disabled})
    return sources


def _is_under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


def probe_posix(environ: Optional[dict] = None) -> dict:
    environ = dict(os.environ) if environ is None else environ
    value = environ.get("PATH", "")
    entries = [dict(raw=e, expanded=e, scope="process", **_entry_facts(e)) for e in split_path(value, ":")]
    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    return {
        "os": "posix",
        "separator": ":",
        "value": value,
        "entries": entries,
        "home": str(home),
        "startup_files": _startup_sources(home),
    }


def probe_windows(backend, environ: Optional[dict] = None,
                  entry_facts: Callable = _entry_facts) -> dict:
    environ = dict(os.environ) if environ is None else environ
    facts: dict = {"os": "windows", "separator": ";", "value": get_ci(environ, "Path") or ""}
    core = {}
    for name in CORE_MACHINE_VARIABLES + CORE_USER_VARIABLES:
        value = get_ci(environ, name)
        if value is not None:
            core[name] = value
    facts["core_variables"] = core
    if backend is None:
        facts["registry_error"] = "the registry could not be read"
        entries = split_path(facts["value"], ";")
        facts["entries"] = [dict(raw=e, expanded=e, scope="process", **entry_facts(e)) for e in entries]
        return facts
    registry = {}
    for scope in ("machine", "user"):
        try:
            values = backend.read_all(scope)
        except Exception as exc:  # noqa: BLE001 - a probe records, never raises
            facts.setdefault("registry_errors", {})[scope] = f"{type(exc).__name__}: {exc}"
            values = {}
        registry[scope] = {
            name: ({"value": REDACTED, "type": item["type"]} if is_secret_name(name) else item)
            for name, item in values.items()
        }
    facts["registry"] = registry
    built = build_windows_path(registry, core)
    facts["entries"] = [dict(entry, **entry_facts(entry["expanded"])) for entry in built["entries"]]
    # existence of folders listed in helper variables (a %Path2% that does not expand
    # hides its entries from the Path above); the fix needs them to clean up safely
    every_variable = dict(core)
    for scope in ("machine", "user"):
        every_variable.update({n: i["value"] for n, i in registry[scope].items()})
    listed = {}
    for scope in ("machine", "user"):
        for name, item in registry[scope].items():
            if name.lower() == "path" or not looks_like_path_list(item["value"]):
                continue
            for part in split_path(item["value"], ";"):
                expanded = expand_windows(part.strip().strip('"'), every_variable)
                if expanded:
                    listed[normalise_windows(expanded)] = entry_facts(expanded)
    facts["listed_folders"] = listed
    return facts


def looks_like_path_list(value: str) -> bool:
    return ":\\" in value or value.startswith("%") or ";" in value


def probe(context: ProbeContext) -> dict:
    import sys

    if sys.platform == "win32":  # pragma: no cover - needs Windows
        from llmdoctor.winenv import get_backend

        return probe_windows(get_backend())
    return probe_posix()


# ----------------------------------------------------------------------------- rules


def printable(text: str) -> str:
    """Control characters and undecodable bytes as escapes, so an odd entry stays on its line."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _short(entry: str, width: int = 60) -> str:
    """An entry shortened in the middle, for one-line messages (details keep it whole)."""
    entry = printable(entry)
    if len(entry) <= width:
        return entry
    keep = (width - 3) // 2
    return entry[:keep] + "..." + entry[-keep:]


def _some(entries: list, key: str = "expanded") -> str:
    shown = ", ".join(_short(e[key]) for e in entries[:2])
    return shown + (f" and {len(entries) - 2} more" if len(entries) > 2 else "")


def _entry_list(items: list, limit: int = 12, render=None) -> str:
    """The first ``limit`` items, one a line (``render`` makes each one's text: only those shown)."""
    lines = [f"  {printable(render(item) if render else item)}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines)


def disabled_by_llmdoctor(entry: str, facts: dict, index: Optional[dict] = None) -> bool:
    """Whether a startup-file line adding ``entry`` was disabled or edited by 'llmdoctor fix --path'
    (``index``: :func:`_source_index` of the disabled lines, for many entries)."""
    spellings = home_spellings(entry, facts.get("home", ""))
    if index is not None and not any(_SEPARATORS.search(s) for s in spellings):
        return any(s in index for s in spellings)
    disabled = [line["text"] for source in facts.get("startup_files", []) for line in source.get("disabled", [])]
    if not disabled:
        return False
    patterns = [entry_pattern(spelling) for spelling in spellings]
    return any(pattern.search(text) for pattern in patterns for text in disabled)


_SEPARATORS = re.compile(r"[=:\"' ;]")


def _source_index(facts: dict, key: str = "lines") -> dict:
    """{word of a PATH line: ["file:line", ...]} over every startup-file line that sets PATH
    (``key="disabled"``: the lines a fix disabled), built once: looking an entry up is then
    one dict access, not a regex per line."""
    index: dict = {}
    for source in facts.get("startup_files", []):
        for line in source.get(key, []):
            if "PATH" not in line["text"]:
                continue
            place = f"{source['file']}:{line['line']}"
            for word in set(_SEPARATORS.split(line["text"])[1:]):  # words after a separator, as entry_pattern
                if word:
                    index.setdefault(word, []).append(place)
    return index


def _where_set(entry: str, facts: dict, index: Optional[dict] = None) -> list:
    """Startup-file lines (POSIX) that add an entry to PATH."""
    if index is not None and entry and not _SEPARATORS.search(entry):
        return list(dict.fromkeys(index.get(entry, [])))
    return [f"{source['file']}:{line['line']}"
            for source in facts.get("startup_files", []) for line in source["lines"]
            if mentions_entry(line["text"], entry)]


def rules(facts: dict, context: RuleContext) -> list:
    windows = facts.get("os") == "windows"
    entries = facts.get("entries", [])
    findings: list = []
    normalise = normalise_windows if windows else normalise_posix

    for source in facts.get("startup_files", []):
        if source.get("unread"):
            findings.append(Finding(
                "path.startup-file-unread", "warning",
                f"{source['file']} was not read: {source['unread']}",
                "PATH entries it adds cannot be traced to their line, and 'llmdoctor fix --path' cannot edit "
                "them there.", facts={"file": source["file"]}))

    if windows and facts.get("registry_error"):
        findings.append(Finding("path.registry-unreadable", "warning",
                                f"could not read Path from the registry: {facts['registry_error']}; "
                                "checked this process's Path instead"))

    index = _source_index(facts) if not windows else {}
    disabled_index = _source_index(facts, "disabled") if not windows else {}

    def with_sources(entry: dict) -> str:
        label = entry["raw"] if entry["raw"] == entry["expanded"] else f"{entry['raw']} -> {entry['expanded']}"
        if windows and entry.get("scope") in ("user", "machine"):
            label += f"  ({entry['scope']} Path)"
        places = _where_set(entry["raw"], facts, index) if not windows else []
        if places:
            label += f"  (set in {', '.join(places)})"
        return label

    quoted, empty, relative, unexpanded, missing, file_entries = [], [], [], [], [], []
    for entry in entries:
        stripped = entry["expanded"].strip()
        if not stripped:
            empty.append(entry)
            continue
        if '"' in stripped or (not windows and "'" in stripped):
            quoted.append(entry)  # reported as quoted, whatever else is wrong with it
            continue
        if windows and PERCENT_REFERENCE.search(stripped):
            unexpanded.append(entry)
            continue
        if not windows and ("$" in stripped or stripped.startswith("~")):
            unexpanded.append(entry)
            continue
        is_absolute = ntpath.isabs(stripped.strip('"')) if windows else stripped.startswith("/")
        if not is_absolute:
            relative.append(entry)
            continue
        if entry.get("is_file"):
            file_entries.append(entry)
        elif not entry.get("exists"):
            missing.append(entry)

    if not windows:  # entries a fix already took out of the startup files: this terminal is just stale
        stale = [e for e in quoted + relative + missing + file_entries
                 if not any(_where_set(s, facts, index) for s in home_spellings(e["raw"], facts.get("home", "")))
                 and disabled_by_llmdoctor(e["raw"], facts, disabled_index)]
        if stale:
            keys = {id(e) for e in stale}
            quoted, relative, missing, file_entries = ([e for e in group if id(e) not in keys]
                                                       for group in (quoted, relative, missing, file_entries))
            kept = []  # this PATH as a new terminal builds it: a file entry becomes its folder
            for e in entries:
                value = os.path.dirname(e["raw"]) if id(e) in keys and e.get("is_file") else (
                    None if id(e) in keys else e["raw"])
                if value and value not in kept:
                    kept.append(value)
            import shlex

            findings.append(Finding(
                "path.stale-terminal", "info",
                f"new terminals no longer get {_some(stale, 'raw')} (llmdoctor took "
                f"{'it' if len(stale) == 1 else 'them'} out of the startup files); this terminal still has "
                f"{'it' if len(stale) == 1 else 'them'}",
                "Open a new terminal, or in this one run:\n  export PATH=" + shlex.quote(":".join(kept)),
                facts={"entries": [e["raw"] for e in stale]}))

    if missing:
        findings.append(Finding(
            "path.missing-entry", "warning",
            f"{len(missing)} PATH {'entry does' if len(missing) == 1 else 'entries do'} not exist: "
            + _some(missing),
            "Folders that do not exist cost a lookup on every command and usually mean an "
            "uninstalled tool:\n" + _entry_list(missing, render=with_sources),
            fixes=["path"], facts={"entries": [e["expanded"] for e in missing]}))

    present_dirs = {normalise(e["expanded"]) for e in entries if e.get("is_dir")}
    for entry in file_entries:
        folder = (ntpath if windows else os.path).dirname(entry["expanded"].strip().strip('"'))
        name = (ntpath if windows else os.path).basename(entry["expanded"].strip().strip('"'))
        folder_on_path = normalise(folder) in present_dirs
        findings.append(Finding(
            "path.file-entry", "warning" if folder_on_path else "error",
            f"PATH entry {_short(entry['expanded'])} names a file, not a folder"
            + ("" if folder_on_path else f": {name} will not be found"),
            "PATH lists folders to search; an entry naming a program is never searched. "
            f"Use its folder {folder} instead.\n" + _entry_list([with_sources(entry)]),
            fixes=["path"], facts={"entry": entry["expanded"], "folder": folder,
                                   "folder_on_path": folder_on_path}))

    seen: dict = {}
    duplicates = []
    for entry in entries:
        if not entry["expanded"].strip():
            continue
        key = normalise(entry["expanded"])
        if key in seen:
            duplicates.append(entry)
        else:
            seen[key] = entry
    if duplicates:
        findings.append(Finding(
            "path.duplicate-entry", "info",
            f"{len(duplicates)} PATH {'entry is' if len(duplicates) == 1 else 'entries are'} "
            "listed twice: " + _some(duplicates),
            "Only the first occurrence is ever used; the rest lengthen PATH."
            + (" Compared case-insensitively, trailing \\ ignored, after expansion." if windows else "")
            + ("" if windows else " Usually a startup file that prepends on every nested shell; guard "
               "it with: case \":$PATH:\" in *\":DIR:\"*) ;; *) PATH=\"DIR:$PATH\";; esac")
            + "\n" + _entry_list(duplicates, render=with_sources),
            # the fix dedupes the Windows registry values; on POSIX there is nothing to edit
            fixes=["path"] if windows else [], facts={"entries": [e["expanded"] for e in duplicates]}))

    if quoted:
        findings.append(Finding(
            "path.quoted-entry", "warning",
            f"{len(quoted)} PATH {'entry is' if len(quoted) == 1 else 'entries are'} quoted: "
            + _some(quoted, "raw"),
            "Quotes in PATH are not stripped by every program (PowerShell's command search, "
            "for one, treats them literally); folders with spaces need no quotes.\n"
            + _entry_list([with_sources(e) for e in quoted]),
            fixes=["path"], facts={"entries": [e["raw"] for e in quoted]}))

    if empty:
        findings.append(Finding(
            "path.empty-entry", "info" if windows else "warning",
            "PATH has an empty entry" + ("" if windows else ", which means the current folder"),
            ("An empty entry does nothing on Windows but lengthen PATH." if windows else
             "An empty entry (a leading or trailing ':' or '::') makes every command look in the "
             "current folder first: a program dropped into a download folder can stand in for "
             "a real one."),
            fixes=["path"], facts={"count": len(empty)}))

    if relative:
        findings.append(Finding(
            "path.relative-entry", "warning",
            f"PATH has relative {'entry' if len(relative) == 1 else 'entries'}: " + _some(relative),
            "A relative entry such as '.' is searched relative to the current folder, which "
            "changes with every command and lets files in the current folder shadow real "
            "programs.\n" + _entry_list([with_sources(e) for e in relative]),
            fixes=["path"], facts={"entries": [e["expanded"] for e in relative]}))

    if windows:
        findings += _windows_rules(facts, entries, unexpanded, context)
    elif unexpanded:
        findings.append(Finding(
            "path.unexpanded-variable", "warning",
            "PATH has entries with unexpanded variables: " + _some(unexpanded),
            "The shell expands $VAR and ~ only when PATH is set (and not inside single quotes); "
            "programs searching PATH take them literally.\n"
            + _entry_list([with_sources(e) for e in unexpanded]),
            fixes=["path"], facts={"entries": [e["expanded"] for e in unexpanded]}))
    if not findings:
        findings.append(Finding("path.ok", "ok", f"{len(entries)} entries, every one an existing folder"))
    return findings


def _windows_rules(facts: dict, entries: list, unexpanded: list, context: RuleContext) -> list:
    findings = []
    registry = facts.get("registry") or {}
    defined = {name.lower() for scope in registry.values() for name in scope}
    merged = ";".join(e["expanded"] for e in entries)
    warn_length = 7_500
    if context.config is not None:
        warn_length = int(context.config.threshold("path_warn_length"))

    for scope in ("machine", "user"):
        item = get_ci(registry.get(scope, {}), "Path")
        if not item:
            continue
        label = "system" if scope == "machine" else "user"
        if item["type"] == "REG_SZ" and "%" in item["value"]:
            findings.append(Finding(
                "path.reg-sz-with-percent", "error",
                f"the {label} Path is stored as REG_SZ but contains %: its references are never expanded",
                "Path must be REG_EXPAND_SZ for %SystemRoot% or %Path2% inside it to expand; as "
                "REG_SZ the literal text '%...%' becomes a PATH entry and everything behind it is "
                "lost. Rewriting the value as REG_EXPAND_SZ (same text) repairs it.",
                fixes=["path"], facts={"scope": scope, "type": item["type"]}))
        length = len(item["value"])
        if length == SETX_LIMIT:
            findings.append(Finding(
                "path.setx-truncated", "warning",
                f"the {label} Path is exactly {SETX_LIMIT} characters long: it was probably cut "
                "off by setx",
                "setx silently truncates values to 1,024 characters (and merges the system Path "
                "into the user Path when used as setx PATH \"%PATH%;...\"). Entries past the cut "
                "are gone; compare with a backup or the installer's expected entries. Never use "
                "setx to change Path.",
                facts={"scope": scope, "length": length}))
        elif length > EDITOR_LIMIT:
            findings.append(Finding(
                "path.value-too-long-for-editor", "warning",
                f"the {label} Path value is {length:,} characters: over the {EDITOR_LIMIT:,} "
                "that the environment editor accepts",
                "Editing it in the Environment Variables dialog fails ('this environment "
                "variable is too large') or truncates it. The fix moves entries into a helper "
                "variable referenced from Path (the %Path2% split), in the way Windows' "
                "expansion order makes work.",
                fixes=["path"], facts={"scope": scope, "length": length}))

    # references that will not expand
    for entry in unexpanded:
        names = PERCENT_REFERENCE.findall(entry["expanded"])
        known = [n for n in names if n.lower() in defined]
        if known:
            findings.append(Finding(
                "path.reference-will-not-expand", "error",
                f"%{known[0]}% in the {('system' if entry['scope'] == 'machine' else 'user')} Path "
                "will not expand",
                _why_not_expanding(known[0], entry["scope"], registry)
                + " Program search takes the leftover text literally, so every folder in that "
                "variable is lost.",
                fixes=["path"], facts={"entry": entry["raw"], "variable": known[0],
                                       "scope": entry["scope"]}))
        else:
            findings.append(Finding(
                "path.unexpanded-variable", "warning",
                f"PATH entry {_short(entry['expanded'])} refers to a variable that is not defined",
                "The variable is set neither in the user nor in the system environment, so the "
                "entry is taken literally.",
                fixes=["path"], facts={"entry": entry["raw"]}))

    length = len(merged)
    if length > VARIABLE_LIMIT:
        findings.append(Finding(
            "path.over-variable-limit", "error",
            f"the merged Path is {length:,} characters: over Windows' {VARIABLE_LIMIT:,} limit",
            "Entries past the limit are dropped when the environment is built; remove unused "
            "entries.", fixes=["path"], facts={"length": length}))
    elif length > CMD_LINE_LIMIT:
        findings.append(Finding(
            "path.too-long-for-cmd", "error",
            f"the merged Path is {length:,} characters: over cmd.exe's {CMD_LINE_LIMIT:,}-character "
            "line limit",
            "Batch files that use %PATH%, vcvarsall.bat among them, fail with 'The input line is "
            "too long', which stops CUDA extension builds. Splitting Path into %Path2% does not "
            "shorten what is expanded; only removing entries does.",
            fixes=["path"], facts={"length": length}))
    elif length > warn_length:
        findings.append(Finding(
            "path.too-long-for-cmd", "warning",
            f"the merged Path is {length:,} characters: close to cmd.exe's {CMD_LINE_LIMIT:,} limit",
            "vcvarsall.bat appends several hundred characters to PATH; past 8,191 it fails with "
            "'The input line is too long'.", fixes=["path"], facts={"length": length}))

    core = facts.get("core_variables", {})
    system_root = core.get("SystemRoot") or core.get("windir") or "C:\\Windows"
    system32 = normalise_windows(system_root + "\\System32")
    if entries and registry and system32 not in {normalise_windows(e["expanded"]) for e in entries}:
        findings.append(Finding(
            "path.missing-system32", "error",
            f"{system_root}\\System32 is not on Path",
            "Basic tools (cmd, where, reg) and many DLLs are found through it; it belongs at "
            "the start of the system Path as %SystemRoot%\\system32.",
            fixes=["path"], facts={"system_root": system_root}))
    return findings + _live_findings(facts.get("value") or "", merged, bool(registry))


def _live_findings(live: str, merged: str, from_registry: bool) -> list:
    """The Path this process really has, against the one the registry gives a new process."""
    if not live or not from_registry:
        return []
    findings = []
    entries = split_path(live, ";")
    from_windows = {normalise_windows(e) for e in split_path(merged, ";")}  # reported by the registry rules
    literal = [e for e in entries if PERCENT_REFERENCE.search(e) and normalise_windows(e) not in from_windows]
    if literal:
        findings.append(Finding(
            "path.live-unexpanded", "error",
            f"this terminal's Path holds {len(literal)} entr{'y' if len(literal) == 1 else 'ies'} with an "
            f"unexpanded %...%: {', '.join(_short(e) for e in literal[:3])}",
            "Windows searched those folders literally and found nothing there. They come from a script that set "
            "Path with %...% inside (cmd's 'set' and PowerShell expand nothing), or from a variable that was "
            "not defined yet when Windows expanded Path.", facts={"entries": literal[:20]}))
    if len(live) > VARIABLE_LIMIT:
        findings.append(Finding(
            "path.live-over-variable-limit", "error",
            f"this terminal's Path is {len(live):,} characters: over Windows' {VARIABLE_LIMIT:,} limit",
            "Child processes may not get it at all; open a new terminal, and find what keeps adding to it.",
            facts={"length": len(live)}))
    elif len(live) > CMD_LINE_LIMIT and len(merged) <= CMD_LINE_LIMIT:
        findings.append(Finding(
            "path.live-too-long-for-cmd", "error",
            f"this terminal's Path is {len(live):,} characters (the registry gives {len(merged):,}): over "
            f"cmd.exe's {CMD_LINE_LIMIT:,}",
            "Batch files (vcvarsall.bat) fail with 'The input line is too long' here, though a new terminal may "
            "be fine.", facts={"length": len(live), "registry_length": len(merged)}))
    repeats = len(entries) - len({normalise_windows(e) for e in entries if e.strip()})
    if merged and len(live) > 2 * len(merged) + 1000:
        findings.append(Finding(
            "path.live-grows", "warning",
            f"this terminal's Path is {len(live):,} characters, the registry gives {len(merged):,}"
            + (f" ({repeats} entries repeated)" if repeats else "")
            + ": something prepends to it on every start",
            "A PowerShell profile, 'conda init', a cmd AutoRun or a tool's activation script adds folders each "
            "time a shell starts, and nested shells add them again. Find the line in $PROFILE or "
            "HKCU\\Software\\Microsoft\\Command Processor\\AutoRun and guard it.",
            facts={"length": len(live), "registry_length": len(merged), "repeated": repeats}))
    return findings


def _why_not_expanding(name: str, scope: str, registry: dict) -> str:
    machine_key = find_ci(registry.get("machine", {}), name)
    user_key = find_ci(registry.get("user", {}), name)
    definition = registry["machine"][machine_key] if machine_key else registry["user"][user_key]
    where = "system" if machine_key else "user"
    if scope == "machine" and not machine_key:
        return (f"{name} is a user variable; the system Path is expanded before user variables "
                "exist.")
    if "%" in definition["value"]:
        return (f"{name} itself contains %...% references; expansion goes one level deep.")
    if definition["type"] == "REG_EXPAND_SZ" and where == ("system" if scope == "machine" else "user"):
        return (f"{name} is REG_EXPAND_SZ in the same scope as Path; Windows expands those in "
                "one step and only sees variables from earlier steps, so it must be REG_SZ.")
    return f"{name} is not visible when Path is expanded."


MS_ENV = "https://learn.microsoft.com/en-us/windows/win32/procthread/environment-variables"
MS_CMD_LIMIT = ("https://learn.microsoft.com/en-us/troubleshoot/windows-client/shell-experience/"
                "command-line-string-limitation")
MS_REG_TYPES = "https://learn.microsoft.com/en-us/windows/win32/sysinfo/registry-value-types"
CHEN_ORDER = "https://devblogs.microsoft.com/oldnewthing/20231212-00/?p=109137"
POSIX_PATH = "https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap08.html"
BASH_STARTUP = "https://www.gnu.org/software/bash/manual/html_node/Bash-Startup-Files.html"
WM_SETTINGCHANGE = "https://learn.microsoft.com/en-us/windows/win32/winmsg/wm-settingchange"

FINDINGS = (
    FindingKind(
        "path.ok", "ok", "every PATH entry is an existing folder",
        why="Programs are found by searching PATH's folders in order; nothing here hides one.",
    ),
    FindingKind(
        "path.missing-entry", "warning", "PATH entries name folders that do not exist",
        why="Every command looks in each of them first, and they usually mark a tool that was uninstalled "
            "or moved, whose new place is then missing from PATH.",
        fix="Remove the entries (the fix edits the startup file or registry value that adds each one).",
        fixes=("path",), references=(POSIX_PATH, MS_ENV),
    ),
    FindingKind(
        "path.file-entry", "error", "a PATH entry names a program (foo.exe) instead of its folder",
        severities=("warning", "error"),
        why="PATH lists folders to search; an entry naming a file is never searched, so the program it "
            "names is not found (a warning when its folder is on PATH anyway).",
        fix="Replace the entry with its folder.", fixes=("path",), references=(POSIX_PATH, MS_ENV),
    ),
    FindingKind(
        "path.duplicate-entry", "info", "the same folder is listed more than once",
        why="Only the first occurrence is ever used; the rest lengthen PATH towards Windows' and cmd.exe's "
            "limits. On Linux it usually means a startup file prepends on every nested shell.",
        fix="On Windows the fix keeps the first occurrence; elsewhere guard the startup-file line "
            "(case \":$PATH:\" in *:/dir:*) ;; *) PATH=/dir:$PATH ;; esac).",
        fixes=("path",), references=(BASH_STARTUP, MS_ENV),
    ),
    FindingKind(
        "path.quoted-entry", "warning", "a PATH entry is wrapped in quotes",
        why="Quotes are not stripped by every program (PowerShell's command search takes them literally); "
            "folders with spaces need no quotes in PATH.",
        fix="Remove the quotes.", fixes=("path",),
        references=("https://github.com/PowerShell/PowerShell/issues/24002", MS_ENV),
    ),
    FindingKind(
        "path.empty-entry", "warning", "PATH has an empty entry", severities=("info", "warning"),
        why="On POSIX systems a zero-length entry means the current folder: a program in a download folder "
            "can stand in for a real one. On Windows it only lengthens PATH.",
        fix="Remove the stray ':' or ';'.", fixes=("path",), references=(POSIX_PATH,),
    ),
    FindingKind(
        "path.relative-entry", "warning", "a PATH entry is relative ('.', 'bin')",
        why="It is searched relative to the current folder, which changes with every command, and lets "
            "files in the current folder shadow real programs.",
        fix="Use absolute folders.", fixes=("path",), references=(POSIX_PATH,),
    ),
    FindingKind(
        "path.unexpanded-variable", "warning", "a PATH entry holds a variable that was never expanded",
        why="Shells expand $VAR and ~ only when PATH is assigned (not inside single quotes), and Windows "
            "expands %VAR% only in REG_EXPAND_SZ values whose variables exist; programs searching PATH "
            "take the text literally.",
        fix="Write the expanded folder, or define the variable.", fixes=("path",),
        references=("https://www.gnu.org/software/bash/manual/html_node/Tilde-Expansion.html", MS_REG_TYPES),
    ),
    FindingKind(
        "path.startup-file-unread", "warning", "a shell startup file could not be read",
        why="PATH entries it adds cannot be traced to their line, and the path fix cannot edit them there.",
        fix="Make the file readable by its owner (or remove it if it is stale).", references=(BASH_STARTUP,),
    ),
    FindingKind(
        "path.stale-terminal", "info", "this terminal still has PATH entries that new terminals no longer get",
        why="A fix changed the startup files; a running shell keeps the environment it started with.",
        fix="Open a new terminal, or export the PATH the finding prints.", references=(BASH_STARTUP,),
    ),
    FindingKind(
        "path.registry-unreadable", "warning", "Windows: the Path values in the registry could not be read",
        why="The registry holds what new processes get; only this process's Path was judged instead.",
        fix="Run from an account that may read HKCU\\Environment and the system Environment key.",
        references=(MS_ENV,),
    ),
    FindingKind(
        "path.reg-sz-with-percent", "error", "Windows: a Path value is REG_SZ but contains %...%",
        why="Only REG_EXPAND_SZ values are expanded; as REG_SZ the literal '%SystemRoot%' or '%Path2%' "
            "becomes a PATH entry and every folder behind it is lost.",
        fix="Rewrite the value as REG_EXPAND_SZ with the same text.", fixes=("path",),
        references=(MS_REG_TYPES, CHEN_ORDER),
    ),
    FindingKind(
        "path.setx-truncated", "warning", "Windows: a Path value is exactly 1,024 characters: cut off by setx",
        why="setx silently truncates values to 1,024 characters and, used as setx PATH \"%PATH%;...\", "
            "merges the system Path into the user Path.",
        fix="Restore the lost entries from a backup or the installers that added them; never change Path "
            "with setx.",
        references=("https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/setx",
                    "https://github.com/openframeworks/openFrameworks/issues/6907"),
    ),
    FindingKind(
        "path.value-too-long-for-editor", "warning", "Windows: a Path value is too long for the environment editor",
        why="The Environment Variables dialog refuses ('this environment variable is too large') or "
            "truncates values over 2,047 characters.",
        fix="Move entries into a helper variable referenced from Path (the %Path2% split), in an order "
            "Windows' expansion makes work.",
        fixes=("path",), references=(CHEN_ORDER, MS_ENV),
    ),
    FindingKind(
        "path.reference-will-not-expand", "error", "Windows: a %VAR% reference in Path will not expand",
        why="Windows builds the environment in stages and a REG_EXPAND_SZ value sees only variables of "
            "earlier stages, one level deep; the leftover text is searched literally and every folder in "
            "that variable is lost.",
        fix="Make the helper variable REG_SZ in a scope expanded earlier (the fix does), or inline it.",
        fixes=("path",), references=(CHEN_ORDER, MS_REG_TYPES),
    ),
    FindingKind(
        "path.over-variable-limit", "error", "Windows: the merged Path is over 32,767 characters",
        why="Entries past the limit are dropped when Windows builds a process's environment.",
        fix="Remove unused entries.", fixes=("path",), references=(MS_ENV,),
    ),
    FindingKind(
        "path.too-long-for-cmd", "error", "Windows: the merged Path is over (or near) cmd.exe's 8,191 characters",
        severities=("warning", "error"),
        why="Batch files that use %PATH%, vcvarsall.bat among them, fail with 'The input line is too long', "
            "which stops CUDA extension builds. A %Path2% split does not shorten what is expanded.",
        fix="Remove unused entries.", fixes=("path",),
        references=(MS_CMD_LIMIT, "https://github.com/pypa/setuptools/issues/2307"),
    ),
    FindingKind(
        "path.missing-system32", "error", "Windows: %SystemRoot%\\System32 is not on Path",
        why="cmd, where, reg and many DLLs are found through it.",
        fix="Put %SystemRoot%\\system32 back at the start of the system Path.", fixes=("path",),
        references=(MS_ENV,),
    ),
    FindingKind(
        "path.live-unexpanded", "error", "Windows: this terminal's Path holds entries with a literal %...%",
        why="A script set Path with %...% inside (cmd's set and PowerShell expand nothing), or a variable "
            "was undefined when Windows expanded Path; those folders are searched literally.",
        fix="Open a new terminal; find the script that sets Path.", references=(CHEN_ORDER,),
    ),
    FindingKind(
        "path.live-over-variable-limit", "error", "Windows: this terminal's Path is over 32,767 characters",
        why="Child processes may not get it at all.",
        fix="Open a new terminal and find what keeps adding to it.", references=(MS_ENV,),
    ),
    FindingKind(
        "path.live-too-long-for-cmd", "error", "Windows: this terminal's Path is over cmd.exe's 8,191 characters",
        why="Batch files (vcvarsall.bat) fail with 'The input line is too long' in this terminal.",
        fix="Open a new terminal; find what lengthens it.", references=(MS_CMD_LIMIT,),
    ),
    FindingKind(
        "path.live-grows", "warning", "Windows: something prepends to Path on every shell start",
        why="A PowerShell profile, 'conda init', a cmd AutoRun or an activation script adds folders each "
            "time a shell starts, and nested shells add them again, towards cmd.exe's limit.",
        fix="Find the line in $PROFILE or HKCU\\Software\\Microsoft\\Command Processor\\AutoRun and guard it.",
        references=("https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.core/about/"
                    "about_profiles",
                    "https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/cmd",
                    WM_SETTINGCHANGE),
    ),
)


CHECK = Check(
    id="path",
    title="PATH",
    probe=probe,
    rules=rules,
    order=10,
    timeout=5.0,
    findings=FINDINGS,
)
