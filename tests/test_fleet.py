"""Fleets: Prometheus metrics (checked by the real promtool and served by a real
node_exporter), a Kubernetes node-problem-detector plugin, Slurm's HealthCheckProgram on a
real single-node Slurm (munge, slurmctld and slurmd started here), and ``llmdoctor report``
over forty snapshots, opened in a real headless Chromium.

Each real component comes from Debian's packages (``.ci/run`` installs them); a test whose
component is missing is skipped and says which package it needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_snapshots import base_snapshot, vary, write_fleet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _needs(program: str, package: str) -> str:
    path = shutil.which(program) or (f"/usr/sbin/{program}" if os.path.exists(f"/usr/sbin/{program}") else None)
    if path is None:
        pytest.skip(f"{program} is not installed (Debian package {package}; .ci/run installs it)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    return base_snapshot(tmp_path_factory.mktemp("fleet-base"))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, base) -> Path:
    folder = tmp_path_factory.mktemp("fleet") / "snaps"
    write_fleet(folder, 40, base=base)
    return folder


# ----------------------------------------------------------------------------- Prometheus


def _odd_snapshot(base: dict, home: str) -> dict:
    """A node whose GPU name holds every character the exposition format must escape, a
    secret and a home path."""
    snapshot = vary(base, 3)
    gpu = snapshot["facts"]["nvidia-driver"]["gpus"][0]
    gpu["name"] = 'NVIDIA "Quoted" \\ back\nslash hf_abcdefghijklmnopqrstuvwxyz012345 ' + f"{home}/models"
    return snapshot


def test_prometheus_metrics_pass_promtool_for_recorded_machines(cli, base, tmp_path):
    promtool = _needs("promtool", "prometheus")
    home = "/home/ada"
    machines = {"odd": _odd_snapshot(base, home), "healthy": vary(base, 0), "no-driver": vary(base, 17)}
    for recorded in sorted((ROOT / "tests" / "data").glob("windows-*.json"))[:3]:
        machines[recorded.stem] = json.loads(recorded.read_text(encoding="utf-8"))
    for name, snapshot in machines.items():
        source = tmp_path / f"{name}.json"
        source.write_text(json.dumps(snapshot), encoding="utf-8")
        target = tmp_path / "textfile" / f"{name}.prom"
        done = cli("check", "--snapshot", str(source), "--format", "prometheus", "-o", str(target),
                   env={"HOME": home, "HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz012345"})
        assert done.code in (0, 1), done.output
        text = target.read_text(encoding="utf-8")
        checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                                 timeout=60)
        assert checked.returncode == 0, (name, checked.stdout, checked.stderr)
        assert "llmdoctor_check_status{" in text and "llmdoctor_run_duration_seconds " in text
        assert "hf_abcdefghijklmnopqrstuvwxyz012345" not in text and home not in text
        assert not list(target.parent.glob(".*tmp")), "the temporary file of the atomic write was left behind"
    odd = (tmp_path / "textfile" / "odd.prom").read_text(encoding="utf-8")
    assert re.search(r'llmdoctor_gpu_memory_total_bytes\{gpu="0",name="NVIDIA \\"Quoted\\" \\\\ back\\nslash ', odd)
    assert 'llmdoctor_nvidia_driver_info{version="535.104.05"} 1' in odd
    assert 'llmdoctor_finding{check="torch",id="torch.newer-than-driver",severity="error"} 1' in odd


def test_node_exporter_serves_the_metrics(cli, base, tmp_path):
    exporter = _needs("prometheus-node-exporter", "prometheus-node-exporter")
    folder = tmp_path / "textfile"
    source = tmp_path / "node.json"
    source.write_text(json.dumps(vary(base, 3)), encoding="utf-8")
    assert cli("check", "--snapshot", str(source), "--format", "prometheus", "-o",
               str(folder / "llmdoctor.prom")).code == 1
    port = _free_port()
    process = subprocess.Popen([exporter, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                                "--collector.textfile", f"--collector.textfile.directory={folder}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:  # noqa: S310
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert 'llmdoctor_check_status{check="nvidia-driver"}' in body
        assert 'llmdoctor_finding{check="torch",id="torch.newer-than-driver",severity="error"} 1' in body
        # node_exporter says whether it could read every textfile: no error here
        assert re.search(r"node_textfile_scrape_error(\{[^}]*\})? 0", body), body[-2000:]
    finally:
        process.terminate()
        process.wait(timeout=10)


# ----------------------------------------------------------------------------- node-problem-detector


def test_node_problem_detector_plugin_mode(cli, base, tmp_path):
    healthy, broken = tmp_path / "healthy.json", tmp_path / "broken.json"
    healthy.write_text(json.dumps(vary(base, 0)), encoding="utf-8")
    broken.write_text(json.dumps(vary(base, 3)), encoding="utf-8")
    ok = cli("check", "--snapshot", str(healthy), "--format", "npd")
    assert ok.code == 0 and ok.stdout.startswith("llmdoctor: healthy") and len(ok.stdout.strip()) <= 80
    bad = cli("check", "--snapshot", str(broken), "--format", "npd")
    assert bad.code == 1 and bad.stdout.startswith("llmdoctor: cuda-toolkit.newer-than-driver (+1 more)")
    assert len(bad.stdout.strip()) <= 80 and "\n" not in bad.stdout.strip()
    unknown = cli("check", "--snapshot", str(tmp_path / "missing.json"), "--format", "npd")
    assert unknown.code == 2  # the plugin interface's "unknown"
    config = json.loads((DOCS / "kubernetes" / "llmdoctor-plugin.json").read_text(encoding="utf-8"))
    assert config["plugin"] == "custom" and config["pluginConfig"]["max_output_length"] <= 80
    rule = config["rules"][0]
    assert rule["path"].endswith("llmdoctor") and rule["args"][:3] == ["check", "--format", "npd"]
    daemonset = (DOCS / "kubernetes" / "node-problem-detector.yaml").read_text(encoding="utf-8")
    assert "kind: DaemonSet" in daemonset and "llmdoctor-plugin.json" in daemonset


# ----------------------------------------------------------------------------- Slurm


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """munged, slurmctld and slurmd on this machine, with a minimal slurm.conf of our own."""
    if os.geteuid() != 0:
        pytest.skip("a test Slurm runs its daemons as root")
    munged = _needs("munged", "munge")
    slurmctld, slurmd = _needs("slurmctld", "slurmctld"), _needs("slurmd", "slurmd")
    _needs("srun", "slurm-client")
    folder = tmp_path_factory.mktemp("slurm")
    node = socket.gethostname().split(".")[0]
    (folder / "state").mkdir()
    (folder / "spool").mkdir()
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = folder / "slurm.conf"
    conf.write_text(f"""ClusterName=llmdoctor
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={folder}/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/linear
SchedulerType=sched/builtin
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
HealthCheckProgram={folder}/llmdoctor-health
HealthCheckInterval=0
NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""", encoding="utf-8")
    shutil.copy(DOCS / "slurm" / "llmdoctor-health", folder / "llmdoctor-health")  # the documented program
    env = dict(os.environ, SLURM_CONF=str(conf), LLMDOCTOR=f"{sys.executable} -m llmdoctor",
               LLMDOCTOR_HEALTH_CHECKS="disk,require")
    processes = [subprocess.Popen([munged, "-F", f"--socket={folder}/munge.sock", f"--key-file={key}",
                                   f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log",
                                   f"--seed-file={folder}/munge.seed", "--force"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(0.5)
    processes.append(subprocess.Popen([slurmctld, "-D", "-i"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    time.sleep(1)
    processes.append(subprocess.Popen([slurmd, "-D", "-N", node], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    try:
        for _ in range(100):
            state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True,
                                   timeout=20).stdout.strip()
            if state.startswith(("idle", "mixed", "allocated")) and "*" not in state:
                break
            time.sleep(0.2)
        else:
            log = folder / "slurmctld.log"
            pytest.fail(f"the test Slurm did not come up: sinfo says {state!r}; "
                        f"{log.read_text(errors='replace')[-1500:] if log.exists() else 'no slurmctld log'}")
        yield {"env": env, "node": node, "folder": folder, "program": str(folder / "llmdoctor-health")}
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _sinfo(slurm) -> tuple:
    line = subprocess.run(["sinfo", "-h", "-N", "-n", slurm["node"], "-o", "%T|%E"], env=slurm["env"],
                          capture_output=True, text=True, timeout=20).stdout.strip()
    state, _, reason = line.partition("|")
    return state, reason


def _health(slurm, *extra):
    """The documented HealthCheckProgram (docs/slurm/llmdoctor-health), run as slurmd runs it."""
    return subprocess.run([slurm["program"], *extra], env=slurm["env"], capture_output=True, text=True, timeout=120)


def test_srun_collects_a_snapshot_per_node(slurm, tmp_path, cli):
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    done = subprocess.run(["srun", "--nodes=1", "--ntasks-per-node=1", sys.executable, "-m", "llmdoctor", "collect",
                           "--offline", "-o", f"{snaps}/%N.json"], env=slurm["env"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    written = snaps / f"{slurm['node']}.json"
    assert written.is_file() and json.loads(written.read_text(encoding="utf-8"))["host"] == slurm["node"]
    report = cli("report", str(snaps), "--json")
    assert report.code in (0, 1) and report.json()["matrix"][0]["machine"] == slurm["node"]


def test_health_program_drains_and_resumes_its_own_node(slurm, tmp_path):
    planted = tmp_path / "requirements.toml"
    planted.write_text("[require]\ndisk = { hf-cache = 999999999 }\n", encoding="utf-8")
    drained = _health(slurm, "--require", str(planted))
    assert drained.returncode == 1, drained.stdout + drained.stderr
    assert 'state=drain reason="llmdoctor: require.disk"' in drained.stdout
    state, reason = _sinfo(slurm)
    assert "drain" in state and reason == "llmdoctor: require.disk"
    listed = subprocess.run(["sinfo", "-R", "-h", "-o", "%E|%N"], env=slurm["env"], capture_output=True, text=True,
                            timeout=20).stdout
    assert f"llmdoctor: require.disk|{slurm['node']}" in listed
    again = _health(slurm, "--require", str(planted))  # still broken: nothing more to do
    assert again.returncode == 1 and "already drained" in again.stdout
    resumed = _health(slurm)
    assert resumed.returncode == 0 and "state=resume" in resumed.stdout, resumed.stdout + resumed.stderr
    state, reason = _sinfo(slurm)
    assert "drain" not in state and reason in ("", "none")


def test_health_program_never_resumes_a_node_drained_by_someone_else(slurm, tmp_path):
    subprocess.run(["scontrol", "update", f"nodename={slurm['node']}", "state=drain", "reason=disk swap by admin"],
                   env=slurm["env"], check=True, timeout=20)
    try:
        healthy = _health(slurm)
        assert healthy.returncode == 0 and "resume" not in healthy.stdout
        planted = tmp_path / "requirements.toml"
        planted.write_text("[require]\ndisk = { hf-cache = 999999999 }\n", encoding="utf-8")
        broken = _health(slurm, "--require", str(planted))
        assert broken.returncode == 1 and "another reason" in broken.stdout
        assert _sinfo(slurm) == ("drained", "disk swap by admin") or _sinfo(slurm)[1] == "disk swap by admin"
    finally:
        subprocess.run(["scontrol", "update", f"nodename={slurm['node']}", "state=resume"], env=slurm["env"],
                       timeout=20)


def test_health_program_is_bounded_and_says_so(slurm):
    slow = _health(slurm, "--timeout", "0.001")
    assert slow.returncode == 2 and "no verdict within" in slow.stderr and "left as it is" in slow.stderr
    assert "drain" not in _sinfo(slurm)[0]


# ----------------------------------------------------------------------------- the fleet report


def test_report_groups_forty_machines_by_root_finding(cli, fleet):
    text = cli("report", str(fleet))
    assert text.code == 1  # machines with errors
    assert "llmdoctor report: 40 machines, 9 with errors" in text.stdout
    assert re.search(r"error +torch\.newer-than-driver: 8 of 40: node03, node08, node13", text.stdout)
    assert "nvidia-driver.nvml-error: 1 of 40: node17" in text.stdout
    assert "disk.low-space: 2 of 40: node11, node29" in text.stdout
    assert "driver         580.82.07 (31) · 535.104.05 (8: node03" in text.stdout
    assert "node33: driver 535.104.05 (most: 580.82.07)" in text.stdout
    data = cli("report", str(fleet), "--json").json()
    assert data["machines"] == 40 and data["majority"]["torch"] == "2.9.0+cu130"
    problem = next(p for p in data["problems"] if p["id"] == "torch.newer-than-driver")
    assert problem["count"] == 8 and problem["severity"] == "error"
    assert len(data["matrix"]) == 40 and set(data["matrix"][0]["statuses"]) == set(data["checks"])


def test_report_keeps_going_past_a_bad_file_and_names_it(cli, fleet, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(fleet / "node00.json", mixed / "node00.json")
    (mixed / "broken.json").write_text("{not json", encoding="utf-8")
    done = cli("report", str(mixed))
    assert done.code == 0 and "1 files unreadable" in done.stdout and "broken.json" in done.stdout
    nothing = cli("report", str(tmp_path / "mixed" / "broken.json"))
    assert nothing.code == 2 and "no readable snapshot" in nothing.stderr and "Traceback" not in nothing.output


def _chromium(url: str, profile: Path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([_needs("chromium", "chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-quic", "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                           "--enable-logging=stderr", "--v=0", *extra, url],
                          capture_output=True, text=True, timeout=120)


def test_html_report_in_headless_chromium(cli, fleet, tmp_path):
    page = tmp_path / "report.html"
    assert cli("report", str(fleet), "--html", str(page)).code == 1
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "<link" not in text  # no external assets
    shot = tmp_path / "report.png"
    taken = _chromium(page.as_uri(), tmp_path / "profile-1", "--window-size=1400,1000", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000, taken.stderr[-2000:]
    assert ":CONSOLE" not in taken.stderr, [line for line in taken.stderr.splitlines() if ":CONSOLE" in line]
    dom = _chromium(page.as_uri() + "#sort=matrix:1:desc", tmp_path / "profile-2", "--dump-dom")
    assert ":CONSOLE" not in dom.stderr
    assert 'data-sortable="ready"' in dom.stdout
    matrix = dom.stdout.split('id="matrix"', 1)[1]
    first_row = re.search(r"<tbody>\s*<tr><td>([^<]+)</td><td[^>]*>([^<]+)</td>", matrix)
    assert first_row and first_row.group(2) != "-", first_row  # sorted by errors, most first


def test_collect_names_files_by_host_and_never_collides(cli, tmp_path):
    folder = tmp_path / "snaps"
    first = cli("collect", "--offline", "--only", "disk", "-o", str(folder / "%N.json"))
    assert first.code == 0
    host = socket.gethostname().split(".")[0]
    written = folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', host)}.json"
    assert written.is_file() and json.loads(written.read_text(encoding="utf-8"))["host"] == host
    shutil.copy(written, folder / "copy.json")
    names = [row["machine"] for row in cli("report", str(folder), "--json").json()["matrix"]]
    assert len(set(names)) == 2  # one host twice: told apart by file


README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_documented_ansible_command_collects(tmp_path):
    ansible = _needs("ansible", "ansible-core")
    documented = re.search(r"ansible gpu_nodes -b -m ansible\.builtin\.shell -a '([^']+)'", README)
    assert documented, "the README's Ansible command is gone"
    command = documented.group(1).replace("/shared/snaps", str(tmp_path / "snaps"))
    assert command.startswith("llmdoctor collect")
    bin_dir = Path(sys.executable).parent  # the installed llmdoctor command
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_HOME=str(tmp_path / "ansible-home"))
    done = subprocess.run([ansible, "all", "-i", "localhost,", "-c", "local", "-m", "ansible.builtin.shell",
                           "-a", command], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    written = list((tmp_path / "snaps").glob("*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text(encoding="utf-8"))["facts"]


def test_the_kubernetes_files_run_the_commands_the_other_tests_ran():
    """No Kubernetes runs here: its files must hold the commands tested above."""
    job = (DOCS / "kubernetes" / "collect-job.yaml").read_text(encoding="utf-8")
    assert 'command: ["llmdoctor", "collect", "--offline", "-o", "/shared/snaps/%N.json"]' in job
    assert "fieldPath: spec.nodeName" in job and "LLMDOCTOR_NODE_NAME" in job
    assert "srun --nodes=40 --ntasks-per-node=1 llmdoctor collect --offline -o /shared/snaps/%N.json" in README


def test_node_name_from_the_environment_names_the_snapshot(cli, tmp_path):
    done = cli("collect", "--offline", "--only", "disk", "-o", str(tmp_path / "%N.json"),
               env={"LLMDOCTOR_NODE_NAME": "gpu-node-7"})
    assert done.code == 0
    assert json.loads((tmp_path / "gpu-node-7.json").read_text(encoding="utf-8"))["host"] == "gpu-node-7"


def test_report_mixes_operating_systems(cli, fleet, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("node00.json", "node03.json"):
        shutil.copy(fleet / name, mixed / name)
    shutil.copy(ROOT / "tests" / "data" / "windows-long-path.json", mixed / "gaming-pc.json")
    data = cli("report", str(mixed), "--json").json()
    assert {row["machine"] for row in data["matrix"]} == {"node00", "node03", "gaming-pc"}
    systems = {entry["value"].split()[0] for entry in data["stack"]["os"]}
    assert systems == {"linux", "windows"}
    windows = next(row for row in data["matrix"] if row["machine"] == "gaming-pc")
    assert any(error.startswith("path.") for error in windows["errors"])


@pytest.mark.parametrize("findings, state, reason, action, wanted", [
    ([], "idle", "", "none", "healthy"),
    ([], "drained", "llmdoctor: disk.low-space", "resume", "healthy again"),
    ([], "drained", "bad fan", "none", "healthy"),  # never resumes what someone else drained
    ([("disk.full", "error", None)], "idle", "", "drain", "llmdoctor: disk.full"),
    ([("torch.x", "error", "nvidia-driver.y"), ("nvidia-driver.y", "error", None)], "mixed", "", "drain",
     "llmdoctor: nvidia-driver.y"),  # the root, not its consequence
    ([("disk.full", "error", None)], "drained", "llmdoctor: disk.full", "none", "already drained"),
    ([("disk.full", "error", None)], "draining", "llmdoctor: torch.old", "drain", "llmdoctor: disk.full"),
    ([("disk.full", "error", None)], "drained", "bad fan", "none", "another reason"),
    ([("disk.low-space", "warning", None)], "idle", "", "none", "healthy"),  # warnings never drain
])
def test_what_the_health_program_decides(findings, state, reason, action, wanted):
    from llmdoctor.models import CheckResult, Finding
    from llmdoctor.runner import Diagnosis
    from llmdoctor.slurm import decide

    diagnosis = Diagnosis(results=[CheckResult("x", "X", "ok", [Finding(i, s, "m", caused_by=c)
                                                                  for i, s, c in findings])])
    decision = decide(diagnosis, state, reason)
    assert decision.action == action and wanted in decision.reason


def test_collect_share_and_the_markdown_report_hold_nothing_that_names_the_machine(cli, tmp_path):
    from gpu_fakes import RTX_4090, install_fake_pynvml

    home = tmp_path / "home" / "adalovelace"
    (home / ".cache" / "huggingface").mkdir(parents=True)
    env = {**install_fake_pynvml(tmp_path / "nvml", gpus=(RTX_4090,)), "HOME": str(home), "USER": "adalovelace",
           "HF_HOME": str(home / ".cache" / "huggingface")}
    host = socket.gethostname()
    plain = cli("collect", "--offline", "--only", "nvidia-driver,disk", env=env)
    assert "GPU-0000" in plain.stdout or '"uuid"' in plain.stdout  # what --share must remove is there
    shared = cli("collect", "--offline", "--share", "--only", "nvidia-driver,disk", env=env)
    assert shared.code == 0
    text = shared.stdout
    assert text.lstrip().startswith('{\n  "_note": "scrubbed for sharing')
    for planted in ('"uuid"', "GPU-0000", str(home), "adalovelace", f'"{host}"', '"host"'):
        assert planted not in text, planted
    data = json.loads(text)
    assert data["facts"]["nvidia-driver"]["gpus"][0]["name"] == "NVIDIA GeForce RTX 4090"  # the rest stays
    assert any(loc["path"].startswith("~") for loc in data["facts"]["disk"]["locations"])
    markdown = cli("check", "--only", "disk,nvidia-driver", "--format", "markdown", env=env)
    assert markdown.stdout.startswith("### llmdoctor") and "_scrubbed for sharing" in markdown.stdout[:300]
    assert "adalovelace" not in markdown.stdout
    assert str(home) not in markdown.stdout


def test_facts_versions_migrate_or_say_which_check_cannot_be_judged(cli, base, tmp_path):
    from llmdoctor.model_sources import from_name

    snapshot = vary(base, 0)
    assert snapshot["schema"] == 2 and snapshot["probes"]["disk"]["facts_version"] == 1
    spec = from_name("llama3-8b-q4").to_json()
    for key in ("n_ff", "n_ff_exp", "repackable", "repack_edges", "qkv_fused", "ffn_fused"):
        spec.pop(key)  # what an llmdoctor of facts version 1 wrote
    snapshot["facts"]["model-fit"] = {"models": [{"model": "llama3-8b-q4", "spec": spec}],
                                      "ram_available": 64 * 2**30, "gpus": []}
    snapshot["probes"]["model-fit"] = {"duration_ms": 1.0, "facts_version": 1}
    snapshot["probes"]["disk"]["facts_version"] = 7  # from a newer llmdoctor
    snapshot["llmdoctor_version"] = "9.9.0"
    path = tmp_path / "older.json"
    path.write_text(json.dumps(snapshot), encoding="utf-8")
    data = cli("check", "--snapshot", str(path), "--only", "model-fit,disk", "--model", "llama3-8b-q4",
               "--json").json()
    checks = {c["id"]: c for c in data["checks"]}
    assert checks["disk"]["status"] == "skipped"
    assert "version 7 of this check's facts (llmdoctor 9.9.0)" in checks["disk"]["reason"]
    assert "upgrade llmdoctor" in checks["disk"]["reason"]
    (verdict,) = checks["model-fit"]["findings"]
    assert "feed-forward width assumed" in verdict["message"]  # migrated, and it says what it assumed
    schema_one = dict(snapshot, schema=1)
    for probe in schema_one["probes"].values():
        probe.pop("facts_version", None)
    path.write_text(json.dumps(schema_one), encoding="utf-8")
    old = cli("check", "--snapshot", str(path), "--only", "disk", "--json").json()
    assert old["checks"][0]["status"] != "skipped"  # schema 1: version 1 of every check's facts
