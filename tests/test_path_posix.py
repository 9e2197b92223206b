"""The `path` check and fix on POSIX, through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from llmdoctor.checks.path import probe_posix, rules
from llmdoctor.fixes.path import plan_posix, remove_path_entry
from llmdoctor.models import RuleContext

POSIX = RuleContext(platform={"system": "linux"})


def test_must_show_missing_file_and_duplicate(cli):
    result = cli("check", "--only", "path", "--json",
                 env={"PATH": "/nonexistent:/usr/bin/env:/usr/bin:/usr/bin"})
    report = result.json()
    (path_check,) = report["checks"]
    found = {f["id"]: f for f in path_check["findings"]}
    assert found["path.missing-entry"]["fixes"] == ["path"]
    assert "/nonexistent" in found["path.missing-entry"]["message"]
    assert found["path.file-entry"]["fixes"] == ["path"]
    assert "/usr/bin/env" in found["path.file-entry"]["message"]
    assert found["path.duplicate-entry"]["fixes"] == []  # harmless on POSIX; explained, not edited
    assert "/usr/bin" in found["path.duplicate-entry"]["message"]
    assert path_check["status"] == "warning"
    assert result.code == 0  # warnings only
    assert cli("check", "--only", "path", "--json", "--strict",
               env={"PATH": "/nonexistent:/usr/bin"}).code == 1


def test_file_entry_whose_folder_is_missing_is_an_error(tmp_path):
    tool = tmp_path / "tools" / "ffmpeg"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    facts = probe_posix({"PATH": f"{tool}:/usr/bin", "HOME": str(tmp_path)})
    (finding,) = [f for f in rules(facts, POSIX) if f.id == "path.file-entry"]
    assert finding.severity == "error" and "ffmpeg will not be found" in finding.message


def test_empty_relative_quoted_and_unexpanded_entries(tmp_path):
    facts = probe_posix({"PATH": '/usr/bin::.:"/opt/x":$HOME/bin:~/bin', "HOME": str(tmp_path)})
    found = {f.id: f for f in rules(facts, POSIX)}
    assert found["path.empty-entry"].severity == "warning"
    assert found["path.relative-entry"].facts["entries"] == ["."]
    assert found["path.quoted-entry"].facts["entries"] == ['"/opt/x"']
    assert found["path.unexpanded-variable"].facts["entries"] == ["$HOME/bin", "~/bin"]


def test_findings_say_which_startup_file_sets_the_entry(tmp_path):
    (tmp_path / ".profile").write_text('export PATH="/opt/gone/bin:$PATH"\n')
    facts = probe_posix({"PATH": "/opt/gone/bin:/usr/bin", "HOME": str(tmp_path)})
    (finding,) = [f for f in rules(facts, POSIX) if f.id == "path.missing-entry"]
    assert f"{tmp_path / '.profile'}:1" in finding.details


def test_remove_path_entry_keeps_the_rest_of_the_line():
    assert remove_path_entry('export PATH="/a:/gone:$PATH"', "/gone") == 'export PATH="/a:$PATH"'
    assert remove_path_entry("PATH=$PATH:/gone", "/gone") == "PATH=$PATH"
    assert remove_path_entry("PATH=/gone/sub:/gone:$PATH", "/gone") == "PATH=/gone/sub:$PATH"
    assert remove_path_entry("PATH=/x/ffmpeg:$PATH", "/x/ffmpeg", "/x") == "PATH=/x:$PATH"


def test_entries_not_in_user_files_become_manual_steps(tmp_path):
    facts = probe_posix({"PATH": "/opt/nowhere:/usr/bin", "HOME": str(tmp_path)})
    plan = plan_posix(facts)
    assert plan.actions == [] and "/opt/nowhere" in plan.manual_steps[0]


BASHRC = textwrap.dedent("""\
    # my settings
    export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123
    export PATH="/opt/old-cuda/bin:$PATH"
    export PATH="$PATH:/usr/bin/env"
    export PATH="$HOME/tools/ffmpeg:$PATH"
    alias ll='ls -l'
    """)


def _fixture_home(tmp_path):
    home = tmp_path / "home"
    (home / "tools").mkdir(parents=True, exist_ok=True)
    (home / "tools" / "ffmpeg").write_text("#!/bin/sh\n")
    (home / ".bashrc").write_text(BASHRC)
    path = f"{home}/tools/ffmpeg:/opt/old-cuda/bin:/usr/local/bin:/usr/bin:/bin:/usr/bin/env"
    env = {"HOME": str(home), "SHELL": "/bin/bash", "PATH": path}
    return home, env


def test_fix_consent_apply_verify_undo(cli, tmp_path):
    home, env = _fixture_home(tmp_path)
    bashrc = home / ".bashrc"

    dry = cli("fix", "--path", "--dry-run", env=env)
    assert dry.code == 0 and "sed -i" in dry.stdout and bashrc.read_text() == BASHRC

    no_terminal = cli("fix", "--path", env=env, stdin="")
    assert no_terminal.code == 1 and "--yes" in no_terminal.stdout
    assert bashrc.read_text() == BASHRC

    declined = cli("fix", "path", env=env, stdin="n\n")
    assert declined.code == 1 and bashrc.read_text() == BASHRC

    applied = cli("fix", "--path", "--yes", env=env)
    assert applied.code == 0, applied.output
    assert "✓ path: fixed" in applied.stdout
    text = bashrc.read_text()
    active = [line for line in text.splitlines() if not line.startswith("#")]
    assert not any("/opt/old-cuda" in line or "/usr/bin/env" in line for line in active)
    assert 'export PATH="$HOME/tools:$PATH"' in text  # a file entry became its folder
    assert (home / ".bashrc.llmdoctor-backup").read_text() == BASHRC
    assert "sk-proj-abcdefghijklmnopqrstuvwxyz0123" not in applied.output

    again = cli("fix", "--path", "--yes", env=env)
    assert again.code == 0 and "nothing to change" in again.stdout
    assert bashrc.read_text() == text

    undone = cli("undo", "--yes", env=env)
    assert undone.code == 0, undone.output
    assert bashrc.read_bytes() == BASHRC.encode()
    assert not (home / ".bashrc.llmdoctor-backup").exists()
    assert cli("undo", "--yes", env=env).code == 2  # nothing left to undo


def test_fix_refuses_snapshots(cli):
    result = cli("fix", "--path", "--snapshot", "x.json")
    assert result.code == 2 and "refuse snapshots" in result.stderr


def test_fix_killed_between_actions_can_be_undone(cli, tmp_path):
    """SIGKILL after the first of several line edits; undo restores the file."""
    home, env = _fixture_home(tmp_path)
    script = textwrap.dedent("""
        import os, signal
        from llmdoctor.checks.path import probe_posix
        from llmdoctor.executor import Executor
        from llmdoctor.fixes.path import plan_posix
        from llmdoctor.journal import JournalRecord
        plan = plan_posix(probe_posix())
        assert len(plan.actions) >= 2, plan
        executor = Executor()
        second = plan.actions[1]
        original = type(second).apply
        def dying(self, env, state):
            if self is second:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, env, state)
        type(second).apply = dying
        executor.apply(plan.actions, JournalRecord.create("path", plan.summary, "linux"))
        """)
    full_env = dict(os.environ, **env)
    killed = subprocess.run([sys.executable, "-c", script], env=full_env, capture_output=True,
                            text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    assert (home / ".bashrc").read_text() != BASHRC  # half applied
    listing = cli("undo", "--list", env=env)
    assert "in-progress" in listing.stdout
    assert cli("undo", "--yes", env=env).code == 0
    assert (home / ".bashrc").read_bytes() == BASHRC.encode()


def test_odd_characters_in_path_stay_on_one_line(cli):
    odd = "/opt/new\nline:/opt/tab\there:/usr/bin"
    for args in (["check", "--only", "path"], ["check", "--only", "path", "--json"],
                 ["check", "--only", "path", "--format", "markdown"]):
        result = cli(*args, env={"PATH": odd})
        assert result.code == 0 and "Traceback" not in result.output
    report = cli("check", "--only", "path", "--json", env={"PATH": "/opt/new\nline:/usr/bin"}).json()
    (finding,) = [f for c in report["checks"] for f in c["findings"] if f["id"] == "path.missing-entry"]
    assert "\n" not in finding["message"] and "/opt/new\\nline" in finding["message"]


def test_undecodable_bytes_in_path(tmp_path):
    import subprocess

    env = dict(os.environ)
    env_bytes = {k.encode(): v.encode("utf-8", "surrogateescape") for k, v in env.items()}
    env_bytes[b"PATH"] = b"/opt/caf\xe9/bin:/usr/bin:/bin"
    result = subprocess.run([sys.executable, "-m", "llmdoctor", "check", "--only", "path", "--json"],
                            env=env_bytes, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode("utf-8")  # valid UTF-8 whatever PATH held
    assert "caf\\\\xe9" in text or "caf\\\\udce9" in text or "caf\\udce9" in text


def test_fix_all_picks_fixes_for_current_findings(cli, tmp_path):
    home, env = _fixture_home(tmp_path)
    result = cli("fix", "--all", "--dry-run", env=env)
    assert result.code == 0 and "Fix 'path'" in result.stdout and "sed -i" in result.stdout
    assert (home / ".bashrc").read_text() == BASHRC
    # what this machine image lacks on purpose is acknowledged: --all leaves acknowledged findings alone
    (tmp_path / "llmdoctor.toml").write_text(
        '[[acknowledge]]\nid = "ffmpeg.*"\nreason = "not needed on CI"\n'
        '[[acknowledge]]\nid = "cuda-toolkit.*"\nreason = "no extension builds here"\n')
    healthy = cli("fix", "--all", env={"PATH": "/usr/bin:/bin"})
    assert healthy.code == 0 and "Nothing to fix" in healthy.stdout, healthy.output


def test_undo_refuses_a_record_from_another_platform(cli, tmp_path):
    from llmdoctor.journal import JournalRecord

    record = JournalRecord.create("path", "split Path", "windows")
    record.set_status("applied")
    result = cli("undo", "--yes")
    assert result.code == 2 and "was applied on windows" in result.stderr
