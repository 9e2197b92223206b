"""The `model-fit` check: for each model named with ``check --model`` or under
``[[models]]`` in the configuration, will it fit on this machine, and how fast will it run?

The probe reads the model's headers (local GGUF or folder, a Hub reference through
HF_ENDPOINT with Range requests, or only its name) and the memory the machine has free;
the rules run the memory and speed model of ``llmdoctor.fit`` and say, per model, the
best placement, with the download room on the Hugging Face cache's disk.
"""

from __future__ import annotations

from llmdoctor.knowledge.units import GiB
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext


def machine_memory() -> dict:
    """Free memory per GPU (NVML) and available system RAM: what fit compares with."""
    facts: dict = {"gpus": []}
    try:
        from llmdoctor.checks.nvidia_driver import nvml_library_missing, probe_nvml

        if not nvml_library_missing():
            import pynvml

            facts["gpus"] = probe_nvml(pynvml).get("gpus", [])
    except Exception:  # noqa: BLE001 - no NVML: no GPU to place layers on
        pass
    facts["ram_available"] = _ram_available()
    facts["cpu_kind"] = cpu_kind()
    return facts


def cpu_kind() -> str:
    """Which of llama.cpp's CPU repacking kernels this processor gets (``fit.REPACKED_TYPES``):
    from the instruction-set flags Linux lists; other systems by their architecture."""
    import platform

    machine = platform.machine().lower()
    flags: set = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[-1].split())
                    break
    except OSError:
        pass
    if machine in ("x86_64", "amd64", "i686", "x86"):
        if flags:
            return "avx512" if "avx512f" in flags and "avx2" in flags else "avx2" if "avx2" in flags else "none"
        return "avx2"  # no flags to read (Windows, macOS): nearly every x86 CPU of the last decade
    if machine in ("aarch64", "arm64"):
        if flags:
            return "neon-i8mm" if "i8mm" in flags else "neon-dotprod" if "asimddp" in flags else "none"
        return "neon-dotprod"  # Apple silicon and other ARMv8.2+ machines without /proc/cpuinfo
    return "none"


def _ram_available() -> int:
    try:  # Linux says it directly; psutil costs ~50 ms to import
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001
        return 0


def describe_models(names: list, offline: bool, timeout: float, allow_estimate: bool = False) -> list:
    """Each model's spec, or why not; ``unreachable`` marks a Hub that did not answer. With
    ``allow_estimate`` an unreachable Hub falls back to the estimate from the name."""
    from llmdoctor.fit import FitError
    from llmdoctor.model_sources import HubUnreachable, from_name, hub_endpoint, resolve

    described = []
    for name in names:
        try:
            spec = resolve(name, hub_endpoint(), timeout, offline=offline)
            described.append({"model": name, "spec": spec.to_json()})
        except HubUnreachable as exc:
            try:
                if not allow_estimate:
                    raise FitError("no estimate asked for")
                spec = from_name(name.split("/")[-1])
                described.append({"model": name, "spec": spec.to_json(), "fallback": str(exc)})
            except FitError:
                described.append({"model": name, "error": str(exc), "unreachable": True})
        except (FitError, OSError) as exc:
            described.append({"model": name, "error": str(exc)})
    return described


def probe(context: ProbeContext) -> dict:
    names = list(context.options.get("models") or [])
    if context.config is not None:
        names += [m.name for m in context.config.models if m.name not in names]
    if not names:  # nothing to judge (the disk check reads this list): no NVML, no model reader
        return {"models": []}
    timeout = float(context.config.threshold("network_timeout_s")) if context.config else 3.0
    return {"models": describe_models(names, context.offline, timeout), **machine_memory()}


def spec_from_json(data: dict):
    from llmdoctor.fit import ModelSpec

    fields = {k: v for k, v in data.items() if k in ModelSpec.__dataclass_fields__}
    return ModelSpec(**fields)


