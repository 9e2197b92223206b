"""Repairs a user can trust: undo reverses exactly the fix's own change (text hunks, JSON
keys, Path entries) and refuses with a diff when that region changed; writes keep links,
modes, CRLF and missing final newlines; fixes run roots first; one writer at a time; a fix
killed at any moment can be undone to the byte."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmdoctor.actions import PrependPathEntry, ReplaceLine, SetJsonValue, SetShellBlock, reverse_path_list
from llmdoctor.executor import Executor, UndoRefused
from llmdoctor.journal import JournalRecord
from llmdoctor.textedit import make_hunk, replace_block, reverse_hunk

from conftest import REPO
from hub_mirror import Mirror

BASHRC = "# my bashrc\nexport PATH=\"/opt/old-cuda/bin:$PATH\"\nalias ll='ls -l'\n"
ONLINE = {"LLMDOCTOR_OFFLINE": ""}


def _home(tmp_path, bashrc: str = BASHRC) -> tuple:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".bashrc").write_text(bashrc)
    env = {"HOME": str(home), "SHELL": "/bin/bash",
           "PATH": f"/opt/old-cuda/bin:{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin"}
    return home, env


def _apply(actions: list, registry=None, fix_id: str = "test") -> tuple:
    executor = Executor(registry=registry, is_admin=True)
    record = JournalRecord.create(fix_id, "test", "linux")
    executor.apply(actions, record)
    return executor, record


def tree(folder: Path) -> dict:
    """Every file, link and folder under ``folder``: what "byte-identical" compares."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = ("dir",)
            else:
                found[key] = ("file", path.read_bytes(), path.stat().st_mode & 0o7777)
    return found


# ----------------------------------------------------------------------------- seen by users


def test_a_line_the_user_adds_after_the_fix_survives_undo(cli, tmp_path):
    home, env = _home(tmp_path)
    assert cli("fix", "--path", "--yes", env=env).code == 0
    bashrc = home / ".bashrc"
    assert bashrc.read_text().split("\n")[1].startswith("# export PATH=")  # disabled by the fix
    with bashrc.open("a") as handle:
        handle.write("export EDITOR=vim  # mine, after the fix\n")
    undone = cli("undo", "--yes", env=env)
    assert undone.code == 0, undone.output
    assert bashrc.read_text() == BASHRC + "export EDITOR=vim  # mine, after the fix\n"


def test_out_of_order_undo_keeps_the_other_fixes_block(cli, tmp_path):
    home, env = _home(tmp_path)
    env.update(ONLINE)
    mirror = Mirror("healthy")
    try:
        assert cli("fix", "--path", "--yes", env=env).code == 0
        after_path = (home / ".bashrc").read_text()
        hf = cli("fix", "--hf-endpoint", "--mirror", mirror.url, "--yes", env=env)
        assert hf.code == 0, hf.output
    finally:
        mirror.close()
    with_both = (home / ".bashrc").read_text()
    assert "# >>> llmdoctor hf-endpoint >>>" in with_both

    assert cli("undo", "path", "--yes", env=env).code == 0
    text = (home / ".bashrc").read_text()
    assert "# >>> llmdoctor hf-endpoint >>>" in text and f"HF_ENDPOINT={mirror.url}" in text
    assert 'export PATH="/opt/old-cuda/bin:$PATH"' in text  # the path edit, and only it, is reversed
    listing = cli("undo", "--list", env=env).stdout
    assert re.search(r"-path-\S+\s+undone", listing) and re.search(r"-hf-endpoint-\S+\s+applied", listing)

    assert cli("undo", "hf-endpoint", "--yes", env=env).code == 0
    assert (home / ".bashrc").read_text() == BASHRC  # not the path edit back, as the old undo did
    assert after_path != BASHRC


def test_symlinked_bashrc_stays_a_link_and_its_target_is_edited(cli, tmp_path):
    home, env = _home(tmp_path)
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "bashrc"
    (home / ".bashrc").rename(target)
    target.chmod(0o640)
    (home / ".bashrc").symlink_to(target)
    assert cli("fix", "--path", "--yes", env=env).code == 0
    assert (home / ".bashrc").is_symlink() and os.readlink(home / ".bashrc") == str(target)
    assert target.read_text().split("\n")[1].startswith("# export PATH=")
    assert target.stat().st_mode & 0o777 == 0o640
    assert cli("undo", "--yes", env=env).code == 0
    assert (home / ".bashrc").is_symlink() and target.read_text() == BASHRC
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in dotfiles.iterdir()) == ["bashrc"]  # no temporaries left


