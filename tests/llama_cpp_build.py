"""Build the llama.cpp that ``fit`` is validated against, once per llama.cpp release.

    python tests/llama_cpp_build.py SDIST [--cache DIR]

SDIST is the ``llama-cpp-python`` source archive from the package index, which bundles a
known llama.cpp commit in ``vendor/llama.cpp``. The build (CPU only, AVX2 without native
tuning so that every x86-64-v3 machine gets the same buffers; llama-quantize,
llama-fit-params, ggml-rpc-server, libllama and tests/llama_probe.cpp) goes to
``DIR/llama.cpp-<sdist name>-<sha256 prefix>`` (default: the user's cache folder,
``~/.cache/llmdoctor-ci``), outside any clone, and is reused while it is there. Prints the
build folder; ``LLMDOCTOR_LLAMA_CPP`` set to it lets tests/test_fit_llama_cpp.py run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

TARGETS = ["llama-quantize", "llama-fit-params", "ggml-rpc-server", "llama"]
CMAKE_OPTIONS = [
    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DGGML_RPC=ON", "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON",
    # the binaries find their libraries beside them wherever the folder is (not in the build tree)
    "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON", "-DCMAKE_INSTALL_RPATH=$ORIGIN",
]
PROBE = Path(__file__).with_name("llama_probe.cpp")


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmdoctor-ci"


def key(sdist: Path) -> str:
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()[:16]
    name = sdist.name.replace(".tar.gz", "")
    return f"llama.cpp-{name}-{digest}"


def build(sdist: Path, cache: Path) -> Path:
    target = cache / key(sdist)
    probe_key = hashlib.sha256(PROBE.read_bytes()).hexdigest()[:16]
    if (target / "ready").exists():
        if (target / "probe-key").read_text() != probe_key:
            compile_probe(target, probe_key)
        return target
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llama-cpp-build-") as scratch:
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if "/vendor/llama.cpp/" in m.name
                       and not m.issym() and not m.islnk() and ".." not in Path(m.name).parts]
            archive.extractall(scratch, members=members)  # noqa: S202 - our own download, filtered above
        source = next(Path(scratch).glob("*/vendor/llama.cpp"))
        out = Path(scratch) / "build"
        subprocess.run(["cmake", "-S", str(source), "-B", str(out), *CMAKE_OPTIONS], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(out), "-j", str(os.cpu_count() or 2), "--target", *TARGETS],
                       check=True, stdout=subprocess.DEVNULL)
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "bin").mkdir(parents=True)
        for item in (out / "bin").iterdir():
            if item.is_file():
                shutil.copy2(item, staging / "bin" / item.name, follow_symlinks=False)
            elif item.is_symlink():
                os.symlink(os.readlink(item), staging / "bin" / item.name)
        shutil.copytree(source / "include", staging / "include")
        shutil.copytree(source / "ggml" / "include", staging / "ggml-include")
        (staging / "COMMIT").write_text(sdist.name + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    compile_probe(target, probe_key)
    (target / "ready").write_text(f"built in {time.monotonic() - started:.0f} s\n")
    return target


def compile_probe(target: Path, probe_key: str) -> None:
    subprocess.run(["g++", "-O2", "-std=c++17", str(PROBE), "-I", str(target / "include"),
                    "-I", str(target / "ggml-include"), "-L", str(target / "bin"), "-lllama", "-lggml",
                    "-lggml-base", "-Wl,-rpath,$ORIGIN", "-o", str(target / "bin" / "llama_probe")],
                   check=True)
    (target / "probe-key").write_text(probe_key)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    print(build(args.sdist, args.cache or cache_root()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
