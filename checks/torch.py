"""The `torch` check: the PyTorch build in the target interpreter, read without importing it.

``torch/version.py`` says the version and the CUDA (or ROCm) it was built for. Rules: a
CPU-only build on a machine with an NVIDIA GPU (what a plain ``pip install torch`` gives
on Windows), a build for a CUDA newer than the driver supports, and a GPU whose compute
capability the build does not ship kernels for, where the architecture list is known.
"""

from __future__ import annotations

import re
from pathlib import Path

from llmdoctor.knowledge.cuda import driver_advice, driver_max_cuda, driver_verdict, gpus, parse_version, text
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext, SmokeTest


def read_version_py(content: str) -> dict:
    facts = {}
    for key in ("__version__", "cuda", "hip", "git_version", "debug"):
        match = re.search(rf"^{key}\s*(?::\s*[^=]+)?=\s*(.+)$", content, re.MULTILINE)
        if match:
            value = match.group(1).strip()
            facts[key.strip("_")] = None if value == "None" else value.strip("'\"")
    return facts


def probe_torch(site_packages: list) -> dict:
    for site in site_packages:
        version_py = Path(site) / "torch" / "version.py"
        if version_py.is_file():
            try:
                facts = read_version_py(version_py.read_text(encoding="utf-8", errors="replace"))
            except OSError as exc:
                return {"installed": True, "error": str(exc), "location": str(version_py.parent)}
            facts.update(installed=True, location=str(version_py.parent))
            return facts
    return {"installed": False}


def probe(context: ProbeContext) -> dict:
    target = context.target()
    facts = probe_torch(target.get("site_packages", []))
    facts["python"] = target.get("executable") or context.python
    packages = target.get("packages", {})
    facts["companions"] = {name: packages[name] for name in ("torchvision", "torchaudio") if name in packages}
    if target.get("error"):
        facts["target_error"] = target["error"]
    return facts


def rules(facts: dict, context: RuleContext) -> list:
    findings: list = []
    if facts.get("target_error"):
        findings.append(Finding("torch.target-unreadable", "warning",
                                f"could not inspect the target interpreter: {facts['target_error']}"))
        return findings
    if not facts.get("installed"):
        findings.append(Finding("torch.not-installed", "info",
                                f"PyTorch is not installed in {facts.get('python')}",
                                "Use --python to point llmdoctor at the environment that runs your models."))
        return findings
    version = facts.get("version", "?")
    cuda = parse_version(facts.get("cuda"))
    machine_gpus = gpus(context.all_facts)
    driver_max = driver_max_cuda(context.all_facts)
    if facts.get("hip"):
        findings.append(Finding("torch.rocm", "ok", f"torch {version}, ROCm {facts['hip']} build"))
        return findings
    if not cuda:
        if machine_gpus:
            findings.append(Finding(
                "torch.cpu-only", "error",
                f"torch {version} is a CPU-only build, but this machine has "
                f"{machine_gpus[0]['name']}: models will run on the CPU",
                "A plain 'pip install torch' gives the CPU build on Windows (and from some mirrors); "
                "CUDA builds come from download.pytorch.org/whl/cuXYZ. 'llmdoctor fix --torch-cuda' "
                "reinstalls the build the driver supports.",
                fixes=["torch-cuda"], caused_by=None, facts={"version": version, "python": facts.get("python")}))
        else:
            findings.append(Finding("torch.cpu", "ok", f"torch {version} (CPU build)"))
        return findings
    findings.append(Finding("torch.version", "ok", f"torch {version}, built for CUDA {text(cuda)}",
                            facts={"location": facts.get("location")}))
    if (context.all_facts.get("nvidia-driver") or {}).get("nvml") == "error":
        findings.append(Finding(
            "torch.no-gpu-access", "error",
            f"torch {version} cannot use the GPU while the driver does not answer",
            "torch.cuda.is_available() will be False and models fall back to the CPU.",
            caused_by="nvidia-driver.nvml-error"))
    if driver_max:
        verdict = driver_verdict(cuda, driver_max)
        if verdict:
            driver = (context.all_facts.get("nvidia-driver") or {}).get("driver_version", "?")
            findings.append(Finding(
                "torch.newer-than-driver", "error" if verdict == "major" else "warning",
                f"torch {version} is built for CUDA {text(cuda)}, newer than the driver supports "
                f"(up to {text(driver_max)})"
                + (": torch.cuda.is_available() will be False" if verdict == "major" else ""),
                driver_advice(cuda, driver_max, driver),
                fixes=["torch-cuda"], facts={"torch_cuda": text(cuda), "driver_max": text(driver_max)}))
    elif not machine_gpus and (context.all_facts.get("nvidia-driver") or {}).get("nvml") == "library-not-found":
        findings.append(Finding(
            "torch.cuda-without-gpu", "info",
            f"torch {version} is a CUDA build but there is no NVIDIA driver: it will run on the CPU",
            "Harmless, but the CUDA build is several GB larger than the CPU one."))
    arch_list = facts.get("arch_list")
    for gpu in machine_gpus:
        capability = gpu.get("compute_capability")
        if arch_list and capability and not _supported(capability, arch_list):
            findings.append(Finding(
                "torch.arch-missing", "error",
                f"torch {version} ships no kernels for {gpu['name']} (sm_{capability.replace('.', '')})",
                f"The build targets {', '.join(arch_list)}; CUDA calls fail with 'no kernel image is "
                "available for execution on the device'. Install a newer build (cu128+ for Blackwell).",
                fixes=["torch-cuda"], facts={"arch_list": arch_list, "capability": capability}))
    return findings


