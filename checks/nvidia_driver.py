"""The `nvidia-driver` check: the driver and GPUs as NVML sees them.

Through ``nvidia-ml-py`` (``import pynvml``, imported only when the probe runs): the
driver version, the highest CUDA it supports, and per GPU the name, compute capability,
memory, bus width, maximum memory clock and the theoretical bandwidth from them. No
NVIDIA library (a CPU machine) is information, not an error. Also: WSL's
``/usr/lib/wsl/lib``, and the ``pynvml`` / ``nvidia-ml-py`` / ``nvidia-ml-py3`` clash in
the target environment (they all install ``pynvml.py``).
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from llmdoctor.knowledge.cuda import from_nvml, text
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext, SmokeTest

WSL_LIB = "/usr/lib/wsl/lib"
NVML_ERRORS = {
    # NVML return codes -> what they mean to a user
    "NVML_ERROR_LIBRARY_NOT_FOUND": "the NVIDIA management library (libnvidia-ml / nvml.dll) is not installed",
    "NVML_ERROR_DRIVER_NOT_LOADED": "the NVIDIA driver is installed but not running (kernel module not loaded; "
                                    "after a driver update, reboot)",
    "NVML_ERROR_NO_PERMISSION": "this user may not talk to the NVIDIA driver (check /dev/nvidia* permissions "
                                "or container device access)",
    "NVML_ERROR_GPU_IS_LOST": "a GPU fell off the bus (overheating, power or a hardware fault); reboot",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "the driver's user-space library and kernel module differ in "
                                          "version (a driver update without a reboot); reboot",
    "NVML_ERROR_UNINITIALIZED": "NVML was not initialised",
    "NVML_ERROR_TIMEOUT": "the driver did not answer in time",
}


def _error_name(exc: Exception, nvml) -> str:
    value = getattr(exc, "value", None)
    for name in dir(nvml):
        if name.startswith("NVML_ERROR_") and getattr(nvml, name) == value:
            return name
    return type(exc).__name__


def _decode(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def probe_nvml(nvml) -> dict:
    """Facts from an ``pynvml``-like module; never raises."""
    facts: dict = {"nvml": "ok", "gpus": []}
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - every NVML failure is a fact
        code = _error_name(exc, nvml)
        facts.update(nvml="library-not-found" if code == "NVML_ERROR_LIBRARY_NOT_FOUND" else "error",
                     error_code=code, error=str(exc))
        return facts
    try:
        facts["driver_version"] = _decode(nvml.nvmlSystemGetDriverVersion())
        try:
            facts["cuda_driver_version"] = int(nvml.nvmlSystemGetCudaDriverVersion_v2())
        except Exception as exc:  # noqa: BLE001 - libcuda missing: NVML_ERROR_LIBRARY_NOT_FOUND
            facts["cuda_driver_error"] = f"{_error_name(exc, nvml)}: {exc}"
        for index in range(nvml.nvmlDeviceGetCount()):
            facts["gpus"].append(_gpu_facts(nvml, index))
    except Exception as exc:  # noqa: BLE001
        facts.update(nvml="error", error_code=_error_name(exc, nvml), error=str(exc))
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    return facts


def _gpu_facts(nvml, index: int) -> dict:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    gpu: dict = {"index": index, "name": _decode(nvml.nvmlDeviceGetName(handle))}
    for key, read in (
        ("compute_capability", lambda: "{}.{}".format(*nvml.nvmlDeviceGetCudaComputeCapability(handle))),
        ("memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle)),
        ("bus_width_bits", lambda: int(nvml.nvmlDeviceGetMemoryBusWidth(handle))),
        ("max_memory_clock_mhz", lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM))),
        ("uuid", lambda: _decode(nvml.nvmlDeviceGetUUID(handle))),
    ):
        try:
            value = read()
        except Exception as exc:  # noqa: BLE001 - some GPUs do not report everything
            gpu.setdefault("unreadable", {})[key] = str(exc)
            continue
        if key == "memory":
            gpu["memory_total_bytes"], gpu["memory_free_bytes"] = int(value.total), int(value.free)
        else:
            gpu[key] = value
    if gpu.get("bus_width_bits") and gpu.get("max_memory_clock_mhz"):
        # bytes per transfer x transfers per second; memory is double data rate
        gpu["bandwidth_gb_s"] = round(gpu["bus_width_bits"] / 8 * gpu["max_memory_clock_mhz"] * 2 / 1000, 1)
    return gpu


def nvml_library_missing() -> bool:
    """Linux: whether ``libnvidia-ml.so.1`` cannot be loaded, the first thing the pynvml of
    nvidia-ml-py (or its pynvml shim) tries in ``nvmlInit``; asked without importing it, a 1 MB
    module (30-60 ms) that a machine without an NVIDIA driver has no use for. Any other pynvml
    module (a fork, a test double) is asked itself."""
    if not sys.platform.startswith("linux"):
        return False
    import importlib.util

    spec = importlib.util.find_spec("pynvml")
    folder = os.path.dirname(spec.origin) if spec and spec.origin else ""
    try:
        names = os.listdir(folder) if folder else []
    except OSError:
        names = []
    if not any(n.endswith(".dist-info") and n.lower().startswith(("nvidia_ml_py-", "nvidia_ml_py3-", "pynvml-"))
               for n in names):
        return False
    import ctypes

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return True
    return False


# what pynvml's nvmlInit reports when the library is missing (NVMLError_LibraryNotFound)
LIBRARY_NOT_FOUND = {"nvml": "library-not-found", "error_code": "NVML_ERROR_LIBRARY_NOT_FOUND",
                     "error": "NVML Shared Library Not Found", "gpus": []}


def probe(context: ProbeContext) -> dict:
    import importlib.util

    if importlib.util.find_spec("pynvml") is None:
        facts = {"nvml": "module-missing", "error": "cannot import pynvml (nvidia-ml-py): not installed", "gpus": []}
    elif nvml_library_missing():
        facts = dict(LIBRARY_NOT_FOUND, gpus=[])
    else:
        try:
            import pynvml
        except ImportError as exc:
            facts = {"nvml": "module-missing", "error": f"cannot import pynvml (nvidia-ml-py): {exc}", "gpus": []}
        else:
            facts = probe_nvml(pynvml)
    facts["wsl"] = sys.platform.startswith("linux") and os.path.isdir(WSL_LIB)
    if facts["wsl"]:
        facts["wsl_nvml_present"] = os.path.exists(os.path.join(WSL_LIB, "libnvidia-ml.so.1"))
        facts["ld_library_path"] = os.environ.get("LD_LIBRARY_PATH", "")
    packages = context.target().get("packages", {})
    facts["pynvml_distributions"] = {name: packages[name] for name in ("pynvml", "nvidia-ml-py", "nvidia-ml-py3")
                                     if name in packages}
    return facts


def local_capability() -> Optional[str]:
    """The first GPU's compute capability ("8.9") from NVML, for smoke tests; None without one."""
    try:
        import pynvml

        gpus = probe_nvml(pynvml).get("gpus", [])
    except Exception:  # noqa: BLE001 - no NVML means no GPU to run on
        return None
    return gpus[0].get("compute_capability") if gpus else None


