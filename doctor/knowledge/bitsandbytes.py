"""How each bitsandbytes release picks its native library, and what the releases ship.

Pure functions and data, shared by the `bitsandbytes` check and fix. Every rule below was
read from the released wheels' own ``cextension.py`` / ``cuda_setup/main.py`` (0.41.3,
0.42.0, 0.43.1, 0.44.1, 0.45.5, 0.46.1, 0.47.0, 0.48.2, 0.49.0, 0.49.2, 0.50.0, 0.50.2):

- **< 0.43** (``cuda_setup/main.py``): no usable CUDA -> ``libbitsandbytes_cpu.so``. Else
  ``libbitsandbytes_cuda{torch.version.cuda}.so`` (``_nocublaslt`` below compute
  capability 7.5), always ``.so``, even on Windows. A non-empty ``BNB_CUDA_VERSION``
  replaces the last six characters (``name[:-6] + value + ".so"``). A missing file or a
  failed load leaves ``lib = None`` and the import raises "CUDA Setup failed despite GPU
  being available". Before 0.41 the version came from a scan for ``libcudart.so`` on
  the library path rather than from torch.
- **0.43 - 0.45**: the same name with the platform's suffix (``_nocublaslt`` until 0.44);
  ``BNB_CUDA_VERSION`` replaces the digits (0.43: ``rstrip`` of trailing digits, which
  turns ``..._nocublaslt`` into ``..._nocublaslt124``; 0.44+: ``re.sub("cuda\\d+")``).
  A missing CUDA file **falls back to the CPU library** with a warning: the "compiled
  without GPU support" family. A failed load prints "CUDA Setup failed despite CUDA being
  available" (0.43.0: "...despite GPU being available").
- **0.46 - 0.49**: exact name; a missing file raises "Configured CUDA binary not found",
  and the first native call reports "CUDA VERSION MISMATCH".
- **0.50+**: ``BNB_CUDA_VERSION``, when set at all (an empty value included), must be
  digits and names the file with no fallback. Otherwise the exact version, else the
  highest shipped version below it in the same major, else the lowest above it in the
  same major; never across majors ("No compatible CUDA binary found").

In every release the choice depends on ``torch.cuda.is_available()``: a CPU build of
torch, or no usable GPU, always means the CPU library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from packaging.version import InvalidVersion, Version

# What the published wheels ship (x86-64), read from the wheels themselves; the fix
# chooses among these without asking the network. "torch" and "python" are the wheels'
# Requires-Dist / Requires-Python.
RELEASES = {
    "0.41.3": {"linux": ["110", "111", "114", "115", "117", "118", "120", "121", "122"], "windows": [],
               "torch": None, "python": None},
    "0.42.0": {"linux": ["110", "111", "114", "115", "117", "118", "120", "121", "122", "123"], "windows": [],
               "torch": None, "python": None},
    "0.43.1": {"linux": ["117", "118", "120", "121", "122", "123", "124"],
               "windows": ["117", "118", "120", "121", "122", "123"], "torch": None, "python": None},
    "0.44.1": {"linux": ["117", "118", "120", "121", "122", "123", "124", "125"],
               "windows": ["117", "118", "120", "121", "122", "123", "124", "125"], "torch": None, "python": None},
    "0.45.5": {"linux": ["117", "118", "120", "121", "122", "123", "124", "125", "126", "128"],
               "windows": ["117", "118", "120", "121", "122", "123", "124", "125", "126", "128"],
               "torch": "2.0", "python": "3.8"},
    "0.46.1": {"linux": ["118", "120", "121", "122", "123", "124", "125", "126", "128", "129"],
               "windows": ["118", "120", "121", "122", "123", "124", "125", "126", "128", "129"],
               "torch": "2.2", "python": "3.9"},
    "0.48.2": {"linux": ["118", "120", "121", "122", "123", "124", "125", "126", "128", "129", "130"],
               "windows": ["118", "120", "121", "122", "123", "124", "125", "126", "128", "129", "130"],
               "torch": "2.3", "python": "3.9"},
    "0.49.2": {"linux": ["118", "120", "121", "122", "123", "124", "125", "126", "128", "129", "130"],
               "windows": ["118", "120", "121", "122", "123", "124", "125", "126", "128", "129", "130"],
               "torch": "2.3", "python": "3.10"},
    "0.50.2": {"linux": ["118", "121", "124", "126", "128", "130", "132"],
               "windows": ["118", "121", "124", "126", "128", "130", "132"], "torch": "2.4", "python": "3.10"},
}

LLM_INT8_MIN_CAPABILITY = (7, 5)  # cuBLASLt int8 kernels; below it LLM.int8() cannot run
WINDOWS_SINCE = Version("0.43.0")
CPU_BACKEND_SINCE = Version("0.46.0")  # 4-bit and int8 kernels on the CPU (backends/cpu)
CPU_OPTIMIZER_SINCE = Version("0.50.0")  # 8-bit blockwise optimizer update on the CPU
CONFLICTING = ("bitsandbytes-windows", "bitsandbytes-cuda110", "bitsandbytes-cuda111", "bitsandbytes-cuda113",
               "bitsandbytes-cuda114", "bitsandbytes-cuda117")


def parse(version: str) -> Optional[Version]:
    try:
        return Version(version)
    except (InvalidVersion, TypeError):
        return None


def era(version: Version) -> str:
    if version < Version("0.41.0"):
        return "runtime-scan"
    if version < Version("0.43.0"):
        return "legacy"
    if version < Version("0.46.0"):
        return "cpu-fallback"
    if version < Version("0.50.0"):
        return "exact"
    return "nearest"


def suffix(system: str) -> str:
    return {"windows": ".dll", "darwin": ".dylib"}.get(system, ".so")


def digits(cuda: tuple) -> str:
    return f"{cuda[0]}{cuda[1]}"


def split_digits(text: str) -> Optional[tuple]:
    """'124' -> (12, 4); CUDA majors have two digits in every file bitsandbytes ships."""
    return (int(text[:2]), int(text[2:])) if re.fullmatch(r"\d{3,4}", text or "") else None


def _select_by_runtime(runtime: dict, files: list, old_gpu: bool, torch_cuda: tuple) -> Selection:
    """Releases before 0.41: the libcudart they found decides the library (its version, not torch's)."""
    found, cuda = runtime.get("found"), parse_cuda(runtime.get("version"))
    if not found:
        return Selection("libbitsandbytes_cpu.so", "libbitsandbytes_cpu.so" in files, "fails",
                         "before 0.41 the CUDA version comes from a libcudart.so it finds itself; it found none "
                         "(searched $CONDA_PREFIX/lib, LD_LIBRARY_PATH, other path variables, /usr/local/cuda/lib64), "
                         "so it loads the CPU library",
                         ["WARNING: No libcudart.so found! Install CUDA or the cudatoolkit package (anaconda)!",
                          "CUDA Setup failed despite GPU being available"])
    if cuda is None:
        return Selection("libbitsandbytes_cuda?.so", False, "fails",
                         f"before 0.41 the CUDA version comes from {found}, whose version could not be read", [])
    name = f"libbitsandbytes_cuda{digits(cuda)}" + ("_nocublaslt" if old_gpu else "") + ".so"
    exists = name in files
    rule = (f"before 0.41 the CUDA version comes from the libcudart it finds first ({found} via "
            f"{runtime.get('via')}: CUDA {cuda[0]}.{cuda[1]}), not from torch's CUDA {torch_cuda[0]}.{torch_cuda[1]}")
    return Selection(name, exists, "cuda" if exists else "fails", rule, [] if exists else [
        f"CUDA SETUP: Detected CUDA version {digits(cuda)}",
        f"CUDA SETUP: Required library version not found: {name}", "CUDA Setup failed despite GPU being available"])


def parse_cuda(text: Optional[str]) -> Optional[tuple]:
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def shipped_cuda(files: list) -> dict:
    """{(12, 8): 'libbitsandbytes_cuda128.so', ...} for the regular CUDA libraries in ``files``."""
    found = {}
    for name in files:
        match = re.fullmatch(r"libbitsandbytes_cuda(\d+)\.(so|dll|dylib)", name)
        version = split_digits(match.group(1)) if match else None
        if version:
            found[version] = name
    return found


@dataclass
class Selection:
    """The native library a bitsandbytes release will try to load, and what follows."""

    name: str  # the file name it looks for
    exists: bool
    outcome: str  # "cpu" (no usable GPU), "cuda", "cpu-fallback", "fails"
    rule: str  # the release's rule, in words
    quoted: list = field(default_factory=list)  # the messages the user will see
    fallback: Optional[str] = None  # 0.50+: the version it settled for instead of torch's

    def to_json(self) -> dict:
        return {"name": self.name, "exists": self.exists, "outcome": self.outcome, "rule": self.rule,
                "quoted": self.quoted, "fallback": self.fallback}


# Before 0.41 the CUDA version came from the libcudart the release found itself, not from torch
# (cuda_setup/main.py, determine_cuda_runtime_lib_path and get_cuda_version, which asks that
# library's cudaRuntimeGetVersion: https://github.com/bitsandbytes-foundation/bitsandbytes/blob/
# 0.40.0/bitsandbytes/cuda_setup/main.py; 0.41.0 switched to torch.version.cuda). The search:
# $CONDA_PREFIX/lib, then LD_LIBRARY_PATH, then every other variable whose value holds a '/'
# (except PATH, HOME, SHELL, PWD and the like, and other CONDA* variables; env_vars.py), then
# /usr/local/cuda/lib64. The names it looks for:
CUDART_NAMES_SINCE_0_38 = ("libcudart.so", "libcudart.so.11.0", "libcudart.so.12.0")
CUDART_NAMES_BEFORE_0_38 = ("libcudart.so",)
CUDART_IGNORED_VARIABLES = ("PWD", "OLDPWD", "SSH_AUTH_SOCK", "SSH_TTY", "HOME", "TMUX", "XDG_DATA_DIRS",
                            "XDG_GREETER_DATA_DIR", "XDG_RUNTIME_DIR", "MAIL", "SHELL", "DBUS_SESSION_BUS_ADDRESS",
                            "PATH", "LESSOPEN", "LESSCLOSE", "_")


def cudart_names(version: Version) -> tuple:
    return CUDART_NAMES_SINCE_0_38 if version >= Version("0.38.0") else CUDART_NAMES_BEFORE_0_38


def cudart_search_order(environment: dict) -> list:
    """(label, folder) in the order releases before 0.41 search them for libcudart."""
    order = []
    if environment.get("CONDA_PREFIX"):
        order.append(("$CONDA_PREFIX/lib", environment["CONDA_PREFIX"].rstrip("/") + "/lib"))
    for folder in (environment.get("LD_LIBRARY_PATH") or "").split(":"):
        if folder:
            order.append(("LD_LIBRARY_PATH", folder))
    for name, value in sorted(environment.items()):
        if name in ("CONDA_PREFIX", "LD_LIBRARY_PATH") or "CONDA" in name or name in CUDART_IGNORED_VARIABLES \
                or "/" not in (value or ""):
            continue
        order += [(f"${name}", folder) for folder in value.split(":") if folder]
    order.append(("backup", "/usr/local/cuda/lib64"))
    return order


def select_library(version: Version, system: str, files: list, torch_cuda: Optional[tuple],
                   gpu_usable: bool, capability: Optional[tuple], override: Optional[str],
                   runtime: Optional[dict] = None) -> Selection:
    """What ``version`` loads, following its own rule.

    ``files``: the native library names in the installed package folder; ``torch_cuda``:
    torch's CUDA (major, minor) or None for a CPU build; ``gpu_usable``: whether
    ``torch.cuda.is_available()`` will be True; ``capability``: the highest GPU compute
    capability; ``override``: ``BNB_CUDA_VERSION`` (None when unset, "" when set empty).
    """
    stage = era(version)
    ext = ".so" if stage in ("runtime-scan", "legacy") else suffix(system)
    cpu = f"libbitsandbytes_cpu{ext}"
    if not (torch_cuda and gpu_usable):
        why = "torch is a CPU build" if not torch_cuda else "torch.cuda.is_available() will be False"
        return Selection(cpu, cpu in files, "cpu", f"{why}, so every release loads the CPU library")
    old_gpu = capability is not None and capability < LLM_INT8_MIN_CAPABILITY
    name = f"libbitsandbytes_cuda{digits(torch_cuda)}"
    if stage == "runtime-scan" and runtime is not None:
        return _select_by_runtime(runtime, files, old_gpu, torch_cuda)
    if stage in ("runtime-scan", "legacy"):
        name += ("_nocublaslt" if old_gpu else "") + ".so"
        rule = "torch's CUDA version, exact" + (", _nocublaslt for compute capability < 7.5" if old_gpu else "")
        if override:
            name = name[:-6] + override + ".so"
            rule += f"; BNB_CUDA_VERSION={override} replaces the last six characters"
        if stage == "runtime-scan":
            rule += " (before 0.41 the version came from the libcudart.so found on the library path)"
        exists = name in files
        quoted = [] if exists else [f"CUDA SETUP: Required library version not found: {name}",
                                    "CUDA Setup failed despite GPU being available"]
        return Selection(name, exists, "cuda" if exists else "fails", rule, quoted)
    if stage == "cpu-fallback":
        nocublaslt = old_gpu and version < Version("0.45.0")
        name += ("_nocublaslt" if nocublaslt else "")
        rule = "torch's CUDA version, exact" + (", _nocublaslt for compute capability < 7.5" if nocublaslt else "")
        if override:
            if version < Version("0.44.0"):
                name = name.rstrip("0123456789") + override
            else:
                name = re.sub(r"cuda\d+", f"cuda{override}", name, count=1)
            rule += f"; BNB_CUDA_VERSION={override} replaces the version"
        name += ext
        if name in files:
            return Selection(name, True, "cuda", rule)
        return Selection(name, False, "cpu-fallback", rule + "; a missing file falls back to the CPU library",
                         [f"Could not find the bitsandbytes CUDA binary at '{name}'",
                          "The installed version of bitsandbytes was compiled without GPU support. 8-bit "
                          "optimizers, 8-bit multiplication, and GPU quantization are unavailable."])
    if stage == "exact":
        rule = "torch's CUDA version, exact"
        if override:
            name = re.sub(r"cuda\d+", f"cuda{override}", name, count=1)
            rule += f"; BNB_CUDA_VERSION={override} replaces the version"
        name += ext
        exists = name in files
        return Selection(name, exists, "cuda" if exists else "fails", rule, [] if exists else [
            f"Configured CUDA binary not found at .../bitsandbytes/{name}", "CUDA VERSION MISMATCH"])
    # 0.50 and later
    if override is not None:
        if not override.isdigit():
            return Selection(name + ext, False, "fails", "BNB_CUDA_VERSION, when set, must be digits",
                             [f"BNB_CUDA_VERSION={override!r}: value must be digits only (e.g. '124' for 12.4)."])
        name = f"libbitsandbytes_cuda{override}{ext}"
        exists = name in files
        return Selection(name, exists, "cuda" if exists else "fails",
                         f"BNB_CUDA_VERSION={override} names the file, with no fallback",
                         [] if exists else [f"No compatible CUDA binary found at .../bitsandbytes/{name}"])
    available = shipped_cuda(files)
    rule = "torch's CUDA version, else the nearest shipped one of the same major (lower first)"
    if torch_cuda in available:
        return Selection(available[torch_cuda], True, "cuda", rule)
    same_major = [v for v in available if v[0] == torch_cuda[0]]
    lower = [v for v in same_major if v < torch_cuda]
    chosen = max(lower) if lower else min(same_major) if same_major else None
    if chosen is None:
        missing = name + ext
        return Selection(missing, False, "fails", rule + "; never across majors",
                         [f"No compatible CUDA binary found at .../bitsandbytes/{missing}", "CUDA VERSION MISMATCH"])
    return Selection(available[chosen], True, "cuda", rule, [
        f"No prebuilt binary for CUDA {torch_cuda[0]}.{torch_cuda[1]}, loading CUDA {chosen[0]}.{chosen[1]} instead."],
        fallback=f"{chosen[0]}.{chosen[1]}")


def release_for(torch_cuda: Optional[tuple], system: str, python: Optional[tuple], torch_version: Optional[str],
                capability: Optional[tuple] = None) -> Optional[str]:
    """The newest known release that installs beside this torch and Python and loads a CUDA
    library for ``torch_cuda`` (any release does for a CPU torch, where its CPU backend counts)."""
    torch_base = parse((torch_version or "").split("+")[0])
    for candidate in sorted(RELEASES, key=Version, reverse=True):
        info = RELEASES[candidate]
        if system == "windows" and Version(candidate) < WINDOWS_SINCE:
            continue
        if info["python"] and python and python < tuple(int(x) for x in info["python"].split(".")):
            continue
        if info["torch"] and torch_base and torch_base < Version(info["torch"]):
            continue
        if torch_cuda is None:
            return candidate
        builds = info["windows" if system == "windows" else "linux"]
        files = [f"libbitsandbytes_cuda{b}{suffix(system)}" for b in builds]
        selection = select_library(Version(candidate), system, files, torch_cuda, True, capability, None)
        if selection.outcome == "cuda":
            if selection.fallback and _major_has_newer(torch_cuda, builds):
                continue
            return candidate
    return None


def _major_has_newer(torch_cuda: tuple, builds: list) -> bool:
    """A nearest-version fallback is fine unless it picks a *newer* minor (which needs a newer
    runtime than torch brings)."""
    lower = [split_digits(b) for b in builds if split_digits(b)[0] == torch_cuda[0] and split_digits(b) < torch_cuda]
    return not lower


# ----------------------------------------------------------------------------- dependencies

def provider(library: str) -> str:
    """Where a missing dependency of a bitsandbytes library comes from."""
    name = library.lower()
    match = re.match(r"lib(cudart|cublaslt|cublas|cusparse)\.so\.(\d+)", name) or \
        re.match(r"(cudart|cublaslt|cublas|cusparse)64_(\d+)\.dll", name)
    if match:
        component = {"cudart": "cuda-runtime", "cublaslt": "cublas"}.get(match.group(1), match.group(1))
        major = int(match.group(2)[:2]) if len(match.group(2)) > 2 else int(match.group(2))
        package = f"nvidia-{component}" + (f"=={major}.*" if major >= 13 else f"-cu{major}")
        return (f"the CUDA {major} runtime libraries: pip package {package}, "
                f"or a CUDA {major}.x toolkit's lib folder")
    if name.startswith("libcuda.so") or name == "nvcuda.dll":
        return "the NVIDIA driver (on WSL: /usr/lib/wsl/lib)"
    if name.startswith("libgomp.so"):
        return "GCC's OpenMP runtime (Debian/Ubuntu: libgomp1; Fedora: libgomp)"
    if name.startswith(("msvcp140", "vcruntime140", "vcomp140")):
        return "the Microsoft Visual C++ 2015-2022 Redistributable (x64)"
    if name.startswith("libstdc++"):
        return "the C++ runtime (Debian/Ubuntu: libstdc++6)"
    return "a system library"


def wheel_library_folder(site_packages: str, library: str, separator: str = "/") -> Optional[str]:
    """The folder inside site-packages where NVIDIA's wheels put ``library``."""
    match = re.match(r"lib(cudart|cublaslt|cublas|cusparse)\.so\.(\d+)", library.lower())
    if not match:
        return None
    major = int(match.group(2))
    component = {"cudart": "cuda_runtime", "cublaslt": "cublas"}.get(match.group(1), match.group(1))
    parts = ["nvidia", "cu13" if major >= 13 else component, "lib"]
    return separator.join([site_packages.rstrip("/\\")] + parts)