def _supported(capability: str, arch_list: list) -> bool:
    major, minor = (int(x) for x in capability.split("."))
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", arch)
        if not match:
            continue
        kind, arch_major, arch_minor = match.group(1), int(match.group(2)), int(match.group(3))
        if (arch_major, arch_minor) == (major, minor):
            return True
        if arch_major == major and arch_minor <= minor and kind == "sm":
            return True  # binary compatible within a major
        if kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return True  # PTX is JIT-compiled for newer GPUs
    return False


# ----------------------------------------------------------------------------- smoke test

MATMUL = r"""
import json, sys, time
try:
    import torch
except Exception as exc:
    print(json.dumps({"status": "skipped", "message": "torch is not importable: %s" % exc})); sys.exit()
if torch.version.cuda is None:
    print(json.dumps({"status": "skipped", "message": "torch %s is a CPU-only build" % torch.__version__})); sys.exit()
if not torch.cuda.is_available():
    print(json.dumps({"status": "fail" if int(sys.argv[1]) else "skipped",
                      "message": "torch %s (CUDA %s) sees no GPU" % (torch.__version__, torch.version.cuda)}))
    sys.exit()
torch.manual_seed(0)
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
expected = a @ b
device = torch.device("cuda")
ga, gb = a.to(device), b.to(device)
torch.cuda.synchronize(); start = time.perf_counter()
result = ga @ gb
torch.cuda.synchronize(); elapsed = time.perf_counter() - start
error = (result.cpu() - expected).abs().max().item()
ok = torch.allclose(result.cpu(), expected, rtol=1e-3, atol=1e-2)
print(json.dumps({"status": "pass" if ok else "fail",
                  "message": "%s: 1024x1024 matmul %s the CPU (max error %.2e) in %.1f ms" % (
                      torch.cuda.get_device_name(0), "matches" if ok else "DIFFERS FROM", error, elapsed * 1000),
                  "figures": {"device": torch.cuda.get_device_name(0), "max_error": error,
                              "ms": round(elapsed * 1000, 2), "arch_list": torch.cuda.get_arch_list(),
                              "torch": torch.__version__, "cuda": torch.version.cuda}}))
"""