# ----------------------------------------------------------------------------- rules


def rules(facts: dict, context: RuleContext) -> list:
    findings: list = []
    state = facts.get("nvml")
    if state in ("library-not-found", "module-missing"):
        if facts.get("wsl") and facts.get("wsl_nvml_present") and WSL_LIB not in facts.get("ld_library_path", ""):
            findings.append(Finding(
                "nvidia-driver.wsl-library-path", "warning",
                f"WSL: the Windows driver's libraries in {WSL_LIB} are not found by the loader",
                f"Add {WSL_LIB} to LD_LIBRARY_PATH (or run 'sudo ldconfig' after listing it in "
                "/etc/ld.so.conf.d/); libcuda.so and libnvidia-ml.so live there under WSL.",
                facts={"error": facts.get("error", "")}))
        else:
            findings.append(Finding(
                "nvidia-driver.none", "info",
                "no NVIDIA driver on this machine: GPU checks are limited to what can be read from files",
                facts.get("error", "") + ". Models run on the CPU (or another accelerator) here.",
                facts={"nvml": state}))
        return findings
    if state == "error":
        code = facts.get("error_code", "")
        findings.append(Finding(
            "nvidia-driver.nvml-error", "error",
            f"the NVIDIA driver does not answer: {NVML_ERRORS.get(code, facts.get('error', code))}",
            f"NVML returned {code}: {facts.get('error', '')}", facts={"error_code": code}))
        return findings

    driver = facts.get("driver_version", "?")
    cuda_max = from_nvml(facts.get("cuda_driver_version"))
    if cuda_max:
        findings.append(Finding("nvidia-driver.version", "ok",
                                f"driver {driver}, supports CUDA up to {text(cuda_max)}"))
    else:
        findings.append(Finding(
            "nvidia-driver.no-libcuda", "warning",
            f"driver {driver} is loaded but libcuda (the CUDA driver library) is not found",
            "NVML answered but nvmlSystemGetCudaDriverVersion_v2 did not: "
            f"{facts.get('cuda_driver_error', '')}. Programs using CUDA will not find a GPU; "
            "reinstall the driver with its CUDA component (or, in a container, use the NVIDIA "
            "container toolkit).", facts={"error": facts.get("cuda_driver_error", "")}))
    if not facts.get("gpus"):
        findings.append(Finding("nvidia-driver.no-gpu", "warning",
                                f"driver {driver} is running but sees no GPU"))
    for gpu in facts.get("gpus", []):
        parts = [f"compute capability {gpu['compute_capability']}"] if gpu.get("compute_capability") else []
        if gpu.get("memory_total_bytes"):
            parts.append(f"{gpu['memory_free_bytes'] / 2**30:.1f} of {gpu['memory_total_bytes'] / 2**30:.1f} "
                         "GiB free")
        if gpu.get("bandwidth_gb_s"):
            parts.append(f"{gpu['bandwidth_gb_s']:,.0f} GB/s peak bandwidth")
        findings.append(Finding("nvidia-driver.gpu", "ok",
                                f"GPU {gpu['index']}: {gpu['name']} ({', '.join(parts)})", facts=gpu))

    dists = facts.get("pynvml_distributions") or {}
    clash = _pynvml_clash(dists)
    if clash:
        findings.append(Finding(
            "nvidia-driver.pynvml-clash", "warning",
            f"{' and '.join(sorted(dists))} are all installed and overwrite each other's pynvml.py",
            clash + " Keep nvidia-ml-py (NVIDIA's own): pip uninstall -y "
            + " ".join(sorted(d for d in dists if d != "nvidia-ml-py"))
            + " && pip install --force-reinstall nvidia-ml-py", facts=dists))
    return findings


