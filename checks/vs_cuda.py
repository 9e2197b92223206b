"""The `vs-cuda` check: can Visual Studio (or its Build Tools) build CUDA code here?

Windows only (skipped elsewhere; the rules run on any OS from a snapshot). The probe asks
``vswhere -all -products * -prerelease -format json -utf8`` for every install (Build Tools
included: without ``-products *`` they are missed) and reads, for each one, the CUDA build
customisations in its ``BuildCustomizations`` folder (``MSBuild\\Microsoft\\VC\\v160``,
``v170``, ``v180``; VS 2017's ``Common7\\IDE\\VC\\VCTargets``) and its MSVC toolsets
(``VC\\Tools\\MSVC\\14.xx.*``, the default one from ``Microsoft.VCToolsVersion.default.txt``,
and what each toolset's ``yvals_core.h`` demands of CUDA). For every CUDA toolkit it reads
``extras\\visual_studio_integration\\MSBuildExtensions`` (the files CUDA's installer copies
into the installs present when it runs) and ``include\\crt\\host_config.h`` (the
``_MSC_VER`` window nvcc accepts). Also the CMake on PATH, the current folder, and the
``VSCMD_ARG_TGT_ARCH`` / ``DISTUTILS_USE_SDK`` pair.

Sources: CMake's Visual Studio CUDA toolset (https://cmake.org/cmake/help/latest/variable/
CMAKE_VS_PLATFORM_TOOLSET_CUDA.html), vswhere (https://github.com/microsoft/vswhere/wiki), and NVIDIA's
installation guide for Windows (https://docs.nvidia.com/cuda/cuda-installation-guide-microsoft-windows/).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from llmdoctor.knowledge.cuda import fallback_window, parse_host_config, parse_version, text
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext

VSWHERE_ARGS = ("-all", "-products", "*", "-prerelease", "-format", "json", "-utf8")
BUILD_CUSTOMIZATIONS = {  # Visual Studio major version -> folder under the installation path
    15: ("Common7", "IDE", "VC", "VCTargets", "BuildCustomizations"),
    16: ("MSBuild", "Microsoft", "VC", "v160", "BuildCustomizations"),
    17: ("MSBuild", "Microsoft", "VC", "v170", "BuildCustomizations"),
    18: ("MSBuild", "Microsoft", "VC", "v180", "BuildCustomizations"),
}
CMAKE_TRIES_UNSUPPORTED = (3, 29, 4)  # CMake retries compiler identification with -allow-unsupported-compiler
TORCH_SDK_MESSAGE = ("It seems that the VC environment is activated but DISTUTILS_USE_SDK is not set.This may "
                     "lead to multiple activations of the VC env.Please set `DISTUTILS_USE_SDK=1` and try again.")
TOOLKIT_GLOB = ("NVIDIA GPU Computing Toolkit", "CUDA", "v*")


def applies(platform: dict) -> Optional[str]:
    system = platform.get("system")
    return None if system == "windows" else f"not applicable on {system} (Visual Studio is Windows-only)"


# ----------------------------------------------------------------------------- probe

def probe(context: ProbeContext) -> dict:  # pragma: no cover - Windows; tested through probe_vs_cuda
    environ = dict(os.environ)
    return probe_vs_cuda(environ, find_vswhere(environ), toolkit_roots(environ), os.getcwd(), context.timeout)


def find_vswhere(environ: dict) -> Optional[str]:
    """Where the Visual Studio Installer always puts vswhere, else PATH."""
    for base in (environ.get("ProgramFiles(x86)"), environ.get("ProgramFiles")):
        if base:
            candidate = os.path.join(base, "Microsoft Visual Studio", "Installer", "vswhere.exe")
            if os.path.isfile(candidate):
                return candidate
    return shutil.which("vswhere", path=environ.get("PATH"))


def toolkit_roots(environ: dict) -> list:
    """CUDA toolkits: the installer's CUDA_PATH / CUDA_PATH_Vx_y variables and its default folder."""
    roots = [environ[n] for n in sorted(environ) if re.fullmatch(r"CUDA_PATH(_V\d+_\d+)?", n) and environ[n]]
    program_files = environ.get("ProgramFiles") or os.path.join(environ.get("SystemDrive", "C:") + os.sep,
                                                                "Program Files")
    roots += sorted(glob.glob(os.path.join(program_files, *TOOLKIT_GLOB)))
    unique, seen = [], set()
    for root in roots:
        key = os.path.normcase(os.path.normpath(root))
        if key not in seen and os.path.isdir(root):
            seen.add(key)
            unique.append(root)
    return unique


