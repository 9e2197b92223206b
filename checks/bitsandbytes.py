"""The `bitsandbytes` check: will bitsandbytes load a working native library, and which?

Read in the target interpreter's folders without importing bitsandbytes or torch: the
installed distributions (leftovers such as ``bitsandbytes-windows`` included), the native
libraries the package ships, torch's CUDA build, ``BNB_CUDA_VERSION`` and the loader path.
The installed release's own selection rule (``llmdoctor.knowledge.bitsandbytes.select_library``) predicts the
file it will load; that file's dependencies are resolved the way the loader will (ELF
``DT_NEEDED`` through RPATH / LD_LIBRARY_PATH / RUNPATH / ld.so.cache, plus the CUDA
libraries ``import torch`` has already loaded; on Windows the DLL search of Python 3.8+,
which ignores PATH), and its CUDA fat binary says which GPU architectures it carries.

``check --deep`` also runs ``python -m bitsandbytes`` in the target interpreter (bounded
by a timeout) and turns what it prints into findings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from llmdoctor.checks.torch import probe_torch
from llmdoctor.fileio import FileIOError, read_shell_lines
from llmdoctor.knowledge import bitsandbytes as bnb
from llmdoctor.knowledge.cuda import driver_max_cuda, driver_verdict, gpus, parse_version, text
from llmdoctor.knowledge.shells import USER_STARTUP_FILES
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext, SmokeTest

DEFAULT_LIBRARY_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/lib/x86_64-linux-gnu",
                        "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu")
WINDOWS_API_SETS = ("api-ms-", "ext-ms-")
DEEP_TIMEOUT_S = 90.0


# ----------------------------------------------------------------------------- probe

def probe(context: ProbeContext) -> dict:
    target = context.target()
    if target.get("error"):
        return {"target_error": target["error"], "python": context.python}
    facts = probe_bitsandbytes(target, dict(os.environ), os.name == "nt", timeout=context.timeout)
    if context.options.get("deep") and facts.get("installed"):
        facts["diagnostics"] = run_diagnostics(target.get("executable") or context.python,
                                               float(context.options.get("deep_timeout", DEEP_TIMEOUT_S)))
    return facts


def probe_bitsandbytes(target: dict, environment: dict, windows: bool, timeout: float = 5.0) -> dict:
    """Facts about the bitsandbytes that ``target`` (the target-interpreter probe) would import."""
    packages = target.get("packages", {})
    facts: dict = {
        "python": target.get("executable"),
        "python_version": target.get("version"),
        "distributions": {name: version for name, version in packages.items() if name.startswith("bitsandbytes")},
        "bnb_cuda_version": environment.get("BNB_CUDA_VERSION"),
        "ld_library_path": environment.get("LD_LIBRARY_PATH", ""),
        "conda_prefix": environment.get("CONDA_PREFIX"),
        "site_packages": list(target.get("site_packages", [])),
    }
    facts["torch"] = probe_torch(facts["site_packages"])
    if "BNB_CUDA_VERSION" in environment and not windows:
        facts["bnb_cuda_version_set_in"] = override_sources(environment)
    folder = _package_folder(target.get("path") or facts["site_packages"])
    if folder is None:
        facts["installed"] = False
        return facts
    facts.update(installed=True, location=str(folder))
    facts["version"] = packages.get("bitsandbytes") or _version_from_init(folder)
    facts["source_checkout"] = any((folder.parent / marker).exists() for marker in ("CMakeLists.txt", "csrc"))
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        facts["error"] = str(exc)
        return facts
    facts["files"] = [n for n in names if n.startswith("libbitsandbytes_") and n.endswith((".so", ".dll", ".dylib"))]
    facts["libraries"] = {}
    if not windows and _older_than("0.41.0", facts["version"]):
        facts["cudart_scan"] = cudart_scan(environment, facts["version"])
    if windows and _older_than_windows_support(facts["version"]):
        return facts  # the root is the release itself: its libraries are not resolved through the DLL search
    resolver = DllResolver(facts, environment) if windows else ElfResolver(facts, environment, timeout)
    for name in _worth_reading(facts):
        facts["libraries"][name] = inspect_library(folder / name, resolver)
        missing = facts["libraries"][name].get("missing") or []
        if missing and not windows:
            facts["libraries"][name]["candidates"] = {m: library_candidates(m, facts, environment) for m in missing}
    return facts


def _older_than_windows_support(version: Optional[str]) -> bool:
    return _older_than(str(bnb.WINDOWS_SINCE), version)


def _older_than(release: str, version: Optional[str]) -> bool:
    from packaging.version import InvalidVersion

    try:
        return bnb.Version(version or "") < bnb.Version(release)
    except InvalidVersion:
        return False


def cudart_scan(environment: dict, version: str) -> dict:
    """The libcudart a release before 0.41 finds by its own search (``llmdoctor.knowledge.bitsandbytes``), and its
    CUDA version read from the file's real name (libcudart.so.11.7.99 is CUDA 11.7)."""
    names = bnb.cudart_names(bnb.Version(version))
    searched, found = [], []
    for via, folder in bnb.cudart_search_order(environment):
        if via == "backup" and found:
            break
        searched.append(folder)
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                found.append((via, path))
        if found and via in ("$CONDA_PREFIX/lib", "LD_LIBRARY_PATH"):
            break  # conda's and LD_LIBRARY_PATH's first hit end the search
    if not found:
        return {"found": None, "searched": searched[:50]}
    via, path = found[0]
    real = os.path.basename(os.path.realpath(path))
    match = re.search(r"\.so\.(\d+\.\d+)", real)
    return {"found": path, "via": via, "version": match.group(1) if match else None, "real_name": real,
            "others": [p for _, p in found[1:6]], "searched": searched[:50]}