def verdict_line(report) -> tuple:
    """(severity, message) for the best placement in a FitReport."""
    spec = report.model
    label = f"{spec.name} ({spec.quantization or spec.arch}, {report.weights / GiB:.1f} GiB" + \
        (", a rough estimate from the name)" if spec.estimate else ")")
    gpus = [d for d in report.devices if d["kind"] == "gpu"]
    ram = next(d for d in report.devices if d["kind"] == "cpu")

    def speed(device) -> str:
        s = device.get("speed")
        from llmdoctor.render.fit import speed_range

        return f"; {speed_range(s)}" if s else ""

    used = [d for d in gpus if d.get("layers_here")]
    names = " + ".join(d["device"] for d in used)
    if gpus and gpus[0]["verdict"] == "fits":
        return "ok", f"{label} fits on {names} at {report.ctx:,} tokens{speed(gpus[0])}"
    if gpus and gpus[0]["verdict"] == "partial":
        first = gpus[0]
        return "warning", (f"{label} fits only partly on {names}: --n-gpu-layers {first['n_gpu_layers']} "
                           f"of {first['total_layers']}{speed(first)}")
    if ram["verdict"] == "fits":
        where = "no GPU can hold any of it" if gpus else "no NVIDIA GPU"
        return ("info" if not gpus else "warning"), f"{label} runs on the CPU only ({where}){speed(ram)}"
    need = ram["need"]["need"] / GiB
    return "error", (f"{label} does not fit: it needs about {need:.1f} GiB; "
                     f"{ram['free_bytes'] / GiB:.1f} GiB of RAM is available"
                     + (f", {max(d['free_bytes'] for d in gpus) / GiB:.1f} GiB on the largest GPU" if gpus else ""))


def rules(facts: dict, context: RuleContext) -> list:
    from llmdoctor.fit import fit

    findings: list = []
    ram_bandwidth = float(context.config.threshold("ram_bandwidth_gb_s")) if context.config else 50.0
    for entry in facts.get("models", []):
        if "error" in entry:
            findings.append(Finding("model-fit.unreadable", "error", f"{entry['model']}: {entry['error']}"))
            continue
        spec = spec_from_json(entry["spec"])
        report = fit(spec, facts.get("gpus", []), int(facts.get("ram_available") or 0), ram_bandwidth=ram_bandwidth,
                     cpu_kind=str(facts.get("cpu_kind") or "avx2"))
        severity, message = verdict_line(report)
        findings.append(Finding("model-fit.verdict", severity, message,
                                "\n".join(f"{d['device']}: {d['verdict']}, needs {d['need']['need'] / GiB:.1f} GiB "
                                          f"of {d['free_bytes'] / GiB:.1f} GiB free" for d in report.devices)
                                + "\nDetails: llmdoctor fit " + entry["model"],
                                facts={"model": entry["model"], "devices": [d["verdict"] for d in report.devices]}))
    return findings


def models_requested(config, options: dict) -> bool:
    return bool(options.get("models")) or bool(config is not None and config.models)


def migrate(facts: dict, version: int):
    """Version 1 facts (before llmdoctor modelled llama.cpp's compute graph) have no
    feed-forward width: assume the usual 3.5 x the embedding width (Llama 3, Qwen2.5), and
    say the figure is assumed. The CPU kind defaults to AVX2 (``fit``'s default)."""
    if version != 1:
        return None
    for entry in facts.get("models") or []:
        spec = entry.get("spec") if isinstance(entry, dict) else None
        if isinstance(spec, dict) and not spec.get("n_ff") and isinstance(spec.get("n_embd"), int):
            spec["n_ff"] = int(spec["n_embd"] * 3.5)
            spec["name"] = f"{spec.get('name', '?')} (feed-forward width assumed: an older snapshot)"
    return facts


FINDINGS = (
    FindingKind(
        "model-fit.verdict", "ok", "whether a configured model fits this machine's GPUs or memory",
        severities=("ok", "info", "warning", "error"),
        why="Weights, KV cache and compute buffers are computed as llama.cpp allocates them; a model that "
            "does not fit fails to load or spills to the CPU, many times slower.",
        fix="A smaller quantisation, a shorter context, or fewer layers on the GPU; 'llmdoctor fit MODEL' "
            "shows the figures.",
        references=("https://github.com/ggml-org/llama.cpp/tree/master/tools/fit-params",
                    "https://github.com/ggml-org/ggml/blob/master/docs/gguf.md"),
    ),
    FindingKind(
        "model-fit.unreadable", "error", "a configured model could not be read or resolved",
        why="A corrupt or truncated GGUF file, an unknown name, or an unreachable Hub.",
        fix="Check the reference with 'llmdoctor fit'.",
        references=("https://github.com/ggml-org/ggml/blob/master/docs/gguf.md",),
    ),
)


CHECK = Check(
    id="model-fit",
    title="Models: fit and speed",
    probe=probe,
    rules=rules,
    facts_version=2,  # 2: specs carry the feed-forward width, fused tensors and repackable bytes
    migrate=migrate,
    order=90,
    timeout=30.0,
    findings=FINDINGS,
)