def probe_vs_cuda(environ: dict, vswhere: Optional[str], roots: list, cwd: str, timeout: float) -> dict:
    from llmdoctor import proc

    facts: dict = {"vswhere": vswhere, "installs": [], "toolkits": [read_toolkit(r) for r in roots],
                   "cwd": cwd, "env": {n: environ[n] for n in ("VSCMD_ARG_TGT_ARCH", "DISTUTILS_USE_SDK",
                                                                "CUDAFLAGS", "VSCMD_VER") if n in environ}}
    nvcc = shutil.which("nvcc", path=environ.get("PATH"))
    facts["nvcc_on_path"] = nvcc
    if vswhere:
        result = proc.run([vswhere, *VSWHERE_ARGS], timeout=timeout)
        try:
            records = json.loads(result.stdout) if result.ok else None
        except ValueError:
            records = None
        if records is None:
            facts["vswhere_error"] = result.error or (result.stderr.strip() or "no JSON on stdout")[:300]
        else:
            facts["installs"] = [read_install(r) for r in records if isinstance(r, dict)]
    cmake = shutil.which("cmake", path=environ.get("PATH"))
    facts["cmake"] = {"path": cmake}
    if cmake:
        result = proc.run([cmake, "--version"], timeout=timeout)
        match = re.search(r"cmake version (\d+\.\d+\.\d+)", result.stdout)
        facts["cmake"]["version"] = match.group(1) if match else None
    return facts


def read_install(record: dict) -> dict:
    path = record.get("installationPath") or ""
    version = record.get("installationVersion") or ""
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else None
    install = {
        "path": path, "version": version, "major": major,
        "name": record.get("displayName") or record.get("productId") or "Visual Studio",
        "product": record.get("productId") or "",
        "complete": record.get("isComplete", True), "prerelease": record.get("isPrerelease", False),
        "installed": record.get("installDate"),
    }
    folder = os.path.join(path, *BUILD_CUSTOMIZATIONS[major]) if major in BUILD_CUSTOMIZATIONS else None
    install["customizations_folder"] = folder
    install["customizations_exists"] = bool(folder and os.path.isdir(folder))
    install["customizations"] = _file_digests(folder) if install["customizations_exists"] else {}
    install["toolsets"] = read_toolsets(path)
    try:
        with open(os.path.join(path, "VC", "Auxiliary", "Build", "Microsoft.VCToolsVersion.default.txt"),
                  encoding="utf-8-sig") as handle:
            install["default_toolset"] = handle.read().strip() or None
    except OSError:
        install["default_toolset"] = None
    return install


def read_toolsets(install_path: str) -> list:
    toolsets = []
    base = os.path.join(install_path, "VC", "Tools", "MSVC")
    try:
        names = sorted(os.listdir(base), key=_version_key)
    except OSError:
        return []
    for name in names:
        if not re.fullmatch(r"14\.\d+\.\d+", name):
            continue
        toolset = {"version": name, "msc_ver": msc_ver(name)}
        try:
            with open(os.path.join(base, name, "include", "yvals_core.h"), encoding="utf-8", errors="replace") as f:
                match = re.search(r"expected CUDA (\d+)\.(\d+) or newer", f.read())
            toolset["stl_needs_cuda"] = f"{match.group(1)}.{match.group(2)}" if match else None
        except OSError:
            toolset["stl_needs_cuda"] = None
        toolsets.append(toolset)
    return toolsets


