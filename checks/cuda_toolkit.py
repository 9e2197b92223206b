"""The `cuda-toolkit` check: every CUDA toolkit on the machine, and which one each
consumer would pick.

Looks in ``CUDA_HOME``, ``CUDA_PATH``, ``CUDA_PATH_Vx_y``, the ``nvcc`` on PATH (seeing
through wrapper scripts), ``/usr/local/cuda*``, ``/opt/cuda``, ``C:\\Program Files\\NVIDIA
GPU Computing Toolkit\\CUDA\\v*``, the conda env and pip's ``nvidia-cuda-nvcc`` wheels in
the target interpreter. Versions come from ``version.json``, ``version.txt`` or the
wheels' ``dist-info``, and only when none says, from ``nvcc --version``.

Which toolkit is used is modelled on the consumers' own code: PyTorch's
``torch.utils.cpp_extension._find_cuda_home`` (CUDA_HOME or CUDA_PATH, else
``dirname(dirname(which nvcc))`` without resolving links, else on Windows the *first*
match of a glob, else /usr/local/cuda) and CMake's ``FindCUDAToolkit`` (CUDAToolkit_ROOT,
CUDACXX, nvcc on PATH, CUDA_PATH, /usr/local/cuda, the newest /usr/local/cuda-X.Y).
"""

from __future__ import annotations

import glob
import json
import ntpath
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Optional

from llmdoctor import proc
from llmdoctor.knowledge.cuda import driver_advice, driver_max_cuda, driver_verdict, parse_version, text
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext

WINDOWS_GLOB = "C:/Program Files/NVIDIA GPU Computing Toolkit/CUDA/v*.*"
ENV_NAMES = ("CUDA_HOME", "CUDA_PATH", "CUDAToolkit_ROOT", "CUDACXX", "CUDAHOSTCXX",
             "NVCC_PREPEND_FLAGS", "NVCC_APPEND_FLAGS")


# ----------------------------------------------------------------------------- probe


def _nvcc_name() -> str:
    return "nvcc.exe" if sys.platform == "win32" else "nvcc"


def wrapper_target(path: str) -> Optional[str]:
    """The real nvcc behind a small wrapper script (``exec /usr/local/cuda-13.0/bin/nvcc "$@"``)."""
    try:
        if os.path.getsize(path) > 4096:
            return None
        content = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not content.startswith("#!"):
        return None
    match = re.search(r"(/[^\s\"']+/bin/nvcc)\b", content)
    return match.group(1) if match else None


def toolkit_version(root: Path, timeout: float) -> tuple:
    """(version, source) of a toolkit, cheapest source first."""
    try:
        data = json.loads((root / "version.json").read_text(encoding="utf-8"))
        return data["cuda"]["version"], "version.json"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        match = re.search(r"CUDA Version ([\d.]+)", (root / "version.txt").read_text(encoding="utf-8"))
        if match:
            return match.group(1), "version.txt"
    except OSError:
        pass
    # toolkits assembled from NVIDIA's wheels keep dist-info inside; a pip wheel's root is
    # site-packages/nvidia/cuda_nvcc, with its dist-info two levels up
    for info in sorted(root.glob("dist-info/nvidia_cuda_nvcc*.dist-info")) + sorted(
            root.parent.parent.glob("nvidia_cuda_nvcc*.dist-info")):
        match = re.match(r"nvidia_cuda_nvcc(?:_cu\d+)?-([\d.]+)\.dist-info", info.name)
        if match:
            return match.group(1), "dist-info"
    nvcc = root / "bin" / _nvcc_name()
    if nvcc.exists():
        result = proc.run([str(nvcc), "--version"], timeout=timeout)
        match = re.search(r"release (\d+\.\d+)", result.stdout)
        if match:
            return match.group(1), "nvcc --version"
        return None, f"nvcc --version failed: {result.error or result.returncode}"
    return None, "no version file"


