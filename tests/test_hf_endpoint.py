"""The `hf-endpoint` check against a real HTTP server on 127.0.0.1 playing a mirror."""

from __future__ import annotations

import time

import pytest

from llmdoctor.checks.hf_endpoint import probe_hf, rules, value_findings
from llmdoctor.config import DEFAULT_HF, Config
from llmdoctor.models import RuleContext

from hub_mirror import Mirror

CONTEXT = RuleContext(platform={"system": "linux"}, config=Config())
ONLINE = {"LLMDOCTOR_OFFLINE": ""}  # this test's network is a server on 127.0.0.1


@pytest.fixture
def mirror(request):
    server = Mirror(getattr(request, "param", "healthy"))
    yield server
    server.close()


def diagnose(environ, timeout=2.0, hub="0.30.2", offline=False):
    facts = probe_hf(environ, dict(DEFAULT_HF, official_endpoint="http://127.0.0.1:9"), timeout, offline, hub)
    return facts, {f.id: f for f in rules(facts, CONTEXT)}


def test_healthy_mirror(mirror, tmp_path):
    facts, found = diagnose({"HF_ENDPOINT": mirror.url, "HOME": str(tmp_path)})
    assert "hf-endpoint.ok" in found, found
    assert ("GET", "/api/models/openai-community/gpt2") in mirror.requests
    assert ("HEAD", "/openai-community/gpt2/resolve/main/config.json") in mirror.requests
    assert facts["network"]["large_hosts"][0]["reachable"]
    assert found["hf-endpoint.only-this-shell"].severity == "warning"  # not saved anywhere


@pytest.mark.parametrize("mirror", ["no-commit"], indirect=True)
def test_mirror_without_repo_commit(mirror, tmp_path):
    _, found = diagnose({"HF_ENDPOINT": mirror.url, "HOME": str(tmp_path)})
    finding = found["hf-endpoint.no-repo-commit"]
    assert finding.severity == "error" and "does not seem to be served by a Hugging Face Hub" in finding.details


@pytest.mark.parametrize("mirror", ["api-404"], indirect=True)
def test_mirror_without_api(mirror, tmp_path):
    _, found = diagnose({"HF_ENDPOINT": mirror.url, "HOME": str(tmp_path)})
    assert found["hf-endpoint.api-missing"].facts["status"] == 404
    assert "hf-endpoint.no-repo-commit" not in found  # files themselves are fine


@pytest.mark.parametrize("mirror", ["unreachable-storage"], indirect=True)
def test_large_files_redirected_to_an_unreachable_host(mirror, tmp_path):
    _, found = diagnose({"HF_ENDPOINT": mirror.url, "HOME": str(tmp_path)})
    finding = found["hf-endpoint.large-files-unreachable"]
    assert finding.severity == "error" and f"127.0.0.1:{mirror.dead_port}" in finding.message


@pytest.mark.parametrize("mirror", ["hang"], indirect=True)
def test_mirror_that_never_answers_costs_only_the_timeout(mirror, tmp_path):
    started = time.monotonic()
    _, found = diagnose({"HF_ENDPOINT": mirror.url, "HOME": str(tmp_path)}, timeout=1.0)
    assert time.monotonic() - started < 2.5
    assert found["hf-endpoint.unreachable"].facts["error_kind"] == "timeout"


def test_hung_mirror_through_the_cli_within_the_timeout(cli, tmp_path):
    server = Mirror("hang")
    try:
        (tmp_path / "llmdoctor.toml").write_text("[thresholds]\nnetwork_timeout_s = 1\n")
        started = time.monotonic()
        result = cli("check", "--only", "hf-endpoint", "--json", env={"HF_ENDPOINT": server.url, **ONLINE})
        assert time.monotonic() - started < 1 + 5
        ids = {f["id"] for c in result.json()["checks"] for f in c["findings"]}
        assert "hf-endpoint.unreachable" in ids and result.code == 1
    finally:
        server.close()