def read_toolkit(root: str) -> dict:
    from llmdoctor.checks.cuda_toolkit import toolkit_version

    version, source = toolkit_version(Path(root), timeout=5.0)
    extensions = os.path.join(root, "extras", "visual_studio_integration", "MSBuildExtensions")
    toolkit = {"root": root, "version": version, "version_source": source,
               "extensions_folder": extensions, "extensions": _file_digests(extensions)}
    try:
        with open(os.path.join(root, "include", "crt", "host_config.h"), encoding="utf-8", errors="replace") as f:
            content = f.read()
        toolkit["host_config"] = parse_host_config(content)
        match = re.search(r"#error\s*-*\s*(unsupported Microsoft Visual Studio version![^\n]*?supported!)", content)
        toolkit["msvc_error"] = match.group(1) if match else None
    except OSError:
        toolkit["host_config"] = {}
    for marker in ("version.json", "version.txt", "bin"):
        try:
            stamp = os.stat(os.path.join(root, marker)).st_mtime
        except OSError:
            continue
        toolkit["installed"] = datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")
        break
    return toolkit


def _file_digests(folder: Optional[str]) -> dict:
    """{file name: sha256} of the files directly in ``folder`` (the integration files are small)."""
    digests = {}
    try:
        names = sorted(os.listdir(folder)) if folder else []
    except OSError:
        return {}
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                import hashlib

                digests[name] = hashlib.sha256(handle.read()).hexdigest()
    return digests


def _version_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in name.split("."))


def msc_ver(toolset: str) -> Optional[int]:
    """MSVC toolset 14.xx -> _MSC_VER 19xx (14.16 -> 1916, 14.29 -> 1929, 14.44 -> 1944, 14.50 -> 1950)."""
    match = re.match(r"14\.(\d+)", toolset)
    return 1900 + int(match.group(1)) if match and int(match.group(1)) >= 10 else None


# ----------------------------------------------------------------------------- the facts, read

def props_versions(install: dict) -> list:
    """The CUDA versions whose build customisation (``CUDA X.Y.props``) an install has, ascending."""
    found = []
    for name in install.get("customizations", {}):
        match = re.fullmatch(r"CUDA (\d+)\.(\d+)\.props", name)
        if match:
            found.append((int(match.group(1)), int(match.group(2))))
    return sorted(found)


def missing_files(install: dict, toolkit: dict) -> tuple:
    """(files absent, files that differ) of ``toolkit``'s MSBuildExtensions in ``install``."""
    present = install.get("customizations", {})
    absent = [n for n in toolkit.get("extensions", {}) if n not in present]
    different = [n for n, digest in toolkit.get("extensions", {}).items() if n in present and present[n] != digest]
    return absent, different


def toolkit_in_use(facts: dict) -> Optional[dict]:
    """The toolkit of the nvcc on PATH, else the newest."""
    toolkits = [t for t in facts.get("toolkits", []) if t.get("version")]
    nvcc = facts.get("nvcc_on_path")
    if nvcc:
        root = _comparable(nvcc).rsplit("\\", 2)[0]
        for toolkit in toolkits:
            if _comparable(toolkit["root"]) == root:
                return toolkit
    return max(toolkits, key=lambda t: parse_version(t["version"]) or (0, 0), default=None)


def _comparable(path: str) -> str:
    """Windows paths compare case-insensitively, either separator, no trailing one."""
    return path.replace("/", "\\").rstrip("\\").lower()


def default_toolset(install: dict) -> Optional[dict]:
    toolsets = install.get("toolsets") or []
    chosen = install.get("default_toolset")
    return next((t for t in toolsets if t["version"] == chosen), toolsets[-1] if toolsets else None)


def window_of(toolkit: dict) -> dict:
    window = dict(toolkit.get("host_config") or {})
    if not window.get("msvc_limit"):
        window.update({k: v for k, v in fallback_window(parse_version(toolkit.get("version")) or (0, 0)).items()
                       if k.startswith("msvc") or k == "source"})
    return window


def label(install: dict) -> str:
    """'Visual Studio Build Tools 2022 17.14', as vswhere's displayName plus the version."""
    return f"{install['name']} {'.'.join(install.get('version', '').split('.')[:2])}".strip()


# ----------------------------------------------------------------------------- rules

