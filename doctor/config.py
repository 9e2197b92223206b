"""Configuration: ``[tool.llmdoctor]`` in ./pyproject.toml, or ./llmdoctor.toml, or
``config.toml`` in the user config folder (the first that exists wins).

Every key is validated; a mistake is a :class:`ConfigError` whose message names the file
and the key, which the CLI prints as one line.
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from llmdoctor.errors import UserError
from llmdoctor.knowledge.hf import DEFAULT_ENDPOINT


class ConfigError(UserError):
    """A configuration file is malformed or has a bad key."""


DEFAULT_THRESHOLDS = {
    "min_free_gb": 20.0,  # warn when a model cache has less free space than this
    "min_free_inodes": 10_000,
    "path_warn_length": 7_500,  # cmd.exe's 8,191 minus what vcvarsall appends
    "probe_timeout_s": 5.0,
    "network_timeout_s": 3.0,
    "ram_bandwidth_gb_s": 50.0,  # for CPU decode speed: dual-channel DDR4-3200 is 51.2, DDR5-6000 is 96
}
POSITIVE_THRESHOLDS = ("probe_timeout_s", "network_timeout_s", "ram_bandwidth_gb_s")  # divided by, or waited on


DEFAULT_HF = {
    "repo": "openai-community/gpt2",  # a public repository every mirror should serve
    "small_file": "config.json",
    "large_file": "model.safetensors",  # large files are where mirrors redirect to storage hosts
    "official_endpoint": DEFAULT_ENDPOINT,
    "mirrors": [],  # candidates for 'llmdoctor fix --hf-endpoint' when --mirror is not given
}


@dataclass(frozen=True)
class Acknowledgement:
    id: str  # a finding id, or a pattern such as "path.*"
    reason: str
    expires: Optional[_dt.date] = None

    def expired(self, today: Optional[_dt.date] = None) -> bool:
        return self.expires is not None and (today or _dt.date.today()) > self.expires


@dataclass(frozen=True)
class ModelOfInterest:
    name: str
    size_gb: Optional[float] = None


@dataclass(frozen=True)
class Config:
    source: Optional[str] = None  # the file it came from, None for defaults
    skip: tuple = ()
    thresholds: dict = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    models: tuple = ()
    acknowledge: tuple = ()
    hf: dict = field(default_factory=lambda: dict(DEFAULT_HF))
    # "user" (the user's own config folder) or "project" (./pyproject.toml, ./llmdoctor.toml of
    # the folder llmdoctor runs in: a cloned repository may hold one). Settings that decide a
    # machine change (mirrors) are applied only from the user's own configuration or the
    # command line; a project's are shown with where they came from.
    origin: Optional[str] = None
    require: Optional[dict] = None  # a team's requirements ([require]; see llmdoctor.requirements)

    def threshold(self, name: str) -> Any:
        return self.thresholds.get(name, DEFAULT_THRESHOLDS.get(name))


def user_config_file() -> Path:
    from llmdoctor.dirs import user_dir

    return user_dir("config") / "config.toml"


def find_config_file(cwd: Optional[Path] = None) -> tuple:
    """(path, table key) of the configuration in force, or (None, None)."""
    cwd = cwd or Path.cwd()
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = read_toml(pyproject)
        except ConfigError:
            data = None
        tool = data.get("tool") if isinstance(data, dict) else None
        if data is None or (isinstance(tool, dict) and "llmdoctor" in tool):
            return pyproject, "tool.llmdoctor"
    for candidate in (cwd / "llmdoctor.toml", user_config_file()):
        if candidate.is_file():
            return candidate, ""
    return None, None


def read_toml(path: Path, error: type = None) -> dict:
    """A TOML file's tables; any problem is one ``error`` (default :class:`ConfigError`) naming it."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised under Python < 3.11
        import tomli as tomllib

    error = error or ConfigError
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{path}: not valid TOML: nested too deeply") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read: {exc.strerror or exc}") from None



def load_config(path: Optional[Path] = None, cwd: Optional[Path] = None) -> Config:
    table_key = ""
    if path is None:
        path, table_key = find_config_file(cwd)
        if path is None:
            return Config()
    data = read_toml(Path(path))
    if table_key:
        tool = data.get("tool", {})
        if not isinstance(tool, dict):
            raise ConfigError(f"{path}: tool: must be a table")
        data = tool.get("llmdoctor", {})
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: tool.llmdoctor: must be a table")
    user_file = user_config_file()
    try:
        origin = "user" if Path(path).resolve() == user_file.resolve() else "project"
    except OSError:
        origin = "project"
    return replace(parse_config(data, str(path), prefix=table_key), origin=origin)


