"""`llmdoctor fit` on real GGUF files (written with the gguf package, sparse when large),
safetensors folders, a Hub served on 127.0.0.1 with Range requests, and names."""

from __future__ import annotations

import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

gguf = pytest.importorskip("gguf")

from llmdoctor.fit import GiB, MiB, fit, kv_bytes_per_layer  # noqa: E402
from llmdoctor.fit import spec_from_gguf as from_header  # noqa: E402
from llmdoctor.gguf_header import QUANT_SIZES, GGUFError, read_local  # noqa: E402
from llmdoctor.model_sources import from_folder, from_name, resolve  # noqa: E402

from fit_validation import ROWS, table  # noqa: E402
from gguf_models import write_gguf  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs" / "fit-validation.md"
RTX_4090 = {"index": 0, "name": "RTX 4090", "memory_free_bytes": 23 * GiB, "bandwidth_gb_s": 1008.1}


def spec(path):
    return from_header(read_local(path), path.name, "GGUF file")


# ------------------------------------------------------------------ the header reader


def test_quant_table_matches_gguf():
    from gguf.constants import GGML_QUANT_SIZES

    theirs = {int(t): (t.name, block, size) for t, (block, size) in GGML_QUANT_SIZES.items()}
    assert set(theirs) <= set(QUANT_SIZES), set(theirs) - set(QUANT_SIZES)  # every type gguf knows, we know
    assert {k: QUANT_SIZES[k] for k in theirs} == theirs  # (older gguf releases know fewer types)


def test_reader_agrees_with_gguf_on_a_small_real_file(tmp_path):
    path = write_gguf(tmp_path / "small.gguf", "llama", 2, 256, 4, 2, 512, 100, small=True)
    theirs = {t.name: (int(t.n_bytes), tuple(int(x) for x in t.shape)) for t in gguf.GGUFReader(str(path)).tensors}
    assert {t.name: (t.n_bytes, t.shape) for t in read_local(path).tensors} == theirs


# ------------------------------------------------------------------ sparse multi-gigabyte models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    return {
        # llama-style with grouped-query attention (Llama-3-8B shapes)
        "llama": write_gguf(root / "llama.gguf", "llama", 32, 4096, 32, 8, 14336, 128256, ctx=131072),
        # qwen2 without GQA (Qwen1.5-7B shapes: 32 KV heads)
        "qwen2": write_gguf(root / "qwen2.gguf", "qwen2", 32, 4096, 32, 32, 11008, 151936, ctx=32768),
        # gemma2 with sliding-window layers (gemma-2-9b shapes)
        "gemma2": write_gguf(root / "gemma2.gguf", "gemma2", 42, 3584, 16, 8, 14336, 256000, ctx=8192,
                             sliding_window=4096, head_dim=256),
        # mixture of experts (Mixtral-8x7B shapes)
        "moe": write_gguf(root / "moe.gguf", "llama", 32, 4096, 32, 8, 14336, 32000, ctx=32768, experts=8,
                          experts_used=2),
    }


def test_sparse_files_are_big_on_paper_and_small_on_disk(models):
    for path in models.values():
        assert path.stat().st_size > 4 * GiB
        assert path.stat().st_blocks * 512 < 8 * MiB


def test_llama_gqa(models):
    model = spec(models["llama"])
    assert (model.n_layer, model.n_head_kv[0], model.head_dim_k, model.n_vocab) == (32, 8, 128, 128256)
    assert sum(kv_bytes_per_layer(model, 32768, "f16")) == 4 * GiB  # Llama-3.1-8B @32K: 4.0 GiB
    assert model.embd_bytes == 128256 * 4096 * 144 // 256  # Q4_K token embeddings, on the CPU


def test_qwen2_without_gqa_needs_four_times_the_cache(models):
    qwen, llama = spec(models["qwen2"]), spec(models["llama"])
    assert qwen.n_head_kv[0] == 32
    assert sum(kv_bytes_per_layer(qwen, 8192, "f16")) == 4 * sum(kv_bytes_per_layer(llama, 8192, "f16"))