def rules(facts: dict, context: RuleContext) -> list:
    findings: list = []
    torch_installed = bool((context.all_facts.get("torch") or {}).get("installed"))
    installs = [i for i in facts.get("installs", []) if i.get("major") in BUILD_CUSTOMIZATIONS]
    toolkit = toolkit_in_use(facts)
    if facts.get("vswhere_error"):
        findings.append(Finding("vs-cuda.vswhere-failed", "warning",
                                f"vswhere could not list the Visual Studio installs: {facts['vswhere_error']}"))
    if not installs:
        findings.append(Finding(
            "vs-cuda.no-visual-studio", "info" if not toolkit else "warning",
            "no Visual Studio or Build Tools install found" + ("" if facts.get("vswhere") else " (no vswhere)"),
            "nvcc needs MSVC's cl.exe as its host compiler on Windows: install Visual Studio 2022 Build Tools "
            "with the 'Desktop development with C++' workload." if toolkit else ""))
        return findings + _environment_findings(facts, torch_installed)
    if toolkit is None:
        findings.append(Finding("vs-cuda.no-toolkit", "info",
                                "no CUDA toolkit found, so there is nothing to integrate with Visual Studio"))
    for install in installs:
        findings += _install_findings(install, toolkit, facts)
    findings += _environment_findings(facts, torch_installed)
    if not any(f.severity in ("warning", "error") for f in findings) and toolkit:
        findings.append(Finding(
            "vs-cuda.ok", "ok",
            f"CUDA {toolkit['version']} is integrated with "
            + ", ".join(f"{label(i)} (MSVC {(default_toolset(i) or {}).get('version', '?')})" for i in installs
                        if i.get("toolsets"))))
    return findings


def _install_findings(install: dict, toolkit: Optional[dict], facts: dict) -> list:
    findings = []
    name = label(install)
    if not install.get("toolsets"):
        return [Finding("vs-cuda.no-cpp-tools", "info",
                        f"{name} has no MSVC toolset (the C++ workload is not installed): it cannot build CUDA",
                        facts={"path": install["path"]})]
    if not install.get("customizations_exists"):
        return [Finding("vs-cuda.no-build-customizations", "warning",
                        f"{name} has no {os.sep.join(BUILD_CUSTOMIZATIONS[install['major']][-2:])} folder: "
                        "its MSBuild C++ support is incomplete", "Repair the install in the Visual Studio Installer.",
                        facts={"path": install["path"]})]
    props = props_versions(install)
    if toolkit:
        absent, different = missing_files(install, toolkit)
        if not props:
            findings.append(Finding(
                "vs-cuda.no-integration", "error",
                f"{name} has no CUDA build customisation: CMake's Visual Studio generator stops with "
                "\"No CUDA toolset found\"",
                f"CUDA {toolkit['version']}'s files ({', '.join(toolkit['extensions']) or 'none'}) are missing from "
                f"{install['customizations_folder']}. The Ninja generator needs none of them.",
                fixes=["vs-cuda"], facts={"install": install["path"], "missing": absent}))
        elif absent or different:
            findings.append(Finding(
                "vs-cuda.integration-incomplete", "error" if absent else "warning",
                f"{name} lacks CUDA {toolkit['version']}'s build customisation"
                + (f" ({len(absent)} of {len(toolkit['extensions'])} files missing)" if absent else
                   f" ({', '.join(different)} differ from the toolkit's)"),
                f"It has CUDA {', '.join(text(p) for p in props)} only; projects asking for CUDA {toolkit['version']} "
                f"fail with \"The imported project 'CUDA {toolkit['version']}.props' was not found\".",
                fixes=["vs-cuda"], facts={"install": install["path"], "missing": absent, "different": different}))
        if (absent or not props) and install.get("installed") and toolkit.get("installed") and \
                install["installed"][:19] > toolkit["installed"][:19]:
            findings.append(Finding(
                "vs-cuda.installed-after-cuda", "info",
                f"{name} was installed ({install['installed'][:10]}) after CUDA {toolkit['version']} "
                f"({toolkit['installed'][:10]})",
                "CUDA's installer integrates only the Visual Studio installs present when it runs; "
                "'llmdoctor fix --vs-cuda' copies the files as it would have."))
        version = parse_version(toolkit["version"])
        if props and version and props[-1] != version:
            findings.append(Finding(
                "vs-cuda.props-mismatch", "warning",
                f"{name}'s highest CUDA build customisation is {text(props[-1])}, but nvcc is CUDA {text(version)}",
                f"CMake's Visual Studio generator picks the highest ({text(props[-1])}) and compiles with that "
                f"toolkit. Pass -T cuda={text(version)} (or a path) to CMake, or remove the CUDA {text(props[-1])} "
                "files from " + str(install["customizations_folder"]) + ".",
                fixes=["vs-cuda"] if version not in props else [],
                facts={"props": [text(p) for p in props], "nvcc": text(version)}))
        findings += _msvc_findings(install, toolkit, facts)
        for other in facts.get("toolkits", []):
            if other is not toolkit and other.get("extensions") and missing_files(install, other)[0]:
                findings.append(Finding(
                    "vs-cuda.other-toolkit-not-integrated", "info",
                    f"CUDA {other.get('version') or other['root']} is not integrated with {name}",
                    f"Only builds that ask for it (cmake -T cuda={'.'.join(str(other.get('version')).split('.')[:2])}"
                    ", or a project naming its props) need it; the nvcc in use is CUDA "
                    f"{toolkit['version']}."))
    return findings


