"""The `ffmpeg` fix: make an ffmpeg with H.264/AAC encoders available on PATH.

In order of preference: add an existing ffmpeg folder to PATH (a shell startup block on
POSIX, the user Path on Windows); install ffmpeg with the platform's package manager
(apt-get, dnf, pacman, zypper, brew, winget, choco, scoop, or conda into the active env:
the plan shows the exact command, and those that need root say so before anything runs);
as the fallback, install ``imageio-ffmpeg`` into the target interpreter and link its
binary as ``~/.local/bin/ffmpeg``. Each step is journaled; undo removes what was added.
"""

from __future__ import annotations

import os

from llmdoctor.actions import BroadcastEnvironment, PipInstall, PrependPathEntry, RunCommand, SetShellBlock
from llmdoctor.checks.ffmpeg import probe_ffmpeg
from llmdoctor.models import Fix, FixContext, Plan
from llmdoctor.shellenv import block_lines, new_terminal_reprobe, startup_file

# manager -> (install argv, remove argv, needs root)
INSTALLERS = {
    "winget": (["winget", "install", "--id", "Gyan.FFmpeg", "-e", "--accept-source-agreements",
                "--accept-package-agreements"], ["winget", "uninstall", "--id", "Gyan.FFmpeg", "-e"], False),
    "choco": (["choco", "install", "ffmpeg", "-y"], ["choco", "uninstall", "ffmpeg", "-y"], True),
    "scoop": (["scoop", "install", "ffmpeg"], ["scoop", "uninstall", "ffmpeg"], False),
    "brew": (["brew", "install", "ffmpeg"], ["brew", "uninstall", "ffmpeg"], False),
    "apt-get": (["apt-get", "install", "-y", "ffmpeg"], ["apt-get", "remove", "-y", "ffmpeg"], True),
    "dnf": (["dnf", "install", "-y", "ffmpeg"], ["dnf", "remove", "-y", "ffmpeg"], True),
    "pacman": (["pacman", "-S", "--noconfirm", "ffmpeg"], ["pacman", "-R", "--noconfirm", "ffmpeg"], True),
    "zypper": (["zypper", "--non-interactive", "install", "ffmpeg"],
               ["zypper", "--non-interactive", "remove", "ffmpeg"], True),
}
# never replaces anything: an existing file or link at the target stops the fix (and it is rolled back)
LINK_SCRIPT = ("import os, sys, imageio_ffmpeg; target = sys.argv[1]; os.makedirs(os.path.dirname(target), "
               "exist_ok=True); os.path.lexists(target) and sys.exit(target + ' already exists'); "
               "os.symlink(imageio_ffmpeg.get_ffmpeg_exe(), target)")
UNLINK_SCRIPT = "import os, sys; os.path.islink(sys.argv[1]) and os.remove(sys.argv[1])"


def _path_actions(folder: str, context: FixContext) -> list:
    if context.platform.get("system") == "windows":
        return [PrependPathEntry("user", folder), BroadcastEnvironment()]
    shell = context.platform.get("shell", "")
    home = context.platform.get("home") or os.path.expanduser("~")
    lines = block_lines("ffmpeg", shell, {}, path_prepend=folder)
    return [SetShellBlock(startup_file(shell, home), "ffmpeg", tuple(lines))]


def _link_bundled(python: str, link: str) -> list:
    return [RunCommand((python, "-c", LINK_SCRIPT, link), f"link imageio-ffmpeg's binary as {link}",
                       undo_argv=(python, "-c", UNLINK_SCRIPT, link))]


def plan(context: FixContext) -> Plan:
    facts = context.facts.get("ffmpeg") or {}
    result = Plan("ffmpeg", "make ffmpeg available on PATH")
    present = set((facts.get("encoders") or {}).get("present", []))
    healthy = facts.get("on_path") and (facts.get("run") or {}).get("ok") and {"libx264", "aac"} <= present
    if healthy:
        return result
    if not facts.get("on_path") and facts.get("not_on_path"):
        folder = facts["not_on_path"][0]
        result.actions += _path_actions(folder, context)
        result.notes.append(f"ffmpeg is already in {folder}; only PATH changes. Open a new terminal afterwards.")
        return result
    windows = context.platform.get("system") == "windows"
    home = context.platform.get("home") or os.path.expanduser("~")
    link = os.path.join(home, ".local", "bin", "ffmpeg")
    if facts.get("imageio_ffmpeg") and not windows and not facts.get("on_path"):
        # already on disk, a full static build: linking it needs no download and no root
        result.actions += _link_bundled(context.python, link) + _path_actions(os.path.dirname(link), context)
        result.notes.append(f"imageio-ffmpeg's build ({facts['imageio_ffmpeg'][0]}) is already installed; it gets "
                            f"a link at {link}.")
        return result
    managers = facts.get("package_managers") or []
    order = ["winget", "choco", "scoop"] if windows else ["brew", "apt-get", "dnf", "pacman", "zypper"]
    manager = next((m for m in order if m in managers), None)
    if manager:
        install, remove, root = INSTALLERS[manager]
        needs_admin = root and not facts.get("is_root")
        result.actions.append(RunCommand(tuple(install), f"install ffmpeg with {manager}", undo_argv=tuple(remove),
                                         needs_admin=needs_admin))
        if manager == "dnf":
            result.notes.append("Fedora's own ffmpeg lacks libx264; enable RPM Fusion for the full build.")
        if needs_admin:
            result.notes.append(f"{manager} needs root: run this fix with sudo, or run the script above yourself.")
        return result
    conda_prefix = (context.facts.get("hf-endpoint") or {}).get("persisted", {}).get("conda_prefix")
    if "conda" in managers and conda_prefix:
        result.actions.append(RunCommand(("conda", "install", "-y", "-p", conda_prefix, "-c", "conda-forge", "ffmpeg"),
                                         "install ffmpeg into the active conda env",
                                         undo_argv=("conda", "remove", "-y", "-p", conda_prefix, "ffmpeg")))
        return result
    result.actions.append(PipInstall(context.python, ("imageio-ffmpeg",)))
    if not windows:
        result.actions += _link_bundled(context.python, link) + _path_actions(os.path.dirname(link), context)
    result.notes.append("No package manager was found: imageio-ffmpeg brings a static ffmpeg build (with libx264 "
                        "and aac) into the target interpreter.")
    return result


def _ffmpeg_facts(environment: dict, python: str) -> dict:
    return {"ffmpeg": probe_ffmpeg(environment, [], 10.0)}


FIX = Fix(
    id="ffmpeg",
    title="Make ffmpeg available on PATH (add its folder, or install it)",
    checks=("ffmpeg",),
    plan=plan,
    applicability="safe",
    scope="user",
    undoable=True,
    afterwards="new-terminal",
    smoke=("ffmpeg",),
    reprobe=new_terminal_reprobe(_ffmpeg_facts),
)