def override_sources(environment: dict) -> list:
    """Where BNB_CUDA_VERSION is set: startup-file lines, and the conda env's own variables."""
    import json

    home = environment.get("HOME") or os.path.expanduser("~")
    sources = []
    for relative in USER_STARTUP_FILES:
        path = os.path.join(home, relative)
        try:
            lines = read_shell_lines(path, errors="surrogateescape")
        except FileIOError:
            continue
        for number, line in enumerate(lines, 1):
            if re.match(r"\s*(export\s+|set\s+-gx\s+)?BNB_CUDA_VERSION[=\s]", line):
                sources.append({"file": path, "line": number, "text": line})
    prefix = environment.get("CONDA_PREFIX")
    if prefix:
        try:
            state = json.loads(Path(prefix, "conda-meta", "state").read_text(encoding="utf-8"))
            if "BNB_CUDA_VERSION" in (state.get("env_vars") or {}):
                sources.append({"conda_env": prefix})
        except (OSError, ValueError, AttributeError):
            pass
    return sources


def library_candidates(soname: str, facts: dict, environment: dict) -> list:
    """Folders on this machine that hold ``soname``: NVIDIA's wheels, CUDA toolkits, conda, WSL."""
    import glob

    patterns = [os.path.join(site, "nvidia", "*", "lib") for site in facts.get("site_packages", [])]
    patterns += ["/usr/local/cuda*/lib64", "/usr/local/cuda*/targets/*/lib", "/opt/cuda*/lib64", "/usr/lib/wsl/lib"]
    if environment.get("CONDA_PREFIX"):
        patterns.append(os.path.join(environment["CONDA_PREFIX"], "lib"))
    found = []
    for pattern in patterns:
        for folder in sorted(glob.glob(pattern)):
            real = os.path.realpath(folder)
            if os.path.exists(os.path.join(folder, soname)) and real not in [os.path.realpath(f) for f in found]:
                found.append(folder)
    return found


def _package_folder(paths: list) -> Optional[Path]:
    for entry in paths:
        candidate = Path(entry) / "bitsandbytes"
        if (candidate / "__init__.py").is_file():
            return candidate
    return None


def _version_from_init(folder: Path) -> Optional[str]:
    try:
        match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", (folder / "__init__.py").read_text(
            encoding="utf-8", errors="replace"), re.MULTILINE)
    except OSError:
        return None
    return match.group(1) if match else None


def _worth_reading(facts: dict) -> list:
    """The CPU library, those for torch's CUDA major, and whatever BNB_CUDA_VERSION names."""
    cuda = parse_version((facts.get("torch") or {}).get("cuda"))
    override = facts.get("bnb_cuda_version") or ""
    chosen = []
    for name in facts["files"]:
        match = re.match(r"libbitsandbytes_cuda(\d\d)(\d+)", name)
        if "_cpu" in name or (match and cuda and int(match.group(1)) == cuda[0]) or \
                (override and f"cuda{override}" in name):
            chosen.append(name)
    return chosen


def inspect_library(path: Path, resolver) -> dict:
    from llmdoctor.binary import BinaryFormatError, read_library

    try:
        info = read_library(str(path))
    except BinaryFormatError as exc:
        return {"error": str(exc)}
    expected = {"DllResolver": "pe", "ElfResolver": "elf"}.get(type(resolver).__name__)
    if expected and info.format != expected:
        # a Linux .so in a Windows install (or the reverse): its names mean nothing to this loader
        return {"format": info.format, "needed": info.needed, "wrong_format": True, "found": {}, "missing": [],
                "path_only": [], "runpath": [], "sm": info.sm, "ptx": info.ptx}
    found, missing, path_only = {}, [], []
    for needed in info.needed:
        where = resolver.find(needed, info, path.parent)
        if where is None:
            missing.append(needed)
        elif where.startswith("PATH:"):
            path_only.append(needed)
            found[needed] = where[5:]
        else:
            found[needed] = where
    return {"format": info.format, "needed": info.needed, "found": found, "missing": missing,
            "path_only": path_only, "runpath": info.runpath or info.rpath, "sm": info.sm, "ptx": info.ptx}


class ElfResolver:
    """Where the dynamic loader will find each DT_NEEDED of a library loaded after ``import torch``."""

    def __init__(self, facts: dict, environment: dict, timeout: float) -> None:
        self.ld_library_path = [p for p in facts["ld_library_path"].split(":") if p]
        self.executable_rpath = self._executable_rpath(facts.get("python"))
        self.preloaded = self._torch_libraries(facts)
        self._cache: Optional[dict] = None
        self.timeout = timeout

    @staticmethod
    def _executable_rpath(python: Optional[str]) -> list:
        """The interpreter's own DT_RPATH (a conda python's ``$ORIGIN/../lib``): the loader
        searches it for every library that has no RUNPATH of its own."""
        from llmdoctor.binary import BinaryFormatError, read_library

        if not python:
            return []
        real = os.path.realpath(python)
        try:
            info = read_library(real)
        except BinaryFormatError:
            return []
        return [] if info.runpath else [_expand_origin(p, os.path.dirname(real)) for p in info.rpath]

    def _torch_libraries(self, facts: dict) -> dict:
        """A CUDA build of torch loads its CUDA libraries (from its own lib folder and NVIDIA's
        wheels) when imported; a library needing the same soname then gets that copy."""
        torch = facts.get("torch") or {}
        if not torch.get("cuda") or not torch.get("location"):
            return {}
        folders = [Path(torch["location"]) / "lib"]
        for site in facts["site_packages"]:
            folders += sorted(Path(site, "nvidia").glob("*/lib"))
        found = {}
        for folder in folders:
            try:
                for name in os.listdir(folder):
                    found.setdefault(name, str(folder / name))
            except OSError:
                continue
        return found

    def ld_cache(self) -> dict:
        if self._cache is None:
            from llmdoctor import proc

            self._cache = {}
            ldconfig = proc.which("ldconfig") or next(
                (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None)
            if ldconfig:
                result = proc.run([ldconfig, "-p"], timeout=self.timeout)
                for line in result.stdout.splitlines():
                    match = re.match(r"\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)", line)
                    if match and ("x86-64" in match.group(2) or "64bit" in match.group(2)
                                  or "AArch64" in match.group(2)):
                        self._cache.setdefault(match.group(1), match.group(3))
        return self._cache

    def find(self, soname: str, info, origin: Path) -> Optional[str]:
        # ld.so's order: DT_RPATH (the library's, then the executable's) unless the library has
        # a DT_RUNPATH; LD_LIBRARY_PATH; DT_RUNPATH; ld.so.cache; the default folders
        rpath = [] if info.runpath else [_expand_origin(p, str(origin)) for p in info.rpath] + self.executable_rpath
        runpath = [_expand_origin(p, str(origin)) for p in info.runpath]
        for folder in rpath + self.ld_library_path + runpath:
            if os.path.exists(os.path.join(folder, soname)):
                return os.path.join(folder, soname)
        if soname in self.preloaded:
            return self.preloaded[soname] + " (loaded by import torch)"
        cached = self.ld_cache().get(soname)
        if cached:
            return cached
        for folder in DEFAULT_LIBRARY_DIRS:
            if os.path.exists(os.path.join(folder, soname)):
                return os.path.join(folder, soname)
        return None


def _expand_origin(entry: str, origin: str) -> str:
    return os.path.normpath(entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin))