def _msvc_findings(install: dict, toolkit: dict, facts: dict) -> list:
    findings = []
    toolset = default_toolset(install)
    if not toolset or not toolset.get("msc_ver"):
        return []
    window = window_of(toolkit)
    msc = toolset["msc_ver"]
    low, limit = window.get("msvc_min", 0), window.get("msvc_limit")
    name = label(install)
    supported = [t for t in install.get("toolsets", []) if t.get("msc_ver") and low <= t["msc_ver"] < (limit or 9999)]
    if limit and not low <= msc < limit:
        cmake = facts.get("cmake") or {}
        cmake_version = tuple(int(x) for x in (cmake.get("version") or "0.0.0").split("."))
        retries = cmake_version >= CMAKE_TRIES_UNSUPPORTED
        findings.append(Finding(
            "vs-cuda.msvc-unsupported", "error",
            f"nvcc {toolkit['version']} rejects {name}'s MSVC {toolset['version']} (_MSC_VER {msc}): "
            f"\"{toolkit.get('msvc_error') or 'unsupported Microsoft Visual Studio version!'}\"" if msc >= limit else
            f"nvcc {toolkit['version']} rejects {name}'s MSVC {toolset['version']} (_MSC_VER {msc}) as too old",
            f"CUDA {toolkit['version']} accepts _MSC_VER {low}-{limit - 1} (its include\\crt\\host_config.h). "
            + (f"CMake {cmake.get('version')} retries compiler identification with -allow-unsupported-compiler, so "
               "configure passes but compiling still fails without the flag. " if retries else
               f"CMake {cmake.get('version') or '(not found)'} is older than 3.29.4, so configure already fails in "
               "CMakeCUDACompilerId.cu. ")
            + (f"A supported toolset is installed too: {', '.join(t['version'] for t in supported)}." if supported
               else ""),
            fixes=["msvc-unsupported"],
            facts={"install": install["path"], "toolset": toolset["version"], "msc_ver": msc,
                   "accepted": [low, limit], "supported_toolsets": [t["version"] for t in supported],
                   "cuda": toolkit["version"], "cmake": cmake.get("version"), "cmake_retries_unsupported": retries}))
    needs = parse_version(toolset.get("stl_needs_cuda"))
    version = parse_version(toolkit["version"])
    if needs and version and version < needs:
        findings.append(Finding(
            "vs-cuda.stl-needs-newer-cuda", "error",
            f"{name}'s MSVC {toolset['version']} STL needs CUDA {text(needs)} or newer; nvcc is {toolkit['version']}: "
            f"\"error STL1002: Unexpected compiler version, expected CUDA {text(needs)} or newer.\"",
            "Read from the toolset's include\\yvals_core.h (VS 17.10+ needs CUDA 12.4). Install CUDA "
            f"{text(needs)}+ or an older MSVC toolset; -D_ALLOW_COMPILER_AND_STL_VERSION_MISMATCH silences it "
            "at your own risk.",
            fixes=["msvc-unsupported"],
            facts={"install": install["path"], "toolset": toolset["version"], "stl_needs_cuda": text(needs),
                   "cuda": toolkit["version"]}))
    return findings


