"""``llmdoctor slurm-health``: llmdoctor as a Slurm node's HealthCheckProgram.

Slurm's slurmd runs ``HealthCheckProgram`` every ``HealthCheckInterval`` seconds, as root,
and kills it when it runs too long (https://slurm.schedmd.com/slurm.conf.html#OPT_HealthCheckProgram).
Like LBNL's Node Health Check (https://github.com/mej/nhc), the program drains the node
itself: on an error finding it runs
``scontrol update nodename=NODE state=drain reason="llmdoctor: <root finding id>"``; once the
node is healthy again it resumes a node that it drained itself (the reason starts with
``llmdoctor:``) and never one drained for another reason. The decision is a pure function
of the diagnosis and the node's state (:func:`decide`); only :func:`node_state` and
:func:`apply` run Slurm's commands.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from typing import Optional

from llmdoctor import proc

REASON_PREFIX = "llmdoctor:"
COMMAND_TIMEOUT_S = 20


class SlurmError(Exception):
    """Slurm's commands are missing or failed: the health is unknown."""


@dataclass
class Decision:
    action: str  # "drain", "resume" or "none"
    reason: str  # the drain reason to set, or why nothing is done
    healthy: bool


def node_name(explicit: Optional[str] = None, environ: Optional[dict] = None) -> str:
    """``--node``, else ``SLURMD_NODENAME`` (slurmd's name for itself), else the short host name."""
    environ = os.environ if environ is None else environ
    return explicit or environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


def _said(result) -> str:
    """A tool's complaint as one line: Slurm's commands print several."""
    lines = [line.strip() for line in (result.stderr or result.error or "").splitlines() if line.strip()]
    return "; ".join(lines)[:300] or f"exit code {result.returncode}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SlurmError(f"{name} is not on PATH: is this a Slurm node?")
    return path


def node_state(node: str) -> tuple:
    """(state, reason) as ``sinfo`` prints them, e.g. ``("drained", "llmdoctor: disk.full")``."""
    result = proc.run([_tool("sinfo"), "-h", "-N", "-n", node, "-o", "%T|%E"], timeout=COMMAND_TIMEOUT_S)
    if not result.ok:
        raise SlurmError(f"sinfo failed for node {node}: {_said(result)}")
    line = next((raw for raw in result.stdout.splitlines() if raw.strip()), "")
    if not line:
        raise SlurmError(f"sinfo does not know node {node} (set --node or SLURMD_NODENAME)")
    state, _, reason = line.partition("|")
    return state.strip().lower(), "" if reason.strip() == "none" else reason.strip()


def is_drained(state: str) -> bool:
    return "drain" in state  # drained, draining, and "idle+drain" as scontrol writes it


def decide(diagnosis, state: str, reason: str) -> Decision:
    """What to do with the node, from the diagnosis and its state in Slurm."""
    live = [f for f in diagnosis.all_findings() if f.acknowledged is None and f.severity == "error"]
    ours = reason.startswith(REASON_PREFIX)
    if live:
        root = next((f for f in live if not f.caused_by), live[0])
        wanted = f"{REASON_PREFIX} {root.id}"
        if is_drained(state) and not ours:
            return Decision("none", f"already drained for another reason ({reason or 'none given'}): left as it is",
                            False)
        if is_drained(state) and reason == wanted:
            return Decision("none", f"already drained: {wanted}", False)
        return Decision("drain", wanted, False)
    if is_drained(state) and ours:
        return Decision("resume", f"healthy again: resuming (was {reason})", True)
    return Decision("none", "healthy", True)


def apply(node: str, decision: Decision) -> None:
    if decision.action == "none":
        return
    argv = [_tool("scontrol"), "update", f"nodename={node}"]
    argv += ["state=drain", f"reason={decision.reason}"] if decision.action == "drain" else ["state=resume"]
    result = proc.run(argv, timeout=COMMAND_TIMEOUT_S)
    if not result.ok:
        raise SlurmError(f"scontrol could not {decision.action} {node}: {_said(result)}")


def command_line(node: str, decision: Decision) -> str:
    """The scontrol command, as a user would type it (for --dry-run and the log)."""
    if decision.action == "drain":
        return f'scontrol update nodename={node} state=drain reason="{decision.reason}"'
    if decision.action == "resume":
        return f"scontrol update nodename={node} state=resume"
    return ""
