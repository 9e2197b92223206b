"""What the GPU checks know about CUDA versions: parsing, and which driver runs which CUDA.

Sources: shared/reference/gpu-python-stack.md §5. Drivers are backward compatible; since
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