def _environment_findings(facts: dict, torch_installed: bool = False) -> list:
    findings = []
    env = facts.get("env") or {}
    # it bites only PyTorch extension builds (setuptools' MSVC discovery), so only where torch is
    if env.get("VSCMD_ARG_TGT_ARCH") and not env.get("DISTUTILS_USE_SDK") and torch_installed:
        findings.append(Finding(
            "vs-cuda.distutils-use-sdk", "warning",
            f"a Visual Studio developer prompt is active ({env['VSCMD_ARG_TGT_ARCH']}) but DISTUTILS_USE_SDK "
            "is not set: PyTorch extension builds (torch is installed) set up MSVC a second time",
            f"PyTorch's extension builds warn \"{TORCH_SDK_MESSAGE}\" and setuptools activates vcvarsall again, "
            "which can overflow cmd.exe's 8,191-character line. Run: set DISTUTILS_USE_SDK=1"))
    cwd = facts.get("cwd") or ""
    if " " in cwd:
        findings.append(Finding(
            "vs-cuda.path-with-spaces", "warning",
            f"the current folder has spaces in its path: {cwd}",
            "nvcc and CMake's CUDA rules have repeatedly broken on build folders with spaces (for example "
            "FLAMEGPU2#867: 'nvcc fatal : A single input file is required'). Build in a folder without them."))
    return findings


CUDA_WINDOWS_GUIDE = "https://docs.nvidia.com/cuda/cuda-installation-guide-microsoft-windows/"
CMAKE_TOOLSET = "https://cmake.org/cmake/help/latest/variable/CMAKE_GENERATOR_TOOLSET.html"
VSWHERE = "https://github.com/microsoft/vswhere/wiki"