def _candidate_roots(environ: dict, site_packages: list) -> list:
    """(root, how it was found) in the order a person would list them."""
    found = []
    for name in ("CUDA_HOME", "CUDA_PATH", "CUDAToolkit_ROOT"):
        if environ.get(name):
            found.append((environ[name], f"${name}"))
    for name in sorted(environ):
        if re.fullmatch(r"CUDA_PATH_V\d+_\d+", name):
            found.append((environ[name], f"${name}"))
    nvcc = shutil.which("nvcc", path=environ.get("PATH"))
    if nvcc:
        real = wrapper_target(nvcc) or os.path.realpath(nvcc)
        found.append((os.path.dirname(os.path.dirname(real)), "nvcc on PATH"))
    for pattern in ("/usr/local/cuda", "/usr/local/cuda-*", "/opt/cuda"):
        found.extend((path, pattern) for path in sorted(glob.glob(pattern)))
    if sys.platform == "win32":  # pragma: no cover
        found.extend((path, "Program Files") for path in glob.glob(WINDOWS_GLOB))
    conda = environ.get("CONDA_PREFIX")
    if conda:
        for root in (conda, os.path.join(conda, "Library")):
            if os.path.exists(os.path.join(root, "bin", _nvcc_name())):
                found.append((root, "conda env"))
    for site in site_packages:
        for wheel in ("nvidia/cuda_nvcc", "nvidia/cu13"):
            root = os.path.join(site, *wheel.split("/"))
            if os.path.exists(os.path.join(root, "bin", _nvcc_name())):
                found.append((root, "pip wheel"))
    return found


def probe_toolkits(environ: dict, site_packages: list, timeout: float) -> dict:
    toolkits: dict = {}
    for root, how in _candidate_roots(environ, site_packages):
        path = Path(root)
        real = os.path.realpath(root)
        if real in toolkits:
            toolkits[real]["found_by"].append(how)
            continue
        entry = {"root": root, "real_root": real, "found_by": [how], "exists": path.is_dir(),
                 "has_nvcc": (path / "bin" / _nvcc_name()).exists(),
                 "has_headers": (path / "include" / "cuda_runtime.h").exists()}
        if entry["exists"] and (entry["has_nvcc"] or entry["has_headers"]):
            entry["version"], entry["version_source"] = toolkit_version(path, timeout)
        toolkits[real] = entry
    nvcc = shutil.which("nvcc", path=environ.get("PATH"))
    windows_glob = sorted(glob.glob(WINDOWS_GLOB)) if sys.platform == "win32" else []
    # where each root a rule may name really is: the rules compare without touching the disk
    named = [environ.get(n) for n in ("CUDA_HOME", "CUDA_PATH", "CUDAToolkit_ROOT")] + ["/usr/local/cuda"]
    if nvcc:
        named.append(os.path.dirname(os.path.dirname(nvcc)))
    if environ.get("CUDACXX"):
        named.append(os.path.dirname(os.path.dirname(environ["CUDACXX"])))
    realpaths = {root: os.path.realpath(root) for root in named if root}
    return {
        "realpaths": realpaths,
        "os": "windows" if sys.platform == "win32" else "posix",
        "env": {name: environ[name] for name in environ
                if name in ENV_NAMES or re.fullmatch(r"CUDA_PATH_V\d+_\d+", name)},
        "nvcc_on_path": nvcc,
        "nvcc_wrapper_for": wrapper_target(nvcc) if nvcc else None,
        "windows_glob": windows_glob,
        "usr_local_cuda_exists": os.path.exists("/usr/local/cuda"),
        "toolkits": list(toolkits.values()),
    }


def probe(context: ProbeContext) -> dict:
    site_packages = context.target().get("site_packages", [])
    return probe_toolkits(dict(os.environ), site_packages, context.timeout)


# ----------------------------------------------------------------------------- who picks what


