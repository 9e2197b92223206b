"""The `bitsandbytes` fix: the least invasive repair that makes bitsandbytes load a working library.

In order, each step only when a finding asks for it:

1. remove conflicting distributions (``bitsandbytes-windows``, old ``bitsandbytes-cudaXYZ``);
2. unset a stale ``BNB_CUDA_VERSION`` where it is set (a startup-file line is commented
   out, the Windows user variable deleted; a conda env's variable is a manual step);
3. install or upgrade to the newest known release that ships a library for torch's CUDA
   and installs beside this torch and Python (``llmdoctor.knowledge.bitsandbytes.release_for``); torch is
   pinned to its installed build on the same command line so pip cannot swap it;
4. when the library's CUDA dependencies are on this machine but not on the loader's path,
   put their folders first on LD_LIBRARY_PATH (a marked startup-file block), installing
   NVIDIA's runtime wheel first when no copy exists;
5. when no published wheel fits (an unusual CUDA, a GPU the builds lack, a source checkout),
   write the source-build script and leave running it to the user (it clones and compiles
   for minutes); on Windows, Visual Studio's CUDA integration is a checked prerequisite.

The versions replaced are journaled, so ``llmdoctor undo`` reinstalls them. Verified in a
fresh login shell by the `bitsandbytes` check and smoke test.
"""

from __future__ import annotations

import os
import shlex
from typing import Optional

from llmdoctor.actions import DeleteEnvVar, PipInstall, PipUninstall, ReplaceLine, SetShellBlock, WriteFile
from llmdoctor.checks.bitsandbytes import machine_view
from llmdoctor.knowledge import bitsandbytes as bnb
from llmdoctor.knowledge.cuda import text
from llmdoctor.knowledge.shells import startup_file
from llmdoctor.models import Fix, FixContext, Plan
from llmdoctor.shellenv import block_lines, new_terminal_reprobe

REPOSITORY = "https://github.com/bitsandbytes-foundation/bitsandbytes.git"
NEEDS_RELEASE = {"no-binary", "cpu-fallback", "windows-unsupported", "no-cpu-backend", "legacy-setup",
                 "runtime-mismatch", "conflicting-distribution", "diagnostics-setup-failed", "diagnostics-no-binary",
                 "diagnostics-cpu-library", "dll-on-path-only"}
NEEDS_UNSET = {"override-stale", "override-major", "diagnostics-bad-override"}


def plan(context: FixContext) -> Plan:
    facts = context.facts.get("bitsandbytes") or {}
    result = Plan("bitsandbytes", "make bitsandbytes load a native library that works here")
    problems = {f.id.split(".", 1)[1]: f for f in context.findings if f.id.startswith("bitsandbytes.")
                and f.severity in ("warning", "error") and "bitsandbytes" in f.fixes}
    rooted = [f for f in context.findings if f.id.startswith("bitsandbytes.") and f.caused_by == "torch.cpu-only"]
    if rooted and not problems:
        result.manual_steps.append("the root is torch's CPU build, not bitsandbytes: run 'llmdoctor fix --torch-cuda' "
                                   "(bitsandbytes then follows torch's CUDA)")
        return result
    if not problems:
        return result
    python = facts.get("python") or context.python
    system = context.platform.get("system", "linux")
    torch = facts.get("torch") or {}
    torch_cuda, usable, capability = machine_view(context.facts, torch)
    distributions = facts.get("distributions") or {}
    python_version = tuple(int(x) for x in (facts.get("python_version") or "3.11").split(".")[:2])

    if "conflicting-distribution" in problems:
        others = tuple(sorted(n for n in distributions if n != "bitsandbytes"))
        result.actions.append(PipUninstall(python, others + (("bitsandbytes",) if "bitsandbytes" in distributions
                                                               else ())))
        result.notes.append(f"{', '.join(others)} share the 'bitsandbytes' folder with the official package; "
                            "removing them all and installing one release leaves no mixed files.")
    if NEEDS_UNSET & set(problems):
        _unset_override(facts, system, result)

    target = bnb.release_for(torch_cuda if usable else None, system, python_version, torch.get("version"),
                             capability)
    wants_release = bool(NEEDS_RELEASE & set(problems)) or (
        "not-compiled" in problems and not facts.get("source_checkout"))
    if "missing-dependency" in problems and _dependency_needs_release(facts, problems["missing-dependency"],
                                                                        torch_cuda):
        wants_release = True
    if wants_release and target:
        _install(result, python, target, torch, facts, torch_cuda, usable, system)
    elif "missing-dependency" in problems:
        _library_path(result, facts, problems["missing-dependency"], context, python)
    if "arch-missing" in problems or ("not-compiled" in problems and facts.get("source_checkout")) or (
            wants_release and not target):
        _source_build(result, facts, python, system, torch_cuda, capability, context)
    return result