class DllResolver:  # pragma: no cover - exercised on Windows; rules are tested with recorded facts
    """Python 3.8+ loads DLLs from the library's folder, the interpreter's folder, System32
    and folders added with os.add_dll_directory (torch adds torch\\lib); never from PATH."""

    def __init__(self, facts: dict, environment: dict) -> None:
        python = facts.get("python") or ""
        torch = facts.get("torch") or {}
        self.folders = [os.path.dirname(python),
                        os.path.join(environment.get("SystemRoot", r"C:\Windows"), "System32")]
        if torch.get("location"):
            self.folders.append(os.path.join(torch["location"], "lib"))
        if facts.get("conda_prefix"):
            self.folders.append(os.path.join(facts["conda_prefix"], "Library", "bin"))
        self.path = [p for p in environment.get("PATH", "").split(";") if p]

    def find(self, dll: str, info, origin: Path) -> Optional[str]:
        if dll.lower().startswith(WINDOWS_API_SETS):
            return "(Windows API set)"
        for folder in [str(origin)] + self.folders:
            if os.path.exists(os.path.join(folder, dll)):
                return os.path.join(folder, dll)
        for folder in self.path:
            if os.path.exists(os.path.join(folder, dll)):
                return "PATH:" + os.path.join(folder, dll)
        return None


# ----------------------------------------------------------------------------- deep mode

MARKERS = (  # (pattern in `python -m bitsandbytes` output, finding id, severity)
    (r"SUCCESS!", "diagnostics-success", "ok"),
    (r"CPU library loaded successfully", "diagnostics-cpu", "ok"),
    (r"CUDA Setup failed despite (GPU|CUDA) being available", "diagnostics-setup-failed", "error"),
    (r"(\S+\.so[.\d]*): cannot open shared object file", "diagnostics-missing-library", "error"),
    (r"compiled without GPU support", "diagnostics-cpu-library", "warning"),
    (r"VERSION MISMATCH|Configured CUDA binary not found|No compatible CUDA binary found|"
     r"Required library version not found", "diagnostics-no-binary", "error"),
    (r"value must be digits only", "diagnostics-bad-override", "error"),
    (r"Forgot to compile the bitsandbytes library", "diagnostics-not-compiled", "error"),
    (r"no kernel image is available", "diagnostics-arch", "error"),
    (r"undefined symbol: (\w+)", "diagnostics-undefined-symbol", "warning"),
)


def run_diagnostics(python: str, timeout: float) -> dict:
    from llmdoctor import proc

    result = proc.run_python([python, "-m", "bitsandbytes"], timeout=timeout)
    output = (result.stdout or "") + "\n" + (result.stderr or "")
    return {"returncode": result.returncode, "timed_out": result.timed_out, "error": result.error,
            "duration_ms": round(result.duration_ms), "markers": parse_diagnostics(output),
            "tail": [line for line in output.strip().splitlines() if line.strip()][-8:]}


def parse_diagnostics(output: str) -> list:
    markers = []
    for pattern, marker, severity in MARKERS:
        match = re.search(pattern, output)
        if match:
            markers.append({"id": marker, "severity": severity, "line": _line_of(output, match.start())})
    return markers


def _line_of(output: str, position: int) -> str:
    start = output.rfind("\n", 0, position) + 1
    end = output.find("\n", position)
    return output[start:end if end >= 0 else len(output)].strip()[:300]


# ----------------------------------------------------------------------------- rules

def machine_view(all_facts: dict, torch: dict) -> tuple:
    """(torch CUDA, whether torch.cuda.is_available() will be True, highest GPU capability)."""
    torch_cuda = parse_version(torch.get("cuda")) if not torch.get("hip") else None
    machine_gpus = gpus(all_facts)
    capabilities = [parse_version(g.get("compute_capability")) for g in machine_gpus]
    capability = max((c for c in capabilities if c), default=None)
    driver_max = driver_max_cuda(all_facts)
    usable = bool(torch_cuda and machine_gpus and driver_max and driver_verdict(torch_cuda, driver_max) != "major"
                  and (all_facts.get("nvidia-driver") or {}).get("nvml") != "error")
    return torch_cuda, usable, capability