def test_gemma2_sliding_window_layers(models):
    model = spec(models["gemma2"])
    assert model.sliding_window == 4096 and sum(model.swa_layers) == 21  # every other layer is local
    kv = kv_bytes_per_layer(model, 8192, "f16")
    assert kv[0] < kv[1]  # a local layer holds window + ubatch cells, a global one the whole context
    assert kv[0] == (4096 + 512) * 8 * (256 + 256) * 2 and kv[1] == 8192 * 8 * 512 * 2


def test_moe_reads_only_active_experts_per_token(models):
    model = spec(models["moe"])
    assert (model.expert_count, model.expert_used) == (8, 2) and model.expert_bytes[0] > 0
    report = fit(model, [dict(RTX_4090, memory_free_bytes=80 * GiB, bandwidth_gb_s=3350)], 64 * GiB, ctx=4096)
    gpu = report.devices[0]
    assert gpu["verdict"] == "fits"
    assert gpu["speed"]["gpu_bytes_per_token"] < 0.4 * model.weight_bytes  # 2 of 8 experts


def test_partial_offload_follows_llama_cpps_rule(models):
    model = spec(models["llama"])
    small_gpu = dict(RTX_4090, memory_free_bytes=int(4 * GiB))
    report = fit(model, [small_gpu], 32 * GiB, ctx=8192)
    gpu = report.devices[0]
    assert gpu["verdict"] == "partial" and 0 < gpu["n_gpu_layers"] < 33
    assert gpu["need"]["need"] <= small_gpu["memory_free_bytes"]
    # one more layer would not fit
    from llmdoctor.fit import place, settings_for

    settings = settings_for(model, ctx=8192)
    more = place(model, settings, [small_gpu], ram_free=32 * GiB, requested_ngl=gpu["n_gpu_layers"] + 1)
    assert more["needs"][0]["need"] > 4 * GiB
    assert gpu["speed"]["cpu_bytes_per_token"] > 0  # the CPU part dominates partial offload
    full = fit(model, [RTX_4090], 32 * GiB, ctx=8192).devices[0]
    assert full["verdict"] == "fits" and full["n_gpu_layers"] == 33  # the output layer counts as one
    assert full["largest_full_context"] >= 8192
    low, high = full["speed"]["realistic_tok_s"]
    assert low == pytest.approx(full["speed"]["bound_tok_s"] * 0.5, rel=0.01) and high > low


def test_quantised_cache_and_requested_layers(models):
    model = spec(models["llama"])
    report = fit(model, [RTX_4090], 32 * GiB, ctx=32768, kv_type="q8_0", gpu_layers=10)
    assert report.kv == int(4 * GiB * 34 / 32 / 2) and report.flash_attention
    assert report.devices[0]["n_gpu_layers"] == 10


def test_fit_cli_on_a_20gb_class_file(cli, tmp_path):
    path = write_gguf(tmp_path / "qwen32b.gguf", "qwen2", 64, 5120, 40, 8, 27648, 152064, ctx=32768)
    assert path.stat().st_size > 18 * 10**9
    result = cli("fit", str(path), "--ctx", "4096", "--json")
    report = result.json()
    assert report["model"]["n_layer"] == 64 and report["ctx"] == 4096
    assert report["memory"]["kv_cache"] == 64 * 4096 * 8 * 256 * 2
    assert report["model"]["bytes_read"] < 4 * MiB
    text = cli("fit", str(path)).stdout
    assert "weights" in text and "system RAM" in text and "|W" in text


# ------------------------------------------------------------------ safetensors, names, bad input