def test_undo_refuses_with_a_diff_when_the_block_was_edited(cli, tmp_path):
    home, env = _home(tmp_path)
    env.update(ONLINE)
    mirror = Mirror("healthy")
    try:
        assert cli("fix", "--hf-endpoint", "--mirror", mirror.url, "--yes", env=env).code == 0
    finally:
        mirror.close()
    bashrc = home / ".bashrc"
    edited = bashrc.read_text().replace(f"HF_ENDPOINT={mirror.url}", "HF_ENDPOINT=https://my-own.example")
    bashrc.write_text(edited)
    refused = cli("undo", "--yes", env=env)
    assert refused.code == 1
    assert "changed where this fix edited it" in refused.stdout and "+export HF_ENDPOINT=https://my-own" in \
        refused.stdout and "manual step" in refused.stdout
    assert bashrc.read_text() == edited  # nothing changed
    assert "applied" in cli("undo", "--list", env=env).stdout  # and the journal still says so


# ----------------------------------------------------------------------------- text hunks


@pytest.mark.parametrize("before", [
    "a\nb\n", "a\nb", "", "a\r\nb\r\n", "x\x0cy\nz\u2028w\n", "one line no newline"])
def test_a_block_is_added_and_removed_byte_for_byte(before):
    after = replace_block(before, "demo", ["# >>> llmdoctor demo >>>", "export A=1", "# <<< llmdoctor demo <<<"])
    assert after.startswith(before.rstrip("\n").rstrip("\r") if not before.endswith("\n") else before)
    if "\r\n" in before:
        assert "export A=1\r\n" in after  # CRLF files stay CRLF
    assert reverse_hunk(after, make_hunk(before, after)) == before
    # with the user's own line after the block, the block still comes out cleanly
    ending = "\r\n" if "\r\n" in before else "\n"
    later = after + "mine" + ending
    restored = reverse_hunk(later, make_hunk(before, after))
    assert "export A=1" not in restored and restored.endswith("mine" + ending)
    assert restored.replace("mine" + ending, "").rstrip("\r\n") == before.rstrip("\r\n")


def test_block_replaced_in_place_keeps_the_rest_exactly():
    before = "top\r\n# >>> llmdoctor demo >>>\r\nexport A=1\r\n# <<< llmdoctor demo <<<\r\nbottom"
    after = replace_block(before, "demo", ["# >>> llmdoctor demo >>>", "export A=2", "# <<< llmdoctor demo <<<"])
    assert after == before.replace("A=1", "A=2")
    assert reverse_hunk(after, make_hunk(before, after)) == before


def test_line_numbers_count_newlines_only(tmp_path):
    """A form feed or U+2028 earlier in the file must not shift the edited line."""
    path = tmp_path / "rc"
    original = "# a\x0cb\nexport PATH=/bad:$PATH\u2028x\nalias ll='ls -l'\n"
    path.write_bytes(original.encode())
    action = ReplaceLine(str(path), 2, "export PATH=/bad:$PATH\u2028x", "export PATH=$PATH\u2028x")
    executor, record = _apply([action])
    assert path.read_text().split("\n") == ["# a\x0cb", "export PATH=$PATH\u2028x", "alias ll='ls -l'", ""]
    executor.undo(record)
    assert path.read_bytes() == original.encode()


def test_a_replaced_line_comes_back_where_the_new_one_stands(tmp_path):
    path = tmp_path / "rc"
    path.write_text(BASHRC)
    executor, record = _apply([ReplaceLine(str(path), 2, 'export PATH="/opt/old-cuda/bin:$PATH"',
                                           'export PATH="$PATH"')])
    path.write_text("# added at the top\n" + path.read_text() + "# and at the end\n")
    executor.undo(record)
    assert path.read_text() == "# added at the top\n" + BASHRC + "# and at the end\n"