def torch_pick(facts: dict) -> tuple:
    """(root or None, why): torch.utils.cpp_extension._find_cuda_home, step by step."""
    env = facts.get("env", {})
    if env.get("CUDA_HOME") or env.get("CUDA_PATH"):
        name = "CUDA_HOME" if env.get("CUDA_HOME") else "CUDA_PATH"
        return env[name], f"${name}"
    nvcc = facts.get("nvcc_on_path")
    if nvcc:
        dirname = ntpath.dirname if facts.get("os") == "windows" else os.path.dirname
        return dirname(dirname(nvcc)), f"dirname(dirname({nvcc})), links not resolved"
    if facts.get("os") == "windows":
        matches = facts.get("windows_glob") or []
        if matches:
            return matches[0], "the first match of the Program Files glob (not the newest)"
        return None, "nothing found"
    if facts.get("usr_local_cuda_exists"):
        return "/usr/local/cuda", "the default /usr/local/cuda"
    return None, "nothing found"


def cmake_pick(facts: dict) -> tuple:
    """(root or None, why): CMake's FindCUDAToolkit search order."""
    env = facts.get("env", {})
    if env.get("CUDAToolkit_ROOT"):
        return env["CUDAToolkit_ROOT"], "$CUDAToolkit_ROOT"
    if env.get("CUDACXX"):
        return os.path.dirname(os.path.dirname(env["CUDACXX"])), "$CUDACXX"
    by_source = {how: t for t in facts.get("toolkits", []) for how in t["found_by"]}
    if "nvcc on PATH" in by_source:
        return by_source["nvcc on PATH"]["real_root"], "nvcc on PATH (links resolved)"
    if env.get("CUDA_PATH"):
        return env["CUDA_PATH"], "$CUDA_PATH"
    if facts.get("usr_local_cuda_exists"):
        return "/usr/local/cuda", "/usr/local/cuda"
    versioned = [t for t in facts.get("toolkits", []) if "/usr/local/cuda-*" in t["found_by"] and t.get("version")]
    if versioned:
        newest = max(versioned, key=lambda t: parse_version(t["version"]) or (0, 0))
        return newest["root"], "the newest /usr/local/cuda-X.Y"
    return None, "nothing found"


def toolkit_at(facts: dict, root: Optional[str]) -> Optional[dict]:
    if not root:
        return None
    real = (facts.get("realpaths") or {}).get(root, root) if facts.get("os") != "windows" else root
    for toolkit in facts.get("toolkits", []):
        if real in (toolkit["real_root"], toolkit["root"]) or root in (toolkit["root"], toolkit["real_root"]):
            return toolkit
    return None


def usable(toolkit: Optional[dict]) -> bool:
    return bool(toolkit and toolkit.get("exists") and toolkit.get("has_nvcc") and toolkit.get("has_headers"))


# ----------------------------------------------------------------------------- rules


