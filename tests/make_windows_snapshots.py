"""Writes the recorded Windows snapshots under tests/data/ (run from the repository root:
``python tests/make_windows_snapshots.py``). They are committed; this script documents
how they were made and remakes them when the facts' shape changes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from windows_facts import (  # noqa: E402
    FakeFilesystem,
    InMemoryRegistry,
    long_path_registry,
    path_facts,
    regsz_path2_registry,
)

GB = 1024**3


def disk_facts(free_gb: float, long_paths: bool, symlinks: bool) -> dict:
    def location(role, path):
        return {"role": role, "path": path, "existing": path, "exists": True, "writable": True,
                "fstype": "NTFS", "mountpoint": "C:\\", "free_bytes": int(free_gb * GB),
                "total_bytes": 1000 * GB}

    return {
        "locations": [location("hf_cache", "C:\\Users\\ada\\.cache\\huggingface\\hub"),
                      location("torch_hub", "C:\\Users\\ada\\.cache\\torch\\hub"),
                      location("cwd", "C:\\Users\\ada\\projects\\chat"),
                      location("temp", "C:\\Users\\ada\\AppData\\Local\\Temp")],
        "notebook": "", "quota": None,
        "windows": {"long_paths_enabled": long_paths, "symlinks_allowed": symlinks,
                    **({} if symlinks else {"symlink_error": "[WinError 1314] A required "
                                            "privilege is not held by the client"})},
    }


def snapshot(path_facts_: dict, disk: dict) -> dict:
    return {
        "schema": 1, "kind": "llmdoctor-snapshot", "llmdoctor_version": "0.1.0",
        "created": "2026-11-22T10:00:00+00:00",
        "platform": {"system": "windows", "release": "11", "version": "10.0.26100",
                     "machine": "AMD64", "python": "3.12.7",
                     "python_executable": "C:\\Users\\ada\\miniconda3\\python.exe",
                     "is_admin": False, "wsl": False, "notebook": ""},
        "target": {"executable": "C:\\Users\\ada\\miniconda3\\python.exe", "version": "3.12.7",
                   "packages": {"torch": "2.5.1+cu124"}},
        "facts": {"path": path_facts_, "disk": disk},
        "probes": {"path": {"duration_ms": 4.0}, "disk": {"duration_ms": 9.0}},
    }


def healthy() -> dict:
    registry = InMemoryRegistry({
        "machine": {"Path": ("%SystemRoot%\\system32;%SystemRoot%;%SystemRoot%\\System32\\Wbem;"
                             "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.6\\bin",
                             "REG_EXPAND_SZ")},
        "user": {"Path": ("%USERPROFILE%\\AppData\\Local\\Microsoft\\WindowsApps;C:\\ffmpeg\\bin",
                          "REG_EXPAND_SZ")},
    })
    filesystem = FakeFilesystem(folders=[
        "C:\\Windows\\system32", "C:\\Windows", "C:\\Windows\\System32\\Wbem",
        "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.6\\bin",
        "C:\\Users\\ada\\AppData\\Local\\Microsoft\\WindowsApps", "C:\\ffmpeg\\bin"])
    return snapshot(path_facts(registry, filesystem), disk_facts(400, True, True))


def live_path_grows() -> dict:
    """The healthy registry, but this terminal's Path was grown by a profile script that prepends
    on every start (and set one entry with an unexpanded %CUDA_BIN%)."""
    registry = InMemoryRegistry({
        "machine": {"Path": ("%SystemRoot%\\system32;%SystemRoot%;%SystemRoot%\\System32\\Wbem", "REG_EXPAND_SZ")},
        "user": {"Path": ("%USERPROFILE%\\AppData\\Local\\Microsoft\\WindowsApps", "REG_EXPAND_SZ")},
    })
    filesystem = FakeFilesystem(folders=[
        "C:\\Windows\\system32", "C:\\Windows", "C:\\Windows\\System32\\Wbem",
        "C:\\Users\\ada\\AppData\\Local\\Microsoft\\WindowsApps"])
    conda = ";".join(f"C:\\Users\\ada\\miniconda3{suffix}" for suffix in
                     ("", "\\Library\\mingw-w64\\bin", "\\Library\\usr\\bin", "\\Library\\bin", "\\Scripts"))
    live = ";".join([conda] * 40 + ["%CUDA_BIN%", "C:\\Windows\\system32;C:\\Windows;C:\\Windows\\System32\\Wbem",
                                     "C:\\Users\\ada\\AppData\\Local\\Microsoft\\WindowsApps"])
    return snapshot(path_facts(registry, filesystem, live_path=live), disk_facts(300, True, True))


def main() -> None:
    data = Path(__file__).parent / "data"
    data.mkdir(exist_ok=True)
    made = {
        "windows-healthy": healthy(),
        "windows-long-path": snapshot(path_facts(*long_path_registry()), disk_facts(120, False, False)),
        "windows-regsz-path2": snapshot(path_facts(*regsz_path2_registry()), disk_facts(80, True, True)),
        "windows-live-path-grows": live_path_grows(),
    }
    for name, content in made.items():
        (data / f"{name}.json").write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
        print(f"wrote tests/data/{name}.json")


if __name__ == "__main__":
    main()
