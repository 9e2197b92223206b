"""Windows environment rules: the limits on variables and command lines, and how Windows
builds a new process's Path from the registry, in its own order. Pure functions of recorded
values, shared by the `path` check and fix (and testable on any OS).
"""

from __future__ import annotations

import re
from typing import Optional

from llmdoctor.knowledge.path_entries import split_path

__all__ = ["ACCOUNT_VARIABLES", "CMD_LINE_LIMIT", "CORE_MACHINE_VARIABLES", "CORE_USER_VARIABLES", "EDITOR_LIMIT",
           "PERCENT_REFERENCE", "SETX_LIMIT", "VARIABLE_LIMIT", "build_windows_path", "expand_windows", "find_ci",
           "get_ci", "normalise_windows"]

# Windows limits: 32,767 per variable (https://learn.microsoft.com/windows/win32/api/processenv/
# nf-processenv-setenvironmentvariablew); cmd.exe's 8,191-character line, %VAR% expansions
# included (https://learn.microsoft.com/troubleshoot/windows-client/shell-experience/command-line-string-limitation)
VARIABLE_LIMIT = 32_767  # characters per environment variable
CMD_LINE_LIMIT = 8_191  # cmd.exe command line, %VAR% expansions included
EDITOR_LIMIT = 2_047  # the environment editor's limit for one value
SETX_LIMIT = 1_024  # setx silently truncates to this

PERCENT_REFERENCE = re.compile(r"%([^%;]+)%")

# The stages in which Windows builds a new process's environment (Raymond Chen, "What happens
# if I define one environment variable in terms of the value of another environment variable?",
# https://devblogs.microsoft.com/oldnewthing/20231212-00/?p=109137): core system variables;
# system REG_SZ; system REG_EXPAND_SZ; core user variables; user REG_SZ; user REG_EXPAND_SZ;
# account variables. A REG_EXPAND_SZ value sees only earlier stages. So a system Path entry
# "%ProgramFiles%\..." stays literal (ProgramFiles is a core *user* variable), and %USERNAME%
# never expands inside a registry value (an account variable, set last). windir is no core
# variable at all: it is itself a system REG_EXPAND_SZ value ("%SystemRoot%"). The other
# Program Files variables are set with ProgramFiles, in the core user stage.
CORE_MACHINE_VARIABLES = ("ALLUSERSPROFILE", "ProgramData", "PUBLIC", "SystemDrive", "SystemRoot")
CORE_USER_VARIABLES = (
    "APPDATA", "COMPUTERNAME", "LOCALAPPDATA", "ProgramFiles", "ProgramFiles(x86)", "ProgramW6432",
    "CommonProgramFiles", "CommonProgramFiles(x86)", "CommonProgramW6432", "USERPROFILE",
)
ACCOUNT_VARIABLES = ("USERDNSDOMAIN", "USERDOMAIN", "USERNAME")  # after every registry value is expanded



def normalise_windows(entry: str) -> str:
    """How Windows compares entries: case-insensitive, trailing backslash ignored."""
    entry = entry.strip().strip('"').replace("/", "\\")
    while len(entry) > 3 and entry.endswith("\\"):
        entry = entry[:-1]
    return entry.lower()


def expand_windows(value: str, variables: dict) -> str:
    """ExpandEnvironmentStrings: one pass, unknown references left as they are."""
    lookup = {k.lower(): v for k, v in variables.items()}

    def replace(match: re.Match) -> str:
        found = lookup.get(match.group(1).lower())
        return found if found is not None else match.group(0)

    return PERCENT_REFERENCE.sub(replace, value)


def build_windows_path(registry: dict, core: dict) -> dict:
    """The Path a new process gets, built in Windows' own order.

    Order (Raymond Chen, "The Old New Thing", p=109137): core system variables; system
    REG_SZ; system REG_EXPAND_SZ; core user variables; user REG_SZ; user REG_EXPAND_SZ.
    A REG_EXPAND_SZ value sees only variables of an *earlier* step, and expansion goes one
    level deep. The user Path is appended to the system Path.

    Returns {"machine": expanded, "user": expanded, "merged": merged, "entries": [...]} where
    each entry is {"raw", "expanded", "scope"}.
    """
    env: dict = {}
    for name in CORE_MACHINE_VARIABLES:
        if core.get(name):
            env[name] = core[name]
    machine = registry.get("machine", {})
    user = registry.get("user", {})
    for name, item in machine.items():
        if item["type"] == "REG_SZ":
            env[name] = item["value"]
    before_machine_expand = dict(env)
    for name, item in machine.items():
        if item["type"] == "REG_EXPAND_SZ":
            env[name] = expand_windows(item["value"], before_machine_expand)
    for name in CORE_USER_VARIABLES:
        if core.get(name):
            env[name] = core[name]
    for name, item in user.items():
        if item["type"] == "REG_SZ" and name.lower() != "path":
            env[name] = item["value"]
    before_user_expand = dict(env)
    built: dict = {"entries": []}
    for scope, values, visible in (("machine", machine, before_machine_expand),
                                   ("user", user, before_user_expand)):
        item = get_ci(values, "Path")
        parts = []
        for raw in split_path(item["value"] if item else "", ";"):
            # one raw part may expand to several entries (a %Path2% reference)
            value = expand_windows(raw, visible) if item["type"] == "REG_EXPAND_SZ" else raw
            for expanded in value.split(";"):
                built["entries"].append({"raw": raw, "expanded": expanded, "scope": scope})
                parts.append(expanded)
        built[scope] = ";".join(parts)
    built["merged"] = ";".join(v for v in (built["machine"], built["user"]) if v)
    return built


def find_ci(values: dict, name: str) -> Optional[str]:
    """The key of ``values`` equal to ``name`` ignoring case, as Windows compares names."""
    return next((key for key in values if key.lower() == name.lower()), None)


def get_ci(values: dict, name: str):
    key = find_ci(values, name)
    return values[key] if key is not None else None
