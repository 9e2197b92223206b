"""Fake but faithful bitsandbytes installs: site-packages folders holding a ``bitsandbytes``
package with the native library files a real release ships (each a real ELF shared object
built here with gcc), a ``torch/version.py`` of a given CUDA build, and the target-probe
dict the check reads. Real releases' file lists come from their wheels (see
``llmdoctor.knowledge.bitsandbytes.RELEASES``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

STUB_C = "#include <string.h>\nunsigned long llmdoctor_stub(const char *s) { return strlen(s); }\n"  # needs libc

# the files in each release's wheel, as listed from the wheels themselves (Linux x86-64)
NOCUBLASLT_UNTIL = "0.44.1"
SHIPPED = {
    "0.41.3": ["110", "111", "114", "115", "117", "118", "120", "121", "122"],
    "0.42.0": ["110", "111", "114", "115", "117", "118", "120", "121", "122", "123"],
    "0.43.1": ["117", "118", "120", "121", "122", "123", "124"],
    "0.45.5": ["117", "118", "120", "121", "122", "123", "124", "125", "126", "128"],
    "0.46.1": ["118", "120", "121", "122", "123", "124", "125", "126", "128", "129"],
    "0.50.2": ["118", "121", "124", "126", "128", "130", "132"],
}

# a real torch release for each CUDA build the matrix crosses
TORCH_BUILDS = {None: "2.13.0+cpu", "11.8": "2.7.1+cu118", "12.1": "2.5.1+cu121", "12.6": "2.9.1+cu126",
                "12.8": "2.9.1+cu128", "12.9": "2.9.1+cu129", "13.0": "2.13.0+cu130"}


def compile_library(folder: Path, name: str, needs: tuple = (), soname: Optional[str] = None) -> Path:
    """A real shared object; ``needs``: paths of libraries it links against (DT_NEEDED)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"{name}.c"
    source.write_text(STUB_C.replace("llmdoctor_stub", "stub_" + "".join(c for c in name if c.isalnum())))
    output = folder / name
    argv = [shutil.which("gcc") or "gcc", "-shared", "-fPIC", "-o", str(output), str(source)]
    if soname:
        argv.append(f"-Wl,-soname,{soname}")
    argv += ["-Wl,--no-as-needed"] + [str(n) for n in needs]  # keep DT_NEEDED though no symbol is used
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    source.unlink()
    return output


def library_files(version: str) -> list:
    files = ["libbitsandbytes_cpu.so"]
    for build in SHIPPED[version]:
        files.append(f"libbitsandbytes_cuda{build}.so")
        if _older_or_equal(version, NOCUBLASLT_UNTIL):
            files.append(f"libbitsandbytes_cuda{build}_nocublaslt.so")
    return files


def _older_or_equal(version: str, other: str) -> bool:
    from packaging.version import Version

    return Version(version) <= Version(other)


def make_bitsandbytes(site: Path, version: str, stub: Path, files: Optional[list] = None,
                      distribution: str = "bitsandbytes") -> Path:
    package = site / "bitsandbytes"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'__version__ = "{version}"\n')
    for name in library_files(version) if files is None else files:
        shutil.copyfile(stub, package / name)
    make_distribution(site, distribution, version)
    return package


def make_distribution(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def make_torch(site: Path, cuda: Optional[str]) -> Path:
    version = TORCH_BUILDS[cuda]
    (site / "torch" / "lib").mkdir(parents=True)
    (site / "torch" / "version.py").write_text(
        f"__version__ = '{version}'\ndebug = False\ncuda = {repr(cuda)}\nhip = None\n")
    make_distribution(site, "torch", version.split("+")[0])
    return site / "torch"


def target(python: str, sites: list, packages: dict, version: str = "3.11.9") -> dict:
    """What the target-interpreter probe reports for an interpreter with these folders."""
    return {"executable": python, "version": version, "site_packages": [str(s) for s in sites],
            "path": [str(s) for s in sites], "packages": packages}
