"""Real GGUF files for tests, written with the ``gguf`` package.

``write_gguf`` writes the header (metadata and tensor infos) of a model of any size and
then sets the file's length to the full size without writing the data: a sparse
multi-gigabyte file that costs a few kilobytes of disk. ``small=True`` writes real tensor
data instead, so gguf's own reader can check our header reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES


def _nbytes(shape, qtype) -> int:
    block, size = GGML_QUANT_SIZES[qtype]
    count = 1
    for dim in shape:
        count *= dim
    return count * size // block


def write_gguf(path: Path, arch: str, n_layer: int, n_embd: int, n_head, n_head_kv, n_ff: int, n_vocab: int,
               ctx: int = 8192, weight_type=Q.Q4_K, experts: int = 0, experts_used: int = 0,
               sliding_window: int = 0, head_dim: int = 0, small: bool = False, tied: bool = False) -> Path:
    writer = GGUFWriter(str(path), arch)
    writer.add_block_count(n_layer)
    writer.add_context_length(ctx)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    if head_dim:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if experts:
        writer.add_expert_count(experts)
        writer.add_expert_used_count(experts_used)
    if sliding_window:
        writer.add_sliding_window(sliding_window)
    writer.add_file_type(15)  # MOSTLY_Q4_K_M
    writer.add_token_list([f"t{i}".encode() for i in range(n_vocab)])
    head_dim = head_dim or n_embd // (n_head if isinstance(n_head, int) else n_head[0])
    kv_heads = n_head_kv if isinstance(n_head_kv, list) else [n_head_kv] * n_layer
    heads = n_head if isinstance(n_head, int) else max(n_head)
    tensors = [("token_embd.weight", (n_vocab, n_embd), weight_type)]
    for il in range(n_layer):
        prefix = f"blk.{il}."
        tensors += [(prefix + "attn_norm.weight", (n_embd,), Q.F32),
                    (prefix + "attn_q.weight", (heads * head_dim, n_embd), weight_type),
                    (prefix + "attn_k.weight", (kv_heads[il] * head_dim, n_embd), weight_type),
                    (prefix + "attn_v.weight", (kv_heads[il] * head_dim, n_embd), Q.Q6_K),
                    (prefix + "attn_output.weight", (n_embd, heads * head_dim), weight_type),
                    (prefix + "ffn_norm.weight", (n_embd,), Q.F32)]
        if experts:
            tensors += [(prefix + "ffn_gate_inp.weight", (experts, n_embd), Q.F32),
                        (prefix + "ffn_gate_exps.weight", (experts, n_ff, n_embd), weight_type),
                        (prefix + "ffn_up_exps.weight", (experts, n_ff, n_embd), weight_type),
                        (prefix + "ffn_down_exps.weight", (experts, n_embd, n_ff), Q.Q6_K)]
        else:
            tensors += [(prefix + "ffn_gate.weight", (n_ff, n_embd), weight_type),
                        (prefix + "ffn_up.weight", (n_ff, n_embd), weight_type),
                        (prefix + "ffn_down.weight", (n_embd, n_ff), Q.Q6_K)]
    tensors += [("output_norm.weight", (n_embd,), Q.F32)]
    if not tied:  # tied: the output layer reuses token_embd (Llama-3.2, Qwen2.5, Gemma)
        tensors.append(("output.weight", (n_vocab, n_embd), Q.Q6_K))
    total = 0
    for name, shape, qtype in tensors:
        nbytes = _nbytes(shape, qtype)
        block, size = GGML_QUANT_SIZES[qtype]
        byte_shape = tuple(shape[:-1]) + (shape[-1] // block * size,)  # how gguf takes quantised data
        if small and qtype == Q.F32:
            writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
        elif small:
            writer.add_tensor(name, np.zeros(byte_shape, dtype=np.uint8), raw_dtype=qtype)
        elif qtype == Q.F32:
            writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes)
        else:
            writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=qtype)
        total += nbytes + 32
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    if small:
        writer.write_tensors_to_file()  # tensor infos, then the data
        writer.close()
    else:
        writer.write_ti_data_to_file()
        writer.close()
        with open(path, "r+b") as handle:  # the full size, sparse: no data blocks written
            handle.truncate(handle.seek(0, 2) + total)
    return path
