"""Configuration files, validation errors, skips, thresholds and acknowledgements."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from llmdoctor.config import ConfigError, load_config


def test_pyproject_table_wins(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.llmdoctor]\nskip = ["disk"]\n'
        '[tool.llmdoctor.thresholds]\nmin_free_gb = 50\n'
        '[[tool.llmdoctor.models]]\nname = "qwen2.5-14b-q4_k_m"\nsize_gb = 9.0\n')
    (tmp_path / "llmdoctor.toml").write_text('skip = ["path"]\n')
    config = load_config(cwd=tmp_path)
    assert config.skip == ("disk",) and config.threshold("min_free_gb") == 50
    assert config.models[0].size_gb == 9.0
    assert config.source.endswith("pyproject.toml")


def test_llmdoctor_toml_then_user_config(tmp_path, monkeypatch):
    (tmp_path / "llmdoctor.toml").write_text('skip = ["path"]\n')
    assert load_config(cwd=tmp_path).skip == ("path",)
    user = tmp_path / "config"
    user.mkdir(exist_ok=True)
    (user / "config.toml").write_text('skip = ["disk"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert load_config(cwd=elsewhere).skip == ("disk",)


@pytest.mark.parametrize("content, message", [
    ("skip = [", "not valid TOML"),
    ('colour = "red"', "colour: unknown key"),
    ("skip = 3", "skip: must be a list"),
    ("[thresholds]\nmin_free_gb = -1", "thresholds.min_free_gb: must be a non-negative number"),
    ("[thresholds]\nmin_free = 1", "thresholds.min_free: unknown threshold"),
    ('[[acknowledge]]\nid = "path.x"', "acknowledge[0].reason"),
    ('[[acknowledge]]\nid = "path.x"\nreason = "ok"\nexpires = "soon"', "acknowledge[0].expires"),
    ('[[models]]\nname = "m"\nsize_gb = "big"', "models[0].size_gb"),
])
def test_bad_config_names_file_and_key(tmp_path, content, message):
    (tmp_path / "llmdoctor.toml").write_text(content)
    with pytest.raises(ConfigError) as error:
        load_config(cwd=tmp_path)
    assert str(tmp_path / "llmdoctor.toml") in str(error.value) and message in str(error.value)


def test_bad_config_is_one_line_exit_2(cli, tmp_path):
    (tmp_path / "llmdoctor.toml").write_text('[thresholds]\nmin_free_gb = "lots"\n')
    result = cli("check")
    assert result.code == 2
    assert result.stderr.strip() == (f"llmdoctor: error: {tmp_path / 'llmdoctor.toml'}: "
                                     "thresholds.min_free_gb: must be a non-negative number")


def test_config_skip_shows_skipped_with_reason(cli, tmp_path):
    (tmp_path / "llmdoctor.toml").write_text('skip = ["disk"]\n')
    (disk,) = [c for c in cli("check", "--json").json()["checks"] if c["id"] == "disk"]
    assert disk["status"] == "skipped" and "configuration" in disk["reason"]


def test_acknowledgements_dim_and_do_not_count(cli, tmp_path):
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    (tmp_path / "llmdoctor.toml").write_text(
        f'[[acknowledge]]\nid = "path.file-entry"\nreason = "the lab image adds it"\nexpires = {future}\n'
        '[[acknowledge]]\nid = "path.relative-entry"\nreason = "gone long ago"\n')
    env = {"PATH": "/tmp/llmdoctor-tool.bin:/usr/bin"}
    (tmp_path / "tool.bin").write_text("")
    env["PATH"] = f"{tmp_path / 'tool.bin'}:/usr/bin"
    report = cli("check", "--json", "--only", "path", env=env)
    data = report.json()
    (path,) = [c for c in data["checks"] if c["id"] == "path"]
    (ack,) = [f for f in path["findings"] if f["id"] == "path.file-entry"]
    assert ack["acknowledged"] == "the lab image adds it"
    assert path["status"] == "ok" and report.code == 0  # the error no longer counts
    (config,) = [c for c in data["checks"] if c["id"] == "config"]
    assert config["findings"][0]["id"] == "config.acknowledgement-stale"
    text = cli("check", "--only", "path", env=env).stdout
    assert "(acknowledged: the lab image adds it)" in text


def test_expired_acknowledgement_counts_again(cli, tmp_path):
    (tmp_path / "tool.bin").write_text("")
    (tmp_path / "llmdoctor.toml").write_text(
        '[[acknowledge]]\nid = "path.*"\nreason = "later"\nexpires = 2020-01-01\n')
    result = cli("check", "--json", "--only", "path", env={"PATH": f"{tmp_path / 'tool.bin'}:/nothing"})
    data = result.json()
    ids = {f["id"] for c in data["checks"] for f in c["findings"]}
    assert "config.acknowledgement-expired" in ids and result.code == 1


@pytest.mark.parametrize("kind", ["config", "cache", "state"])
def test_llmdoctors_folders_are_platformdirs_answers(monkeypatch, tmp_path, kind):
    """On Linux computed without importing platformdirs: the same folders, XDG variables included."""
    import platformdirs

    from llmdoctor.dirs import user_dir

    monkeypatch.delenv(f"LLMDOCTOR_{kind.upper()}_DIR", raising=False)
    for xdg in (None, str(tmp_path / "xdg")):
        for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
            if xdg:
                monkeypatch.setenv(name, xdg)
            else:
                monkeypatch.delenv(name, raising=False)
        expected = Path(getattr(platformdirs, f"user_{kind}_dir")("llmdoctor", appauthor=False))
        assert user_dir(kind) == expected
    monkeypatch.setenv(f"LLMDOCTOR_{kind.upper()}_DIR", str(tmp_path / "own"))
    assert user_dir(kind) == tmp_path / "own"
