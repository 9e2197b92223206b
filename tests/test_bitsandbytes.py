"""The `bitsandbytes` check and fix: each release's own library rule over fake site-packages
trees (real ELF files built with gcc), dependency resolution against real shared objects,
fat-binary architectures from a real nvcc build, recorded Windows facts, and the fix's plans.
The real-wheel integration tests are in test_bitsandbytes_real.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from bnb_trees import SHIPPED, TORCH_BUILDS, compile_library, make_bitsandbytes, make_distribution, make_torch, target

from llmdoctor.actions import PipInstall, PipUninstall, ReplaceLine, SetShellBlock, WriteFile
from llmdoctor.checks import bitsandbytes, nvidia_driver
from llmdoctor.config import Config
from llmdoctor.fixes import bitsandbytes as bnb_fix
from llmdoctor.knowledge import bitsandbytes as bnb
from llmdoctor.models import FixContext, RuleContext

from gpu_fakes import RTX_4090, FakeNVML

LINUX = {"system": "linux", "shell": "/bin/bash", "home": "/home/ada"}
WINDOWS = {"system": "windows", "shell": "powershell", "home": "C:\\Users\\ada"}
PASCAL = dict(RTX_4090, name="NVIDIA GeForce GTX 1080 Ti", cc=(6, 1))
BLACKWELL = dict(RTX_4090, name="NVIDIA GeForce RTX 5090", cc=(12, 0))

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build real shared objects")


def gpu_machine(gpu=RTX_4090, cuda=13000):
    return nvidia_driver.probe_nvml(FakeNVML(cuda=cuda, gpus=[gpu]))


def diagnose(facts, driver, platform=LINUX):
    context = RuleContext(platform=platform, config=Config(), all_facts={"nvidia-driver": driver,
                                                                         "bitsandbytes": facts})
    return bitsandbytes.rules(facts, context)


def problems(findings) -> set:
    return {f.id.split(".", 1)[1] for f in findings if f.severity in ("warning", "error")}


def fix_plan(facts, driver, platform=LINUX):
    findings = diagnose(facts, driver, platform)
    return bnb_fix.plan(FixContext(facts={"nvidia-driver": driver, "bitsandbytes": facts}, findings=findings,
                                   platform=platform, python="/usr/bin/python3"))


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    return compile_library(tmp_path_factory.mktemp("stub"), "libstub.so")


@pytest.fixture(scope="module")
def sites(tmp_path_factory, stub):
    """One site-packages folder per bitsandbytes release, one per torch build."""
    root = tmp_path_factory.mktemp("sites")
    releases = {}
    for version in SHIPPED:
        make_bitsandbytes(root / f"bnb-{version}", version, stub)
        releases[version] = root / f"bnb-{version}"
    builds = {}
    for cuda in TORCH_BUILDS:
        make_torch(root / f"torch-{cuda}", cuda)
        builds[cuda] = root / f"torch-{cuda}"
    return releases, builds


def probe(sites, version, cuda, environment=None):
    releases, builds = sites
    packages = {"bitsandbytes": version, "torch": TORCH_BUILDS[cuda].split("+")[0]}
    return bitsandbytes.probe_bitsandbytes(target(sys.executable, [releases[version], builds[cuda]], packages),
                                           dict(environment or {}), windows=False)


# ------------------------------------------------------------------ each release's rule, in a matrix

CPU = "libbitsandbytes_cpu.so"
# (release, torch CUDA) -> (the file it loads or looks for, the problems found), BNB_CUDA_VERSION unset,
# on a machine with an RTX 4090 and a driver for CUDA 13.0. From each release's own cextension.py.
UNSET = {
    # 0.41 / 0.42: torch's exact version or "CUDA Setup failed"; no kernels at all on the CPU
    **{(v, None): (CPU, {"no-cpu-backend"}) for v in ("0.41.3", "0.42.0")},
    **{(v, c): (f"libbitsandbytes_cuda{c.replace('.', '')}.so", {"legacy-setup"})
       for v in ("0.41.3", "0.42.0") for c in ("11.8", "12.1")},
    **{(v, c): (f"libbitsandbytes_cuda{c.replace('.', '')}.so", {"no-binary"})
       for v in ("0.41.3", "0.42.0") for c in ("12.6", "12.8", "12.9", "13.0")},
    # 0.43 - 0.45: exact, else the CPU library ("compiled without GPU support")
    ("0.43.1", None): (CPU, {"no-cpu-backend"}),
    ("0.43.1", "11.8"): ("libbitsandbytes_cuda118.so", set()),
    ("0.43.1", "12.1"): ("libbitsandbytes_cuda121.so", set()),
    **{("0.43.1", c): (f"libbitsandbytes_cuda{c.replace('.', '')}.so", {"cpu-fallback"})
       for c in ("12.6", "12.8", "12.9", "13.0")},
    ("0.45.5", None): (CPU, {"no-cpu-backend"}),
    **{("0.45.5", c): (f"libbitsandbytes_cuda{c.replace('.', '')}.so", set())
       for c in ("11.8", "12.1", "12.6", "12.8")},
    ("0.45.5", "12.9"): ("libbitsandbytes_cuda129.so", {"cpu-fallback"}),
    ("0.45.5", "13.0"): ("libbitsandbytes_cuda130.so", {"cpu-fallback"}),
    # 0.46 - 0.49: exact or "Configured CUDA binary not found"; a real CPU backend
    ("0.46.1", None): (CPU, set()),
    **{("0.46.1", c): (f"libbitsandbytes_cuda{c.replace('.', '')}.so", set())
       for c in ("11.8", "12.1", "12.6", "12.8", "12.9")},
    ("0.46.1", "13.0"): ("libbitsandbytes_cuda130.so", {"no-binary"}),
    # 0.50: exact, else the nearest shipped build of the same major
    ("0.50.2", None): (CPU, set()),
    **{("0.50.2", c): (f"libbitsandbytes_cuda{c.replace('.', '')}.so", set())
       for c in ("11.8", "12.1", "12.6", "12.8", "13.0")},
    ("0.50.2", "12.9"): ("libbitsandbytes_cuda128.so", set()),
}


def expected(version, cuda, override):
    """What BNB_CUDA_VERSION does to UNSET's answer, per the rules in llmdoctor.knowledge.bitsandbytes' docstring."""
    name, found = UNSET[(version, cuda)]
    if override is None or cuda is None:
        return name, found  # unset, or no GPU for torch: the variable is never read
    if override == "":
        if version == "0.50.2":
            return f"libbitsandbytes_cuda{cuda.replace('.', '')}.so", {"override-stale"}  # refused outright
        return name, found  # before 0.50 an empty value counts as unset
    name = f"libbitsandbytes_cuda{override}.so"
    if override not in SHIPPED[version]:
        return name, {"override-stale"}
    if cuda.split(".")[0] != override[:2]:
        return name, {"override-major"}
    return name, ({"legacy-setup"} if version in ("0.41.3", "0.42.0") else set())


MATRIX = [(v, c, o) for v in SHIPPED for c in TORCH_BUILDS for o in (None, "121", "129", "")]


@pytest.mark.parametrize("version,cuda,override", MATRIX,
                         ids=[f"{v}-torch_{c or 'cpu'}-bnb_cuda_{o if o is not None else 'unset'}"
                              for v, c, o in MATRIX])
def test_each_release_loads_what_its_rule_says(sites, version, cuda, override):
    environment = {} if override is None else {"BNB_CUDA_VERSION": override}
    facts = probe(sites, version, cuda, environment)
    assert facts["installed"] and facts["version"] == version
    driver = gpu_machine()
    findings = diagnose(facts, driver)
    name, found = expected(version, cuda, override)
    torch_cuda, usable, capability = bitsandbytes.machine_view({"nvidia-driver": driver}, facts["torch"])
    selection = bnb.select_library(bnb.Version(version), "linux", facts["files"], torch_cuda, usable, capability,
                                   facts["bnb_cuda_version"])
    if name:
        assert selection.name == name
    assert problems(findings) == found, [f.message for f in findings]
    if not found:
        assert any(f.severity == "ok" for f in findings)
        if name != CPU:  # the library that will load was read: a real ELF needing only libc
            assert facts["libraries"][name]["missing"] == [] and "libc.so.6" in facts["libraries"][name]["needed"]


def test_messages_quote_what_users_see(sites):
    driver = gpu_machine()
    nearest = {f.id: f for f in diagnose(probe(sites, "0.50.2", "12.9"), driver)}
    assert nearest["bitsandbytes.version"].message == (
        "bitsandbytes 0.50.2 will load libbitsandbytes_cuda128.so (nearest to torch's CUDA 12.9)")
    exact = {f.id: f for f in diagnose(probe(sites, "0.46.1", "13.0"), driver)}["bitsandbytes.no-binary"]
    assert "Configured CUDA binary not found" in exact.details and "12.9" in exact.details
    fallback = {f.id: f for f in diagnose(probe(sites, "0.45.5", "12.9"), driver)}["bitsandbytes.cpu-fallback"]
    assert "compiled without GPU support" in fallback.details
    legacy = {f.id: f for f in diagnose(probe(sites, "0.42.0", "12.6"), driver)}["bitsandbytes.no-binary"]
    assert "CUDA SETUP: Required library version not found: libbitsandbytes_cuda126.so" in legacy.details
    empty = {f.id: f for f in diagnose(probe(sites, "0.50.2", "12.8", {"BNB_CUDA_VERSION": ""}), driver)}
    assert "value must be digits only" in empty["bitsandbytes.override-stale"].details


def test_no_gpu_means_the_cpu_library_for_every_release(sites):
    no_driver = nvidia_driver.probe_nvml(FakeNVML(init_error=FakeNVML.NVML_ERROR_LIBRARY_NOT_FOUND))
    for version in SHIPPED:
        findings = diagnose(probe(sites, version, "12.8"), no_driver)
        assert problems(findings) == ({"no-cpu-backend"} if bnb.parse(version) < bnb.CPU_BACKEND_SINCE else set())
        if "no-cpu-backend" in problems(findings):
            assert next(f for f in findings if f.id.endswith("no-cpu-backend")).severity == "warning"


def test_old_gpus_get_the_nocublaslt_build_and_the_043_rstrip_bug(sites):
    pascal = gpu_machine(PASCAL)
    facts = probe(sites, "0.41.3", "11.8")
    torch_cuda, usable, capability = bitsandbytes.machine_view({"nvidia-driver": pascal}, facts["torch"])
    assert capability == (6, 1)
    old = bnb.select_library(bnb.Version("0.41.3"), "linux", facts["files"], torch_cuda, usable, capability, None)
    assert old.name == "libbitsandbytes_cuda118_nocublaslt.so" and old.exists
    assert "old-gpu" in problems(diagnose(facts, pascal))
    # 0.43's rstrip of trailing digits cannot touch "..._nocublaslt": the override is appended
    overridden = probe(sites, "0.43.1", "11.8", {"BNB_CUDA_VERSION": "121"})
    findings = {f.id: f for f in diagnose(overridden, pascal)}
    assert "libbitsandbytes_cuda118_nocublaslt121.so" in findings["bitsandbytes.override-stale"].message
    # 0.45 dropped _nocublaslt: the regular build, with the old-GPU caveat
    modern = probe(sites, "0.45.5", "12.1")
    assert problems(diagnose(modern, pascal)) == {"old-gpu"}
    torch_cuda, usable, capability = bitsandbytes.machine_view({"nvidia-driver": pascal}, modern["torch"])
    assert bnb.select_library(bnb.Version("0.45.5"), "linux", modern["files"], torch_cuda, usable, capability,
                              None).name == "libbitsandbytes_cuda121.so"


# ------------------------------------------------------------------ distributions and source checkouts


def test_conflicting_distribution_and_its_fix(tmp_path, stub):
    make_bitsandbytes(tmp_path / "site", "0.42.0", stub)
    make_distribution(tmp_path / "site", "bitsandbytes-cuda117", "0.26.0")
    make_torch(tmp_path / "torch", "12.1")
    facts = bitsandbytes.probe_bitsandbytes(target(sys.executable, [tmp_path / "site", tmp_path / "torch"], {
        "bitsandbytes": "0.42.0", "bitsandbytes-cuda117": "0.26.0", "torch": "2.5.1"}), {}, windows=False)
    assert facts["distributions"] == {"bitsandbytes": "0.42.0", "bitsandbytes-cuda117": "0.26.0"}
    plan = fix_plan(facts, gpu_machine())
    uninstall, install = plan.actions
    assert uninstall == PipUninstall(sys.executable, ("bitsandbytes-cuda117", "bitsandbytes"))
    assert install.requirements == ("bitsandbytes==0.50.2", "torch==2.5.1+cu121")


def test_source_checkout_never_compiled(tmp_path):
    checkout = tmp_path / "bitsandbytes-src"
    (checkout / "bitsandbytes").mkdir(parents=True)
    (checkout / "bitsandbytes" / "__init__.py").write_text('__version__ = "0.51.0.dev0"\n')
    (checkout / "CMakeLists.txt").write_text("project(bitsandbytes)\n")
    make_torch(tmp_path / "torch", "12.8")
    facts = bitsandbytes.probe_bitsandbytes(target(sys.executable, [checkout, tmp_path / "torch"], {}), {},
                                            windows=False)
    assert facts["source_checkout"] and facts["files"] == [] and facts["version"] == "0.51.0.dev0"
    findings = {f.id: f for f in diagnose(facts, gpu_machine())}
    assert "a source checkout that was never compiled" in findings["bitsandbytes.not-compiled"].message
    plan = fix_plan(facts, gpu_machine())
    (script,) = plan.actions
    assert isinstance(script, WriteFile) and script.path.endswith("build-bitsandbytes.sh")
    assert f"src={checkout}" in script.content and "cmake -DCOMPUTE_BACKEND=cuda -DCOMPUTE_CAPABILITY=89 -S ." \
        in script.content and "-m pip install -e ." in script.content
    assert plan.manual_steps == [f"bash {script.path}   # clones and compiles for several minutes"]


def test_no_wheel_for_this_cuda_writes_the_source_build_script(sites):
    """torch for CUDA 13.2 beside 0.41.3: no release before 0.50 has a 13.x build, and
    0.50.2's 132 build needs torch >= 2.4 - which it is, so the upgrade wins; a torch 2.1
    with CUDA 13 does not exist, so use an unusual major instead."""
    facts = probe(sites, "0.50.2", "13.0")
    facts["torch"] = dict(facts["torch"], cuda="14.0", version="2.15.0+cu140")
    plan = fix_plan(facts, gpu_machine(cuda=14000))
    assert [type(a) for a in plan.actions] == [WriteFile]
    assert "no published wheel loads here" in plan.notes[0]


# ------------------------------------------------------------------ dependencies, for real


@pytest.fixture
def cuda118_with_cusparse(tmp_path):
    """A 0.45.5 install whose CUDA 11.8 library really needs libcusparse.so.11, which lives
    only in an unrelated conda env's lib folder."""
    conda_lib = tmp_path / "conda" / "lib"
    cusparse = compile_library(conda_lib, "libcusparse.so.11", soname="libcusparse.so.11")
    site = tmp_path / "site"
    make_bitsandbytes(site, "0.45.5", cusparse, files=[])
    package = site / "bitsandbytes"
    compile_library(package, "libbitsandbytes_cpu.so")
    compile_library(package, "libbitsandbytes_cuda118.so", needs=(cusparse,))
    make_torch(tmp_path / "torch", "11.8")
    return target(sys.executable, [site, tmp_path / "torch"], {"bitsandbytes": "0.45.5", "torch": "2.7.1"}), \
        conda_lib


