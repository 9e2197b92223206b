"""What the GPU checks know about CUDA versions: parsing, and which driver runs which CUDA.

Sources: NVIDIA's CUDA compatibility guide (https://docs.nvidia.com/deploy/cuda-compatibility/) and the
NVML reference (https://docs.nvidia.com/deploy/nvml-api/). Drivers are backward compatible; since
CUDA 11, minor-version compatibility lets 11.x builds run on driver >= 450, 12.x on
>= 525 and 13.x on >= 580, "with limited feature-set": PTX from a newer minor toolkit
fails with cudaErrorUnsupportedPtxVersion. NVML's nvmlSystemGetCudaDriverVersion_v2
encodes the highest CUDA a driver supports as 1000*major + 10*minor.
"""

from __future__ import annotations

import re
from typing import Optional

MINIMUM_DRIVER_FOR_MAJOR = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


def parse_version(text: Optional[str]) -> Optional[tuple]:
    """'12.4', '12.4.131', 'V13.0.88', 'cu124' -> (12, 4); None when unreadable."""
    if not text:
        return None
    text = str(text).strip()
    match = re.fullmatch(r"cu(\d{2,3})", text)
    if match:
        digits = match.group(1)
        return int(digits[:-1]), int(digits[-1])
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def from_nvml(encoded: Optional[int]) -> Optional[tuple]:
    if not encoded:
        return None
    return encoded // 1000, (encoded % 1000) // 10


def text(version: Optional[tuple]) -> str:
    return f"{version[0]}.{version[1]}" if version else "?"


def cu_tag(version: tuple) -> str:
    return f"cu{version[0]}{version[1]}"


def driver_verdict(needed: tuple, driver_max: tuple) -> Optional[str]:
    """None when the driver runs code built for CUDA ``needed``; else 'major' (it cannot)
    or 'minor' (it can, through minor-version compatibility, with limits)."""
    if needed <= driver_max:
        return None
    if needed[0] > driver_max[0]:
        return "major"
    return "minor"


def driver_advice(needed: tuple, driver_max: tuple, driver_version: str) -> str:
    minimum = MINIMUM_DRIVER_FOR_MAJOR.get(needed[0])
    if driver_verdict(needed, driver_max) == "major":
        return (f"driver {driver_version} supports CUDA up to {text(driver_max)}; CUDA {text(needed)} "
                f"needs a driver of the {needed[0]}.x family"
                + (f" (at least {minimum}, newer for full {text(needed)} features)" if minimum else "")
                + ". Update the NVIDIA driver, or use a build for CUDA "
                f"{driver_max[0]}.x.")
    return (f"driver {driver_version} supports CUDA up to {text(driver_max)}; CUDA {text(needed)} runs "
            f"through minor-version compatibility with a limited feature set, and PTX compiled by "
            f"a {text(needed)} toolkit fails with cudaErrorUnsupportedPtxVersion. Update the driver "
            "for full support.")


# The compute capabilities each CUDA release's nvcc can build for (lowest, highest), from the
# CUDA Toolkit release notes and nvcc's "GPU Feature List":
# https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html (per release: "added support
# for sm_..." / "dropped support for ..."), https://docs.nvidia.com/cuda/cuda-compiler-driver-nvcc/
# index.html#gpu-feature-list. 9.0 dropped Fermi (2.x) and added Volta 7.0; 9.2 added 7.2;
# 10.0 added Turing 7.5; 11.0 dropped Kepler 3.0 and added Ampere 8.0; 11.1 added 8.6; 11.4 added
# 8.7; 11.8 added Ada 8.9 and Hopper 9.0; 12.0 dropped Kepler 3.5/3.7; 12.8 added Blackwell 10.0,
# 10.1 and 12.0; 12.9 added 10.3 and 12.1; 13.0 dropped Maxwell, Pascal and Volta (5.0-7.2).
ARCH_RANGE = (
    ((9, 0), (3, 0), (7, 0)), ((9, 2), (3, 0), (7, 2)), ((10, 0), (3, 0), (7, 5)), ((11, 0), (3, 5), (8, 0)),
    ((11, 1), (3, 5), (8, 6)), ((11, 4), (3, 5), (8, 7)), ((11, 8), (3, 5), (9, 0)), ((12, 0), (5, 0), (9, 0)),
    ((12, 8), (5, 0), (12, 0)), ((12, 9), (5, 0), (12, 1)), ((13, 0), (7, 5), (12, 1)),
)


def arch_range(release: tuple) -> Optional[tuple]:
    """(lowest, highest) compute capability nvcc ``release`` builds for; None before 9.0."""
    found = None
    for since, lowest, highest in ARCH_RANGE:
        if release[:2] >= since:
            found = (lowest, highest)
    return found


