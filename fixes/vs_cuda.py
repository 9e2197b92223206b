"""The `vs-cuda` fix: copy the CUDA toolkit's MSBuild integration into every Visual Studio
install that lacks it, as CUDA's installer would have had the install existed then.

The toolkit is the one in use (the nvcc on PATH, else the newest). Every file of its
``extras\\visual_studio_integration\\MSBuildExtensions`` (``CUDA X.Y.props``, ``.targets``,
``.xml``, ``Nvda.Build.CudaTasks.vX.Y.dll``; 13.x adds ``CUDA X.Y.Version.props``) goes
into the install's ``BuildCustomizations`` folder when absent or different. The folders
are under Program Files, so the fix needs an elevated terminal and says so before it
starts; ``--dry-run`` prints the PowerShell script with ``#Requires -RunAsAdministrator``.
Each copy journals the file it replaced (or that there was none): ``undo`` removes what it
added and restores what it overwrote, byte for byte.
"""

from __future__ import annotations

import ntpath
import posixpath

from llmdoctor.actions import CopyFile
from llmdoctor.checks.vs_cuda import BUILD_CUSTOMIZATIONS, label, missing_files, toolkit_in_use
from llmdoctor.models import Fix, FixContext, Plan


def plan(context: FixContext) -> Plan:
    facts = context.facts.get("vs-cuda") or {}
    result = Plan("vs-cuda", "copy CUDA's MSBuild integration into Visual Studio")
    wanted = {f.facts.get("install") for f in context.findings
              if f.id in ("vs-cuda.no-integration", "vs-cuda.integration-incomplete", "vs-cuda.props-mismatch")}
    if not wanted:
        return result
    toolkit = toolkit_in_use(facts)
    if toolkit is None or not toolkit.get("extensions"):
        result.manual_steps.append("reinstall the CUDA toolkit with its 'Visual Studio Integration' component: "
                                   "its extras\\visual_studio_integration\\MSBuildExtensions folder is missing")
        return result
    join = ntpath.join if context.platform.get("system") == "windows" else posixpath.join
    for install in facts.get("installs", []):
        if install.get("path") not in wanted or install.get("major") not in BUILD_CUSTOMIZATIONS:
            continue
        absent, different = missing_files(install, toolkit)
        for name in absent + different:
            result.actions.append(CopyFile(join(toolkit["extensions_folder"], name),
                                           join(install["customizations_folder"], name), needs_admin=True))
        if absent or different:
            result.notes.append(f"{label(install)}: {len(absent)} file(s) added"
                                + (f", {len(different)} replaced (the old ones are journaled)" if different else "")
                                + f" in {install['customizations_folder']}, from CUDA {toolkit['version']}.")
    if result.actions:
        result.notes.append("Program Files needs an elevated terminal (Run as administrator). Restart Visual "
                            "Studio, and delete CMake build folders configured before: they cached the failure.")
    return result


FIX = Fix(
    id="vs-cuda",
    title="Copy CUDA's MSBuild integration into the Visual Studio installs that lack it",
    checks=("vs-cuda",),
    plan=plan,
    applicability="safe",
    scope="machine",
    needs_admin=True,
    undoable=True,
)
