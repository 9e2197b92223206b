"""The `nvcc` check: the CUDA compiler runs, and accepts the host compiler it will use.

nvcc refuses host compilers outside the window its own ``include/crt/host_config.h``
enforces ("unsupported GNU version! gcc versions later than 15 are not supported!",
"unsupported Microsoft Visual Studio version!"). The probe parses that file of the
toolkit in use (a table read from NVIDIA's own host_config.h files is only the fallback) and
asks the host compiler for its version; ``-ccbin`` in ``NVCC_PREPEND_FLAGS`` /
``NVCC_APPEND_FLAGS`` and ``CUDAHOSTCXX`` are honoured. The smoke test compiles a tiny
kernel (and runs it where a GPU exists).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

from llmdoctor import proc
from llmdoctor.checks.cuda_toolkit import wrapper_target
from llmdoctor.knowledge.cuda import (
    arch_range,
    fallback_window,
    first_release_for,
    known_broken,
    last_release_for,
    parse_host_config,
    parse_version,
    text,
)
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext, SmokeTest


def ccbin_from_flags(environ: dict) -> Optional[str]:
    for name in ("NVCC_PREPEND_FLAGS", "NVCC_APPEND_FLAGS"):
        try:
            words = shlex.split(environ.get(name, ""), posix=sys.platform != "win32")
        except ValueError:
            continue
        for index, word in enumerate(words):
            if word in ("-ccbin", "--compiler-bindir") and index + 1 < len(words):
                return words[index + 1]
            for prefix in ("-ccbin=", "--compiler-bindir="):
                if word.startswith(prefix):
                    return word[len(prefix):]
    return None


def _compiler_version(compiler: str, timeout: float) -> dict:
    name = os.path.basename(compiler).lower()
    if name.startswith("cl"):
        result = proc.run([compiler], timeout=timeout)
        match = re.search(r"Version (\d+)\.(\d+)", result.stderr + result.stdout)
        if match:
            return {"kind": "msvc", "version": f"{match.group(1)}.{match.group(2)}",
                    "msc_ver": int(match.group(1)) * 100 + int(match.group(2))}  # 19.44 -> 1944
        return {"kind": "msvc", "error": result.error or "no version in cl's banner"}
    result = proc.run([compiler, "--version"], timeout=timeout)
    first = (result.stdout.splitlines() or [""])[0]
    kind = "clang" if "clang" in first.lower() else "gcc"
    if kind == "gcc":
        dumped = proc.run([compiler, "-dumpfullversion", "-dumpversion"], timeout=timeout)
        version = dumped.stdout.strip() if dumped.ok else ""
    else:
        match = re.search(r"version (\d+\.\d+(?:\.\d+)?)", first)
        version = match.group(1) if match else ""
    if not version:
        return {"kind": kind, "error": result.error or f"cannot read the version of {compiler}"}
    return {"kind": kind, "version": version}


def probe_nvcc(environ: dict, timeout: float) -> dict:
    facts: dict = {"flags": {n: environ[n] for n in ("NVCC_PREPEND_FLAGS", "NVCC_APPEND_FLAGS", "CUDAHOSTCXX")
                             if environ.get(n)}}
    nvcc = shutil.which("nvcc", path=environ.get("PATH"))
    home = environ.get("CUDA_HOME") or environ.get("CUDA_PATH")
    if not nvcc and home:
        candidate = Path(home) / "bin" / ("nvcc.exe" if sys.platform == "win32" else "nvcc")
        nvcc = str(candidate) if candidate.exists() else None
        facts["found_via"] = "CUDA_HOME"
    if not nvcc:
        facts["nvcc"] = None
        return facts
    facts["nvcc"] = nvcc
    result = proc.run([nvcc, "--version"], timeout=timeout)
    facts["run"] = {"ok": result.ok, "error": result.error, "returncode": result.returncode,
                    "stderr": result.stderr[-500:], "timed_out": result.timed_out}
    match = re.search(r"release (\d+\.\d+), V([\d.]+)", result.stdout)
    if match:
        facts["release"], facts["version"] = match.group(1), match.group(2)
    real = wrapper_target(nvcc) or os.path.realpath(nvcc)
    root = Path(real).parent.parent
    facts["toolkit_root"] = str(root)
    for header in (root / "include" / "crt" / "host_config.h",
                   *sorted(root.glob("targets/*/include/crt/host_config.h"))):
        try:
            facts["host_config"] = {"path": str(header), **parse_host_config(header.read_text(errors="replace"))}
            break
        except OSError:
            continue
    compiler = ccbin_from_flags(environ) or environ.get("CUDAHOSTCXX")
    facts["host_compiler_from"] = "flags" if compiler else "PATH"
    if not compiler:
        compiler = "cl" if sys.platform == "win32" else "gcc"
    if os.path.sep in compiler:
        resolved = compiler if os.path.exists(compiler) else None
    else:
        resolved = shutil.which(compiler, path=environ.get("PATH"))
    if resolved and os.path.isdir(resolved):  # -ccbin may name a folder
        for name in ("cl.exe", "g++", "gcc", "clang++"):
            if os.path.exists(os.path.join(resolved, name)):
                resolved = os.path.join(resolved, name)
                break
    facts["host_compiler"] = {"requested": compiler, "path": resolved}
    if resolved and os.path.exists(resolved):
        facts["host_compiler"].update(_compiler_version(resolved, timeout))
    return facts


def probe(context: ProbeContext) -> dict:
    return probe_nvcc(dict(os.environ), context.timeout)


# ----------------------------------------------------------------------------- rules


def rules(facts: dict, context: RuleContext) -> list:
    findings: list = []
    nvcc = facts.get("nvcc")
    if not nvcc:
        findings.append(Finding("nvcc.not-found", "info",
                                "nvcc is not on PATH: nothing will compile CUDA code here",
                                "Only needed to build CUDA extensions or llama.cpp from source."))
        return findings
    run = facts.get("run", {})
    if not run.get("ok"):
        why = "timed out" if run.get("timed_out") else (run.get("error") or f"exit {run.get('returncode')}")
        findings.append(Finding("nvcc.does-not-run", "error", f"{nvcc} does not run: {why}",
                                run.get("stderr", ""), fixes=["cuda-home"], facts=run))
        return findings
    release = parse_version(facts.get("release"))
    findings.append(Finding("nvcc.version", "ok", f"nvcc {facts.get('version', '?')} at {nvcc}"))
    findings += _arch_findings(release, (context.all_facts.get("nvidia-driver") or {}).get("gpus") or [])
    root = facts.get("toolkit_root", "")
    default_windows = "\\program files\\" in (root or nvcc).lower()  # every default install: build tools quote it
    if (" " in nvcc or " " in root) and not default_windows:
        findings.append(Finding(
            "nvcc.spaces-in-path", "info", "the CUDA toolkit path contains spaces: it bites hand-written Makefiles",
            "CMake, setuptools and PyTorch's extension builder quote it; hand-written Makefiles and some setup.py "
            "scripts do not. If such a build fails at the nvcc line, install the toolkit in a folder without "
            "spaces or make a link to it."))
    window = dict(facts.get("host_config") or {})
    window_source = f"its {window.get('path')}" if window else "the table of known windows"
    if not window.get("gcc_max_major") and not window.get("msvc_limit") and release:
        window = fallback_window(release)
    compiler = facts.get("host_compiler") or {}
    if facts.get("host_compiler_from") == "flags" and not compiler.get("path"):
        findings.append(Finding(
            "nvcc.ccbin-missing", "error",
            f"-ccbin / CUDAHOSTCXX names {compiler.get('requested')}, which does not exist",
            f"Flags: {facts.get('flags')}. Install that compiler or correct the variable.",
            facts=facts.get("flags", {})))
        return findings
    if not compiler.get("version"):
        if compiler.get("requested") and not compiler.get("path"):
            windows = compiler.get("requested") in ("cl", "cl.exe")
            findings.append(Finding(
                "nvcc.no-host-compiler", "info" if windows else "warning",
                f"nvcc needs a host compiler and {compiler.get('requested')} is not on PATH"
                + (": only nvcc run by hand and PyTorch extension builds outside a developer prompt need it"
                   if windows else ""),
                "CMake's Visual Studio generator finds cl.exe itself; for nvcc by hand or pip-built extensions, open "
                "an 'x64 Native Tools' prompt." if windows else
                "Install gcc/g++ (e.g. apt install build-essential)."))
        return findings
    version = parse_version(compiler["version"]) or (0, 0)
    label = f"{compiler['kind']} {compiler['version']}"
    broken = known_broken(release, compiler["kind"], version) if release else None
    if broken:
        fixed_in, symptom, sources = broken
        findings.append(Finding(
            "nvcc.known-broken-pair", "error",
            f"nvcc {text(release)} accepts {label} but fails to compile with it: \"{symptom[:90]}...\"",
            f"Fixed in CUDA {text(fixed_in)}: install CUDA {text(fixed_in)} or newer, or point nvcc at an older "
            f"{compiler['kind']} with -ccbin. Reports: {', '.join(sources)}",
            facts={"cuda": text(release), "compiler": label, "fixed_in": text(fixed_in)}))
    message, override = None, ("'-allow-unsupported-compiler' overrides the check at your own risk (it can "
                               "miscompile); a supported compiler is the safe fix.")
    if compiler["kind"] == "gcc" and window.get("gcc_max_major") and version[0] > window["gcc_max_major"]:
        message = (f"nvcc {text(release)} rejects {label}: \"unsupported GNU version! gcc versions later "
                   f"than {window['gcc_max_major']} are not supported!\"")
        advice = (f"Install gcc-{window['gcc_max_major']} (or older) and point nvcc at it: export "
                  f"NVCC_PREPEND_FLAGS='-ccbin /usr/bin/g++-{window['gcc_max_major']}'. ")
    elif compiler["kind"] == "clang" and window.get("clang_limit") and version[0] >= window["clang_limit"]:
        message = f"nvcc {text(release)} rejects {label}: \"unsupported clang version!\""
        advice = f"Use clang {window['clang_limit'] - 1} or older, or gcc, through -ccbin. "
    elif compiler["kind"] == "msvc" and window.get("msvc_limit"):
        msc = compiler.get("msc_ver") or 0
        if not window.get("msvc_min", 0) <= msc < window["msvc_limit"]:
            message = (f"nvcc {text(release)} rejects MSVC {compiler['version']} (_MSC_VER {msc}): "
                       "\"unsupported Microsoft Visual Studio version!\"")
            advice = (f"It accepts _MSC_VER {window.get('msvc_min')}-{window['msvc_limit'] - 1}: install that "
                      "MSVC toolset in the Visual Studio Installer, or a newer CUDA. ")
    if message:
        findings.append(Finding("nvcc.host-compiler-unsupported", "error", message,
                                advice + override + f" (Window read from {window_source}.)",
                                facts={"compiler": compiler, "window": window}))
    else:
        findings.append(Finding("nvcc.host-compiler", "ok", f"host compiler {label} is accepted by nvcc "
                                f"{text(release)}", facts={"window": window}))
    return findings


# ----------------------------------------------------------------------------- smoke test

KERNEL = r"""
#include <cstdio>
__global__ void add(const int *a, const int *b, int *c) { int i = threadIdx.x; c[i] = a[i] + b[i]; }
int main() {
    const int n = 32; int a[n], b[n], c[n]; int *da, *db, *dc;
    for (int i = 0; i < n; ++i) { a[i] = i; b[i] = 2 * i; }
    if (cudaMalloc(&da, sizeof a) != cudaSuccess) { printf("NO-DEVICE\n"); return 3; }
    cudaMalloc(&db, sizeof b); cudaMalloc(&dc, sizeof c);
    cudaMemcpy(da, a, sizeof a, cudaMemcpyHostToDevice); cudaMemcpy(db, b, sizeof b, cudaMemcpyHostToDevice);
    add<<<1, n>>>(da, db, dc);
    if (cudaMemcpy(c, dc, sizeof c, cudaMemcpyDeviceToHost) != cudaSuccess) { printf("COPY-FAILED\n"); return 4; }
    for (int i = 0; i < n; ++i) if (c[i] != 3 * i) { printf("WRONG %d\n", i); return 5; }
    printf("OK\n"); return 0;
}
"""


def smoke_nvcc(options: dict) -> dict:
    import time

    from llmdoctor.checks.nvidia_driver import local_capability

    nvcc = shutil.which("nvcc")
    if not nvcc:
        return {"status": "skipped", "message": "nvcc is not on PATH"}
    capability = local_capability()
    with tempfile.TemporaryDirectory(prefix="llmdoctor-nvcc-") as folder:
        source, binary = Path(folder) / "add.cu", Path(folder) / "add"
        source.write_text(KERNEL)
        argv = [nvcc, "-o", str(binary), str(source)]
        if capability:
            argv[1:1] = [f"-arch=sm_{capability.replace('.', '')}"]
        started = time.perf_counter()
        result = proc.run(argv, timeout=float(options.get("timeout", 120)))
        compile_s = time.perf_counter() - started
        if not result.ok:
            tail = (result.stderr or result.stdout).strip().splitlines()[-2:]
            return {"status": "fail", "message": f"nvcc could not compile a tiny kernel: "
                                                 f"{result.error or ' | '.join(tail)}"}
        if not capability:
            return {"status": "pass", "message": f"compiled a tiny kernel in {compile_s:.1f} s; no GPU here, "
                                                 "so it was not run", "figures": {"compile_s": round(compile_s, 2)}}
        run = proc.run([str(binary)], timeout=60)
        if run.stdout.strip() != "OK":
            return {"status": "fail", "message": f"the kernel ran wrong on sm_{capability}: "
                                                 f"{run.stdout.strip() or run.error or run.returncode}"}
        return {"status": "pass", "message": f"compiled for sm_{capability.replace('.', '')} in {compile_s:.1f} s "
                                             "and ran correctly on the GPU",
                "figures": {"compile_s": round(compile_s, 2), "arch": capability}}


def _arch_findings(release: Optional[tuple], gpus: list) -> list:
    """Can this nvcc build for the GPUs here? Outside its range nvcc stops with "nvcc fatal :
    Unsupported gpu architecture 'compute_XY'" (the table: ``llmdoctor.knowledge.cuda.ARCH_RANGE``)."""
    supported = arch_range(release) if release else None
    if not supported:
        return []
    findings = []
    for gpu in gpus:
        capability = parse_version(str(gpu.get("compute_capability") or ""))
        if not capability:
            continue
        arch = f"compute_{capability[0]}{capability[1]}"
        if capability > supported[1]:
            first = first_release_for(capability)
            findings.append(Finding(
                "nvcc.gpu-too-new", "error",
                f"nvcc {text(release)} cannot build for {gpu.get('name', 'the GPU')} (compute capability "
                f"{text(capability)}): \"Unsupported gpu architecture '{arch}'\"",
                f"CUDA {text(release)} builds for compute capability {text(supported[0])} to {text(supported[1])}. "
                + (f"Install CUDA {text(first)} or newer for this GPU." if first else "Install a newer CUDA toolkit."),
                facts={"capability": text(capability), "first_cuda": text(first) if first else None}))
        elif capability < supported[0]:
            last = last_release_for(capability)
            findings.append(Finding(
                "nvcc.gpu-too-old", "error",
                f"nvcc {text(release)} no longer builds for {gpu.get('name', 'the GPU')} (compute capability "
                f"{text(capability)}): \"Unsupported gpu architecture '{arch}'\"",
                f"CUDA {text(release)} builds for compute capability {text(supported[0])} and up. "
                + (f"Use a CUDA {text(last)} toolkit (the last that builds for it) to compile for this GPU."
                   if last else "Use an older CUDA toolkit."),
                facts={"capability": text(capability), "last_cuda": text(last) if last else None}))
    return findings


