"""Shared fixtures: an isolated HOME, state and config folder for every test, and a way to
run the real ``llmdoctor`` command line in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

# ----------------------------------------------------------------------------- catalogue
# Every finding that llmdoctor's own code creates in this process, by id: at the end of the
# session each must be declared in the catalogue (tests/test_catalogue.py checks the source
# statically; this catches ids computed at run time).
RECORDED_IDS: set = set()


def _record_finding_ids() -> None:
    from llmdoctor import models

    package = str(Path(models.__file__).resolve().parent.parent)
    sources = (str(REPO / "checks"), str(REPO / "doctor"), package)
    original = models.Finding.__post_init__

    def recording(self) -> None:
        original(self)
        caller = sys._getframe(2).f_code.co_filename
        if caller.startswith(sources) and "/tests/" not in caller:
            RECORDED_IDS.add(self.id)

    models.Finding.__post_init__ = recording


_record_finding_ids()


def pytest_sessionfinish(session, exitstatus):
    from llmdoctor import catalogue
    from llmdoctor.registry import load_registry

    if not RECORDED_IDS:
        return
    registry = load_registry()
    entries = catalogue.entries(registry)
    undeclared = sorted(i for i in RECORDED_IDS if catalogue.lookup(i, entries, registry.checks) is None
                        and i.split(".", 1)[0] in set(registry.checks) | {"plugins", "config"})
    if undeclared:
        sys.stderr.write("\nundeclared finding ids emitted during the tests (declare them beside their "
                         "rules): " + ", ".join(undeclared) + "\n")
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LLMDOCTOR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LLMDOCTOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LLMDOCTOR_CACHE_DIR", str(tmp_path / "cache"))  # the plugin cache: HOME stays as set up
    # never the internet: network checks are off unless a test turns them on (and then the
    # "official endpoint" is a closed port on this machine, not huggingface.co)
    monkeypatch.setenv("LLMDOCTOR_OFFLINE", "1")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[hf]\nofficial_endpoint = "http://127.0.0.1:9"\n')
    for name in ("HF_ENDPOINT", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "KAGGLE_KERNEL_RUN_TYPE",
                 "KAGGLE_DATA_PROXY_URL", "COLAB_RELEASE_TAG", "COLAB_GPU", "VIRTUAL_ENV",
                 "CONDA_PREFIX", "XDG_CACHE_HOME", "TORCH_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


class CliResult:
    def __init__(self, completed: subprocess.CompletedProcess) -> None:
        self.code = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    def json(self):
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli():
    """Run ``python -m llmdoctor ARGS`` as a user would, with extra environment."""

    def run(*args, env=None, stdin=None, timeout=60, cwd=None) -> CliResult:
        full_env = dict(os.environ)
        full_env.update(env or {})
        completed = subprocess.run(
            [sys.executable, "-m", "llmdoctor", *args],
            capture_output=True, text=True, env=full_env, timeout=timeout,
            input=stdin, cwd=cwd,
        )
        return CliResult(completed)

    return run
