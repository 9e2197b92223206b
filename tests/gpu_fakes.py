"""Test doubles for the GPU stack: toolkit trees on disk, a pynvml stand-in (NVML cannot
run without a GPU), and fact builders for recorded machines."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

GCC_WINDOW_HEADER = """
#if defined(__GNUC__)
#if __GNUC__ > {gcc}
#error -- unsupported GNU version! gcc versions later than {gcc} are not supported!
#endif
#endif
#if _MSC_VER < 1910 || _MSC_VER >= 1940
#error -- unsupported Microsoft Visual Studio version!
#endif
"""


def make_toolkit(root: Path, version: str, gcc_max: int = 15, version_file: str = "json") -> Path:
    """A CUDA toolkit tree whose nvcc is a script printing the given release."""
    (root / "bin").mkdir(parents=True)
    (root / "include" / "crt").mkdir(parents=True)
    (root / "include" / "cuda_runtime.h").write_text("/* fake */\n")
    (root / "include" / "crt" / "host_config.h").write_text(GCC_WINDOW_HEADER.format(gcc=gcc_max))
    major_minor = ".".join(version.split(".")[:2])
    nvcc = root / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
                    f"echo 'Cuda compilation tools, release {major_minor}, V{version}'\n")
    nvcc.chmod(0o755)
    if version_file == "json":
        (root / "version.json").write_text(json.dumps({"cuda": {"name": "CUDA SDK", "version": version}}))
    elif version_file == "txt":
        (root / "version.txt").write_text(f"CUDA Version {version}\n")
    return root


class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(f"NVML error {value}")
        self.value = value


class FakeNVML:
    """Just enough of pynvml's surface, answering from a recorded machine."""

    NVML_CLOCK_MEM = 2
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_DRIVER_NOT_LOADED = 9

    def __init__(self, driver="580.82.07", cuda=13000, gpus=(), init_error=None):
        self.driver, self.cuda, self.gpus, self.init_error = driver, cuda, list(gpus), init_error

    def nvmlInit(self):
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self):
        pass

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return self.cuda

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle):
        return handle["name"].encode()

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return handle["cc"]

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=handle["total"], free=handle["free"], used=handle["total"] - handle["free"])

    def nvmlDeviceGetMemoryBusWidth(self, handle):
        return handle["bus"]

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        assert kind == self.NVML_CLOCK_MEM
        return handle["mem_clock"]

    def nvmlDeviceGetUUID(self, handle):
        return "GPU-0000"


RTX_4090 = {"name": "NVIDIA GeForce RTX 4090", "cc": (8, 9), "total": 24 * 2**30, "free": 23 * 2**30,
            "bus": 384, "mem_clock": 10501}
RTX_3060 = {"name": "NVIDIA GeForce RTX 3060", "cc": (8, 6), "total": 12 * 2**30, "free": 11 * 2**30,
            "bus": 192, "mem_clock": 7501}


def install_fake_pynvml(folder: Path, gpus=(RTX_4090,), driver="580.82.07", cuda=13000) -> dict:
    """A ``pynvml.py`` answering as a machine with these GPUs, for a llmdoctor *subprocess*:
    the returned environment puts it first on PYTHONPATH (NVML cannot run without a GPU)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(__file__).read_text(encoding="utf-8")
    machine = json.dumps({"gpus": [dict(g, cc=list(g["cc"])) for g in gpus], "driver": driver, "cuda": cuda})
    (folder / "pynvml.py").write_text(
        source + f"\n_MACHINE = json.loads({machine!r})\n"
        "for _gpu in _MACHINE['gpus']:\n    _gpu['cc'] = tuple(_gpu['cc'])\n"
        "_FAKE = FakeNVML(driver=_MACHINE['driver'], cuda=_MACHINE['cuda'], gpus=_MACHINE['gpus'])\n"
        "NVMLError = NVMLError\n"
        "def __getattr__(name):\n    return getattr(_FAKE, name)\n", encoding="utf-8")
    return {"PYTHONPATH": str(folder)}