def write_safetensors_folder(folder: Path, n_layer=4, hidden=512, heads=8, kv_heads=2, vocab=1000) -> Path:
    folder.mkdir(parents=True)
    config = {"model_type": "llama", "num_hidden_layers": n_layer, "hidden_size": hidden,
              "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
              "max_position_embeddings": 4096}
    (folder / "config.json").write_text(json.dumps(config))
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    tensors = [("model.embed_tokens.weight", [vocab, hidden])]
    for il in range(n_layer):
        tensors += [(f"model.layers.{il}.self_attn.q_proj.weight", [hidden, hidden]),
                    (f"model.layers.{il}.mlp.down_proj.weight", [hidden, 4 * hidden])]
    tensors += [("lm_head.weight", [vocab, hidden])]
    for name, shape in tensors:
        size = shape[0] * shape[1] * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    with open(folder / "model.safetensors", "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        handle.truncate(8 + len(encoded) + offset)
    return folder


def test_safetensors_folder(tmp_path):
    model = from_folder(write_safetensors_folder(tmp_path / "tiny"))
    assert model.layer_bytes[0] == (512 * 512 + 512 * 2048) * 2
    assert model.embd_bytes == 1000 * 512 * 2 and model.output_bytes == 1000 * 512 * 2
    assert model.quantization == "BF16" and model.n_head_kv[0] == 2


def test_names_are_rough_estimates():
    model = from_name("qwen2.5-14b-instruct-q4_k_m")
    assert model.estimate and model.quantization == "Q4_K_M"
    assert 7.5 * GiB < model.weight_bytes < 9.0 * GiB  # 14e9 x 4.9 bits (the real file: 8.99 GB)
    moe = from_name("mixtral-8x7b-instruct-q4_0")
    assert moe.expert_count == 8 and moe.expert_used == 2


@pytest.mark.parametrize("content, message", [
    (b"", "not a GGUF file"),
    (b"PK\x03\x04 not a gguf", "not a GGUF file (no GGUF magic"),
    (b"GGUF\x03\x00\x00\x00" + struct.pack("<QQ", 10, 3), "truncated"),
    (b"GGUF\x09\x00\x00\x00" + struct.pack("<QQ", 0, 0), "GGUF version 9"),
    (b"GGUF\x03\x00\x00\x00" + struct.pack("<QQ", 0, 1) + struct.pack("<Q", 3) + b"abc" + struct.pack("<I", 77),
     "unknown metadata value type 77"),
])
def test_bad_files_get_one_line(cli, tmp_path, content, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError) as error:
        read_local(path)
    assert message in str(error.value)
    result = cli("fit", str(path))
    assert result.code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_truncated_real_file_and_unknown_name(cli, tmp_path, models):
    cut = tmp_path / "cut.gguf"
    with open(models["llama"], "rb") as handle:  # the first 200 KB of a sparse multi-GB file, not all of it
        cut.write_bytes(handle.read(200_000))
    result = cli("fit", str(cut))
    assert result.code == 2 and "truncated" in result.stderr and "Traceback" not in result.output
    result = cli("fit", "totally-unknown-model")
    assert result.code == 2 and "cannot tell the size" in result.stderr


# ------------------------------------------------------------------ a Hub on 127.0.0.1 with Range requests


class Hub:
    """Serves /api/models/{repo}, /{repo}/resolve/main/{file} (302 to /cdn/{file}) and
    /cdn/{file} with Range support; counts the bytes it sent."""

    def __init__(self, files: dict, token: str = "") -> None:
        self.files, self.sent, self.token = files, 0, token  # with a token: a gated repository
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, handler) -> None:
        path = handler.path
        if self.token and not path.startswith("/cdn/") and \
                handler.headers.get("Authorization") != f"Bearer {self.token}":
            return self.send(handler, 401, b'{"error": "Access to model is restricted"}')
        if path.startswith("/api/models/"):
            body = json.dumps({"siblings": [{"rfilename": name} for name in self.files]}).encode()
            return self.send(handler, 200, body)
        if "/resolve/main/" in path:
            name = path.split("/resolve/main/", 1)[1]
            if name == "config.json":
                return self.send(handler, 200, self.read(name, 0, None))
            handler.send_response(302)
            handler.send_header("Location", f"/cdn/{name}")
            handler.end_headers()
            return None
        name = path[len("/cdn/"):]
        size = self.size(name)
        first, last = 0, size - 1
        if handler.headers.get("Range"):
            first, last = (int(x) for x in handler.headers["Range"].split("=")[1].split("-"))
            last = min(last, size - 1)
        data = self.read(name, first, last - first + 1)
        self.send(handler, 206 if handler.headers.get("Range") else 200, data,
                  {"Content-Range": f"bytes {first}-{last}/{size}"})

    def size(self, name):
        return Path(self.files[name]).stat().st_size

    def read(self, name, offset, length):
        with open(self.files[name], "rb") as handle:
            handle.seek(offset)
            return handle.read() if length is None else handle.read(length)

    def send(self, handler, status, body, headers=None):
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        self.sent += len(body)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_hub_gguf_reads_only_the_header(models):
    hub = Hub({"Llama-3-8B.Q4_K_M.gguf": models["llama"]})
    try:
        model = resolve("org/llama-3-8b-gguf/Llama-3-8B.Q4_K_M.gguf", hub.url, timeout=5)
        assert model.source == "Hub GGUF" and model.n_layer == 32
        assert model.weight_bytes == spec(models["llama"]).weight_bytes
        assert hub.sent < 4 * MiB < models["llama"].stat().st_size / 1000  # a few MB of a 5 GB file
        assert model.bytes_read == hub.sent
        hub.sent = 0
        by_repo = resolve("org/llama-3-8b-gguf", hub.url, timeout=5)  # picks the q4_k_m file
        assert by_repo.name.endswith(".gguf") and hub.sent < 4 * MiB
    finally:
        hub.close()


