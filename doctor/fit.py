"""Will this model fit, and how fast will it run? The memory and speed model.

Sources: gguf-py's GGML_QUANT_SIZES (https://github.com/ggml-org/llama.cpp/blob/master/gguf-py/gguf/constants.py),
llama.cpp's KV cache and offload code (https://github.com/ggml-org/llama.cpp/tree/master/src), ollama's memory
estimate (https://github.com/ollama/ollama/blob/main/llm/memory.go).
- Weights: exact bytes per tensor from the GGUF header (or safetensors headers), grouped
  into blocks (``blk.N.``), the token embeddings (kept on the CPU by llama.cpp) and the
  output layer (counted as one more block by ``--n-gpu-layers``).
- KV cache: per layer ``kv_size x n_head_kv(il) x (head_dim_k + head_dim_v) x bytes(type)``;
  sliding-window layers hold ``min(ctx, window + n_ubatch)`` cells.
- KV cache: the context padded to 256, one stream per parallel slot unless the cache is
  unified, sliding-window layers at the window (per slot) plus one ubatch, padded to 256.
- Compute buffer: the peak of llama.cpp's worst-case graph, stage by stage (``compute_parts``),
  with flash attention as the runtime resolves it; validated against a real llama.cpp in
  tests/test_fit_llama_cpp.py (docs/fit-validation.md).
- Placement: llama.cpp's layer split over all GPUs (by free memory, or --tensor-split), the
  tied output layer's copy of the token embeddings on the output layer's device, the CPU's
  repacked copies of the tensor types its backend repacks.
- Per GPU: + about 450 MiB CUDA context and a 1 GiB margin (llama.cpp's --fit-target);
  compared with NVML's *free* memory.
- Decode speed bound: bandwidth / bytes read per token (MoE: active experts only), with
  the realistic band at 50-80 % of it.
"""

from __future__ import annotations

import bisect
import re
import struct
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

from llmdoctor.knowledge.units import GiB, MiB  # noqa: F401 - part of this module's interface

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
    n_ff: int = 0  # feed-forward width (the largest layer's)
    n_ff_exp: int = 0  # an expert's feed-forward width
    # matrix bytes by ggml type, per block and then the output layer, of the tensors whose
    # rows are a multiple of 8: what the CPU backend may repack (ggml-cpu/repack.cpp)
    repackable: dict = field(default_factory=dict)
    # by CPU kind: bytes of repacked tensors at the two ends of the file's data, which
    # llama.cpp unmaps once they are copied (llama-model-loader.cpp unmap_fragment)
    repack_edges: dict = field(default_factory=dict)
    qkv_fused: bool = False  # one attn_qkv tensor (Phi-3): K and V are views of its output
    ffn_fused: bool = False  # gate and up in one ffn_up tensor (Phi-3)

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
    ffn_widths = {"dense": 0, "expert": 0}
    repackable: dict = {}
    for tensor in header.tensors:
        size = tensor.n_bytes
        match = re.match(r"blk\.(\d+)\.", tensor.name)
        block = None
        if match and int(match.group(1)) < n_layer:
            layer = block = int(match.group(1))
            layer_bytes[layer] += size
            if "_exps" in tensor.name:  # routed experts; shared experts (_shexp) always run
                expert_bytes[layer] += size
            if ".ffn_up" in tensor.name and len(tensor.shape) >= 2:  # ne = [n_embd, n_ff(, experts)]
                kind = "expert" if "_exps" in tensor.name else "dense"
                if "_shexp" not in tensor.name:
                    ffn_widths[kind] = max(ffn_widths[kind], int(tensor.shape[1]))
        elif tensor.name.startswith("token_embd."):
            embd += size
            if tensor.name == "token_embd.weight" and len(tensor.shape) >= 2:
                vocab = tensor.shape[1]
        elif tensor.name.startswith(("output.", "output_norm.")):
            output += size
            block = n_layer if tensor.name == "output.weight" else None
        else:
            other += size
        if block is not None and len(tensor.shape) >= 2 and tensor.shape[1] % 8 == 0:
            per_block = repackable.setdefault(tensor.type_name, [0] * (n_layer + 1))
            per_block[block] += size
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
        and any(t.name == "token_embd.weight" for t in header.tensors),
        n_ff=_ffn_width(key("feed_forward_length", 0), ffn_widths["dense"]),
        n_ff_exp=_ffn_width(key("expert_feed_forward_length", 0), ffn_widths["expert"]), repackable=repackable,
        repack_edges=_repack_edges(header.tensors, n_layer),
        qkv_fused=any(".attn_qkv." in t.name for t in header.tensors),
        ffn_fused=not any(".ffn_gate." in t.name or ".ffn_gate_exps." in t.name for t in header.tensors)
        and any(".ffn_up." in t.name for t in header.tensors))


