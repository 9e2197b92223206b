"""The `ffmpeg` check: is there an ffmpeg that summarisation and transcription tools
(whisper, video summarisers) will find, and can it encode what they need?

On PATH and runs (with a timeout), its version, and its encoders: ``libx264`` and ``aac``
for MP4 output, ``h264_nvenc`` where an NVIDIA GPU exists. Also an ffmpeg folder that
exists but is not on PATH (Windows users often unpack it to ``C:\\ffmpeg\\bin``), a PATH
entry naming ``ffmpeg.exe`` itself, and the binary bundled by ``imageio-ffmpeg`` in the
target interpreter. The smoke test encodes a one-second test clip and decodes it back.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

from llmdoctor import proc
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext, SmokeTest

NEEDED_ENCODERS = ("libx264", "aac")
GPU_ENCODER = "h264_nvenc"
KNOWN_ENCODERS = NEEDED_ENCODERS + (GPU_ENCODER, "libopenh264", "mpeg4", "libmp3lame", "libopus")
PACKAGE_MANAGERS = ("apt-get", "dnf", "pacman", "zypper", "brew", "winget", "choco", "scoop", "conda")


def _exe(name: str) -> str:
    return name + ".exe" if sys.platform == "win32" else name


def usual_folders(environ: dict) -> list:
    """Where people put an ffmpeg that they then forget to add to PATH."""
    home = environ.get("USERPROFILE") or environ.get("HOME") or os.path.expanduser("~")
    if sys.platform == "win32":  # pragma: no cover - needs Windows
        drives = [environ.get("SystemDrive", "C:") + "\\"]
        folders = [os.path.join(d, "ffmpeg", "bin") for d in drives]
        folders += glob.glob(os.path.join(drives[0], "ffmpeg*", "bin"))
        local = environ.get("LOCALAPPDATA", "")
        scoop = environ.get("SCOOP") or os.path.join(home, "scoop")
        folders += [os.path.join(environ.get("ProgramFiles", "C:\\Program Files"), "ffmpeg", "bin"),
                    os.path.join(home, "ffmpeg", "bin"),
                    os.path.join(local, "Microsoft", "WinGet", "Links"),
                    # scoop's shims and app folder; Chocolatey's shims
                    os.path.join(scoop, "shims"), os.path.join(scoop, "apps", "ffmpeg", "current", "bin"),
                    os.path.join(environ.get("ProgramData", "C:\\ProgramData"), "chocolatey", "bin")]
        # winget unpacks Gyan's builds under Packages\Gyan.FFmpeg_*\ffmpeg-<version>-full_build\bin
        folders += glob.glob(os.path.join(local, "Microsoft", "WinGet", "Packages", "Gyan.FFmpeg*", "ffmpeg-*", "bin"))
        folders += glob.glob(os.path.join(home, "Downloads", "ffmpeg*", "bin"))
        return folders
    return [os.path.join(home, "ffmpeg", "bin"), os.path.join(home, "bin"), os.path.join(home, ".local", "bin"),
            "/opt/ffmpeg/bin", "/usr/local/ffmpeg/bin", "/opt/homebrew/bin", "/usr/local/bin", "/snap/bin"]


def encoders_of(ffmpeg: str, timeout: float) -> dict:
    result = proc.run([ffmpeg, "-hide_banner", "-encoders"], timeout=timeout)
    if not result.ok:
        return {"error": result.error or f"exit {result.returncode}"}
    names = set(re.findall(r"^\s*[VAS][A-Z.]{5}\s+(\S+)", result.stdout, re.MULTILINE))
    return {"present": sorted(n for n in names if n in KNOWN_ENCODERS), "count": len(names)}


def probe_ffmpeg(environ: dict, site_packages, timeout: float) -> dict:
    """``site_packages``: the target's folders, or a function that returns them (asked only
    after ffmpeg has run, so that this probe does not wait for the target interpreter's)."""
    facts: dict = {}
    path_value = environ.get("PATH", "")
    found = shutil.which("ffmpeg", path=path_value)
    facts["on_path"] = found
    if found:
        # one run: without -hide_banner, '-encoders' prints the version banner (on stderr) too
        result = proc.run([found, "-encoders"], timeout=timeout)
        facts["run"] = {"ok": result.ok, "error": result.error, "returncode": result.returncode,
                        "timed_out": result.timed_out}
        match = re.search(r"ffmpeg version (\S+)", result.stderr + result.stdout)
        facts["version"] = match.group(1) if match else None
        if result.ok:
            names = set(re.findall(r"^\s*[VAS][A-Z.]{5}\s+(\S+)", result.stdout, re.MULTILINE))
            facts["encoders"] = {"present": sorted(n for n in names if n in KNOWN_ENCODERS), "count": len(names)}
        else:
            facts["encoders"] = {}
    if callable(site_packages):
        site_packages = site_packages()
    entries = [e for e in path_value.split(os.pathsep) if e]
    facts["path_file_entries"] = [e for e in entries if os.path.basename(e.strip('"')).lower() in
                                  ("ffmpeg", "ffmpeg.exe") and os.path.isfile(e.strip('"'))]
    on_path = {os.path.normcase(os.path.abspath(e.strip('"'))) for e in entries}
    # also one folder below a PATH entry: PATH names ...\ffmpeg-7.0-full_build, the program is in its bin
    below = [os.path.join(e.strip('"'), "bin") for e in entries if os.path.isdir(e.strip('"'))]
    facts["not_on_path"] = sorted({
        folder for folder in usual_folders(environ) + below
        if folder and os.path.isfile(os.path.join(folder, _exe("ffmpeg")))
        and os.path.normcase(os.path.abspath(folder)) not in on_path})
    bundled = []
    for site in site_packages:
        bundled += glob.glob(os.path.join(site, "imageio_ffmpeg", "binaries", "ffmpeg*"))
    facts["imageio_ffmpeg"] = sorted(b for b in bundled if not b.endswith((".txt", ".md", ".py")))
    facts["target_pip"] = any(os.path.isdir(os.path.join(site, "pip")) for site in site_packages)
    facts["package_managers"] = [m for m in PACKAGE_MANAGERS if shutil.which(m, path=path_value)]
    facts["conda_prefix"] = environ.get("CONDA_PREFIX") or None
    facts["is_root"] = hasattr(os, "geteuid") and os.geteuid() == 0
    return facts