def test_offline_skips_the_network(cli):
    result = cli("check", "--only", "hf-endpoint", "--offline", "--json", env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    ids = {f["id"] for c in result.json()["checks"] for f in c["findings"]}
    assert "hf-endpoint.not-checked" in ids and "hf-endpoint.unreachable" not in ids


@pytest.mark.parametrize("value, hub, expected", [
    ("hf-mirror.com", "0.30.0", "hf-endpoint.no-scheme"),
    ('"https://hf-mirror.com"', "0.30.0", "hf-endpoint.quoted"),
    ("https://hf-mirror.com \n", "0.30.0", "hf-endpoint.whitespace"),
    ("https://hf-mirror.com/", "0.27.1", "hf-endpoint.trailing-slash"),
    ("http://mirror.example.org", "0.30.0", "hf-endpoint.plain-http"),
])
def test_malformed_values(value, hub, expected):
    assert expected in {f.id for f in value_findings(value, hub)}


def test_sound_values():
    assert value_findings("https://hf-mirror.com/", "0.28.0") == []  # stripped since 0.28
    assert value_findings("http://10.0.0.5:8080", "0.30.0") == []  # deliberate http on a private network


def test_where_it_is_saved(tmp_path, mirror):
    (tmp_path / ".bashrc").write_text(f"export HF_ENDPOINT={mirror.url}\n")
    _, found = diagnose({"HF_ENDPOINT": mirror.url, "HOME": str(tmp_path)})
    assert "hf-endpoint.only-this-shell" not in found
    _, found = diagnose({"HOME": str(tmp_path)}, offline=True)
    assert "hf-endpoint.not-in-this-shell" in found


def test_proxy_ca_and_offline_flags(tmp_path):
    environ = {"HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "REQUESTS_CA_BUNDLE": str(tmp_path / "none.pem"),
               "HF_HUB_ENABLE_HF_TRANSFER": "1"}
    _, found = diagnose(environ, offline=True, hub="1.2.0")
    expected = {"hf-endpoint.offline-mode", "hf-endpoint.ca-bundle-missing", "hf-endpoint.hf-transfer-deprecated"}
    assert expected <= set(found)


def test_secrets_in_the_proxy_url_do_not_leak(cli, mirror):
    result = cli("check", "--only", "hf-endpoint", "-v", "--json",
                 env={"HF_ENDPOINT": mirror.url, "HTTPS_PROXY": "http://bob:Pr0xyPassw0rd@127.0.0.1:9",
                      "NO_PROXY": "127.0.0.1", **ONLINE})
    assert "Pr0xyPassw0rd" not in result.output and "Traceback" not in result.output


BASHRC = "# my shell\nexport HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123\nalias ll='ls -l'\n"


def test_fix_persists_a_verified_mirror_and_undo_restores_bytes(cli, tmp_path, mirror):
    home = tmp_path / "home"
    (home / ".bashrc").write_text(BASHRC)
    conda = tmp_path / "conda-env"
    (conda / "conda-meta").mkdir(parents=True)
    state = '{"env_vars": {"HF_TOKEN": "hf_CondaTokenZZZZZZZZZZZZZZZZZZZZZZ"}}'
    (conda / "conda-meta" / "state").write_text(state)
    env = {"HOME": str(home), "SHELL": "/bin/bash", "CONDA_PREFIX": str(conda), **ONLINE}

    dry = cli("fix", "--hf-endpoint", "--mirror", mirror.url, "--dry-run", env=env)
    assert dry.code == 0 and f"export HF_ENDPOINT={mirror.url}" in dry.stdout
    assert (home / ".bashrc").read_text() == BASHRC

    applied = cli("fix", "--hf-endpoint", "--mirror", mirror.url, "--yes", env=env)
    assert applied.code == 0, applied.output
    assert "✓ hf-endpoint: fixed" in applied.stdout
    assert f"export HF_ENDPOINT={mirror.url}" in (home / ".bashrc").read_text()
    import json

    saved = json.loads((conda / "conda-meta" / "state").read_text())
    assert saved["env_vars"] == {"HF_TOKEN": "hf_CondaTokenZZZZZZZZZZZZZZZZZZZZZZ", "HF_ENDPOINT": mirror.url}
    assert "hf_CondaToken" not in applied.output and "hf_AbCdEf" not in applied.output

    assert cli("undo", "--yes", env=env).code == 0
    assert (home / ".bashrc").read_bytes() == BASHRC.encode()
    assert (conda / "conda-meta" / "state").read_text() == state


@pytest.mark.parametrize("mirror", ["no-commit"], indirect=True)
def test_fix_refuses_a_mirror_that_fails_verification(cli, tmp_path, mirror):
    home = tmp_path / "home"
    env = {"HOME": str(home), "SHELL": "/bin/bash", **ONLINE}
    result = cli("fix", "--hf-endpoint", "--mirror", mirror.url, "--yes", env=env)
    assert result.code == 1 and "X-Repo-Commit" in result.stdout
    assert not (home / ".bashrc").exists()


def test_fix_without_a_mirror_asks_for_one(cli, tmp_path):
    result = cli("fix", "--hf-endpoint", "--yes", env={"HOME": str(tmp_path), **ONLINE})
    assert result.code == 1 and "--mirror" in result.stdout


def test_notebook_helper_sees_a_variable_set_after_import():
    from types import SimpleNamespace

    from llmdoctor.notebook import hf_endpoint_problem

    imported = {"huggingface_hub.constants": SimpleNamespace(ENDPOINT="https://huggingface.co")}
    problem = hf_endpoint_problem({"HF_ENDPOINT": "https://hf-mirror.example"}, imported)
    assert "imported before it was set" in problem
    same = {"huggingface_hub.constants": SimpleNamespace(ENDPOINT="https://hf-mirror.example")}
    assert hf_endpoint_problem({"HF_ENDPOINT": "https://hf-mirror.example/"}, same) is None
    assert hf_endpoint_problem({"HF_ENDPOINT": "https://x"}, {}) is None  # not imported yet: fine
