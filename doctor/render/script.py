"""A plan shown as the script it amounts to: bash on POSIX, PowerShell on Windows.

The script is what ``--dry-run`` prints and what the user consents to; llmdoctor itself
applies the typed actions (journaled), not this text. Each action renders its own lines
(``llmdoctor.actions``); this module only puts them in order.
"""

from __future__ import annotations

from llmdoctor.actions import ps_quote

__all__ = ["ps_quote", "render_plan"]


def render_plan(plan, flavour: str) -> str:
    lines = [f"# llmdoctor fix {plan.fix_id}: {plan.summary}"]
    if flavour == "powershell" and plan.needs_admin:
        lines.append("#Requires -RunAsAdministrator")  # PowerShell refuses the script in a non-elevated shell
    lines.append("set -euo pipefail" if flavour == "bash" else "$ErrorActionPreference = 'Stop'")
    said: set = set()
    for action in plan.actions:
        label = " [machine scope, administrator rights]" if action.scope == "machine" else (
            " [administrator rights]" if action.needs_admin else "")
        lines.append(f"# {action.describe()}{label}")
        for line in action.script_setup(flavour):
            if line not in said:  # a backup is taken once per file
                said.add(line)
                lines.append(line)
        lines.extend(action.bash() if flavour == "bash" else action.powershell())
    for step in plan.manual_steps:
        lines.append(f"# MANUAL: {step}")
    return "\n".join(lines) + "\n"
