"""The `vs-cuda` check and the `vs-cuda` / `msvc-unsupported` fixes, over Windows folder
trees built under a temporary root (tests/vs_trees.py) with a vswhere stand-in that answers
as the real one does, and over recorded Windows snapshots through `check --snapshot`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from make_vs_cuda_snapshots import SNAPSHOTS, snapshot
from vs_trees import healthy, integrate, make_cuda, make_vs, make_vswhere, probe_scenario, tree_state

from llmdoctor.actions import BroadcastEnvironment, CopyFile, SetEnvVar
from llmdoctor.checks import vs_cuda
from llmdoctor.config import Config
from llmdoctor.executor import Executor
from llmdoctor.fixes import msvc_unsupported
from llmdoctor.fixes import vs_cuda as vs_cuda_fix
from llmdoctor.journal import JournalRecord
from llmdoctor.models import FixContext, RuleContext
from llmdoctor.render.script import render_plan

from conftest import DATA

WINDOWS = {"system": "windows", "release": "11", "is_admin": True}


def diagnose(facts: dict, torch: bool = False) -> list:
    all_facts = {"vs-cuda": facts, "torch": {"installed": torch}}
    return vs_cuda.rules(facts, RuleContext(platform=WINDOWS, config=Config(), all_facts=all_facts))


def problems(findings: list) -> set:
    return {f.id for f in findings if f.severity in ("warning", "error")}


def plan_for(fix, facts: dict, platform=WINDOWS):
    findings = diagnose(facts)
    return fix.plan(FixContext(facts={"vs-cuda": facts}, findings=findings, platform=platform, python="python"))


# ------------------------------------------------------------------ the five scenarios


EXPECTED = {
    "healthy": set(),
    "cuda-before-vs": {"vs-cuda.no-integration"},
    "two-installs": {"vs-cuda.no-integration"},
    "msvc-too-new": {"vs-cuda.msvc-unsupported", "vs-cuda.stl-needs-newer-cuda"},
    "build-tools-only": set(),
}


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_each_scenario_gives_its_findings(scenario, tmp_path):
    facts = probe_scenario(scenario, tmp_path)
    findings = diagnose(facts)
    assert problems(findings) == EXPECTED[scenario], [f.message for f in findings]
    if not EXPECTED[scenario]:
        (ok,) = [f for f in findings if f.id == "vs-cuda.ok"]
        assert "CUDA 12.6.85 is integrated with Visual Studio" in ok.message


def test_missing_integration_quotes_cmake_and_knows_why(tmp_path):
    findings = {f.id: f for f in diagnose(probe_scenario("cuda-before-vs", tmp_path))}
    missing = findings["vs-cuda.no-integration"]
    assert 'stops with "No CUDA toolset found"' in missing.message
    assert missing.facts["missing"] == ["CUDA 12.6.props", "CUDA 12.6.targets", "CUDA 12.6.xml",
                                        "Nvda.Build.CudaTasks.v12.6.dll"]
    after = findings["vs-cuda.installed-after-cuda"]
    assert after.message == ("Visual Studio Community 2022 17.12 was installed (2025-01-15) after CUDA 12.6.85 "
                             "(2024-10-01)")


def test_only_the_install_without_files_is_named(tmp_path):
    (finding,) = [f for f in diagnose(probe_scenario("two-installs", tmp_path)) if f.id == "vs-cuda.no-integration"]
    assert finding.message.startswith("Visual Studio Professional 2019 16.11 has no CUDA build customisation")
    assert finding.facts["install"].endswith("2019/Professional")


def test_msvc_too_new_quotes_nvcc_and_stl(tmp_path):
    findings = {f.id: f for f in diagnose(probe_scenario("msvc-too-new", tmp_path))}
    rejected = findings["vs-cuda.msvc-unsupported"]
    assert "rejects Visual Studio Community 2022 17.14's MSVC 14.44.35207 (_MSC_VER 1944)" in rejected.message
    assert '"unsupported Microsoft Visual Studio version! Only the versions between 2017 and 2022 (inclusive) are ' \
           'supported!"' in rejected.message
    assert "accepts _MSC_VER 1910-1939" in rejected.details
    assert "CMake 3.31.6 retries compiler identification with -allow-unsupported-compiler" in rejected.details
    stl = findings["vs-cuda.stl-needs-newer-cuda"]
    assert "STL1002: Unexpected compiler version, expected CUDA 12.4 or newer." in stl.message


def test_old_cmake_fails_already_at_configure(tmp_path):
    facts = probe_scenario("msvc-too-new", tmp_path)
    facts["cmake"] = {"path": "C:\\Program Files\\CMake\\bin\\cmake.exe", "version": "3.28.3"}
    (rejected,) = [f for f in diagnose(facts) if f.id == "vs-cuda.msvc-unsupported"]
    assert "CMake 3.28.3 is older than 3.29.4, so configure already fails in CMakeCUDACompilerId.cu" in \
        rejected.details


def test_build_tools_are_found_only_with_products_star(tmp_path):
    facts = probe_scenario("build-tools-only", tmp_path)
    (install,) = facts["installs"]
    assert install["product"] == "Microsoft.VisualStudio.Product.BuildTools"
    vswhere = tmp_path / "Installer" / "vswhere"
    plain = subprocess.run([str(vswhere), "-all", "-prerelease", "-format", "json"], capture_output=True,
                           text=True, timeout=30, check=True)
    assert json.loads(plain.stdout) == []  # what a probe without -products * would have seen


def test_props_for_another_cuda_than_nvcc(tmp_path):
    """VS has CUDA 12.8's files (the highest), nvcc is 12.6: CMake compiles with 12.8's rules."""
    newer = make_cuda(tmp_path / "other", "12.8.61", installed="2025-03-01")
    facts_root = tmp_path / "machine"
    vswhere, roots, environment = healthy(facts_root)
    vs = json.loads((facts_root / "Installer" / "instances.json").read_text())[0]
    integrate(vs, newer)
    facts = vs_cuda.probe_vs_cuda(environment, str(vswhere), roots, "/w", timeout=30)
    (finding,) = [f for f in diagnose(facts) if f.id == "vs-cuda.props-mismatch"]
    assert finding.message == ("Visual Studio Community 2022 17.12's highest CUDA build customisation is 12.8, but "
                               "nvcc is CUDA 12.6") and "-T cuda=12.6" in finding.details


def test_vswhere_that_fails_is_reported(tmp_path):
    broken = tmp_path / "vswhere"
    broken.write_text("#!/bin/sh\necho 'Error 0x57: bad argument' >&2\nexit 87\n")
    broken.chmod(0o755)
    facts = vs_cuda.probe_vs_cuda({"PATH": ""}, str(broken), [], "/w", timeout=30)
    ids = {f.id for f in diagnose(facts)}
    assert {"vs-cuda.vswhere-failed", "vs-cuda.no-visual-studio"} <= ids


def test_msc_ver_of_toolsets():
    assert [vs_cuda.msc_ver(v) for v in ("14.16.27023", "14.29.30133", "14.38.33130", "14.44.35207",
                                         "14.50.35717")] == [1916, 1929, 1938, 1944, 1950]


def test_developer_prompt_without_distutils_use_sdk_and_spaces(tmp_path):
    facts = probe_scenario("healthy", tmp_path, cwd="C:\\Users\\Ada Lovelace\\my model")
    facts["env"] = {"VSCMD_ARG_TGT_ARCH": "x64"}
    findings = {f.id: f for f in diagnose(facts, torch=True)}
    assert "Please set `DISTUTILS_USE_SDK=1` and try again." in findings["vs-cuda.distutils-use-sdk"].details
    assert "spaces" in findings["vs-cuda.path-with-spaces"].message
    # outside a PyTorch extension build context (no torch in the target) it does not bite
    assert "vs-cuda.distutils-use-sdk" not in problems(diagnose(facts, torch=False))
    facts["env"]["DISTUTILS_USE_SDK"] = "1"
    assert "vs-cuda.distutils-use-sdk" not in problems(diagnose(facts, torch=True))


# ------------------------------------------------------------------ fix --vs-cuda: copy, verify, undo


@pytest.mark.parametrize("scenario,folder", [("cuda-before-vs", "2022/Community/MSBuild/Microsoft/VC/v170"),
                                             ("two-installs", "2019/Professional/MSBuild/Microsoft/VC/v160")])
def test_fix_copies_into_the_installs_that_lack_it_and_undo_restores_exactly(scenario, folder, tmp_path):
    tmp_path = tmp_path / "C"  # the machine's drive; the journal lives in the test's state folder beside it
    facts = probe_scenario(scenario, tmp_path)
    before = tree_state(tmp_path)
    plan = plan_for(vs_cuda_fix.FIX, facts, platform=dict(WINDOWS, system="linux"))  # POSIX joins for the tree
    source = tmp_path / "Program Files/NVIDIA GPU Computing Toolkit/CUDA/v12.6/extras/visual_studio_integration"
    target = tmp_path / "Program Files/Microsoft Visual Studio" / folder / "BuildCustomizations"
    assert plan.actions == [CopyFile(str(source / "MSBuildExtensions" / name), str(target / name), needs_admin=True)
                            for name in ("CUDA 12.6.props", "CUDA 12.6.targets", "CUDA 12.6.xml",
                                         "Nvda.Build.CudaTasks.v12.6.dll")]
    assert Executor(is_admin=False).preflight(plan.actions)[0].endswith(
        "needs administrator rights (run from an elevated terminal)")
    assert tree_state(tmp_path) == before  # refused before anything changed

    executor = Executor(is_admin=True)
    record = JournalRecord.create("vs-cuda", plan.summary, "windows")
    executor.apply(plan.actions, record)
    facts_after = vs_cuda.probe_vs_cuda({"PATH": str(source.parent.parent / "bin")},
                                        str(tmp_path / "Installer" / "vswhere"),
                                        [str(source.parent.parent)], "/w", timeout=30)
    assert problems(diagnose(facts_after)) == set()
    assert (target / "CUDA 12.6.props").read_bytes() == (source / "MSBuildExtensions" / "CUDA 12.6.props").read_bytes()
    again = plan_for(vs_cuda_fix.FIX, facts_after)
    assert again.is_empty  # re-running on a healthy machine changes nothing

    executor.undo(record)
    assert tree_state(tmp_path) == before


def test_fix_replaces_a_stale_file_and_undo_puts_it_back(tmp_path):
    facts_root = tmp_path / "C"
    healthy(facts_root)
    target = facts_root / "Program Files/Microsoft Visual Studio/2022/Community/MSBuild/Microsoft/VC/v170"
    stale = target / "BuildCustomizations" / "CUDA 12.6.props"
    stale.write_bytes(b"<Project><!-- from CUDA 12.6.0, edited by hand --></Project>")
    (target / "BuildCustomizations" / "CUDA 12.6.xml").unlink()
    facts = probe_scenario_again(facts_root)
    findings = {f.id: f for f in diagnose(facts)}
    incomplete = findings["vs-cuda.integration-incomplete"]
    assert incomplete.facts["missing"] == ["CUDA 12.6.xml"] and incomplete.facts["different"] == ["CUDA 12.6.props"]
    before = tree_state(facts_root)
    plan = plan_for(vs_cuda_fix.FIX, facts, platform={"system": "linux"})
    assert [Path(a.destination).name for a in plan.actions] == ["CUDA 12.6.xml", "CUDA 12.6.props"]
    assert "1 file(s) added, 1 replaced (the old ones are journaled)" in plan.notes[0]
    executor = Executor(is_admin=True)
    record = JournalRecord.create("vs-cuda", plan.summary, "windows")
    executor.apply(plan.actions, record)
    assert problems(diagnose(probe_scenario_again(facts_root))) == set()
    executor.undo(record)
    assert tree_state(facts_root) == before
    assert stale.read_bytes() == b"<Project><!-- from CUDA 12.6.0, edited by hand --></Project>"


def probe_scenario_again(root: Path) -> dict:
    """Probe a scenario tree already built under ``root``, as the check would again."""
    toolkit = next((root / "Program Files/NVIDIA GPU Computing Toolkit/CUDA").iterdir())
    return vs_cuda.probe_vs_cuda({"PATH": str(toolkit / "bin")}, str(root / "Installer" / "vswhere"),
                                 [str(toolkit)], "/w", timeout=30)


def test_dry_run_script_is_elevated_powershell_with_windows_paths():
    facts = json.loads((DATA / "windows-vs-cuda-missing-integration.json").read_text())["facts"]["vs-cuda"]
    plan = plan_for(vs_cuda_fix.FIX, facts)
    script = render_plan(plan, "powershell").splitlines()
    assert script[1] == "#Requires -RunAsAdministrator"
    assert ("Copy-Item -LiteralPath 'C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.6\\extras\\"
            "visual_studio_integration\\MSBuildExtensions\\CUDA 12.6.props' -Destination 'C:\\Program Files\\"
            "Microsoft Visual Studio\\2022\\Community\\MSBuild\\Microsoft\\VC\\v170\\BuildCustomizations\\"
            "CUDA 12.6.props' -Force") in script
    assert sum(line.startswith("Copy-Item") for line in script) == 4


# ------------------------------------------------------------------ fix --msvc-unsupported


def test_msvc_fix_offers_the_safe_choices_first_and_the_override_last(tmp_path):
    plan = plan_for(msvc_unsupported.FIX, probe_scenario("msvc-too-new", tmp_path))
    assert msvc_unsupported.FIX.applicability == "unsafe"
    assert plan.manual_steps[0].startswith("1 (safest) install an MSVC toolset with _MSC_VER 1910-1939")
    assert plan.manual_steps[1] == "2 install CUDA 12.4 or newer, whose nvcc accepts _MSC_VER 1944"
    assert plan.manual_steps[-1].startswith("then delete the CMake build folder")
    assert plan.actions == [SetEnvVar("user", "CUDAFLAGS", "-allow-unsupported-compiler "
                                      "-D_ALLOW_COMPILER_AND_STL_VERSION_MISMATCH", "REG_SZ"), BroadcastEnvironment()]
    assert any(note.startswith("3 (unsafe) CUDAFLAGS=") for note in plan.notes)


def test_msvc_fix_names_a_supported_toolset_already_installed(tmp_path):
    facts = probe_scenario("msvc-too-new", tmp_path)
    # MSVC 14.38 installed side by side (Individual components), 14.44 still the default
    facts["installs"][0]["toolsets"].insert(0, {"version": "14.38.33130", "msc_ver": 1938, "stl_needs_cuda": None})
    (finding,) = [f for f in diagnose(facts) if f.id == "vs-cuda.msvc-unsupported"]
    assert "A supported toolset is installed too: 14.38.33130." in finding.details
    plan = plan_for(msvc_unsupported.FIX, facts)
    assert plan.manual_steps[0] == ("1 (safest) use the installed MSVC 14.38.33130, which CUDA 12.3.107 accepts: "
                                    "cmake -T version=14.38.33130 ..., or 'vcvarsall.bat x64 -vcvars_ver=14.38.33130' "
                                    "before building")


def test_msvc_fix_keeps_existing_cudaflags(tmp_path):
    facts = probe_scenario("msvc-too-new", tmp_path)
    facts["env"] = {"CUDAFLAGS": "-lineinfo"}
    plan = plan_for(msvc_unsupported.FIX, facts)
    assert plan.actions[0].value == ("-lineinfo -allow-unsupported-compiler "
                                     "-D_ALLOW_COMPILER_AND_STL_VERSION_MISMATCH")


# ------------------------------------------------------------------ recorded Windows snapshots


@pytest.mark.parametrize("name,code,expected", [
    ("windows-vs-cuda-healthy.json", 0, {"vs-cuda.ok"}),
    ("windows-vs-cuda-missing-integration.json", 1, {"vs-cuda.no-integration", "vs-cuda.installed-after-cuda"}),
    ("windows-vs-cuda-msvc-too-new.json", 1, {"vs-cuda.msvc-unsupported", "vs-cuda.stl-needs-newer-cuda"}),
])
def test_snapshots_are_diagnosed_on_linux(cli, name, code, expected):
    result = cli("check", "--snapshot", str(DATA / name), "--only", "vs-cuda", "--json")
    assert result.code == code, result.output
    (check,) = result.json()["checks"]
    assert {f["id"] for f in check["findings"]} == expected
    text = cli("check", "--snapshot", str(DATA / name), "--only", "vs-cuda").stdout
    if code:
        assert "llmdoctor fix --" in text


@pytest.mark.parametrize("name", sorted(SNAPSHOTS))
def test_committed_snapshots_match_their_scenarios(name):
    """tests/make_vs_cuda_snapshots.py still makes exactly what is committed."""
    committed = json.loads((DATA / name).read_text())
    assert committed["facts"] == snapshot(SNAPSHOTS[name])["facts"]


def test_the_check_is_skipped_off_windows(cli):
    result = cli("check", "--only", "vs-cuda", "--json")
    (check,) = result.json()["checks"]
    assert check["status"] == "skipped" and "not applicable on linux" in check["reason"]


def test_visual_studio_2017_has_its_own_folder_and_other_toolkits_are_information(tmp_path):
    root = tmp_path / "C"
    cuda = make_cuda(root, "12.6.85", installed="2025-06-01")
    older = make_cuda(root, "12.4.131", installed="2024-06-01")
    vs2017 = make_vs(root, "2017", "Professional", "15.9.28307.2094", ["14.16.27023"], installed="2025-07-01T08:00:00Z")
    vswhere = make_vswhere(root / "Installer", [vs2017])
    facts = vs_cuda.probe_vs_cuda({"PATH": str(cuda / "bin")}, str(vswhere), [str(cuda), str(older)], "/w", timeout=30)
    findings = {f.id: f for f in diagnose(facts)}
    assert set(findings) >= {"vs-cuda.no-integration", "vs-cuda.other-toolkit-not-integrated"}
    assert findings["vs-cuda.other-toolkit-not-integrated"].severity == "info"
    assert "cmake -T cuda=12.4" in findings["vs-cuda.other-toolkit-not-integrated"].details
    plan = plan_for(vs_cuda_fix.FIX, facts, platform={"system": "linux"})
    folder = Path(vs2017["installationPath"], "Common7", "IDE", "VC", "VCTargets", "BuildCustomizations")
    assert {Path(a.destination).parent for a in plan.actions} == {folder}
    assert all("v12.6" in a.source for a in plan.actions)  # the toolkit in use, not every toolkit
    executor = Executor(is_admin=True)
    record = JournalRecord.create("vs-cuda", plan.summary, "windows")
    executor.apply(plan.actions, record)
    facts = vs_cuda.probe_vs_cuda({"PATH": str(cuda / "bin")}, str(vswhere), [str(cuda), str(older)], "/w", timeout=30)
    assert problems(diagnose(facts)) == set()
    integrate(vs2017, older)  # the installer of a CUDA 12.4 run now would do this
    facts = vs_cuda.probe_vs_cuda({"PATH": str(cuda / "bin")}, str(vswhere), [str(cuda), str(older)], "/w", timeout=30)
    assert {f.id for f in diagnose(facts)} == {"vs-cuda.ok"}


def test_toolkits_are_found_from_the_installers_variables_and_folder(tmp_path):
    root = tmp_path / "C"
    first = make_cuda(root, "12.6.85")
    second = make_cuda(root, "12.8.61")
    environment = {"ProgramFiles": str(root / "Program Files"), "CUDA_PATH": str(second),
                   "CUDA_PATH_V12_6": str(first), "CUDA_PATH_V12_8": str(second) + "/"}
    assert vs_cuda.toolkit_roots(environment) == [str(second), str(first)]
