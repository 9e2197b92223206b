"""The `require` check: does this machine meet a team's requirements (``--require FILE`` or
``[require]`` in the configuration; see ``llmdoctor.requirements`` for the keys)?

Each unmet requirement is an error finding ``require.<key>`` with the measured and the
required value, linked with ``caused_by`` to the finding of the check that explains it (the
ffmpeg on PATH naming its binary, a CPU-only torch, an unreachable mirror), and with the fix
that meets it where one exists: ``require-packages`` installs versions in range,
``torch-cuda`` the CUDA build asked for, ``hf-endpoint`` the named mirror, ``ffmpeg`` an
ffmpeg. What no fix can meet (a GPU too small, a driver that needs a reboot, too little disk)
says so.
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

from llmdoctor.knowledge.hf import DEFAULT_ENDPOINT, effective_endpoint
from llmdoctor.knowledge.units import GB
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext


def requirements_of(options: dict, config) -> Optional[dict]:
    """The requirements in force: ``--require FILE`` (in the options), else the configuration's."""
    if options.get("require") is not None:
        return options["require"]
    return getattr(config, "require", None) or None


def _free_bytes(path: str) -> dict:
    folder = os.path.expanduser(path)
    while folder and not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError as exc:
        return {"path": path, "error": exc.strerror or str(exc)}
    return {"path": path, "measured_at": folder, "free_bytes": usage.free}


def probe(context: ProbeContext) -> dict:
    """The target's Python and packages (always: a snapshot can be judged against requirements
    later), and what only a probe can measure for the requirements in force."""
    require = requirements_of(context.options, context.config)
    target = context.target()
    facts: dict = {"require": require,
                   "python": {"executable": target.get("executable") or context.python,
                              "version": target.get("version"), "packages": dict(target.get("packages") or {}),
                              "error": target.get("error")}}
    if not require:
        return facts
    facts["disk"] = [_free_bytes(location) for location in require.get("disk", {}) if location != "hf-cache"]
    if require.get("models"):
        from llmdoctor.checks.model_fit import describe_models

        timeout = float(context.config.threshold("network_timeout_s")) if context.config else 3.0
        facts["models"] = describe_models([m["name"] for m in require["models"]], context.offline, timeout)
    return facts


# ----------------------------------------------------------------------------- rules


def _spec(text: str):
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(text)


def _in(version: Optional[str], spec: str) -> bool:
    from packaging.version import InvalidVersion, Version

    if not version:
        return False
    try:
        return Version(version.split("+", 1)[0]) in _spec(spec)
    except InvalidVersion:
        return False


def _unmet(key: str, message: str, details: str, *, fixes: tuple = (), caused_by: Optional[str] = None,
           **facts) -> Finding:
    return Finding(f"require.{key}", "error", message, details, fixes=list(fixes), caused_by=caused_by,
                   facts={k.replace("_", "-"): v for k, v in facts.items()})


def _findings_of(check_id: str, context: RuleContext) -> list:
    """Another check's findings on the same facts (its rules are pure): what explains a gap."""
    from llmdoctor.checks import ffmpeg, hf_endpoint, torch
    from llmdoctor.runner import run_rules

    check = {"ffmpeg": ffmpeg.CHECK, "hf-endpoint": hf_endpoint.CHECK, "torch": torch.CHECK}[check_id]
    facts = context.all_facts.get(check_id)
    return run_rules(check, facts, context) if isinstance(facts, dict) else []


def _root(check_id: str, context: RuleContext, ids: tuple) -> Optional[str]:
    found = {f.id for f in _findings_of(check_id, context) if f.severity in ("warning", "error")}
    return next((i for i in ids if i in found), None)


def rules(facts: dict, context: RuleContext) -> list:
    require = facts.get("require") or getattr(context.config, "require", None)
    if not require:
        return []
    findings: list = []
    checks = [_python, _packages, _torch_cuda, _driver, _gpus, _nvcc, _ffmpeg, _hf, _disk, _models]
    for judge in checks:
        findings += judge(require, facts, context)
    met = sum(1 for key in require if key not in {f.id.split(".", 1)[1] for f in findings})
    if not findings:
        findings.append(Finding("require.met", "ok", f"all {len(require)} kinds of requirement are met"))
    elif met:
        findings.append(Finding("require.partly-met", "info", f"{met} of {len(require)} kinds of requirement are met"))
    return findings


