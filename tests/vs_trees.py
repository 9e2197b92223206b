"""Windows folder trees for the `vs-cuda` check, built under a temporary root: Visual Studio
installs (BuildCustomizations, MSVC toolsets with their yvals_core.h), CUDA toolkits (their
MSBuildExtensions and host_config.h), and a stand-in for vswhere that answers as the real
one does (Build Tools only with ``-products *``, previews only with ``-prerelease``).
Layout and file names follow the CUDA installation guide for Windows
(https://docs.nvidia.com/cuda/cuda-installation-guide-microsoft-windows/) and vswhere's own
documentation (https://github.com/microsoft/vswhere/wiki)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

# host_config.h's MSVC guard as CUDA ships it (12.x: 1910-1949 from 12.4; 1910-1939 before)
HOST_CONFIG = """#if defined(_WIN32)
#if _MSC_VER < {low} || _MSC_VER >= {limit}
#error -- unsupported Microsoft Visual Studio version! Only the versions between 2017 and 2022 (inclusive) are \
supported! The nvcc flag '-allow-unsupported-compiler' can be used to override this version check; however, \
using an unsupported host compiler may cause compilation failure or incorrect run time execution. Use at your own risk.
#endif
#endif
"""
YVALS_STL1002 = """#if defined(__CUDACC__) && defined(__CUDACC_VER_MAJOR__)
#if __CUDACC_VER_MAJOR__ < {major} || (__CUDACC_VER_MAJOR__ == {major} && __CUDACC_VER_MINOR__ < {minor})
_EMIT_STL_ERROR(STL1002, "Unexpected compiler version, expected CUDA {major}.{minor} or newer.");
#endif
#endif
"""
PRODUCTS = {"Community": "Microsoft.VisualStudio.Product.Community",
            "Professional": "Microsoft.VisualStudio.Product.Professional",
            "BuildTools": "Microsoft.VisualStudio.Product.BuildTools"}
DEFAULT_PRODUCTS = ("Community", "Professional", "Enterprise")  # what vswhere lists without -products


def make_cuda(root: Path, version: str, msvc: tuple = (1910, 1950), installed: str = "2025-06-01") -> Path:
    major_minor = ".".join(version.split(".")[:2])
    toolkit = root / "Program Files" / "NVIDIA GPU Computing Toolkit" / "CUDA" / f"v{major_minor}"
    (toolkit / "bin").mkdir(parents=True)
    nvcc = toolkit / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\nexit 0\n")
    nvcc.chmod(0o755)
    (toolkit / "include" / "crt").mkdir(parents=True)
    (toolkit / "include" / "crt" / "host_config.h").write_text(HOST_CONFIG.format(low=msvc[0], limit=msvc[1]))
    (toolkit / "version.json").write_text(json.dumps({"cuda": {"name": "CUDA SDK", "version": version}}))
    extensions = toolkit / "extras" / "visual_studio_integration" / "MSBuildExtensions"
    extensions.mkdir(parents=True)
    names = [f"CUDA {major_minor}.props", f"CUDA {major_minor}.targets", f"CUDA {major_minor}.xml",
             f"Nvda.Build.CudaTasks.v{major_minor}.dll"]
    if int(major_minor.split(".")[0]) >= 13:
        names.append(f"CUDA {major_minor}.Version.props")
    for name in names:
        seed = hashlib.sha256(f"{version}/{name}".encode()).digest()
        (extensions / name).write_bytes(seed * 64)  # distinct content per toolkit and file
    stamp = _epoch(installed)
    for marker in (toolkit / "version.json", toolkit / "bin", toolkit):
        os.utime(marker, (stamp, stamp))
    return toolkit


def make_vs(root: Path, year: str, edition: str, version: str, toolsets: list, default: Optional[str] = None,
            stl_needs: Optional[dict] = None, installed: str = "2025-01-15T10:00:00Z", prerelease: bool = False,
            folder: Optional[str] = None) -> dict:
    """An install's tree, and the record vswhere gives for it."""
    path = root / "Program Files" / "Microsoft Visual Studio" / year / (folder or edition)
    from llmdoctor.checks.vs_cuda import BUILD_CUSTOMIZATIONS

    customizations = path.joinpath(*BUILD_CUSTOMIZATIONS[int(version.split(".")[0])])
    customizations.mkdir(parents=True)
    (customizations.parent / "Microsoft.Cpp.Default.props").write_text("<Project/>\n")
    for toolset in toolsets:
        include = path / "VC" / "Tools" / "MSVC" / toolset / "include"
        include.mkdir(parents=True)
        needs = (stl_needs or {}).get(toolset)
        (include / "yvals_core.h").write_text(
            "#pragma once\n" + (YVALS_STL1002.format(major=needs[0], minor=needs[1]) if needs else ""))
    if toolsets:
        build = path / "VC" / "Auxiliary" / "Build"
        build.mkdir(parents=True)
        (build / "Microsoft.VCToolsVersion.default.txt").write_text((default or toolsets[-1]) + "\n")
    product = "BuildTools" if edition == "BuildTools" else edition
    return {"instanceId": hashlib.sha1(str(path).encode()).hexdigest()[:8], "installDate": installed,
            "installationName": f"VisualStudio/{version}", "installationPath": str(path),
            "installationVersion": version,
            "productId": PRODUCTS.get(product, f"Microsoft.VisualStudio.Product.{product}"),
            "isComplete": True, "isPrerelease": prerelease,
            "displayName": f"Visual Studio {'Build Tools' if product == 'BuildTools' else edition} {year}",
            "catalog": {"productLineVersion": year, "productDisplayVersion": version}}


