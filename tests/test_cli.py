"""The command line as onboarding scripts use it: the JSON contract, exit codes, formats,
snapshots, and a one-line error for every kind of bad input."""

from __future__ import annotations

import json

import pytest

from conftest import DATA

STATUSES = {"ok", "info", "warning", "error", "skipped"}


def assert_contract(report: dict) -> None:
    """The stable JSON contract documented in the README (schema 1)."""
    assert {"schema", "version", "platform", "checks", "summary"} <= set(report) <= {
        "schema", "version", "platform", "target", "checks", "summary"}  # target: additive, schema 1
    if "target" in report:
        assert {"python", "how"} <= set(report["target"])
    assert report["schema"] == 1 and isinstance(report["version"], str)
    assert isinstance(report["platform"]["system"], str)
    for check in report["checks"]:
        assert {"id", "title", "status", "findings", "duration_ms"} <= set(check)
        assert check["status"] in STATUSES
        assert isinstance(check["duration_ms"], (int, float))
        if check["status"] == "skipped":
            assert check["reason"]
        for finding in check["findings"]:
            assert {"id", "severity", "message", "details", "fixes"} <= set(finding)
            assert finding["severity"] in {"ok", "info", "warning", "error"}
            assert finding["id"].startswith(check["id"] + ".")
            assert "\n" not in finding["message"]
            assert all(isinstance(f, str) for f in finding["fixes"])
    summary = report["summary"]
    for status in STATUSES:
        assert summary[status] == sum(1 for c in report["checks"] if c["status"] == status)


def test_check_json_contract_and_exit_code(cli):
    result = cli("check", "--json")
    report = result.json()
    assert_contract(report)
    assert {c["id"] for c in report["checks"]} >= {"path", "disk"}
    has_error = any(c["status"] == "error" for c in report["checks"])
    assert result.code == (1 if has_error else 0) == report["summary"]["exit_code"]


def test_format_json_equals_json_flag(cli):
    assert cli("check", "--format", "json", "--only", "disk").json()["checks"][0]["id"] == "disk"


def test_text_report_is_grouped_with_a_summary(cli):
    result = cli("check", env={"PATH": "/nonexistent:/usr/bin"})
    assert "[!] PATH" in result.stdout
    assert "→ llmdoctor fix --path" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("Summary: ")
    verbose = cli("check", "-v", "--only", "path", env={"PATH": "/nonexistent:/usr/bin"})
    assert "facts: " in verbose.stdout and (
        "id: path.missing-entry; what it means: llmdoctor explain path.missing-entry" in verbose.stdout)


def test_markdown_report(cli):
    result = cli("check", "--format", "markdown", env={"PATH": "/nonexistent:/usr/bin"})
    assert result.stdout.startswith("### llmdoctor")
    assert "| ⚠️ | PATH (`path`) | warning | " in result.stdout
    assert "<details><summary>details</summary>" in result.stdout
    assert "`llmdoctor fix --path`" in result.stdout


def test_version_help_and_list(cli):
    assert cli("--version").stdout.startswith("llmdoctor ")
    for command in ([], ["check"], ["collect"], ["list"], ["fix"], ["undo"], ["smoke"]):
        result = cli(*command, "--help")
        assert result.code == 0 and "Usage" in result.stdout, command
    assert "Exit codes" in cli("--help").stdout
    listing = cli("list", "--json").json()
    assert {c["id"] for c in listing["checks"]} >= {"path", "disk"}
    (path_fix,) = [f for f in listing["fixes"] if f["id"] == "path"]
    assert path_fix["applicability"] == "safe" and path_fix["source"].startswith("llmdoctor")
    assert "--path" in cli("list").stdout


def test_collect_then_check_snapshot_gives_the_same_diagnosis(cli, tmp_path):
    env = {"PATH": "/nonexistent:/usr/bin/env:/usr/bin"}
    snapshot = tmp_path / "snap.json"
    assert cli("collect", "-o", str(snapshot), env=env).code == 0
    live = cli("check", "--json", "--only", "path", env=env).json()
    replayed = cli("check", "--json", "--only", "path", "--snapshot", str(snapshot)).json()
    strip = lambda r: [(f["id"], f["message"]) for c in r["checks"] for f in c["findings"]]  # noqa: E731
    assert strip(live) == strip(replayed)


@pytest.mark.parametrize("name", ["windows-healthy", "windows-long-path", "windows-regsz-path2"])
def test_windows_snapshots_are_diagnosed_on_linux(cli, name):
    result = cli("check", "--json", "--snapshot", str(DATA / f"{name}.json"))
    report = result.json()
    assert_contract(report)
    assert report["platform"]["system"] == "windows"
    found = {f["id"] for c in report["checks"] for f in c["findings"]}
    expected = {
        "windows-healthy": ({"path.ok"}, 0),
        "windows-long-path": ({"path.too-long-for-cmd", "path.file-entry", "path.missing-entry",
                               "path.duplicate-entry", "path.value-too-long-for-editor",
                               "disk.long-paths-disabled", "disk.no-symlinks"}, 1),
        "windows-regsz-path2": ({"path.reg-sz-with-percent", "path.reference-will-not-expand"}, 1),
    }[name]
    assert expected[0] <= found, found
    assert result.code == expected[1]


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a snapshot (invalid JSON"),
    ('{"schema": 1, "facts": {}}', "has no 'platform' object"),
    ('{"schema": 99, "platform": {"system": "linux"}, "facts": {}}', "newer than this llmdoctor"),
    ('[1, 2]', "not a llmdoctor snapshot"),
    ('{"schema": 1, "platform": {"system": "linux"}, "facts": {"path": 3}}', "facts of 'path'"),
])
def test_corrupt_snapshots_get_one_line(cli, tmp_path, content, message):
    snapshot = tmp_path / "bad.json"
    snapshot.write_text(content)
    result = cli("check", "--snapshot", str(snapshot))
    assert result.code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_binary_snapshot_and_missing_snapshot(cli, tmp_path):
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    for path in (binary, tmp_path / "missing.json"):
        result = cli("check", "--snapshot", str(path))
        assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["check", "--only", "nope"], "unknown check id 'nope'"),
    (["check", "--skip", "nope"], "unknown check id 'nope'"),
    (["check", "--format", "xml"], "--format"),
    (["check", "--python", "/no/such/python"], "no such interpreter"),
    (["fix", "--nope"], "unknown fix 'nope'"),
    (["smoke", "--only", "nope"], "unknown smoke test 'nope'"),
    (["frobnicate"], "No such command"),
])
def test_usage_errors_exit_2_with_one_line(cli, args, message):
    result = cli(*args)
    assert result.code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_target_python_is_probed(cli):
    import sys

    report = cli("collect", "--only", "path", "--python", sys.executable).json()
    assert report["target"]["executable"] and report["target"]["packages"]["llmdoctor"]
    assert json.dumps(report)  # plain JSON