def rules(facts: dict, context: RuleContext) -> list:
    if facts.get("target_error"):
        return [Finding("bitsandbytes.target-unreadable", "warning",
                        f"could not inspect the target interpreter: {facts['target_error']}")]
    findings: list = []
    system = context.platform.get("system", "linux")
    distributions = facts.get("distributions") or {}
    conflicting = sorted(n for n in distributions if n != "bitsandbytes")
    if conflicting:
        findings.append(Finding(
            "bitsandbytes.conflicting-distribution", "error",
            "other bitsandbytes distributions are installed: "
            + ", ".join(f"{n} {distributions[n]}" for n in conflicting),
            "They install the same 'bitsandbytes' package folder and overwrite each other's files; old "
            "Windows builds fail with \"argument of type 'WindowsPath' is not iterable\" or load a "
            "'...cuda118.so'. Remove them and install the official package (Windows wheels since 0.43.0).",
            fixes=["bitsandbytes"], facts={"distributions": distributions}))
    if not facts.get("installed"):
        if not conflicting:
            findings.append(Finding("bitsandbytes.not-installed", "info",
                                    f"bitsandbytes is not installed in {facts.get('python')}",
                                    "Use --python to point llmdoctor at the environment that runs your models."))
        return findings
    version_text = facts.get("version") or "?"
    version = bnb.parse(version_text)
    files = facts.get("files") or []
    if facts.get("error"):
        findings.append(Finding("bitsandbytes.unreadable", "warning",
                                f"could not read {facts.get('location')}: {facts['error']}"))
        return findings
    if version is None:
        findings.append(Finding("bitsandbytes.unknown-version", "warning",
                                f"bitsandbytes at {facts.get('location')} has no readable version ({version_text})"))
        return findings
    if system == "windows" and version < bnb.WINDOWS_SINCE:
        findings.append(Finding(
            "bitsandbytes.windows-unsupported", "error",
            f"bitsandbytes {version_text} has no Windows support (official Windows wheels start at 0.43.0)",
            "Releases before 0.43 look for '.so' files even on Windows; community builds fill the gap badly. "
            "This is the root: nothing else about this install is judged until the release is replaced.",
            fixes=["bitsandbytes"]))
        return findings
    if not files:
        where = "a source checkout that was never compiled" if facts.get("source_checkout") else "a package"
        findings.append(Finding(
            "bitsandbytes.not-compiled", "error",
            f"bitsandbytes {version_text} at {facts.get('location')} is {where} with no native library",
            "Importing it fails with 'libbitsandbytes_cpu.so: cannot open shared object file' or "
            "'Forgot to compile the bitsandbytes library?'. Build it (cmake -DCOMPUTE_BACKEND=cuda -S . && "
            "make && pip install -e .) or install the published wheel.",
            fixes=["bitsandbytes"]))
        return findings + _diagnostics_findings(facts)
    torch = facts.get("torch") or {}
    torch_cuda, usable, capability = machine_view(context.all_facts, torch)
    override = facts.get("bnb_cuda_version")
    selection = bnb.select_library(version, system, files, torch_cuda, usable, capability, override,
                                   runtime=facts.get("cudart_scan"))
    facts_out = {"selection": selection.to_json(), "torch_cuda": text(torch_cuda) if torch_cuda else None}
    scan = facts.get("cudart_scan") or {}
    runtime = bnb.parse_cuda(scan.get("version"))
    if usable and torch_cuda and runtime and runtime != tuple(torch_cuda[:2]) and selection.exists:
        findings.append(Finding(
            "bitsandbytes.runtime-mismatch", "warning",
            f"bitsandbytes {version_text} loads {selection.name} for CUDA {text(runtime)}, from the libcudart it "
            f"found ({scan.get('found')}), while torch runs CUDA {text(torch_cuda)}",
            "Releases before 0.41 take the CUDA version from the first libcudart.so they find on "
            f"$CONDA_PREFIX/lib, LD_LIBRARY_PATH or other path variables ({scan.get('via')} here), not from torch. "
            "Two CUDA runtimes in one process end in 'CUDA error: invalid device function' or missing symbols. "
            "A release from 0.43 on follows torch.", fixes=["bitsandbytes"],
            facts={"runtime": text(runtime), "found": scan.get("found"), "via": scan.get("via")}))
    overridden = _override_findings(version, version_text, override, selection, torch_cuda, usable, files)
    findings += overridden
    stale = any(f.id == "bitsandbytes.override-stale" for f in overridden)  # already says what fails
    if selection.outcome == "fails" and not stale:
        findings.append(Finding(
            "bitsandbytes.no-binary", "error",
            f"bitsandbytes {version_text} ships no library for torch's CUDA {text(torch_cuda)}: "
            f"it looks for {selection.name}",
            f"Its rule: {selection.rule}. Users see: \"{selection.quoted[0]}\". Shipped CUDA builds: "
            + _shipped_text(files) + ".",
            fixes=["bitsandbytes"], facts=facts_out))
    elif selection.outcome == "cpu-fallback" and not stale:
        findings.append(Finding(
            "bitsandbytes.cpu-fallback", "error",
            f"bitsandbytes {version_text} will load the CPU library on this GPU machine: "
            f"{selection.name} is not shipped",
            f"Its rule: {selection.rule}. Users see: \"{selection.quoted[1]}\" and later "
            "\"undefined symbol: cget_col_row_stats\". Copying the CUDA file over the CPU one is not a fix.",
            fixes=["bitsandbytes"], facts=facts_out))
    if selection.exists:
        findings += _library_findings(facts, selection, version_text, torch_cuda, usable, capability, system)
    cpu_torch_on_gpu = bool(gpus(context.all_facts)) and torch.get("installed") and not torch.get("cuda")
    if selection.outcome == "cpu" and version < bnb.CPU_BACKEND_SINCE and cpu_torch_on_gpu:
        # the root is torch's CPU build: with a CUDA torch this release picks its CUDA library
        findings.append(Finding(
            "bitsandbytes.no-cpu-backend", "error",
            f"bitsandbytes {version_text} loads its CPU library because torch is a CPU build: it has no 4-bit or "
            "8-bit kernels there",
            "bitsandbytes follows torch's CUDA; with the CUDA build of torch this release loads its CUDA library. "
            "'llmdoctor fix --torch-cuda' repairs the root.",
            fixes=["torch-cuda"], caused_by="torch.cpu-only", facts=facts_out))
    elif selection.outcome == "cpu" and version < bnb.CPU_BACKEND_SINCE:
        findings.append(Finding(
            "bitsandbytes.no-cpu-backend", "error" if not torch_cuda else "warning",
            f"bitsandbytes {version_text} can do nothing without a GPU: its CPU library has no 4-bit or "
            "8-bit kernels (CPU support arrived in 0.46)",
            "Importing it warns \"compiled without GPU support\"; load_in_4bit / load_in_8bit and the 8-bit "
            "optimizers fail. " + ("torch here is a CPU build." if not torch_cuda else
                                   "torch will not see a GPU here."),
            fixes=["bitsandbytes"], facts=facts_out))
    if bnb.era(version) in ("runtime-scan", "legacy") and usable and not any(
            f.severity == "error" for f in findings):
        findings.append(Finding(
            "bitsandbytes.legacy-setup", "warning",
            f"bitsandbytes {version_text} uses the old CUDA setup (0.36-0.42), behind most "
            "\"CUDA Setup failed despite GPU being available\" reports",
            "It scans environment paths for libcudart.so, prints noisy warnings that hide the real cause, "
            "and leaves the library unloaded on any failure. 0.43.1 and later removed the scan.",
            fixes=["bitsandbytes"], facts=facts_out))
    if capability and capability < bnb.LLM_INT8_MIN_CAPABILITY and usable:
        findings.append(Finding(
            "bitsandbytes.old-gpu", "warning",
            f"the GPU's compute capability {text(capability)} is below 7.5: LLM.int8() (8-bit matmul) "
            "needs cuBLASLt int8 kernels",
            "4-bit (NF4/FP4) and 8-bit optimizers still work; on releases before 0.45 the '_nocublaslt' build "
            "is used and some report \"Error named symbol not found\" on 6.1/7.0 GPUs."))
    findings += _diagnostics_findings(facts)
    if not any(f.severity in ("warning", "error") for f in findings):
        findings.append(_healthy(version_text, selection, torch_cuda, facts))
    return findings