NVCC_DOCS = "https://docs.nvidia.com/cuda/cuda-compiler-driver-nvcc/index.html"
CUDA_LINUX_GUIDE = "https://docs.nvidia.com/cuda/cuda-installation-guide-linux/"
CUDA_WINDOWS_GUIDE = "https://docs.nvidia.com/cuda/cuda-installation-guide-microsoft-windows/"

FINDINGS = (
    FindingKind(
        "nvcc.version", "ok", "the nvcc on PATH runs", references=(NVCC_DOCS,),
    ),
    FindingKind(
        "nvcc.not-found", "info", "nvcc is not on PATH",
        why="Only building CUDA extensions or llama.cpp from source needs it.",
        fix="Install a CUDA toolkit and put its bin on PATH when you need to compile.",
        references=(CUDA_LINUX_GUIDE, CUDA_WINDOWS_GUIDE),
    ),
    FindingKind(
        "nvcc.does-not-run", "error", "nvcc is on PATH but does not run",
        why="A broken or partial toolkit, or one for another architecture: every CUDA build fails.",
        fix="Reinstall the toolkit, or point CUDA_HOME and PATH at a working one.", fixes=("cuda-home",),
        references=(CUDA_LINUX_GUIDE,),
    ),
    FindingKind(
        "nvcc.spaces-in-path", "info", "the toolkit's path contains spaces",
        why="CMake, setuptools and PyTorch quote it; hand-written Makefiles and some setup.py scripts do not.",
        fix="If such a build fails at the nvcc line, install the toolkit without spaces or link to it.",
        references=(NVCC_DOCS,),
    ),
    FindingKind(
        "nvcc.ccbin-missing", "error", "-ccbin or CUDAHOSTCXX names a compiler that does not exist",
        why="nvcc calls that compiler for all host code; every compile fails.",
        fix="Install that compiler, or correct NVCC_PREPEND_FLAGS / NVCC_APPEND_FLAGS / CUDAHOSTCXX.",
        references=(NVCC_DOCS, "https://cmake.org/cmake/help/latest/envvar/CUDAHOSTCXX.html"),
    ),
    FindingKind(
        "nvcc.no-host-compiler", "warning", "nvcc's host compiler is not on PATH", severities=("info", "warning"),
        why="nvcc compiles host code with gcc/g++ (cl.exe on Windows); without it nothing compiles. On "
            "Windows CMake's Visual Studio generator finds cl.exe itself.",
        fix="Install gcc/g++ (apt install build-essential); on Windows use an 'x64 Native Tools' prompt.",
        references=(CUDA_LINUX_GUIDE, CUDA_WINDOWS_GUIDE),
    ),
    FindingKind(
        "nvcc.known-broken-pair", "error", "this nvcc release accepts the host compiler but fails with it",
        why="Some releases pass host_config.h's version check yet fail on the compiler's headers; the finding "
            "quotes the error and the threads that report it.",
        fix="Install the CUDA release that fixed it, or point nvcc at an older compiler with -ccbin.",
        references=("https://github.com/NVIDIA/nccl/issues/650",
                    "https://github.com/NVIDIA/FasterTransformer/issues/314"),
    ),
    FindingKind(
        "nvcc.host-compiler-unsupported", "error", "nvcc rejects the host compiler's version",
        why="The toolkit's include/crt/host_config.h stops with 'unsupported GNU version!' or 'unsupported "
            "Microsoft Visual Studio version!' outside its window.",
        fix="Use a compiler inside the window (-ccbin), or a CUDA release that supports it; "
            "-allow-unsupported-compiler is at your own risk.",
        references=(NVCC_DOCS, CUDA_LINUX_GUIDE, CUDA_WINDOWS_GUIDE),
    ),
    FindingKind(
        "nvcc.host-compiler", "ok", "the host compiler is inside nvcc's supported window", references=(NVCC_DOCS,),
    ),
    FindingKind(
        "nvcc.gpu-too-new", "error", "this nvcc cannot build for the GPU: its architecture came later",
        why="nvcc stops with \"Unsupported gpu architecture 'compute_XY'\"; kernels for the card need a newer "
            "CUDA release.",
        fix="Install the CUDA release the finding names, or newer.",
        references=("https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html",
                    "https://developer.nvidia.com/cuda-gpus"),
    ),
    FindingKind(
        "nvcc.gpu-too-old", "error", "this nvcc no longer builds for the GPU's architecture",
        why="CUDA releases drop old architectures; nvcc stops with \"Unsupported gpu architecture\".",
        fix="Use the last CUDA release that builds for it (the finding names it).",
        references=("https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html",),
    ),
)


CHECK = Check(
    id="nvcc",
    title="nvcc and its host compiler",
    probe=probe,
    rules=rules,
    order=50,
    timeout=15.0,
    smoke=(SmokeTest("nvcc", "Compile a tiny CUDA kernel (and run it on a GPU)",
                     "llmdoctor.checks.nvcc:smoke_nvcc", timeout=180.0),),
    requires=("nvidia-driver",),
    findings=FINDINGS,
)