def integrate(record: dict, toolkit: Path) -> None:
    """What CUDA's installer does for an install present when it runs."""
    from llmdoctor.checks.vs_cuda import BUILD_CUSTOMIZATIONS

    major = int(record["installationVersion"].split(".")[0])
    target = Path(record["installationPath"], *BUILD_CUSTOMIZATIONS[major])
    source = toolkit / "extras" / "visual_studio_integration" / "MSBuildExtensions"
    for item in source.iterdir():
        (target / item.name).write_bytes(item.read_bytes())


def make_vswhere(folder: Path, records: list) -> Path:
    """An executable that answers like vswhere.exe from these records."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instances.json").write_text(json.dumps(records, indent=2))
    script = folder / "vswhere"
    script.write_text(f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
records = json.load(open({str(folder / "instances.json")!r}))
products = args[args.index("-products") + 1] if "-products" in args else None
if products != "*":
    records = [r for r in records if r["productId"].rsplit(".", 1)[1] in {DEFAULT_PRODUCTS!r}]
if "-prerelease" not in args:
    records = [r for r in records if not r["isPrerelease"]]
if "-all" not in args:
    records = [r for r in records if r["isComplete"]]
assert args.count("-format") == 1 and args[args.index("-format") + 1] == "json"
print(json.dumps(records))
""")
    script.chmod(0o755)
    return script


def tree_state(root: Path) -> dict:
    """Every file under ``root`` with its bytes' hash, and every folder: to compare before/after."""
    state = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        state[relative] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return state


