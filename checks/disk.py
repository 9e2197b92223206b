"""The `disk` check: is there room for the model, where it will actually be written?

Probes the filesystems of the Hugging Face cache, the torch hub cache, the current and
the temporary folder: space a non-root user can write (``f_bavail``), inodes, filesystem
type, user quotas (``quota``, where installed), and on Windows whether long paths and
symbolic links work. Rules compare them with thresholds and configured model sizes, and
know the notebook platforms' traps (Kaggle's 20 GB output folder, Colab's Drive cache).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from llmdoctor import proc
from llmdoctor.knowledge.units import GiB as GB  # the disk check reports binary gigabytes
from llmdoctor.machine import notebook_platform
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext, SmokeTest

FAT_TYPES = {"vfat", "msdos", "fat", "fat16", "fat32"}
FAT_FILE_LIMIT = 4 * GB - 1
KAGGLE_OUTPUT_LIMIT_GB = 20
CACHE_ROLES = ("hf_cache", "torch_hub")
ROLE_LABELS = {
    "hf_cache": "Hugging Face cache",
    "torch_hub": "torch hub cache",
    "cwd": "current folder",
    "temp": "temporary folder",
}


# ----------------------------------------------------------------------------- probe


def cache_locations(environ: dict) -> dict:
    """Where downloads land, resolved the way huggingface_hub and torch resolve them."""
    home = Path(os.path.expanduser("~"))
    xdg_cache = Path(environ.get("XDG_CACHE_HOME") or home / ".cache")
    hf_home = Path(environ.get("HF_HOME") or xdg_cache / "huggingface")
    hf_cache = environ.get("HF_HUB_CACHE") or environ.get("HUGGINGFACE_HUB_CACHE") or str(hf_home / "hub")
    torch_home = Path(environ.get("TORCH_HOME") or xdg_cache / "torch")
    return {
        "hf_cache": str(hf_cache),
        "torch_hub": str(torch_home / "hub"),
        "cwd": os.getcwd(),
        "temp": tempfile.gettempdir(),
    }


def _first_existing(path: Path) -> Path:
    """The folder that will hold ``path`` once created (as huggingface_hub checks space)."""
    path = path.expanduser()
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def _filesystem_of(path: Path, partitions: list) -> dict:
    resolved = str(path.resolve())
    best = None
    for part in partitions:
        mount = part["mountpoint"]
        prefix = mount if mount.endswith(("/", "\\")) else mount + os.sep
        if (resolved == mount or resolved.startswith(prefix) or
                (sys.platform == "win32" and resolved.lower().startswith(prefix.lower()))):
            if best is None or len(mount) > len(best["mountpoint"]):
                best = part
    return best or {}


def _unescape_mount(field: str) -> str:
    """/proc/self/mounts writes spaces and tabs in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _partitions() -> list:
    if sys.platform.startswith("linux"):
        # the kernel's own mount table: as exact as psutil's, without importing it (~50 ms)
        try:
            with open("/proc/self/mounts", encoding="utf-8", errors="replace") as handle:
                rows = [line.split() for line in handle]
            return [{"device": _unescape_mount(r[0]), "mountpoint": _unescape_mount(r[1]), "fstype": r[2]}
                    for r in rows if len(r) >= 3]
        except OSError:
            pass
    try:
        import psutil

        return [{"mountpoint": p.mountpoint, "fstype": p.fstype, "device": p.device}
                for p in psutil.disk_partitions(all=True)]
    except Exception:
        return []


def _space(path: Path) -> dict:
    facts: dict = {}
    try:
        if hasattr(os, "statvfs"):
            st = os.statvfs(path)
            facts.update(
                free_bytes=st.f_bavail * st.f_frsize,
                total_bytes=st.f_blocks * st.f_frsize,
                free_inodes=st.f_favail,
                total_inodes=st.f_files,
            )
        else:  # Windows: no inode counts
            import shutil

            usage = shutil.disk_usage(path)
            facts.update(free_bytes=usage.free, total_bytes=usage.total)
    except OSError as exc:
        facts["error"] = f"{exc.strerror or exc}"
    return facts


def _quota(timeout: float) -> Optional[dict]:
    tool = proc.which("quota")
    if not tool:
        return None
    result = proc.run([tool, "-w", "-p"], timeout=timeout)
    return {"tool": tool, **result.to_json()}


