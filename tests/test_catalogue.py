"""The catalogue of findings: every id a rule can emit is declared with why it matters, how to
fix it and public references; ``llmdoctor explain`` prints each; docs/findings.md is current;
configuration ids are checked against it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmdoctor import catalogue
from llmdoctor.checks import bitsandbytes
from llmdoctor.cli import app
from llmdoctor.registry import load_registry

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(REPO / "checks").glob("*.py"), *(REPO / "doctor").rglob("*.py")])


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def entries(registry):
    return catalogue.entries(registry)


def _emitted() -> list:
    """(id or pattern, fixes given, "file:line") of every Finding(...) and require's _unmet(...)
    in the source: a constant id, or an f-string turned into a regular expression."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None)
            keywords = {k.arg: k.value for k in node.keywords}
            first = keywords.get("id", node.args[0] if node.args else None)
            if name not in ("Finding", "_unmet") or first is None:
                continue
            fixes = keywords.get("fixes")
            literal_fixes = None
            if isinstance(fixes, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) for e in fixes.elts):
                literal_fixes = [e.value for e in fixes.elts]
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if isinstance(first, ast.Constant):
                finding_id = first.value if name == "Finding" else f"require.{first.value}"
                found.append((finding_id, literal_fixes, where))
            elif isinstance(first, ast.JoinedStr):
                pattern = "".join(re.escape(p.value) if isinstance(p, ast.Constant) else "[a-z0-9-]+"
                                  for p in first.values)
                found.append((re.compile(pattern), literal_fixes, where))
    return found


EMITTED = _emitted()


def test_the_source_scan_sees_the_rules():
    assert len(EMITTED) > 150, "the scan of Finding(...) calls found too little to mean anything"


def test_every_constant_id_a_rule_emits_is_declared(entries, registry):
    undeclared = [f"{i} ({where})" for i, _, where in EMITTED
                  if isinstance(i, str) and catalogue.lookup(i, entries, registry.checks) is None]
    assert not undeclared, "declare these finding kinds beside their rules:\n" + "\n".join(undeclared)


def test_every_computed_id_matches_a_declared_kind(entries, registry):
    ids = set(entries)
    ids |= {f"{c}.{t.split('.', 1)[1]}" for t in entries if t.startswith("<") for c in registry.checks}
    unmatched = [f"{p.pattern} ({where})" for p, _, where in EMITTED
                 if not isinstance(p, str) and not any(p.fullmatch(i) for i in ids)]
    assert not unmatched, unmatched


def test_the_deep_diagnostics_markers_are_declared(entries):
    missing = [marker for _, marker, _ in bitsandbytes.MARKERS if f"bitsandbytes.{marker}" not in entries]
    assert not missing


def test_a_findings_fixes_are_among_its_kinds_fixes(entries, registry):
    wrong = []
    for finding_id, fixes, where in EMITTED:
        if not isinstance(finding_id, str) or not fixes:
            continue
        entry = catalogue.lookup(finding_id, entries, registry.checks)
        if entry and not set(fixes) <= set(entry.kind.fixes):
            wrong.append(f"{finding_id} at {where}: {fixes} not in {list(entry.kind.fixes)}")
    assert not wrong, wrong


def test_every_declared_kind_is_emitted_somewhere(entries):
    constants = {i for i, _, _ in EMITTED if isinstance(i, str)}
    patterns = [p for p, _, _ in EMITTED if not isinstance(p, str)]
    stale = [i for i in entries if not i.startswith("<") and i not in constants
             and not any(p.fullmatch(i) for p in patterns)]
    assert not stale, f"declared but never emitted: {stale}"


