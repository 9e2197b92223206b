"""Where a model description comes from: a local GGUF file, a local Hugging Face folder,
a Hub reference read with HTTP Range requests, or only a name (a rough estimate).

Only headers are read: a GGUF header, ``config.json`` and each safetensors header (an
8-byte length and a JSON table). A Hub reference never downloads the model itself.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections import namedtuple
from pathlib import Path
from typing import Callable, Optional

from llmdoctor.fit import FitError, ModelSpec, plausible, spec_from_gguf
from llmdoctor.gguf_header import GGUFError, read_header, read_local

SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                     "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 0.5}
# effective bits per weight of llama.cpp file types (Llama-3-8B sizes from tools/quantize)
NAME_BPW = {"q2_k": 3.17, "q3_k_s": 3.65, "q3_k_m": 4.00, "q3_k_l": 4.31, "q4_0": 4.64, "q4_k_s": 4.67,
            "q4_k_m": 4.90, "q5_k_m": 5.70, "q6_k": 6.57, "q8_0": 8.51, "f16": 16.0, "bf16": 16.0,
            "fp16": 16.0, "int8": 8.5, "int4": 4.5, "awq": 4.5, "gptq": 4.5}
# bare quant words people type ("llama3-8b-q4"): the K-quant llama.cpp users usually mean
BARE_QUANTS = {"q2": "q2_k", "q3": "q3_k_m", "q4": "q4_k_m", "q5": "q5_k_m", "q6": "q6_k", "q8": "q8_0"}
# ollama's library tags default to Q4_K_M when the tag names no quantisation
# (https://github.com/ollama/ollama/blob/main/docs/import.md#quantizing-a-model)
OLLAMA_DEFAULT_QUANT = "q4_k_m"
# the shape a name estimate assumes, by size in billions: a real model's, from its config.json
# (layers, width, heads, KV heads, feed-forward width, vocabulary, trained context); checked
# against those files in tests/data/hub/model_configs.json
NameShape = namedtuple("NameShape", "size model n_layer n_embd n_head n_kv n_ff n_vocab ctx")
SHAPES = [
    NameShape(0.5, "Qwen/Qwen2.5-0.5B", 24, 896, 14, 2, 4864, 151936, 32768),
    NameShape(1.5, "Qwen/Qwen2.5-1.5B", 28, 1536, 12, 2, 8960, 151936, 131072),
    NameShape(3, "meta-llama/Llama-3.2-3B", 28, 3072, 24, 8, 8192, 128256, 131072),
    NameShape(8, "meta-llama/Llama-3.1-8B", 32, 4096, 32, 8, 14336, 128256, 131072),
    NameShape(14, "Qwen/Qwen2.5-14B", 48, 5120, 40, 8, 13824, 152064, 131072),
    NameShape(32, "Qwen/Qwen2.5-32B", 64, 5120, 40, 8, 27648, 152064, 131072),
    NameShape(70, "meta-llama/Llama-3.1-70B", 80, 8192, 64, 8, 28672, 128256, 131072),
    NameShape(123, "mistralai/Mistral-Large-Instruct-2407", 88, 12288, 96, 8, 28672, 32768, 131072),
    NameShape(405, "meta-llama/Llama-3.1-405B", 126, 16384, 128, 8, 53248, 128256, 131072),
]


# ----------------------------------------------------------------------------- safetensors

MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
MAX_HUB_FILES = 64  # safetensors shards read for one remote model
MAX_HUB_HEADER_BYTES = 256 * 1024 * 1024  # all their headers together


def safetensors_header(fetch: Callable[[int, int], bytes], name: str) -> dict:
    raw = fetch(0, 8)
    if len(raw) < 8:
        raise FitError(f"{name}: not a safetensors file (too short)")
    length = struct.unpack("<Q", raw)[0]
    if length > MAX_SAFETENSORS_HEADER:
        raise FitError(f"{name}: a {length:,}-byte safetensors header (damaged file)")
    data = fetch(8, length)
    if len(data) < length:
        raise FitError(f"{name}: its safetensors header claims {length:,} bytes but the file ends sooner")
    try:
        header = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FitError(f"{name}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise FitError(f"{name}: its safetensors header is not a JSON object")
    return header


def spec_from_safetensors(config: dict, headers: list, name: str, source: str, bytes_read: int) -> ModelSpec:
    if not isinstance(config, dict):
        raise FitError(f"{name}: config.json is not a JSON object")
    text = config.get("text_config") or config
    if not isinstance(text, dict):
        raise FitError(f"{name}: config.json's text_config is not an object")
    if any(text.get(k) is None for k in ("num_hidden_layers", "hidden_size", "num_attention_heads")):
        raise FitError(f"{name}: config.json lacks num_hidden_layers, hidden_size or num_attention_heads")
    n_layer = plausible(text["num_hidden_layers"], "layers", name)
    n_embd = plausible(text["hidden_size"], "embedding length", name)
    n_head = plausible(text["num_attention_heads"], "attention heads", name)
    if n_head == 0:
        raise FitError(f"{name}: config.json gives 0 attention heads")
    n_kv = plausible(text.get("num_key_value_heads") or n_head, "key/value heads", name)
    head_dim = plausible(text.get("head_dim") or max(1, n_embd // n_head), "head size", name)
    layer_bytes, expert_bytes = [0] * n_layer, [0] * n_layer
    embd = output = 0
    for header in headers:
        for tensor, info in header.items():
            if tensor == "__metadata__" or not isinstance(info, dict):
                continue
            offsets = info.get("data_offsets", (0, 0))
            if not (isinstance(offsets, (list, tuple)) and len(offsets) == 2
                    and all(isinstance(o, int) and not isinstance(o, bool) and 0 <= o < 1 << 50 for o in offsets)
                    and offsets[0] <= offsets[1]):
                raise FitError(f"{name}: tensor {tensor[:80]} has bad data_offsets")
            size = offsets[1] - offsets[0]
            match = re.search(r"layers\.(\d+)\.", tensor)
            if match and int(match.group(1)) < n_layer:
                layer_bytes[int(match.group(1))] += size
                if ".experts." in tensor:
                    expert_bytes[int(match.group(1))] += size
            elif "embed_tokens" in tensor or tensor.endswith("wte.weight"):
                embd += size
            else:
                output += size
    layer_types = text.get("layer_types") or []
    if not isinstance(layer_types, list):
        layer_types = []
    window = plausible(text.get("sliding_window") or 0, "sliding window", name) \
        if text.get("use_sliding_window", True) is not False else 0
    swa = [t == "sliding_attention" for t in layer_types] if len(layer_types) == n_layer else [False] * n_layer
    dtypes = {info.get("dtype") for h in headers for k, info in h.items()
              if k != "__metadata__" and isinstance(info, dict)}
    return ModelSpec(
        name=name, source=source, arch=str(text.get("model_type") or config.get("model_type") or "?"),
        n_layer=n_layer, n_embd=n_embd, n_vocab=plausible(text.get("vocab_size") or 0, "vocabulary", name),
        n_head=[n_head] * n_layer, n_head_kv=[n_kv] * n_layer, head_dim_k=head_dim, head_dim_v=head_dim,
        ctx_train=plausible(text.get("max_position_embeddings") or 4096, "context length", name),
        layer_bytes=layer_bytes, embd_bytes=embd, output_bytes=output, expert_bytes=expert_bytes,
        expert_count=plausible(text.get("num_local_experts") or text.get("num_experts") or 0, "experts", name),
        expert_used=plausible(text.get("num_experts_per_tok") or 0, "experts used", name), swa_layers=swa,
        sliding_window=window if any(swa) else 0,
        quantization="/".join(sorted(d for d in dtypes if d)), bytes_read=bytes_read,
        tied_output=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
        and not any("lm_head" in k for h in headers for k in h))


def from_folder(folder: Path) -> ModelSpec:
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise FitError(f"{folder}: no readable config.json ({exc})") from None
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FitError(f"{folder}: no .safetensors files next to config.json")
    headers, read = [], 0
    for path in files:
        with open(path, "rb") as handle:
            def fetch(offset: int, size: int, handle=handle) -> bytes:
                handle.seek(offset)
                return handle.read(size)

            header = safetensors_header(fetch, str(path))
            headers.append(header)
            read += 8 + len(json.dumps(header))
    return spec_from_safetensors(config, headers, folder.name, "safetensors folder", read)


# ----------------------------------------------------------------------------- the Hub


class HubUnreachable(FitError):
    """The Hub (or mirror) did not answer at all: a network problem, not a bad reference."""


def hub_token(environ: Optional[dict] = None) -> Optional[str]:
    """The token huggingface_hub would send: HF_TOKEN, else the token file (HF_TOKEN_PATH, else
    $HF_HOME/token) (https://huggingface.co/docs/huggingface_hub/package_reference/environment_variables)."""
    environ = os.environ if environ is None else environ
    token = environ.get("HF_TOKEN") or environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token.strip()
    home = environ.get("HF_HOME") or os.path.join(environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                                    "huggingface")
    try:
        with open(environ.get("HF_TOKEN_PATH") or os.path.join(home, "token"), encoding="utf-8") as handle:
            return handle.read(4096).strip() or None
    except OSError:
        return None


def _auth(url: str, endpoint_host: Optional[str]) -> dict:
    """The bearer token, for the Hub's own host only: never for the storage host it redirects to."""
    from urllib.parse import urlsplit

    token = hub_token()
    if token and endpoint_host and urlsplit(url).netloc == endpoint_host:
        return {"Authorization": f"Bearer {token}"}
    return {}


def _follow(url: str, timeout: float, max_body: int, headers: Optional[dict] = None):
    """GET ``url``, following redirects (the Hub sends file contents from a storage host)."""
    from urllib.parse import urljoin, urlsplit

    from llmdoctor import http

    host = urlsplit(url).netloc
    for _ in range(6):
        answer = http.request(url, timeout=timeout, environ=dict(os.environ), max_body=max_body,
                              headers={**(headers or {}), **_auth(url, host)})
        if answer.status in (301, 302, 303, 307, 308) and answer.headers.get("location"):
            url = urljoin(url, answer.headers["location"])
            continue
        break
    return answer


def _refused(reference: str, answer, endpoint: str, repo: str) -> FitError:
    if answer.status is None:
        return HubUnreachable(f"{reference}: {endpoint} cannot be reached ({answer.error}); with --offline or "
                              "--allow-estimate, fit estimates from the name instead")
    if answer.status in (401, 403):
        return FitError(f"{reference}: the repository is gated or private ({answer.status}): accept its licence at "
                        f"{endpoint}/{repo} and set HF_TOKEN (or run 'huggingface-cli login')")
    return FitError(f"{reference}: the Hub answered {answer.status}")


class RangeReader:
    """Byte ranges of one URL, following redirects to the storage host; counts what it read."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout, self.bytes_read = url, timeout, 0

    def __call__(self, offset: int, size: int) -> bytes:
        answer = _follow(self.url, self.timeout, size, {"Range": f"bytes={offset}-{offset + size - 1}"})
        if answer.status == 416:
            return b""
        if answer.status not in (200, 206):
            from urllib.parse import urlsplit

            parts = urlsplit(self.url)
            raise _refused(self.url, answer, f"{parts.scheme}://{parts.netloc}",
                           "/".join(parts.path.strip("/").split("/")[:2]))
        if answer.status == 200 and offset:
            raise FitError(f"{self.url}: the server ignores Range requests; not downloading the whole file")
        data = answer.body[:size]
        self.bytes_read += len(data)
        return data


def from_hub(reference: str, endpoint: str, timeout: float) -> ModelSpec:
    from llmdoctor import http

    parts = reference.strip("/").split("/")
    repo = "/".join(parts[:2])
    if len(parts) > 2:
        file = "/".join(parts[2:])
        reader = RangeReader(f"{endpoint}/{repo}/resolve/main/{file}", timeout)
        try:
            header = read_header(_chunked(reader), limit=64 << 20)
        except GGUFError as exc:
            raise FitError(f"{reference}: {exc}") from None
        spec = spec_from_gguf(header, reference, "Hub GGUF")
        spec.bytes_read = reader.bytes_read
        return spec
    url = f"{endpoint}/api/models/{repo}"
    from urllib.parse import urlsplit

    answer = http.request(url, timeout=timeout, environ=dict(os.environ), headers=_auth(url, urlsplit(url).netloc))
    if answer.status != 200:
        raise _refused(reference, answer, endpoint, repo)
    try:
        siblings = [s["rfilename"] for s in json.loads(answer.body).get("siblings", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise FitError(f"{reference}: the Hub's answer lists no files") from None
    ggufs = [f for f in siblings if f.endswith(".gguf")]
    tensors = [f for f in siblings if f.endswith(".safetensors")]
    if tensors and "config.json" in siblings:
        config_answer = _follow(f"{endpoint}/{repo}/resolve/main/config.json", timeout, 10 * 1024 * 1024)
        if config_answer.status != 200:
            raise _refused(f"{reference}/config.json", config_answer, endpoint, repo)
        try:
            config = json.loads(config_answer.body)
        except ValueError:
            raise FitError(f"{reference}: config.json is not JSON") from None
        headers, read = [], len(config_answer.body)
        if len(tensors) > MAX_HUB_FILES:
            raise FitError(f"{reference}: the repository lists {len(tensors):,} safetensors files; llmdoctor reads the "
                           f"headers of at most {MAX_HUB_FILES} (give one GGUF file, or a local folder)")
        for file in tensors:
            reader = RangeReader(f"{endpoint}/{repo}/resolve/main/{file}", timeout)
            headers.append(safetensors_header(reader, f"{reference}/{file}"))
            read += reader.bytes_read
            if read > MAX_HUB_HEADER_BYTES:
                raise FitError(f"{reference}: its safetensors headers pass {MAX_HUB_HEADER_BYTES >> 20} MiB; stopped "
                               "reading (a damaged or hostile repository?)")
        return spec_from_safetensors(config, headers, reference, "Hub safetensors", read)
    if ggufs:
        preferred = next((f for f in ggufs if "q4_k_m" in f.lower()), ggufs[0])
        spec = from_hub(f"{repo}/{preferred}", endpoint, timeout)
        spec.name = f"{repo}/{preferred}"
        return spec
    raise FitError(f"{reference}: the repository has neither GGUF files nor config.json with safetensors")


def _chunked(reader: RangeReader) -> Callable[[int, int], bytes]:
    """Smaller first requests for remote headers: most are well under a few MB."""
    return lambda offset, size: reader(offset, min(size, 4 << 20))


# ----------------------------------------------------------------------------- a name


def from_name(name: str) -> ModelSpec:
    lowered = name.lower()
    moe = re.search(r"(\d+)x(\d+(?:\.\d+)?)b", lowered)
    active_match = re.search(r"-a(\d+(?:\.\d+)?)b", lowered)
    size = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)\s*b(?![a-z])", lowered)
    if moe:
        total = float(moe.group(1)) * float(moe.group(2)) * 0.85  # experts share attention and embeddings
    elif size:
        total = float(size.group(1))
    else:
        raise FitError(f"cannot tell the size of '{name}' from its name: give a GGUF file, a model folder, "
                       "or an org/repo reference")
    quant = next((q for q in sorted(NAME_BPW, key=len, reverse=True) if re.search(rf"(?<![a-z0-9]){q}(?![a-z0-9])",
                                                                                lowered)), None)
    if quant is None:
        bare = next((q for q in BARE_QUANTS if re.search(rf"(?<![a-z0-9]){q}(?![a-z0-9_])", lowered)), None)
        quant = BARE_QUANTS[bare] if bare else (OLLAMA_DEFAULT_QUANT if ":" in name else "f16")
    bpw = NAME_BPW[quant]
    # an MoE's layers and width are its experts' (Mixtral 8x7B has 32 layers of width 4096)
    shape_size = float(moe.group(2)) if moe else total
    shape = min(SHAPES, key=lambda s: abs(s.size - shape_size))
    n_layer, n_embd = shape.n_layer, shape.n_embd
    weight = int(total * 1e9 * bpw / 8)
    embd = int(shape.n_vocab * n_embd * bpw / 8)
    per_layer = max(0, (weight - 2 * embd) // n_layer)
    spec = ModelSpec(
        name=name, source="name (rough estimate)", arch="?", n_layer=n_layer, n_embd=n_embd, n_vocab=shape.n_vocab,
        n_head=[shape.n_head] * n_layer, n_head_kv=[shape.n_kv] * n_layer, head_dim_k=n_embd // shape.n_head,
        head_dim_v=n_embd // shape.n_head, ctx_train=shape.ctx, layer_bytes=[per_layer] * n_layer, embd_bytes=embd,
        output_bytes=embd, expert_bytes=[0] * n_layer, quantization=quant.upper(), estimate=True, n_ff=shape.n_ff)
    if moe or active_match:
        spec.expert_count = int(moe.group(1)) if moe else 8
        spec.expert_used = 2 if moe else max(1, round(spec.expert_count * float(active_match.group(1)) / total))
        spec.expert_bytes = [int(per_layer * 0.9)] * n_layer
    return spec


def resolve(model: str, endpoint: str, timeout: float, offline: bool = False) -> ModelSpec:
    path = Path(model).expanduser()
    if path.is_file():
        return spec_from_gguf(read_local(path), path.name, "GGUF file")
    if path.is_dir():
        return from_folder(path)
    if model.endswith(".gguf") and os.sep in model and not re.fullmatch(r"[\w.-]+/[\w.-]+/[\w./-]+\.gguf", model):
        raise FitError(f"{model}: no such file")
    if re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+\.gguf)?", model) and not offline:
        return from_hub(model, endpoint, timeout)
    return from_name(model)


def hub_endpoint(environ: Optional[dict] = None) -> str:
    environ = os.environ if environ is None else environ
    from llmdoctor.knowledge.hf import intended_endpoint

    return intended_endpoint(environ.get("HF_ENDPOINT"))