def probe(context: ProbeContext) -> dict:
    return probe_ffmpeg(dict(os.environ), lambda: context.target().get("site_packages", []), context.timeout)


# ----------------------------------------------------------------------------- rules


def rules(facts: dict, context: RuleContext) -> list:
    findings: list = []
    for entry in facts.get("path_file_entries", []):
        # the PATH check reports the same entry (path.file-entry): that is the root, and
        # ffmpeg *is* installed, so "not installed" would be false
        findings.append(Finding(
            "ffmpeg.path-names-the-exe", "error" if not facts.get("on_path") else "warning",
            f"a PATH entry names the program itself ({entry}) instead of its folder",
            "PATH lists folders; programs looking for 'ffmpeg' never look inside that entry. "
            "'llmdoctor fix --path' replaces it with its folder.", fixes=["path"], facts={"entry": entry},
            caused_by="path.file-entry"))
    ffmpeg = facts.get("on_path")
    if not ffmpeg and facts.get("path_file_entries"):
        return findings
    if not ffmpeg:
        elsewhere = facts.get("not_on_path") or []
        if elsewhere:
            findings.append(Finding(
                "ffmpeg.not-on-path", "warning",
                f"ffmpeg is in {elsewhere[0]} but that folder is not on PATH: programs will not find it",
                "'llmdoctor fix --ffmpeg' adds the folder to PATH for new terminals.",
                fixes=["ffmpeg"], facts={"folders": elsewhere}))
        else:
            bundled = facts.get("imageio_ffmpeg") or []
            findings.append(Finding(
                "ffmpeg.missing", "warning",
                "ffmpeg is not installed: audio and video tools (whisper, video summarisers) will fail",
                ("imageio-ffmpeg's own binary is there (" + bundled[0] + ") but only programs that ask "
                 "imageio_ffmpeg.get_ffmpeg_exe() use it. " if bundled else "")
                + "'llmdoctor fix --ffmpeg' installs it with "
                + (facts.get("package_managers") or ["pip (imageio-ffmpeg)"])[0] + ".",
                fixes=["ffmpeg"], facts={"imageio_ffmpeg": bundled}))
        return findings
    run = facts.get("run", {})
    if not run.get("ok"):
        why = ("it hung and was stopped" if run.get("timed_out")
               else run.get("error") or f"exit {run.get('returncode')}")
        findings.append(Finding("ffmpeg.does-not-run", "error", f"{ffmpeg} does not run: {why}",
                                "A broken or wrong-architecture build; reinstall it.", fixes=["ffmpeg"], facts=run))
        return findings
    present = set((facts.get("encoders") or {}).get("present", []))
    gpus = ((context.all_facts.get("nvidia-driver") or {}).get("gpus")) or []
    summary = ", ".join(e for e in KNOWN_ENCODERS if e in present) or "none of the usual encoders"
    findings.append(Finding("ffmpeg.found", "ok", f"ffmpeg {facts.get('version') or '?'} at {ffmpeg} ({summary})"))
    missing = [e for e in NEEDED_ENCODERS if e not in present]
    if missing:
        findings.append(Finding(
            "ffmpeg.missing-encoder", "warning",
            f"this ffmpeg has no {' and no '.join(missing)} encoder: MP4 output with H.264/AAC fails",
            "Minimal or 'LGPL' builds leave out libx264; tools that write MP4 then stop with "
            "\"Unknown encoder 'libx264'\". Install a full build (your package manager's ffmpeg, "
            "or the gyan.dev/BtbN 'full' builds on Windows).",
            fixes=["ffmpeg"], facts={"missing": missing}))
    if gpus and GPU_ENCODER not in present:
        findings.append(Finding(
            "ffmpeg.no-nvenc", "info", f"this ffmpeg cannot encode on the GPU ({GPU_ENCODER} is missing)",
            "Only matters for tools that encode video on the GPU; a build with NVENC support is needed."))
    return findings