def test_missing_dependency_is_named_with_where_it_is(cuda118_with_cusparse, tmp_path):
    probe_target, conda_lib = cuda118_with_cusparse
    environment = {"CONDA_PREFIX": str(conda_lib.parent), "HOME": str(tmp_path / "home")}
    facts = bitsandbytes.probe_bitsandbytes(probe_target, environment, windows=False)
    library = facts["libraries"]["libbitsandbytes_cuda118.so"]
    assert library["missing"] == ["libcusparse.so.11"]
    assert library["candidates"] == {"libcusparse.so.11": [str(conda_lib)]}
    finding = {f.id: f for f in diagnose(facts, gpu_machine())}["bitsandbytes.missing-dependency"]
    assert finding.severity == "error"
    assert "libcusparse.so.11: cannot open shared object file" in finding.details
    assert "nvidia-cusparse-cu11" in finding.details
    plan = fix_plan(facts, gpu_machine(), dict(LINUX, home=str(tmp_path / "home")))
    (block,) = plan.actions
    assert isinstance(block, SetShellBlock) and block.path == str(tmp_path / "home" / ".bashrc")
    shell = subprocess.run(["bash", "--norc", "-c", "\n".join(block.lines) + '\necho "$LD_LIBRARY_PATH"'],
                           capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]})
    assert shell.stdout.strip() == str(conda_lib)  # what a new terminal gets
    # what the block does, the resolver honours: the same library is then found
    environment["LD_LIBRARY_PATH"] = str(conda_lib)
    fixed = bitsandbytes.probe_bitsandbytes(probe_target, environment, windows=False)
    assert fixed["libraries"]["libbitsandbytes_cuda118.so"]["missing"] == []
    assert problems(diagnose(fixed, gpu_machine())) == set()


