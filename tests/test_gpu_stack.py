"""The GPU stack: nvidia-driver, cuda-toolkit, nvcc and torch checks, their fixes, and
the smoke tests that can run here (nvcc compiles for real against /usr/local/cuda)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from llmdoctor.checks import cuda_toolkit, nvcc, nvidia_driver, torch
from llmdoctor.config import Config
from llmdoctor.fixes import cuda_home, torch_cuda
from llmdoctor.knowledge.cuda import driver_verdict, parse_version
from llmdoctor.models import FixContext, RuleContext

from gpu_fakes import RTX_3060, RTX_4090, FakeNVML, make_toolkit

LINUX = {"system": "linux", "shell": "/bin/bash", "home": "/home/ada"}


def ids(findings):
    return {f.id: f for f in findings}


def context(all_facts, platform=LINUX):
    return RuleContext(platform=platform, config=Config(), all_facts=all_facts)


def driver_facts(**kwargs):
    return nvidia_driver.probe_nvml(FakeNVML(**kwargs))


# ------------------------------------------------------------------ knowledge


def test_version_parsing_and_driver_rule():
    assert parse_version("cu124") == (12, 4) and parse_version("V13.0.88") == (13, 0)
    assert driver_verdict((12, 4), (12, 8)) is None
    assert driver_verdict((12, 8), (12, 4)) == "minor"
    assert driver_verdict((13, 0), (12, 9)) == "major"


# ------------------------------------------------------------------ nvidia-driver


def test_nvml_facts_and_bandwidth():
    facts = driver_facts(gpus=[RTX_4090])
    (gpu,) = facts["gpus"]
    assert gpu["compute_capability"] == "8.9" and gpu["bandwidth_gb_s"] == 1008.1  # the 4090's spec
    found = ids(nvidia_driver.rules(facts, context({})))
    assert "supports CUDA up to 13.0" in found["nvidia-driver.version"].message
    assert "RTX 4090" in found["nvidia-driver.gpu"].message and "1,008 GB/s" in found["nvidia-driver.gpu"].message


def test_no_driver_is_information_not_an_error():
    facts = driver_facts(init_error=FakeNVML.NVML_ERROR_LIBRARY_NOT_FOUND)
    assert facts["nvml"] == "library-not-found"
    (finding,) = nvidia_driver.rules(facts, context({}))
    assert finding.id == "nvidia-driver.none" and finding.severity == "info"


def test_nvml_errors_become_readable():
    facts = driver_facts(init_error=FakeNVML.NVML_ERROR_DRIVER_NOT_LOADED)
    (finding,) = nvidia_driver.rules(facts, context({}))
    assert finding.severity == "error" and "not running" in finding.message


def test_wsl_library_path():
    facts = {"nvml": "library-not-found", "wsl": True, "wsl_nvml_present": True, "ld_library_path": ""}
    assert "nvidia-driver.wsl-library-path" in ids(nvidia_driver.rules(facts, context({})))


def test_pynvml_clash():
    facts = driver_facts(gpus=[RTX_3060])
    facts["pynvml_distributions"] = {"pynvml": "11.5.0", "nvidia-ml-py": "12.560.30"}
    assert "nvidia-driver.pynvml-clash" in ids(nvidia_driver.rules(facts, context({})))
    facts["pynvml_distributions"] = {"pynvml": "13.0.1", "nvidia-ml-py": "13.580.82"}  # the shim: fine
    assert "nvidia-driver.pynvml-clash" not in ids(nvidia_driver.rules(facts, context({})))


# ------------------------------------------------------------------ cuda-toolkit


@pytest.fixture
def trees(tmp_path):
    roots = {v: make_toolkit(tmp_path / f"cuda-{v}", v) for v in ("11.8.89", "12.4.131", "12.6.85")}
    return roots


def toolkit_facts(env):
    return cuda_toolkit.probe_toolkits(env, [], timeout=10)


def test_several_toolkits_with_versions_and_picks(trees):
    env = {"PATH": f"{trees['12.4.131']}/bin:/usr/bin:/bin", "CUDA_PATH_V11_8": str(trees["11.8.89"]),
           "CUDA_PATH_V12_6": str(trees["12.6.85"])}
    facts = toolkit_facts(env)
    by_root = {t["root"]: t for t in facts["toolkits"]}
    assert by_root[str(trees["11.8.89"])]["version"] == "11.8.89"
    assert by_root[str(trees["11.8.89"])]["version_source"] == "version.json"
    assert cuda_toolkit.torch_pick(facts)[0] == str(trees["12.4.131"])  # dirname(dirname(which nvcc))
    found = ids(cuda_toolkit.rules(facts, context({})))
    assert "12.4.131" in found["cuda-toolkit.found"].message


def test_cuda_home_disagrees_with_nvcc_on_path(trees):
    env = {"PATH": f"{trees['12.4.131']}/bin:/usr/bin:/bin", "CUDA_HOME": str(trees["11.8.89"])}
    found = ids(cuda_toolkit.rules(toolkit_facts(env), context({})))
    finding = found["cuda-toolkit.home-disagrees-with-nvcc"]
    assert "CUDA 11.8.89" in finding.message and "CUDA 12.4.131" in finding.message
    assert finding.fixes == ["cuda-home"]


def test_cuda_home_missing(tmp_path):
    found = ids(cuda_toolkit.rules(toolkit_facts({"PATH": "/usr/bin", "CUDA_HOME": str(tmp_path / "gone")}),
                                   context({})))
    assert found["cuda-toolkit.cuda-home-missing"].severity == "error"


def test_toolkit_newer_than_driver(trees):
    env = {"PATH": f"{trees['12.6.85']}/bin:/usr/bin"}
    facts = toolkit_facts(env)
    minor = ids(cuda_toolkit.rules(facts, context({"nvidia-driver": driver_facts(cuda=12040, gpus=[RTX_3060])})))
    assert minor["cuda-toolkit.newer-than-driver"].severity == "warning"
    assert "cudaErrorUnsupportedPtxVersion" in minor["cuda-toolkit.newer-than-driver"].details
    major = ids(cuda_toolkit.rules(facts, context({"nvidia-driver": driver_facts(cuda=11080, gpus=[RTX_3060],
                                                                                  driver="522.06")})))
    assert major["cuda-toolkit.newer-than-driver"].severity == "error"
    assert "525.60.13" in major["cuda-toolkit.newer-than-driver"].details


def test_windows_torch_takes_the_first_glob_match_not_the_newest():
    facts = {"os": "windows", "env": {}, "nvcc_on_path": None, "windows_glob": [
        "C:/Program Files/NVIDIA GPU Computing Toolkit/CUDA/v11.8",
        "C:/Program Files/NVIDIA GPU Computing Toolkit/CUDA/v12.6"], "toolkits": []}
    root, why = cuda_toolkit.torch_pick(facts)
    assert root.endswith("v11.8") and "not the newest" in why


def test_no_toolkit_is_information():
    found = ids(cuda_toolkit.rules({"env": {}, "toolkits": []}, context({})))
    assert found["cuda-toolkit.none"].severity == "info"


def test_nvcc_wrapper_scripts_are_seen_through(tmp_path, trees):
    wrapper_dir = tmp_path / "wrappers"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "nvcc"
    wrapper.write_text(f'#!/bin/sh\nexec {trees["12.6.85"]}/bin/nvcc "$@"\n')
    wrapper.chmod(0o755)
    facts = toolkit_facts({"PATH": f"{wrapper_dir}:/usr/bin"})
    assert facts["nvcc_wrapper_for"] == f"{trees['12.6.85']}/bin/nvcc"
    found = ids(cuda_toolkit.rules(facts, context({})))
    assert str(tmp_path) in found["cuda-toolkit.torch-home-not-a-toolkit"].message  # torch: dirname(dirname)


# ------------------------------------------------------------------ nvcc


def test_host_config_that_rejects_the_installed_gcc(tmp_path):
    if not shutil.which("gcc"):
        pytest.skip("no gcc here")
    root = make_toolkit(tmp_path / "cuda-12.1", "12.1.105", gcc_max=11)
    facts = nvcc.probe_nvcc({"PATH": f"{root}/bin:{os.environ['PATH']}"}, timeout=10)
    assert facts["host_config"]["gcc_max_major"] == 11
    found = ids(nvcc.rules(facts, context({})))
    gcc_major = int(facts["host_compiler"]["version"].split(".")[0])
    if gcc_major > 11:
        finding = found["nvcc.host-compiler-unsupported"]
        assert "unsupported GNU version! gcc versions later than 11" in finding.message
        assert "NVCC_PREPEND_FLAGS='-ccbin /usr/bin/g++-11'" in finding.details
    else:
        assert "nvcc.host-compiler" in found


def test_ccbin_in_flags_is_honoured(tmp_path):
    root = make_toolkit(tmp_path / "cuda-12.4", "12.4.131")
    env = {"PATH": f"{root}/bin:/usr/bin:/bin", "NVCC_PREPEND_FLAGS": "-ccbin /opt/missing/g++-13"}
    found = ids(nvcc.rules(nvcc.probe_nvcc(env, timeout=10), context({})))
    assert found["nvcc.ccbin-missing"].severity == "error"


def test_msvc_window_from_recorded_facts():
    facts = {"nvcc": "C:\\CUDA\\v12.3\\bin\\nvcc.exe", "run": {"ok": True}, "release": "12.3", "version": "12.3.107",
             "toolkit_root": "C:\\CUDA\\v12.3", "host_config": {"msvc_min": 1910, "msvc_limit": 1940},
             "host_compiler_from": "PATH",
             "host_compiler": {"requested": "cl", "path": "cl.exe", "kind": "msvc", "version": "19.44",
                               "msc_ver": 1944}}
    found = ids(nvcc.rules(facts, context({})))
    assert "unsupported Microsoft Visual Studio version!" in found["nvcc.host-compiler-unsupported"].message


# ------------------------------------------------------------------ torch


def torch_facts(tmp_path, version, cuda, companions=None):
    site = tmp_path / "site-packages"
    (site / "torch").mkdir(parents=True, exist_ok=True)
    (site / "torch" / "version.py").write_text(
        f"from typing import Optional\n__all__ = ['__version__']\n__version__ = '{version}'\n"
        f"debug = False\ncuda: Optional[str] = {repr(cuda)}\nhip: Optional[str] = None\n")
    facts = torch.probe_torch([str(site)])
    facts.update(python="/envs/llm/bin/python", companions=companions or {})
    return facts


def test_cpu_torch_on_a_gpu_machine_and_its_fix(tmp_path):
    facts = torch_facts(tmp_path, "2.5.1+cpu", None, {"torchvision": "0.20.1+cpu"})
    assert facts["version"] == "2.5.1+cpu" and facts["cuda"] is None
    driver = driver_facts(cuda=12040, gpus=[RTX_3060], driver="550.54.14")
    finding = ids(torch.rules(facts, context({"nvidia-driver": driver})))["torch.cpu-only"]
    assert finding.severity == "error" and finding.fixes == ["torch-cuda"]
    plan = torch_cuda.plan(FixContext(facts={"torch": facts, "nvidia-driver": driver}, findings=[finding],
                                      platform=LINUX, python="/envs/llm/bin/python"))
    (action,) = plan.actions
    assert action.requirements == ("torch==2.5.1+cu124", "torchvision==0.20.1+cu124")
    assert action.index_url == "https://download.pytorch.org/whl/cu124"
    assert action.restore_index_url == "https://download.pytorch.org/whl/cpu"
    assert action.python == "/envs/llm/bin/python"


def test_driver_too_old_for_torch(tmp_path):
    facts = torch_facts(tmp_path, "2.9.0+cu130", "13.0")
    driver = driver_facts(cuda=12080, gpus=[RTX_4090], driver="570.124.04")
    finding = ids(torch.rules(facts, context({"nvidia-driver": driver})))["torch.newer-than-driver"]
    assert finding.severity == "error" and "is_available() will be False" in finding.message
    plan = torch_cuda.plan(FixContext(facts={"torch": facts, "nvidia-driver": driver}, findings=[finding],
                                      platform=LINUX, python="/p"))
    assert plan.actions[0].requirements == ("torch==2.9.0+cu128",)


def test_driver_too_old_for_every_build_is_a_manual_step(tmp_path):
    facts = torch_facts(tmp_path, "2.9.0+cu130", "13.0")
    driver = driver_facts(cuda=11040, gpus=[RTX_3060], driver="470.82")
    plan = torch_cuda.plan(FixContext(facts={"torch": facts, "nvidia-driver": driver}, findings=[],
                                      platform=LINUX, python="/p"))
    assert plan.actions == [] and "update the NVIDIA driver" in plan.manual_steps[0]


def test_healthy_torch_needs_no_fix(tmp_path):
    facts = torch_facts(tmp_path, "2.6.0+cu124", "12.4")
    driver = driver_facts(cuda=12080, gpus=[RTX_4090])
    assert [f.id for f in torch.rules(facts, context({"nvidia-driver": driver}))] == ["torch.version"]
    assert torch_cuda.plan(FixContext(facts={"torch": facts, "nvidia-driver": driver}, findings=[],
                                      platform=LINUX, python="/p")).is_empty


def test_arch_list_missing_the_gpu():
    facts = {"installed": True, "version": "2.3.1+cu121", "cuda": "12.1", "python": "/p",
             "arch_list": ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]}
    blackwell = dict(RTX_4090, name="NVIDIA GeForce RTX 5090", cc=(12, 0))
    driver = driver_facts(cuda=12080, gpus=[blackwell])
    assert "torch.arch-missing" in ids(torch.rules(facts, context({"nvidia-driver": driver})))


# ------------------------------------------------------------------ cuda-home fix


def test_cuda_home_fix_picks_torchs_toolkit_and_writes_a_block(trees, tmp_path):
    facts = {"cuda-toolkit": toolkit_facts({"PATH": f"{trees['11.8.89']}/bin:/usr/bin",
                                            "CUDA_HOME": str(trees["11.8.89"]),
                                            "CUDA_PATH_V12_6": str(trees["12.6.85"])}),
             "torch": {"installed": True, "cuda": "12.6"}}
    plan = cuda_home.plan(FixContext(facts=facts, findings=[], python="/p",
                                     platform=dict(LINUX, home=str(tmp_path))))
    (action,) = plan.actions
    assert action.path == str(tmp_path / ".bashrc")
    assert f"export CUDA_HOME={trees['12.6.85']}" in action.lines
    assert "matches torch's CUDA 12.6" in plan.notes[0]


# ------------------------------------------------------------------ this machine, for real

needs_toolkit = pytest.mark.skipif(not os.path.exists("/usr/local/cuda/bin/nvcc"),
                                   reason="needs the CUDA toolkit in /usr/local/cuda")


@needs_toolkit
def test_this_machine_reports_toolkit_nvcc_and_no_driver(cli):
    report = cli("check", "--json", "--only", "nvidia-driver,cuda-toolkit,nvcc,torch").json()
    checks = {c["id"]: c for c in report["checks"]}
    findings = {f["id"]: f for c in report["checks"] for f in c["findings"]}
    assert checks["nvidia-driver"]["status"] in ("info", "ok")  # absent driver is not an error
    assert "cuda-toolkit.found" in findings and "13.0" in findings["cuda-toolkit.found"]["message"]
    assert findings["nvcc.version"]["message"].startswith("nvcc 13.0")
    assert "nvcc.host-compiler" in findings
    assert all(c["status"] != "error" for c in report["checks"])


@needs_toolkit
def test_nvcc_smoke_compiles_for_real(cli):
    result = cli("smoke", "--only", "nvcc", "--json", timeout=240)
    (smoke,) = result.json()["smoke"]
    assert smoke["status"] == "pass", smoke
    assert "compiled a tiny kernel" in smoke["message"] and smoke["figures"]["compile_s"] > 0


def test_nvml_and_torch_smoke_skip_without_a_gpu(cli):
    result = cli("smoke", "--only", "nvml,torch-cuda", "--json", timeout=240)
    statuses = {s["id"]: s["status"] for s in result.json()["smoke"]}
    assert statuses == {"nvml": "skipped", "torch-cuda": "skipped"} and result.code == 0


@needs_toolkit
def test_cuda_home_fix_end_to_end_on_this_machine(cli, tmp_path):
    """The nvcc on PATH here is a wrapper in /usr/local/bin, so PyTorch would take /usr/local."""
    if not (os.environ["PATH"].split(":") and shutil.which("nvcc") == "/usr/local/bin/nvcc"):
        pytest.skip("needs the /usr/local/bin/nvcc wrapper of this machine image")
    home = tmp_path / "home"
    env = {"HOME": str(home), "SHELL": "/bin/bash"}
    before = cli("check", "--json", "--only", "cuda-toolkit", env=env).json()
    assert "cuda-toolkit.torch-home-not-a-toolkit" in {f["id"] for c in before["checks"] for f in c["findings"]}
    applied = cli("fix", "--cuda-home", "--yes", env=env)
    assert applied.code == 0 and "✓ cuda-home: fixed" in applied.stdout, applied.output
    assert "export CUDA_HOME=/usr/local/cuda-13.0" in (home / ".bashrc").read_text()
    again = cli("fix", "--cuda-home", "--yes", env=env)
    # issue 13: a re-run says new terminals already have the change, not "found nothing it can change"
    assert again.code == 0 and "new terminals already get this fix's change" in again.stdout
    assert cli("undo", "--yes", env=env).code == 0
    assert not (home / ".bashrc").exists()


def test_pip_wheel_toolkit_in_the_target_interpreter(tmp_path):
    site = tmp_path / "site-packages"
    root = site / "nvidia" / "cuda_nvcc"
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "bin" / "nvcc").write_text("#!/bin/sh\nexit 1\n")
    (root / "bin" / "nvcc").chmod(0o755)
    (site / "nvidia_cuda_nvcc_cu12-12.8.93.dist-info").mkdir()
    facts = cuda_toolkit.probe_toolkits({"PATH": "/usr/bin"}, [str(site)], timeout=5)
    (wheel,) = [t for t in facts["toolkits"] if "pip wheel" in t["found_by"]]
    assert wheel["version"] == "12.8.93" and wheel["version_source"] == "dist-info"


def test_broken_driver_is_shown_once_as_the_root_cause(tmp_path):
    from llmdoctor.registry import load_registry
    from llmdoctor.render.text import render_diagnosis
    from llmdoctor.runner import diagnose

    snapshot = {"schema": 1, "platform": {"system": "linux", "release": "6.8", "machine": "x86_64", "python": "3.11"},
                "facts": {"nvidia-driver": driver_facts(init_error=FakeNVML.NVML_ERROR_DRIVER_NOT_LOADED),
                          "torch": torch_facts(tmp_path, "2.6.0+cu124", "12.4")}, "probes": {}}
    registry = load_registry()
    diagnosis = diagnose(snapshot, registry, Config(), check_ids=["nvidia-driver", "torch"])
    text = render_diagnosis(diagnosis)
    assert "which causes: torch 2.6.0+cu124 cannot use the GPU" in text
    assert "a consequence of nvidia-driver.nvml-error, shown above" in text


def test_without_libnvidia_ml_the_probe_says_what_pynvml_says_without_importing_it():
    """This machine has no NVIDIA driver: the probe's shortcut must equal pynvml's own answer."""
    import subprocess
    import sys

    code = ("import json, sys\n"
            "from llmdoctor.checks import nvidia_driver\n"
            "from llmdoctor.models import ProbeContext\n"
            "facts = nvidia_driver.probe(ProbeContext(python=sys.executable))\n"
            "imported = 'pynvml' in sys.modules\n"
            "import pynvml\n"
            "print(json.dumps({'facts': facts, 'imported': imported,\n"
            "                  'pynvml': nvidia_driver.probe_nvml(pynvml)}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    data = json.loads(result.stdout)
    if data["pynvml"]["nvml"] != "library-not-found":
        pytest.skip("this machine has libnvidia-ml")
    assert not data["imported"]
    assert {k: data["facts"][k] for k in data["pynvml"]} == data["pynvml"]
