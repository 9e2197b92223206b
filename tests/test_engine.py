"""The engine: concurrent probes with deadlines, tools that hang, probes and rules that
fail, root causes folded under their consequences, exit codes."""

from __future__ import annotations

import sys
import time

from llmdoctor import proc
from llmdoctor.config import Config
from llmdoctor.models import Check, Finding, ProbeContext
from llmdoctor.redact import Redactor
from llmdoctor.registry import Registry
from llmdoctor.render.text import render_diagnosis
from llmdoctor.runner import collect, diagnose


def _registry(*checks) -> Registry:
    return Registry.of(checks=checks)


def _run(registry, strict=False):
    context = ProbeContext(python=sys.executable, timeout=2.0)
    snapshot = collect(registry, sorted(registry.checks), context, Redactor())
    return snapshot, diagnose(snapshot, registry, Config(), check_ids=sorted(registry.checks), strict=strict)


def test_proc_kills_a_hung_tool_and_its_children(tmp_path):
    started = time.monotonic()
    result = proc.run(["/bin/sh", "-c", "sleep 100 & sleep 100"], timeout=0.5)
    assert result.timed_out and "timed out after 0.5 s" in result.error
    assert time.monotonic() - started < 5


def test_proc_handles_output_that_is_not_utf8():
    result = proc.run([sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'caf\\xe9 \\xff')"],
                      timeout=10)
    assert result.ok and result.stdout.startswith("caf")


def test_proc_reports_missing_tools_without_raising():
    result = proc.run(["/definitely/not/here"], timeout=1)
    assert not result.ok and "FileNotFoundError" in result.error


def test_hung_probe_is_abandoned_and_reported_while_others_finish():
    hung = Check("hung", "Hung thing", probe=lambda ctx: time.sleep(3600) or {},
                 rules=lambda facts, ctx: [], timeout=0.5)
    quick = Check("quick", "Quick thing", probe=lambda ctx: {"value": 1},
                  rules=lambda facts, ctx: [Finding("quick.ok", "ok", "fine")])
    started = time.monotonic()
    _, diagnosis = _run(_registry(hung, quick))
    assert time.monotonic() - started < 3.5
    results = {r.check_id: r for r in diagnosis.results}
    assert results["hung"].findings[0].id == "hung.probe-failed"
    assert "did not finish within 0.5 s" in results["hung"].findings[0].message
    assert results["quick"].status == "ok"


def test_probe_that_raises_and_rules_that_raise_become_findings():
    def bad_probe(ctx):
        raise RuntimeError("boom")

    def bad_rules(facts, ctx):
        return [1 / 0]

    _, diagnosis = _run(_registry(
        Check("a", "A", probe=bad_probe, rules=lambda f, c: []),
        Check("b", "B", probe=lambda ctx: {}, rules=bad_rules),
    ))
    found = {f.id: f for f in diagnosis.all_findings()}
    assert "probe raised RuntimeError: boom" in found["a.probe-failed"].message
    assert found["b.rules-failed"].severity == "error"
    assert diagnosis.exit_code == 1


def test_root_cause_shown_once_with_consequences_folded():
    driver = Check("driver", "Driver", probe=lambda c: {}, rules=lambda f, c: [
        Finding("driver.missing", "error", "no NVIDIA driver", fixes=["driver"])])
    torch = Check("torch", "Torch", probe=lambda c: {}, rules=lambda f, c: [
        Finding("torch.no-cuda", "error", "torch cannot use CUDA", caused_by="driver.missing")])
    bnb = Check("bnb", "Bnb", probe=lambda c: {}, rules=lambda f, c: [
        Finding("bnb.cpu-library", "error", "bitsandbytes loads its CPU library",
                caused_by="torch.no-cuda"),
        Finding("bnb.orphan", "warning", "unrelated", caused_by="not.present")])
    _, diagnosis = _run(_registry(driver, torch, bnb))
    text = render_diagnosis(diagnosis)
    assert text.count("no NVIDIA driver") == 1
    assert "which causes: torch cannot use CUDA" in text
    assert "a consequence of driver.missing, shown above" in text
    assert "root cause" in text.splitlines()[-1]
    as_json = diagnosis.to_json()
    bnb_findings = {f["id"]: f for f in as_json["checks"][0]["findings"]}
    assert bnb_findings["bnb.cpu-library"]["caused_by"] == "torch.no-cuda"
    assert "caused_by" not in bnb_findings["bnb.orphan"]  # the root is absent: stands alone


def test_strict_turns_warnings_into_exit_1():
    check = Check("w", "W", probe=lambda c: {}, rules=lambda f, c: [Finding("w.x", "warning", "hm")])
    assert _run(_registry(check))[1].exit_code == 0
    assert _run(_registry(check), strict=True)[1].exit_code == 1


def test_not_applicable_checks_are_skipped_with_a_reason():
    check = Check("win", "Windows only", probe=lambda c: {}, rules=lambda f, c: [],
                  applies=lambda platform: None if platform["system"] == "windows"
                  else f"not applicable on {platform['system']}")
    _, diagnosis = _run(_registry(check))
    (result,) = diagnosis.results
    assert result.status == "skipped" and result.reason == "not applicable on linux"
    assert result.to_json()["reason"] == "not applicable on linux"


def test_target_interpreter_is_probed_only_when_a_check_asks():
    plain = Check("plain", "Plain", probe=lambda ctx: {}, rules=lambda f, c: [])
    snapshot, _ = _run(_registry(plain))
    assert snapshot["target"] == {}
    asking = Check("asks", "Asks", probe=lambda ctx: {"v": ctx.target()["version"]}, rules=lambda f, c: [])
    snapshot, _ = _run(_registry(asking))
    assert snapshot["target"]["executable"] and snapshot["facts"]["asks"]["v"] == snapshot["target"]["version"]


def test_plain_text_keeps_brackets_and_backslashes_exactly():
    odd = "C:\\Program Files\\[x]\\"
    check = Check("odd", "Odd [title]", probe=lambda c: {},
                  rules=lambda f, c: [Finding("odd.x", "warning", f"entry {odd} and [bold]not markup[/bold]",
                                              details=f"details {odd}", fixes=["odd"])])
    _, diagnosis = _run(_registry(check))
    plain = render_diagnosis(diagnosis, verbose=True)  # no colour: rich is not imported
    assert f"entry {odd} and [bold]not markup[/bold]" in plain
    assert f"details {odd}" in plain and "[!] Odd [title]" in plain
    coloured = render_diagnosis(diagnosis, verbose=True, color=True)
    assert "\x1b[" in coloured and "not markup" in coloured