def test_missing_dependency_nowhere_installs_nvidias_wheel(cuda118_with_cusparse, tmp_path):
    probe_target, _ = cuda118_with_cusparse
    facts = bitsandbytes.probe_bitsandbytes(probe_target, {}, windows=False)
    assert facts["libraries"]["libbitsandbytes_cuda118.so"]["candidates"] == {"libcusparse.so.11": []}
    plan = fix_plan(facts, gpu_machine(), dict(LINUX, home=str(tmp_path / "home")))
    install, block = plan.actions
    assert install == PipInstall("/usr/bin/python3" if not facts["python"] else facts["python"],
                                 ("nvidia-cusparse-cu11",))
    site = probe_target["site_packages"][0]
    assert any(f"{site}/nvidia/cusparse/lib" in line for line in block.lines)


def test_a_conda_pythons_own_rpath_finds_its_lib_folder(cuda118_with_cusparse, tmp_path):
    """ld.so searches the executable's DT_RPATH for libraries without a RUNPATH: a conda
    python ($ORIGIN/../lib) finds libraries in the env's lib folder with no LD_LIBRARY_PATH."""
    probe_target, conda_lib = cuda118_with_cusparse
    bin_folder = conda_lib.parent / "bin"
    bin_folder.mkdir()
    (bin_folder / "main.c").write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-o", str(bin_folder / "python3.11"), str(bin_folder / "main.c"),
                    "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib"], check=True, timeout=60)
    conda_target = dict(probe_target, executable=str(bin_folder / "python3.11"))
    facts = bitsandbytes.probe_bitsandbytes(conda_target, {}, windows=False)
    library = facts["libraries"]["libbitsandbytes_cuda118.so"]
    assert library["missing"] == [] and library["found"]["libcusparse.so.11"] == str(conda_lib / "libcusparse.so.11")


