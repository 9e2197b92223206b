"""A plan shown as the script it amounts to: bash on POSIX, PowerShell on Windows.

The script is what ``--dry-run`` prints and what the user consents to; llmdoctor itself
applies the typed actions (journaled), not this text.
"""

from __future__ import annotations

import shlex

from llmdoctor.actions import (
    BroadcastEnvironment,
    CopyFile,
    DeleteEnvVar,
    PipInstall,
    PipUninstall,
    PrependPathEntry,
    ReplaceLine,
    RunCommand,
    SetEnvVar,
    SetJsonValue,
    SetShellBlock,
    WriteFile,
)

HIVES = {"user": "[EnvironmentVariableTarget]::User", "machine": "[EnvironmentVariableTarget]::Machine"}
REG_PATHS = {"user": r"HKCU:\Environment",
             "machine": r"HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Environment"}


def ps_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_plan(plan, flavour: str) -> str:
    lines = [f"# llmdoctor fix {plan.fix_id}: {plan.summary}"]
    if flavour == "powershell" and any(getattr(a, "needs_admin", False) for a in plan.actions):
        lines.append("#Requires -RunAsAdministrator")  # PowerShell refuses the script in a non-elevated shell
    lines.append("set -euo pipefail" if flavour == "bash" else "$ErrorActionPreference = 'Stop'")
    backed_up: set = set()
    for action in plan.actions:
        lines.append(f"# {action.describe()}")
        if flavour == "bash":
            path = getattr(action, "path", None)
            if isinstance(action, (ReplaceLine, SetShellBlock)) or (isinstance(action, WriteFile) and action.backup):
                if path not in backed_up:
                    backed_up.add(path)
                    lines.append(f"[ -e {shlex.quote(path)} ] && cp -n {shlex.quote(path)} "
                                 f"{shlex.quote(path + '.llmdoctor-backup')}")
            lines.extend(_bash(action))
        else:
            lines.extend(_powershell(action))
    for step in plan.manual_steps:
        lines.append(f"# MANUAL: {step}")
    return "\n".join(lines) + "\n"


def _bash(action) -> list:
    q = shlex.quote
    if isinstance(action, ReplaceLine):
        # GNU sed's "Nc\" command replaces line N; backslashes in the text are doubled
        program = str(action.line) + "c\\\n" + action.new.replace("\\", "\\\\")
        return [f"#   was: {action.old}", f"sed -i {q(program)} {q(action.path)}"]
    if isinstance(action, WriteFile):
        return [f"cat > {q(action.path)} <<'LLMDOCTOR'", action.content.rstrip("\n"), "LLMDOCTOR"]
    if isinstance(action, SetJsonValue):
        chain = "".join(f".setdefault({k!r}, {{}})" for k in action.keys[:-1])
        return [f"python3 - {q(action.path)} {q(action.value)} <<'LLMDOCTOR'",
                "import json, os, sys",
                "path, value = sys.argv[1], sys.argv[2]",
                "data = json.load(open(path)) if os.path.exists(path) else {}",
                f"data{chain}[{action.keys[-1]!r}] = value",
                "json.dump(data, open(path, 'w'), indent=2)",
                "LLMDOCTOR"]
    if isinstance(action, SetShellBlock):
        return [f"# (an earlier '{action.name}' block, if any, is replaced rather than repeated)",
                f"cat >> {q(action.path)} <<'LLMDOCTOR'", *action.lines, "LLMDOCTOR"]
    if isinstance(action, CopyFile):
        return [f"cp {q(action.source)} {q(action.destination)}"]
    if isinstance(action, (PipInstall, PipUninstall)):
        return [" ".join(q(a) for a in action.argv())]
    if isinstance(action, RunCommand):
        return [("sudo " if action.needs_admin else "") + " ".join(q(a) for a in action.argv)]
    if isinstance(action, (SetEnvVar, DeleteEnvVar, PrependPathEntry, BroadcastEnvironment)):
        return [f"# (Windows only) {action.describe()}"]
    return [f"# {action.describe()}"]


def _powershell(action) -> list:
    if isinstance(action, SetEnvVar):
        kind = "ExpandString" if action.value_type == "REG_EXPAND_SZ" else "String"
        return [f"Set-ItemProperty -Path {ps_quote(REG_PATHS[action.scope])} -Name "
                f"{ps_quote(action.name)} -Type {kind} -Value {ps_quote(action.value)}"]
    if isinstance(action, PrependPathEntry):
        target = HIVES[action.scope]
        return [f"$old = [Environment]::GetEnvironmentVariable('Path', {target})",
                f"$rest = ($old -split ';') | Where-Object {{ $_ -and ($_.TrimEnd('\\') -ne "
                f"{ps_quote(action.entry.rstrip(chr(92)))}) }}",
                f"[Environment]::SetEnvironmentVariable('Path', (@({ps_quote(action.entry)}) + $rest) -join ';', "
                f"{target})"]
    if isinstance(action, DeleteEnvVar):
        return [f"Remove-ItemProperty -Path {ps_quote(REG_PATHS[action.scope])} -Name "
                f"{ps_quote(action.name)}"]
    if isinstance(action, BroadcastEnvironment):
        return ["# tell Explorer and new terminals: re-setting a variable broadcasts WM_SETTINGCHANGE",
                "[Environment]::SetEnvironmentVariable('LLMDOCTOR_REFRESH', $null, "
                "[EnvironmentVariableTarget]::User)"]
    if isinstance(action, (WriteFile, ReplaceLine)):
        if isinstance(action, ReplaceLine):
            return [f"$lines = Get-Content -LiteralPath {ps_quote(action.path)}",
                    f"$lines[{action.line - 1}] = {ps_quote(action.new)}",
                    f"Set-Content -LiteralPath {ps_quote(action.path)} -Value $lines"]
        return [f"Set-Content -LiteralPath {ps_quote(action.path)} -Encoding utf8 -Value @'",
                action.content.rstrip("\n"), "'@"]
    if isinstance(action, CopyFile):
        return [f"Copy-Item -LiteralPath {ps_quote(action.source)} -Destination "
                f"{ps_quote(action.destination)} -Force"]
    if isinstance(action, (PipInstall, PipUninstall)):
        return ["& " + " ".join(ps_quote(a) for a in action.argv())]
    if isinstance(action, RunCommand):
        return ["& " + " ".join(ps_quote(a) for a in action.argv)]
    return [f"# {action.describe()}"]
