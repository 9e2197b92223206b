"""``check --format prometheus``: the diagnosis as metrics for node_exporter's textfile collector.

Prometheus' text exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/):
``# HELP`` and ``# TYPE`` once per metric, then one sample per label set, label values with
backslash, double quote and newline escaped. No sample carries a timestamp: the textfile
collector (https://github.com/prometheus/node_exporter#textfile-collector) refuses them,
so the time of the run is a gauge of its own. Label values never carry a secret or a home
path: they are redacted and home folders become ``~``.
"""

from __future__ import annotations

import math
from typing import Optional

STATUS_VALUE = {"ok": 0, "info": 1, "warning": 2, "error": 3, "skipped": -1}


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Metrics:
    def __init__(self, scrub) -> None:
        self.scrub = scrub
        self.families: dict = {}  # name -> (help, type, [(labels, value)])

    def add(self, name: str, help_text: str, value: float, labels: Optional[dict] = None, kind: str = "gauge") -> None:
        family = self.families.setdefault(name, (help_text, kind, []))
        clean = {k: self.scrub(str(v)) for k, v in (labels or {}).items()}
        for existing in family[2]:  # one sample per label set: the same finding twice is counted
            if existing[0] == clean:
                existing[1] += value
                return
        family[2].append([clean, value])

    def text(self) -> str:
        lines = []
        for name, (help_text, kind, samples) in self.families.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                label_text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
                lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def render_prometheus(diagnosis, facts: dict, *, duration_s: float, timestamp: float, scrub, version: str) -> str:
    """The metrics of one run: per check a status, per finding a labelled gauge, the run's
    duration and time, and the facts admins graph (driver, CUDA, GPU memory, free disk)."""
    m = _Metrics(scrub)
    m.add("llmdoctor_info", "llmdoctor's version (always 1).", 1, {"version": version})
    for result in diagnosis.results:
        m.add("llmdoctor_check_status", "Each check's status: 0 ok, 1 info, 2 warning, 3 error, -1 skipped.",
              STATUS_VALUE.get(result.status, -1), {"check": result.check_id})
    for result in diagnosis.results:
        for finding in result.findings:
            if finding.acknowledged is not None or finding.severity not in ("info", "warning", "error"):
                continue
            m.add("llmdoctor_finding", "Findings of this run by check, id and severity (the count).", 1,
                  {"check": result.check_id, "id": finding.id, "severity": finding.severity})
    counts = {"error": 0, "warning": 0, "info": 0}
    for finding in diagnosis.all_findings():
        if finding.acknowledged is None and finding.severity in counts:
            counts[finding.severity] += 1
    for severity, count in counts.items():
        m.add("llmdoctor_findings", "Findings of this run by severity.", count, {"severity": severity})
    m.add("llmdoctor_exit_code", "The exit code of the run: 0 healthy, 1 problems.", diagnosis.exit_code)
    m.add("llmdoctor_run_duration_seconds", "How long the run took.", round(duration_s, 3))
    m.add("llmdoctor_run_timestamp_seconds", "When the run finished (Unix time).", round(timestamp, 3))
    _fact_metrics(m, facts)
    return m.text()


def _fact_metrics(m: _Metrics, facts: dict) -> None:
    driver = facts.get("nvidia-driver") or {}
    if isinstance(driver, dict):
        if isinstance(driver.get("driver_version"), str):
            m.add("llmdoctor_nvidia_driver_info", "The NVIDIA driver's version (always 1).", 1,
                  {"version": driver["driver_version"]})
        cuda = driver.get("cuda_driver_version")
        if isinstance(cuda, int) and not isinstance(cuda, bool) and cuda > 0:
            m.add("llmdoctor_cuda_driver_version", "The newest CUDA the driver supports (12.4 for 12040).",
                  cuda // 1000 + (cuda % 1000) / 100)
        for gpu in driver.get("gpus") or []:
            if not isinstance(gpu, dict):
                continue
            labels = {"gpu": str(gpu.get("index", "?")), "name": str(gpu.get("name", "?"))}
            for key, help_text in (("memory_total_bytes", "The GPU's memory."),
                                   ("memory_free_bytes", "The GPU's free memory when llmdoctor ran.")):
                if isinstance(gpu.get(key), int) and not isinstance(gpu.get(key), bool):
                    m.add(f"llmdoctor_gpu_{key}", help_text, gpu[key], labels)
    disk = facts.get("disk") or {}
    for location in (disk.get("locations") or []) if isinstance(disk, dict) else []:
        if isinstance(location, dict) and isinstance(location.get("free_bytes"), int) and location.get("role"):
            m.add("llmdoctor_disk_free_bytes", "Free bytes where models go, by role (hf_cache, torch_hub, ...).",
                  location["free_bytes"], {"role": str(location["role"])})
    torch = facts.get("torch") or {}
    if isinstance(torch, dict) and torch.get("installed") and isinstance(torch.get("version"), str):
        m.add("llmdoctor_torch_info", "The target's torch (always 1).", 1,
              {"version": torch["version"], "cuda": str(torch.get("cuda") or "none")})
    bnb = facts.get("bitsandbytes") or {}
    if isinstance(bnb, dict) and isinstance(bnb.get("version"), str):
        m.add("llmdoctor_bitsandbytes_info", "The target's bitsandbytes (always 1).", 1, {"version": bnb["version"]})