def _install(result: Plan, python: str, target: str, torch: dict, facts: dict, torch_cuda, usable, system) -> None:
    current = facts.get("version")
    requirements = [f"bitsandbytes=={target}"]
    if torch.get("version"):
        requirements.append(f"torch=={torch['version']}")  # keep the installed build; pip must not swap it
    extra = ("--force-reinstall", "--no-deps") if current == target else ()
    if current == target:
        requirements = requirements[:1]
    result.actions.append(PipInstall(python, tuple(requirements), extra_args=extra))
    if torch_cuda and usable:
        builds = bnb.RELEASES[target]["windows" if system == "windows" else "linux"]
        files = [f"libbitsandbytes_cuda{b}{bnb.suffix(system)}" for b in builds]
        chosen = bnb.select_library(bnb.Version(target), system, files, torch_cuda, True, None, None)
        why = f"it ships {chosen.name} for torch's CUDA {text(torch_cuda)}"
    else:
        why = "its CPU backend runs 4-bit and 8-bit layers without a GPU"
    before = f"bitsandbytes {current} -> {target}" if current and current != target else (
        f"reinstall bitsandbytes {target}" if current else f"install bitsandbytes {target}")
    result.notes.append(f"{before}: the newest release known to install beside torch {torch.get('version', '?')} "
                        f"and Python {facts.get('python_version', '?')}, and {why}.")
    if torch.get("version"):
        result.notes.append(f"torch=={torch['version']} on the same line keeps the installed torch build: pip "
                            "would otherwise be free to replace it (a CUDA build change is its own fix, --torch-cuda).")


def _dependency_needs_release(facts: dict, finding, torch_cuda) -> bool:
    """A dependency of another CUDA major than torch's: a different bitsandbytes build is the fix."""
    missing = finding.facts.get("missing", [])
    for name in missing:
        major = _soname_major(name)
        if major and torch_cuda and major != torch_cuda[0]:
            return True
    return False


def _soname_major(name: str) -> Optional[int]:
    import re

    match = re.match(r"lib(?:cudart|cublas|cublaslt|cusparse)\.so\.(\d+)", name.lower())
    return int(match.group(1)) if match else None


def _library_path(result: Plan, facts: dict, finding, context: FixContext, python: str) -> None:
    library = (facts.get("libraries") or {}).get(finding.facts.get("library")) or {}
    folders: list = []
    install: list = []
    for name in finding.facts.get("missing", []):
        candidates = (library.get("candidates") or {}).get(name) or []
        if candidates:
            if candidates[0] not in folders:
                folders.append(candidates[0])
            continue
        major = _soname_major(name)
        site = next(iter(facts.get("site_packages") or []), None)
        folder = bnb.wheel_library_folder(site, name) if site and major else None
        if folder is None:
            result.manual_steps.append(f"install {name}: it comes from {bnb.provider(name)}")
            continue
        component = bnb.provider(name).split("pip package ", 1)[1].split(",", 1)[0]
        if component not in install:
            install.append(component)
        if folder not in folders:
            folders.append(folder)
    if install:
        result.actions.append(PipInstall(python, tuple(install)))
        result.notes.append(f"{', '.join(install)}: NVIDIA's wheels of the missing runtime libraries.")
    if folders:
        if context.platform.get("system") == "windows":
            result.manual_steps.append("copy the DLLs from " + ", ".join(folders) + " beside the bitsandbytes "
                                       "library: Python 3.8+ does not search PATH for DLLs")
            return
        shell = context.platform.get("shell", "")
        home = context.platform.get("home") or os.path.expanduser("~")
        lines = block_lines("bitsandbytes", shell, {}, library_path_prepend=tuple(folders))
        result.actions.append(SetShellBlock(startup_file(shell, home), "bitsandbytes", tuple(lines)))
        result.afterwards = "new-terminal"
        result.notes.append("LD_LIBRARY_PATH gets " + ", ".join(folders) + " first, in new terminals "
                            "(where the loader looks before RUNPATH and the system cache).")