def rules(facts: dict, context: RuleContext) -> list:
    findings: list = []
    env = facts.get("env", {})
    toolkits = [t for t in facts.get("toolkits", []) if t.get("exists") and (t["has_nvcc"] or t["has_headers"])]
    for name in ("CUDA_HOME", "CUDA_PATH"):
        value = env.get(name)
        if value and not any(t["root"] == value and t["exists"] for t in facts.get("toolkits", [])):
            findings.append(Finding(
                f"cuda-toolkit.{name.lower().replace('_', '-')}-missing", "error",
                f"{name} points at {value}, which does not exist",
                "PyTorch's extension builder and CMake take it as given and fail with missing "
                "nvcc or headers; point it at an installed toolkit.",
                fixes=["cuda-home"], facts={name: value}))
    if not toolkits:
        findings.append(Finding(
            "cuda-toolkit.none", "info",
            "no CUDA toolkit found: fine for prebuilt wheels, needed only to compile CUDA code",
            "torch, bitsandbytes and llama-cpp wheels ship the CUDA runtime they need. Building "
            "extensions (flash-attn, a llama.cpp source build) needs a toolkit whose major version "
            "matches torch's."))
        return findings

    torch_root, torch_why = torch_pick(facts)
    cmake_root, cmake_why = cmake_pick(facts)
    torch_toolkit, cmake_toolkit = toolkit_at(facts, torch_root), toolkit_at(facts, cmake_root)
    listing = "\n".join(
        f"  {t['root']}: CUDA {t.get('version') or '?'} ({t.get('version_source', '')}; found by "
        f"{', '.join(t['found_by'])})" for t in toolkits)
    summary = ", ".join(f"{t.get('version') or '?'} at {t['root']}" for t in toolkits)
    findings.append(Finding(
        "cuda-toolkit.found", "ok", f"CUDA toolkit{'s' if len(toolkits) > 1 else ''}: {summary}",
        f"{listing}\n  PyTorch extensions would use: {torch_root or 'none'} ({torch_why})\n"
        f"  CMake FindCUDAToolkit would use: {cmake_root or 'none'} ({cmake_why})",
        facts={"torch": torch_root, "cmake": cmake_root}))

    if torch_root and torch_root not in (env.get("CUDA_HOME"), env.get("CUDA_PATH")) and not usable(torch_toolkit):
        findings.append(Finding(
            "cuda-toolkit.torch-home-not-a-toolkit", "warning",
            f"PyTorch extension builds would use CUDA_HOME={torch_root}, which is not a CUDA toolkit",
            f"torch.utils.cpp_extension found it as {torch_why}; it has no include/cuda_runtime.h "
            "or bin/nvcc, so building flash-attn or any CUDA extension fails. Set CUDA_HOME to "
            "the real toolkit.", fixes=["cuda-home"], facts={"torch_pick": torch_root}))

    nvcc_toolkit = next((t for t in toolkits if "nvcc on PATH" in t["found_by"]), None)
    home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    home_toolkit = toolkit_at(facts, home)
    if not usable(home_toolkit):
        home_toolkit = None  # a CUDA_HOME that is no toolkit is reported above, once
    if home_toolkit and nvcc_toolkit and home_toolkit is not nvcc_toolkit:
        findings.append(Finding(
            "cuda-toolkit.home-disagrees-with-nvcc", "warning",
            f"CUDA_HOME is CUDA {home_toolkit.get('version') or '?'} ({home}) but the nvcc on PATH is "
            f"CUDA {nvcc_toolkit.get('version') or '?'} ({nvcc_toolkit['root']})",
            "Builds mix headers and libraries of one toolkit with the compiler of another; link "
            "errors or 'unsupported' messages follow. Make them the same toolkit.",
            fixes=["cuda-home"], facts={"home": home, "nvcc": nvcc_toolkit["root"]}))

    if (torch_toolkit and cmake_toolkit and usable(torch_toolkit) and usable(cmake_toolkit)
            and torch_toolkit is not cmake_toolkit and len(toolkits) > 1):
        findings.append(Finding(
            "cuda-toolkit.ambiguous", "warning",
            f"{len(toolkits)} toolkits: PyTorch extensions would use {torch_toolkit.get('version')}, "
            f"CMake would use {cmake_toolkit.get('version')}",
            f"PyTorch: {torch_root} ({torch_why}); CMake: {cmake_root} ({cmake_why}). Set CUDA_HOME "
            "(and put its bin first on PATH) so every build uses the same one.",
            fixes=["cuda-home"], facts={"torch": torch_root, "cmake": cmake_root}))

    findings += _torch_mismatch(facts, context, torch_toolkit if usable(torch_toolkit) else None, torch_root)

    driver_max = driver_max_cuda(context.all_facts)
    in_use = home_toolkit or nvcc_toolkit or torch_toolkit
    version = parse_version(in_use.get("version")) if in_use else None
    if driver_max and version:
        verdict = driver_verdict(version, driver_max)
        if verdict:
            driver = (context.all_facts.get("nvidia-driver") or {}).get("driver_version", "?")
            findings.append(Finding(
                "cuda-toolkit.newer-than-driver", "error" if verdict == "major" else "warning",
                f"CUDA toolkit {text(version)} is newer than the driver supports (up to {text(driver_max)})",
                driver_advice(version, driver_max, driver),
                facts={"toolkit": text(version), "driver_max": text(driver_max)}))
    return findings