def _python(require: dict, facts: dict, context: RuleContext) -> list:
    if "python" not in require:
        return []
    version = (facts.get("python") or {}).get("version")
    if _in(version, require["python"]):
        return []
    return [_unmet("python", f"the target Python is {version or 'unknown'}, the requirement is {require['python']}",
                   "Create the environment with a Python in range (python -m venv, conda create python=X.Y).",
                   measured=version, required=require["python"])]


def _packages(require: dict, facts: dict, context: RuleContext) -> list:
    findings = []
    installed = {k.lower(): v for k, v in ((facts.get("python") or {}).get("packages") or {}).items()}
    for name, spec in require.get("packages", {}).items():
        version = installed.get(name.lower().replace("_", "-"))
        if version and _in(version, spec):
            continue
        findings.append(_unmet(
            "packages", f"{name} {version or 'is not installed'}{'' if not version else ' is installed'}; the "
            f"requirement is {name}{spec or ' (any version)'}",
            "'llmdoctor fix --require-packages' installs a version in range into the target interpreter.",
            fixes=("require-packages",), package=name, measured=version, required=spec))
    return findings


def _torch_cuda(require: dict, facts: dict, context: RuleContext) -> list:
    wanted = require.get("torch-cuda")
    if not wanted:
        return []
    torch = context.all_facts.get("torch") or {}
    current = torch.get("cuda") or ("cpu" if torch.get("installed") else None)
    if current and cuda_matches(current, wanted):
        return []
    shown = f"CUDA {current}" if current and current != "cpu" else (current or "absent")
    return [_unmet("torch-cuda", f"torch's build is {shown}, "
                   f"the requirement is {'CUDA ' + wanted if wanted != 'cpu' else 'the CPU build'}",
                   "'llmdoctor fix --torch-cuda' installs the build asked for.",
                   fixes=("torch-cuda",) if torch.get("installed") else (
                       ("require-packages",) if "torch" in require.get("packages", {}) else ()),
                   caused_by=_root("torch", context, ("torch.cpu-only", "torch.newer-than-driver")),
                   measured=current, required=wanted)]


def cuda_matches(current: str, wanted: str) -> bool:
    """``12.4`` against ``12.4``, ``12.*`` or ``12``; ``cpu`` against ``cpu``."""
    if wanted == "cpu" or current == "cpu":
        return wanted == current
    have = current.split(".")
    want = wanted.split(".")
    return all(w in ("*", h) for w, h in zip(want, have)) and len(have) >= len([w for w in want if w != "*"])


def _driver(require: dict, facts: dict, context: RuleContext) -> list:
    if "driver" not in require:
        return []
    driver = (context.all_facts.get("nvidia-driver") or {}).get("driver_version")
    if driver and _in(".".join(driver.split(".")[:2]), require["driver"]):
        return []
    return [_unmet("driver", f"the NVIDIA driver is {driver or 'absent'}, the requirement is {require['driver']}",
                   "No fix here: install the driver from NVIDIA or your distribution; it needs a reboot.",
                   measured=driver, required=require["driver"])]


def _gpus(require: dict, facts: dict, context: RuleContext) -> list:
    wanted = require.get("gpus")
    if not wanted:
        return []
    gpus = (context.all_facts.get("nvidia-driver") or {}).get("gpus") or []
    problems = []
    if len(gpus) < wanted.get("count", 0):
        problems.append(f"{len(gpus)} NVIDIA GPU{'s' if len(gpus) != 1 else ''}, {wanted['count']} required")
    if "memory_gb" in wanted:
        small = [g for g in gpus if (g.get("memory_total_bytes") or 0) / 2**30 < wanted["memory_gb"] - 0.5]
        problems += [f"GPU {g.get('index')} ({g.get('name')}) has {(g.get('memory_total_bytes') or 0) / 2**30:.0f} "
                     f"GiB, {wanted['memory_gb']:g} required" for g in small]
    if "compute_capability" in wanted:
        need = tuple(int(p) for p in wanted["compute_capability"].split("."))
        old = [g for g in gpus if tuple(int(p) for p in str(g.get("compute_capability") or "0.0").split(".")) < need]
        problems += [f"GPU {g.get('index')} ({g.get('name')}) has compute capability {g.get('compute_capability')}, "
                     f"{wanted['compute_capability']} required" for g in old]
    if not problems:
        return []
    return [_unmet("gpus", "; ".join(problems), "No fix here: the machine needs other GPUs.",
                   measured=[{k: g.get(k) for k in ("name", "memory_total_bytes", "compute_capability")} for g in gpus],
                   required=wanted)]