def first_release_for(capability: tuple) -> Optional[tuple]:
    """The first CUDA release whose nvcc builds for ``capability``."""
    return next((since for since, lowest, highest in ARCH_RANGE if lowest <= capability <= highest), None)


def last_release_for(capability: tuple) -> Optional[tuple]:
    """The last CUDA release (by this table) whose nvcc still builds for ``capability``."""
    supporting = [since for since, lowest, highest in ARCH_RANGE if lowest <= capability <= highest]
    return supporting[-1] if supporting else None


# Compiler pairs that nvcc's host_config.h accepts but that fail to compile, with the release
# that fixed them. Each row: (CUDA releases from, to), compiler kind, (compiler majors from,
# to), the CUDA release that fixes it, what users see, public reports.
KNOWN_BROKEN_PAIRS = (
    ((11, 5), (11, 5), "gcc", (11, 11), (11, 6),
     "/usr/include/c++/11/bits/std_function.h:435:145: error: parameter packs not expanded with '...'",
     ("https://github.com/NVIDIA/nccl/issues/650", "https://github.com/NVIDIA/FasterTransformer/issues/314",
      "https://github.com/NVIDIA/VisRTX/issues/71")),
)


def known_broken(release: tuple, compiler_kind: str, compiler_version: tuple) -> Optional[tuple]:
    """(fixed in, symptom, sources) when this nvcc release and host compiler are a known-broken pair."""
    for first, last, kind, majors, fixed_in, symptom, sources in KNOWN_BROKEN_PAIRS:
        if kind == compiler_kind and first <= release[:2] <= last and majors[0] <= compiler_version[0] <= majors[1]:
            return fixed_in, symptom, sources
    return None


# ----------------------------------------------------------------------------- host compilers
# nvcc accepts the host compilers its include/crt/host_config.h allows ("unsupported GNU version!",
# "unsupported Microsoft Visual Studio version!"); the table below was read from NVIDIA's own
# host_config.h files and is used only when the toolkit's file cannot be read
# (https://docs.nvidia.com/cuda/cuda-installation-guide-linux/#host-compiler-support-policy).
# CUDA (major, minor) range -> (highest GCC major, accepted _MSC_VER [low, high))
FALLBACK_WINDOWS = [
    ((11, 7), (11, 8), 11, (1910, 1940)), ((12, 0), (12, 3), 12, (1910, 1940)),
    ((12, 4), (12, 6), 13, (1910, 1950)), ((12, 8), (12, 9), 14, (1910, 1950)),
    ((13, 0), (13, 1), 15, (1920, 1950)), ((13, 2), (13, 3), 15, (1920, 1960)),
    ((13, 4), (13, 5), 16, (1920, 1960)),
]


def parse_host_config(content: str) -> dict:
    """The host-compiler window a host_config.h enforces."""
    window: dict = {}
    gcc_rule = (r"#if\s+__GNUC__\s*>\s*(\d+)"
                r"(?:\s*\|\|\s*\(__GNUC__\s*==\s*(\d+)\s*&&\s*__GNUC_MINOR__\s*>\s*(\d+)\))?")
    match = re.search(gcc_rule, content)
    if match:
        window["gcc_max_major"] = int(match.group(1))
        if match.group(2):
            window["gcc_max_minor_of_next"] = (int(match.group(2)), int(match.group(3)))
    match = re.search(r"_MSC_VER\s*<\s*(\d+)\s*\|\|\s*_MSC_VER\s*>=?\s*(\d+)", content)
    if match:
        window["msvc_min"], window["msvc_limit"] = int(match.group(1)), int(match.group(2))
    match = re.search(r"unsupported clang version!.*?less than (\d+)", content)
    if match:
        window["clang_limit"] = int(match.group(1))
    window["override_guard"] = "__NV_NO_HOST_COMPILER_CHECK" in content
    return window


def fallback_window(cuda: tuple) -> dict:
    for low, high, gcc, msvc in FALLBACK_WINDOWS:
        if low <= cuda <= high:
            return {"gcc_max_major": gcc, "msvc_min": msvc[0], "msvc_limit": msvc[1], "source": "table"}
    return {}


# ----------------------------------------------------------------------------- the driver's facts
# read by the rules of several checks and fixes from the nvidia-driver check's facts


def driver_max_cuda(all_facts: dict) -> Optional[tuple]:
    """The highest CUDA the driver supports, from this check's facts (for other checks' rules)."""
    return from_nvml((all_facts.get("nvidia-driver") or {}).get("cuda_driver_version"))


def gpus(all_facts: dict) -> list:
    return (all_facts.get("nvidia-driver") or {}).get("gpus", [])