# ----------------------------------------------------------------------------- smoke test


def _describe(ffmpeg: str, path: Path) -> dict:
    result = proc.run([ffmpeg, "-hide_banner", "-i", str(path)], timeout=30)
    text = result.stderr
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    seconds = None
    if duration:
        seconds = int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
    video = re.search(r"Stream #\S+.*Video: (\w+)", text)
    audio = re.search(r"Stream #\S+.*Audio: (\w+)", text)
    return {"seconds": seconds, "video": video.group(1) if video else None, "audio": audio.group(1) if audio else None}


def smoke_ffmpeg(options: dict) -> dict:
    import time

    ffmpeg = options.get("ffmpeg") or shutil.which("ffmpeg")
    if not ffmpeg:
        return {"status": "fail", "message": "ffmpeg is not on PATH"}
    present = set(encoders_of(ffmpeg, 30).get("present", []))
    video = "libx264" if "libx264" in present else "mpeg4"
    audio = "aac" if "aac" in present else "libmp3lame" if "libmp3lame" in present else None
    with tempfile.TemporaryDirectory(prefix="llmdoctor-ffmpeg-") as folder:
        clip = Path(folder) / "clip.mp4"
        argv = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", "testsrc=duration=1:size=320x240:rate=25",
                "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                "-c:v", video, "-pix_fmt", "yuv420p", *(["-c:a", audio] if audio else ["-an"]), "-shortest", str(clip)]
        started = time.perf_counter()
        encoded = proc.run(argv, timeout=60)
        encode_s = time.perf_counter() - started
        if not encoded.ok or not clip.exists():
            return {"status": "fail", "message": f"encoding a test clip failed: "
                                                 f"{encoded.error or encoded.stderr.strip()[-200:]}"}
        decoded = proc.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(clip), "-f", "null", "-"],
                           timeout=60)
        if not decoded.ok:
            return {"status": "fail", "message": f"decoding the clip failed: {decoded.stderr.strip()[-200:]}"}
        info = _describe(ffmpeg, clip)
        if info["seconds"] is None or abs(info["seconds"] - 1.0) > 0.2 or not info["video"]:
            return {"status": "fail", "message": f"the clip came back wrong: {info}"}
        if audio and not info["audio"]:
            return {"status": "fail", "message": "the clip came back without its audio stream"}
        message = f"encoded a 1 s clip ({info['video']}/{info['audio'] or 'no audio'}) in {encode_s:.2f} s and " \
                  f"decoded it back ({info['seconds']:.2f} s)"
        figures = {"encode_s": round(encode_s, 3), **info}
        if GPU_ENCODER in present and options.get("gpu", _has_gpu()):
            gpu_clip = Path(folder) / "gpu.mp4"
            nvenc = proc.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                              "testsrc=duration=1:size=320x240:rate=25", "-c:v", GPU_ENCODER, str(gpu_clip)],
                             timeout=60)
            figures["nvenc"] = nvenc.ok
            if not nvenc.ok:
                return {"status": "fail", "message": message + f"; NVENC encoding failed: "
                                                               f"{nvenc.stderr.strip()[-200:]}", "figures": figures}
            message += "; NVENC encoding works"
        return {"status": "pass", "message": message, "figures": figures}