def _repack_edges(tensors: list, n_layer: int) -> dict:
    """Per CPU kind, the bytes of repacked tensors before the first and after the last tensor
    that stays memory-mapped: llama.cpp unmaps those ends of the file after loading."""
    ordered = sorted(tensors, key=lambda t: t.offset)

    def candidate(tensor, types) -> bool:
        match = re.match(r"blk\.(\d+)\.", tensor.name)
        in_block = match is not None and int(match.group(1)) < n_layer
        return (in_block or tensor.name == "output.weight") and tensor.type_name in types \
            and len(tensor.shape) >= 2 and tensor.shape[1] % 8 == 0

    edges = {}
    for kind, types in REPACKED_TYPES.items():
        total = 0
        for run in (ordered, ordered[::-1]):
            for tensor in run:
                if not candidate(tensor, types):
                    break
                total += tensor.n_bytes
        edges[kind] = min(total, sum(t.n_bytes for t in tensors))
    return edges


def _ffn_width(declared, from_shapes: int) -> int:
    """The feed-forward width: the header's (the largest, where it is given per layer), else
    the widest ffn_up tensor's."""
    if isinstance(declared, list):
        declared = max((v for v in declared if isinstance(v, int) and not isinstance(v, bool)), default=0)
    if isinstance(declared, bool) or not isinstance(declared, int) or not 0 < declared <= 1 << 24:
        return from_shapes
    return declared


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


# ----------------------------------------------------------------------------- runtimes


@dataclass(frozen=True)
class Runtime:
    """What a runtime does when the user does not say: the defaults ``fit`` assumes."""
    name: str
    flash_attn: str  # "auto", "on" or "off"
    n_batch: int
    n_ubatch: int
    n_parallel: int
    kv_unified: bool
    default_ctx: Optional[int]  # None: the model's trained context
    sources: tuple


LLAMA_CPP_TAG = "https://github.com/ggml-org/llama.cpp/blob/master"
RUNTIMES = {
    # common/common.h: n_ctx 0 (the trained context; --fit lowers it, to 4096 at least, when
    # memory is short), n_batch 2048, n_ubatch 512, n_parallel 1, flash_attn_type AUTO,
    # kv_unified false, no_extra_bufts false (CPU repacking on)
    "llama.cpp": Runtime("llama.cpp", "auto", 2048, 512, 1, False, None,
                         (f"{LLAMA_CPP_TAG}/common/common.h", f"{LLAMA_CPP_TAG}/src/llama-context.cpp")),
    # tools/server/server.cpp: n_parallel -1 (auto) becomes 4 slots with a unified KV cache
    "llama-server": Runtime("llama-server", "auto", 2048, 512, 4, True, None,
                            (f"{LLAMA_CPP_TAG}/tools/server/server.cpp", f"{LLAMA_CPP_TAG}/common/common.h")),
    # ollama: num_ctx 4096 (https://docs.ollama.com/context-length), num_batch 512, one
    # request at a time (OLLAMA_NUM_PARALLEL), flash attention only with OLLAMA_FLASH_ATTENTION
    # (https://github.com/ollama/ollama/blob/main/envconfig/config.go)
    "ollama": Runtime("ollama", "off", 512, 512, 1, False, 4096,
                      ("https://docs.ollama.com/context-length",
                       "https://github.com/ollama/ollama/blob/main/envconfig/config.go")),
}
FLASH_CHOICES = ("auto", "on", "off")
# architectures llama.cpp runs without flash attention whatever is asked (llama-context.cpp)
NO_FLASH_ARCHS = {"grok"}


