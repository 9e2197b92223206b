"""The `ffmpeg` fix: make an ffmpeg with H.264/AAC encoders available on PATH, by the least
invasive route that works here.

Routes, in order of invasiveness (``--route NAME`` picks one):

1. ``path``: an ffmpeg already on disk in a folder that is not on PATH: put the folder on
   PATH (a shell startup block on POSIX, the user Path on Windows). A PATH entry that names
   the binary itself is ``fix --path``'s to repair (the root); nothing is installed then.
2. ``imageio``: imageio-ffmpeg's static build (libx264 and aac included), installed into the
   target interpreter if it is not there yet, linked as ``~/.local/bin/ffmpeg`` (POSIX).
3. The user's own package manager, without root: ``brew``, ``scoop``, ``winget`` (with
   ``--scope user``), or ``conda`` into the active environment.
4. The system package manager (``apt-get``, ``dnf``, ``pacman``, ``zypper``, ``choco``):
   scope ``machine``, administrator rights, and applied only with ``--unsafe`` or when the
   user names that route. Its undo removes exactly the packages the install added
   (``llmdoctor.package_install``).

Each step is journaled; undo removes what was added.
"""

from __future__ import annotations

import os

from llmdoctor.actions import BroadcastEnvironment, PipInstall, PrependPathEntry, RunCommand, SetShellBlock
from llmdoctor.checks.ffmpeg import probe_ffmpeg
from llmdoctor.knowledge.shells import startup_file
from llmdoctor.models import Fix, FixContext, Plan
from llmdoctor.package_install import MANAGERS, PackageInstall
from llmdoctor.shellenv import block_lines, new_terminal_reprobe

USER_MANAGERS = ("brew", "scoop", "winget", "conda")
SYSTEM_MANAGERS = ("apt-get", "dnf", "pacman", "zypper", "choco")
ROUTES = ("path", "imageio") + USER_MANAGERS + SYSTEM_MANAGERS
PACKAGE = {"winget": "Gyan.FFmpeg"}  # everything else calls it ffmpeg
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
    return [RunCommand((python, "-I", "-c", LINK_SCRIPT, link), f"link imageio-ffmpeg's binary as {link}",
                       undo_argv=(python, "-I", "-c", UNLINK_SCRIPT, link))]


def _available(facts: dict, context: FixContext) -> dict:
    """{route: function making its part of the plan} for the routes open on this machine, in
    order of invasiveness."""
    windows = context.platform.get("system") == "windows"
    home = context.platform.get("home") or os.path.expanduser("~")
    link = os.path.join(home, ".local", "bin", "ffmpeg")
    managers = facts.get("package_managers") or []
    routes: dict = {}
    if facts.get("not_on_path"):
        folder = facts["not_on_path"][0]

        def path_route(plan: Plan) -> None:
            plan.actions += _path_actions(folder, context)
            plan.notes.append(f"ffmpeg is already in {folder}; only PATH changes.")
        routes["path"] = path_route
    if not windows and (facts.get("imageio_ffmpeg") or facts.get("target_pip")):
        def imageio_route(plan: Plan) -> None:
            if facts.get("imageio_ffmpeg"):
                plan.notes.append(f"imageio-ffmpeg's build ({facts['imageio_ffmpeg'][0]}) is already installed; "
                                  f"it gets a link at {link}.")
            else:
                plan.actions.append(PipInstall(context.python, ("imageio-ffmpeg",)))
                plan.notes.append("imageio-ffmpeg brings a static ffmpeg build (with libx264 and aac) into the target "
                                  f"interpreter; it gets a link at {link}.")
            plan.actions += _link_bundled(context.python, link) + _path_actions(os.path.dirname(link), context)
        routes["imageio"] = imageio_route
    for manager in USER_MANAGERS + SYSTEM_MANAGERS:
        if manager not in managers or (manager == "conda" and not facts.get("conda_prefix")):
            continue
        if windows != (manager in ("scoop", "winget", "choco")) and manager != "conda":
            continue

        def manager_route(plan: Plan, manager=manager) -> None:
            plan.actions.append(PackageInstall(manager, (PACKAGE.get(manager, "ffmpeg"),),
                                               prefix=facts.get("conda_prefix") if manager == "conda" else None))
            if manager == "dnf":
                plan.notes.append("Fedora's own ffmpeg lacks libx264; enable RPM Fusion for the full build.")
        routes[manager] = manager_route
    return routes


def _label(route: str) -> str:
    if route in SYSTEM_MANAGERS:
        return f"--route {route}: {' '.join(MANAGERS[route].install)} ffmpeg [machine scope, administrator rights]"
    words = {"path": "put the folder that holds ffmpeg on PATH [user scope]",
             "imageio": "imageio-ffmpeg's static build linked into ~/.local/bin [user scope]"}
    return f"--route {route}: " + words.get(route, f"install ffmpeg with {route} [user scope]")


def plan(context: FixContext) -> Plan:
    facts = context.facts.get("ffmpeg") or {}
    result = Plan("ffmpeg", "make ffmpeg available on PATH")
    present = set((facts.get("encoders") or {}).get("present", []))
    healthy = facts.get("on_path") and (facts.get("run") or {}).get("ok") and {"libx264", "aac"} <= present
    if healthy:
        return result
    if not facts.get("on_path") and facts.get("path_file_entries"):
        result.manual_steps.append(
            f"a PATH entry names the ffmpeg binary itself ({facts['path_file_entries'][0]}): ffmpeg is installed; "
            "'llmdoctor fix --path' repairs that entry")
        return result
    routes = _available(facts, context)
    wanted = context.options.get("route")
    if wanted and wanted not in ROUTES:
        result.manual_steps.append(f"unknown route {wanted!r} for ffmpeg (known: {', '.join(ROUTES)})")
        return result
    if wanted and wanted not in routes:
        result.manual_steps.append(f"the {wanted} route is not open here (open: {', '.join(routes) or 'none'})")
        return result
    route = wanted or next((r for r in routes if r not in SYSTEM_MANAGERS), None) or next(iter(routes), None)
    if route is None:
        result.manual_steps.append("install ffmpeg (a full build with libx264 and aac) and put its folder on PATH; "
                                   "no package manager and no pip was found in the target interpreter")
        return result
    routes[route](result)
    if route in SYSTEM_MANAGERS and not wanted:
        result.unsafe = (f"the only route here is the system package manager ({route}: machine scope, "
                         "administrator rights); name it with --route " + route + " or allow it with --unsafe")
    result.alternatives = [_label(r) for r in routes if r != route]
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
    routes=tuple((r, "machine" if r in SYSTEM_MANAGERS else "user") for r in ROUTES),
)