def test_hub_safetensors_repo(tmp_path):
    folder = write_safetensors_folder(tmp_path / "repo")
    hub = Hub({"config.json": folder / "config.json", "model.safetensors": folder / "model.safetensors"})
    try:
        model = resolve("org/tiny", hub.url, timeout=5)
        assert model.source == "Hub safetensors" and model.layer_bytes == from_folder(folder).layer_bytes
        assert hub.sent < 64 * 1024
    finally:
        hub.close()


def test_check_model_adds_fit_findings(cli, models):
    report = cli("check", "--only", "model-fit", "--model", str(models["llama"]), "--json").json()
    (check,) = report["checks"]
    (finding,) = check["findings"]
    assert finding["id"] == "model-fit.verdict" and "llama.gguf" in finding["message"]
    skipped = cli("check", "--only", "model-fit", "--json").json()["checks"][0]
    assert skipped["status"] == "skipped" and "no model named" in skipped["reason"]


# ------------------------------------------------------------------ the validation table


def test_validation_table_is_within_ten_percent_and_documented():
    for model, _quant, _ctx, what, measured, _source, predicted in ROWS:
        assert abs(predicted - measured) / measured <= 0.10, (model, what)
    documented = DOCS.read_text()
    for line in table().splitlines()[2:]:
        assert line in documented


@pytest.mark.parametrize("name, quant, layers", [
    ("llama3-8b-q4", "Q4_K_M", 32), ("llama3:8b", "Q4_K_M", 32),           # bare q4; ollama's default tag
    ("qwen2.5:7b-instruct-q4_K_M", "Q4_K_M", 32), ("llama3-8b-fp16", "FP16", 32),
    ("mixtral-8x7b-instruct-q8_0", "Q8_0", 32),                             # an MoE: its experts' shape
])
def test_names_people_type(name, quant, layers):
    from llmdoctor.model_sources import from_name

    spec = from_name(name)
    assert (spec.quantization, spec.n_layer) == (quant, layers) and spec.estimate


