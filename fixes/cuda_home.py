"""The `cuda-home` fix: make CUDA_HOME (and CUDA_PATH) name one real toolkit, the one that
matches torch's CUDA and the nvcc on PATH, and put its ``bin`` first on PATH.

POSIX (scope: the user): a marked block in the shell's startup file (see
``llmdoctor.shellenv``), verified in a fresh login shell. Windows (scope: the user):
user variables CUDA_HOME and CUDA_PATH, and the toolkit's ``bin`` at the front of the
user Path. Journaled; ``llmdoctor undo`` restores the file or the registry values.
"""

from __future__ import annotations

import ntpath
import os

from llmdoctor.actions import BroadcastEnvironment, PrependPathEntry, SetEnvVar, SetShellBlock
from llmdoctor.checks.cuda_toolkit import probe_toolkits, usable
from llmdoctor.checks.nvcc import probe_nvcc
from llmdoctor.knowledge.cuda import driver_max_cuda, parse_version
from llmdoctor.knowledge.shells import startup_file
from llmdoctor.models import Fix, FixContext, Plan
from llmdoctor.shellenv import block_lines, new_terminal_reprobe


def choose_toolkit(facts: dict) -> tuple:
    """(toolkit, why): torch's CUDA first, then the nvcc on PATH, then the newest the driver runs."""
    toolkits = [t for t in (facts.get("cuda-toolkit") or {}).get("toolkits", []) if usable(t)]
    if not toolkits:
        return None, "no usable CUDA toolkit (bin/nvcc and include/cuda_runtime.h) is installed"
    torch_cuda = parse_version((facts.get("torch") or {}).get("cuda"))
    if torch_cuda:
        same = [t for t in toolkits if (parse_version(t.get("version")) or ())[:2] == torch_cuda]
        if same:
            return same[0], f"it matches torch's CUDA {torch_cuda[0]}.{torch_cuda[1]}"
        major = [t for t in toolkits if (parse_version(t.get("version")) or (0,))[0] == torch_cuda[0]]
        if major:
            best = max(major, key=lambda t: parse_version(t.get("version")))
            return best, f"it has torch's CUDA major version {torch_cuda[0]}"
        # never a toolkit of another major: PyTorch's extension builder refuses it
        return None, (f"no installed toolkit has torch's CUDA {torch_cuda[0]}.x; install one in the target "
                      f"environment (pip install nvidia-cuda-nvcc-cu{torch_cuda[0]}, or conda install -c nvidia "
                      f"cuda-nvcc={torch_cuda[0]}.{torch_cuda[1]}), or the torch build for the toolkit you have "
                      "('llmdoctor fix --torch-cuda')")
    on_path = next((t for t in toolkits if "nvcc on PATH" in t["found_by"]), None)
    if on_path:
        return on_path, "its nvcc is the one on PATH"
    driver_max = driver_max_cuda(facts)
    runnable = [t for t in toolkits if not driver_max or (parse_version(t.get("version")) or (99, 0)) <= driver_max]
    best = max(runnable or toolkits, key=lambda t: parse_version(t.get("version")) or (0, 0))
    return best, "it is the newest the driver supports" if runnable else "it is the newest installed"


def plan(context: FixContext) -> Plan:
    toolkit, why = choose_toolkit(context.facts)
    result = Plan("cuda-home", "point CUDA_HOME at one toolkit and put its bin first on PATH")
    if toolkit is None:
        result.manual_steps.append(why if "torch's CUDA" in why else why + "; install one from NVIDIA, conda "
                                   "(cuda-toolkit) or pip (nvidia-cuda-nvcc), or unset CUDA_HOME/CUDA_PATH if you "
                                   "only use wheels")
        return result
    root = toolkit["root"]
    env = (context.facts.get("cuda-toolkit") or {}).get("env", {})
    windows = context.platform.get("system") == "windows"
    bin_dir = ntpath.join(root, "bin") if windows else os.path.join(root, "bin")
    nvcc = (context.facts.get("cuda-toolkit") or {}).get("nvcc_on_path") or ""
    nvcc_dir = (ntpath if windows else os.path).dirname(nvcc)
    already = (env.get("CUDA_HOME") == root and (not windows or env.get("CUDA_PATH") == root)
               and (nvcc_dir == bin_dir or nvcc.startswith(root)))
    if already:
        return result
    result.notes.append(f"Toolkit: CUDA {toolkit.get('version')} at {root}, because {why}.")
    if windows:
        result.actions += [SetEnvVar("user", "CUDA_HOME", root, "REG_SZ"),
                           SetEnvVar("user", "CUDA_PATH", root, "REG_SZ")]
        result.actions += [PrependPathEntry("user", bin_dir), BroadcastEnvironment()]
        result.notes.append("The system Path comes before the user Path: if another CUDA's bin is in the "
                            "system Path, its nvcc still wins there (remove it with an elevated "
                            "'llmdoctor fix --path' or in System Properties).")
    else:
        shell = context.platform.get("shell", "")
        home = context.platform.get("home") or os.path.expanduser("~")
        lines = block_lines("cuda-home", shell, {"CUDA_HOME": root}, path_prepend=bin_dir)
        result.actions.append(SetShellBlock(startup_file(shell, home), "cuda-home", tuple(lines)))
    result.notes.append("New terminals get the change; this one keeps its environment.")
    return result


def _toolkit_facts(environment: dict, python: str) -> dict:
    return {"cuda-toolkit": probe_toolkits(environment, [], 10.0), "nvcc": probe_nvcc(environment, 10.0)}


FIX = Fix(
    id="cuda-home",
    title="Point CUDA_HOME at one toolkit and put its bin first on PATH",
    checks=("cuda-toolkit", "nvcc"),
    plan=plan,
    applicability="safe",
    scope="user",
    undoable=True,
    afterwards="new-terminal",
    reprobe=new_terminal_reprobe(_toolkit_facts),
)
