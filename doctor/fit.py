"""Will this model fit, and how fast will it run? The memory and speed model.

Sources: gguf-py's GGML_QUANT_SIZES (https://github.com/ggml-org/llama.cpp/blob/master/gguf-py/gguf/constants.py),
llama.cpp's KV cache and offload code (https://github.com/ggml-org/llama.cpp/tree/master/src), ollama's memory
estimate (https://github.com/ollama/ollama/blob/main/llm/memory.go).
- Weights: exact bytes per tensor from the GGUF header (or safetensors headers), grouped
  into blocks (``blk.N.``), the token embeddings (kept on the CPU by llama.cpp) and the
  output layer (counted as one more block by ``--n-gpu-layers``).
- KV cache: per layer ``kv_size x n_head_kv(il) x (head_dim_k + head_dim_v) x bytes(type)``;
  sliding-window layers hold ``min(ctx, window + n_ubatch)`` cells.
- Compute buffer: ollama's fitted formula for llama.cpp's worst-case graph at n_ubatch 512.
- Per GPU: + about 450 MiB CUDA context and a 1 GiB margin (llama.cpp's --fit-target);
  compared with NVML's *free* memory.
- Decode speed bound: bandwidth / bytes read per token (MoE: active experts only), with
  the realistic band at 50-80 % of it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Optional

MiB = 1024**2
GiB = 1024**3
CUDA_CONTEXT = 450 * MiB
MARGIN = 1024 * MiB
UBATCH = 512
KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
EFFICIENCY = (0.5, 0.8)
# llama.cpp's sliding-window patterns by architecture: every Nth layer is global, the rest local
SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "gpt-oss": 2, "llama4": 4}


class FitError(Exception):
    pass


# What a header may claim, with room far above any real model (the largest published ones
# have about 130 layers, 16,384-wide embeddings, 128 heads, 256K vocabularies, 10M-token
# contexts and 256 experts). A figure outside is a damaged or hostile file, refused by name
# before anything is sized by it.
LIMITS = {
    "layers": (1, 4096), "embedding length": (1, 1 << 18), "attention heads": (0, 1 << 14),
    "key/value heads": (0, 1 << 14), "head size": (1, 1 << 16), "context length": (1, 1 << 28),
    "vocabulary": (0, 1 << 24), "experts": (0, 1 << 14), "experts used": (0, 1 << 14),
    "sliding window": (0, 1 << 28),
}
MAX_CTX = LIMITS["context length"][1]


def plausible(value, what: str, name: str) -> int:
    """``value`` as a whole number within ``LIMITS[what]``, else a one-line :class:`FitError`."""
    low, high = LIMITS[what]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FitError(f"{name}: the {what} is not a number ({type(value).__name__})")
    try:
        number = float(value) if isinstance(value, (float, str)) else value
    except ValueError:
        raise FitError(f"{name}: the {what} is not a number ({value!r:.40})") from None
    if isinstance(number, float) and (number != number or number in (float("inf"), float("-inf"))
                                      or number != int(number)):
        raise FitError(f"{name}: the {what} is not a whole number ({value!r:.40})")
    number = int(number)
    if not low <= number <= high:
        raise FitError(f"{name}: the {what} is {number:,}, outside {low:,}-{high:,} (a damaged file?)")
    return number


@dataclass
class ModelSpec:
    name: str
    source: str  # "GGUF file", "safetensors folder", "Hub GGUF", "Hub safetensors", "name (rough estimate)"
    arch: str
    n_layer: int
    n_embd: int
    n_vocab: int
    n_head: list  # per layer
    n_head_kv: list  # per layer
    head_dim_k: int
    head_dim_v: int
    ctx_train: int
    layer_bytes: list  # per block
    embd_bytes: int
    output_bytes: int
    expert_bytes: list = field(default_factory=list)  # per block: bytes of the experts' tensors
    expert_count: int = 0
    expert_used: int = 0
    swa_layers: list = field(default_factory=list)  # per block: True for sliding-window layers
    sliding_window: int = 0
    quantization: str = ""
    estimate: bool = False
    bytes_read: int = 0
    # no output.weight: llama.cpp loads token_embd a second time as the output layer
    # (TENSOR_DUPLICATED in llama-model.cpp), on the output layer's device
    tied_output: bool = False

    @property
    def weight_bytes(self) -> int:
        return sum(self.layer_bytes) + self.embd_bytes + self.output_bytes

    def to_json(self) -> dict:
        data = asdict(self)
        data["weight_bytes"] = self.weight_bytes
        return data


# ----------------------------------------------------------------------------- from GGUF


def spec_from_gguf(header, name: str, source: str) -> ModelSpec:
    meta = header.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise FitError(f"{name}: the GGUF has no general.architecture")

    def key(suffix, default=None):
        return meta.get(f"{arch}.{suffix}", default)

    if key("block_count") is None or key("embedding_length") is None:
        raise FitError(f"{name}: the GGUF lacks {arch}.block_count or {arch}.embedding_length")
    n_layer = plausible(key("block_count"), "layers", name)
    n_embd = plausible(key("embedding_length"), "embedding length", name)
    heads = _per_layer(key("attention.head_count", 0), n_layer, "attention heads", name)
    heads_kv = _per_layer(key("attention.head_count_kv", None), n_layer, "key/value heads", name) \
        if key("attention.head_count_kv") is not None else list(heads)
    if not any(heads):
        raise FitError(f"{name}: the GGUF gives no layer any attention heads")
    first_heads = next((h for h in heads if h), 1)
    head_k = plausible(key("attention.key_length", 0) or max(1, n_embd // first_heads), "head size", name)
    head_v = plausible(key("attention.value_length", 0) or head_k, "head size", name)
    layer_bytes, expert_bytes = [0] * n_layer, [0] * n_layer
    embd = output = other = 0
    vocab = 0
    for tensor in header.tensors:
        size = tensor.n_bytes
        match = re.match(r"blk\.(\d+)\.", tensor.name)
        if match and int(match.group(1)) < n_layer:
            layer = int(match.group(1))
            layer_bytes[layer] += size
            if "_exps" in tensor.name:  # routed experts; shared experts (_shexp) always run
                expert_bytes[layer] += size
        elif tensor.name.startswith("token_embd."):
            embd += size
            if tensor.name == "token_embd.weight" and len(tensor.shape) >= 2:
                vocab = tensor.shape[1]
        elif tensor.name.startswith(("output.", "output_norm.")):
            output += size
        else:
            other += size
    tokens = meta.get("tokenizer.ggml.tokens")
    if isinstance(tokens, dict):
        vocab = vocab or tokens.get("array_length", 0)
    elif isinstance(tokens, list):
        vocab = vocab or len(tokens)
    window = plausible(key("attention.sliding_window", 0) or 0, "sliding window", name)
    pattern = key("attention.sliding_window_pattern")
    if isinstance(pattern, list) and len(pattern) == n_layer:
        swa = [bool(p) for p in pattern]
    elif window and arch in SWA_PATTERN:
        every = SWA_PATTERN[arch]
        swa = [(il % every) < every - 1 for il in range(n_layer)]
    else:
        swa = [False] * n_layer  # unknown pattern: count every layer as global (an overestimate)
    return ModelSpec(
        name=name, source=source, arch=arch, n_layer=n_layer, n_embd=n_embd,
        n_vocab=plausible(vocab or 0, "vocabulary", name), n_head=heads, n_head_kv=heads_kv, head_dim_k=head_k,
        head_dim_v=head_v, ctx_train=plausible(key("context_length", 4096) or 4096, "context length", name),
        layer_bytes=layer_bytes, embd_bytes=embd, output_bytes=output + other, expert_bytes=expert_bytes,
        expert_count=plausible(key("expert_count", 0) or 0, "experts", name),
        expert_used=plausible(key("expert_used_count", 0) or 0, "experts used", name), swa_layers=swa,
        sliding_window=window,
        quantization=_dominant_type(header), bytes_read=header.header_bytes,
        tied_output=not any(t.name == "output.weight" for t in header.tensors)
        and any(t.name == "token_embd.weight" for t in header.tensors))


def _per_layer(value, n_layer: int, what: str, name: str) -> list:
    if isinstance(value, list):
        if not value:
            raise FitError(f"{name}: the {what} per layer is an empty list")
        values = [plausible(v, what, name) for v in value[:n_layer]]
        return values + [values[-1]] * max(0, n_layer - len(values))
    return [plausible(value or 0, what, name)] * n_layer


def _dominant_type(header) -> str:
    totals: dict = {}
    for tensor in header.tensors:
        if tensor.name.startswith("blk."):
            totals[tensor.type_name] = totals.get(tensor.type_name, 0) + tensor.n_bytes
    return max(totals, key=totals.get) if totals else ""


# ----------------------------------------------------------------------------- memory


def kv_bytes_per_layer(spec: ModelSpec, ctx: int, kv_type: str) -> list:
    bytes_per = KV_BYTES[kv_type]
    sizes = []
    for il in range(spec.n_layer):
        cells = min(ctx, spec.sliding_window + UBATCH) if spec.swa_layers and spec.swa_layers[il] and \
            spec.sliding_window else ctx
        sizes.append(int(cells * spec.n_head_kv[il] * (spec.head_dim_k + spec.head_dim_v) * bytes_per))
    return sizes


def compute_buffer(spec: ModelSpec, ctx: int, flash_attention: bool) -> int:
    """ollama's fitted formula (fs/ggml GraphSize) for llama.cpp's worst-case graph."""
    heads = max(spec.n_head) if spec.n_head else 0
    attention = ctx * (1 + (0 if flash_attention else heads))
    return int(max(4 * UBATCH * (1 + 4 * spec.n_embd + attention), 4 * UBATCH * (spec.n_embd + spec.n_vocab)))


@dataclass
class Placement:
    device: str
    free_bytes: int
    n_gpu_layers: int
    layers_on_device: int
    weights: int
    kv: int
    compute: int
    overhead: int
    need: int
    fits: bool


def gpu_need(spec: ModelSpec, ngl: int, kv: list, compute: int) -> dict:
    """What ``--n-gpu-layers ngl`` puts on the GPU: the last ngl blocks (the output layer
    counts as block n_layer+1); token embeddings stay on the CPU."""
    ngl = max(0, min(ngl, spec.n_layer + 1))
    start = max(spec.n_layer - ngl, 0)
    layers = range(start, spec.n_layer) if ngl else range(0)
    output = spec.output_bytes + (spec.embd_bytes if spec.tied_output else 0)
    weights = sum(spec.layer_bytes[i] for i in layers) + (output if ngl > spec.n_layer else 0)
    kv_on = sum(kv[i] for i in layers)
    compute_on = compute if ngl else 0
    overhead = (CUDA_CONTEXT + MARGIN) if ngl else 0
    return {"weights": weights, "kv": kv_on, "compute": compute_on, "overhead": overhead,
            "need": weights + kv_on + compute_on + overhead, "layers": len(layers)}


def place_on_gpu(spec: ModelSpec, free: int, ctx: int, kv_type: str, flash_attention: bool,
                 requested_ngl: Optional[int] = None) -> dict:
    kv = kv_bytes_per_layer(spec, ctx, kv_type)
    compute = compute_buffer(spec, ctx, flash_attention)
    if requested_ngl is not None:
        need = gpu_need(spec, requested_ngl, kv, compute)
        return {"n_gpu_layers": min(requested_ngl, spec.n_layer + 1), "fits": need["need"] <= free, **need}
    # what a placement needs only grows with ngl: a binary search, not a scan (linear in layers overall)
    low, high = 0, spec.n_layer + 1
    while low < high:
        middle = (low + high + 1) // 2
        if gpu_need(spec, middle, kv, compute)["need"] <= free:
            low = middle
        else:
            high = middle - 1
    best = low
    need = gpu_need(spec, best, kv, compute)
    return {"n_gpu_layers": best, "fits": best == spec.n_layer + 1, **need}


def largest_full_context(spec: ModelSpec, free: int, kv_type: str, flash_attention: bool) -> int:
    """The largest context (a multiple of 256, up to the trained length) that still fits fully."""
    low, high = 0, max(spec.ctx_train, 256) // 256
    while low < high:
        middle = (low + high + 1) // 2
        ctx = middle * 256
        need = gpu_need(spec, spec.n_layer + 1, kv_bytes_per_layer(spec, ctx, kv_type),
                        compute_buffer(spec, ctx, flash_attention))["need"]
        if need <= free:
            low = middle
        else:
            high = middle - 1
    return low * 256


def bytes_per_token(spec: ModelSpec, layers: range, ctx: int, kv_type: str, with_output: bool) -> int:
    active = 1.0
    if spec.expert_count and spec.expert_used:
        active = spec.expert_used / spec.expert_count
    kv = kv_bytes_per_layer(spec, ctx, kv_type)
    total = 0
    for i in layers:
        dense = spec.layer_bytes[i] - spec.expert_bytes[i]
        total += dense + int(spec.expert_bytes[i] * active) + kv[i]
    return total + (spec.output_bytes if with_output else 0)


def decode_speed(spec: ModelSpec, ngl: int, ctx: int, kv_type: str, gpu_bandwidth: Optional[float],
                 ram_bandwidth: float) -> Optional[dict]:
    """tok/s bound: time per token = GPU bytes / GPU bandwidth + CPU bytes / RAM bandwidth."""
    ngl = max(0, min(ngl, spec.n_layer + 1))
    start = max(spec.n_layer - ngl, 0)
    gpu_bytes = bytes_per_token(spec, range(start, spec.n_layer), ctx, kv_type, ngl > spec.n_layer) if ngl else 0
    cpu_bytes = bytes_per_token(spec, range(0, start), ctx, kv_type, ngl <= spec.n_layer)
    seconds = 0.0
    if gpu_bytes:
        if not gpu_bandwidth:
            return None
        seconds += gpu_bytes / (gpu_bandwidth * 1e9)
    if cpu_bytes:
        seconds += cpu_bytes / (ram_bandwidth * 1e9)
    if seconds <= 0:
        return None
    bound = 1 / seconds
    return {"bound_tok_s": round(bound, 1), "realistic_tok_s": [round(bound * EFFICIENCY[0], 1),
                                                              round(bound * EFFICIENCY[1], 1)],
            "gpu_bytes_per_token": gpu_bytes, "cpu_bytes_per_token": cpu_bytes}


@dataclass
class FitReport:
    model: ModelSpec
    ctx: int
    kv_type: str
    flash_attention: bool
    weights: int
    kv: int
    compute: int
    devices: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {"model": self.model.to_json(), "ctx": self.ctx, "kv_type": self.kv_type,
                "flash_attention": self.flash_attention,
                "memory": {"weights": self.weights, "kv_cache": self.kv, "compute_buffer": self.compute,
                           "cuda_context": CUDA_CONTEXT, "margin": MARGIN},
                "devices": self.devices, "notes": self.notes}


def fit(spec: ModelSpec, gpus: list, ram_available: int, ctx: Optional[int] = None, kv_type: str = "f16",
        gpu_layers: Optional[int] = None, ram_bandwidth: float = 50.0) -> FitReport:
    if kv_type not in KV_BYTES:
        raise FitError(f"--kv-type must be one of {', '.join(KV_BYTES)}")
    if ctx is not None and not 0 < ctx <= MAX_CTX:
        raise FitError(f"--ctx must be a number of tokens from 1 to {MAX_CTX:,}")
    if gpu_layers is not None and gpu_layers < 0:
        raise FitError("--gpu-layers must be 0 or more")
    ctx = int(ctx or min(spec.ctx_train, 8192))
    flash = kv_type != "f16"
    kv = sum(kv_bytes_per_layer(spec, ctx, kv_type))
    compute = compute_buffer(spec, ctx, flash)
    report = FitReport(spec, ctx, kv_type, flash, spec.weight_bytes, kv, compute)
    if kv_type != "f16":
        report.notes.append("a quantised V cache needs flash attention (-fa); it is assumed on")
    else:
        report.notes.append("the compute buffer assumes no flash attention; with -fa it is smaller "
                            "(context x heads drops out)")
    if ctx > spec.ctx_train and not spec.estimate:
        report.notes.append(f"ctx {ctx:,} is beyond the {spec.ctx_train:,} tokens the model was trained for")
    if gpu_layers is not None and not gpus:
        report.notes.append("--gpu-layers has no effect here: no NVIDIA GPU was found (NVML), so every layer runs on "
                            "the CPU")
    if spec.estimate:
        report.notes.append("a name estimate: layers, width, heads, context and quantisation are assumed from the "
                            "name and typical shapes, not read from the model")
    for gpu in gpus:
        free = int(gpu.get("memory_free_bytes") or 0)
        placed = place_on_gpu(spec, free, ctx, kv_type, flash, gpu_layers)
        verdict = "fits" if placed["fits"] else ("partial" if placed["n_gpu_layers"] else "does not fit")
        speed = decode_speed(spec, placed["n_gpu_layers"], ctx, kv_type, gpu.get("bandwidth_gb_s"), ram_bandwidth)
        report.devices.append({
            "device": f"GPU {gpu.get('index', 0)}: {gpu.get('name', '?')}", "kind": "gpu", "free_bytes": free,
            "verdict": verdict, "n_gpu_layers": placed["n_gpu_layers"], "total_layers": spec.n_layer + 1,
            "need": {k: placed[k] for k in ("weights", "kv", "compute", "overhead", "need")},
            "largest_full_context": largest_full_context(spec, free, kv_type, flash),
            "speed": speed, "bandwidth_gb_s": gpu.get("bandwidth_gb_s")})
    cpu_need = spec.weight_bytes + kv + compute
    report.devices.append({
        "device": "system RAM (CPU only)", "kind": "cpu", "free_bytes": ram_available,
        "verdict": "fits" if cpu_need <= ram_available else "does not fit", "n_gpu_layers": 0,
        "total_layers": spec.n_layer + 1,
        "need": {"weights": spec.weight_bytes, "kv": kv, "compute": compute, "overhead": 0, "need": cpu_need},
        "speed": decode_speed(spec, 0, ctx, kv_type, None, ram_bandwidth), "bandwidth_gb_s": ram_bandwidth})
    return report