def _override_findings(version, version_text, override, selection, torch_cuda, usable, files) -> list:
    if override is None or (override == "" and version < bnb.Version("0.50.0")):
        return []
    if not (torch_cuda and usable):
        return [Finding("bitsandbytes.override-ignored", "info",
                        f"BNB_CUDA_VERSION={override} is set but has no effect without a usable GPU")]
    if selection.outcome == "fails":
        return [Finding(
            "bitsandbytes.override-stale", "error",
            f"BNB_CUDA_VERSION={override!r} makes bitsandbytes {version_text} load {selection.name}, "
            "which it does not ship" if override.isdigit() else
            f"BNB_CUDA_VERSION={override!r} is not a version: bitsandbytes {version_text} refuses it",
            f"Users see: \"{selection.quoted[0]}\". Unset it (bitsandbytes then follows torch's CUDA "
            f"{text(torch_cuda)}) or name a shipped build: {_shipped_text(files)}.",
            fixes=["bitsandbytes"], facts={"BNB_CUDA_VERSION": override, "looks_for": selection.name})]
    if selection.outcome == "cpu-fallback":
        return [Finding(
            "bitsandbytes.override-stale", "error",
            f"BNB_CUDA_VERSION={override} names {selection.name}, which bitsandbytes {version_text} does not "
            "ship: it falls back to the CPU library",
            "Unset it, or name a shipped build: " + _shipped_text(files) + ".",
            fixes=["bitsandbytes"], facts={"BNB_CUDA_VERSION": override, "looks_for": selection.name})]
    forced = bnb.split_digits(override)
    if forced and torch_cuda and forced[0] != torch_cuda[0]:
        return [Finding(
            "bitsandbytes.override-major", "error",
            f"BNB_CUDA_VERSION={override} loads a CUDA {forced[0]} library, but torch brings the CUDA "
            f"{torch_cuda[0]} runtime",
            "The library needs CUDA runtime files torch does not load; unset it unless you installed "
            f"a CUDA {forced[0]} runtime on purpose.",
            fixes=["bitsandbytes"], facts={"BNB_CUDA_VERSION": override})]
    return [Finding("bitsandbytes.override", "info",
                    f"BNB_CUDA_VERSION={override} overrides torch's CUDA {text(torch_cuda)}: "
                    f"bitsandbytes loads {selection.name}")]


def _library_findings(facts, selection, version_text, torch_cuda, usable, capability, system) -> list:
    findings = []
    library = (facts.get("libraries") or {}).get(selection.name) or {}
    missing = [m for m in library.get("missing", []) if not m.lower().startswith(WINDOWS_API_SETS)]
    if missing:
        legacy = bnb.era(bnb.parse(version_text)) in ("runtime-scan", "legacy")
        quoted = (f"{missing[0]}: cannot open shared object file: No such file or directory"
                  if system != "windows" else f"Could not find module '{selection.name}' (or one of its dependencies)")
        findings.append(Finding(
            "bitsandbytes.missing-dependency", "error" if selection.outcome != "cpu" else "warning",
            f"{selection.name} needs {', '.join(missing)}, which the loader will not find",
            f"Users see \"{quoted}\"" + (" and then \"CUDA Setup failed despite GPU being available\"" if legacy
                                         else "") + ". "
            + " ".join(f"{m} comes from {bnb.provider(m)}." for m in missing),
            fixes=["bitsandbytes"], facts={"library": selection.name, "missing": missing,
                                           "searched": {"LD_LIBRARY_PATH": facts.get("ld_library_path", ""),
                                                        "runpath": library.get("runpath", [])}}))
    if library.get("path_only"):
        findings.append(Finding(
            "bitsandbytes.dll-on-path-only", "error",
            f"{selection.name} needs {', '.join(library['path_only'])}, found only through PATH, which "
            "Python 3.8+ does not search for DLLs",
            "Install a torch CUDA build (its lib folder provides the CUDA DLLs) or put the DLLs beside "
            "the library; 'os.add_dll_directory' is what Python honours.",
            fixes=["bitsandbytes"],
            facts={"found_on_path": {d: library["found"].get(d) for d in library["path_only"]}}))
    sm, ptx = library.get("sm") or [], library.get("ptx") or []
    if usable and capability and (sm or ptx) and not _runs_on(capability, sm, ptx):
        findings.append(Finding(
            "bitsandbytes.arch-missing", "error",
            f"{selection.name} carries no kernels for this GPU (sm_{capability[0]}{capability[1]})",
            f"It is built for {', '.join(f'sm_{a}' for a in sm)}"
            + (f" and PTX {', '.join(f'compute_{a}' for a in ptx)}" if ptx else " (no PTX to JIT-compile)")
            + "; CUDA calls fail with \"no kernel image is available for execution on the device\". "
            "A build for another CUDA version, or a source build for this GPU, fixes it.",
            fixes=["bitsandbytes"], facts={"sm": sm, "ptx": ptx, "capability": text(capability)}))
    return findings


