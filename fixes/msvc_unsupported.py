"""The `msvc-unsupported` fix: nvcc rejects the MSVC toolset (or MSVC's STL rejects nvcc).

The choices, safest first: use or install an MSVC toolset inside the toolkit's window
(instructions: the Visual Studio Installer is interactive); install a CUDA whose window
includes this MSVC; or, only with ``--unsafe``, set the user variable ``CUDAFLAGS`` to
``-allow-unsupported-compiler`` (and ``-D_ALLOW_COMPILER_AND_STL_VERSION_MISMATCH`` for
STL1002). CMake reads ``CUDAFLAGS`` only when a build folder is first configured, so the
plan says to delete existing build folders. Undo restores the variable.
"""

from __future__ import annotations

from llmdoctor.actions import BroadcastEnvironment, SetEnvVar
from llmdoctor.knowledge.cuda import FALLBACK_WINDOWS
from llmdoctor.models import Fix, FixContext, Plan

ALLOW_COMPILER = "-allow-unsupported-compiler"
ALLOW_STL = "-D_ALLOW_COMPILER_AND_STL_VERSION_MISMATCH"


def cuda_accepting(msc_ver: int) -> str:
    """The oldest CUDA release line whose host_config.h accepts ``msc_ver``."""
    for low, _high, _gcc, (minimum, limit) in FALLBACK_WINDOWS:
        if minimum <= msc_ver < limit:
            return f"{low[0]}.{low[1]}"
    return "a newer release than llmdoctor knows"


def plan(context: FixContext) -> Plan:
    result = Plan("msvc-unsupported", "make nvcc and MSVC accept each other")
    compiler = [f for f in context.findings if f.id == "vs-cuda.msvc-unsupported"]
    stl = [f for f in context.findings if f.id == "vs-cuda.stl-needs-newer-cuda"]
    if not compiler and not stl:
        return result
    flags = []
    for finding in compiler:
        facts = finding.facts
        low, limit = facts["accepted"]
        if facts["supported_toolsets"]:
            version = facts["supported_toolsets"][-1]
            result.manual_steps.append(
                f"1 (safest) use the installed MSVC {version}, which CUDA {facts['cuda']} accepts: "
                f"cmake -T version={version} ..., or 'vcvarsall.bat x64 -vcvars_ver={version}' before building")
        else:
            result.manual_steps.append(
                f"1 (safest) install an MSVC toolset with _MSC_VER {low}-{limit - 1} next to the current one: "
                "Visual Studio Installer > Modify > Individual components > 'MSVC v143 - VS 2022 C++ x64/x86 "
                f"build tools (v14.{(limit - 1) % 100}-...)', then cmake -T version=14.{(limit - 1) % 100}")
        if facts["msc_ver"] >= limit:
            result.manual_steps.append(f"2 install CUDA {cuda_accepting(facts['msc_ver'])} or newer, whose nvcc "
                                       f"accepts _MSC_VER {facts['msc_ver']}")
        flags.append(ALLOW_COMPILER)
    for finding in stl:
        result.manual_steps.append(f"2 install CUDA {finding.facts['stl_needs_cuda']} or newer: MSVC "
                                   f"{finding.facts['toolset']}'s STL refuses older nvcc (STL1002)")
        flags.append(ALLOW_STL)
    existing = ((context.facts.get("vs-cuda") or {}).get("env") or {}).get("CUDAFLAGS", "")
    value = " ".join([existing] * bool(existing) + [f for f in dict.fromkeys(flags) if f not in existing.split()])
    if value != existing:
        result.actions += [SetEnvVar("user", "CUDAFLAGS", value, "REG_SZ"), BroadcastEnvironment()]
        result.notes.append(f"3 (unsafe) CUDAFLAGS={value}: nvcc stops checking the host compiler; an unsupported "
                            "MSVC may miscompile or fail later, at your own risk. Only with --unsafe.")
    result.manual_steps.append("then delete the CMake build folder (or its CMakeCache.txt): CMake reads CUDAFLAGS "
                               "only on the first configure")
    return result


FIX = Fix(
    id="msvc-unsupported",
    title="Resolve nvcc rejecting the MSVC toolset: a supported toolset, a newer CUDA, or (unsafe) the override",
    checks=("vs-cuda",),
    plan=plan,
    applicability="unsafe",
    scope="user",
    undoable=True,
    afterwards="new-terminal",
)