def test_a_name_estimate_labels_what_it_assumes_and_never_prints_zero_speeds(cli):
    from llmdoctor.render.fit import speed_range

    text = cli("fit", "llama3-70b-q4", "--gpu-layers", "10").stdout
    assert "assumed: 80 layers, 131,072 tokens of context" in text and "trained for" not in text
    if "no NVIDIA GPU" in text or "GPU" not in text.split("weights")[0]:
        assert "--gpu-layers has no effect here" in text
    assert speed_range({"realistic_tok_s": [0.0, 0.0]}) == "under 0.1 tok/s"
    assert "0-0 tok/s" not in text


def test_a_gated_repository_needs_the_token_which_never_shows(cli, models):
    token = "hf_GatedTokenForTheTestZZZZZZZZZZZZ"
    hub = Hub({"Llama-3-8B.Q4_K_M.gguf": models["llama"]}, token=token)
    try:
        env = {"HF_ENDPOINT": hub.url, "LLMDOCTOR_OFFLINE": ""}
        refused = cli("fit", "org/gated/Llama-3-8B.Q4_K_M.gguf", env=env)
        assert refused.code == 2 and "gated or private (401)" in refused.stderr and "set HF_TOKEN" in refused.stderr
        allowed = cli("fit", "org/gated/Llama-3-8B.Q4_K_M.gguf", "--json", env={**env, "HF_TOKEN": token})
        assert allowed.code == 0, allowed.output
        assert allowed.json()["model"]["n_layer"] == 32
        assert token not in refused.output + allowed.output
    finally:
        hub.close()


def test_an_unreachable_hub_is_exit_1_and_can_fall_back_to_the_name(cli):
    from hub_mirror import closed_port

    env = {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "LLMDOCTOR_OFFLINE": ""}
    down = cli("fit", "meta-llama/Llama-3.1-8B-Instruct", env=env)
    assert down.code == 1 and "cannot be reached" in down.stderr and down.stderr.count("\n") == 1
    estimate = cli("fit", "meta-llama/Llama-3.1-8B-Instruct", "--allow-estimate", env=env)
    assert estimate.code == 0 and "rough estimate" in estimate.stdout and "estimating from the name" in estimate.stderr


def test_tied_embeddings_count_on_the_output_layers_device(tmp_path):
    """No output.weight: llama.cpp loads token_embd again (TENSOR_DUPLICATED) as the output
    layer, on the GPU when the output layer is offloaded."""
    from llmdoctor.fit import place, settings_for

    from gguf_models import write_gguf

    path = write_gguf(tmp_path / "tied.gguf", "llama", 16, 2048, 32, 8, 8192, 128256, tied=True)
    tied = spec(path)
    assert tied.tied_output and tied.embd_bytes > 0
    settings = settings_for(tied, ctx=4096)
    gpu = [{"memory_free_bytes": 80 * GiB}]
    all_layers = place(tied, settings, gpu, ram_free=64 * GiB, requested_ngl=tied.n_layer + 1)["needs"]
    assert all_layers[0]["weights"] == sum(tied.layer_bytes) + tied.output_bytes + tied.embd_bytes
    assert all_layers[-1]["weights"] == tied.embd_bytes  # the host keeps its own copy for the lookups
    # llama.cpp counts the output layer as the last of n_layer + 1: -ngl n_layer leaves block 0
    # on the CPU and still offloads the output layer with its copy of the embeddings
    one_less = place(tied, settings, gpu, ram_free=64 * GiB, requested_ngl=tied.n_layer)["needs"]
    assert all_layers[0]["weights"] - one_less[0]["weights"] == tied.layer_bytes[0]
    assert one_less[-1]["weights"] == tied.embd_bytes + tied.layer_bytes[0]


# ------------------------------------------------------------------ runtimes, flash attention, slots