FINDINGS = (
    FindingKind("vs-cuda.ok", "ok", "the CUDA toolkit is integrated with Visual Studio",
                references=(CUDA_WINDOWS_GUIDE,)),
    FindingKind(
        "vs-cuda.vswhere-failed", "warning", "vswhere could not list the Visual Studio installs",
        why="Without the list, the integration and the MSVC version cannot be judged.",
        fix="Repair the Visual Studio Installer (it ships vswhere.exe).", references=(VSWHERE,),
    ),
    FindingKind(
        "vs-cuda.no-visual-studio", "warning", "no Visual Studio or Build Tools install",
        severities=("info", "warning"),
        why="nvcc needs MSVC's cl.exe as its host compiler on Windows (a warning when a CUDA toolkit is installed).",
        fix="Install Visual Studio 2022 Build Tools with the 'Desktop development with C++' workload.",
        references=(CUDA_WINDOWS_GUIDE, VSWHERE),
    ),
    FindingKind("vs-cuda.no-toolkit", "info", "no CUDA toolkit, so nothing to integrate with Visual Studio",
                references=(CUDA_WINDOWS_GUIDE,)),
    FindingKind(
        "vs-cuda.no-cpp-tools", "info", "a Visual Studio install has no MSVC toolset",
        why="Without the C++ workload it cannot build CUDA code.",
        fix="Add 'Desktop development with C++' in the Visual Studio Installer.", references=(VSWHERE,),
    ),
    FindingKind(
        "vs-cuda.no-build-customizations", "warning", "a Visual Studio install has no BuildCustomizations folder",
        why="Its MSBuild C++ support is incomplete, so no CUDA integration can be installed into it.",
        fix="Repair the install in the Visual Studio Installer.", references=(CUDA_WINDOWS_GUIDE,),
    ),
    FindingKind(
        "vs-cuda.no-integration", "error", "Visual Studio lacks the CUDA build customisation files",
        why="CMake's Visual Studio generator stops with 'No CUDA toolset found'; the CUDA installer integrates "
            "only the Visual Studio installs present when it runs.",
        fix="Copy the toolkit's extras\\visual_studio_integration\\MSBuildExtensions files into the install's "
            "BuildCustomizations folder (administrator), or use the Ninja generator.",
        fixes=("vs-cuda",),
        references=(CUDA_WINDOWS_GUIDE, CMAKE_TOOLSET, "https://github.com/NVlabs/tiny-cuda-nn/issues/164",
                    "https://github.com/wang-xinyu/tensorrtx/issues/768"),
    ),
    FindingKind(
        "vs-cuda.integration-incomplete", "error", "Visual Studio has some of the toolkit's integration files, not all",
        severities=("warning", "error"),
        why="Projects asking for that CUDA version fail with \"The imported project 'CUDA X.Y.props' was not "
            "found\" (or use files of another release, when they differ).",
        fix="Copy the toolkit's MSBuildExtensions files again.", fixes=("vs-cuda",),
        references=(CUDA_WINDOWS_GUIDE,),
    ),
    FindingKind(
        "vs-cuda.installed-after-cuda", "info", "Visual Studio was installed after the CUDA toolkit",
        why="CUDA's installer integrates only the Visual Studio installs present when it runs.",
        fix="The vs-cuda fix copies the files as the installer would have.",
        references=(CUDA_WINDOWS_GUIDE, "https://github.com/genn-team/genn/issues/639"),
    ),
    FindingKind(
        "vs-cuda.props-mismatch", "warning", "Visual Studio's highest CUDA integration is not the nvcc in use",
        why="CMake's Visual Studio generator picks the highest CUDA X.Y.props and compiles with that toolkit.",
        fix="Pass -T cuda=X.Y to CMake, or integrate (or remove) the right version.", fixes=("vs-cuda",),
        references=(CMAKE_TOOLSET,),
    ),
    FindingKind(
        "vs-cuda.other-toolkit-not-integrated", "info", "another installed toolkit is not integrated",
        why="Only builds that ask for that version (cmake -T cuda=X.Y) need it.",
        references=(CMAKE_TOOLSET,),
    ),
    FindingKind(
        "vs-cuda.msvc-unsupported", "error", "nvcc rejects this Visual Studio's MSVC version",
        why="The toolkit's include\\crt\\host_config.h stops with 'unsupported Microsoft Visual Studio "
            "version!' outside its _MSC_VER window; CMake 3.29.4+ passes identification but compiling fails.",
        fix="Install an MSVC toolset inside the window, or a newer CUDA; -allow-unsupported-compiler is "
            "at your own risk.",
        fixes=("msvc-unsupported",),
        references=(CUDA_WINDOWS_GUIDE, "https://github.com/ggml-org/llama.cpp/pull/7861",
                    "https://github.com/TencentARC/BrushEdit/issues/17"),
    ),
    FindingKind(
        "vs-cuda.stl-needs-newer-cuda", "error", "this MSVC's STL needs a newer CUDA than nvcc",
        why="The toolset's yvals_core.h stops with 'error STL1002: Unexpected compiler version, expected CUDA "
            "12.4 or newer' (VS 17.10 and later).",
        fix="Install CUDA 12.4+ or an older MSVC toolset; -D_ALLOW_COMPILER_AND_STL_VERSION_MISMATCH "
            "silences it at your own risk.",
        fixes=("msvc-unsupported",),
        references=("https://github.com/microsoft/STL/blob/main/stl/inc/yvals_core.h",
                    "https://github.com/microsoft/STL/issues/4475"),
    ),
    FindingKind(
        "vs-cuda.distutils-use-sdk", "warning", "a developer prompt is active but DISTUTILS_USE_SDK is not set",
        why="PyTorch's extension builds warn and setuptools activates vcvarsall again, which can overflow "
            "cmd.exe's 8,191-character line.",
        fix="set DISTUTILS_USE_SDK=1 in that prompt.",
        references=("https://github.com/pytorch/pytorch/blob/v2.5.1/torch/utils/cpp_extension.py",),
    ),
    FindingKind(
        "vs-cuda.path-with-spaces", "warning", "the build folder's path has spaces",
        why="nvcc and CMake's CUDA rules have repeatedly broken on such folders ('nvcc fatal : A single input "
            "file is required').",
        fix="Build in a folder without spaces.",
        references=("https://github.com/FLAMEGPU/FLAMEGPU2/issues/867",),
    ),
)


CHECK = Check(
    id="vs-cuda",
    title="Visual Studio CUDA integration",
    probe=probe,
    rules=rules,
    applies=applies,
    order=55,
    timeout=15.0,
    requires=("torch",),
    findings=FINDINGS,
)
