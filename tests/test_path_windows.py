"""Windows PATH rules and the Path split fix, from recorded facts and an in-memory registry."""

from __future__ import annotations

from llmdoctor.checks.path import rules
from llmdoctor.executor import Executor
from llmdoctor.fixes.path import plan_windows
from llmdoctor.journal import JournalRecord
from llmdoctor.knowledge.windows import EDITOR_LIMIT, build_windows_path
from llmdoctor.models import RuleContext
from llmdoctor.winenv import InMemoryRegistry

from windows_facts import CORE_ENV, long_path_registry, path_facts, regsz_path2_registry

WINDOWS = RuleContext(platform={"system": "windows"})


def ids(findings):
    return {f.id: f for f in findings}


def registry_facts(registry):
    return {scope: registry.read_all(scope) for scope in ("machine", "user")}


# ------------------------------------------------------------------ expansion order


def test_system_path_sees_system_reg_sz_but_not_same_scope_expand_sz():
    registry = {
        "machine": {"Path": {"value": "%SystemRoot%\\system32;%Tools%;%Later%", "type": "REG_EXPAND_SZ"},
                    "Tools": {"value": "C:\\Tools", "type": "REG_SZ"},
                    "Later": {"value": "C:\\Later", "type": "REG_EXPAND_SZ"}},
        "user": {},
    }
    built = build_windows_path(registry, CORE_ENV)
    assert built["machine"] == "C:\\Windows\\system32;C:\\Tools;%Later%"


def test_user_path_sees_system_variables_and_user_reg_sz_one_level_deep():
    registry = {
        "machine": {"Path": {"value": "%SystemRoot%", "type": "REG_EXPAND_SZ"},
                    "SysTools": {"value": "C:\\Sys", "type": "REG_EXPAND_SZ"}},
        "user": {"Path": {"value": "%SysTools%;%Mine%;%Nested%", "type": "REG_EXPAND_SZ"},
                 "Mine": {"value": "C:\\Mine;C:\\Mine2", "type": "REG_SZ"},
                 "Nested": {"value": "%Mine%", "type": "REG_SZ"}},
    }
    built = build_windows_path(registry, CORE_ENV)
    # %Nested% expands to the literal '%Mine%': expansion goes one level deep
    assert built["user"] == "C:\\Sys;C:\\Mine;C:\\Mine2;%Mine%"
    assert built["merged"] == "C:\\Windows;" + built["user"]
    assert [e["raw"] for e in built["entries"]][2:4] == ["%Mine%", "%Mine%"]


def test_system_path_cannot_see_user_variables():
    registry = {"machine": {"Path": {"value": "%UserTools%", "type": "REG_EXPAND_SZ"}},
                "user": {"UserTools": {"value": "C:\\U", "type": "REG_SZ"}}}
    facts = path_facts(InMemoryRegistry({"machine": {"Path": ("%UserTools%;%SystemRoot%\\system32", "REG_EXPAND_SZ")},
                                         "user": {"UserTools": ("C:\\U", "REG_SZ")}}),
                       __import__("windows_facts").FakeFilesystem(folders=["C:\\Windows\\system32", "C:\\U"]))
    assert build_windows_path(registry, CORE_ENV)["machine"] == "%UserTools%"
    finding = ids(rules(facts, WINDOWS))["path.reference-will-not-expand"]
    assert "user variable" in finding.details


# ------------------------------------------------------------------ rules on recorded facts


def test_long_path_findings():
    registry, filesystem = long_path_registry()
    facts = path_facts(registry, filesystem)
    merged = ";".join(e["expanded"] for e in facts["entries"])
    assert 8_900 <= len(merged) <= 9_200
    found = ids(rules(facts, WINDOWS))
    assert found["path.too-long-for-cmd"].severity == "error"
    assert found["path.file-entry"].severity == "error"  # C:\ffmpeg\bin is not on Path
    assert "ffmpeg.exe will not be found" in found["path.file-entry"].message
    assert found["path.missing-entry"].facts["entries"][0].startswith("C:\\Program Files\\Uninstalled")
    assert len(found["path.duplicate-entry"].facts["entries"]) == 3  # trailing \, case, exact
    assert found["path.value-too-long-for-editor"].facts["scope"] in ("machine", "user")
    assert "path.missing-system32" not in found
    assert all("path" in f.fixes for f in found.values() if f.severity == "error")