def _windows_facts() -> dict:  # pragma: no cover - needs Windows
    facts: dict = {}
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE,
                            r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            facts["long_paths_enabled"] = bool(winreg.QueryValueEx(key, "LongPathsEnabled")[0])
    except OSError:
        facts["long_paths_enabled"] = False
    with tempfile.TemporaryDirectory(prefix="llmdoctor-") as folder:
        target = Path(folder) / "target"
        target.write_text("x")
        try:
            os.symlink(target, Path(folder) / "link")
            facts["symlinks_allowed"] = True
        except OSError as exc:
            facts["symlinks_allowed"] = False
            facts["symlink_error"] = str(exc)
    return facts


def probe(context: ProbeContext) -> dict:
    environ = dict(os.environ)
    partitions = _partitions()
    locations = []
    for role, raw in cache_locations(environ).items():
        path = Path(raw)
        existing = _first_existing(path)
        filesystem = _filesystem_of(existing, partitions)
        location = {
            "role": role,
            "path": raw,
            "existing": str(existing),
            "exists": path.exists(),
            "writable": os.access(existing, os.W_OK),
            "fstype": filesystem.get("fstype", ""),
            "mountpoint": filesystem.get("mountpoint", ""),
            **_space(existing),
        }
        locations.append(location)
    facts = {
        "locations": locations,
        "notebook": notebook_platform(environ),
        "quota": _quota(context.timeout),
    }
    if sys.platform == "win32":  # pragma: no cover
        facts["windows"] = _windows_facts()
    return facts


# ----------------------------------------------------------------------------- rules


def _gb(value: float) -> str:
    return f"{value / GB:,.1f} GB"


def parse_quota(stdout: str) -> list:
    """Rows of ``quota -w -p``: filesystem, used/soft/hard KiB. Over-quota rows carry '*'."""
    rows = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].startswith("/"):
            continue
        try:
            used = int(parts[1].rstrip("*"))
            soft, hard = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        rows.append({"filesystem": parts[0], "used_kib": used, "soft_kib": soft, "hard_kib": hard})
    return rows