# ------------------------------------------------------------------ GPU architectures, from a real nvcc build


NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)


@pytest.mark.skipif(NVCC is None, reason="needs nvcc")
def test_fat_binary_architectures_decide_arch_missing(tmp_path, stub):
    source = tmp_path / "kernel.cu"
    source.write_text("__global__ void scale(float *x) { x[threadIdx.x] *= 2.0f; }\n"
                      "extern \"C\" void launch(float *x) { scale<<<1, 32>>>(x); }\n")
    site = tmp_path / "site"
    make_bitsandbytes(site, "0.50.2", stub, files=["libbitsandbytes_cpu.so"])
    subprocess.run([NVCC, "-shared", "-Xcompiler", "-fPIC", "-o", str(site / "bitsandbytes" /
                                                                        "libbitsandbytes_cuda130.so"),
                    "-gencode", "arch=compute_75,code=sm_75", "-gencode", "arch=compute_90,code=compute_90",
                    str(source)], check=True, capture_output=True, timeout=300)
    make_torch(tmp_path / "torch", "13.0")
    facts = bitsandbytes.probe_bitsandbytes(target(sys.executable, [site, tmp_path / "torch"], {
        "bitsandbytes": "0.50.2", "torch": "2.13.0"}), {}, windows=False)
    library = facts["libraries"]["libbitsandbytes_cuda130.so"]
    assert library["sm"] == [75] and library["ptx"] == [90]
    ada = {f.id: f for f in diagnose(facts, gpu_machine(RTX_4090))}  # sm_89: no cubin, PTX 9.0 too new
    assert "no kernels for this GPU (sm_89)" in ada["bitsandbytes.arch-missing"].message
    assert "no kernel image is available" in ada["bitsandbytes.arch-missing"].details
    assert "arch-missing" not in problems(diagnose(facts, gpu_machine(BLACKWELL)))  # JIT from PTX 9.0
    assert "arch-missing" not in problems(diagnose(facts, gpu_machine(dict(RTX_4090, cc=(7, 5)))))
    plan = fix_plan(facts, gpu_machine(RTX_4090))
    assert any(isinstance(a, WriteFile) and "-DCOMPUTE_CAPABILITY=89" in a.content for a in plan.actions)


