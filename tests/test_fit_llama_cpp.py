"""``fit`` against a real llama.cpp: what it predicts, buffer by buffer, beside what
llama.cpp allocates for the same file and settings.

Six architectures at real shapes (tests/llama_models.py), written as F16 and quantised by
llama.cpp's own ``llama-quantize`` to Q8_0, Q4_0 and Q4_K_M, each loaded once by
tests/llama_probe.cpp, which creates a context for every configuration: context 512, 2048,
8192 and 32768, an f16 or q8_0 cache, flash attention on and off. Then parallel slots
(llama-server's unified cache and separate ones) and the split over two devices through
llama.cpp's RPC backend, which places layers by the same code as CUDA devices.

Needs the build from tests/llama_cpp_build.py (``.ci/run`` makes it, cached outside the
clone): ``LLMDOCTOR_LLAMA_CPP`` names it. The models live in a temporary folder, one
architecture at a time (at most about 3 GB at once), and are deleted as soon as measured.

``python tests/test_fit_llama_cpp.py`` prints the table kept in docs/fit-validation.md;
``test_docs_table_is_current`` fails when the file is not that table.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llama_cpp import RpcServers, build, probe, quantize  # noqa: E402
from llama_models import SHAPES, write_model  # noqa: E402

from llmdoctor.fit import (  # noqa: E402
    FitError,
    assign_layers,
    compute_parts,
    device_needs,
    kv_bytes_per_layer,
    settings_for,
    spec_from_gguf,
    split_points,
)
from llmdoctor.gguf_header import read_local  # noqa: E402

MiB = 1024**2
BUILD = build()
pytestmark = pytest.mark.skipif(
    BUILD is None, reason="no llama.cpp build: LLMDOCTOR_LLAMA_CPP is not set (.ci/run builds one with "
    "tests/llama_cpp_build.py)")
DOC = Path(__file__).resolve().parents[1] / "docs" / "fit-validation.md"
BEGIN, END = "<!-- llama.cpp table: begin -->", "<!-- llama.cpp table: end -->"
CONTEXTS = (512, 2048, 8192, 32768)
CACHES = ("f16", "q8_0")
FLASH = ("on", "off")
TYPES = ("F16", "Q8_0", "Q4_0", "Q4_K_M")
CPU_KIND = "avx2"  # the build: AVX2 without native tuning (tests/llama_cpp_build.py)


@dataclass
class Row:
    model: str
    arch: str
    file_type: str
    ctx: int
    cache: str
    flash: str
    measured: dict  # weights, repack, kv, compute, total (bytes)
    predicted: dict
    refused: bool = False  # llama.cpp would not create the context (and fit must refuse too)

    def error(self, part: str) -> float:
        """Relative error, less the rounding of llama.cpp's MiB figures (two decimals)."""
        measured, predicted = self.measured[part], self.predicted[part]
        gap = max(abs(predicted - measured) - 0.005 * MiB, 0)
        return (gap if predicted >= measured else -gap) / measured if measured else 0.0


def _grid() -> list:
    return [f"{ctx}:{cache}:{fa}:1:0:512" for ctx in CONTEXTS for cache in CACHES for fa in FLASH]


def _measure_file(path: Path, shape, file_type: str) -> list:
    spec = spec_from_gguf(read_local(path), path.name, "GGUF file")
    plain = probe(BUILD / "bin", path, ["512:f16:on:1:0:512"], repack=False)[0]
    rows = []
    for measured in probe(BUILD / "bin", path, _grid()):
        ctx, cache, fa = measured.config.split(":")[:3]
        row = Row(shape.name, shape.arch, file_type, int(ctx), cache, fa, {}, {})
        try:
            settings = settings_for(spec, ctx=int(ctx), kv_type=cache, flash_attn=fa)
        except FitError:
            settings = None
        if measured.failed or settings is None:
            row.refused = True
            row.measured = {"failed": measured.failed}
            row.predicted = {"refused": settings is None}
            rows.append(row)
            continue
        weights = sum(plain.model.values())
        row.measured = {"weights": weights, "repack": measured.model.get("CPU_REPACK", 0),
                        "kv": sum(measured.kv.values()), "compute": sum(measured.compute.values()),
                        "total": measured.total, "n_ctx": measured.n_ctx, "flash": measured.flash_attn}
        cpu = device_needs(spec, settings, [-1] * (spec.n_layer + 1), 0, kv_bytes_per_layer(spec, settings),
                           CPU_KIND)[-1]
        row.predicted = {"weights": spec.weight_bytes, "repack": cpu["repack"], "kv": cpu["kv"],
                         "compute": cpu["compute"], "total": cpu["need"], "n_ctx": settings.n_ctx,
                         "flash": settings.flash_attn}
        rows.append(row)
    return rows


