"""Third-party plugins: a tiny package installed into a temporary venv registers a check
through the same entry-point group as the built-ins; a broken one is a finding, not a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from tiny_packages import write_package

PLUGIN_MODULE = '''\
"""An example plugin check."""
from llmdoctor.models import Check, Finding


def probe(context):
    return {"fan_rpm": 0}


def rules(facts, context):
    if facts["fan_rpm"] == 0:
        return [Finding("gpu-fan.stopped", "warning", "the GPU fan is not spinning")]
    return []


CHECK = Check(id="gpu-fan", title="GPU fan", probe=probe, rules=rules)
'''


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    package = write_package(root / "package", "llmdoctor-example-plugin", "0.3.0",
                            modules={"llmdoctor_example": PLUGIN_MODULE,
                                     "llmdoctor_broken": "raise ImportError('needs libfan.so')\n"},
                            entry_points={"llmdoctor.checks": {"gpu-fan": "llmdoctor_example:CHECK",
                                                               "broken": "llmdoctor_broken:CHECK"}})
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # llmdoctor and its dependencies come from the test environment (editable or not)
    outer = sysconfig.get_paths()["purelib"]
    Path(site).mkdir(parents=True, exist_ok=True)
    with open(f"{site}/outer.pth", "w") as handle:
        handle.write(f"import site; site.addsitedir({outer!r})\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                              "--no-deps", "--no-build-isolation", "--no-index", str(package)],
                             timeout=300, capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    return python


def run(python, *args):
    return subprocess.run([str(python), "-m", "llmdoctor", *args], capture_output=True, text=True,
                          timeout=60)


def test_plugin_check_is_listed_with_its_source(plugin_venv):
    listing = json.loads(run(plugin_venv, "list", "--json").stdout)
    (fan,) = [c for c in listing["checks"] if c["id"] == "gpu-fan"]
    assert fan["source"] == "llmdoctor-example-plugin 0.3.0"
    assert {c["id"] for c in listing["checks"]} >= {"path", "disk", "gpu-fan"}
    assert "needs libfan.so" in listing["load_errors"][0]["error"]


def test_plugin_check_runs_and_broken_plugin_is_a_finding(plugin_venv):
    result = run(plugin_venv, "check", "--json")
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["gpu-fan"]["findings"][0]["id"] == "gpu-fan.stopped"
    (load_failed,) = checks["plugins"]["findings"]
    assert load_failed["id"] == "plugins.load-failed" and "needs libfan.so" in load_failed["message"]
    text = run(plugin_venv, "check").stdout
    assert "GPU fan" in text and "could not be loaded" in text


def test_plugin_autoload_can_be_switched_off(plugin_venv):
    env = dict(os.environ, LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD="1")
    listing = subprocess.run([str(plugin_venv), "-m", "llmdoctor", "list", "--json"], capture_output=True, text=True,
                             timeout=60, env=env)
    data = json.loads(listing.stdout)
    ids = {c["id"] for c in data["checks"]}
    assert "gpu-fan" not in ids and {"path", "disk"} <= ids and not data["load_errors"]


LATE_MODULE = '''\
from llmdoctor.models import Check

CHECK = Check(id="late", title="Installed later", probe=lambda context: {}, rules=lambda facts, context: [])
'''

SCAN_PROBE = """
import json, sys
from llmdoctor.registry import load_registry
registry = load_registry()
ids = sorted(registry.checks)
print(json.dumps({"ids": ids, "scanned": "importlib.metadata" in sys.modules}))
"""


def test_the_plugin_cache_follows_installs_and_removals(plugin_venv, tmp_path):
    stable = tmp_path / "stable"
    stable.mkdir()

    def look() -> dict:
        # run from a folder that does not change: '' on sys.path is the working folder, part of the key
        result = subprocess.run([str(plugin_venv), "-c", SCAN_PROBE], capture_output=True, text=True, timeout=60,
                                cwd=stable)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    first, second = look(), look()
    assert "gpu-fan" in first["ids"] and "late" not in first["ids"]
    assert first["scanned"] and not second["scanned"] and second["ids"] == first["ids"]  # the cache answered
    package = write_package(tmp_path / "late", "llmdoctor-late-plugin", "1.0", modules={"llmdoctor_late": LATE_MODULE},
                            entry_points={"llmdoctor.checks": {"late": "llmdoctor_late:CHECK"}})
    pip = [sys.executable, "-m", "pip", "--python", str(plugin_venv)]
    installed = subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                                str(package)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    try:
        after_install = look()
        assert "late" in after_install["ids"] and after_install["scanned"]
    finally:
        removed = subprocess.run([*pip, "uninstall", "--yes", "llmdoctor-late-plugin"], capture_output=True,
                                 text=True, timeout=300)
        assert removed.returncode == 0, removed.stderr
    assert "late" not in look()["ids"]