def test_reg_sz_path_with_path2_reference():
    registry, filesystem = regsz_path2_registry()
    found = ids(rules(path_facts(registry, filesystem), WINDOWS))
    assert found["path.reg-sz-with-percent"].severity == "error"
    assert found["path.reference-will-not-expand"].facts["variable"] == "Path2"


def test_missing_system32_and_setx_truncation():
    value = ("C:\\Tools;" * 200)[:1024]
    registry = InMemoryRegistry({"machine": {"Path": ("C:\\Tools", "REG_EXPAND_SZ")},
                                 "user": {"Path": (value, "REG_EXPAND_SZ")}})
    from windows_facts import FakeFilesystem

    found = ids(rules(path_facts(registry, FakeFilesystem(folders=["C:\\Tools"])), WINDOWS))
    assert found["path.missing-system32"].severity == "error"
    assert found["path.setx-truncated"].facts["length"] == 1024


# ------------------------------------------------------------------ the fix


def _apply(plan, registry, tmp_path, is_admin=True):
    executor = Executor(registry=registry, is_admin=is_admin)
    assert executor.preflight(plan.actions) == []
    record = JournalRecord.create("path", plan.summary, "windows")
    executor.apply(plan.actions, record)
    return executor, record


def test_split_fix_produces_working_split_and_undo_restores_exactly(tmp_path):
    registry, filesystem = long_path_registry()
    original = registry.copy()
    facts = path_facts(registry, filesystem)
    plan = plan_windows(facts, {})
    executor, record = _apply(plan, registry, tmp_path)

    # every stored value is editable again, Path is REG_EXPAND_SZ, helpers are REG_SZ
    machine = registry.read_all("machine")
    assert machine["Path"]["type"] == "REG_EXPAND_SZ"
    helpers = [n for n in machine if n.lower().startswith("path") and n != "Path"]
    assert helpers == ["Path2", "Path3", "Path4"]
    for name in ["Path", *helpers]:
        assert len(machine[name]["value"]) <= EDITOR_LIMIT
        if name != "Path":
            assert machine[name]["type"] == "REG_SZ" and "%" not in machine[name]["value"]
    assert registry.broadcasts == 1

    # and Windows' expansion order really expands them: the entries are the cleaned ones
    before = [e["expanded"] for e in facts["entries"]]
    after = [e["expanded"] for e in build_windows_path(registry_facts(registry), CORE_ENV)["entries"]]
    expected = []
    for entry in before:
        entry = "C:\\ffmpeg\\bin" if entry.endswith("ffmpeg.exe") else entry
        key = entry.rstrip("\\").lower()
        if (filesystem.entry_facts(entry)["exists"]
                and key not in {e.rstrip("\\").lower() for e in expected}):
            expected.append(entry)
    assert after == expected
    remaining = [f for f in rules(path_facts(registry, filesystem), WINDOWS)
                 if f.severity in ("warning", "error")]
    assert remaining == []

    # re-running the fix on the healthy registry changes nothing
    assert plan_windows(path_facts(registry, filesystem), {}).actions == []

    executor.undo(record)
    assert registry.data == original.data  # byte for byte, types included


def test_reg_sz_fix_makes_path2_expand(tmp_path):
    registry, filesystem = regsz_path2_registry()
    plan = plan_windows(path_facts(registry, filesystem), {})
    _apply(plan, registry, tmp_path)
    user = registry.read_all("user")
    assert user["Path"]["type"] == "REG_EXPAND_SZ"
    built = build_windows_path(registry_facts(registry), CORE_ENV)
    assert "%" not in built["merged"]
    assert "C:\\Users\\ada\\.cargo\\bin" in built["merged"].split(";")
    assert [f for f in rules(path_facts(registry, filesystem), WINDOWS)
            if f.severity in ("warning", "error")] == []


