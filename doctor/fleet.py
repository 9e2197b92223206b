"""``llmdoctor report``: many machines' snapshots in one view.

Each snapshot (from ``llmdoctor collect``, any OS) is diagnosed by the same rules as
``check --snapshot``; this module then folds the diagnoses into what an admin of forty
nodes asks: which problems, on how many machines and which (grouped by root finding), how
the stack (driver, CUDA, torch, bitsandbytes) is spread, and which machines differ from the
majority. Pure functions of the diagnoses: reading files is :func:`load_fleet`'s only job.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
STACK = ("os", "driver", "cuda (driver)", "cuda toolkit", "python", "torch", "torch cuda", "bitsandbytes")


@dataclass
class Machine:
    name: str
    source: str
    statuses: dict  # check id -> ok, info, warning, error, skipped
    findings: list  # dicts: id, severity, message, root (bool)
    stack: dict
    exit_code: int = 0


@dataclass
class Fleet:
    machines: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)  # (file, why)


def machine_name(snapshot: dict, path: Path) -> str:
    host = snapshot.get("host")
    return host if isinstance(host, str) and host.strip() else path.stem


def stack_of(snapshot: dict) -> dict:
    """The versions an admin compares across machines, from a snapshot's facts."""
    facts = snapshot.get("facts") or {}
    platform = snapshot.get("platform") or {}
    stack: dict = {}
    system = platform.get("system") or platform.get("os")
    if isinstance(system, str):
        release = platform.get("release")
        stack["os"] = f"{system} {release}" if isinstance(release, str) and release else system
    driver = facts.get("nvidia-driver") if isinstance(facts.get("nvidia-driver"), dict) else {}
    if isinstance(driver.get("driver_version"), str):
        stack["driver"] = driver["driver_version"]
    cuda = driver.get("cuda_driver_version")
    if isinstance(cuda, int) and not isinstance(cuda, bool) and cuda > 0:
        stack["cuda (driver)"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
    toolkit = facts.get("cuda-toolkit") if isinstance(facts.get("cuda-toolkit"), dict) else {}
    for key in ("version", "nvcc_version"):
        if isinstance(toolkit.get(key), str):
            stack["cuda toolkit"] = toolkit[key]
            break
    target = snapshot.get("target") if isinstance(snapshot.get("target"), dict) else {}
    if isinstance(target.get("version"), str):
        stack["python"] = target["version"]
    torch = facts.get("torch") if isinstance(facts.get("torch"), dict) else {}
    if torch.get("installed") and isinstance(torch.get("version"), str):
        stack["torch"] = torch["version"]
        stack["torch cuda"] = str(torch.get("cuda") or "none")
    bnb = facts.get("bitsandbytes") if isinstance(facts.get("bitsandbytes"), dict) else {}
    if isinstance(bnb.get("version"), str):
        stack["bitsandbytes"] = bnb["version"]
    return stack


def machine_from(name: str, source: str, snapshot: dict, diagnosis) -> Machine:
    findings = []
    for result in diagnosis.results:
        for finding in result.findings:
            if finding.acknowledged is not None or finding.severity not in SEVERITY_ORDER:
                continue
            findings.append({"id": finding.id, "severity": finding.severity, "message": finding.message,
                             "root": not finding.caused_by, "check": result.check_id})
    return Machine(name=name, source=source, statuses={r.check_id: r.status for r in diagnosis.results},
                   findings=findings, stack=stack_of(snapshot), exit_code=diagnosis.exit_code)


def snapshot_files(paths: list) -> list:
    """Files named, and the ``*.json`` files in folders named (sorted, not recursive)."""
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file()))
        else:
            files.append(path)
    return files


def build_report(fleet: Fleet) -> dict:
    machines = fleet.machines
    total = len(machines)
    checks = sorted({c for m in machines for c in m.statuses})
    groups: dict = {}
    for machine in machines:
        seen = set()
        for finding in machine.findings:
            if not finding["root"] or finding["severity"] == "info" or finding["id"] in seen:
                continue
            seen.add(finding["id"])
            group = groups.setdefault(finding["id"], {"id": finding["id"], "severity": finding["severity"],
                                                      "check": finding["check"], "machines": [],
                                                      "messages": Counter()})
            if SEVERITY_ORDER[finding["severity"]] < SEVERITY_ORDER[group["severity"]]:
                group["severity"] = finding["severity"]
            group["machines"].append(machine.name)
            group["messages"][finding["message"]] += 1
    problems = []
    for group in sorted(groups.values(), key=lambda g: (SEVERITY_ORDER[g["severity"]], -len(g["machines"]), g["id"])):
        message, _ = group["messages"].most_common(1)[0]
        problems.append({"id": group["id"], "severity": group["severity"], "check": group["check"],
                         "count": len(group["machines"]), "of": total, "machines": sorted(group["machines"]),
                         "example": message, "distinct_messages": len(group["messages"])})
    spread, majority = {}, {}
    for component in STACK:
        values = Counter(m.stack.get(component, "absent") for m in machines)
        if not values or set(values) == {"absent"}:
            continue
        ranked = values.most_common()
        spread[component] = [{"value": value, "count": count,
                              "machines": sorted(m.name for m in machines if m.stack.get(component, "absent") == value)}
                             for value, count in ranked]
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
            majority[component] = ranked[0][0]
    differ = []
    for machine in machines:
        differences = [{"component": c, "value": machine.stack.get(c, "absent"), "majority": value}
                       for c, value in majority.items() if machine.stack.get(c, "absent") != value]
        if differences:
            differ.append({"machine": machine.name, "differences": differences})
    return {
        "kind": "llmdoctor-fleet-report",
        "machines": total,
        "unreadable": [{"file": f, "why": why} for f, why in fleet.unreadable],
        "with_errors": sum(1 for m in machines if any(f["severity"] == "error" for f in m.findings)),
        "checks": checks,
        "problems": problems,
        "stack": spread,
        "majority": majority,
        "differ": differ,
        "matrix": [{"machine": m.name, "source": m.source, "exit_code": m.exit_code,
                    "statuses": {c: m.statuses.get(c, "absent") for c in checks},
                    "errors": sorted({f["id"] for f in m.findings if f["severity"] == "error"}),
                    "warnings": sorted({f["id"] for f in m.findings if f["severity"] == "warning"})}
                   for m in sorted(machines, key=lambda m: m.name)],
    }


def load_fleet(paths: list, diagnose_one) -> Fleet:
    """Read every snapshot; ``diagnose_one(snapshot)`` returns its diagnosis. A file that is
    not a snapshot is listed as unreadable, not fatal: one bad node must not hide forty."""
    from llmdoctor.errors import UserError
    from llmdoctor.snapshot import load_snapshot

    fleet = Fleet()
    names: Counter = Counter()
    for path in snapshot_files(paths):
        try:
            snapshot = load_snapshot(path)
            diagnosis = diagnose_one(snapshot)
        except UserError as exc:
            fleet.unreadable.append((str(path), str(exc).replace(str(path) + ": ", "")))
            continue
        name = machine_name(snapshot, path)
        names[name] += 1
        if names[name] > 1:  # two snapshots of one host: keep both, told apart by their files
            name = f"{name} ({os.path.basename(path)})"
        fleet.machines.append(machine_from(name, str(path), snapshot, diagnosis))
    return fleet
