"""The `disk` check: rules on recorded facts, the probe on this machine's real
filesystems, a `quota` that hangs, and the disk smoke test."""

from __future__ import annotations

import os
import time

from llmdoctor.checks.disk import parse_quota, probe, rules
from llmdoctor.config import Config, ModelOfInterest
from llmdoctor.models import ProbeContext, RuleContext

GB = 1024**3


def facts(free_gb=100.0, fstype="ext4", notebook="", hf_path="/home/u/.cache/huggingface/hub",
          quota=None, windows=None, inodes=(1_000_000, 5_000_000)):
    def location(role, path, mount="/"):
        return {"role": role, "path": path, "existing": path, "exists": True, "writable": True,
                "fstype": fstype, "mountpoint": mount, "free_bytes": int(free_gb * GB),
                "total_bytes": 500 * GB, "free_inodes": inodes[0], "total_inodes": inodes[1]}

    data = {"locations": [location("hf_cache", hf_path), location("torch_hub", "/home/u/.cache/torch/hub"),
                          location("cwd", "/home/u/work"), location("temp", "/tmp")],
            "notebook": notebook, "quota": quota}
    if windows:
        data["windows"] = windows
    return data


def diagnose(data, **config):
    return {f.id: f for f in rules(data, RuleContext(platform={"system": "linux"}, config=Config(**config)))}


def test_healthy_disk_says_how_much_is_free():
    found = diagnose(facts())
    assert list(found) == ["disk.ok"] and "100.0 GB free on ext4" in found["disk.ok"].message


def test_low_space_is_a_warning_then_an_error():
    assert diagnose(facts(free_gb=12))["disk.low-space"].severity == "warning"
    assert diagnose(facts(free_gb=0.5))["disk.low-space"].severity == "error"
    assert "disk.low-space" not in diagnose(facts(free_gb=12), thresholds={"min_free_gb": 10})


def test_configured_model_that_does_not_fit():
    found = diagnose(facts(free_gb=15), models=(ModelOfInterest("llama-3.1-70b-q2_k", 26.4),))
    assert found["disk.model-does-not-fit"].severity == "error"
    assert "needs 26.4 GB" in found["disk.model-does-not-fit"].message


def test_fat32_and_inodes():
    found = diagnose(facts(fstype="vfat", inodes=(500, 1_000_000)))
    assert found["disk.fat32"].severity == "error" and "4 GB" in found["disk.fat32"].message
    assert found["disk.low-inodes"].facts["free_inodes"] == 500


def test_notebook_platforms():
    assert "disk.kaggle-output-cache" in diagnose(facts(notebook="kaggle",
                                                        hf_path="/kaggle/working/hf/hub"))
    assert diagnose(facts(notebook="kaggle"))["disk.kaggle"].severity == "info"
    assert "disk.colab-drive-cache" in diagnose(facts(notebook="colab",
                                                      hf_path="/content/drive/MyDrive/hf/hub"))


def test_kaggle_is_detected_before_colab(monkeypatch):
    from llmdoctor.machine import notebook_platform

    assert notebook_platform({"KAGGLE_KERNEL_RUN_TYPE": "Interactive", "COLAB_RELEASE_TAG": "x"}) == "kaggle"
    assert notebook_platform({"COLAB_RELEASE_TAG": "release-colab_20261101"}) == "colab"


def test_quota_rows_and_findings():
    stdout = ("Disk quotas for user ada (uid 1000):\n"
              "     Filesystem  blocks   quota   limit   grace   files   quota   limit   grace\n"
              "      /dev/sdb1 49000000* 50000000 52000000  6days   1200       0       0\n")
    assert parse_quota(stdout)[0]["used_kib"] == 49_000_000
    found = diagnose(facts(quota={"stdout": stdout, "timed_out": False}))
    assert found["disk.quota-near-limit"].severity == "warning"


def test_windows_long_paths_and_symlinks():
    found = diagnose(facts(windows={"long_paths_enabled": False, "symlinks_allowed": False}))
    assert {"disk.long-paths-disabled", "disk.no-symlinks"} <= set(found)


def test_probe_reads_real_filesystems(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "not" / "yet" / "hub"))
    data = probe(ProbeContext(python="python"))
    hf = data["locations"][0]
    assert hf["role"] == "hf_cache" and hf["existing"] == str(tmp_path)
    assert hf["free_bytes"] > 0 and hf["writable"] and hf["fstype"]
    assert {loc["role"] for loc in data["locations"]} == {"hf_cache", "torch_hub", "cwd", "temp"}


def test_hung_quota_tool_costs_bounded_time(cli, tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    quota = stubs / "quota"
    quota.write_text("#!/bin/sh\nsleep 1000\n")
    quota.chmod(0o755)
    (tmp_path / "llmdoctor.toml").write_text("[thresholds]\nprobe_timeout_s = 1\n")
    started = time.monotonic()
    result = cli("check", "--only", "disk", "--json", env={"PATH": f"{stubs}:{os.environ['PATH']}"})
    elapsed = time.monotonic() - started
    ids = {f["id"] for c in result.json()["checks"] for f in c["findings"]}
    assert "disk.quota-timed-out" in ids
    assert elapsed < 1 + 4  # the timeout plus interpreter start-up, never the tool's 1000 s


def test_disk_smoke_test(cli, tmp_path):
    result = cli("smoke", "--only", "disk", "--json", env={"HF_HUB_CACHE": str(tmp_path)})
    (smoke,) = result.json()["smoke"]
    assert result.code == 0 and smoke["status"] == "pass"
    assert smoke["figures"]["write_mb_s"] > 0 and smoke["figures"]["size_mb"] == 8
    assert not list(tmp_path.glob(".llmdoctor-smoke-*"))  # cleaned up


def test_disk_smoke_test_fails_on_read_only_folder(cli, tmp_path):
    if os.geteuid() == 0:
        # root writes anywhere; make the folder unusable another way
        target = tmp_path / "file-not-folder"
        target.write_text("")
        env = {"HF_HUB_CACHE": str(target / "hub")}
    else:
        target = tmp_path / "ro"
        target.mkdir(mode=0o555)
        env = {"HF_HUB_CACHE": str(target)}
    result = cli("smoke", "--only", "disk", env=env)
    assert result.code == 1 and "[✗] disk" in result.stdout


def test_room_to_download_a_model_named_for_model_fit():
    data = facts(free_gb=5)
    all_facts = {"model-fit": {"models": [
        {"model": "org/big-model", "spec": {"source": "Hub GGUF", "weight_bytes": 9 * GB}},
        {"model": "/models/local.gguf", "spec": {"source": "GGUF file", "weight_bytes": 9 * GB}}]}}
    found = [f for f in rules(data, RuleContext(platform={"system": "linux"}, config=Config(), all_facts=all_facts))
             if f.id == "disk.model-does-not-fit"]
    assert len(found) == 1 and "org/big-model needs 9.0 GB" in found[0].message  # the local file is already here


def test_a_model_with_a_configured_size_is_judged_once():
    data = facts(free_gb=5)
    all_facts = {"model-fit": {"models": [{"model": "big", "spec": {"source": "Hub GGUF", "weight_bytes": 9 * GB}}]}}
    context = RuleContext(platform={"system": "linux"}, config=Config(models=(ModelOfInterest("big", 9.5),)),
                          all_facts=all_facts)
    assert [f.id for f in rules(data, context)].count("disk.model-does-not-fit") == 1
