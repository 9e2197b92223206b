"""The `torch-cuda` fix: reinstall torch (and torchvision/torchaudio, if present) as the
CUDA build the driver supports, in the target interpreter.

The plan is one exact ``pip install torch==X.Y.Z+cuXYZ ... --index-url
https://download.pytorch.org/whl/cuXYZ``; the same base versions are kept, only the
build changes. The versions it replaces are journaled with the index they came from, so
``llmdoctor undo`` reinstalls them. Verified by the `torch` check and the `torch-cuda`
smoke test (a matmul on the GPU).
"""

from __future__ import annotations

import re
from typing import Optional

from llmdoctor.actions import PipInstall
from llmdoctor.knowledge.cuda import driver_max_cuda, gpus, parse_version, text
from llmdoctor.models import Fix, FixContext, Plan

INDEX = "https://download.pytorch.org/whl/{tag}"
# CUDA builds PyTorch publishes per release (from pytorch.org's install and previous-versions
# pages; the newest rows are the least certain). Unknown releases use the last row.
CUDA_BUILDS = {
    (2, 0): ["cu117", "cu118"], (2, 1): ["cu118", "cu121"], (2, 2): ["cu118", "cu121"],
    (2, 3): ["cu118", "cu121"], (2, 4): ["cu118", "cu121", "cu124"], (2, 5): ["cu118", "cu121", "cu124"],
    (2, 6): ["cu118", "cu124", "cu126"], (2, 7): ["cu118", "cu126", "cu128"],
    (2, 8): ["cu126", "cu128", "cu129"], (2, 9): ["cu126", "cu128", "cu130"],
}


def builds_for(version: str) -> list:
    match = re.match(r"(\d+)\.(\d+)", version or "")
    key = (int(match.group(1)), int(match.group(2))) if match else None
    return CUDA_BUILDS.get(key) or CUDA_BUILDS[max(CUDA_BUILDS)]


def best_build(version: str, driver_max: tuple) -> Optional[str]:
    """The newest CUDA build of this torch release that the driver runs fully."""
    fitting = [tag for tag in builds_for(version) if parse_version(tag) <= driver_max]
    return max(fitting, key=parse_version) if fitting else None


def _base(version: str) -> str:
    return version.split("+", 1)[0]


def _index_of(version: str) -> Optional[str]:
    local = version.split("+", 1)[1] if "+" in version else ""
    return INDEX.format(tag=local) if re.fullmatch(r"cpu|cu\d+|rocm[\d.]+", local) else None


def _required_cuda(context: FixContext) -> Optional[str]:
    require = context.options.get("require") or getattr(context.config, "require", None) or {}
    return require.get("torch-cuda")


def _plan_required(torch: dict, wanted: str, context: FixContext, result: Plan) -> Plan:
    """The build a team's requirements name (``torch-cuda = "12.4"``, ``"12.*"`` or ``"cpu"``)."""
    from llmdoctor.checks.require import cuda_matches

    version = torch.get("version", "")
    current = torch.get("cuda") or "cpu"
    if cuda_matches(current, wanted):
        return result
    driver_max = driver_max_cuda(context.facts)
    if wanted == "cpu":
        tags = ["cpu"]
    else:
        tags = [t for t in builds_for(version) if cuda_matches(".".join(str(p) for p in parse_version(t)), wanted)]
        runnable = [t for t in tags if not driver_max or parse_version(t) <= driver_max]
        tags = sorted(runnable or tags, key=parse_version)
    if not tags:
        result.manual_steps.append(f"torch {_base(version)} has no CUDA {wanted} build (its builds: "
                                   f"{', '.join(builds_for(version))}): require another torch release")
        return result
    tag = tags[-1]
    python = torch.get("python") or context.python
    requirements = [f"torch=={_base(version)}+{tag}"]
    requirements += [f"{name}=={_base(v)}+{tag}" for name, v in sorted((torch.get("companions") or {}).items())]
    result.actions.append(PipInstall(python, tuple(requirements), index_url=INDEX.format(tag=tag),
                                     restore_index_url=_index_of(version)))
    result.notes.append(f"torch {version} -> {_base(version)}+{tag}: the requirements ask for "
                        f"{'CUDA ' + wanted if wanted != 'cpu' else 'the CPU build'}.")
    return result


def plan(context: FixContext) -> Plan:
    torch = context.facts.get("torch") or {}
    result = Plan("torch-cuda", "reinstall torch as the CUDA build the driver supports")
    if not torch.get("installed"):
        result.manual_steps.append("torch is not installed in the target interpreter (--python)")
        return result
    wanted = _required_cuda(context)
    if wanted:
        return _plan_required(torch, wanted, context, result)
    driver_max = driver_max_cuda(context.facts)
    if not gpus(context.facts) or not driver_max:
        return result  # no NVIDIA GPU: whatever build is installed runs on the CPU, nothing to do
    version = torch.get("version", "")
    current = parse_version(torch.get("cuda"))
    if current and current <= driver_max:
        return result  # already a build the driver runs
    tag = best_build(version, driver_max)
    if tag is None:
        oldest = min(builds_for(version), key=parse_version)
        result.manual_steps.append(
            f"torch {_base(version)} has no build the driver runs (driver supports CUDA up to "
            f"{text(driver_max)}, the oldest build is {oldest}): update the NVIDIA driver, or install an "
            "older torch release")
        return result
    python = torch.get("python") or context.python
    requirements = [f"torch=={_base(version)}+{tag}"]
    requirements += [f"{name}=={_base(v)}+{tag}" for name, v in sorted((torch.get("companions") or {}).items())]
    result.actions.append(PipInstall(python, tuple(requirements), index_url=INDEX.format(tag=tag),
                                     restore_index_url=_index_of(version)))
    result.notes.append(
        f"torch {version} -> {_base(version)}+{tag}: the driver supports CUDA up to {text(driver_max)}; "
        f"{tag} is the newest build of torch {_base(version)} it runs. A CUDA build downloads about 2-3 GB.")
    return result


FIX = Fix(
    id="torch-cuda",
    title="Reinstall torch as the CUDA build the driver supports",
    checks=("nvidia-driver", "torch"),
    plan=plan,
    applicability="safe",
    scope="user",  # pip installs into the target interpreter's environment
    undoable=True,
    smoke=("torch-cuda",),
)
