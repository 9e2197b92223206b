"""The `ffmpeg` check, fix and smoke test with a real ffmpeg (imageio-ffmpeg's build)."""

from __future__ import annotations

import os

import pytest

from llmdoctor.checks.ffmpeg import probe_ffmpeg, rules
from llmdoctor.config import Config
from llmdoctor.fixes.ffmpeg import plan
from llmdoctor.models import FixContext, RuleContext

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
REAL = imageio_ffmpeg.get_ffmpeg_exe()
CONTEXT = RuleContext(platform={"system": "linux"}, config=Config())
SYSTEM_PATH = "/usr/bin:/bin"


@pytest.fixture
def ffmpeg_bin(tmp_path):
    folder = tmp_path / "ffmpeg-bin"
    folder.mkdir()
    (folder / "ffmpeg").symlink_to(REAL)
    return folder


def diagnose(path, tmp_path, gpus=()):
    facts = probe_ffmpeg({"PATH": path, "HOME": str(tmp_path / "home")}, [], timeout=10)
    context = RuleContext(platform={"system": "linux"}, config=Config(),
                          all_facts={"nvidia-driver": {"gpus": list(gpus)}})
    return facts, {f.id: f for f in rules(facts, context)}


def stub(folder, script):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ffmpeg"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def test_real_ffmpeg_is_found_with_its_encoders(ffmpeg_bin, tmp_path):
    facts, found = diagnose(f"{ffmpeg_bin}:{SYSTEM_PATH}", tmp_path)
    assert facts["version"] and {"libx264", "aac"} <= set(facts["encoders"]["present"])
    assert list(found) == ["ffmpeg.found"] and "libx264" in found["ffmpeg.found"].message


def test_missing_encoder(tmp_path):
    folder = tmp_path / "minimal"
    stub(folder, 'case "$*" in\n'
                 '  *-encoders*) printf " V....D mpeg4   MPEG-4 part 2\\n A....D libopus  Opus\\n" ;;\n'
                 '  *) echo "ffmpeg version 6.1-minimal Copyright (c) 2000-2023" ;;\nesac\n')
    facts, found = diagnose(f"{folder}:{SYSTEM_PATH}", tmp_path, gpus=[{"name": "RTX 3060"}])
    assert found["ffmpeg.missing-encoder"].facts["missing"] == ["libx264", "aac"]
    assert "ffmpeg.no-nvenc" in found
    fix = plan(FixContext(facts={"ffmpeg": dict(facts, package_managers=["apt-get"], is_root=False)}, findings=[],
                          platform={"system": "linux", "home": str(tmp_path)}, python="/p"))
    (action,) = fix.actions
    assert action.argv() == ["apt-get", "install", "-y", "--no-install-recommends", "ffmpeg"]
    assert action.needs_admin and action.scope == "machine" and fix.scope == "machine" and fix.unsafe


def test_hung_ffmpeg_is_stopped(tmp_path):
    import time

    folder = tmp_path / "hung"
    stub(folder, "sleep 1000\n")
    started = time.monotonic()
    facts = probe_ffmpeg({"PATH": f"{folder}:{SYSTEM_PATH}", "HOME": str(tmp_path)}, [], timeout=1)
    assert time.monotonic() - started < 4
    found = {f.id: f for f in rules(facts, CONTEXT)}
    assert "hung" in found["ffmpeg.does-not-run"].message


def test_path_entry_naming_the_exe(ffmpeg_bin, tmp_path):
    _, found = diagnose(f"{ffmpeg_bin / 'ffmpeg'}:{SYSTEM_PATH}", tmp_path)
    assert found["ffmpeg.path-names-the-exe"].fixes == ["path"]
    assert found["ffmpeg.path-names-the-exe"].severity == "error"


def test_folder_not_on_path_and_its_fix(cli, tmp_path):
    home = tmp_path / "home"
    (home / "ffmpeg" / "bin").mkdir(parents=True)
    (home / "ffmpeg" / "bin" / "ffmpeg").symlink_to(REAL)
    (home / ".bashrc").write_text("# mine\n")
    env = {"HOME": str(home), "SHELL": "/bin/bash", "PATH": f"{os.path.dirname(os.sys.executable)}:{SYSTEM_PATH}"}
    report = cli("check", "--only", "ffmpeg", "--json", env=env).json()
    ids = {f["id"] for c in report["checks"] for f in c["findings"]}
    assert "ffmpeg.not-on-path" in ids
    applied = cli("fix", "--ffmpeg", "--yes", env=env, timeout=180)
    assert applied.code == 0 and "✓ ffmpeg: fixed" in applied.stdout, applied.output
    assert str(home / "ffmpeg" / "bin") in (home / ".bashrc").read_text()
    assert cli("undo", "--yes", env=env).code == 0
    assert (home / ".bashrc").read_text() == "# mine\n"


def test_smoke_test_encodes_and_decodes(cli, ffmpeg_bin):
    result = cli("smoke", "--only", "ffmpeg", "--json", env={"PATH": f"{ffmpeg_bin}:{os.environ['PATH']}"},
                 timeout=180)
    (smoke,) = result.json()["smoke"]
    assert smoke["status"] == "pass", smoke
    assert smoke["figures"]["video"] == "h264" and smoke["figures"]["audio"] == "aac"
    assert abs(smoke["figures"]["seconds"] - 1.0) < 0.2


def test_smoke_test_fails_without_ffmpeg(cli):
    result = cli("smoke", "--only", "ffmpeg", env={"PATH": SYSTEM_PATH if not os.path.exists("/usr/bin/ffmpeg")
                                                   else "/nonexistent"})
    assert result.code == 1 and "ffmpeg is not on PATH" in result.stdout


def test_bundled_imageio_build_is_linked_then_unlinked(cli, tmp_path):
    import sys

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "SHELL": "/bin/bash", "PATH": f"{os.path.dirname(sys.executable)}:{SYSTEM_PATH}"}
    if os.path.exists("/usr/bin/ffmpeg"):
        pytest.skip("a system ffmpeg is on the default PATH")
    dry = cli("fix", "--ffmpeg", "--dry-run", "--python", sys.executable, env=env)
    assert "link imageio-ffmpeg's binary" in dry.stdout, dry.output
    applied = cli("fix", "--ffmpeg", "--yes", "--python", sys.executable, env=env, timeout=180)
    assert applied.code == 0 and "✓ ffmpeg: fixed" in applied.stdout, applied.output
    link = home / ".local" / "bin" / "ffmpeg"
    assert link.is_symlink() and os.path.realpath(link) == os.path.realpath(REAL)
    assert cli("undo", "--yes", env=env).code == 0
    assert not link.exists() and not link.is_symlink()
    assert not (home / ".bashrc").exists()