def test_json_undo_restores_its_key_and_keeps_keys_set_since(tmp_path):
    state = tmp_path / "conda-meta" / "state"
    state.parent.mkdir()
    state.write_text('{"env_vars": {"A": "1"}}')
    executor, record = _apply([SetJsonValue(str(state), ("env_vars", "HF_ENDPOINT"), "https://m.example")])
    import json

    data = json.loads(state.read_text())
    data["env_vars"]["B"] = "2"  # conda env config vars set B=2, after the fix
    state.write_text(json.dumps(data))
    executor.undo(record)
    assert json.loads(state.read_text()) == {"env_vars": {"A": "1", "B": "2"}}

    fresh = tmp_path / "new" / "state"
    executor, record = _apply([SetJsonValue(str(fresh), ("env_vars", "X"), "y")])
    executor.undo(record)
    assert not fresh.exists()


def test_an_interrupted_write_leaves_no_temporary_behind(tmp_path):
    folder = tmp_path / "interrupted"
    folder.mkdir()
    path = folder / "rc"
    path.write_text(BASHRC)
    executor = Executor()
    action = SetShellBlock(str(path), "demo", ("# >>> llmdoctor demo >>>", "x=1", "# <<< llmdoctor demo <<<"))
    record = JournalRecord.create("demo", "demo", "linux")
    state = action.prepare(executor.env)
    record.begin(action.to_json(), {k: v for k, v in state.items() if not k.startswith("_")})
    Path(state["temporary"]).write_bytes(b"half writ")  # killed in the middle of the write
    executor.undo(record)
    assert sorted(p.name for p in folder.iterdir()) == ["rc"] and path.read_text() == BASHRC


def test_nothing_is_created_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    path = tmp_path / "rc"
    path.write_text(BASHRC)
    (tmp_path / "rc.llmdoctor-backup").symlink_to(tmp_path / "elsewhere")  # dangling, planted
    action = SetShellBlock(str(path), "demo", ("# >>> llmdoctor demo >>>", "x=1", "# <<< llmdoctor demo <<<"))
    executor, record = _apply([action])
    assert not (tmp_path / "elsewhere").exists() and victim.read_text() == "keep me"
    executor.undo(record)
    assert path.read_text() == BASHRC and (tmp_path / "rc.llmdoctor-backup").is_symlink()


# ----------------------------------------------------------------------------- the registry


def test_registry_path_undo_keeps_an_entry_an_installer_added_since(tmp_path):
    from llmdoctor.fixes.path import plan_windows

    from windows_facts import long_path_registry, path_facts

    registry, filesystem = long_path_registry()
    original = registry.copy()
    plan = plan_windows(path_facts(registry, filesystem), {})
    executor, record = _apply(plan.actions, registry, "path")
    value, kind = registry.get("machine", "Path")
    registry.set("machine", "Path", value + ";C:\\Program Files\\NewTool\\bin", kind)  # an installer, later

    executor.undo(record)
    restored = registry.get("machine", "Path")
    assert restored == (original.get("machine", "Path")[0] + ";C:\\Program Files\\NewTool\\bin",
                        original.get("machine", "Path")[1])
    for scope in ("user", "machine"):  # everything else as it was, the helpers gone
        others = {k: v for k, v in registry.data[scope].items() if k.lower() != "path"}
        assert others == {k: v for k, v in original.data[scope].items() if k.lower() != "path"}
    assert registry.get("user", "Path") == original.get("user", "Path")


def test_registry_undo_refuses_when_its_own_entry_is_gone():
    from llmdoctor.winenv import InMemoryRegistry

    registry = InMemoryRegistry({"user": {"Path": ("C:\\a;C:\\b", "REG_EXPAND_SZ")}})
    executor, record = _apply([PrependPathEntry("user", "C:\\CUDA\\bin")], registry)
    registry.set("user", "Path", "C:\\a;C:\\b;C:\\c", "REG_EXPAND_SZ")  # someone removed ours, added C:\c
    with pytest.raises(UndoRefused) as refused:
        executor.undo(record)
    assert "C:\\CUDA\\bin" in str(refused.value)
    assert registry.get("user", "Path") == ("C:\\a;C:\\b;C:\\c", "REG_EXPAND_SZ")


def test_path_list_reversal_rules():
    before, after = "C:\\a;C:\\old;C:\\b", "C:\\new;C:\\a;C:\\b"
    assert reverse_path_list(after, before, after) == before
    assert reverse_path_list("C:\\new;C:\\a;C:\\b;C:\\x", before, after) == "C:\\a;C:\\old;C:\\b;C:\\x"
    assert reverse_path_list("C:\\y;C:\\new;C:\\a", before, after) == "C:\\y;C:\\a;C:\\old"  # C:\b removed since