def smoke_torch_cuda(options: dict) -> dict:
    import sys

    from llmdoctor.checks.nvidia_driver import local_capability
    from llmdoctor.smoke import run_in_target

    python = options.get("python") or sys.executable
    has_gpu = 1 if local_capability() else 0
    return run_in_target(python, ["-c", MATMUL, str(has_gpu)], float(options.get("timeout", 120)), "torch")


PYTORCH_INSTALL = "https://pytorch.org/get-started/locally/"
CUDA_COMPAT = "https://docs.nvidia.com/deploy/cuda-compatibility/"

FINDINGS = (
    FindingKind("torch.version", "ok", "torch's version and the CUDA it was built for",
                references=(PYTORCH_INSTALL,)),
    FindingKind("torch.cpu", "ok", "torch is a CPU build on a machine without an NVIDIA GPU",
                references=(PYTORCH_INSTALL,)),
    FindingKind("torch.rocm", "ok", "torch is a ROCm (AMD) build",
                references=("https://pytorch.org/docs/stable/notes/hip.html",)),
    FindingKind(
        "torch.target-unreadable", "warning", "the target interpreter could not be inspected",
        why="Its packages are unknown, so torch is not judged; the message says why (it does not run, timed out).",
        fix="Point --python at a working interpreter of the environment that runs your models.",
    ),
    FindingKind(
        "torch.not-installed", "info", "torch is not installed in the target interpreter",
        why="llmdoctor judges the environment --python names (by default the active venv or conda env).",
        fix="Use --python to point llmdoctor at the environment that runs your models.",
    ),
    FindingKind(
        "torch.cpu-only", "error", "torch is a CPU-only build on a machine with an NVIDIA GPU",
        why="A plain 'pip install torch' gives the CPU build on Windows (and from some mirrors); models then "
            "run on the CPU, many times slower, and bitsandbytes has no GPU.",
        fix="Reinstall torch from download.pytorch.org/whl/cuXYZ for the driver's CUDA.", fixes=("torch-cuda",),
        references=(PYTORCH_INSTALL,),
    ),
    FindingKind(
        "torch.no-gpu-access", "error", "torch cannot use the GPU while the driver does not answer",
        why="torch.cuda.is_available() will be False and models fall back to the CPU; the root is the driver.",
        fix="Repair the driver (see nvidia-driver.nvml-error).",
        references=("https://pytorch.org/docs/stable/generated/torch.cuda.is_available.html",),
    ),
    FindingKind(
        "torch.newer-than-driver", "error", "torch is built for a newer CUDA than the driver supports",
        severities=("warning", "error"),
        why="A newer CUDA major makes torch.cuda.is_available() False; a newer minor runs only through "
            "minor-version compatibility.",
        fix="Update the driver, or install the torch build for the driver's CUDA.", fixes=("torch-cuda",),
        references=(CUDA_COMPAT, "https://pytorch.org/get-started/previous-versions/"),
    ),
    FindingKind(
        "torch.cuda-without-gpu", "info", "torch is a CUDA build but there is no NVIDIA driver",
        why="Harmless: it runs on the CPU; the CUDA build is several GB larger than the CPU one.",
        references=(PYTORCH_INSTALL,),
    ),
    FindingKind(
        "torch.arch-missing", "error", "this torch build ships no kernels for the GPU's architecture",
        why="CUDA calls fail with 'no kernel image is available for execution on the device' (new cards such "
            "as Blackwell need cu128 builds or later).",
        fix="Install a newer torch build whose arch list includes the GPU.", fixes=("torch-cuda",),
        references=("https://pytorch.org/docs/stable/generated/torch.cuda.get_arch_list.html", PYTORCH_INSTALL),
    ),
)


CHECK = Check(
    id="torch",
    title="PyTorch",
    probe=probe,
    rules=rules,
    order=60,
    timeout=10.0,
    smoke=(SmokeTest("torch-cuda", "A matrix product on the GPU agrees with the CPU",
                     "llmdoctor.checks.torch:smoke_torch_cuda", timeout=180.0),),
    requires=("nvidia-driver",),
    findings=FINDINGS,
)