def _nvcc(require: dict, facts: dict, context: RuleContext) -> list:
    if "nvcc" not in require:
        return []
    version = (context.all_facts.get("nvcc") or {}).get("version")
    if _in(version, require["nvcc"]):
        return []
    return [_unmet("nvcc", f"nvcc is {version or 'not on PATH'}, the requirement is {require['nvcc']}",
                   "Install a CUDA toolkit in range (NVIDIA's installer, conda install -c nvidia cuda-nvcc, or pip "
                   "install nvidia-cuda-nvcc-cuXX) and put its bin on PATH ('llmdoctor fix --cuda-home').",
                   fixes=("cuda-home",) if version else (), measured=version, required=require["nvcc"])]


def _ffmpeg(require: dict, facts: dict, context: RuleContext) -> list:
    wanted = require.get("ffmpeg")
    if wanted is None:
        return []
    ffmpeg = context.all_facts.get("ffmpeg") or {}
    present = set((ffmpeg.get("encoders") or {}).get("present") or [])
    missing = [e for e in wanted.get("encoders", []) if e not in present]
    if ffmpeg.get("on_path") and not missing:
        return []
    what = f"ffmpeg has no {', '.join(missing)} encoder" if ffmpeg.get("on_path") else "ffmpeg is not on PATH"
    root = _root("ffmpeg", context, ("ffmpeg.path-names-the-exe", "ffmpeg.not-on-path", "ffmpeg.missing",
                                     "ffmpeg.missing-encoder", "ffmpeg.does-not-run"))
    fixes = ("path",) if root == "ffmpeg.path-names-the-exe" else ("ffmpeg",)
    encoders = ", ".join(wanted.get("encoders", [])) or "any encoders"
    return [_unmet("ffmpeg", f"{what}; the requirement is ffmpeg with {encoders}",
                   "'llmdoctor fix --ffmpeg' makes one available.", fixes=fixes, caused_by=root,
                   measured=sorted(present), required=wanted)]


def _hf(require: dict, facts: dict, context: RuleContext) -> list:
    findings = []
    hf = context.all_facts.get("hf-endpoint") or {}
    endpoint = (hf.get("endpoint") or "").rstrip("/")
    wanted = require.get("hf-endpoint")
    if wanted:
        official = effective_endpoint(hf.get("official_endpoint"))
        target = official if wanted == "official" else wanted
        officials = {official, DEFAULT_ENDPOINT, ""}
        if (endpoint not in officials) if wanted == "official" else (endpoint != target):
            findings.append(_unmet(
                "hf-endpoint", f"downloads go to {endpoint or official}, the requirement is {target}",
                f"'llmdoctor fix --hf-endpoint --require FILE' verifies {target} and saves it for new terminals.",
                fixes=("hf-endpoint",) if wanted != "official" else (), measured=endpoint, required=target))
    if require.get("hf-reachable") and not hf.get("offline"):
        root = next((f for f in _findings_of("hf-endpoint", context) if f.severity == "error"), None)
        if root is not None:
            findings.append(_unmet("hf-reachable", f"the Hugging Face endpoint is not usable: {root.message}",
                                   root.details, fixes=tuple(root.fixes), caused_by=root.id,
                                   measured=endpoint, required=True))
    return findings


def _disk(require: dict, facts: dict, context: RuleContext) -> list:
    findings = []
    measured = {d["path"]: d for d in facts.get("disk") or []}
    locations = (context.all_facts.get("disk") or {}).get("locations") or []
    cache = next((d for d in locations if d.get("role") == "hf_cache"), None)
    for location, gigabytes in require.get("disk", {}).items():
        entry = cache if location == "hf-cache" else measured.get(location)
        free = (entry or {}).get("free_bytes")
        if free is not None and free >= gigabytes * GB:
            continue
        where = (entry or {}).get("path") or location
        findings.append(_unmet(
            "disk", f"{where} has {free / GB:.1f} GB free, the requirement is {gigabytes:g} GB"
            if free is not None else f"{where}: free space unknown ({(entry or {}).get('error', 'not measured')})",
            "No fix here: free space, or point the location elsewhere (HF_HOME for the Hugging Face cache).",
            location=location, measured=free, required=gigabytes * GB))
    return findings