def rules(facts: dict, context: RuleContext) -> list:
    config = context.config
    min_free_gb = float(config.threshold("min_free_gb")) if config else 20.0
    min_inodes = int(config.threshold("min_free_inodes")) if config else 10_000
    models = [m for m in (config.models if config else ()) if m.size_gb]
    findings: list = []
    by_role = {loc["role"]: loc for loc in facts.get("locations", [])}
    notebook = facts.get("notebook", "")

    reported_mounts = set()
    for location in facts.get("locations", []):
        role, label = location["role"], ROLE_LABELS.get(location["role"], location["role"])
        if "error" in location:
            findings.append(Finding("disk.unreadable", "warning",
                                    f"could not read free space of the {label} ({location['existing']}): "
                                    f"{location['error']}"))
            continue
        free = location.get("free_bytes", 0)
        # one verdict per filesystem, from its strictest role (caches come first)
        mount_key = location.get("mountpoint") or location["existing"]
        if role in CACHE_ROLES and location["exists"] and not location["writable"]:
            findings.append(Finding(
                "disk.not-writable", "error",
                f"the {label} {location['path']} is not writable by this user",
                "Downloads will fail with a permission error; point HF_HOME (or HF_HUB_CACHE) "
                "at a folder you own.", facts={"path": location["path"]}))
        if mount_key in reported_mounts:
            continue
        reported_mounts.add(mount_key)
        threshold = min_free_gb * GB if role in CACHE_ROLES else 1 * GB
        if free < threshold:
            severity = "error" if free < 1 * GB and role in CACHE_ROLES else "warning"
            findings.append(Finding(
                "disk.low-space", severity,
                f"only {_gb(free)} free for the {label} ({location['existing']})",
                f"The threshold is {threshold / GB:g} GB (thresholds.min_free_gb for model caches). "
                "A model shard that does not fit fails at the end of its download; huggingface_hub "
                "only warns before it starts. Free space, or point HF_HOME at a larger disk.",
                facts={"path": location["existing"], "free_bytes": free,
                       "mountpoint": location.get("mountpoint", "")}))
        total_inodes = location.get("total_inodes") or 0
        free_inodes = location.get("free_inodes")
        if total_inodes and free_inodes is not None and free_inodes < min_inodes:
            findings.append(Finding(
                "disk.low-inodes", "warning",
                f"only {free_inodes:,} free inodes on the {label}'s filesystem",
                "Each cached file and symlink takes an inode; with none left, writes fail with "
                "'No space left on device' although space is free.",
                facts={"free_inodes": free_inodes, "path": location["existing"]}))
        if location.get("fstype", "").lower() in FAT_TYPES and role in CACHE_ROLES + ("cwd",):
            findings.append(Finding(
                "disk.fat32", "error" if role in CACHE_ROLES else "warning",
                f"the {label} is on a {location['fstype']} filesystem, which cannot hold files over 4 GB",
                "Most model files and shards are larger than 4 GB. Use an NTFS, exFAT, ext4 or "
                "APFS disk for models.", facts={"fstype": location["fstype"],
                                                "path": location["existing"]}))

    hf = by_role.get("hf_cache")
    if hf and "free_bytes" in hf:
        for model in models:
            needed = model.size_gb * GB
            if needed > hf["free_bytes"]:
                findings.append(Finding(
                    "disk.model-does-not-fit", "error",
                    f"{model.name} needs {model.size_gb:g} GB but the Hugging Face cache has "
                    f"{_gb(hf['free_bytes'])} free",
                    f"Cache: {hf['path']}. The download would fail near the end. Free space or "
                    "set HF_HOME to a disk with room.",
                    facts={"model": model.name, "size_gb": model.size_gb,
                           "free_bytes": hf["free_bytes"]}))

    # models named for `model-fit` (check --model, [[models]]) that are not on disk yet
    sized = {m.name for m in models}  # already judged above from their configured size
    for entry in (context.all_facts.get("model-fit") or {}).get("models", []):
        spec = entry.get("spec") or {}
        if not spec or spec.get("source") in ("GGUF file", "safetensors folder") or not hf or "free_bytes" not in hf:
            continue
        if entry["model"] in sized:
            continue
        needed = int(spec.get("weight_bytes") or 0)
        if needed > hf["free_bytes"]:
            findings.append(Finding(
                "disk.model-does-not-fit", "error",
                f"{entry['model']} needs {_gb(needed)} to download but the Hugging Face cache has "
                f"{_gb(hf['free_bytes'])} free",
                f"Cache: {hf['path']}. The download would fail near the end. Free space or set HF_HOME to a disk "
                "with room.", facts={"model": entry["model"], "bytes": needed, "free_bytes": hf["free_bytes"]}))

    if notebook == "kaggle" and hf:
        if hf["path"].startswith("/kaggle/working"):
            findings.append(Finding(
                "disk.kaggle-output-cache", "warning",
                f"the Hugging Face cache is inside /kaggle/working, which keeps at most "
                f"{KAGGLE_OUTPUT_LIMIT_GB} GB of output",
                "Models saved there count against the notebook's output limit. Put the cache on "
                "the session disk instead, e.g. HF_HOME=/kaggle/temp/hf (not kept after the "
                "session).", facts={"path": hf["path"]}))
        else:
            findings.append(Finding(
                "disk.kaggle", "info",
                f"Kaggle notebook: /kaggle/working keeps at most {KAGGLE_OUTPUT_LIMIT_GB} GB of "
                "output; the model cache is on the session disk",
                "Session disk is not kept after the session; /kaggle/input is read-only."))
    if notebook == "colab" and hf and hf["path"].startswith("/content/drive"):
        findings.append(Finding(
            "disk.colab-drive-cache", "warning",
            "the Hugging Face cache is on Google Drive, which still fills the local disk",
            "Drive for desktop caches files under /root/.config/Google/DriveFS on the runtime's "
            "own disk, so a model on Drive takes local space too (colabtools #960, #2087).",
            facts={"path": hf["path"]}))

    quota = facts.get("quota")
    if quota:
        if quota.get("timed_out"):
            findings.append(Finding(
                "disk.quota-timed-out", "warning",
                f"'quota' did not answer and was stopped: {quota.get('error', '')}",
                "A hung quota tool usually means an unreachable network filesystem server."))
        for row in parse_quota(quota.get("stdout", "")):
            limit = row["hard_kib"] or row["soft_kib"]
            if not limit:
                continue
            left = (limit - row["used_kib"]) * 1024
            if left < min_free_gb * GB:
                findings.append(Finding(
                    "disk.quota-near-limit", "error" if left < 1 * GB else "warning",
                    f"your disk quota on {row['filesystem']} leaves {_gb(max(left, 0))}",
                    "statvfs (and so the free space above) does not see user quotas; downloads "
                    "stop at the quota.", facts=row))

    windows = facts.get("windows") or {}
    if windows:
        if windows.get("long_paths_enabled") is False:
            findings.append(Finding(
                "disk.long-paths-disabled", "warning",
                "long paths are disabled (LongPathsEnabled=0): deep cache paths over 260 "
                "characters fail",
                "The Hugging Face cache nests repository, snapshot and file names; enable long "
                "paths (HKLM\\SYSTEM\\CurrentControlSet\\Control\\FileSystem, LongPathsEnabled=1, "
                "administrator) or use a short HF_HOME such as C:\\hf.",
                facts={"long_paths_enabled": False}))
        if windows.get("symlinks_allowed") is False:
            findings.append(Finding(
                "disk.no-symlinks", "warning",
                "this user cannot create symbolic links: the Hugging Face cache will store "
                "copies, doubling disk use",
                "huggingface_hub falls back to copying blobs into snapshots without symlink "
                "rights. Turn on Developer Mode (Settings > For developers) or run as "
                "administrator.", facts={"error": windows.get("symlink_error", "")}))

    if hf and "free_bytes" in hf and not any(f.severity in ("warning", "error") for f in findings):
        fstype = f" on {hf['fstype']}" if hf.get("fstype") else ""
        findings.append(Finding(
            "disk.ok", "ok", f"Hugging Face cache {hf['path']}: {_gb(hf['free_bytes'])} free{fstype}"))
    return findings