# ------------------------------------------------------------------ BNB_CUDA_VERSION where it is set


def test_stale_override_in_bashrc_is_commented_out(sites, tmp_path):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".bashrc").write_text("alias ll='ls -l'\nexport BNB_CUDA_VERSION=122\n")
    facts = probe(sites, "0.50.2", "12.8", {"BNB_CUDA_VERSION": "122", "HOME": str(home)})
    assert facts["bnb_cuda_version_set_in"] == [{"file": str(home / ".bashrc"), "line": 2,
                                                 "text": "export BNB_CUDA_VERSION=122"}]
    finding = {f.id: f for f in diagnose(facts, gpu_machine())}["bitsandbytes.override-stale"]
    assert "libbitsandbytes_cuda122.so" in finding.message and "12.8" in finding.details
    plan = fix_plan(facts, gpu_machine(), dict(LINUX, home=str(home)))
    assert plan.actions == [ReplaceLine(str(home / ".bashrc"), 2, "export BNB_CUDA_VERSION=122",
                                        "# export BNB_CUDA_VERSION=122  # disabled by llmdoctor",
                                        reason="stale BNB_CUDA_VERSION")]
    assert plan.manual_steps == ["in this terminal: unset BNB_CUDA_VERSION"]


def test_override_in_a_conda_env_is_a_manual_step(sites, tmp_path):
    prefix = tmp_path / "envs" / "llm"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "state").write_text('{"env_vars": {"BNB_CUDA_VERSION": "118"}}')
    facts = probe(sites, "0.50.2", "12.6", {"BNB_CUDA_VERSION": "118", "CONDA_PREFIX": str(prefix),
                                           "HOME": str(tmp_path)})
    assert "override-major" in problems(diagnose(facts, gpu_machine()))
    plan = fix_plan(facts, gpu_machine())
    assert plan.actions == [] and f"conda env config vars unset BNB_CUDA_VERSION -p {prefix}" in plan.manual_steps


