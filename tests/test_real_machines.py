"""Right on real machines: declared dependencies between checks (``--only`` never changes a
verdict), rules that never touch the OS, one root per mistake, and the interpreter a user
means."""

from __future__ import annotations

import builtins
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmdoctor.registry import load_registry
from llmdoctor.runner import run_rules
from llmdoctor.target import choose_target

from conftest import DATA
from hub_mirror import Mirror

REGISTRY = load_registry()


def _by_check(report: dict) -> dict:
    """Findings per check; free space is measured live, so other processes writing between two
    runs change its figure (not the verdict): the figure is left out of the comparison."""
    def same(message: str) -> str:
        return re.sub(r"\d+(?:\.\d+)? (GB|MB|GiB) free", r"N \1 free", message)

    return {c["id"]: sorted((f["id"], f["severity"], same(f["message"])) for f in c["findings"])
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


# ----------------------------------------------------------------------------- the rules real failures need


def _rules(check, facts: dict, all_facts: dict, system: str = "linux") -> dict:
    from llmdoctor.models import RuleContext

    context = RuleContext(platform={"system": system}, all_facts={**all_facts, check.id: facts})
    return {f.id: f for f in check.rules(facts, context)}


NVCC_OK = {"nvcc": "/usr/local/cuda/bin/nvcc", "run": {"ok": True}, "release": "12.4", "version": "12.4.131",
           "toolkit_root": "/usr/local/cuda-12.4", "host_compiler": {"kind": "gcc", "version": "12.2.0",
                                                                      "path": "/usr/bin/gcc"}}


@pytest.mark.parametrize("release, capability, expected, advice", [
    ("12.4", "12.0", "nvcc.gpu-too-new", "CUDA 12.8 or newer"),      # an RTX 5090 with CUDA 12.4
    ("11.7", "8.9", "nvcc.gpu-too-new", "CUDA 11.8 or newer"),       # an RTX 4090 with CUDA 11.7
    ("13.0", "6.1", "nvcc.gpu-too-old", "CUDA 12.9"),                # a GTX 1080 with CUDA 13.0
    ("12.8", "12.0", None, None), ("13.0", "8.9", None, None),
])
def test_can_this_nvcc_target_this_gpu(release, capability, expected, advice):
    """CUDA release notes: 11.8 added sm_89/sm_90, 12.8 sm_100/sm_120, 13.0 dropped sm_50-sm_72."""
    from llmdoctor.checks import nvcc

    facts = dict(NVCC_OK, release=release, version=release + ".0")
    gpu = {"name": "the GPU", "compute_capability": capability}
    found = _rules(nvcc.CHECK, facts, {"nvidia-driver": {"gpus": [gpu]}})
    arch = {k: v for k, v in found.items() if k.startswith("nvcc.gpu-too")}
    if expected is None:
        assert not arch
    else:
        assert list(arch) == [expected] and advice in arch[expected].details
        assert f"'compute_{capability.replace('.', '')}'" in arch[expected].message


def test_toolkit_against_torch_cuda_for_extension_builds(tmp_path):
    """torch.utils.cpp_extension refuses another major and only warns on another minor."""
    from llmdoctor.checks import cuda_toolkit
    from llmdoctor.fixes import cuda_home
    from llmdoctor.models import FixContext

    from gpu_fakes import make_toolkit

    make_toolkit(tmp_path / "cuda-13.0", "13.0.88")
    facts = cuda_toolkit.probe_toolkits({"CUDA_HOME": str(tmp_path / "cuda-13.0"), "PATH": "/usr/bin"}, [], 10)
    torch = {"installed": True, "version": "2.5.1+cu124", "cuda": "12.4"}
    found = _rules(cuda_toolkit.CHECK, facts, {"torch": torch})
    major = found["cuda-toolkit.torch-cuda-major-mismatch"]
    assert major.severity == "error" and "13.0" in major.message and "12.4" in major.message
    assert major.fixes == [] and "nvidia-cuda-nvcc-cu12" in major.details
    plan = cuda_home.plan(FixContext(facts={"cuda-toolkit": facts, "torch": torch}, findings=[],
                                     platform={"system": "linux", "home": str(tmp_path)}, python="/p"))
    assert not plan.actions and "no installed toolkit has torch's CUDA 12" in plan.manual_steps[0]  # never 13.0

    make_toolkit(tmp_path / "cuda-12.6", "12.6.77")
    facts = cuda_toolkit.probe_toolkits({"CUDA_HOME": str(tmp_path / "cuda-12.6"), "PATH": "/usr/bin"}, [], 10)
    found = _rules(cuda_toolkit.CHECK, facts, {"torch": torch})
    assert found["cuda-toolkit.torch-cuda-minor-mismatch"].severity == "info"


def test_bitsandbytes_beside_a_cpu_torch_is_rooted_in_torch(tmp_path):
    from bnb_trees import compile_library, make_bitsandbytes, make_torch, target

    from llmdoctor.checks import bitsandbytes
    from llmdoctor.fixes import bitsandbytes as bnb_fix
    from llmdoctor.models import FixContext

    site = tmp_path / "site"
    make_bitsandbytes(site, "0.43.1", compile_library(tmp_path / "stub", "libstub.so"))
    make_torch(site, None)
    facts = bitsandbytes.probe_bitsandbytes(target("/venv/bin/python", [site], {"bitsandbytes": "0.43.1",
                                                                                "torch": "2.13.0"}),
                                            {"PATH": "/usr/bin", "HOME": str(tmp_path)}, False, 10.0)
    driver = {"gpus": [{"name": "RTX 4090", "compute_capability": "8.9"}], "cuda_driver_version": 13000}
    found = _rules(bitsandbytes.CHECK, facts, {"nvidia-driver": driver})
    root = found["bitsandbytes.no-cpu-backend"]
    assert root.caused_by == "torch.cpu-only" and root.fixes == ["torch-cuda"]
    plan = bnb_fix.plan(FixContext(facts={"bitsandbytes": facts, "nvidia-driver": driver},
                                   findings=list(found.values()), platform={"system": "linux"}, python="/p"))
    assert not plan.actions and "fix --torch-cuda" in plan.manual_steps[0]


def test_ffmpeg_one_folder_below_a_path_entry(tmp_path):
    from llmdoctor.checks import ffmpeg

    build = tmp_path / "ffmpeg-7.0-full_build"
    (build / "bin").mkdir(parents=True)
    (build / "bin" / "ffmpeg").write_text("#!/bin/sh\n")
    (build / "bin" / "ffmpeg").chmod(0o755)
    facts = ffmpeg.probe_ffmpeg({"PATH": f"{build}:/usr/bin:/bin", "HOME": str(tmp_path / "h")}, [], 5)
    assert str(build / "bin") in facts["not_on_path"]
    found = _rules(ffmpeg.CHECK, facts, {})
    assert found["ffmpeg.not-on-path"].fixes == ["ffmpeg"] and "ffmpeg.missing" not in found


def test_noise_fires_only_where_it_bites():
    from llmdoctor.checks import nvcc

    windows = dict(NVCC_OK, nvcc="C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.4\\bin\\nvcc.exe",
                   toolkit_root="C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.4",
                   host_compiler={"requested": "cl"})
    found = _rules(nvcc.CHECK, windows, {}, system="windows")
    assert "nvcc.spaces-in-path" not in found  # the default install: every build tool quotes it
    assert found["nvcc.no-host-compiler"].severity == "info"
    assert "Visual Studio generator finds cl.exe itself" in found["nvcc.no-host-compiler"].details
    odd = dict(NVCC_OK, nvcc="/opt/my cuda/bin/nvcc", toolkit_root="/opt/my cuda")
    assert "nvcc.spaces-in-path" in _rules(nvcc.CHECK, odd, {})


def test_after_a_fix_this_terminal_is_called_stale_not_broken_again(cli, tmp_path):
    home = tmp_path / "home"
    (home / "tools").mkdir(parents=True)
    (home / "tools" / "ffmpeg").write_text("#!/bin/sh\n")
    (home / "tools" / "ffmpeg").chmod(0o755)
    (home / ".bashrc").write_text('export PATH="$HOME/tools/ffmpeg:$HOME/gone/bin:$PATH"\n')
    env = {"HOME": str(home), "SHELL": "/bin/bash", "PATH": f"{home}/tools/ffmpeg:{home}/gone/bin:/usr/bin:/bin"}
    assert cli("fix", "--path", "--yes", env=env).code == 0
    report = cli("check", "--only", "path", "--json", env=env)
    assert report.code == 0
    (check,) = report.json()["checks"]
    (stale,) = [f for f in check["findings"] if f["severity"] != "ok"]
    assert stale["id"] == "path.stale-terminal" and stale["severity"] == "info" and not stale["fixes"]
    assert f"export PATH={home}/tools:/usr/bin:/bin" in stale["details"]
    again = cli("fix", "--path", "--yes", env=env)
    assert again.code == 0 and "new terminals are already fixed" in again.stdout
    assert f"export PATH={home}/tools:/usr/bin:/bin" in again.stdout

    quoted = {**env, "HF_ENDPOINT": "'http://127.0.0.1:9/'"}
    with open(home / ".bashrc", "a") as handle:
        handle.write("# >>> llmdoctor hf-endpoint >>>\nexport HF_ENDPOINT=http://127.0.0.1:9\n"
                     "# <<< llmdoctor hf-endpoint <<<\n")
    hf = cli("check", "--only", "hf-endpoint", "--json", env=quoted).json()
    ids = {f["id"]: f for c in hf["checks"] for f in c["findings"]}
    assert "hf-endpoint.stale-terminal" in ids and "hf-endpoint.quoted" not in ids
    assert "export HF_ENDPOINT=http://127.0.0.1:9" in ids["hf-endpoint.stale-terminal"]["details"]


def test_bitsandbytes_without_windows_support_is_the_root_on_windows(tmp_path):
    """Releases before 0.43 ship only ELF '.so' files: on Windows that is the root, and their
    dependencies are never looked up through the Windows DLL search."""
    from bnb_trees import compile_library, make_bitsandbytes, make_torch, target

    from llmdoctor.checks import bitsandbytes

    site = tmp_path / "site"
    make_bitsandbytes(site, "0.41.3", compile_library(tmp_path / "stub", "libstub.so"))
    make_torch(site, "12.1")
    facts = bitsandbytes.probe_bitsandbytes(
        target("C:\\venv\\python.exe", [site], {"bitsandbytes": "0.41.3", "torch": "2.5.1"}),
        {"PATH": "", "HOME": str(tmp_path)}, True, 10.0)
    assert facts["libraries"] == {}
    driver = {"gpus": [{"name": "RTX 4090", "compute_capability": "8.9"}], "cuda_driver_version": 13000}
    found = _rules(bitsandbytes.CHECK, facts, {"nvidia-driver": driver}, system="windows")
    assert list(found) == ["bitsandbytes.windows-unsupported"]


def test_library_formats_are_recorded_and_a_foreign_one_is_not_resolved(tmp_path):
    from bnb_trees import compile_library

    from llmdoctor.checks.bitsandbytes import DllResolver, inspect_library

    elf = compile_library(tmp_path / "lib", "libbitsandbytes_cuda121.so")
    macho = tmp_path / "libbitsandbytes_mps.dylib"
    macho.write_bytes(b"\xcf\xfa\xed\xfe" + b"\0" * 60)
    resolver = DllResolver.__new__(DllResolver)  # only its kind matters here
    foreign = inspect_library(elf, resolver)
    assert foreign["format"] == "elf" and foreign["wrong_format"] and foreign["missing"] == []
    assert inspect_library(macho, resolver)["format"] == "mach-o"


def test_the_live_path_is_judged_against_the_registrys(cli):
    """A profile script that prepends on every start, and an entry set with %...% that nothing expanded."""
    result = cli("check", "--snapshot", str(DATA / "windows-live-path-grows.json"), "--only", "path", "--json")
    found = {f["id"]: f for c in result.json()["checks"] for f in c["findings"]}
    assert found["path.live-unexpanded"]["severity"] == "error" and "%CUDA_BIN%" in found["path.live-unexpanded"][
        "message"]
    grows = found["path.live-grows"]
    assert grows["facts"]["registry_length"] < 200 and grows["facts"]["length"] > 7000 and grows["facts"]["repeated"]
    assert "path.too-long-for-cmd" not in found  # the registry's Path is fine: a new terminal is not affected


def test_the_expansion_model_follows_windows_own_stages():
    """Chen, The Old New Thing p=109137: ProgramFiles is a core *user* variable (a system Path
    cannot use it), USERNAME an account variable (no registry value can)."""
    from llmdoctor.knowledge.windows import build_windows_path

    core = {"SystemRoot": "C:\\Windows", "ProgramFiles": "C:\\Program Files", "USERPROFILE": "C:\\Users\\ada",
            "USERNAME": "ada"}
    registry = {"machine": {"Path": {"value": "%SystemRoot%\\system32;%ProgramFiles%\\Tool", "type": "REG_EXPAND_SZ"}},
                "user": {"Path": {"value": "%ProgramFiles%\\Mine;C:\\Users\\%USERNAME%\\bin;%USERPROFILE%\\x",
                                  "type": "REG_EXPAND_SZ"}}}
    entries = [e["expanded"] for e in build_windows_path(registry, core)["entries"]]
    assert entries == ["C:\\Windows\\system32", "%ProgramFiles%\\Tool", "C:\\Program Files\\Mine",
                       "C:\\Users\\%USERNAME%\\bin", "C:\\Users\\ada\\x"]


@pytest.mark.parametrize("release, gcc, broken", [("11.5", "11.4.0", True), ("11.6", "11.4.0", False),
                                                 ("11.5", "10.3.0", False)])
def test_compiler_pairs_the_header_accepts_but_that_are_known_broken(release, gcc, broken):
    """CUDA 11.5 with GCC 11: std_function.h 'parameter packs not expanded' (NVIDIA/nccl#650), fixed in 11.6."""
    from llmdoctor.checks import nvcc

    facts = dict(NVCC_OK, release=release, version=release + ".119",
                 host_compiler={"kind": "gcc", "version": gcc, "path": "/usr/bin/gcc"})
    found = _rules(nvcc.CHECK, facts, {})
    assert ("nvcc.known-broken-pair" in found) == broken
    if broken:
        assert "CUDA 11.6" in found["nvcc.known-broken-pair"].details


def test_a_pyenv_shim_is_resolved_by_pyenvs_own_rules(tmp_path):
    root = tmp_path / ".pyenv"
    shim = _fake_python(root / "shims")
    real = _fake_python(root / "versions" / "3.12.1" / "bin")
    _fake_python(root / "versions" / "3.11.7" / "bin")
    (root / "version").write_text("3.11.7\n")
    project = tmp_path / "project" / "sub"
    project.mkdir(parents=True)
    (tmp_path / "project" / ".python-version").write_text("3.12.1  # the project's\n")
    from llmdoctor.target import pyenv_shim_target

    assert pyenv_shim_target(str(shim), {}, cwd=str(project)) == str(real)
    assert pyenv_shim_target(str(shim), {}, cwd=str(tmp_path)).endswith("3.11.7/bin/python3")
    assert pyenv_shim_target(str(shim), {"PYENV_VERSION": "3.12.1"}, cwd=str(tmp_path)) == str(real)
    assert pyenv_shim_target(str(shim), {"PYENV_VERSION": "system"}) is None
    assert pyenv_shim_target(str(real), {}) is None  # not a shim


def test_bitsandbytes_before_041_takes_the_cuda_of_the_libcudart_it_finds(tmp_path):
    """0.40.0's cuda_setup: $CONDA_PREFIX/lib, LD_LIBRARY_PATH, other path variables, then
    /usr/local/cuda/lib64; the version is that libcudart's, not torch's (0.41 switched to torch)."""
    from bnb_trees import compile_library, make_bitsandbytes, make_torch, target

    from llmdoctor.checks import bitsandbytes

    stub = compile_library(tmp_path / "stub", "libstub.so")
    site = tmp_path / "site"
    make_bitsandbytes(site, "0.40.0", stub, files=["libbitsandbytes_cpu.so", "libbitsandbytes_cuda117.so",
                                                   "libbitsandbytes_cuda121.so"])
    make_torch(site, "12.1")
    old_cuda = tmp_path / "cuda-11.7" / "lib64"
    old_cuda.mkdir(parents=True)
    (old_cuda / "libcudart.so.11.7.99").write_bytes(b"\x7fELF")
    (old_cuda / "libcudart.so").symlink_to("libcudart.so.11.7.99")
    env = {"PATH": "/usr/bin", "HOME": str(tmp_path), "LD_LIBRARY_PATH": str(old_cuda)}
    driver = {"gpus": [{"name": "RTX 4090", "compute_capability": "8.9"}], "cuda_driver_version": 13000}
    probe_target = target("/venv/bin/python", [site], {"bitsandbytes": "0.40.0", "torch": "2.5.1"})

    facts = bitsandbytes.probe_bitsandbytes(probe_target, env, False, 10.0)
    assert facts["cudart_scan"]["via"] == "LD_LIBRARY_PATH" and facts["cudart_scan"]["version"] == "11.7"
    found = _rules(bitsandbytes.CHECK, facts, {"nvidia-driver": driver})
    assert not [f for f in found.values() if f.id in ("bitsandbytes.no-binary", "bitsandbytes.cpu-fallback")]
    mismatch = found["bitsandbytes.runtime-mismatch"]  # torch is 12.1; the release loads the 11.7 library
    assert "libbitsandbytes_cuda117.so" in mismatch.message and "LD_LIBRARY_PATH" in mismatch.details

    facts = bitsandbytes.probe_bitsandbytes(probe_target, dict(env, LD_LIBRARY_PATH=""), False, 10.0)
    if not os.path.exists("/usr/local/cuda/lib64/libcudart.so"):
        assert facts["cudart_scan"]["found"] is None
        found = _rules(bitsandbytes.CHECK, facts, {"nvidia-driver": driver})
        assert "No libcudart.so found" in found["bitsandbytes.no-binary"].details


def test_mirror_without_a_scheme_and_the_dry_runs_apply_line(cli, tmp_path):
    bare = cli("fix", "--hf-endpoint", "--mirror", "hf-mirror.com")
    assert bare.code == 2 and bare.stderr.count("\n") == 1
    assert "--mirror https://hf-mirror.com" in bare.stderr
    mirror = Mirror("healthy")
    try:
        dry = cli("fix", "--hf-endpoint", "--mirror", mirror.url, "--dry-run", env={"LLMDOCTOR_OFFLINE": ""})
    finally:
        mirror.close()
    assert f"apply with 'llmdoctor fix --hf-endpoint --mirror {mirror.url}'" in dry.stdout, dry.output


def test_sources_cited_in_the_code_are_public():
    """No source file names a path outside the repository."""
    from conftest import REPO

    files = [REPO / "README.md", REPO / "pyproject.toml", REPO / ".ci" / "run"]
    for folder in ("doctor", "checks", "fixes", "tests", "benchmarks", "docs"):
        files += [p for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".md", ".toml", ".cpp", ".sh")]
    assert len(files) > 80
    outside = ("shared" + "/reference", "../" + "shared", "/wo" + "rk/")  # spelt apart: this file is read too
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not any(name in text for name in outside), path