def _torch_mismatch(facts: dict, context: RuleContext, toolkit: Optional[dict], root: Optional[str]) -> list:
    """The toolkit PyTorch's extension builder would use against torch's own CUDA.

    ``torch.utils.cpp_extension._check_cuda_version`` raises "The detected CUDA version (X)
    mismatches the version that was used to compile PyTorch (Y). Please make sure to use the
    same CUDA versions." when the majors differ, and only warns when the minors do
    (https://github.com/pytorch/pytorch/blob/v2.5.1/torch/utils/cpp_extension.py#L414-L431).
    """
    torch_facts = context.all_facts.get("torch") or {}
    torch_cuda = parse_version(torch_facts.get("cuda"))
    found = parse_version((toolkit or {}).get("version"))
    if not torch_cuda or not found or found[:2] == torch_cuda[:2]:
        return []
    others = [t for t in facts.get("toolkits", []) if usable(t) and t is not toolkit
              and (parse_version(t.get("version")) or (0,))[0] == torch_cuda[0]]
    if found[0] != torch_cuda[0]:
        remedy = (f"Point CUDA_HOME at the CUDA {others[0].get('version')} toolkit at {others[0]['root']}."
                  if others else
                  f"No installed toolkit has CUDA {torch_cuda[0]}: install one in this environment (pip install "
                  f"nvidia-cuda-nvcc-cu{torch_cuda[0]}, or conda install -c nvidia cuda-nvcc={text(torch_cuda)}), or "
                  f"install the torch build for CUDA {text(found)}.")
        return [Finding(
            "cuda-toolkit.torch-cuda-major-mismatch", "error",
            f"extension builds would use CUDA {text(found)} ({root}), but torch {torch_facts.get('version') or ''} "
            f"was built with CUDA {text(torch_cuda)}: PyTorch refuses to build (flash-attn, ...)",
            "torch.utils.cpp_extension raises 'The detected CUDA version mismatches the version that was used to "
            f"compile PyTorch' when the major versions differ. {remedy}",
            fixes=["cuda-home"] if others else [], facts={"toolkit": text(found), "torch_cuda": text(torch_cuda)})]
    return [Finding(
        "cuda-toolkit.torch-cuda-minor-mismatch", "info",
        f"extension builds would use CUDA {text(found)}, torch was built with CUDA {text(torch_cuda)}: PyTorch "
        "only warns about a minor difference",
        "Most extensions build and run; if one fails at link time, use the toolkit matching torch's CUDA.",
        facts={"toolkit": text(found), "torch_cuda": text(torch_cuda)})]


CPP_EXTENSION = "https://github.com/pytorch/pytorch/blob/v2.5.1/torch/utils/cpp_extension.py"
FIND_CUDA_TOOLKIT = "https://cmake.org/cmake/help/latest/module/FindCUDAToolkit.html"
CUDA_RELEASE_NOTES = "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html"