def test_every_kind_says_why_and_how_with_public_sources(entries, registry):
    problems = []
    for finding_id, entry in entries.items():
        kind = entry.kind
        if not kind.summary or "\n" in kind.summary or kind.summary.endswith(".") or len(kind.summary) > 100:
            problems.append(f"{finding_id}: the summary is one short line without a full stop")
        if kind.severity in ("warning", "error") and not (kind.why and (kind.fix or kind.fixes)):
            problems.append(f"{finding_id}: a warning or error says why it matters and how to fix it")
        for fix in kind.fixes:
            if fix not in registry.fixes:
                problems.append(f"{finding_id}: names the unknown fix {fix!r}")
        for url in kind.references:
            if not re.fullmatch(r"https://[a-z0-9.-]+\.[a-z]{2,}(/\S*)?", url) or "shared" + "/reference" in url:
                problems.append(f"{finding_id}: {url!r} is not a public URL")
    assert not problems, "\n".join(problems)
    assert sum(1 for e in entries.values() if e.kind.references) >= 0.8 * len(entries)


def test_explain_prints_every_declared_kind(entries):
    runner = CliRunner()
    for finding_id, entry in entries.items():
        shown = finding_id.replace(catalogue.TEMPLATE, "disk")
        result = runner.invoke(app, ["explain", shown])
        assert result.exit_code == 0, (shown, result.output)
        assert entry.kind.summary in result.output
        for url in entry.kind.references:
            assert url in result.output


def test_explain_json_and_list(entries):
    runner = CliRunner()
    listing = runner.invoke(app, ["explain", "--list", "--json"])
    import json

    ids = [f["id"] for f in json.loads(listing.stdout)["findings"]]
    assert ids == list(entries)
    one = json.loads(runner.invoke(app, ["explain", "vs-cuda.no-integration", "--json"]).stdout)
    assert one["fixes"] == ["vs-cuda"] and one["check"] == "vs-cuda" and one["why"]


def test_explain_an_unknown_id_is_one_line_with_the_nearest(cli):
    result = cli("explain", "bitsandbytes.no-binry")
    assert result.code == 2 and "did you mean 'bitsandbytes.no-binary'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert cli("explain").code == 2 and cli("explain", "x.y", "--list").code == 2


def test_docs_findings_md_is_current():
    result = subprocess.run([sys.executable, str(REPO / "docs" / "make_findings.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_verbose_output_ends_each_finding_with_explain(cli, tmp_path):
    (tmp_path / "missing-dir").mkdir()
    result = cli("check", "--only", "path", "-v", "--offline", env={"PATH": f"{tmp_path}/nowhere:/usr/bin:/bin"})
    assert "llmdoctor explain path.missing-entry" in result.stdout


@pytest.mark.parametrize("ack_id, message", [
    ("dsik.low-space", "names no check; did you mean 'disk'?"),
    ("disk.low-spcae", "matches no known finding; did you mean 'disk.low-space'?"),
    ("path.nothing-*", "matches no known finding"),
])
def test_unknown_acknowledgement_ids_are_rejected_with_the_nearest(cli, isolated, ack_id, message):
    (isolated / "llmdoctor.toml").write_text(f'[[acknowledge]]\nid = "{ack_id}"\nreason = "r"\n')
    result = cli("check", "--only", "path", "--offline")
    assert result.code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("ack_id", ["disk.low-space", "path.*", "*.probe-failed", "disk.probe-failed",
                                    "config.acknowledgement-stale"])
def test_known_acknowledgement_ids_and_globs_are_accepted(cli, isolated, ack_id):
    (isolated / "llmdoctor.toml").write_text(f'[[acknowledge]]\nid = "{ack_id}"\nreason = "r"\n')
    result = cli("check", "--only", "path", "--offline")
    assert result.code in (0, 1), result.stderr


def test_the_suite_emits_only_declared_ids(entries, registry):
    """Rules run in this process by the whole suite (see conftest's recorder) emitted only
    declared ids; this test sees those recorded before it, the session's end sees the rest."""
    from conftest import RECORDED_IDS

    undeclared = sorted(i for i in RECORDED_IDS if catalogue.lookup(i, entries, registry.checks) is None)
    assert not undeclared