def _pynvml_clash(dists: dict) -> str:
    from packaging.version import InvalidVersion, Version

    if "nvidia-ml-py3" in dists and len(dists) > 1:
        return "nvidia-ml-py3 is an old fork that installs its own pynvml.py."
    if "pynvml" in dists and "nvidia-ml-py" in dists:
        try:
            old = Version(dists["pynvml"]) < Version("12")
        except InvalidVersion:
            old = True
        if old:
            return "pynvml before 12 ships its own pynvml.py (12+ is a shim over nvidia-ml-py)."
    return ""


# ----------------------------------------------------------------------------- smoke test


def smoke_nvml(options: dict) -> dict:
    try:
        import pynvml
    except ImportError as exc:
        return {"status": "fail", "message": f"cannot import pynvml (nvidia-ml-py): {exc}"}
    facts = probe_nvml(pynvml)
    if facts["nvml"] == "library-not-found":
        return {"status": "skipped", "message": "no NVIDIA driver on this machine"}
    if facts["nvml"] != "ok":
        return {"status": "fail", "message": f"NVML: {facts.get('error_code')}: {facts.get('error')}"}
    if not facts["gpus"]:
        return {"status": "fail", "message": f"driver {facts.get('driver_version')} sees no GPU"}
    names = ", ".join(f"{g['index']}: {g['name']}" for g in facts["gpus"])
    return {"status": "pass", "message": f"driver {facts.get('driver_version')}; GPUs {names}",
            "figures": {"gpus": facts["gpus"], "driver_version": facts.get("driver_version")}}