# ----------------------------------------------------------------------------- fix --all, roots first


def test_fix_all_repairs_the_path_entry_naming_ffmpeg_and_installs_nothing(cli, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    home = tmp_path / "home"
    tools = home / "tools"
    tools.mkdir(parents=True)
    (tools / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    bashrc = 'export PATH="$HOME/tools/ffmpeg:$PATH"\n'
    (home / ".bashrc").write_text(bashrc)
    env = {"HOME": str(home), "SHELL": "/bin/bash",
           "PATH": f"{tools}/ffmpeg:{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin"}
    report = cli("check", "--json", "--only", "path,ffmpeg", env=env).json()
    findings = {f["id"]: f for c in report["checks"] for f in c["findings"]}
    assert "ffmpeg.missing" not in findings  # it is installed: the PATH entry is the root
    assert findings["ffmpeg.path-names-the-exe"]["caused_by"] == "path.file-entry"

    applied = cli("fix", "--all", "--yes", env=env, timeout=300)
    assert "✓ path: fixed" in applied.stdout, applied.output
    assert "Fix 'ffmpeg'" not in applied.stdout  # after the path fix, nothing is left for it
    from llmdoctor.journal import load_records

    os.environ["LLMDOCTOR_STATE_DIR"] = str(tmp_path / "state")
    kinds = {e["action"]["kind"] for r in load_records() for e in r.entries}
    assert not kinds & {"package-install", "pip-install", "run"}, kinds
    assert 'export PATH="$HOME/tools:$PATH"' in (home / ".bashrc").read_text()
    fresh = subprocess.run(["bash", "-ic", "command -v ffmpeg"], env={**env, "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=30)
    assert fresh.stdout.strip() == f"{tools}/ffmpeg"


def test_root_first_orders_consequences_after_their_roots():
    from llmdoctor.fixing import root_first
    from llmdoctor.models import Finding

    findings = [Finding("ffmpeg.missing", "warning", "m", fixes=["ffmpeg"], caused_by="path.file-entry"),
                Finding("path.file-entry", "error", "p", fixes=["path"])]
    assert root_first(["ffmpeg", "path"], findings) == ["path", "ffmpeg"]
    assert root_first(["ffmpeg"], findings) == ["ffmpeg"]


def test_ffmpeg_dry_run_offers_the_user_route_first_and_labels_apt(cli, tmp_path):
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("needs root on a Debian-like system")
    home = tmp_path / "home"
    env = {"HOME": str(home), "SHELL": "/bin/bash", "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"}
    if shutil.which("ffmpeg", path=env["PATH"]):
        pytest.skip("a system ffmpeg is on the default PATH")
    dry = cli("fix", "--ffmpeg", "--dry-run", "--python", sys.executable, env=env)
    assert dry.code == 0, dry.output
    assert "scope: user; administrator rights: not needed" in dry.stdout
    assert "apt-get install" not in dry.stdout.split("other routes")[0]  # not in the plan itself
    assert "--route apt-get: apt-get install -y --no-install-recommends ffmpeg [machine scope, administrator " \
           "rights]" in dry.stdout
    apt = cli("fix", "--ffmpeg", "--dry-run", "--route", "apt-get", env=env)
    assert "scope: machine; administrator rights: needed (you have them)" in apt.stdout
    assert "[machine scope, administrator rights]" in apt.stdout
    listing = cli("list", env=env).stdout
    assert re.search(r"--ffmpeg .*machine scope and admin with --route apt-get", listing)


def test_a_system_install_is_unsafe_unless_named():
    from llmdoctor.fixes.ffmpeg import plan
    from llmdoctor.models import FixContext

    facts = {"ffmpeg": {"on_path": None, "package_managers": ["apt-get"], "not_on_path": [], "imageio_ffmpeg": []}}
    context = FixContext(facts=facts, findings=[], platform={"system": "linux", "home": "/h"}, python="/p")
    unnamed = plan(context)
    assert unnamed.scope == "machine" and unnamed.needs_admin and unnamed.unsafe
    named = plan(FixContext(**{**context.__dict__, "options": {"route": "apt-get"}}))
    assert named.scope == "machine" and not named.unsafe


@pytest.mark.skipif(not shutil.which("apt-get") or not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root and apt-get (CI is root on Debian)")
def test_an_apt_install_is_undone_completely():
    from llmdoctor.package_install import PackageInstall

    package = "toilet"  # three packages: toilet, toilet-fonts, libcaca0
    simulated = subprocess.run(["apt-get", "-s", "install", "--no-install-recommends", package],
                               capture_output=True, text=True)
    if simulated.returncode != 0 or "Inst " + package not in simulated.stdout:
        pytest.skip(f"{package} is not installable here (apt lists missing, or installed already)")
    listing = ["dpkg-query", "-W", "-f", "${binary:Package} ${Version} ${db:Status-Abbrev}\n"]
    before = subprocess.run(listing, capture_output=True, text=True).stdout
    executor, record = _apply([PackageInstall("apt-get", (package,))], fix_id="ffmpeg")
    try:
        added = record.entries[0]["data"]["added"]
        assert package in added and len(added) >= 2, added
    finally:
        notes = executor.undo(record)
    assert not [n for n in notes if not n.startswith("note: ")], notes
    assert subprocess.run(listing, capture_output=True, text=True).stdout == before


# ----------------------------------------------------------------------------- one writer, and kills


def test_two_fixes_at_once_one_applies_the_other_refuses(tmp_path):
    home, env = _home(tmp_path)
    slow = tmp_path / "slow-shell"  # a bash that takes a second to start: the first fix holds the lock longer
    slow.mkdir()
    (slow / "bash").write_text("#!/bin/sh\nsleep 1\nexec /bin/bash \"$@\"\n")
    (slow / "bash").chmod(0o755)
    full = {**os.environ, **env, "SHELL": str(slow / "bash"), "LLMDOCTOR_LOCK_WAIT_S": "0.2"}
    argv = [sys.executable, "-m", "llmdoctor", "fix", "--path", "--yes"]
    runs = [subprocess.Popen(argv, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(r.wait(timeout=120), *r.communicate()) for r in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    assert refused.strip().count("\n") == 0 and "another llmdoctor fix or undo is running" in refused
    text = (home / ".bashrc").read_text()
    assert text.count("alias ll") == 1 and text.count("disabled by llmdoctor") == 1


def _kill_loop(tmp_path, argv_tail: list, env: dict, kills_wanted: int, seed: int) -> int:
    """Run a fix, SIGKILL it at a random moment, undo, and compare HOME, until ``kills_wanted``
    runs were really killed (a run that finished first is checked too); returns the kills."""
    home = Path(env["HOME"])
    full = {**os.environ, **env, "LLMDOCTOR_STATE_DIR": str(tmp_path / "kill-state")}
    original = tree(home)
    argv = [sys.executable, "-m", "llmdoctor", "fix", *argv_tail, "--yes"]
    started = time.monotonic()
    subprocess.run(argv, env=full, capture_output=True, timeout=120)
    duration = time.monotonic() - started
    subprocess.run([sys.executable, "-m", "llmdoctor", "undo", "--yes"], env=full, capture_output=True, timeout=60)
    assert tree(home) == original
    rng = random.Random(seed)
    kills = rounds = 0
    while kills < kills_wanted and rounds < 3 * kills_wanted:
        rounds += 1
        process = subprocess.Popen(argv, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        time.sleep(rng.uniform(0.02, 0.9 * duration))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        undo = subprocess.run([sys.executable, "-m", "llmdoctor", "undo", "--yes"], env=full,
                              capture_output=True, text=True, timeout=60)
        assert undo.returncode in (0, 2), undo.stdout + undo.stderr  # 2: killed before the journal existed
        assert tree(home) == original, (undo.stdout, undo.stderr)
    return kills


def test_fixes_killed_at_random_moments_undo_to_the_byte(tmp_path):
    home, env = _home(tmp_path)
    (home / ".bashrc").write_bytes(b"# mine\r\nexport PATH=\"/opt/old-cuda/bin:$PATH\"\nalias x=y")  # odd endings
    kills = _kill_loop(tmp_path, ["--path"], env, kills_wanted=25, seed=12)
    mirror = Mirror("healthy")
    try:
        kills += _kill_loop(tmp_path, ["--hf-endpoint", "--mirror", mirror.url], {**env, **ONLINE},
                            kills_wanted=25, seed=14)
    finally:
        mirror.close()
    assert kills >= 50


def test_no_isinstance_dispatch_over_actions():
    for name in ("doctor/executor.py", "doctor/render/script.py"):
        assert "isinstance(" not in (REPO / name).read_text(), name