def _epoch(day: str) -> float:
    from datetime import datetime, timezone

    return datetime.strptime(day[:10], "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()


def make_cmake(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "cmake"
    script.write_text(f"#!/bin/sh\necho 'cmake version {version}'\necho\necho 'CMake suite maintained by Kitware'\n")
    script.chmod(0o755)
    return script


# ------------------------------------------------------------------ the scenarios the issue names
# Each builds a machine under ``root`` and returns (vswhere, toolkit roots, environment).

def healthy(root: Path) -> tuple:
    """VS 2022 17.12 Community installed before CUDA 12.6, which integrated itself."""
    cuda = make_cuda(root, "12.6.85", msvc=(1910, 1950), installed="2025-06-01")
    vs = make_vs(root, "2022", "Community", "17.12.35527.113", ["14.42.34433"], installed="2025-01-15T10:00:00Z")
    integrate(vs, cuda)
    return make_vswhere(root / "Installer", [vs]), [str(cuda)], {"PATH": str(cuda / "bin")}


def cuda_before_vs(root: Path) -> tuple:
    """CUDA 12.6 installed first; VS 2022 came later, so nothing was integrated."""
    cuda = make_cuda(root, "12.6.85", msvc=(1910, 1950), installed="2024-10-01")
    vs = make_vs(root, "2022", "Community", "17.12.35527.113", ["14.42.34433"], installed="2025-01-15T10:00:00Z")
    return make_vswhere(root / "Installer", [vs]), [str(cuda)], {"PATH": str(cuda / "bin")}


def two_installs(root: Path) -> tuple:
    """VS 2022 has CUDA 12.6's files; VS 2019, added afterwards, has none."""
    cuda = make_cuda(root, "12.6.85", msvc=(1910, 1950), installed="2025-06-01")
    vs2022 = make_vs(root, "2022", "Community", "17.12.35527.113", ["14.42.34433"], installed="2025-01-15T10:00:00Z")
    integrate(vs2022, cuda)
    vs2019 = make_vs(root, "2019", "Professional", "16.11.35327.3", ["14.29.30133"], installed="2025-08-20T09:00:00Z")
    return make_vswhere(root / "Installer", [vs2022, vs2019]), [str(cuda)], {"PATH": str(cuda / "bin")}


def msvc_too_new(root: Path) -> tuple:
    """VS 2022 17.14 (MSVC 14.44, whose STL wants CUDA 12.4) with CUDA 12.3 (accepts _MSC_VER < 1940)."""
    cuda = make_cuda(root, "12.3.107", msvc=(1910, 1940), installed="2024-02-01")
    vs = make_vs(root, "2022", "Community", "17.14.36109.1", ["14.44.35207"],
                 stl_needs={"14.44.35207": (12, 4)}, installed="2023-11-01T10:00:00Z")
    integrate(vs, cuda)
    cmake = make_cmake(root / "CMake" / "bin", "3.31.6")
    return make_vswhere(root / "Installer", [vs]), [str(cuda)], {"PATH": f"{cuda / 'bin'}:{cmake.parent}"}


def build_tools_only(root: Path) -> tuple:
    """Only the Build Tools, integrated: vswhere lists them only with -products *."""
    cuda = make_cuda(root, "12.6.85", msvc=(1910, 1950), installed="2025-06-01")
    vs = make_vs(root, "2022", "BuildTools", "17.11.35431.28", ["14.41.34120"], installed="2025-01-15T10:00:00Z")
    integrate(vs, cuda)
    return make_vswhere(root / "Installer", [vs]), [str(cuda)], {"PATH": str(cuda / "bin")}


SCENARIOS = {"healthy": healthy, "cuda-before-vs": cuda_before_vs, "two-installs": two_installs,
             "msvc-too-new": msvc_too_new, "build-tools-only": build_tools_only}


def probe_scenario(name: str, root: Path, cwd: str = "/home/ada/chat") -> dict:
    from llmdoctor.checks.vs_cuda import probe_vs_cuda

    vswhere, roots, environment = SCENARIOS[name](root)
    return probe_vs_cuda(environment, str(vswhere), roots, cwd, timeout=30)


def as_windows(value, root: Path):
    """The facts as the same machine under C:\\ would give them (for committed snapshots)."""
    if isinstance(value, dict):
        return {k: as_windows(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [as_windows(v, root) for v in value]
    if isinstance(value, str) and value.startswith(str(root)):
        windows = "C:" + value[len(str(root)):].replace("/", "\\")
        if windows.endswith("\\bin\\nvcc"):
            windows += ".exe"
        if windows.endswith("\\Installer\\vswhere"):
            windows = "C:\\Program Files (x86)\\Microsoft Visual Studio\\Installer\\vswhere.exe"
        if windows.endswith("\\CMake\\bin\\cmake"):
            windows = "C:\\Program Files\\CMake\\bin\\cmake.exe"
        return windows
    return value