def measure_grid(folder: Path) -> list:
    """Every architecture, file type and setting of the grid, one model file at a time."""
    rows = []
    for shape in SHAPES:
        source = write_model(shape, folder / f"{shape.name}-F16.gguf")
        for file_type in TYPES:
            path = source if file_type == "F16" else quantize(BUILD / "bin", source, folder /
                                                              f"{shape.name}-{file_type}.gguf", file_type)
            rows += _measure_file(path, shape, file_type)
            if path != source:
                path.unlink()
        source.unlink()
    return rows


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> list:
    return measure_grid(tmp_path_factory.mktemp("llama-models"))


def _measured_rows(grid: list) -> list:
    return [r for r in grid if not r.refused]


def test_the_grid_covers_six_architectures_four_types_and_every_setting(grid):
    measured = _measured_rows(grid)
    assert {r.arch for r in measured} >= {"llama", "qwen2", "gemma3", "phi3", "qwen3moe"}
    assert len({r.model for r in measured}) == 6
    assert {r.file_type for r in measured} == set(TYPES)
    assert {(r.ctx, r.cache, r.flash) for r in measured} == {
        (c, k, f) for c in CONTEXTS for k in CACHES for f in FLASH if not (k == "q8_0" and f == "off")}


def test_a_quantised_v_cache_without_flash_attention_is_refused_by_both(grid):
    refused = [r for r in grid if r.refused]
    assert refused and all(r.cache == "q8_0" and r.flash == "off" for r in refused)
    assert all(r.measured["failed"] and r.predicted["refused"] for r in refused)


def test_weights_and_kv_cache_are_exact(grid):
    for row in _measured_rows(grid):
        for part in ("weights", "kv"):
            assert abs(row.error(part)) <= 0.005, (row.model, row.file_type, row.ctx, row.cache, row.flash, part)
        assert row.predicted["n_ctx"] == row.measured["n_ctx"]
        assert row.predicted["flash"] == row.measured["flash"]


def test_the_repacked_copies_are_exact(grid):
    rows = _measured_rows(grid)
    assert any(r.measured["repack"] for r in rows)  # Q4_0 and Q4_K are repacked on this CPU
    for row in rows:
        assert abs(row.predicted["repack"] - row.measured["repack"]) <= 0.005 * max(row.measured["repack"], MiB)


def test_compute_buffer_within_ten_percent(grid):
    worst = max(_measured_rows(grid), key=lambda r: abs(r.error("compute")))
    assert abs(worst.error("compute")) <= 0.10, (worst.model, worst.ctx, worst.cache, worst.flash,
                                                 worst.measured["compute"] / MiB, worst.predicted["compute"] / MiB)


def test_totals_within_five_percent(grid):
    worst = max(_measured_rows(grid), key=lambda r: abs(r.error("total")))
    assert abs(worst.error("total")) <= 0.05, (worst.model, worst.file_type, worst.ctx, worst.cache, worst.flash)


# ----------------------------------------------------------------------------- contexts, slots