def test_each_runtime_brings_its_own_defaults(models):
    from llmdoctor.fit import settings_for

    model = spec(models["llama"])  # trained for 131,072 tokens
    cli_default = settings_for(model)
    assert (cli_default.n_ctx, cli_default.flash_attn, cli_default.n_seq) == (131072, True, 1)
    server = settings_for(model, runtime="llama-server", ctx=16384)
    assert (server.n_seq, server.kv_unified, server.flash_attn) == (4, True, True)
    ollama = settings_for(model, runtime="ollama")
    assert (ollama.n_ctx, ollama.flash_attn, ollama.n_ubatch) == (4096, False, 512)
    assert settings_for(model, runtime="ollama", flash_attn="on").flash_attn
    # llama-cli --parallel 3 without a unified cache: each slot its own, padded, share of the context
    separate = settings_for(model, ctx=10000, parallel=3)
    assert not separate.kv_unified and separate.cells_per_stream == 3584 and separate.n_ctx == 3 * 3584
    assert "flash attention on (llama.cpp's default 'auto')" in ", ".join(cli_default.assumptions())


def test_flash_attention_shrinks_the_compute_buffer_where_llama_cpp_does(models):
    from llmdoctor.fit import compute_parts, settings_for

    model = spec(models["llama"])
    on = compute_parts(model, settings_for(model, ctx=32768, flash_attn="on"))
    off = compute_parts(model, settings_for(model, ctx=32768, flash_attn="off"))
    # without flash attention KQ is n_kv x ubatch x heads in f32: 2 GiB at 32K for 32 heads
    assert off["total"] - on["total"] > 1.5 * GiB and off["peak_stage"] == "attention"
    assert on["peak_stage"] == "output"  # the logits of a 128K vocabulary dominate with it on


def test_a_quantised_v_cache_needs_flash_attention(models, cli):
    from llmdoctor.fit import FitError, settings_for

    model = spec(models["llama"])
    with pytest.raises(FitError, match="needs flash attention"):
        settings_for(model, kv_type="q8_0", flash_attn="off")
    refused = cli("fit", str(models["llama"]), "--kv-type", "q8_0", "--flash-attn", "off")
    assert refused.code == 2 and "needs flash attention" in refused.stderr and "Traceback" not in refused.output
    ollama = cli("fit", str(models["llama"]), "--runtime", "ollama", "--kv-type", "q8_0")
    assert ollama.code == 2 and "use --flash-attn on" in ollama.stderr  # ollama's flash attention is off


def test_ollama_settings_come_from_its_environment(models, cli):
    shown = cli("fit", str(models["llama"]), "--runtime", "ollama", "--json",
                env={"OLLAMA_CONTEXT_LENGTH": "8192", "OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_NUM_PARALLEL": "2"})
    data = shown.json()
    assert data["settings"]["n_ctx"] == 8192 and data["flash_attention"] and data["settings"]["n_seq"] == 2
    assert any("runtime ollama" in a for a in data["assumptions"])


# ------------------------------------------------------------------ several GPUs


def test_layers_split_over_gpus_by_free_memory_as_llama_cpp_does(models):
    from llmdoctor.fit import assign_layers, split_points

    # llama-model.cpp: cumulative, normalised free memory; layer il goes to upper_bound(il / n)
    assert assign_layers(4, 5, split_points([2, 1, 1])) == [0, 0, 0, 1, 2]
    assert assign_layers(4, 2, split_points([1, 1])) == [-1, -1, -1, 0, 1]
    assert assign_layers(4, 5, split_points([1, 1], [3, 1])) == [0, 0, 0, 0, 1]
    model = spec(models["qwen2"])  # 32 layers, about 4.5 GiB of Q4_K weights and an MHA cache
    gpus = [dict(RTX_4090, index=0, memory_free_bytes=int(16 * GiB)),
            dict(RTX_4090, index=1, name="RTX 4060 Ti", memory_free_bytes=int(8 * GiB), bandwidth_gb_s=288)]
    report = fit(model, gpus, 64 * GiB, ctx=16384)
    first, second, host = (d for d in report.devices if d["kind"] in ("gpu", "host"))
    assert first["verdict"] == second["verdict"] == "fits" and first["n_gpu_layers"] == 33
    assert first["layers_here"] == 22 and second["layers_here"] == 11  # 2:1, as their free memory
    assert first["need"]["need"] <= 16 * GiB and second["need"]["need"] <= 8 * GiB
    assert host["kind"] == "host" and host["need"]["weights"] == model.embd_bytes
    split = fit(model, gpus, 64 * GiB, ctx=16384, tensor_split=[1, 1])
    assert [d["layers_here"] for d in split.devices if d["kind"] == "gpu"] == [17, 16]
    # each GPU alone is too small for this context: together they hold it
    alone = fit(model, gpus[1:], 64 * GiB, ctx=16384).devices[0]
    assert alone["verdict"] == "partial"


