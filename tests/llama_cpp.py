"""Drive a real llama.cpp for the fit validation: quantise, load, read its buffer lines.

The build comes from ``tests/llama_cpp_build.py`` (``.ci/run`` builds it once per
llama.cpp commit, outside the clone) and is found through ``LLMDOCTOR_LLAMA_CPP``: a
folder with ``bin/llama-quantize``, ``bin/llama_probe`` and, when built, ``bin/ggml-rpc-server``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

MiB = 1024**2
BUFFER = re.compile(r"^(?P<who>\w+):\s+(?P<buffer>\S+)\s+(?P<kind>model|KV|compute|output) buffer size =\s+"
                    r"(?P<mib>[\d.]+) MiB")


def build() -> Optional[Path]:
    """The llama.cpp build to validate against, or None."""
    where = os.environ.get("LLMDOCTOR_LLAMA_CPP")
    if not where:
        return None
    path = Path(where)
    return path if (path / "bin" / "llama_probe").exists() and (path / "bin" / "llama-quantize").exists() else None


def quantize(bin_dir: Path, source: Path, target: Path, file_type: str) -> Path:
    subprocess.run([str(bin_dir / "llama-quantize"), str(source), str(target), file_type, "2"],
                   check=True, capture_output=True, timeout=900)
    return target


@dataclass
class Measured:
    config: str
    n_ctx: int = 0
    flash_attn: Optional[bool] = None
    model: dict = field(default_factory=dict)  # buffer name -> bytes
    kv: dict = field(default_factory=dict)
    compute: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    failed: bool = False

    @property
    def total(self) -> int:
        return sum(self.model.values()) + sum(self.kv.values()) + sum(self.compute.values()) \
            + sum(self.output.values())


def probe(bin_dir: Path, model: Path, configs: list, *, repack: bool = True, ngl: int = 0,
          rpc: Optional[list] = None, split: Optional[list] = None, timeout: float = 600) -> list:
    """One model load, one context per config (``ctx:cache:fa:n_seq:unified:ubatch``)."""
    env = dict(os.environ)
    if rpc:
        env["LLAMA_PROBE_RPC"] = ",".join(rpc)
    if split:
        env["LLAMA_PROBE_SPLIT"] = ",".join(str(p) for p in split)
    done = subprocess.run([str(bin_dir / "llama_probe"), str(model), "1" if repack else "0", str(ngl), *configs],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"llama_probe failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    model_buffers: dict = {}
    results: list = []
    current: Optional[Measured] = None
    for line in done.stdout.splitlines():
        if line.startswith("@@ config "):
            current = Measured(line.split(" ", 2)[2], model=dict(model_buffers))
            results.append(current)
            continue
        if line.startswith("@@ context-failed") and current:
            current.failed = True
            continue
        match = BUFFER.match(line.strip())
        if match and not line.lstrip().startswith("~"):
            size = int(float(match["mib"]) * MiB)
            if match["kind"] == "model":
                model_buffers[match["buffer"]] = model_buffers.get(match["buffer"], 0) + size
            elif current is not None:
                bucket = {"KV": current.kv, "compute": current.compute, "output": current.output}[match["kind"]]
                bucket[match["buffer"]] = bucket.get(match["buffer"], 0) + size
            continue
        if current is not None:
            ctx = re.search(r"llama_context: n_ctx\s+= (\d+)", line)
            if ctx:
                current.n_ctx = int(ctx.group(1))
            if "flash_attn" in line and "= enabled" in line or "Flash Attention enabled" in line:
                current.flash_attn = True
            elif "flash_attn" in line and "= disabled" in line:
                current.flash_attn = False
    return results


class RpcServers:
    """``count`` ``ggml-rpc-server`` processes on 127.0.0.1: devices that llama.cpp places
    layers on by the same code path as CUDA devices."""

    def __init__(self, bin_dir: Path, count: int, cache_dir: Path):
        self.bin = bin_dir / "ggml-rpc-server"
        self.count = count
        self.cache_dir = cache_dir
        self.processes: list = []
        self.endpoints: list = []

    def __enter__(self):
        for _ in range(self.count):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            process = subprocess.Popen([str(self.bin), "-H", "127.0.0.1", "-p", str(port), "-t", "1"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.cache_dir)
            self.processes.append(process)
            self.endpoints.append(f"127.0.0.1:{port}")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