NVML_DOCS = "https://docs.nvidia.com/deploy/nvml-api/"
CUDA_COMPAT = "https://docs.nvidia.com/deploy/cuda-compatibility/"

FINDINGS = (
    FindingKind(
        "nvidia-driver.version", "ok", "the NVIDIA driver answers, and the highest CUDA it supports",
        why="The driver's CUDA version bounds every CUDA build on the machine: torch, bitsandbytes, nvcc.",
        references=(NVML_DOCS, CUDA_COMPAT),
    ),
    FindingKind(
        "nvidia-driver.gpu", "ok", "one GPU: name, memory, compute capability, memory bandwidth",
        why="Memory decides which models fit; bandwidth bounds how fast they generate; the compute "
            "capability decides which builds carry kernels for it.",
        references=(NVML_DOCS, "https://developer.nvidia.com/cuda-gpus"),
    ),
    FindingKind(
        "nvidia-driver.none", "info", "no NVIDIA driver on this machine",
        why="Models run on the CPU (or another accelerator); GPU checks read only what files say.",
        fix="Install the NVIDIA driver if the machine has an NVIDIA GPU.",
        references=("https://docs.nvidia.com/cuda/cuda-installation-guide-linux/",),
    ),
    FindingKind(
        "nvidia-driver.nvml-error", "error", "the NVIDIA driver is installed but does not answer",
        why="NVML failed (driver/library version mismatch after an update, a module not loaded, no "
            "permission on /dev/nvidia*): every CUDA program sees no GPU.",
        fix="Reboot after a driver update; otherwise reinstall the driver. The message gives NVML's error.",
        references=(NVML_DOCS,),
    ),
    FindingKind(
        "nvidia-driver.no-libcuda", "warning", "NVML answers but libcuda, the CUDA driver library, is missing",
        why="nvmlSystemGetCudaDriverVersion_v2 reads libcuda; without it CUDA programs find no GPU.",
        fix="Reinstall the driver with its CUDA component; in a container use the NVIDIA container toolkit.",
        references=(NVML_DOCS,
                    "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"),
    ),
    FindingKind(
        "nvidia-driver.no-gpu", "warning", "the driver runs but sees no GPU",
        why="A GPU not passed through to this VM or container, or one the driver does not support.",
        fix="Check the passthrough / container runtime, and that the driver supports the card.",
        references=(NVML_DOCS,),
    ),
    FindingKind(
        "nvidia-driver.wsl-library-path", "warning", "WSL: the Windows driver's libraries are not on the loader path",
        why="Under WSL libcuda.so and libnvidia-ml.so live in /usr/lib/wsl/lib; if the loader does not "
            "search there, CUDA programs find no GPU.",
        fix="Add /usr/lib/wsl/lib to LD_LIBRARY_PATH, or list it in /etc/ld.so.conf.d/ and run 'sudo ldconfig'.",
        references=("https://docs.nvidia.com/cuda/wsl-user-guide/index.html",),
    ),
    FindingKind(
        "nvidia-driver.pynvml-clash", "warning", "pynvml, nvidia-ml-py and nvidia-ml-py3 are installed together",
        why="All three install the same pynvml.py and overwrite each other; the deprecated pynvml package makes "
            "torch warn 'The pynvml package is deprecated'.",
        fix="Uninstall the others and reinstall nvidia-ml-py (NVIDIA's own).",
        references=("https://pypi.org/project/nvidia-ml-py/", "https://github.com/XuehaiPan/nvitop/issues/44"),
    ),
)


CHECK = Check(
    id="nvidia-driver",
    title="NVIDIA driver and GPUs",
    probe=probe,
    rules=rules,
    order=30,
    timeout=10.0,
    smoke=(SmokeTest("nvml", "NVML initialises and lists the GPUs",
                     "llmdoctor.checks.nvidia_driver:smoke_nvml", timeout=30.0),),
    findings=FINDINGS,
)
