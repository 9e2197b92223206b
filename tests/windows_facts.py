"""Recorded Windows facts for tests: a registry and a fake filesystem, turned into the
`path` check's facts by the real Windows probe (only the filesystem is replaced)."""

from __future__ import annotations

import ntpath

from llmdoctor.checks.path import probe_windows
from llmdoctor.knowledge.windows import normalise_windows
from llmdoctor.winenv import InMemoryRegistry

CORE_ENV = {
    "SystemRoot": "C:\\Windows", "windir": "C:\\Windows", "SystemDrive": "C:",
    "ProgramFiles": "C:\\Program Files", "ProgramFiles(x86)": "C:\\Program Files (x86)",
    "ProgramData": "C:\\ProgramData", "USERPROFILE": "C:\\Users\\ada",
    "LOCALAPPDATA": "C:\\Users\\ada\\AppData\\Local", "APPDATA": "C:\\Users\\ada\\AppData\\Roaming",
    "USERNAME": "ada",
}


class FakeFilesystem:
    def __init__(self, folders=(), files=()) -> None:
        self.folders = {normalise_windows(f) for f in folders}
        self.files = {normalise_windows(f) for f in files}

    def add_folders(self, folders) -> None:
        self.folders |= {normalise_windows(f) for f in folders}

    def entry_facts(self, path: str) -> dict:
        key = normalise_windows(path)
        is_dir, is_file = key in self.folders, key in self.files
        return {"exists": is_dir or is_file, "is_dir": is_dir, "is_file": is_file}


def path_facts(registry: InMemoryRegistry, filesystem: FakeFilesystem, live_path: str = "") -> dict:
    """The path probe's facts on this recorded machine; ``live_path``: the terminal's own Path."""
    environ = dict(CORE_ENV, **({"Path": live_path} if live_path else {}))
    return probe_windows(registry, environ=environ, entry_facts=filesystem.entry_facts)


def tool_folders(count: int, length: int, stem: str = "C:\\Program Files\\Vendor") -> list:
    """Long, realistic-looking folders, each ``length`` characters long."""
    folders = []
    for index in range(count):
        head = f"{stem}{index:03d}\\"
        folders.append(head + ("Tools\\bin\\" * 40)[: length - len(head)].rstrip("\\") )
    return folders


def long_path_registry():
    """A 9,000-character merged Path with a file entry, a missing folder and duplicates."""
    system_base = ["%SystemRoot%\\system32", "%SystemRoot%", "%SystemRoot%\\System32\\Wbem",
                   "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.6\\bin"]
    system_tools = tool_folders(60, 100)  # ~6,300 characters: over the editor's 2,047
    user_tools = tool_folders(8, 100, stem="C:\\Users\\ada\\Apps\\Tool")
    missing = tool_folders(11, 150, stem="C:\\Program Files\\Uninstalled")
    user = (["%USERPROFILE%\\AppData\\Local\\Microsoft\\WindowsApps", "C:\\ffmpeg\\bin\\ffmpeg.exe"]
            + user_tools + missing
            + [system_tools[0] + "\\", system_tools[1].upper(), system_tools[2]])
    registry = InMemoryRegistry({
        "machine": {"Path": (";".join(system_base + system_tools), "REG_EXPAND_SZ"),
                    "ComSpec": ("%SystemRoot%\\system32\\cmd.exe", "REG_EXPAND_SZ")},
        "user": {"Path": (";".join(user), "REG_EXPAND_SZ"),
                 "TEMP": ("%USERPROFILE%\\AppData\\Local\\Temp", "REG_EXPAND_SZ")},
    })
    filesystem = FakeFilesystem(
        folders=["C:\\Windows\\system32", "C:\\Windows", "C:\\Windows\\System32\\Wbem",
                 "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.6\\bin",
                 "C:\\Users\\ada\\AppData\\Local\\Microsoft\\WindowsApps", "C:\\ffmpeg\\bin"]
        + system_tools + user_tools,
        files=["C:\\ffmpeg\\bin\\ffmpeg.exe"],
    )
    return registry, filesystem


def regsz_path2_registry():
    """A user Path stored as REG_SZ that refers to %Path2% (which therefore never expands)."""
    helper = ["C:\\Users\\ada\\miniconda3", "C:\\Users\\ada\\miniconda3\\Scripts",
              "C:\\Users\\ada\\.cargo\\bin"]
    registry = InMemoryRegistry({
        "machine": {"Path": ("%SystemRoot%\\system32;%SystemRoot%", "REG_EXPAND_SZ")},
        "user": {"Path": ("C:\\Users\\ada\\bin;%Path2%", "REG_SZ"),
                 "Path2": (";".join(helper), "REG_SZ")},
    })
    filesystem = FakeFilesystem(folders=["C:\\Windows\\system32", "C:\\Windows",
                                         "C:\\Users\\ada\\bin"] + helper)
    return registry, filesystem


def folder_of(entry: str) -> str:
    return ntpath.dirname(entry)