def test_machine_changes_need_admin_and_nothing_changes_without(tmp_path):
    registry, filesystem = long_path_registry()
    original = registry.copy()
    plan = plan_windows(path_facts(registry, filesystem), {})
    problems = Executor(registry=registry, is_admin=False).preflight(plan.actions)
    assert any("administrator" in p and "machine variable Path" in p for p in problems)
    assert registry.data == original.data


def test_interrupted_fix_can_be_undone(tmp_path):
    """A fix killed after its first action leaves a journal that undo restores."""
    registry, filesystem = long_path_registry()
    original = registry.copy()
    plan = plan_windows(path_facts(registry, filesystem), {})
    record = JournalRecord.create("path", plan.summary, "windows")
    executor = Executor(registry=registry, is_admin=True)
    first = plan.actions[0]
    state = first.prepare(executor.env)
    record.begin(first.to_json(), {k: v for k, v in state.items() if not k.startswith("_")})
    first.apply(executor.env, state)  # ... and the process dies here: no finish, status in-progress
    from llmdoctor.journal import find_record

    found = find_record("path")
    assert found.status == "in-progress"
    executor.undo(found)
    assert registry.data == original.data


# ------------------------------------------------------------------ registry writes are never blind


def test_prepend_path_entry_keeps_the_live_value_and_undoes(tmp_path):
    from llmdoctor.actions import PrependPathEntry

    value = "%USERPROFILE%\\bin;C:\\Tools;C:\\CUDA\\v12.6\\bin\\"
    registry = InMemoryRegistry({"user": {"Path": (value, "REG_EXPAND_SZ")}})
    original = registry.copy()
    executor, record = _apply_actions([PrependPathEntry("user", "C:\\CUDA\\v12.6\\bin")], registry)
    assert registry.get("user", "Path") == ("C:\\CUDA\\v12.6\\bin;%USERPROFILE%\\bin;C:\\Tools", "REG_EXPAND_SZ")
    assert executor.effective([PrependPathEntry("user", "C:\\CUDA\\v12.6\\bin")]) == []  # already first
    executor.undo(record)
    assert registry.data == original.data


def test_set_env_var_refuses_when_the_value_changed_since_diagnosis():
    from llmdoctor.actions import SetEnvVar

    registry = InMemoryRegistry({"user": {"Path": ("C:\\Tools;C:\\Other", "REG_EXPAND_SZ")}})
    stale = SetEnvVar("user", "Path", "C:\\Tools", "REG_EXPAND_SZ", expected=("C:\\Tools;<redacted>", "REG_EXPAND_SZ"))
    problems = Executor(registry=registry, is_admin=True).preflight([stale])
    assert problems and "changed since it was diagnosed" in problems[0]


def test_windows_cuda_home_and_ffmpeg_plans_never_rebuild_path_from_facts():
    from llmdoctor.actions import PrependPathEntry
    from llmdoctor.fixes import cuda_home, ffmpeg
    from llmdoctor.models import FixContext

    platform = {"system": "windows", "home": "C:\\Users\\ada"}
    toolkit = {"root": "C:\\CUDA\\v12.6", "real_root": "C:\\CUDA\\v12.6", "found_by": ["$CUDA_PATH_V12_6"],
               "exists": True, "has_nvcc": True, "has_headers": True, "version": "12.6.85"}
    plan = cuda_home.plan(FixContext(facts={"cuda-toolkit": {"toolkits": [toolkit], "env": {}}},
                                     findings=[], platform=platform, python="python"))
    assert PrependPathEntry("user", "C:\\CUDA\\v12.6\\bin") in plan.actions
    assert not any(getattr(a, "name", "") == "Path" for a in plan.actions)
    plan = ffmpeg.plan(FixContext(facts={"ffmpeg": {"on_path": None, "not_on_path": ["C:\\ffmpeg\\bin"]}},
                                  findings=[], platform=platform, python="python"))
    assert plan.actions[0] == PrependPathEntry("user", "C:\\ffmpeg\\bin")


def _apply_actions(actions, registry):
    executor = Executor(registry=registry, is_admin=True)
    assert executor.preflight(actions) == []
    record = JournalRecord.create("test", "test", "windows")
    executor.apply(actions, record)
    return executor, record
