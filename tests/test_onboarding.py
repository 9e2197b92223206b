"""Onboarding: a team's requirements as a file, judged by `check --require`, met by
`fix --all --require`, and written from a good machine by `llmdoctor require --from`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_packages import write_package

from llmdoctor.checks.require import rules
from llmdoctor.config import Config
from llmdoctor.model_sources import from_name
from llmdoctor.models import RuleContext
from llmdoctor.requirements import load_file, parse, profile_from_snapshot, to_toml

from gpu_fakes import RTX_3060, RTX_4090
from hub_mirror import Mirror

TEAM = {
    "python": ">=3.10,<3.13",
    "packages": {"torch": ">=2.4,<2.6", "bitsandbytes": ">=0.45", "transformers": ">=4.40"},
    "torch-cuda": "12.*",
    "driver": ">=550",
    "gpus": {"count": 1, "memory_gb": 16, "compute_capability": "8.0"},
    "nvcc": ">=12.1,<13",
    "ffmpeg": {"encoders": ["libx264", "aac"]},
    "hf-endpoint": "https://hf-mirror.com",
    "disk": {"hf-cache": 50, "/data": 100},
    "models": [{"name": "llama3-8b-q4", "ctx": 8192, "on": "gpu"}],
}
GB = 1_000_000_000


def _gpu(card: dict, index: int = 0) -> dict:
    return {"index": index, "name": card["name"], "compute_capability": ".".join(map(str, card["cc"])),
            "memory_total_bytes": card["total"], "memory_free_bytes": card["free"], "bandwidth_gb_s": 900.0}


def machine(good: bool) -> tuple:
    """(the require check's facts, every other check's facts) of a recorded machine."""
    model = {"model": "llama3-8b-q4", "spec": from_name("llama3-8b-q4").to_json()}
    if good:
        python = {"version": "3.11.9", "packages": {"torch": "2.5.1", "bitsandbytes": "0.45.5",
                                                    "transformers": "4.46.0"}, "executable": "/venv/bin/python"}
        facts = {
            "torch": {"installed": True, "version": "2.5.1+cu124", "cuda": "12.4"},
            "nvidia-driver": {"driver_version": "560.35.03", "cuda_driver_version": 12060, "gpus": [_gpu(RTX_4090)]},
            "nvcc": {"version": "12.4.131"},
            "ffmpeg": {"on_path": "/usr/bin/ffmpeg", "run": {"ok": True}, "version": "6.1",
                       "encoders": {"present": ["aac", "libx264"]}},
            "hf-endpoint": {"endpoint": "https://hf-mirror.com", "official_endpoint": "https://huggingface.co",
                            "offline": True},
            "disk": {"locations": [{"role": "hf_cache", "path": "/home/ada/.cache/huggingface/hub",
                                    "free_bytes": 500 * GB}]},
            "model-fit": {"ram_available": 64 * 2**30},
        }
        disk = [{"path": "/data", "free_bytes": 300 * GB}]
    else:
        python = {"version": "3.9.18", "packages": {"torch": "2.5.1", "bitsandbytes": "0.42.0"},
                  "executable": "/venv/bin/python"}
        facts = {
            "torch": {"installed": True, "version": "2.5.1+cpu", "cuda": None},
            "nvidia-driver": {"driver_version": "535.104.05", "cuda_driver_version": 12020,
                              "gpus": [_gpu(dict(RTX_3060, total=6 * 2**30, free=5 * 2**30, cc=(7, 5)))]},
            "nvcc": {"version": "11.8.89"},
            "ffmpeg": {"on_path": None, "not_on_path": [], "path_file_entries": []},
            "hf-endpoint": {"endpoint": "https://huggingface.co", "official_endpoint": "https://huggingface.co",
                            "offline": True},
            "disk": {"locations": [{"role": "hf_cache", "path": "/home/bo/.cache/huggingface/hub",
                                    "free_bytes": 10 * GB}]},
            "model-fit": {"ram_available": 16 * 2**30},
        }
        disk = [{"path": "/data", "free_bytes": 5 * GB}]
    return {"require": None, "python": python, "disk": disk, "models": [model]}, facts


def judge(good: bool, require: dict = TEAM) -> dict:
    own, facts = machine(good)
    context = RuleContext(platform={"system": "linux"}, config=Config(require=require),
                          all_facts={**facts, "require": own})
    found: dict = {}
    for finding in rules(own, context):
        found.setdefault(finding.id, []).append(finding)
    return found


def test_ten_kinds_of_requirement_met_on_a_good_machine():
    found = judge(good=True)
    assert list(found) == ["require.met"], {k: [f.message for f in v] for k, v in found.items()}
    assert "all 10 kinds" in found["require.met"][0].message


def test_each_kind_unmet_on_a_broken_machine_with_the_fix_that_meets_it():
    found = judge(good=False)
    fixes = {key: sorted({fix for f in found[f"require.{key}"] for fix in f.fixes}) for key in TEAM}
    assert fixes == {"python": [], "packages": ["require-packages"], "torch-cuda": ["torch-cuda"], "driver": [],
                     "gpus": [], "nvcc": ["cuda-home"], "ffmpeg": ["ffmpeg"], "hf-endpoint": ["hf-endpoint"],
                     "disk": [], "models": []}
    packages = {f.facts["package"]: f for f in found["require.packages"]}
    assert set(packages) == {"bitsandbytes", "transformers"}  # torch 2.5.1 is in range
    assert "0.42.0" in packages["bitsandbytes"].message and ">=0.45" in packages["bitsandbytes"].message
    (torch,) = found["require.torch-cuda"]
    assert torch.caused_by == "torch.cpu-only" and "cpu" in torch.message
    (gpus,) = found["require.gpus"]
    assert "6 GiB, 16 required" in gpus.message and "compute capability 7.5" in gpus.message
    (ffmpeg,) = found["require.ffmpeg"]
    assert ffmpeg.caused_by == "ffmpeg.missing"
    assert {f.facts["location"] for f in found["require.disk"]} == {"hf-cache", "/data"}
    assert all(f.severity == "error" for key in TEAM for f in found[f"require.{key}"])
    # what no fix can meet says so
    assert "reboot" in found["require.driver"][0].details and "No fix here" in gpus.details


def test_requirement_values_are_checked_per_kind():
    assert judge(True, {"torch-cuda": "12.4"}) .keys() == {"require.met"}
    assert "require.torch-cuda" in judge(True, {"torch-cuda": "11.*"})
    assert "require.torch-cuda" in judge(True, {"torch-cuda": "cpu"})
    assert "require.hf-endpoint" in judge(True, {"hf-endpoint": "official"})
    assert judge(True, {"gpus": {"count": 2}})["require.gpus"][0].message.startswith("1 NVIDIA GPU, 2 required")


@pytest.mark.parametrize("content, needle", [
    ("[require]\nflavour = 1\n", "require.flavour: unknown key"),
    ("[require]\npyhton = '>=3.10'\n", "did you mean 'python'"),
    ("[require.packages]\ntorch = '>>2'\n", "require.packages.torch: '>>2' is not a version specifier"),
    ("[require]\ndriver = 550\n", "require.driver: must be a version specifier"),
    ("[require.gpus]\ncount = 'one'\n", "require.gpus.count: must be a whole number"),
    ("[require]\ntorch-cuda = 'twelve'\n", "require.torch-cuda"),
    ("[require.disk]\ndata = 10\n", "require.disk.data: a location is"),
    ("[[require.models]]\nname = 'completely-unknown-thing'\n", "require.models[0].name"),
    ("[require]\nhf-endpoint = 'hf-mirror.com'\n", "require.hf-endpoint"),
    ("not toml at all [", "not valid TOML"),
])
def test_bad_requirement_files_are_one_line_and_change_nothing(cli, tmp_path, content, needle):
    path = tmp_path / "team.toml"
    path.write_text(content)
    home = Path(os.environ["HOME"])
    (home / ".bashrc").write_text("# mine\n")
    for args in (["check", "--require", str(path)], ["fix", "--all", "--yes", "--require", str(path)]):
        result = cli(*args)
        assert result.code == 2 and result.stderr.count("\n") == 1 and needle in result.stderr, result.output
    assert (home / ".bashrc").read_text() == "# mine\n"
    assert not (tmp_path / "state" / "journal").exists()


def test_the_configuration_may_hold_the_requirements(cli, tmp_path):
    (tmp_path / "llmdoctor.toml").write_text('[require]\npython = ">=3.0"\n')
    report = cli("check", "--only", "require", "--json").json()
    (check,) = report["checks"]
    assert [f["id"] for f in check["findings"]] == ["require.met"]
    assert cli("check", "--only", "require").code == 0
    (tmp_path / "llmdoctor.toml").write_text('[require]\npython = ">=3.0"\nflavour = 1\n')
    bad = cli("check", "--only", "require")
    assert bad.code == 2 and "require.flavour" in bad.stderr


# ----------------------------------------------------------------------------- a profile from a good machine


def test_require_from_a_snapshot_round_trips(cli, tmp_path):
    from bnb_trees import make_distribution, make_torch

    from gpu_fakes import install_fake_pynvml

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = venv.glob("lib/python3.*/site-packages")
    make_torch(site, "12.6")
    make_distribution(site, "transformers", "4.46.1")
    env = {**install_fake_pynvml(tmp_path / "nvml"), "VIRTUAL_ENV": str(venv)}
    snapshot = tmp_path / "good.json"
    assert cli("collect", "-o", str(snapshot), env=env, timeout=120).code == 0
    written = cli("require", "--from", str(snapshot), "-o", str(tmp_path / "team.toml"))
    assert written.code == 0, written.output
    profile = load_file(tmp_path / "team.toml")
    assert profile["torch-cuda"] == "12.6" and profile["packages"]["transformers"] == ">=4.46.1,<4.47"
    assert profile["gpus"] == {"count": 1, "memory_gb": 24, "compute_capability": "8.9"}
    assert profile["driver"] == ">=580"
    same = cli("check", "--snapshot", str(snapshot), "--require", str(tmp_path / "team.toml"), "--only", "require")
    assert same.code == 0, same.output

    broken = json.loads(snapshot.read_text())
    broken["facts"]["nvidia-driver"]["driver_version"] = "535.104.05"
    broken["facts"]["torch"]["cuda"] = None
    broken["facts"]["require"]["python"]["packages"]["transformers"] = "4.30.0"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    other = cli("check", "--snapshot", str(tmp_path / "broken.json"), "--require", str(tmp_path / "team.toml"),
                "--only", "require", "--json")
    assert other.code == 1
    ids = {f["id"] for c in other.json()["checks"] for f in c["findings"]}
    assert {"require.driver", "require.torch-cuda", "require.packages"} <= ids
    exact = cli("require", "--from", str(snapshot), "--exact").stdout
    assert 'transformers = "==4.46.1"' in exact and 'python = "==' in exact


def test_profile_text_is_valid_toml_for_odd_values():
    require = parse({"disk": {"/data with space/x": 10.5}, "packages": {"torch": ">=2.4"}}, "t")
    text = to_toml(require, header="line one\nline two")
    import sys as _sys

    tomllib = __import__("tomllib") if _sys.version_info >= (3, 11) else __import__("tomli")
    assert parse(tomllib.loads(text)["require"], "t") == require
    assert profile_from_snapshot({"facts": {}, "target": {}}) == {}


# ----------------------------------------------------------------------------- end to end


def _wheel(folder: Path, name: str, version: str, out: Path) -> None:
    source = write_package(folder / f"{name}-{version}", name, version,
                           packages={name.replace("-", "_"): f"__version__ = {version!r}\n"})
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(source)], check=True, timeout=300, capture_output=True)


def test_fix_all_meets_a_requirements_file_and_undo_returns_the_before_state(cli, tmp_path):
    wheels = tmp_path / "wheels"
    for version in ("0.9.0", "1.2.0"):
        _wheel(tmp_path / "src", "llmdoctor-demo", version, wheels)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    offline_pip = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([python, "-m", "pip", "install", "-q", "llmdoctor-demo==0.9.0"], check=True, timeout=300,
                   env={**os.environ, **offline_pip})

    def installed() -> str:
        return subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                              env={**os.environ, **offline_pip}).stdout

    home = Path(os.environ["HOME"])
    (home / ".bashrc").write_text("# mine\n")
    before_venv, before_home = installed(), (home / ".bashrc").read_bytes()
    mirror = Mirror("healthy")
    try:
        team = tmp_path / "team.toml"
        team.write_text(f'[require]\nhf-endpoint = "{mirror.url}"\n[require.packages]\nllmdoctor-demo = ">=1.0"\n')
        # this machine's other findings (its CUDA wrapper, no ffmpeg) are not what this test is about
        (tmp_path / "config" / "config.toml").write_text(
            'skip = ["cuda-toolkit", "nvcc", "ffmpeg", "disk", "path"]\n[hf]\nofficial_endpoint = "http://127.0.0.1:9"\n')
        env = {"SHELL": "/bin/bash", "VIRTUAL_ENV": str(venv), "LLMDOCTOR_OFFLINE": "", **offline_pip}
        first = cli("check", "--require", str(team), "--only", "require", "--json", env=env, timeout=120)
        assert first.code == 1
        assert {f["id"] for c in first.json()["checks"] for f in c["findings"]} >= {"require.hf-endpoint",
                                                                                     "require.packages"}
        applied = cli("fix", "--all", "--require", str(team), "--yes", env=env, timeout=600)
        assert "✓ require-packages: fixed" in applied.stdout and "✓ hf-endpoint: fixed" in applied.stdout, \
            applied.output
        new_terminal = {**env, "HF_ENDPOINT": mirror.url}  # what a new terminal now has
        met = cli("check", "--require", str(team), "--only", "require", env=new_terminal, timeout=120)
        assert met.code == 0, met.output
        assert "llmdoctor-demo==1.2.0" in installed()
    finally:
        mirror.close()
    for _ in range(5):
        if cli("undo", "--yes", env=env, timeout=300).code != 0:
            break
    assert installed() == before_venv
    assert (home / ".bashrc").read_bytes() == before_home