FINDINGS = (
    FindingKind(
        "cuda-toolkit.found", "ok", "the CUDA toolkits installed, and which one each build system would use",
        why="PyTorch's extension builder and CMake look for a toolkit in different orders; when several are "
            "installed they can pick different ones.",
        references=(CPP_EXTENSION, FIND_CUDA_TOOLKIT),
    ),
    FindingKind(
        "cuda-toolkit.none", "info", "no CUDA toolkit: fine for prebuilt wheels",
        why="torch, bitsandbytes and llama.cpp wheels bring the CUDA runtime they need; only compiling CUDA "
            "code (flash-attn, a llama.cpp source build) needs a toolkit.",
        fix="Install a toolkit whose major version matches torch's when you need to compile.",
        references=("https://docs.nvidia.com/cuda/cuda-installation-guide-linux/",),
    ),
    FindingKind(
        "cuda-toolkit.cuda-home-missing", "error", "CUDA_HOME points at a folder that does not exist",
        why="PyTorch's extension builder takes it as given and fails with missing nvcc or headers.",
        fix="Point CUDA_HOME at an installed toolkit, or unset it.", fixes=("cuda-home",),
        references=(CPP_EXTENSION,),
    ),
    FindingKind(
        "cuda-toolkit.cuda-path-missing", "error", "CUDA_PATH points at a folder that does not exist",
        why="PyTorch's extension builder and CMake's FindCUDAToolkit read it; a stale value (an uninstalled "
            "toolkit) fails their builds.",
        fix="Point CUDA_PATH at an installed toolkit, or unset it.", fixes=("cuda-home",),
        references=(CPP_EXTENSION, FIND_CUDA_TOOLKIT),
    ),
    FindingKind(
        "cuda-toolkit.torch-home-not-a-toolkit", "warning",
        "PyTorch extension builds would use a folder that is no toolkit",
        why="torch.utils.cpp_extension takes CUDA_HOME/CUDA_PATH, then nvcc's parent, then a glob; a folder "
            "without include/cuda_runtime.h or bin/nvcc fails every CUDA extension build.",
        fix="Set CUDA_HOME to the real toolkit.", fixes=("cuda-home",), references=(CPP_EXTENSION,),
    ),
    FindingKind(
        "cuda-toolkit.home-disagrees-with-nvcc", "warning", "CUDA_HOME and the nvcc on PATH are different toolkits",
        why="Builds mix one toolkit's headers and libraries with another's compiler: link errors or "
            "'unsupported' messages follow.",
        fix="Make CUDA_HOME and the first nvcc on PATH the same toolkit.", fixes=("cuda-home",),
        references=(CPP_EXTENSION,),
    ),
    FindingKind(
        "cuda-toolkit.ambiguous", "warning", "several toolkits, and PyTorch and CMake would pick different ones",
        why="On Windows PyTorch takes the first match of a glob, not the newest; CMake takes nvcc on PATH "
            "or CUDA_PATH. Two projects built on one machine then use different CUDA versions.",
        fix="Set CUDA_HOME and put its bin first on PATH.", fixes=("cuda-home",),
        references=(CPP_EXTENSION, FIND_CUDA_TOOLKIT),
    ),
    FindingKind(
        "cuda-toolkit.newer-than-driver", "error", "the CUDA toolkit is newer than the driver supports",
        severities=("warning", "error"),
        why="Code it compiles needs a driver that supports its CUDA version: a newer major fails outright, a "
            "newer minor works only through minor-version compatibility (and fails on PTX).",
        fix="Update the NVIDIA driver, or use a toolkit the driver supports.",
        references=("https://docs.nvidia.com/deploy/cuda-compatibility/", CUDA_RELEASE_NOTES),
    ),
    FindingKind(
        "cuda-toolkit.torch-cuda-major-mismatch", "error", "the toolkit's CUDA major differs from torch's",
        why="torch.utils.cpp_extension raises 'The detected CUDA version mismatches the version that was used "
            "to compile PyTorch' when the majors differ: flash-attn and other extensions will not build.",
        fix="Point CUDA_HOME at a toolkit with torch's major version (or install torch for this toolkit).",
        fixes=("cuda-home",), references=(CPP_EXTENSION,),
    ),
    FindingKind(
        "cuda-toolkit.torch-cuda-minor-mismatch", "info", "the toolkit's CUDA minor differs from torch's",
        why="PyTorch only warns; most extensions build and run.",
        fix="If an extension fails at link time, use the toolkit matching torch's CUDA.",
        references=(CPP_EXTENSION,),
    ),
)


CHECK = Check(
    id="cuda-toolkit",
    title="CUDA toolkits",
    probe=probe,
    rules=rules,
    order=40,
    timeout=15.0,
    requires=("nvidia-driver", "torch"),
    findings=FINDINGS,
)