# ----------------------------------------------------------------------------- smoke test


def smoke_disk(options: dict) -> dict:
    """Write, fsync and read back a few MB where models are cached; report throughput."""
    folder = Path(options.get("folder") or cache_locations(dict(os.environ))["hf_cache"])
    folder = _first_existing(folder)
    size = int(options.get("size_mb", 8)) * 1024 * 1024
    payload = os.urandom(1024 * 1024)
    if not os.access(folder, os.W_OK):
        return {"status": "fail", "message": f"{folder} is not writable"}
    try:
        handle, name = tempfile.mkstemp(prefix=".llmdoctor-smoke-", dir=folder)
    except OSError as exc:
        return {"status": "fail", "message": f"cannot create a file in {folder}: {exc.strerror or exc}"}
    path = Path(name)
    try:
        started = time.perf_counter()
        with os.fdopen(handle, "wb") as out:
            for _ in range(size // len(payload)):
                out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        with open(path, "rb") as source:
            chunks = [source.read(len(payload)) for _ in range(size // len(payload))]
        read_s = time.perf_counter() - started
        if any(chunk != payload for chunk in chunks):
            return {"status": "fail", "message": f"data read back from {folder} differs from what was written"}
    except OSError as exc:
        return {"status": "fail", "message": f"writing to {folder} failed: {exc.strerror or exc}"}
    finally:
        try:
            path.unlink()
        except OSError:
            pass
    mb = size / 1024 / 1024
    write_rate, read_rate = mb / max(write_s, 1e-6), mb / max(read_s, 1e-6)
    return {
        "status": "pass",
        "message": f"{folder}: wrote {mb:g} MB at {write_rate:,.0f} MB/s (fsync), read back at "
                   f"{read_rate:,.0f} MB/s (page cache)",
        "figures": {"folder": str(folder), "write_mb_s": round(write_rate, 1),
                    "read_mb_s": round(read_rate, 1), "size_mb": mb},
    }


HF_CACHE_DOCS = "https://huggingface.co/docs/huggingface_hub/guides/manage-cache"
HF_ENV_DOCS = "https://huggingface.co/docs/huggingface_hub/package_reference/environment_variables"
STATVFS = "https://man7.org/linux/man-pages/man3/statvfs.3.html"

FINDINGS = (
    FindingKind(
        "disk.ok", "ok", "the Hugging Face cache's disk has room",
        why="Downloads land in the cache (HF_HUB_CACHE); the free space a user may write is what counts.",
        references=(HF_CACHE_DOCS, STATVFS),
    ),
    FindingKind(
        "disk.unreadable", "warning", "the free space of a download folder could not be read",
        why="Without it no size can be compared; the reason is in the message (a hung or missing mount).",
        fix="Check the mount; point HF_HOME at a local disk.", references=(STATVFS,),
    ),
    FindingKind(
        "disk.not-writable", "error", "a download folder is not writable by this user",
        why="Downloads fail with a permission error, often after a cache was created by root or another user.",
        fix="Point HF_HOME (or HF_HUB_CACHE) at a folder you own, or change the folder's owner.",
        references=(HF_ENV_DOCS,),
    ),
    FindingKind(
        "disk.low-space", "warning", "a download folder has less free space than thresholds.min_free_gb",
        severities=("warning", "error"),
        why="A model shard that does not fit fails at the end of its download; huggingface_hub only warns "
            "before it starts. The space counted is what a non-root user may write (f_bavail).",
        fix="Free space, or set HF_HOME to a larger disk.", references=(STATVFS, HF_ENV_DOCS),
    ),
    FindingKind(
        "disk.low-inodes", "warning", "the filesystem has few free inodes",
        why="Every cached file and symlink takes an inode; with none left writes fail with 'No space left "
            "on device' although space is free.",
        fix="Delete unused small files (old caches, virtual environments) or use another filesystem.",
        references=(STATVFS,),
    ),
    FindingKind(
        "disk.fat32", "error", "a download folder is on FAT32, which cannot hold files over 4 GB",
        severities=("warning", "error"),
        why="Most model files and shards are larger than 4 GB; the write fails part way.",
        fix="Use an NTFS, exFAT, ext4 or APFS disk for models.",
        references=("https://learn.microsoft.com/en-us/windows/win32/fileio/filesystem-functionality-comparison",),
    ),
    FindingKind(
        "disk.model-does-not-fit", "error", "a configured or required model is larger than the cache's free space",
        why="The download runs until the disk is full and fails near the end; partial files may be deleted.",
        fix="Free space, or set HF_HOME to a disk with room.", references=(HF_CACHE_DOCS,),
    ),
    FindingKind(
        "disk.kaggle-output-cache", "warning", "Kaggle: the Hugging Face cache is inside /kaggle/working",
        why="/kaggle/working is the notebook's saved output, limited to 20 GB; models cached there count "
            "against it.",
        fix="Put the cache on the session disk, e.g. HF_HOME=/kaggle/temp/hf (not kept after the session).",
        references=("https://www.kaggle.com/docs/notebooks", HF_ENV_DOCS),
    ),
    FindingKind(
        "disk.kaggle", "info", "Kaggle notebook: output and session disks have different limits",
        why="/kaggle/working keeps at most 20 GB; the session disk is larger but is not kept; /kaggle/input "
            "is read-only.",
        references=("https://www.kaggle.com/docs/notebooks",),
    ),
    FindingKind(
        "disk.colab-drive-cache", "warning", "Colab: the Hugging Face cache is on Google Drive",
        why="Drive for desktop caches files under /root/.config/Google/DriveFS on the runtime's own disk, so "
            "a model on Drive still fills the local disk.",
        fix="Keep the cache on the local disk, and copy to Drive only what you must keep.",
        references=("https://github.com/googlecolab/colabtools/issues/960",
                    "https://github.com/googlecolab/colabtools/issues/2087"),
    ),
    FindingKind(
        "disk.quota-timed-out", "warning", "the 'quota' tool did not answer in time",
        why="A hung quota usually means an unreachable network filesystem server; downloads there may hang too.",
        fix="Check the network filesystem, or download to a local disk.",
        references=("https://man7.org/linux/man-pages/man1/quota.1.html",),
    ),
    FindingKind(
        "disk.quota-near-limit", "warning", "a user disk quota leaves little room", severities=("warning", "error"),
        why="statvfs, and so the free space shown, does not see user quotas; downloads stop at the quota.",
        fix="Free space within the quota, ask for a larger one, or download to scratch space.",
        references=("https://man7.org/linux/man-pages/man1/quota.1.html", STATVFS),
    ),
    FindingKind(
        "disk.long-paths-disabled", "warning", "Windows: long paths are disabled (LongPathsEnabled=0)",
        why="The Hugging Face cache nests repository, snapshot and file names; paths over 260 characters fail.",
        fix="Set HKLM\\SYSTEM\\CurrentControlSet\\Control\\FileSystem LongPathsEnabled=1 (administrator), "
            "or use a short HF_HOME such as C:\\hf.",
        references=("https://learn.microsoft.com/en-us/windows/win32/fileio/maximum-file-path-limitation",),
    ),
    FindingKind(
        "disk.no-symlinks", "warning", "Windows: this user cannot create symbolic links",
        why="huggingface_hub then copies blobs into every snapshot instead of linking them, doubling disk use.",
        fix="Turn on Developer Mode (Settings > For developers) or run as administrator.",
        references=(HF_CACHE_DOCS,
                    "https://learn.microsoft.com/en-us/windows/apps/get-started/enable-your-device-for-development"),
    ),
)


CHECK = Check(
    id="disk",
    title="Disk space",
    probe=probe,
    rules=rules,
    order=20,
    timeout=5.0,
    smoke=(SmokeTest("disk", "Write and read back a file in the model cache",
                     "llmdoctor.checks.disk:smoke_disk", timeout=60.0),),
    requires=("model-fit",),
    findings=FINDINGS,
)