def _runs_on(capability: tuple, sm: list, ptx: list) -> bool:
    code = capability[0] * 10 + capability[1]
    if any(a // 10 == capability[0] and a <= code for a in sm):
        return True  # cubins run on later minors of the same major
    return any(a <= code for a in ptx)  # PTX is compiled by the driver for newer GPUs


def _shipped_text(files: list) -> str:
    versions = sorted(bnb.shipped_cuda(files))
    return ", ".join(f"{v[0]}.{v[1]}" for v in versions) or "none"


def _healthy(version_text, selection, torch_cuda, facts) -> Finding:
    library = (facts.get("libraries") or {}).get(selection.name) or {}
    arch = library.get("sm") or []
    span = f", sm_{arch[0]}-sm_{arch[-1]}" if arch else ""
    if selection.outcome == "cpu":
        return Finding("bitsandbytes.cpu", "ok",
                       f"bitsandbytes {version_text} will load {selection.name} (no GPU for torch: CPU backend)")
    via = f" (nearest to torch's CUDA {text(torch_cuda)})" if selection.fallback else ""
    return Finding("bitsandbytes.version", "ok",
                   f"bitsandbytes {version_text} will load {selection.name}{via}{span}",
                   facts={"selection": selection.to_json()})


def _diagnostics_findings(facts: dict) -> list:
    diagnostics = facts.get("diagnostics")
    if not diagnostics:
        return []
    if diagnostics.get("timed_out"):
        return [Finding("bitsandbytes.diagnostics-timeout", "warning",
                        f"'python -m bitsandbytes' did not finish in {diagnostics.get('duration_ms', 0) / 1000:.0f} s")]
    findings = []
    for marker in diagnostics.get("markers", []):
        if marker["severity"] == "ok":
            findings.append(Finding(f"bitsandbytes.{marker['id']}", "ok",
                                    f"python -m bitsandbytes: {marker['line']}"))
        else:
            findings.append(Finding(f"bitsandbytes.{marker['id']}", marker["severity"],
                                    f"python -m bitsandbytes says: {marker['line']}",
                                    "Last lines: " + " | ".join(diagnostics.get("tail", [])[-3:]),
                                    fixes=["bitsandbytes"]))
    if not findings and diagnostics.get("returncode") not in (0, None):
        tail = diagnostics.get("tail") or ["no output"]
        findings.append(Finding("bitsandbytes.diagnostics-failed", "error",
                                f"python -m bitsandbytes exited with {diagnostics['returncode']}: {tail[-1]}",
                                fixes=["bitsandbytes"]))
    return findings


# ----------------------------------------------------------------------------- smoke test

SMOKE = r"""
import json, sys
def say(status, message, **figures):
    print(json.dumps({"status": status, "message": message, "figures": figures})); sys.exit()
try:
    import torch
except Exception as exc:
    say("skipped", "torch is not importable: %s" % exc)
try:
    import bitsandbytes as bnb
    import bitsandbytes.functional as F
except Exception as exc:
    say("fail", "import bitsandbytes failed: %s" % str(exc).strip().splitlines()[-1][:300])
gpu = torch.cuda.is_available()
device = "cuda" if gpu else "cpu"
version = getattr(bnb, "__version__", "?")
done, figures = [], {"bitsandbytes": version, "torch": torch.__version__, "device": device}
torch.manual_seed(0)
try:
    x = torch.randn(256, 256, device=device, dtype=torch.float32)
    q, state = F.quantize_4bit(x, quant_type="nf4")
    error = (F.dequantize_4bit(q, state) - x).abs().mean().item()
    figures["nf4_mean_abs_error"] = round(error, 4)
    if not error < 0.15:
        say("fail", "4-bit NF4 round trip error %.3f is above 0.15" % error, **figures)
    done.append("4-bit round trip (error %.3f)" % error)
except Exception as exc:
    if gpu:
        say("fail", "4-bit quantize/dequantize failed: %s" % str(exc).strip().splitlines()[-1][:300], **figures)
    say("skipped", "bitsandbytes %s has no CPU kernels for 4-bit quantization (%s); no GPU here"
        % (version, str(exc).strip().splitlines()[-1][:120]), **figures)
try:
    dtype = torch.float16 if gpu else torch.float32
    layer = torch.nn.Linear(256, 128, bias=False).to(dtype)
    reference = torch.randn(8, 256, dtype=dtype)
    expected = (reference @ layer.weight.t()).float()
    int8 = bnb.nn.Linear8bitLt(256, 128, bias=False, has_fp16_weights=False, threshold=6.0)
    int8.weight = bnb.nn.Int8Params(layer.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
    int8 = int8.to(device)
    got = int8(reference.to(device)).float().cpu()
    relative = ((got - expected).norm() / expected.norm()).item()
    figures["int8_relative_error"] = round(relative, 4)
    if not relative < 0.05:
        say("fail", "8-bit matmul (Linear8bitLt) differs from the reference by %.1f%%" % (relative * 100), **figures)
    done.append("8-bit matmul (%.2f%% off)" % (relative * 100))
except Exception as exc:
    if gpu:
        say("fail", "8-bit matmul (Linear8bitLt) failed: %s" % str(exc).strip().splitlines()[-1][:300], **figures)
    done.append("8-bit matmul: not on this CPU backend")
try:
    parameter = torch.nn.Parameter(torch.randn(4096, device=device))
    before = parameter.detach().clone()
    optimizer = bnb.optim.Adam8bit([parameter], lr=0.01)
    parameter.grad = torch.randn_like(parameter)
    optimizer.step()
    changed = (parameter.detach() - before).abs().max().item()
    if not changed > 0:
        say("fail", "8-bit Adam step left the parameters unchanged", **figures)
    done.append("8-bit Adam step")
except Exception as exc:
    if gpu:
        say("fail", "8-bit Adam step failed: %s" % str(exc).strip().splitlines()[-1][:300], **figures)
    done.append("8-bit Adam: not on this CPU backend")
where = torch.cuda.get_device_name(0) if gpu else "CPU (no GPU)"
say("pass", "bitsandbytes %s on %s: %s" % (version, where, ", ".join(done)), **figures)
"""


def smoke_bitsandbytes(options: dict) -> dict:
    import sys

    from llmdoctor.smoke import run_in_target

    return run_in_target(options.get("python") or sys.executable, ["-c", SMOKE], float(options.get("timeout", 240)),
                         "bitsandbytes")


BNB_INSTALL = "https://huggingface.co/docs/bitsandbytes/main/en/installation"
BNB_ISSUES = "https://github.com/bitsandbytes-foundation/bitsandbytes/issues/"


def _diagnostics_kind(marker: str, severity: str, summary: str, why: str = "", *issues: int) -> FindingKind:
    """A line 'python -m bitsandbytes' printed under --deep (see MARKERS)."""
    return FindingKind(f"bitsandbytes.{marker}", severity, f"python -m bitsandbytes: {summary}", why=why,
                       fix="" if severity == "ok" else "See the findings above it for the cause.",
                       fixes=() if severity == "ok" else ("bitsandbytes",),
                       references=(BNB_INSTALL, *(f"{BNB_ISSUES}{n}" for n in issues)))


FINDINGS = (
    FindingKind("bitsandbytes.version", "ok", "the bitsandbytes library that will load, and why",
                references=(BNB_INSTALL,)),
    FindingKind("bitsandbytes.cpu", "ok", "bitsandbytes will load its CPU backend (no GPU for torch)",
                references=(BNB_INSTALL,)),
    FindingKind(
        "bitsandbytes.target-unreadable", "warning", "the target interpreter could not be inspected",
        why="Its packages are unknown, so bitsandbytes is not judged; the message says why.",
        fix="Point --python at a working interpreter of the environment that runs your models.",
    ),
    FindingKind(
        "bitsandbytes.not-installed", "info", "bitsandbytes is not installed in the target interpreter",
        fix="Use --python to point llmdoctor at the environment that runs your models.",
    ),
    FindingKind(
        "bitsandbytes.unreadable", "warning", "the bitsandbytes package folder could not be read",
        why="Its native libraries cannot be listed, so the one that would load is unknown.",
        fix="Check the folder's permissions, or reinstall.",
    ),
    FindingKind(
        "bitsandbytes.unknown-version", "warning", "bitsandbytes has no readable version",
        why="Which library a release loads depends on its version; a damaged install hides it.",
        fix="Reinstall bitsandbytes.", fixes=("bitsandbytes",),
    ),
    FindingKind(
        "bitsandbytes.conflicting-distribution", "error", "other bitsandbytes distributions are installed beside it",
        why="bitsandbytes-windows and community wheels install the same package folder and overwrite each "
            "other; old Windows builds fail with \"argument of type 'WindowsPath' is not iterable\".",
        fix="Uninstall them and install the official package (Windows wheels since 0.43.0).",
        fixes=("bitsandbytes",), references=(BNB_INSTALL, f"{BNB_ISSUES}1131"),
    ),
    FindingKind(
        "bitsandbytes.windows-unsupported", "error", "this bitsandbytes release has no Windows support",
        why="Releases before 0.43 look for '.so' files even on Windows.",
        fix="Install bitsandbytes 0.43 or later.", fixes=("bitsandbytes",),
        references=(BNB_INSTALL, f"{BNB_ISSUES}1131"),
    ),
    FindingKind(
        "bitsandbytes.not-compiled", "error", "bitsandbytes is a source checkout with no native library",
        why="Importing it fails with 'libbitsandbytes_cpu.so: cannot open shared object file' or 'Forgot to "
            "compile the bitsandbytes library?'.",
        fix="Build it (cmake -DCOMPUTE_BACKEND=cuda -S . && make && pip install -e .) or install the wheel.",
        fixes=("bitsandbytes",), references=(BNB_INSTALL, f"{BNB_ISSUES}1651"),
    ),
    FindingKind(
        "bitsandbytes.runtime-mismatch", "warning",
        "an old bitsandbytes picks its CUDA from a libcudart, not from torch",
        why="Releases before 0.41 take the CUDA version from the first libcudart.so on $CONDA_PREFIX/lib or "
            "LD_LIBRARY_PATH; two CUDA runtimes in one process end in 'invalid device function'.",
        fix="Upgrade bitsandbytes.", fixes=("bitsandbytes",), references=(f"{BNB_ISSUES}778", f"{BNB_ISSUES}1041"),
    ),
    FindingKind(
        "bitsandbytes.no-binary", "error", "bitsandbytes ships no library for torch's CUDA version",
        why="Users see 'Required library version not found' or 'Configured CUDA binary not found'.",
        fix="Upgrade bitsandbytes to a release built for that CUDA, or set BNB_CUDA_VERSION to a shipped build "
            "of the same major.",
        fixes=("bitsandbytes",), references=(BNB_INSTALL, f"{BNB_ISSUES}1688", f"{BNB_ISSUES}1848"),
    ),
    FindingKind(
        "bitsandbytes.cpu-fallback", "error", "bitsandbytes will load its CPU library on a GPU machine",
        why="Users see 'compiled without GPU support' and later 'undefined symbol: cget_col_row_stats'; "
            "copying the CUDA file over the CPU one is not a fix.",
        fix="Install a bitsandbytes release that ships a library for torch's CUDA.", fixes=("bitsandbytes",),
        references=(f"{BNB_ISSUES}399", f"{BNB_ISSUES}680"),
    ),
    FindingKind(
        "bitsandbytes.no-cpu-backend", "error", "bitsandbytes can do nothing here: no GPU and no CPU kernels",
        severities=("warning", "error"),
        why="Before 0.46 its CPU library has no 4-bit or 8-bit kernels; load_in_4bit / load_in_8bit fail. "
            "When torch is a CPU build on a GPU machine, that is the root.",
        fix="Install torch's CUDA build (a consequence of torch.cpu-only), or bitsandbytes 0.46+ for CPU.",
        fixes=("torch-cuda", "bitsandbytes"), references=(BNB_INSTALL,),
    ),
    FindingKind(
        "bitsandbytes.legacy-setup", "warning", "bitsandbytes 0.36-0.42 uses the old CUDA setup",
        why="It scans environment paths for libcudart.so, prints noisy warnings that hide the real cause, and "
            "leaves the library unloaded: behind most 'CUDA Setup failed despite GPU being available'.",
        fix="Upgrade to 0.43.1 or later.", fixes=("bitsandbytes",),
        references=(f"{BNB_ISSUES}778", f"{BNB_ISSUES}1041"),
    ),
    FindingKind(
        "bitsandbytes.old-gpu", "warning", "the GPU's compute capability is below 7.5",
        why="LLM.int8() needs cuBLASLt int8 kernels; 4-bit and the 8-bit optimizers still work. Releases "
            "before 0.45 use a '_nocublaslt' build that some report failing on 6.1/7.0 GPUs.",
        fix="Use 4-bit quantisation, or bitsandbytes 0.45+.", references=(f"{BNB_ISSUES}138", f"{BNB_ISSUES}615"),
    ),
    FindingKind("bitsandbytes.override", "info", "BNB_CUDA_VERSION chooses the library instead of torch's CUDA",
                references=(BNB_INSTALL,)),
    FindingKind("bitsandbytes.override-ignored", "info", "BNB_CUDA_VERSION is set but has no effect without a GPU",
                references=(BNB_INSTALL,)),
    FindingKind(
        "bitsandbytes.override-stale", "error", "BNB_CUDA_VERSION names a build this release does not ship",
        why="bitsandbytes loads exactly the file it names, with no fallback (or refuses a value that is not "
            "digits); a value left from an older setup breaks a newer one.",
        fix="Unset it, or name a shipped build.", fixes=("bitsandbytes",),
        references=(f"{BNB_ISSUES}1180", f"{BNB_ISSUES}1848"),
    ),
    FindingKind(
        "bitsandbytes.override-major", "error", "BNB_CUDA_VERSION loads another CUDA major than torch's",
        why="The library needs CUDA runtime files that torch does not load.",
        fix="Unset it unless you installed that CUDA runtime on purpose.", fixes=("bitsandbytes",),
        references=(BNB_INSTALL,),
    ),
    FindingKind(
        "bitsandbytes.missing-dependency", "error",
        "the library bitsandbytes loads needs a file the loader will not find",
        severities=("warning", "error"),
        why="Users see 'libcusparse.so.11: cannot open shared object file' (and, on old releases, 'CUDA Setup "
            "failed despite GPU being available').",
        fix="Install the package that provides it (the finding names it), or align the CUDA majors.",
        fixes=("bitsandbytes",), references=(f"{BNB_ISSUES}1452", f"{BNB_ISSUES}1199"),
    ),
    FindingKind(
        "bitsandbytes.dll-on-path-only", "error", "Windows: a DLL the library needs is found only through PATH",
        why="Python 3.8+ does not search PATH for the dependencies of extension DLLs.",
        fix="Install a torch CUDA build (its lib folder provides the CUDA DLLs).", fixes=("bitsandbytes",),
        references=("https://docs.python.org/3/library/os.html#os.add_dll_directory",),
    ),
    FindingKind(
        "bitsandbytes.arch-missing", "error", "the library carries no kernels for this GPU",
        why="CUDA calls fail with 'no kernel image is available for execution on the device'.",
        fix="Install a bitsandbytes build for the GPU's architecture (or build it on the machine).",
        fixes=("bitsandbytes",), references=(BNB_INSTALL, f"{BNB_ISSUES}1937"),
    ),
    FindingKind(
        "bitsandbytes.diagnostics-timeout", "warning", "'python -m bitsandbytes' did not finish in time (--deep)",
        why="Its self-test hung: often a GPU that does not answer.",
        fix="See the nvidia-driver findings; run 'python -m bitsandbytes' by hand to see where it stops.",
        references=(BNB_INSTALL,),
    ),
    FindingKind(
        "bitsandbytes.diagnostics-failed", "error", "'python -m bitsandbytes' failed (--deep)",
        why="Its own self-test (an 8-bit optimizer step on the GPU) did not pass: bitsandbytes will fail "
            "in training and quantised loading too.",
        fix="See the other bitsandbytes findings for the cause.", fixes=("bitsandbytes",), references=(BNB_INSTALL,),
    ),
    _diagnostics_kind("diagnostics-success", "ok", "its self-test passed (SUCCESS!)"),
    _diagnostics_kind("diagnostics-cpu", "ok", "its CPU library loaded"),
    _diagnostics_kind("diagnostics-setup-failed", "error", "CUDA Setup failed despite GPU being available",
                      "Old releases print it for any failure to load their CUDA library.", 778),
    _diagnostics_kind("diagnostics-missing-library", "error", "a library could not be opened",
                      "A dependency of the native library is missing.", 1452),
    _diagnostics_kind("diagnostics-cpu-library", "warning", "compiled without GPU support",
                      "The CPU library loaded on a machine meant to use the GPU.", 399),
    _diagnostics_kind("diagnostics-no-binary", "error", "no binary for the CUDA version",
                      "It ships no library for torch's CUDA.", 1688),
    _diagnostics_kind("diagnostics-bad-override", "error", "BNB_CUDA_VERSION is not digits",
                      "The override must look like 124.", 1848),
    _diagnostics_kind("diagnostics-not-compiled", "error", "the library was never compiled",
                      "A source checkout without its CMake build.", 1651),
    _diagnostics_kind("diagnostics-arch", "error", "no kernel image is available for the device",
                      "The build has no kernels for this GPU.", 1937),
    _diagnostics_kind("diagnostics-undefined-symbol", "warning", "undefined symbol",
                      "A library of another build or release was loaded.", 680),
)


CHECK = Check(
    id="bitsandbytes",
    title="bitsandbytes",
    probe=probe,
    rules=rules,
    order=65,
    timeout=10.0,
    deep_timeout=DEEP_TIMEOUT_S,
    smoke=(SmokeTest("bitsandbytes", "4-bit round trip, 8-bit matmul and an 8-bit Adam step",
                     "llmdoctor.checks.bitsandbytes:smoke_bitsandbytes", timeout=300.0),),
    requires=("nvidia-driver",),
    findings=FINDINGS,
)
