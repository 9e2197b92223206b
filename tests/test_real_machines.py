"""Right on real machines: declared dependencies between checks (``--only`` never changes a
verdict), rules that never touch the OS, one root per mistake, and the interpreter a user
means."""

from __future__ import annotations

import builtins
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmdoctor.registry import load_registry
from llmdoctor.runner import run_rules
from llmdoctor.target import choose_target

from conftest import DATA

REGISTRY = load_registry()


def _by_check(report: dict) -> dict:
    return {c["id"]: sorted((f["id"], f["severity"], f["message"]) for f in c["findings"])
            for c in report["checks"] if c["status"] != "skipped"}


def _machines(tmp_path) -> list:
    """(name, extra args, env) for this machine as it is, a broken-PATH variant, and every
    recorded snapshot."""
    home = tmp_path / "home"
    (home / "tools").mkdir(parents=True, exist_ok=True)
    (home / "tools" / "ffmpeg").write_text("#!/bin/sh\n")
    (home / "tools" / "ffmpeg").chmod(0o755)
    broken = {"PATH": f"{home}/tools/ffmpeg:/nonexistent:/usr/local/bin:/usr/bin:/bin", "CUDA_HOME": "/nonexistent",
              "HF_ENDPOINT": "'https://hf-mirror.com/'", "BNB_CUDA_VERSION": "999"}
    from gpu_fakes import install_fake_pynvml

    # a GPU machine (a pynvml stand-in: NVML cannot run without a GPU) whose target has CPU-only torch
    venv = tmp_path / "gpu-venv"
    if not venv.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        from bnb_trees import make_torch

        (site,) = venv.glob("lib/python3.*/site-packages")
        make_torch(site, None)
    gpu = {**install_fake_pynvml(tmp_path / "fake-nvml"), "VIRTUAL_ENV": str(venv)}
    machines = [("this machine", [], {}), ("broken", [], broken), ("gpu, cpu torch", [], gpu)]
    machines += [(path.name, ["--snapshot", str(path)], {}) for path in sorted(DATA.glob("*.json"))]
    return machines


def test_only_gives_a_check_the_same_findings_as_a_full_run(cli, tmp_path):
    checks = [c for c in REGISTRY.checks if c != "model-fit"]
    compared = 0
    for name, extra, env in _machines(tmp_path):
        full = _by_check(cli("check", "--json", *extra, env=env, timeout=120).json())
        for check_id in checks:
            if check_id not in full:
                continue
            alone = _by_check(cli("check", "--json", "--only", check_id, *extra, env=env, timeout=120).json())
            assert alone[check_id] == full[check_id], (name, check_id)
            compared += 1
    assert compared >= 20, compared


def test_requires_are_declared_for_every_cross_check_read():
    """Every rule that reads another check's facts says so (the equivalence test above relies on it)."""
    import inspect

    for check in REGISTRY.checks.values():
        source = inspect.getsource(inspect.getmodule(check.rules))
        for other in REGISTRY.checks:
            if other != check.id and f'all_facts.get("{other}")' in source:
                assert other in check.requires, (check.id, other)


class _TouchedTheOS(AssertionError):
    pass


def _forbid(*args, **kwargs):
    raise _TouchedTheOS(f"a rule touched the OS: {args[:1]}")


def test_rules_never_touch_the_os(cli, tmp_path, monkeypatch):
    """Each check's rules over facts from this machine and from every recorded snapshot,
    with file access, path resolution and subprocesses made to fail."""
    from llmdoctor.machine import probe_platform
    from llmdoctor.models import RuleContext

    snapshots = [json.loads(cli("collect", env=env, timeout=120).stdout) for _, _, env in _machines(tmp_path)[:2]]
    snapshots += [json.loads(path.read_text()) for path in sorted(DATA.glob("*.json"))]
    platform = probe_platform()
    for name in ("stat", "lstat", "listdir", "scandir", "access", "open", "readlink"):
        monkeypatch.setattr(os, name, _forbid)
    for name in ("realpath", "exists", "isfile", "isdir", "islink", "getsize", "samefile"):
        monkeypatch.setattr(os.path, name, _forbid)
    monkeypatch.setattr(builtins, "open", _forbid)
    monkeypatch.setattr(io, "open", _forbid)
    monkeypatch.setattr(pathlib.Path, "stat", _forbid)
    monkeypatch.setattr(subprocess, "Popen", _forbid)
    try:
        for snapshot in snapshots:
            context = RuleContext(platform=snapshot.get("platform", platform), all_facts=snapshot["facts"])
            for check_id, facts in snapshot["facts"].items():
                if check_id not in REGISTRY.checks:
                    continue
                for finding in run_rules(REGISTRY.checks[check_id], facts, context):
                    assert "TouchedTheOS" not in finding.message and "touched the OS" not in finding.message, (
                        check_id, finding.message)
    finally:
        monkeypatch.undo()


# ----------------------------------------------------------------------------- the interpreter a user means


