"""Small real models that a real llama.cpp loads, for validating ``fit`` against it.

Each model has the real shape of a published model (width, heads, key/value heads, head
size, feed-forward width, vocabulary, sliding window, experts) with fewer layers, and
random weights, written as F16 with ``gguf``; ``llama-quantize`` makes the other types.
Layer counts (and the MoE's expert count, 32 of 128) are cut to keep the files small: the
compute buffer does not depend on them (a MoE's depends on the experts used, which stay 8),
and weights and KV cache scale with them exactly.

Shapes are from each model's ``config.json`` on the Hugging Face Hub:
- TinyLlama-1.1B (GQA llama, untied): https://huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0/blob/main/config.json
- Llama-3.2-1B (llama, tied embeddings): https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json
- Qwen2.5-0.5B (qwen2, tied, q/k/v biases): https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json
- gemma-3-1b (gemma3, sliding window 512, 1 global layer in 6, tied, head size 256):
  https://huggingface.co/google/gemma-3-1b-it/blob/main/config.json
- Phi-3-mini-4k (phi3, no GQA, fused qkv and gate/up): https://huggingface.co/microsoft/Phi-3-mini-4k-instruct/blob/main/config.json
- Qwen3-30B-A3B (qwen3moe, 128 experts, 8 used): https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGUF_DEFAULT_ALIGNMENT


@dataclass(frozen=True)
class Shape:
    name: str
    arch: str
    n_layer: int  # cut from the real count (kept in ``real_layers``)
    real_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    ctx_train: int
    head_dim: int = 0
    tied: bool = False
    qkv_bias: bool = False
    sliding_window: int = 0
    experts: int = 0  # cut from the real count (kept in ``real_experts``)
    experts_used: int = 0
    real_experts: int = 0
    fused: bool = False  # phi3: attn_qkv and ffn_up holding gate and up
    extra: dict = field(default_factory=dict)

    @property
    def head_size(self) -> int:
        return self.head_dim or self.n_embd // self.n_head


SHAPES = [
    Shape("TinyLlama-1.1B", "llama", 2, 22, 2048, 32, 4, 5632, 32000, 2048),
    Shape("Llama-3.2-1B", "llama", 2, 16, 2048, 32, 8, 8192, 128256, 131072, head_dim=64, tied=True),
    Shape("Qwen2.5-0.5B", "qwen2", 2, 24, 896, 14, 2, 4864, 151936, 32768, tied=True, qkv_bias=True),
    Shape("gemma-3-1b", "gemma3", 6, 26, 1152, 4, 1, 6912, 262144, 32768, head_dim=256, tied=True,
          sliding_window=512),
    Shape("Phi-3-mini-4k", "phi3", 2, 32, 3072, 32, 32, 8192, 32064, 4096, fused=True),
    Shape("Qwen3-30B-A3B", "qwen3moe", 1, 48, 2048, 32, 4, 768, 151936, 40960, head_dim=128, experts=32,
          experts_used=8, real_experts=128),
]


def _tensors(shape: Shape):
    """(name, numpy shape in gguf's order: rows first) of every tensor llama.cpp requires."""
    d, hd, ff = shape.n_embd, shape.head_size, shape.n_ff
    q, kv = shape.n_head * hd, shape.n_head_kv * hd
    out = [("token_embd.weight", (shape.n_vocab, d))]
    for il in range(shape.n_layer):
        p = f"blk.{il}."
        out.append((p + "attn_norm.weight", (d,)))
        if shape.fused:
            out.append((p + "attn_qkv.weight", (q + 2 * kv, d)))
        else:
            out += [(p + "attn_q.weight", (q, d)), (p + "attn_k.weight", (kv, d)), (p + "attn_v.weight", (kv, d))]
        if shape.qkv_bias:
            out += [(p + "attn_q.bias", (q,)), (p + "attn_k.bias", (kv,)), (p + "attn_v.bias", (kv,))]
        out.append((p + "attn_output.weight", (d, q)))
        if shape.arch in ("gemma3", "qwen3moe"):
            out += [(p + "attn_q_norm.weight", (hd,)), (p + "attn_k_norm.weight", (hd,))]
        if shape.arch == "gemma3":
            out += [(p + "post_attention_norm.weight", (d,)), (p + "post_ffw_norm.weight", (d,))]
        out.append((p + "ffn_norm.weight", (d,)))
        if shape.experts:
            e = shape.experts
            out += [(p + "ffn_gate_inp.weight", (e, d)), (p + "ffn_gate_exps.weight", (e, ff, d)),
                    (p + "ffn_up_exps.weight", (e, ff, d)), (p + "ffn_down_exps.weight", (e, d, ff))]
        elif shape.fused:
            out += [(p + "ffn_up.weight", (2 * ff, d)), (p + "ffn_down.weight", (d, ff))]
        else:
            out += [(p + "ffn_gate.weight", (ff, d)), (p + "ffn_up.weight", (ff, d)), (p + "ffn_down.weight", (d, ff))]
    out.append(("output_norm.weight", (d,)))
    if not shape.tied:
        out.append(("output.weight", (shape.n_vocab, d)))
    return out


def write_model(shape: Shape, path: Path, seed: int = 0) -> Path:
    """An F16 GGUF (1-D tensors F32, as converters write them) of ``shape`` with random weights.

    gguf's writer writes the header, the metadata and the tensor infos; the data is then
    appended block by block (a repeated random block of 8 MB), never a whole tensor in
    memory: a real 152K x 2048 embedding alone is 622 MB in F16.
    """
    rng = np.random.default_rng(seed)
    block = (rng.standard_normal(1 << 22) * 0.02).astype(np.float16)
    writer = GGUFWriter(str(path), shape.arch)
    writer.add_name(shape.name)
    writer.add_block_count(shape.n_layer)
    writer.add_context_length(shape.ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(shape.head_size)
    if shape.head_dim:
        writer.add_key_length(shape.head_dim)
        writer.add_value_length(shape.head_dim)
    if shape.sliding_window:
        writer.add_sliding_window(shape.sliding_window)
    if shape.experts:
        writer.add_expert_count(shape.experts)
        writer.add_expert_used_count(shape.experts_used)
        writer.add_expert_feed_forward_length(shape.n_ff)
    writer.add_file_type(1)  # MOSTLY_F16
    # a SentencePiece-style vocabulary of the real size: llama.cpp sizes logits by it
    # (with <|endoftext|>, which llama.cpp looks up for models named like Phi-3)
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)] + [b"<|endoftext|>"]
    tokens += [f"t{i}".encode() for i in range(shape.n_vocab - len(tokens))]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([2, 3, 3] + [6] * 256 + [3] + [1] * (len(tokens) - 260))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    tensors = _tensors(shape)
    for name, dims in tensors:
        dtype = np.dtype(np.float32 if len(dims) == 1 else np.float16)
        writer.add_tensor_info(name, dims, dtype, int(np.prod(dims)) * dtype.itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with open(path, "ab") as out:
        _pad(out)
        for _, dims in tensors:
            count = int(np.prod(dims))
            if len(dims) == 1:
                out.write(np.ones(count, dtype=np.float32).tobytes())
            else:
                for start in range(0, count, block.size):
                    out.write(block[: min(block.size, count - start)].tobytes())
            _pad(out)
    return path


def _pad(out) -> None:
    """Zeros up to gguf's data alignment, as its writer pads before and after each tensor."""
    position = out.tell()
    out.write(bytes(-position % GGUF_DEFAULT_ALIGNMENT))
