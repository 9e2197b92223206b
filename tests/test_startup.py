"""A fast start without changing behaviour: `--help` and plain `check` run without typer, with
typer's own output and parsing; a command imports only the checks it runs; the built-ins are
known without scanning installed distributions. Figures: benchmarks/startup.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmdoctor.entry import PATH_PARAMETERS, parse_check
from llmdoctor.help_text import TOP_LEVEL_HELP
from llmdoctor.registry import BUILTIN_CHECKS, BUILTIN_FIXES, CHECK_GROUP, FIX_GROUP

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_help_text  # noqa: E402


def test_the_kept_help_is_what_typer_prints():
    assert make_help_text.typer_help() == TOP_LEVEL_HELP, "run: python tests/make_help_text.py"


def test_the_llmdoctor_script_prints_it(tmp_path):
    script = Path(sys.executable).parent / "llmdoctor"
    fast = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "120"})
    assert fast.returncode == 0 and fast.stdout == TOP_LEVEL_HELP


def _typer_params(args: list) -> dict:
    import typer.main

    from llmdoctor.cli import app

    command = typer.main.get_command(app).commands["check"]
    params = command.make_context("check", list(args)).params
    normal = {}
    for name, value in params.items():
        value = getattr(value, "value", value)  # Format -> its string
        if isinstance(value, (list, tuple)):
            value = list(value) or None
        normal[name] = value
    return normal


def _fast_params(args: list) -> dict:
    parsed = parse_check(["check", *args])
    assert parsed is not None, args
    defaults = {"only": None, "skip": None, "output_format": "text", "output": None, "as_json": False,
                "verbose": False, "snapshot": None, "python": None, "strict": False, "offline": False,
                "models": None, "deep": False, "require": None}
    return {**defaults, **parsed}


@pytest.mark.parametrize("args", [
    [], ["--offline"], ["--only", "path"], ["--only=path,disk", "--only", "ffmpeg"], ["--skip", "disk", "-v"],
    ["--json", "--strict"], ["--format", "prometheus", "-o", "out.prom"], ["--output=r.md", "--format=markdown"],
    ["--snapshot", "s.json", "--verbose"], ["--python", "/usr/bin/python3"], ["--model", "a", "--model", "b"],
    ["--deep", "--require", "team.toml"], ["--format", "npd"], ["--only", ""],
])
def test_the_fast_parser_agrees_with_typer(args):
    def paths_as_text(params: dict) -> dict:  # typer turns click's text into a Path in its callback
        return {k: str(v) if k in PATH_PARAMETERS and v is not None else v for k, v in params.items()}

    assert paths_as_text(_fast_params(args)) == paths_as_text(_typer_params(args))


@pytest.mark.parametrize("args", [
    ["--help"], ["--bogus"], ["--format", "xml"], ["--only"], ["--only", "-x"], ["-vo", "x"], ["extra"],
    ["--json=yes"], ["--python", "a", "--python", "b"],
])
def test_what_the_fast_parser_does_not_know_goes_to_typer(args):
    assert parse_check(["check", *args]) is None


def test_other_commands_go_to_typer():
    assert parse_check(["fix", "--path"]) is None and parse_check([]) is None


def _modules_after(*argv: str, env_extra: dict = None) -> set:
    code = ("import sys, json\n"
            f"sys.argv = ['llmdoctor', *{list(argv)!r}]\n"
            "from llmdoctor.entry import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('MODULES=' + json.dumps(sorted(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return set(json.loads(result.stderr.rsplit("MODULES=", 1)[1]))


def test_help_imports_no_check_and_no_typer():
    modules = _modules_after("--help")
    assert not {m for m in modules if m.startswith(("llmdoctor.checks.", "llmdoctor.fixes.", "typer"))}
    assert "importlib.metadata" not in modules


def test_check_only_path_imports_the_path_check_alone_and_scans_nothing():
    modules = _modules_after("check", "--only", "path", "--offline")
    checks = {m for m in modules if m.startswith(("llmdoctor.checks.", "llmdoctor.fixes."))}
    assert checks == {"llmdoctor.checks.path"}
    assert "typer" not in modules and "importlib.metadata" not in modules


def test_a_full_check_still_finds_every_built_in():
    modules = _modules_after("check", "--offline")
    assert {f"llmdoctor.checks.{v.split(':')[0].rsplit('.', 1)[1]}" for v in BUILTIN_CHECKS.values()} <= modules


def test_the_built_ins_are_the_entry_points_in_pyproject():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert declared[CHECK_GROUP] == BUILTIN_CHECKS and declared[FIX_GROUP] == BUILTIN_FIXES


def test_the_target_probe_writes_json_without_importing_it():
    """The probe script's own encoder: what json.loads reads back is what it was given."""
    from llmdoctor.target import PROBE_SCRIPT

    source = PROBE_SCRIPT[PROBE_SCRIPT.index("def encode(value):"):PROBE_SCRIPT.index("implementation = {")]
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102 - our own script's function
    value = {"quote\"back\\slash": ["tab\tnew\nline", "é ü 中文", "\U0001f600 astral", "lone \udcff surrogate",
                                    "\x00\x1f\x7f\x80", ""], "nested": {"k": ["v", {"x": "y"}]}}
    assert json.loads(namespace["encode"](value)) == value
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE_SCRIPT], capture_output=True,
                            text=True, timeout=60)
    facts = json.loads(result.stdout)
    assert facts["version"] == sys.version.split()[0] and facts["executable"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "json" not in imported and "platform" not in imported