def _fake_python(folder: Path, name: str = "python3") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_the_default_target_is_the_environment_the_user_works_in(tmp_path):
    venv = tmp_path / "venv"
    _fake_python(venv / "bin", "python")
    conda = tmp_path / "conda"
    _fake_python(conda / "bin", "python")
    first = _fake_python(tmp_path / "first")
    _fake_python(tmp_path / "second")
    own = str(Path(sys.executable).parent)
    path = f"{own}:{tmp_path / 'first'}:{tmp_path / 'second'}"

    assert choose_target(None, {"VIRTUAL_ENV": str(venv), "CONDA_PREFIX": str(conda), "PATH": path}) == (
        str(venv / "bin" / "python"), "the active virtual environment ($VIRTUAL_ENV)")
    assert choose_target(None, {"CONDA_PREFIX": str(conda), "PATH": path})[0] == str(conda / "bin" / "python")
    python, how = choose_target(None, {"PATH": path})  # llmdoctor's own venv comes first on PATH: skipped
    assert python == str(first) and how == "the first python3 on PATH"
    assert choose_target(None, {"PATH": own})[0] == sys.executable


def test_python_accepts_what_users_type(cli, tmp_path):
    venv = tmp_path / "proj" / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    for value, cwd in ((".venv/bin/python", tmp_path / "proj"), (".venv", tmp_path / "proj"),
                       (str(venv), tmp_path), ("python3", tmp_path)):
        result = cli("check", "--only", "torch", "--json", "--python", value, cwd=str(cwd))
        assert result.code == 0, (value, result.output)
        target = result.json()["target"]
        assert target["how"] == f"--python {value}"
        if value != "python3":
            assert target["python"] == str(venv / "bin" / "python")
    smoke = cli("smoke", "--only", "torch-cuda", "--python", ".venv/bin/python", cwd=str(tmp_path / "proj"))
    assert "Traceback" not in smoke.output and smoke.code in (0, 1)
    for bad in ("./nothing-here", "no-such-python-command", str(tmp_path)):
        result = cli("check", "--only", "torch", "--python", bad)
        assert result.code == 2 and result.stderr.count("\n") == 1 and "--python" in result.stderr, result.output


def test_the_report_names_the_interpreter_on_its_first_line(cli, tmp_path):
    venv = tmp_path / "venv"
    _fake_python(venv / "bin", "python")
    text = cli("check", "--only", "path", env={"VIRTUAL_ENV": str(venv)}).stdout
    assert text.splitlines()[0].endswith(f"diagnosing {venv}/bin/python (the active virtual environment "
                                         "($VIRTUAL_ENV))")


# ----------------------------------------------------------------------------- one mistake, one root


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc for the bitsandbytes fixture")
def test_a_newcomers_six_mistakes_give_six_roots_and_nothing_else(cli, tmp_path):
    """PATH naming ffmpeg's binary, a missing PATH folder, a quoted HF_ENDPOINT with a trailing
    slash, CUDA_HOME=/nonexistent, BNB_CUDA_VERSION=999 and a relative --python."""
    from bnb_trees import compile_library, make_bitsandbytes, make_torch

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    home = tmp_path / "home"
    (home / "tools").mkdir(parents=True)
    (home / "tools" / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    work = home / "work"
    venv = work / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = venv.glob("lib/python3.*/site-packages")
    make_bitsandbytes(site, "0.50.2", compile_library(tmp_path / "stub", "libstub.so"))
    make_torch(site, None)
    (home / ".bashrc").write_text('export PATH="$HOME/tools/ffmpeg:$HOME/gone/bin:$PATH"\n'
                                  "export HF_ENDPOINT=\"'https://hf-mirror.com/'\"\n"
                                  "export CUDA_HOME=/nonexistent\nexport BNB_CUDA_VERSION=999\n")
    env = {"HOME": str(home), "SHELL": "/bin/bash", "PATH": f"{home}/tools/ffmpeg:{home}/gone/bin:/usr/bin:/bin",
           "HF_ENDPOINT": "'https://hf-mirror.com/'", "CUDA_HOME": "/nonexistent", "BNB_CUDA_VERSION": "999"}
    report = cli("check", "--json", "--python", ".venv/bin/python", env=env, cwd=str(work), timeout=120)
    assert report.code == 1, report.output
    data = report.json()
    assert data["target"]["python"] == str(venv / "bin" / "python")
    findings = [f for c in data["checks"] for f in c["findings"]]
    roots = {f["id"]: f for f in findings if f["severity"] in ("warning", "error") and not f.get("caused_by")}
    assert set(roots) == {"path.missing-entry", "path.file-entry", "hf-endpoint.quoted",
                          "cuda-toolkit.cuda-home-missing"}, sorted(roots)
    assert roots["path.missing-entry"]["fixes"] == roots["path.file-entry"]["fixes"] == ["path"]
    assert roots["hf-endpoint.quoted"]["fixes"] == ["hf-endpoint"]
    assert roots["cuda-toolkit.cuda-home-missing"]["fixes"] == ["cuda-home"]
    consequences = [f for f in findings if f.get("caused_by")]
    assert [(f["id"], f["caused_by"]) for f in consequences] == [("ffmpeg.path-names-the-exe", "path.file-entry")]
    # no GPU here: the override is reported for what it is on this machine, once, below warning
    override = [f for f in findings if "BNB_CUDA_VERSION" in f["message"]]
    assert [f["id"] for f in override] == ["bitsandbytes.override-ignored"]
    assert not [f for f in findings if "CUDA ?" in f["message"] or "ffmpeg is not installed" in f["message"]]