def _models(require: dict, facts: dict, context: RuleContext) -> list:
    from llmdoctor.checks.model_fit import spec_from_json
    from llmdoctor.fit import FitError, fit

    findings = []
    driver = context.all_facts.get("nvidia-driver") or {}
    gpus = driver.get("gpus") or []
    ram = (context.all_facts.get("model-fit") or {}).get("ram_available") or 0
    described = {d.get("model"): d for d in facts.get("models") or [] if isinstance(d, dict)}
    for wanted in require.get("models", []):
        entry = described.get(wanted["name"]) or {}
        if "error" in entry or "spec" not in entry:
            findings.append(_unmet("models", f"{wanted['name']}: {entry.get('error', 'could not be read')}",
                                   "Check the reference with 'llmdoctor fit'.", model=wanted["name"]))
            continue
        try:
            report = fit(spec_from_json(entry["spec"]), gpus, int(ram), ctx=wanted["ctx"])
        except FitError as exc:
            findings.append(_unmet("models", f"{wanted['name']}: {exc}", "", model=wanted["name"]))
            continue
        on_gpu = [d for d in report.devices if d["kind"] == "gpu" and d["verdict"] == "fits"]
        anywhere = on_gpu or [d for d in report.devices if d["verdict"] in ("fits", "partial")]
        if not (on_gpu if wanted["on"] == "gpu" else anywhere):
            need = max((d["need"]["need"] for d in report.devices if d["kind"] == "gpu"), default=0)
            findings.append(_unmet(
                "models", f"{wanted['name']} does not fit {'on one GPU' if wanted['on'] == 'gpu' else 'here'} at "
                f"{wanted['ctx']:,} tokens" + (f" (needs {need / 2**30:.1f} GiB)" if need else " (no NVIDIA GPU)"),
                "No fix here: a larger GPU, a smaller quantisation, or a shorter context.",
                model=wanted["name"], ctx=wanted["ctx"]))
        size = entry["spec"].get("weight_bytes") or 0
        cache = next((d for d in (context.all_facts.get("disk") or {}).get("locations") or []
                      if d.get("role") == "hf_cache"), None)
        if cache and size and cache.get("free_bytes", 0) < size:
            findings.append(_unmet("models", f"{wanted['name']}: {size / GB:.1f} GB to download, "
                                   f"{cache['free_bytes'] / GB:.1f} GB free in the Hugging Face cache",
                                   "No fix here: free space or move HF_HOME.", model=wanted["name"]))
    return findings


def _requirement(key: str, summary: str, fix: str, fixes: tuple = ()) -> FindingKind:
    """A requirement of the team's (``[require]`` or ``--require FILE``) this machine does not meet."""
    return FindingKind(f"require.{key}", "error", summary, fix=fix, fixes=fixes,
                       why="The team's requirements say what every machine needs; onboarding stops here.")


FINDINGS = (
    FindingKind("require.met", "ok", "every requirement of the team is met"),
    FindingKind("require.partly-met", "info", "how many kinds of requirement are met"),
    _requirement("python", "the target Python is outside the required range",
                 "Create the environment with a Python in range."),
    _requirement("packages", "a required package is missing or outside its range",
                 "Install a version in range into the target interpreter.", ("require-packages",)),
    _requirement("torch-cuda", "torch's build is not the required CUDA (or CPU) build",
                 "Install the build asked for.", ("torch-cuda", "require-packages")),
    _requirement("driver", "the NVIDIA driver is absent or outside the required range",
                 "Install the driver from NVIDIA or your distribution (a reboot follows)."),
    _requirement("gpus", "the GPUs are fewer, smaller or older than required", "The machine needs other GPUs."),
    _requirement("nvcc", "nvcc is missing or outside the required range",
                 "Install a CUDA toolkit in range and put its bin on PATH.", ("cuda-home",)),
    _requirement("ffmpeg", "ffmpeg is missing or lacks a required encoder", "Make a full ffmpeg available.",
                 ("ffmpeg", "path")),
    _requirement("hf-endpoint", "downloads do not go to the required Hugging Face endpoint",
                 "Verify and save the required endpoint.", ("hf-endpoint",)),
    _requirement("hf-reachable", "the Hugging Face endpoint is not usable",
                 "See the hf-endpoint finding it stems from.", ("hf-endpoint",)),
    _requirement("disk", "a location has less free space than required",
                 "Free space, or point the location elsewhere (HF_HOME for the Hugging Face cache)."),
    _requirement("models", "a required model does not fit, or cannot be read",
                 "A larger GPU, a smaller quantisation or a shorter context; free space for the download."),
)


CHECK = Check(
    id="require",
    title="Team requirements",
    probe=probe,
    rules=rules,
    order=95,
    timeout=30.0,
    requires=("torch", "nvidia-driver", "nvcc", "ffmpeg", "hf-endpoint", "disk", "model-fit"),
    findings=FINDINGS,
)
