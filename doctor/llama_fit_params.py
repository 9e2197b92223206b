"""``fit --engine llama.cpp``: ask an installed llama.cpp for its own projection.

llama.cpp's ``llama-fit-params`` (tools/fit-params, https://github.com/ggml-org/llama.cpp/tree/master/tools/fit-params)
loads only the model's metadata, simulates the allocations llama.cpp would make on this
machine's devices and prints, with ``--fit-print on``, one line per device: its name and
the model, context and compute MiB; without it, the arguments its ``--fit`` would choose.
We run it with the same settings as llmdoctor's estimate and show both: llama.cpp's
figures come from the build the user runs and are trusted where the two differ.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from llmdoctor import proc
from llmdoctor.knowledge.units import MiB

TIMEOUT_S = 120


def find_binary(environ: Optional[dict] = None) -> Optional[str]:
    environ = os.environ if environ is None else environ
    named = environ.get("LLMDOCTOR_LLAMA_FIT_PARAMS")
    if named:
        return named if Path(named).is_file() else None
    return shutil.which("llama-fit-params", path=environ.get("PATH"))


def arguments(report) -> list:
    """llama-fit-params arguments for the settings llmdoctor assumed."""
    settings = report.settings
    return ["-c", str(settings.n_ctx), "-ctk", settings.kv_type, "-ctv", settings.kv_type,
            "-fa", "on" if settings.flash_attn else "off", "-np", str(settings.n_seq),
            "-ub", str(settings.n_ubatch), "-b", str(settings.n_batch)] + ([] if settings.repack else ["--no-repack"])


def parse_projection(text: str) -> list:
    """``NAME MODEL CONTEXT COMPUTE`` lines (MiB) into device dicts; the name may hold spaces."""
    devices = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not all(p.isdigit() for p in parts[-3:]):
            continue
        model, context, compute = (int(p) for p in parts[-3:])
        devices.append({"name": " ".join(parts[:-3]), "model_mib": model, "context_mib": context,
                        "compute_mib": compute, "total_mib": model + context + compute})
    return devices


def run_fit_params(described: dict, report, environ: Optional[dict] = None) -> dict:
    """llama.cpp's projection for a local GGUF file, or why there is none."""
    binary = find_binary(environ)
    if binary is None:
        return {"error": "llama-fit-params is not on PATH (it comes with llama.cpp builds from late 2025 on; "
                         "LLMDOCTOR_LLAMA_FIT_PARAMS may name it)"}
    path = Path(described["model"]).expanduser()
    if not path.is_file():
        return {"error": "llama.cpp's projection needs the GGUF file on this machine"}
    base = [binary, "-m", str(path), *arguments(report)]
    printed = proc.run(base + ["--fit-print", "on"], timeout=TIMEOUT_S)
    if not printed.ok:
        why = printed.error or ("timed out" if printed.timed_out else f"exit code {printed.returncode}")
        tail = (printed.stderr or "").strip().splitlines()[-1:] or [""]
        return {"error": f"llama-fit-params failed ({why}) {tail[0][:200]}".rstrip()}
    devices = parse_projection(printed.stdout)
    fitted = proc.run(base, timeout=TIMEOUT_S)
    result = {"binary": binary, "devices": devices,
              "arguments": (fitted.stdout or "").strip().splitlines()[-1][:500] if fitted.ok
              and (fitted.stdout or "").strip() else ""}
    rows = [d for d in report.devices if d["kind"] in ("gpu", "host")] or \
        [d for d in report.devices if d["kind"] == "cpu"]
    ours = {"model": sum(d["need"]["weights"] + d["need"]["repack"] for d in rows),
            "context": sum(d["need"]["kv"] for d in rows), "compute": sum(d["need"]["compute"] for d in rows)}
    theirs = {part: sum(d[f"{part}_mib"] for d in devices) * MiB for part in ("model", "context", "compute")}
    if devices:
        result["comparison"] = "; ".join(
            f"{part} llama.cpp {theirs[part] / MiB:,.0f} MiB, llmdoctor {ours[part] / MiB:,.0f} MiB"
            for part in ("model", "context", "compute"))
        if ours["model"] > theirs["model"] * 1.05 and any(d["need"]["repack"] for d in rows):
            result["comparison"] += (" (llama-fit-params leaves out the tensors the CPU repacks; llmdoctor counts "
                                     "both their copy in the file and the repacked one)")
    return result