# ------------------------------------------------------------------ Windows, from recorded facts

WINDOWS_COMMUNITY_BUILD = {  # recorded on a Windows 11 PC: bitsandbytes-windows over 0.41.3
    "python": "C:\\Users\\ada\\llm\\.venv\\Scripts\\python.exe", "python_version": "3.11.9",
    "distributions": {"bitsandbytes": "0.41.3", "bitsandbytes-windows": "0.37.5"},
    "bnb_cuda_version": None, "ld_library_path": "", "conda_prefix": None,
    "site_packages": ["C:\\Users\\ada\\llm\\.venv\\Lib\\site-packages"],
    "torch": {"installed": True, "version": "2.5.1+cu121", "cuda": "12.1",
              "location": "C:\\Users\\ada\\llm\\.venv\\Lib\\site-packages\\torch"},
    "installed": True, "location": "C:\\Users\\ada\\llm\\.venv\\Lib\\site-packages\\bitsandbytes",
    "version": "0.41.3", "source_checkout": False,
    "files": ["libbitsandbytes_cpu.so", "libbitsandbytes_cuda118.dll", "libbitsandbytes_cuda121.so"],
    "libraries": {},
}


def test_windows_before_043_and_a_community_build():
    facts = WINDOWS_COMMUNITY_BUILD
    driver = gpu_machine(cuda=12080)
    findings = {f.id: f for f in diagnose(facts, driver, WINDOWS)}
    assert findings["bitsandbytes.windows-unsupported"].severity == "error"
    assert "bitsandbytes-windows 0.37.5" in findings["bitsandbytes.conflicting-distribution"].message
    plan = fix_plan(facts, driver, WINDOWS)
    assert plan.actions == [
        PipUninstall(facts["python"], ("bitsandbytes-windows", "bitsandbytes")),
        PipInstall(facts["python"], ("bitsandbytes==0.50.2", "torch==2.5.1+cu121"))]


