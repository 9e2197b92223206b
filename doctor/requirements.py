"""A team's requirements for a machine, as data: parsed and checked here, judged by the
``require`` check, met by ``fix --all --require FILE``, and written from a good machine by
``llmdoctor require --from``.

The table (``[require]`` in ``llmdoctor.toml``, ``[tool.llmdoctor.require]`` in
``pyproject.toml``, or a file named with ``--require``)::

    python = ">=3.10,<3.13"            # the target interpreter's version (PEP 440)
    torch-cuda = "12.*"                # torch's CUDA build: "12.4", "12.*", or "cpu"
    driver = ">=550"                   # the NVIDIA driver
    nvcc = ">=12.1,<13"                # an nvcc in this range on PATH
    hf-endpoint = "https://hf-mirror.com"   # or "official"
    hf-reachable = true                # the endpoint answers (API, files, large-file hosts)

    [require.packages]                 # PEP 440 specifiers in the target interpreter
    torch = ">=2.4,<2.6"
    bitsandbytes = ">=0.45"

    [require.gpus]
    count = 1
    memory_gb = 16                     # each
    compute_capability = "8.0"         # at least

    [require.ffmpeg]
    encoders = ["libx264", "aac"]

    [require.disk]                     # free GB; "hf-cache" is the Hugging Face cache
    hf-cache = 50
    "/data" = 100

    [[require.models]]                 # anything 'llmdoctor fit' accepts
    name = "Qwen/Qwen2.5-7B-Instruct-GGUF/qwen2.5-7b-instruct-q4_k_m.gguf"
    ctx = 8192
    on = "gpu"                         # "gpu": fully on one GPU; "any": GPU and RAM together

Every mistake is a :class:`RequirementError` naming the file and the key, as the
configuration's errors do.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

from llmdoctor.errors import UserError

KEYS = ("python", "packages", "torch-cuda", "driver", "gpus", "nvcc", "ffmpeg", "hf-endpoint", "hf-reachable",
        "disk", "models")
GPU_KEYS = ("count", "memory_gb", "compute_capability")
MODEL_KEYS = ("name", "ctx", "on")
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


class RequirementError(UserError):
    """A requirements file or table that cannot be used (one line: file, key, why)."""


def _specifier(value, where: str):
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if not isinstance(value, str):
        raise RequirementError(f"{where}: must be a version specifier such as \">=2.4,<2.6\"")
    try:
        return SpecifierSet(value.strip() if value.strip() not in ("*", "") else "")
    except InvalidSpecifier:
        raise RequirementError(f"{where}: {value!r} is not a version specifier (PEP 440, e.g. \">=2.4,<2.6\")") \
            from None


def _number(value, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise RequirementError(f"{where}: must be a number of at least {minimum:g}")
    return float(value)


def _table(data: dict, key: str, where, what: str) -> dict:
    value = data[key]
    if not isinstance(value, dict):
        raise RequirementError(f"{where(key)}: must be {what}")
    return value


def parse(data, source: str, prefix: str = "require") -> dict:
    """The requirements in ``data`` (a TOML table), validated; values normalised."""
    def where(key: str) -> str:
        return f"{source}: {prefix}.{key}"

    if not isinstance(data, dict):
        raise RequirementError(f"{source}: {prefix}: must be a table")
    for key in data:
        if key not in KEYS:
            import difflib

            close = difflib.get_close_matches(str(key), KEYS, n=1)
            raise RequirementError(f"{where(key)}: unknown key" + (f"; did you mean '{close[0]}'?" if close else "")
                                   + f" (expected one of {', '.join(KEYS)})")
    result: dict = {}
    for key in ("python", "driver", "nvcc"):
        if key in data:
            _specifier(data[key], where(key))
            result[key] = data[key].strip()
    if "torch-cuda" in data:
        value = data["torch-cuda"]
        if not isinstance(value, str) or not re.fullmatch(r"cpu|\d+(\.(\d+|\*))?|\d+\.\*", value.strip()):
            raise RequirementError(f"{where('torch-cuda')}: must be a CUDA version such as \"12.4\" or \"12.*\", "
                                   "or \"cpu\"")
        result["torch-cuda"] = value.strip()
    if "packages" in data:
        packages = _table(data, "packages", where, "a table of name = \"specifier\"")
        result["packages"] = {}
        for name, spec in packages.items():
            if not PACKAGE_NAME.match(str(name)):
                raise RequirementError(f"{where('packages.' + str(name))}: not a package name")
            _specifier(spec, where(f"packages.{name}"))
            result["packages"][str(name)] = spec.strip()
    if "gpus" in data:
        gpus = _table(data, "gpus", where, "a table (count, memory_gb, compute_capability)")
        for key in gpus:
            if key not in GPU_KEYS:
                raise RequirementError(f"{where('gpus.' + str(key))}: unknown key (expected one of "
                                       f"{', '.join(GPU_KEYS)})")
        result["gpus"] = {}
        if "count" in gpus:
            count = gpus["count"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise RequirementError(f"{where('gpus.count')}: must be a whole number")
            result["gpus"]["count"] = count
        if "memory_gb" in gpus:
            result["gpus"]["memory_gb"] = _number(gpus["memory_gb"], where("gpus.memory_gb"))
        if "compute_capability" in gpus:
            value = gpus["compute_capability"]
            if not isinstance(value, str) or not re.fullmatch(r"\d+\.\d+", value):
                raise RequirementError(f"{where('gpus.compute_capability')}: must be like \"8.0\"")
            result["gpus"]["compute_capability"] = value
    if "ffmpeg" in data:
        ffmpeg = data["ffmpeg"]
        if ffmpeg is True:
            ffmpeg = {}
        if not isinstance(ffmpeg, dict) or set(ffmpeg) - {"encoders"}:
            raise RequirementError(f"{where('ffmpeg')}: must be true or a table with encoders = [...]")
        encoders = ffmpeg.get("encoders", [])
        if not isinstance(encoders, list) or not all(isinstance(e, str) and e for e in encoders):
            raise RequirementError(f"{where('ffmpeg.encoders')}: must be a list of encoder names")
        result["ffmpeg"] = {"encoders": list(encoders)}
    if "hf-endpoint" in data:
        value = data["hf-endpoint"]
        from llmdoctor.knowledge.hf import is_http_url

        if not isinstance(value, str) or (value != "official" and not is_http_url(value)):
            raise RequirementError(f"{where('hf-endpoint')}: must be \"official\" or an http(s) URL")
        result["hf-endpoint"] = value.rstrip("/")
    if "hf-reachable" in data:
        if not isinstance(data["hf-reachable"], bool):
            raise RequirementError(f"{where('hf-reachable')}: must be true or false")
        result["hf-reachable"] = data["hf-reachable"]
    if "disk" in data:
        disk = _table(data, "disk", where, "a table of location = free GB")
        result["disk"] = {}
        for location, amount in disk.items():
            if location != "hf-cache" and not str(location).startswith(("/", "~")) and not re.match(
                    r"^[A-Za-z]:[\\/]", str(location)):
                raise RequirementError(f"{where('disk.' + str(location))}: a location is \"hf-cache\" or an "
                                       "absolute path")
            result["disk"][str(location)] = _number(amount, where(f"disk.{location}"))
    if "models" in data:
        models = data["models"]
        if not isinstance(models, list):
            raise RequirementError(f"{where('models')}: must be a list of tables ([[require.models]])")
        result["models"] = [_model(item, where(f"models[{index}]")) for index, item in enumerate(models)]
    return result


def _model(item, where: str) -> dict:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
        raise RequirementError(f"{where}: must be a table with a model 'name'")
    unknown = set(item) - set(MODEL_KEYS)
    if unknown:
        raise RequirementError(f"{where}.{sorted(unknown)[0]}: unknown key (expected one of {', '.join(MODEL_KEYS)})")
    ctx = item.get("ctx", 8192)
    if isinstance(ctx, bool) or not isinstance(ctx, int) or not 0 < ctx <= 1 << 28:
        raise RequirementError(f"{where}.ctx: must be a number of tokens")
    on = item.get("on", "gpu")
    if on not in ("gpu", "any"):
        raise RequirementError(f"{where}.on: must be \"gpu\" or \"any\"")
    name = item["name"].strip()
    _check_model_reference(name, where)
    return {"name": name, "ctx": ctx, "on": on}


def _check_model_reference(name: str, where: str) -> None:
    """A model reference 'llmdoctor fit' would accept: a path, org/repo[/file], or a name it can
    estimate. Only a bare name is judged here (without the network)."""
    if name.startswith(("/", "~", ".")) or name.endswith(".gguf") and "/" not in name:
        return
    if re.fullmatch(r"[\w.-]+/[\w.-]+(/.+)?", name):
        return
    from llmdoctor.fit import FitError
    from llmdoctor.model_sources import from_name

    try:
        from_name(name)
    except FitError as exc:
        raise RequirementError(f"{where}.name: {exc}") from None


def load_file(path: Path) -> dict:
    """Requirements from a file: a ``[require]`` table, a ``[tool.llmdoctor.require]`` table, or
    (for a file of requirements alone) its top level."""
    from llmdoctor.config import read_toml

    if not Path(path).is_file():
        raise RequirementError(f"{path}: no such file")
    data = read_toml(Path(path), RequirementError)
    tool = data.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("llmdoctor"), dict) and "require" in tool["llmdoctor"]:
        return parse(tool["llmdoctor"]["require"], str(path), "tool.llmdoctor.require")
    if "require" in data:
        return parse(data["require"], str(path))
    return parse(data, str(path), "require")


# ----------------------------------------------------------------------------- from a good machine


def _compatible(version: str, exact: bool) -> str:
    """``~=X.Y.Z`` style range for a version (or ``==`` with ``exact``)."""
    from packaging.version import InvalidVersion, Version

    base = version.split("+", 1)[0]
    if exact:
        return f"=={base}"
    try:
        release = Version(base).release
    except InvalidVersion:
        return f"=={base}"
    if len(release) >= 2:
        return f">={release[0]}.{release[1]}" + (f".{release[2]}" if len(release) > 2 else "") + \
            f",<{release[0]}.{release[1] + 1}"
    return f">={base}"


def profile_from_snapshot(snapshot: dict, *, exact: bool = False, models: Optional[list] = None) -> dict:
    """Requirements that the machine in ``snapshot`` meets: the versions it runs (compatible
    ranges, or exact), its CUDA build, driver, GPUs, nvcc, ffmpeg encoders, mirror, and models."""
    facts = snapshot.get("facts") or {}
    target = snapshot.get("target") or {}
    require: dict = {}
    if target.get("version"):
        major, minor = target["version"].split(".")[:2]
        require["python"] = f"=={target['version']}" if exact else f">={major}.{minor},<{major}.{int(minor) + 1}"
    packages = target.get("packages") or {}
    chosen = {name: packages[name] for name in ("torch", "torchvision", "torchaudio", "bitsandbytes",
                                                 "transformers", "accelerate", "huggingface-hub",
                                                 "llama-cpp-python", "vllm") if name in packages}
    if chosen:
        require["packages"] = {name: _compatible(version, exact) for name, version in chosen.items()}
    torch = facts.get("torch") or {}
    if torch.get("installed"):
        require["torch-cuda"] = torch.get("cuda") or "cpu"
    driver = facts.get("nvidia-driver") or {}
    if driver.get("driver_version"):
        require["driver"] = f">={driver['driver_version'].split('.')[0]}"
    gpus = driver.get("gpus") or []
    if gpus:
        memory = min(int(g.get("memory_total_bytes") or 0) for g in gpus) / 2**30
        capability = min((str(g.get("compute_capability") or "0.0") for g in gpus),
                         key=lambda c: tuple(int(p) for p in c.split(".") if p.isdigit()))
        require["gpus"] = {"count": len(gpus), "memory_gb": math.floor(memory),
                           "compute_capability": capability}
    version = (facts.get("nvcc") or {}).get("version")
    if isinstance(version, str) and re.match(r"\d+\.\d+", version):
        major, minor = version.split(".")[:2]
        require["nvcc"] = f"=={version}" if exact else f">={major}.{minor},<{int(major) + 1}"
    ffmpeg = facts.get("ffmpeg") or {}
    present = (ffmpeg.get("encoders") or {}).get("present") or []
    if ffmpeg.get("on_path"):
        require["ffmpeg"] = {"encoders": [e for e in ("libx264", "aac") if e in present]}
    hf = facts.get("hf-endpoint") or {}
    endpoint = hf.get("endpoint")
    if isinstance(endpoint, str) and endpoint:
        from llmdoctor.knowledge.hf import DEFAULT_ENDPOINT

        officials = {DEFAULT_ENDPOINT, str(hf.get("official_endpoint") or "").rstrip("/")}
        require["hf-endpoint"] = "official" if endpoint.rstrip("/") in officials else endpoint.rstrip("/")
    if models:
        require["models"] = [{"name": name, "ctx": 8192, "on": "gpu" if gpus else "any"} for name in models]
    return require


def to_toml(require: dict, header: str = "") -> str:
    """The requirements as a ``[require]`` TOML file (the small subset this needs)."""
    def literal(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, list):
            return "[" + ", ".join(literal(v) for v in value) + "]"
        import json

        return json.dumps(str(value))

    def key(name: str) -> str:
        return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else literal(name)

    lines = [f"# {line}" for line in header.splitlines()] + ["[require]"]
    tables = []
    for name, value in require.items():
        if isinstance(value, dict):
            tables.append((name, value))
        elif name == "models":
            continue
        else:
            lines.append(f"{key(name)} = {literal(value)}")
    for name, value in tables:
        lines += ["", f"[require.{key(name)}]"] + [f"{key(k)} = {literal(v)}" for k, v in value.items()]
    for model in require.get("models", []):
        lines += ["", "[[require.models]]"] + [f"{key(k)} = {literal(v)}" for k, v in model.items()]
    return "\n".join(lines) + "\n"