def test_several_gpus_through_the_command(models, cli, tmp_path):
    from gpu_fakes import RTX_3060, install_fake_pynvml
    from gpu_fakes import RTX_4090 as FAKE_4090

    env = install_fake_pynvml(tmp_path / "nvml", gpus=(FAKE_4090, RTX_3060))
    shown = cli("fit", str(models["qwen2"]), "--ctx", "16384", "--tensor-split", "3,1", env=env)
    assert shown.code == 0, shown.output
    assert "On the GPUs: fits fully, --n-gpu-layers 33 of 33" in shown.stdout
    assert "GPU 0: NVIDIA GeForce RTX 4090" in shown.stdout and "GPU 1: NVIDIA GeForce RTX 3060" in shown.stdout
    assert "system RAM (beside the GPUs)" in shown.stdout
    for bad in ("3,x", "-1,1", "0,0", ""):
        refused = cli("fit", str(models["qwen2"]), "--tensor-split", bad, env=env)
        assert refused.code == 2 and "--tensor-split" in refused.stderr and "Traceback" not in refused.output
    three = cli("fit", str(models["qwen2"]), "--tensor-split", "1,1,1", env=env)
    assert three.code == 2 and "3 proportions for 2 GPUs" in three.stderr


def test_repacked_copies_are_counted_on_the_cpu(models, tmp_path):
    from llmdoctor.fit import repack_bytes

    model = spec(models["llama"])  # Q4_K matrices: repacked on AVX2 (ggml-cpu/repack.cpp)
    blocks = range(model.n_layer + 1)
    assert repack_bytes(model, "avx2", blocks) > 0.5 * model.weight_bytes
    assert repack_bytes(model, "none", blocks) == 0
    with_repack = next(d for d in fit(model, [], 64 * GiB, ctx=4096).devices if d["kind"] == "cpu")
    without = next(d for d in fit(model, [], 64 * GiB, ctx=4096, repack=False).devices if d["kind"] == "cpu")
    assert with_repack["need"]["repack"] == repack_bytes(model, "avx2", blocks) and without["need"]["repack"] == 0


def test_engine_llama_cpp_without_llama_fit_params(models, cli, tmp_path):
    shown = cli("fit", str(models["llama"]), "--ctx", "4096", "--engine", "llama.cpp",
                env={"PATH": str(tmp_path), "LLMDOCTOR_LLAMA_FIT_PARAMS": ""})
    assert shown.code == 0 and "llama-fit-params is not on PATH" in shown.stdout
    bad = cli("fit", str(models["llama"]), "--engine", "vllm")
    assert bad.code == 2 and "--engine must be" in bad.stderr


def test_the_name_tables_shapes_are_real_models_configurations():
    from llmdoctor.model_sources import SHAPES

    recorded = json.loads((Path(__file__).parent / "data" / "hub" / "model_configs.json").read_text())["models"]
    assert [s.model for s in SHAPES] == list(recorded)
    for shape in SHAPES:
        config = recorded[shape.model]
        assert (shape.n_layer, shape.n_embd, shape.n_head, shape.n_kv, shape.n_ff, shape.n_vocab, shape.ctx) == (
            config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
            config["num_key_value_heads"], config["intermediate_size"], config["vocab_size"],
            config["max_position_embeddings"]), shape.model