def test_windows_dll_found_only_through_path():
    facts = dict(WINDOWS_COMMUNITY_BUILD, version="0.45.5", distributions={"bitsandbytes": "0.45.5"},
                 files=["libbitsandbytes_cpu.dll", "libbitsandbytes_cuda121.dll"], libraries={
                     "libbitsandbytes_cuda121.dll": {
                         "needed": ["cudart64_12.dll", "cublas64_12.dll", "KERNEL32.dll"],
                         "found": {"cudart64_12.dll": "C:\\CUDA\\v12.1\\bin\\cudart64_12.dll",
                                   "KERNEL32.dll": "C:\\Windows\\System32\\KERNEL32.dll"},
                         "missing": ["cublas64_12.dll"], "path_only": ["cudart64_12.dll"], "sm": [], "ptx": []}})
    findings = {f.id: f for f in diagnose(facts, gpu_machine(cuda=12080), WINDOWS)}
    assert "Could not find module 'libbitsandbytes_cuda121.dll'" in findings["bitsandbytes.missing-dependency"].details
    assert "cublas64_12.dll comes from the CUDA 12 runtime libraries: pip package nvidia-cublas-cu12" in \
        findings["bitsandbytes.missing-dependency"].details
    assert "Python 3.8+ does not search for DLLs" in findings["bitsandbytes.dll-on-path-only"].message


# ------------------------------------------------------------------ release choice and deep mode


def test_release_for_respects_python_torch_and_windows():
    assert bnb.release_for((12, 8), "linux", (3, 11), "2.9.1+cu128") == "0.50.2"
    assert bnb.release_for((12, 9), "linux", (3, 9), "2.9.1+cu129") == "0.48.2"  # 0.49 needs Python 3.10
    assert bnb.release_for((12, 1), "linux", (3, 11), "2.1.2+cu121") == "0.45.5"  # 0.46 needs torch 2.2
    assert bnb.release_for((11, 7), "windows", (3, 10), "1.13.1+cu117") == "0.44.1"
    assert bnb.release_for(None, "linux", (3, 11), "2.13.0+cpu") == "0.50.2"
    assert bnb.release_for((14, 0), "linux", (3, 12), "2.15.0+cu140") is None


def test_provider_names_the_wheel_of_each_cuda_major():
    assert "nvidia-cuda-runtime-cu11" in bnb.provider("libcudart.so.11.0")
    assert "nvidia-cublas-cu12" in bnb.provider("libcublasLt.so.12")
    assert "nvidia-cuda-runtime==13.*" in bnb.provider("libcudart.so.13")
    assert bnb.wheel_library_folder("/s", "libcudart.so.13") == "/s/nvidia/cu13/lib"
    assert "Redistributable" in bnb.provider("MSVCP140.dll")


