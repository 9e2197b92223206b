"""Smoke tests: small end-to-end proofs, each in its own subprocess with a timeout.

A smoke test is a function ``module:function(options) -> dict``. It runs under
``python -m llmdoctor.smoke_worker`` so that a crash, a hang or a leaked GPU context
stays out of the doctor's process; the worker prints one JSON line as its last line.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Optional

from llmdoctor import proc

RESULT_MARKER = "LLMDOCTOR-SMOKE-RESULT "


@dataclass
class SmokeResult:
    id: str
    title: str
    status: str  # pass | fail | skipped
    message: str
    duration_ms: float = 0.0
    figures: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "status": self.status,
                "message": self.message, "duration_ms": round(self.duration_ms, 1),
                "figures": self.figures}


def run_smoke_test(test, options: dict, python: str = sys.executable, env: Optional[dict] = None) -> SmokeResult:
    """Run one smoke test; ``env`` is the environment to run it in (default: this one)."""
    argv = [python, "-m", "llmdoctor.smoke_worker", test.target, json.dumps(options)]
    result = proc.run_python(argv, timeout=test.timeout, env=env)  # -m would put the current folder first
    if result.timed_out:
        return SmokeResult(test.id, test.title, "fail",
                           f"did not finish within {test.timeout:g} s and was stopped",
                           result.duration_ms)
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            try:
                data = json.loads(line[len(RESULT_MARKER):])
            except ValueError:
                break
            status = data.get("status") if data.get("status") in ("pass", "fail", "skipped") else "fail"
            return SmokeResult(test.id, test.title, status, str(data.get("message", "")),
                               result.duration_ms, data.get("figures") or {})
    reason = result.error or (result.stderr.strip().splitlines() or ["no result"])[-1]
    return SmokeResult(test.id, test.title, "fail", f"the smoke test crashed: {reason}",
                       result.duration_ms)


def run_in_target(python: str, argv: list, timeout: float, what: str) -> dict:
    """Run a smoke script in the target interpreter (``python ARGV``, in a private working
    folder); the last JSON line it prints is the result, and a crash becomes a 'fail' naming ``what``."""
    result = proc.run_python([python, *argv], timeout=timeout)
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    reason = result.error or (result.stderr.strip().splitlines() or ["no output"])[-1]
    return {"status": "fail", "message": f"the {what} smoke test crashed in {python}: {reason}"}
