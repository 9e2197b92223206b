"""Secrets never leave the process: planted tokens are searched for in every output."""

from __future__ import annotations

from llmdoctor.redact import REDACTED, Redactor

TOKEN = "hf_QwErTyUiOpAsDfGhJkLzXcVbNm123456"
FILE_TOKEN = "hf_FromTheTokenFileZZZZZZZZZZZZZZZZ"
PROXY_PASSWORD = "S3cretPassw0rd!"
API_KEY = "k3y-0123456789abcdef"


def test_redactor_layers():
    redactor = Redactor([TOKEN])
    assert redactor.text(f"token={TOKEN}") == f"token={REDACTED}"
    assert redactor.text("https://bob:hunter22@example.org/x") == f"https://{REDACTED}@example.org/x"
    assert redactor.text("hf_" + "a" * 30) == REDACTED  # token-shaped, even if unknown
    assert redactor.env({"OPENAI_API_KEY": "x", "PATH": "/usr/bin"}) == {
        "OPENAI_API_KEY": REDACTED, "PATH": "/usr/bin"}
    assert redactor.obj({"HF_TOKEN": "abc", "token_file_exists": True, "nested": [TOKEN]}) == {
        "HF_TOKEN": REDACTED, "token_file_exists": True, "nested": [REDACTED]}


def test_planted_secrets_never_appear_in_any_output(cli, tmp_path):
    home = tmp_path / "home"
    hf_home = home / ".cache" / "huggingface"
    hf_home.mkdir(parents=True)
    (hf_home / "token").write_text(FILE_TOKEN + "\n")
    (home / ".profile").write_text(f'export PATH="/opt/{FILE_TOKEN}/bin:$PATH"\n')
    env = {
        "HF_TOKEN": TOKEN,
        "HTTPS_PROXY": f"http://alice:{PROXY_PASSWORD}@proxy.internal:3128",
        "MY_SERVICE_API_KEY": API_KEY,
        "HF_HOME": str(hf_home),
        "HOME": str(home),
        "SHELL": "/bin/bash",
        "PATH": f"/opt/{TOKEN}/bin:/srv/{PROXY_PASSWORD}:/opt/{FILE_TOKEN}/bin:/usr/bin:/bin",
    }
    snapshot = tmp_path / "snapshot.json"
    outputs = {}
    for name, args in {
        "text": ["check"], "verbose": ["check", "-v"], "json": ["check", "--json"],
        "markdown": ["check", "--format", "markdown"], "collect": ["collect"],
        "collect-file": ["collect", "-o", str(snapshot)], "list": ["list"],
        "fix-dry-run": ["fix", "--path", "--dry-run"], "smoke": ["smoke"],
    }.items():
        result = cli(*args, env=env)
        outputs[name] = result.output
        assert "Traceback" not in result.output, name
    outputs["snapshot-file"] = snapshot.read_text()
    outputs["snapshot-check"] = cli("check", "-v", "--snapshot", str(snapshot), env=env).output
    assert REDACTED in outputs["collect"] and "/opt/" in outputs["json"]  # the entries are there
    for name, text in outputs.items():
        for secret in (TOKEN, FILE_TOKEN, PROXY_PASSWORD, API_KEY):
            assert secret not in text, f"{secret!r} leaked into {name}"