@pytest.fixture(scope="module")
def small_models(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("llama-small")
    models = {}
    for shape in SHAPES:
        if shape.name in SPLIT_MODELS:
            source = write_model(shape, folder / f"{shape.name}-F16.gguf")
            models[shape.name] = quantize(BUILD / "bin", source, folder / f"{shape.name}-Q4_0.gguf", "Q4_0")
            source.unlink()
    yield models
    shutil.rmtree(folder, ignore_errors=True)


def test_odd_contexts_are_padded_as_llama_cpp_pads_them(small_models):
    path = small_models["TinyLlama-1.1B"]
    spec = spec_from_gguf(read_local(path), path.name, "GGUF file")
    for measured in probe(BUILD / "bin", path, ["300:f16:on:1:0:512", "1000:f16:off:1:0:512",
                                                "5000:q8_0:on:1:0:512"]):
        ctx, cache, fa = measured.config.split(":")[:3]
        settings = settings_for(spec, ctx=int(ctx), kv_type=cache, flash_attn=fa)
        assert settings.n_ctx == measured.n_ctx
        assert sum(kv_bytes_per_layer(spec, settings)) == pytest.approx(sum(measured.kv.values()), rel=0.005)
        assert compute_parts(spec, settings)["total"] == pytest.approx(sum(measured.compute.values()), rel=0.10)


@pytest.mark.parametrize("model", ["TinyLlama-1.1B", "gemma-3-1b"])
def test_parallel_slots_with_unified_and_separate_caches(small_models, model):
    """llama-server's four slots share one cache; llama-cli's --parallel gives each its own;
    a sliding-window cache holds slots x window + ubatch cells when unified."""
    path = small_models[model]
    spec = spec_from_gguf(read_local(path), path.name, "GGUF file")
    configs = [f"{ctx}:f16:{fa}:{n}:{unified}:512" for ctx in (2048, 8192) for fa in FLASH for n in (2, 4)
               for unified in (0, 1)]
    for measured in probe(BUILD / "bin", path, configs):
        ctx, _, fa, n, unified, _ = measured.config.split(":")
        settings = settings_for(spec, runtime="llama-server" if unified == "1" else "llama.cpp", ctx=int(ctx),
                                flash_attn=fa, parallel=int(n))
        assert settings.kv_unified == (unified == "1")
        assert sum(kv_bytes_per_layer(spec, settings)) == pytest.approx(sum(measured.kv.values()), rel=0.005), \
            measured.config
        assert compute_parts(spec, settings)["total"] == pytest.approx(sum(measured.compute.values()), rel=0.10), \
            measured.config


# ----------------------------------------------------------------------------- several devices


def _by_device(buffers: dict, endpoints: list) -> dict:
    """llama.cpp's buffer names (``RPC0[127.0.0.1:PORT]``, ``CPU``, ``CPU_Mapped``...) by
    device index, -1 for the host."""
    out: dict = {}
    for name, size in buffers.items():
        device = next((i for i, e in enumerate(endpoints) if f"[{e}]" in name), -1)
        out[device] = out.get(device, 0) + size
    return out


SPLIT_MODELS = ("TinyLlama-1.1B", "Llama-3.2-1B", "gemma-3-1b")


def measure_split(models: dict, folder: Path) -> list:
    """Per device, llama.cpp's buffers and fit's figures for two devices (RPC servers on
    127.0.0.1): the even split and --tensor-split 3,1, every layer offloaded and one on the
    CPU, flash attention on and off, at 4,096 tokens."""
    rows = []
    with RpcServers(BUILD / "bin", 2, folder) as rpc:
        for model in SPLIT_MODELS:
            path = models[model]
            spec = spec_from_gguf(read_local(path), path.name, "GGUF file")
            for split in ([1, 1], [3, 1]):
                for ngl in (99, spec.n_layer):
                    points = split_points([1, 1], split)
                    for measured in probe(BUILD / "bin", path, ["4096:f16:on:1:0:512", "4096:f16:off:1:0:512"],
                                          ngl=ngl, rpc=rpc.endpoints, split=split):
                        fa = measured.config.split(":")[2]
                        settings = settings_for(spec, ctx=4096, flash_attn=fa)
                        where = assign_layers(spec.n_layer, min(ngl, spec.n_layer + 1), points)
                        needs = device_needs(spec, settings, where, 2, kv_bytes_per_layer(spec, settings), CPU_KIND)
                        real = {"weights": _by_device(measured.model, rpc.endpoints),
                                "kv": _by_device(measured.kv, rpc.endpoints),
                                "compute": _by_device(measured.compute, rpc.endpoints)}
                        for device in (0, 1, -1):
                            rows.append({"model": model, "split": split, "ngl": ngl, "fa": fa, "device": device,
                                         "measured": {k: real[k].get(device, 0) for k in real},
                                         "predicted": {"weights": needs[device]["weights"] + (
                                             needs[device]["repack"] if device == -1 else 0),
                                             "kv": needs[device]["kv"], "compute": needs[device]["compute"]}})
    return rows


@pytest.fixture(scope="module")
def split_rows(small_models, tmp_path_factory) -> list:
    return measure_split(small_models, tmp_path_factory.mktemp("rpc"))


def test_the_split_over_two_devices_matches_llama_cpp(split_rows):
    """Layers, the tied output's copy of the embeddings and the KV cache per device are
    exact; each device's compute buffer within 15 %, the host's within 24 MiB."""
    assert {r["model"] for r in split_rows} == set(SPLIT_MODELS)
    for row in split_rows:
        label = (row["model"], row["split"], row["ngl"], row["fa"], row["device"])
        measured, predicted = row["measured"], row["predicted"]
        if row["device"] >= 0:
            assert predicted["weights"] == pytest.approx(measured["weights"], rel=0.005, abs=1), label
            if measured["compute"]:  # looser than one device's: see docs/fit-validation.md
                assert predicted["compute"] == pytest.approx(measured["compute"], rel=0.15), label
        else:  # the host maps the file: its buffer is the mapped range, at most the file
            assert predicted["weights"] >= measured["weights"] * 0.995, label
            assert abs(predicted["compute"] - measured["compute"]) <= max(0.10 * measured["compute"], 24 * MiB), label
        assert predicted["kv"] == pytest.approx(measured["kv"], rel=0.005, abs=1), label


def split_table(rows: list) -> str:
    lines = ["| model | split | -ngl | FA | device | weights: llama.cpp / llmdoctor MiB | KV MiB | "
             "compute: llama.cpp MiB | llmdoctor MiB | error |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, p = r["measured"], r["predicted"]
        if not any(m.values()) and not any(p.values()):
            continue
        error = f"{p['compute'] / m['compute'] - 1:+.1%}" if m["compute"] else "-"
        lines.append(f"| {r['model']} | {','.join(map(str, r['split']))} | {r['ngl']} | {r['fa']} "
                     f"| {'host' if r['device'] < 0 else 'RPC' + str(r['device'])} "
                     f"| {m['weights'] / MiB:,.1f} / {p['weights'] / MiB:,.1f} "
                     f"| {m['kv'] / MiB:,.1f} / {p['kv'] / MiB:,.1f} "
                     f"| {m['compute'] / MiB:,.1f} | {p['compute'] / MiB:,.1f} | {error} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the documented table


def table(rows: list) -> str:
    lines = ["| model | arch | type | ctx | cache | FA | compute: llama.cpp MiB | llmdoctor MiB | error "
             "| total: llama.cpp MiB | llmdoctor MiB | error |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.refused:
            lines.append(f"| {r.model} | {r.arch} | {r.file_type} | {r.ctx:,} | {r.cache} | {r.flash} | refused "
                         "| refused | - | refused | refused | - |")
            continue
        lines.append(
            f"| {r.model} | {r.arch} | {r.file_type} | {r.ctx:,} | {r.cache} | {r.flash} "
            f"| {r.measured['compute'] / MiB:,.1f} | {r.predicted['compute'] / MiB:,.1f} | {r.error('compute'):+.1%} "
            f"| {r.measured['total'] / MiB:,.1f} | {r.predicted['total'] / MiB:,.1f} | {r.error('total'):+.1%} |")
    measured = [r for r in rows if not r.refused]
    worst = {part: max(abs(r.error(part)) for r in measured) for part in ("weights", "kv", "compute", "total")}
    summary = (f"{len(measured)} configurations measured ({len(rows) - len(measured)} refused by llama.cpp and by "
               f"fit alike); largest error: weights {worst['weights']:.2%}, KV cache {worst['kv']:.2%}, "
               f"compute {worst['compute']:.1%}, total {worst['total']:.1%}.")
    return "\n".join([summary, "", *lines])


def documented_tables(grid: list, split: list) -> str:
    return f"{table(grid)}\n\nPer device, two devices through llama.cpp's RPC backend, 4,096 tokens:\n\n" \
        f"{split_table(split)}"


def test_docs_table_is_current(grid, split_rows):
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    documented = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert documented == documented_tables(grid, split_rows), \
        "docs/fit-validation.md is stale: run python tests/test_fit_llama_cpp.py"


def main() -> int:
    if BUILD is None:
        print("set LLMDOCTOR_LLAMA_CPP to a build from tests/llama_cpp_build.py", file=sys.stderr)
        return 2
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llama-models-") as folder:
        rows = measure_grid(Path(folder))
        models = {}
        for shape in SHAPES:
            if shape.name in SPLIT_MODELS:
                source = write_model(shape, Path(folder) / f"{shape.name}-F16.gguf")
                models[shape.name] = quantize(BUILD / "bin", source, Path(folder) / f"{shape.name}-Q4_0.gguf", "Q4_0")
                source.unlink()
        split = measure_split(models, Path(folder))
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{documented_tables(rows, split)}\n{END}{tail}", encoding="utf-8")
    print(table(rows).splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())


def test_engine_llama_cpp_shows_llama_fit_params_beside_ours(small_models):
    import json
    import os
    import subprocess

    path = small_models["TinyLlama-1.1B"]
    env = dict(os.environ, PATH=f"{BUILD / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", LLMDOCTOR_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "llmdoctor", "fit", str(path), "--ctx", "4096", "--engine",
                           "llama.cpp", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    theirs = data["llama_cpp"]
    assert "error" not in theirs, theirs
    host = theirs["devices"][0]
    assert host["name"] == "Host" and host["context_mib"] == round(data["memory"]["kv_cache"] / MiB)
    assert abs(host["compute_mib"] - data["memory"]["compute_buffer"] / MiB) <= 0.10 * host["compute_mib"]
    assert "-c 4096" in theirs["arguments"]
    text = subprocess.run([sys.executable, "-m", "llmdoctor", "fit", str(path), "--ctx", "4096", "--engine",
                           "llama.cpp"], capture_output=True, text=True, env=env, timeout=300).stdout
    assert "llama.cpp's own projection (llama-fit-params):" in text and "trust: llama.cpp's figures" in text