def parse_config(data: dict, source: str, prefix: str = "") -> Config:
    def where(key: str) -> str:
        return f"{source}: {prefix + '.' if prefix else ''}{key}"

    allowed = {"skip", "thresholds", "models", "acknowledge", "hf", "require"}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{where(key)}: unknown key (expected one of {', '.join(sorted(allowed))})")

    skip = data.get("skip", [])
    if not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
        raise ConfigError(f"{where('skip')}: must be a list of check ids")

    thresholds = dict(DEFAULT_THRESHOLDS)
    for key, value in _table_items(data, "thresholds", DEFAULT_THRESHOLDS, where, "unknown threshold"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{where('thresholds.' + key)}: must be a non-negative number")
        if value == 0 and key in POSITIVE_THRESHOLDS:
            raise ConfigError(f"{where('thresholds.' + key)}: must be greater than 0")
        thresholds[key] = value

    models = []
    for index, item in enumerate(_list_of(data, "models", where)):
        key = f"models[{index}]"
        if isinstance(item, str):
            models.append(ModelOfInterest(name=item))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"{where(key)}: must be a name or a table with 'name'")
        unknown = set(item) - {"name", "size_gb"}
        if unknown:
            raise ConfigError(f"{where(key + '.' + sorted(unknown)[0])}: unknown key")
        size = item.get("size_gb")
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float))
                                 or not math.isfinite(size) or size <= 0):
            raise ConfigError(f"{where(key + '.size_gb')}: must be a positive number")
        models.append(ModelOfInterest(name=item["name"], size_gb=size))

    acks = []
    for index, item in enumerate(_list_of(data, "acknowledge", where)):
        key = f"acknowledge[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where(key)}: must be a table with 'id' and 'reason'")
        unknown = set(item) - {"id", "reason", "expires"}
        if unknown:
            raise ConfigError(f"{where(key + '.' + sorted(unknown)[0])}: unknown key")
        if not isinstance(item.get("id"), str) or not item["id"]:
            raise ConfigError(f"{where(key + '.id')}: a finding id is required")
        if not isinstance(item.get("reason"), str) or not item["reason"].strip():
            raise ConfigError(f"{where(key + '.reason')}: say why the finding is acknowledged")
        expires = item.get("expires")
        if isinstance(expires, str):
            try:
                expires = _dt.date.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"{where(key + '.expires')}: must be a date like 2027-01-31") from None
        elif isinstance(expires, _dt.datetime):
            expires = expires.date()
        elif expires is not None and not isinstance(expires, _dt.date):
            raise ConfigError(f"{where(key + '.expires')}: must be a date like 2027-01-31")
        acks.append(Acknowledgement(id=item["id"], reason=item["reason"].strip(), expires=expires))

    hf = dict(DEFAULT_HF)
    for key, value in _table_items(data, "hf", DEFAULT_HF, where, "unknown key"):
        if key == "mirrors":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{where('hf.mirrors')}: must be a list of URLs")
        elif not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where('hf.' + key)}: must be a non-empty string")
        hf[key] = value

    require = None
    if "require" in data:
        from llmdoctor.requirements import RequirementError, parse

        try:
            require = parse(data["require"], source, f"{prefix + '.' if prefix else ''}require")
        except RequirementError as exc:
            raise ConfigError(str(exc)) from None
    return Config(
        require=require,
        source=source,
        skip=tuple(skip),
        thresholds=thresholds,
        models=tuple(models),
        acknowledge=tuple(acks),
        hf=hf,
    )


def _table_items(data: dict, name: str, known: dict, where, unknown: str) -> list:
    """The (key, value) pairs of the table ``name``, each key one of ``known``'s."""
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where(name)}: must be a table")
    for key in table:
        if key not in known:
            raise ConfigError(f"{where(name + '.' + key)}: {unknown} (expected one of {', '.join(sorted(known))})")
    return list(table.items())


def _list_of(data: dict, key: str, where) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where(key)}: must be a list")
    return value