RECORDED_OUTPUTS = {  # `python -m bitsandbytes` as users pasted it, one per family
    "diagnostics-setup-failed": "CUDA SETUP: Required library version not found: libbitsandbytes_cuda126.so.\n"
                                "RuntimeError:\n        CUDA Setup failed despite GPU being available. Please run "
                                "the following command to get more information:",
    "diagnostics-missing-library": "OSError: libcusparse.so.11: cannot open shared object file: No such file or "
                                   "directory",
    "diagnostics-cpu-library": "UserWarning: The installed version of bitsandbytes was compiled without GPU "
                               "support. 8-bit optimizers, 8-bit multiplication, and GPU quantization are "
                               "unavailable.",
    "diagnostics-no-binary": "RuntimeError: Configured CUDA binary not found at /venv/lib/python3.11/site-packages/"
                             "bitsandbytes/libbitsandbytes_cuda130.so",
    "diagnostics-bad-override": "ValueError: BNB_CUDA_VERSION='12.4': value must be digits only (e.g. '124' for "
                                "12.4).",
    "diagnostics-arch": "torch.AcceleratorError: CUDA error: no kernel image is available for execution on the "
                        "device",
    "diagnostics-success": "Checking that the library is importable and CUDA is callable...\nSUCCESS!\n"
                           "Installation was successful!",
}


@pytest.mark.parametrize("marker", sorted(RECORDED_OUTPUTS))
def test_deep_mode_recognises_recorded_outputs(marker):
    found = bitsandbytes.parse_diagnostics(RECORDED_OUTPUTS[marker])
    assert marker in [m["id"] for m in found]
    facts = dict(WINDOWS_COMMUNITY_BUILD, files=[], diagnostics={"returncode": 1, "markers": found, "tail": ["x"]})
    severities = {f.id: f.severity for f in bitsandbytes._diagnostics_findings(facts)}
    assert severities[f"bitsandbytes.{marker}"] == ("ok" if marker == "diagnostics-success" else
                                                    "warning" if marker == "diagnostics-cpu-library" else "error")


def test_deep_mode_times_out_with_a_finding(tmp_path):
    slow = tmp_path / "python"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    diagnostics = bitsandbytes.run_diagnostics(str(slow), timeout=0.5)
    assert diagnostics["timed_out"]
    (finding,) = bitsandbytes._diagnostics_findings({"diagnostics": diagnostics})
    assert finding.id == "bitsandbytes.diagnostics-timeout"


def test_windows_source_build_checks_visual_studios_cuda_integration():
    from llmdoctor.models import Finding

    facts = dict(WINDOWS_COMMUNITY_BUILD, version="0.50.2", distributions={"bitsandbytes": "0.50.2"},
                 files=["libbitsandbytes_cpu.dll", "libbitsandbytes_cuda132.dll"],
                 torch=dict(WINDOWS_COMMUNITY_BUILD["torch"], version="2.15.0+cu140", cuda="14.0"))
    driver = gpu_machine(cuda=14000)
    findings = diagnose(facts, driver, WINDOWS)
    assert "no-binary" in problems(findings)
    missing = Finding("vs-cuda.no-integration", "error", "Visual Studio Community 2022 17.12 has no CUDA build "
                      "customisation: CMake's Visual Studio generator stops with \"No CUDA toolset found\"",
                      fixes=["vs-cuda"])
    plan = bnb_fix.plan(FixContext(facts={"nvidia-driver": driver, "bitsandbytes": facts, "vs-cuda": {}},
                                   findings=findings + [missing], platform=WINDOWS, python=facts["python"]))
    (script,) = plan.actions
    assert script.path.endswith("build-bitsandbytes.ps1") and "cmake -DCOMPUTE_BACKEND=cuda" in script.content
    assert plan.manual_steps[0].startswith("first repair Visual Studio's CUDA integration ('llmdoctor fix --vs-cuda')")