def _unset_override(facts: dict, system: str, result: Plan) -> None:
    value = facts.get("bnb_cuda_version")
    if system == "windows":
        result.actions.append(DeleteEnvVar("user", "BNB_CUDA_VERSION"))
        result.notes.append("BNB_CUDA_VERSION is removed from the user environment; if it is a system variable, "
                            "remove it in System Properties (administrator).")
        return
    sources = facts.get("bnb_cuda_version_set_in") or []
    for source in sources:
        if "file" in source:
            result.actions.append(ReplaceLine(source["file"], source["line"], source["text"],
                                              "# " + source["text"] + "  # disabled by llmdoctor",
                                              reason="stale BNB_CUDA_VERSION"))
        elif "conda_env" in source:
            prefix = shlex.quote(source["conda_env"])
            result.manual_steps.append(f"conda env config vars unset BNB_CUDA_VERSION -p {prefix}")
    if sources:
        result.afterwards = "new-terminal"
        result.notes.append(f"BNB_CUDA_VERSION={value!r} is disabled where it is set; bitsandbytes then follows "
                            "torch's CUDA version.")
    result.manual_steps.append("in this terminal: unset BNB_CUDA_VERSION" + (
        "" if sources else " (it is not set in any startup file llmdoctor reads: look in your scripts)"))


def _source_build(result: Plan, facts: dict, python: str, system: str, torch_cuda, capability,
                  context: FixContext) -> None:
    from llmdoctor.journal import state_dir

    checkout = os.path.dirname(facts["location"]) if facts.get("source_checkout") and facts.get("location") else None
    cc = f" -DCOMPUTE_CAPABILITY={capability[0]}{capability[1]}" if capability else ""
    backend = "cuda" if torch_cuda else "cpu"
    if system == "windows":
        vs = [f for f in context.findings if f.id.startswith("vs-cuda.") and f.severity == "error"]
        if vs:
            result.manual_steps.append("first repair Visual Studio's CUDA integration ('llmdoctor fix --vs-cuda'): "
                                       + vs[0].message)
        elif "vs-cuda" not in context.facts:
            result.manual_steps.append("check Visual Studio's CUDA integration first: llmdoctor check --only vs-cuda")
        name = "build-bitsandbytes.ps1"
        source = checkout or "$HOME\\bitsandbytes-src"
        content = "\n".join([
            "# Build bitsandbytes from source - written by 'llmdoctor fix --bitsandbytes'",
            "$ErrorActionPreference = 'Stop'",
            f"$src = '{source}'",
            f"if (-not (Test-Path \"$src\\.git\")) {{ git clone {REPOSITORY} $src }}",
            "Set-Location $src",
            f"cmake -DCOMPUTE_BACKEND={backend}{cc} -S .",
            "cmake --build . --config Release",
            f"& '{python}' -m pip install {'-e ' if checkout else ''}.",
            ""])
    else:
        name = "build-bitsandbytes.sh"
        source = shlex.quote(checkout) if checkout else '"$HOME/bitsandbytes-src"'
        content = "\n".join([
            "#!/usr/bin/env bash",
            "# Build bitsandbytes from source - written by 'llmdoctor fix --bitsandbytes'",
            "set -euo pipefail",
            f"src={source}",
            f'[ -d "$src/.git" ] || git clone {REPOSITORY} "$src"',
            'cd "$src"',
            f"cmake -DCOMPUTE_BACKEND={backend}{cc} -S .",
            'cmake --build . --config Release -j "$(nproc 2>/dev/null || echo 4)"',
            f"{shlex.quote(python)} -m pip install {'-e ' if checkout else ''}.",
            ""])
    path = str(state_dir() / name)
    result.actions.append(WriteFile(path, content, backup=False))
    why = ("no published wheel loads here" if not facts.get("source_checkout")
           else "this is a source checkout")
    result.notes.append(f"A source build, because {why}"
                        + (f" (GPU sm_{capability[0]}{capability[1]})" if capability else "")
                        + ": needs git, CMake >= 3.22.1, a compiler and a CUDA toolkit >= 11.8 (nvcc).")
    result.manual_steps.append(("powershell -File " if system == "windows" else "bash ") + path
                               + "   # clones and compiles for several minutes")


def _bnb_facts(environment: dict, python: str) -> dict:
    """The facts the fix's verification needs, as a new terminal would see them."""
    from llmdoctor.checks import nvidia_driver
    from llmdoctor.checks.bitsandbytes import probe_bitsandbytes
    from llmdoctor.models import ProbeContext
    from llmdoctor.target import probe_target

    target = probe_target(python)
    return {"nvidia-driver": nvidia_driver.probe(ProbeContext(python=python)),
            "bitsandbytes": probe_bitsandbytes(target, environment, os.name == "nt")}


FIX = Fix(
    id="bitsandbytes",
    title="Make bitsandbytes load a library that works with this torch and GPU",
    checks=("nvidia-driver", "bitsandbytes", "vs-cuda"),
    plan=plan,
    applicability="safe",
    scope="user",  # pip installs into the target interpreter's environment
    undoable=True,
    smoke=("bitsandbytes",),
    reprobe=new_terminal_reprobe(_bnb_facts),
)