def _has_gpu() -> bool:
    from llmdoctor.checks.nvidia_driver import local_capability

    return local_capability() is not None


FFMPEG_DOWNLOAD = "https://ffmpeg.org/download.html"

FINDINGS = (
    FindingKind("ffmpeg.found", "ok", "ffmpeg runs, with the encoders it has", references=(FFMPEG_DOWNLOAD,)),
    FindingKind(
        "ffmpeg.missing", "warning", "ffmpeg is not installed",
        why="Audio and video tools (whisper, video summarisers) call the ffmpeg program and fail without it; "
            "imageio-ffmpeg's bundled binary serves only programs that ask imageio_ffmpeg for it.",
        fix="Install it (the fix tries PATH, imageio-ffmpeg, then user-level package managers first).",
        fixes=("ffmpeg",),
        references=(FFMPEG_DOWNLOAD, "https://github.com/openai/whisper#setup",
                    "https://github.com/imageio/imageio-ffmpeg"),
    ),
    FindingKind(
        "ffmpeg.not-on-path", "warning", "ffmpeg is installed but its folder is not on PATH",
        why="Programs look for 'ffmpeg' on PATH only.", fix="Add its folder to PATH for new terminals.",
        fixes=("ffmpeg",), references=(FFMPEG_DOWNLOAD,),
    ),
    FindingKind(
        "ffmpeg.path-names-the-exe", "error", "a PATH entry names ffmpeg itself instead of its folder",
        severities=("warning", "error"),
        why="PATH lists folders; nothing looks inside an entry naming a file.",
        fix="Replace the entry with its folder (a consequence of path.file-entry).", fixes=("path",),
        references=("https://learn.microsoft.com/en-us/windows/win32/procthread/environment-variables",),
    ),
    FindingKind(
        "ffmpeg.does-not-run", "error", "ffmpeg is found but does not run",
        why="A broken or wrong-architecture build.", fix="Reinstall it.", fixes=("ffmpeg",),
        references=(FFMPEG_DOWNLOAD,),
    ),
    FindingKind(
        "ffmpeg.missing-encoder", "warning", "this ffmpeg has no libx264 or AAC encoder",
        why="Minimal or LGPL builds leave out libx264; tools writing MP4 stop with \"Unknown encoder "
            "'libx264'\".",
        fix="Install a full build.", fixes=("ffmpeg",),
        references=("https://ffmpeg.org/ffmpeg-codecs.html#libx264_002c-libx264rgb", FFMPEG_DOWNLOAD),
    ),
    FindingKind(
        "ffmpeg.no-nvenc", "info", "this ffmpeg cannot encode on the GPU (no h264_nvenc)",
        why="Only matters for tools that encode video on the GPU.", fix="Install a build with NVENC support.",
        references=("https://trac.ffmpeg.org/wiki/HWAccelIntro",),
    ),
)


CHECK = Check(
    id="ffmpeg",
    title="ffmpeg",
    probe=probe,
    rules=rules,
    order=80,
    timeout=10.0,
    smoke=(SmokeTest("ffmpeg", "Encode a one-second test clip to MP4 and decode it back",
                     "llmdoctor.checks.ffmpeg:smoke_ffmpeg", timeout=120.0),),
    requires=("nvidia-driver",),
    findings=FINDINGS,
)


def bundled_binary(facts: dict) -> Optional[str]:
    bundled = facts.get("imageio_ffmpeg") or []
    return bundled[0] if bundled else None