def pad(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


@dataclass
class Settings:
    """The configuration one estimate assumes, resolved as llama.cpp resolves it."""
    runtime: str
    ctx: int  # as asked
    n_ctx: int  # as llama.cpp pads it: a multiple of 256 (llama-context.cpp)
    kv_type: str
    flash_attn: bool
    flash_why: str
    n_batch: int
    n_ubatch: int
    n_seq: int
    kv_unified: bool
    repack: bool

    @property
    def n_tokens(self) -> int:
        """Tokens in the worst-case graph llama.cpp reserves: min(n_ctx, n_ubatch)."""
        return min(self.n_ctx, self.n_ubatch)

    @property
    def n_streams(self) -> int:
        return 1 if self.kv_unified else self.n_seq

    @property
    def cells_per_stream(self) -> int:
        """KV cells of a full-attention layer per stream (n_ctx_seq in llama-context.cpp)."""
        if self.kv_unified:
            return self.n_ctx
        return pad(max(self.n_ctx // self.n_seq, 1), 256)

    def swa_cells(self, window: int) -> int:
        """Cells of a sliding-window layer per stream (llama-kv-cache-iswa.cpp): the window per
        sequence (times the slots when the cache is unified) plus one ubatch, padded to 256."""
        per_stream = self.cells_per_stream
        return pad(min(per_stream, window * (self.n_seq if self.kv_unified else 1) + self.n_ubatch), 256)

    def assumptions(self) -> list:
        said = [f"runtime {self.runtime}",
                f"context {self.n_ctx:,}" + (f" (asked {self.ctx:,}, padded to 256 as llama.cpp does)"
                                             if self.n_ctx != self.ctx else ""),
                f"KV cache {self.kv_type}", f"flash attention {'on' if self.flash_attn else 'off'} ({self.flash_why})",
                f"ubatch {self.n_ubatch}"]
        if self.n_seq > 1:
            said.append(f"{self.n_seq} parallel slots, {'one unified' if self.kv_unified else 'a separate'} cache")
        said.append("CPU repacking on" if self.repack else "CPU repacking off (--no-repack)")
        return said


def padded_context(ctx: int, n_seq: int, unified: bool) -> int:
    """The context llama.cpp allocates (llama-context.cpp): padded to 256, and without a
    unified cache each slot's share padded to 256 again."""
    n_ctx = pad(ctx, 256)
    return n_ctx if unified or n_seq == 1 else pad(max(n_ctx // n_seq, 1), 256) * n_seq


def settings_for(spec: ModelSpec, *, runtime: str = "llama.cpp", ctx: Optional[int] = None,
                 kv_type: str = "f16", flash_attn: Optional[str] = None, parallel: Optional[int] = None,
                 ubatch: Optional[int] = None, repack: bool = True) -> Settings:
    """Resolve a runtime's defaults and the user's overrides into :class:`Settings`."""
    if runtime not in RUNTIMES:
        raise FitError(f"--runtime must be one of {', '.join(RUNTIMES)}")
    chosen = RUNTIMES[runtime]
    if kv_type not in KV_BYTES:
        raise FitError(f"--kv-type must be one of {', '.join(KV_BYTES)}")
    if ctx is not None and not 0 < ctx <= MAX_CTX:
        raise FitError(f"--ctx must be a number of tokens from 1 to {MAX_CTX:,}")
    if parallel is not None and not 1 <= parallel <= 4096:
        raise FitError("--parallel must be from 1 to 4096")
    if ubatch is not None and not 1 <= ubatch <= 1 << 20:
        raise FitError("--ubatch must be from 1 to 1,048,576")
    flash = flash_attn or chosen.flash_attn
    if flash not in FLASH_CHOICES:
        raise FitError(f"--flash-attn must be one of {', '.join(FLASH_CHOICES)}")
    if spec.arch in NO_FLASH_ARCHS and flash != "off":
        on, why = False, f"llama.cpp turns it off for {spec.arch}"
    elif flash == "auto":
        # auto: on wherever the device that holds a layer runs the fused op (llama-context.cpp
        # resolve_fused_ops); the CPU and CUDA backends do for the usual head sizes
        on, why = True, f"{chosen.name}'s default 'auto'"
    else:
        on, why = flash == "on", "as asked" if flash_attn else f"{chosen.name}'s default"
    if kv_type != "f16" and not on:
        raise FitError(f"a {kv_type} V cache needs flash attention, and it is off here (llama.cpp refuses to start); "
                       "use --flash-attn on or --kv-type f16")
    wanted = int(ctx or chosen.default_ctx or spec.ctx_train)
    n_seq = int(parallel or chosen.n_parallel)
    n_batch = min(chosen.n_batch, wanted)  # set before the context is padded (llama-context.cpp)
    n_ubatch = min(int(ubatch or chosen.n_ubatch), n_batch)
    unified = chosen.kv_unified if parallel is None or runtime == "llama-server" else False
    n_ctx = padded_context(wanted, n_seq, unified)
    return Settings(runtime=chosen.name, ctx=wanted, n_ctx=n_ctx, kv_type=kv_type, flash_attn=on, flash_why=why,
                    n_batch=n_batch, n_ubatch=n_ubatch, n_seq=n_seq, kv_unified=unified, repack=repack)


# ----------------------------------------------------------------------------- memory


def kv_bytes_per_layer(spec: ModelSpec, ctx, kv_type: str = "f16") -> list:
    """KV cache bytes per layer: streams x cells x n_head_kv x (head_k + head_v) x bytes per
    element. ``ctx`` is :class:`Settings`, or a number of tokens with llama.cpp's defaults."""
    settings = ctx if isinstance(ctx, Settings) else settings_for(spec, ctx=int(ctx), kv_type=kv_type,
                                                                  flash_attn="on")
    per_element = KV_BYTES[settings.kv_type]
    full = settings.cells_per_stream
    swa = settings.swa_cells(spec.sliding_window) if spec.sliding_window else full
    sizes = []
    for il in range(spec.n_layer):
        cells = swa if spec.swa_layers and spec.swa_layers[il] and spec.sliding_window else full
        sizes.append(int(settings.n_streams * cells * spec.n_head_kv[il] * (spec.head_dim_k + spec.head_dim_v)
                         * per_element))
    return sizes


F32 = 4


def compute_parts(spec: ModelSpec, settings: Settings) -> dict:
    """The compute buffer: the peak of llama.cpp's worst-case graph (``sched_reserve``: one
    ubatch of n_tokens, as many outputs), stage by stage. ggml's allocator reuses a tensor's
    memory once its last reader has run, so the buffer is the largest of three stages:

    - attention: the KQ mask (n_kv x n_tokens, f16 with flash attention and f32 without,
      llama-graph.cpp ``build_attn_inp_kq_mask``; one per cache, full and sliding-window),
      Q, K and V and the layer's inputs, and without flash attention KQ itself, n_kv x
      n_tokens x n_head in f32 (softmaxed in place): the term that grows with the context;
    - feed-forward: the mask, which lives until the last layer, with gate, up and their
      product, n_ff x n_tokens (a MoE: the experts used, n_ff_exp wide);
    - output: the logits, n_vocab x n_tokens in f32, and the last hidden states.

    The multipliers (how many tensors of each width are alive at a stage's peak) were read
    off a real llama.cpp's buffer sizes (tests/test_fit_llama_cpp.py, docs/fit-validation.md).
    """
    tokens = settings.n_tokens
    # per stream: each of n_stream streams sees n_tokens / n_stream of the ubatch's tokens
    kv_sizes = {settings.cells_per_stream}
    masks = {"full": settings.cells_per_stream * tokens * (2 if settings.flash_attn else F32), "swa": 0}
    if spec.sliding_window and any(spec.swa_layers or []):
        kv_sizes.add(settings.swa_cells(spec.sliding_window))
        masks["swa"] = settings.swa_cells(spec.sliding_window) * tokens * (2 if settings.flash_attn else F32)
        if all(spec.swa_layers):
            masks["full"] = 0
    mask = masks["full"] + masks["swa"]
    heads = max(spec.n_head) if spec.n_head else 0
    kv_heads = max(spec.n_head_kv) if spec.n_head_kv else 0
    width_q = heads * spec.head_dim_k
    width_kv = kv_heads * (spec.head_dim_k + spec.head_dim_v)
    d = spec.n_embd
    row = tokens * F32  # one f32 value per token
    attention = mask + row * (2 * width_q + 3 * d + (0 if spec.qkv_fused else width_kv))
    if not settings.flash_attn:
        attention += max(kv_sizes) * tokens * heads * F32
    if spec.expert_count and spec.expert_used:
        ffn = mask + row * (4 * d + spec.expert_used * (spec.n_ff_exp or spec.n_ff))
    else:
        ffn = mask + row * ((3 if spec.ffn_fused else 4) * d + 3 * spec.n_ff)
    output = spec.n_vocab * tokens * F32 + row * 3 * d
    stages = {"attention": attention, "feed-forward": ffn, "output": output}
    peak = max(stages, key=stages.get)
    return {"inputs": mask, "masks": masks, "kv_sizes": kv_sizes, "kq_per_cell": tokens * heads * F32,
            "stages": stages, "peak_stage": peak, "total": stages[peak]}


def compute_buffer(spec: ModelSpec, ctx, flash_attention: Optional[bool] = None) -> int:
    """The compute buffer of a device holding the whole graph; ``ctx`` is :class:`Settings`
    or a number of tokens (then ``flash_attention`` says whether it is on)."""
    if not isinstance(ctx, Settings):
        ctx = settings_for(spec, ctx=int(ctx), flash_attn="on" if flash_attention else "off")
    return compute_parts(spec, ctx)["total"]


# which tensor types the CPU backend repacks into a second buffer (ggml-cpu/repack.cpp,
# ggml_repack_get_optimal_repack_type), by instruction set; rows must be a multiple of 8
# (4 for the NEON kernels)
REPACKED_TYPES = {
    "avx2": ("Q4_0", "Q4_K", "IQ4_NL", "MXFP4"),
    "avx512": ("Q4_0", "Q4_K", "IQ4_NL", "MXFP4", "Q2_K"),
    "neon-i8mm": ("Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "MXFP4", "Q8_0", "Q1_0"),
    "neon-dotprod": ("Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "MXFP4", "Q8_0", "Q1_0"),
    "none": (),
}


def repack_bytes(spec: ModelSpec, cpu_kind: str, blocks) -> int:
    """Bytes llama.cpp copies into its CPU_REPACK buffer for the given blocks (``n_layer``
    is the output layer) on a CPU of ``cpu_kind``."""
    types = REPACKED_TYPES.get(cpu_kind, ())
    total = 0
    for type_name, per_block in (spec.repackable or {}).items():
        if type_name in types:
            total += sum(per_block[i] for i in blocks if i < len(per_block))
    return total


# ----------------------------------------------------------------------------- placement


def _f32(value: float) -> float:
    """``value`` rounded to a C float, as llama.cpp computes its split points."""
    return struct.unpack("f", struct.pack("f", value))[0]


def split_points(free: list, tensor_split: Optional[list] = None) -> list:
    """llama.cpp's cumulative split points (llama-model.cpp load_tensors): by free memory,
    unless --tensor-split gives the proportions."""
    weights = list(tensor_split) if tensor_split and any(tensor_split) else [float(f) for f in free]
    if len(weights) != len(free):
        raise FitError(f"--tensor-split gives {len(weights)} proportions for {len(free)} GPUs")
    total, points = 0.0, []
    for weight in weights:
        total = _f32(total + _f32(weight))
        points.append(total)
    if total <= 0:
        return [_f32((i + 1) / len(free)) for i in range(len(free))]
    return [_f32(p / total) for p in points]


def assign_layers(n_layer: int, ngl: int, points: list) -> list:
    """For each block and then the output layer (index n_layer): the GPU that holds it, or
    -1 for the CPU. The last ``ngl`` of the n_layer + 1 get a GPU, by the split points."""
    start = max(n_layer + 1 - ngl, 0)
    active = min(ngl, n_layer + 1) if points else 0
    where = []
    for il in range(n_layer + 1):
        if il < start or il - start >= active:
            where.append(-1)
            continue
        fraction = _f32((il - start) / active)
        where.append(min(bisect.bisect_right(points, fraction), len(points) - 1))
    return where


PIPELINE_COPIES = 4  # GGML_SCHED_MAX_COPIES (ggml/CMakeLists.txt)


def device_compute(spec: ModelSpec, settings: Settings, where: list, n_gpus: int) -> dict:
    """Each device's compute buffer (-1: the host) when the graph is split across devices.

    Measured through llama.cpp's RPC backend (tests/test_fit_llama_cpp.py): a GPU holding
    blocks needs the single-device stage less the hidden state it receives (one n_embd row
    per token); with several GPUs and every layer offloaded llama.cpp turns on pipeline
    parallelism (llama-context.cpp; https://github.com/ggml-org/llama.cpp/pull/6122), and each
    device then keeps GGML_SCHED_MAX_COPIES copies of its inputs (the KQ mask and the hidden
    state). The host keeps the inputs it fills.
    """
    parts = compute_parts(spec, settings)
    stages, mask = parts["stages"], parts["inputs"]
    row = spec.n_embd * settings.n_tokens * F32
    logits = spec.n_vocab * settings.n_tokens * F32
    layer_stage = max(stages["attention"], stages["feed-forward"])
    kv_sizes = parts["kv_sizes"]
    gpus_used = {d for d in where if d >= 0}
    copies = PIPELINE_COPIES if n_gpus > 1 and -1 not in where else 1
    output_device = where[spec.n_layer]
    holds_last = spec.n_layer == 0 or where[spec.n_layer - 1] == output_device
    compute = {}
    swa = spec.swa_layers if spec.sliding_window and spec.swa_layers else [False] * spec.n_layer
    for device in gpus_used | {-1}:
        held = [il for il in range(spec.n_layer) if where[il] == device]
        blocks = bool(held)
        size = 0
        if blocks:
            # a device sees only the masks of the caches its layers use (full, sliding-window)
            own_mask = (parts["masks"]["full"] if any(not swa[il] for il in held) else 0) + \
                (parts["masks"]["swa"] if any(swa[il] for il in held) else 0)
            stage = layer_stage - mask + own_mask
            if not settings.flash_attn and not any(not swa[il] for il in held) and len(kv_sizes) > 1:
                # only sliding-window layers here: KQ spans the window's cells, not the context
                kq_full = max(kv_sizes) * parts["kq_per_cell"]
                kq_swa = min(kv_sizes) * parts["kq_per_cell"]
                stage = max(stages["attention"] - kq_full + kq_swa - mask + own_mask,
                            stages["feed-forward"] - mask + own_mask)
            size = stage if device == -1 else stage - row + (copies - 1) * (own_mask + row)
            mask_here = own_mask
        else:
            mask_here = 0
        if device == output_device:
            if device == -1:
                rows = 3 if holds_last else 1
                size = max(size, logits + rows * row)
            elif copies == 1:
                size = max(size, logits + row)
            else:  # pipeline parallelism: the copies of the hidden state (and of the mask, if it has layers)
                size = max(size, logits + (1 + copies) * row + copies * mask_here)
        if device == -1 and not blocks and device != output_device:
            size = copies * mask + (1 + copies) * row  # the inputs it fills for the GPUs
        compute[device] = size
    return compute


def device_needs(spec: ModelSpec, settings: Settings, where: list, n_gpus: int, kv: list, cpu_kind: str) -> dict:
    """Bytes per GPU (index) and on the host (-1) for one assignment of blocks to devices."""
    needs = {d: {"weights": 0, "kv": 0, "compute": 0, "repack": 0, "overhead": 0, "layers": 0}
             for d in range(-1, n_gpus)}
    output_device = where[spec.n_layer]
    for il in range(spec.n_layer):
        device = where[il]
        needs[device]["weights"] += spec.layer_bytes[il]
        needs[device]["kv"] += kv[il]
        needs[device]["layers"] += 1
    needs[output_device]["weights"] += spec.output_bytes
    needs[output_device]["layers"] += 1
    if spec.tied_output and output_device >= 0:
        # llama.cpp loads token_embd a second time for the output layer (TENSOR_DUPLICATED)
        needs[output_device]["weights"] += spec.embd_bytes
    needs[-1]["weights"] += spec.embd_bytes  # token embeddings stay on the CPU
    if settings.repack:
        cpu_blocks = [il for il in range(spec.n_layer + 1) if where[il] == -1]
        needs[-1]["repack"] = repack_bytes(spec, cpu_kind, cpu_blocks)
        if len(cpu_blocks) == spec.n_layer + 1:  # all on the CPU: the file's repacked ends are unmapped
            needs[-1]["weights"] -= min((spec.repack_edges or {}).get(cpu_kind, 0), needs[-1]["weights"])
    compute = device_compute(spec, settings, where, n_gpus)
    for device, size in compute.items():
        needs[device]["compute"] = size
    for device in range(n_gpus):
        if needs[device]["layers"]:
            needs[device]["overhead"] = CUDA_CONTEXT + MARGIN
    for device in needs.values():
        device["need"] = sum(device[k] for k in ("weights", "kv", "compute", "repack", "overhead"))
    return needs


def place(spec: ModelSpec, settings: Settings, gpus: list, *, ram_free: int, cpu_kind: str = "avx2",
          requested_ngl: Optional[int] = None, tensor_split: Optional[list] = None) -> dict:
    """The most layers (``--n-gpu-layers``) that fit on all GPUs together, split as llama.cpp
    splits them, or the placement of ``requested_ngl``."""
    free = [int(g.get("memory_free_bytes") or 0) for g in gpus]
    points = split_points(free, tensor_split) if gpus else []
    kv = kv_bytes_per_layer(spec, settings)
    top = spec.n_layer + 1 if gpus else 0

    def needs_for(ngl: int) -> dict:
        return device_needs(spec, settings, assign_layers(spec.n_layer, ngl, points), len(gpus), kv, cpu_kind)

    def fits_gpus(needs: dict) -> bool:
        return all(needs[d]["need"] <= free[d] for d in range(len(gpus)))

    if requested_ngl is not None:
        ngl = min(max(requested_ngl, 0), top)
    else:  # what each GPU needs only grows with ngl: a binary search
        low, high = 0, top
        while low < high:
            middle = (low + high + 1) // 2
            if fits_gpus(needs_for(middle)):
                low = middle
            else:
                high = middle - 1
        ngl = low
    needs = needs_for(ngl)
    return {"n_gpu_layers": ngl, "total_layers": spec.n_layer + 1, "needs": needs, "gpus_fit": fits_gpus(needs),
            "host_fits": needs[-1]["need"] <= ram_free, "where": assign_layers(spec.n_layer, ngl, points)}


def largest_full_context(spec: ModelSpec, settings: Settings, gpus: list, *, ram_free: int, cpu_kind: str = "avx2",
                         tensor_split: Optional[list] = None) -> int:
    """The largest context (a multiple of 256, up to the trained length) at which every layer
    still fits on the GPUs."""
    if not gpus:
        return 0
    low, high = 0, max(spec.ctx_train, 256) // 256
    while low < high:
        middle = (low + high + 1) // 2
        trial = replace(settings, ctx=middle * 256,
                        n_ctx=padded_context(middle * 256, settings.n_seq, settings.kv_unified))
        placed = place(spec, trial, gpus, ram_free=ram_free, cpu_kind=cpu_kind, requested_ngl=spec.n_layer + 1,
                       tensor_split=tensor_split)
        if placed["gpus_fit"]:
            low = middle
        else:
            high = middle - 1
    return low * 256


def bytes_per_token(spec: ModelSpec, blocks, kv: list) -> int:
    """Bytes read to produce one token from the given blocks (n_layer: the output layer)."""
    active = spec.expert_used / spec.expert_count if spec.expert_count and spec.expert_used else 1.0
    total = 0
    for il in blocks:
        if il == spec.n_layer:
            total += spec.output_bytes + (spec.embd_bytes if spec.tied_output else 0)
            continue
        dense = spec.layer_bytes[il] - spec.expert_bytes[il]
        total += dense + int(spec.expert_bytes[il] * active) + kv[il]
    return total


def decode_speed(spec: ModelSpec, where: list, kv: list, bandwidths: list, ram_bandwidth: float) -> Optional[dict]:
    """tok/s bound: time per token = the sum over devices of bytes read there / bandwidth."""
    seconds, gpu_bytes, cpu_bytes = 0.0, 0, 0
    for device in sorted(set(where)):
        blocks = [il for il, d in enumerate(where) if d == device]
        read = bytes_per_token(spec, blocks, kv)
        if device == -1:
            cpu_bytes += read
            seconds += read / (ram_bandwidth * 1e9)
        else:
            bandwidth = bandwidths[device] if device < len(bandwidths) else None
            if not bandwidth:
                return None
            gpu_bytes += read
            seconds += read / (bandwidth * 1e9)
    if seconds <= 0:
        return None
    bound = 1 / seconds
    return {"bound_tok_s": round(bound, 1), "realistic_tok_s": [round(bound * EFFICIENCY[0], 1),
                                                              round(bound * EFFICIENCY[1], 1)],
            "gpu_bytes_per_token": gpu_bytes, "cpu_bytes_per_token": cpu_bytes}


@dataclass
class FitReport:
    model: ModelSpec
    settings: Settings
    weights: int
    kv: int
    compute: int
    devices: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ctx(self) -> int:
        return self.settings.n_ctx

    @property
    def kv_type(self) -> str:
        return self.settings.kv_type

    @property
    def flash_attention(self) -> bool:
        return self.settings.flash_attn

    def to_json(self) -> dict:
        return {"model": self.model.to_json(), "ctx": self.ctx, "kv_type": self.kv_type,
                "flash_attention": self.flash_attention, "settings": asdict(self.settings),
                "assumptions": self.settings.assumptions(),
                "memory": {"weights": self.weights, "kv_cache": self.kv, "compute_buffer": self.compute,
                           "cuda_context": CUDA_CONTEXT, "margin": MARGIN},
                "devices": self.devices, "notes": self.notes}


def _row(device: str, kind: str, free: int, need: dict, **extra) -> dict:
    return {"device": device, "kind": kind, "free_bytes": free,
            "need": {k: need[k] for k in ("weights", "kv", "compute", "repack", "overhead", "need")}, **extra}


def fit(spec: ModelSpec, gpus: list, ram_available: int, ctx: Optional[int] = None, kv_type: str = "f16",
        gpu_layers: Optional[int] = None, ram_bandwidth: float = 50.0, *, runtime: str = "llama.cpp",
        flash_attn: Optional[str] = None, parallel: Optional[int] = None, ubatch: Optional[int] = None,
        repack: bool = True, tensor_split: Optional[list] = None, cpu_kind: str = "avx2") -> FitReport:
    """Judge ``spec`` on these GPUs (NVML facts) and this much RAM, as ``runtime`` would run it."""
    if gpu_layers is not None and gpu_layers < 0:
        raise FitError("--gpu-layers must be 0 or more")
    if tensor_split is not None and gpus and len(tensor_split) != len(gpus):
        raise FitError(f"--tensor-split gives {len(tensor_split)} proportions for {len(gpus)} GPUs")
    if tensor_split is not None and any(p < 0 for p in tensor_split):
        raise FitError("--tensor-split proportions must be 0 or more")
    settings = settings_for(spec, runtime=runtime, ctx=ctx, kv_type=kv_type, flash_attn=flash_attn,
                            parallel=parallel, ubatch=ubatch, repack=repack)
    kv_layers = kv_bytes_per_layer(spec, settings)
    kv = sum(kv_layers)
    compute = compute_buffer(spec, settings)
    report = FitReport(spec, settings, spec.weight_bytes, kv, compute)
    if settings.ctx > spec.ctx_train and not spec.estimate:
        report.notes.append(f"ctx {settings.ctx:,} is beyond the {spec.ctx_train:,} tokens the model was trained for")
    if ctx is None and RUNTIMES[runtime].default_ctx is None:
        report.notes.append(f"{runtime} uses the trained context ({spec.ctx_train:,}) unless told otherwise; "
                            "where that does not fit, its --fit lowers the context (to 4,096 at least)")
    if gpu_layers is not None and not gpus:
        report.notes.append("--gpu-layers has no effect here: no NVIDIA GPU was found (NVML), so every layer runs on "
                            "the CPU")
    if tensor_split is not None and len(gpus) < 2:
        report.notes.append("--tensor-split has no effect with fewer than two GPUs")
    if spec.estimate:
        report.notes.append("a name estimate: layers, width, heads, context and quantisation are assumed from the "
                            "name and typical shapes, not read from the model")
    if gpus:
        placed = place(spec, settings, gpus, ram_free=ram_available, cpu_kind=cpu_kind, requested_ngl=gpu_layers,
                       tensor_split=tensor_split)
        ngl, needs = placed["n_gpu_layers"], placed["needs"]
        verdict = ("fits" if ngl == spec.n_layer + 1 and placed["gpus_fit"] else
                   "partial" if ngl and placed["gpus_fit"] else "does not fit")
        speed = decode_speed(spec, placed["where"], kv_layers, [g.get("bandwidth_gb_s") for g in gpus], ram_bandwidth)
        biggest = largest_full_context(spec, settings, gpus, ram_free=ram_available, cpu_kind=cpu_kind,
                                       tensor_split=tensor_split)
        for index, gpu in enumerate(gpus):
            report.devices.append(_row(
                f"GPU {gpu.get('index', index)}: {gpu.get('name', '?')}", "gpu", int(gpu.get("memory_free_bytes") or 0),
                needs[index], verdict=verdict, n_gpu_layers=ngl, total_layers=spec.n_layer + 1,
                layers_here=needs[index]["layers"], largest_full_context=biggest, speed=speed,
                bandwidth_gb_s=gpu.get("bandwidth_gb_s"), fits_here=needs[index]["need"] <= int(
                    gpu.get("memory_free_bytes") or 0)))
        report.devices.append(_row(
            "system RAM (beside the GPUs)", "host", ram_available, needs[-1],
            verdict="fits" if placed["host_fits"] else "does not fit", n_gpu_layers=ngl,
            total_layers=spec.n_layer + 1, layers_here=needs[-1]["layers"], speed=None,
            bandwidth_gb_s=ram_bandwidth))
    cpu_only = device_needs(spec, settings, [-1] * (spec.n_layer + 1), 0, kv_layers, cpu_kind)[-1]
    report.devices.append(_row(
        "system RAM (CPU only)", "cpu", ram_available, cpu_only,
        verdict="fits" if cpu_only["need"] <= ram_available else "does not fit", n_gpu_layers=0,
        total_layers=spec.n_layer + 1, layers_here=spec.n_layer + 1,
        speed=decode_speed(spec, [-1] * (spec.n_layer + 1), kv_layers, [], ram_bandwidth),
        bandwidth_gb_s=ram_bandwidth))
    if cpu_only["repack"]:
        where = "on the CPU alone" if gpus else "on the CPU"
        report.notes.append(f"{where} llama.cpp repacks {cpu_only['repack'] / GiB:.2f} GiB of "
                            f"{'/'.join(t for t in REPACKED_TYPES.get(cpu_kind, ()) if t in spec.repackable)} tensors "
                            "into a second buffer (--no-repack to judge without it)")
    return report
