"""Discovery of checks and fixes: llmdoctor's own by name, third-party ones through entry
points, pluggy-style, each imported only when a command needs it.

The built-ins are listed here (and, for other tools, as entry points in ``pyproject.toml``;
a test keeps the two equal), so ``check --only path`` imports the path check alone and scans
no installed distribution. Plugins register under the groups ``llmdoctor.checks`` and
``llmdoctor.fixes``; they are found, in one walk over the distributions, only when a command
needs every check or names one that is not built in. ``LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD=1``
turns that walk off, as pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` does. A plugin that fails
to load is recorded (``Registry.errors``), never raised.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

from llmdoctor import __version__
from llmdoctor.models import Check, Fix

__all__ = ["BUILTIN_CHECKS", "BUILTIN_FIXES", "CHECK_GROUP", "FIX_GROUP", "LoadError", "Registry",
           "load_registry", "plugin_entry_points"]

CHECK_GROUP = "llmdoctor.checks"
FIX_GROUP = "llmdoctor.fixes"
OWN_SOURCE = f"llmdoctor {__version__}"

BUILTIN_CHECKS = {
    "path": "llmdoctor.checks.path:CHECK",
    "disk": "llmdoctor.checks.disk:CHECK",
    "nvidia-driver": "llmdoctor.checks.nvidia_driver:CHECK",
    "cuda-toolkit": "llmdoctor.checks.cuda_toolkit:CHECK",
    "nvcc": "llmdoctor.checks.nvcc:CHECK",
    "vs-cuda": "llmdoctor.checks.vs_cuda:CHECK",
    "torch": "llmdoctor.checks.torch:CHECK",
    "bitsandbytes": "llmdoctor.checks.bitsandbytes:CHECK",
    "hf-endpoint": "llmdoctor.checks.hf_endpoint:CHECK",
    "ffmpeg": "llmdoctor.checks.ffmpeg:CHECK",
    "model-fit": "llmdoctor.checks.model_fit:CHECK",
    "require": "llmdoctor.checks.require:CHECK",
}
BUILTIN_FIXES = {
    "path": "llmdoctor.fixes.path:FIX",
    "cuda-home": "llmdoctor.fixes.cuda_home:FIX",
    "torch-cuda": "llmdoctor.fixes.torch_cuda:FIX",
    "bitsandbytes": "llmdoctor.fixes.bitsandbytes:FIX",
    "vs-cuda": "llmdoctor.fixes.vs_cuda:FIX",
    "msvc-unsupported": "llmdoctor.fixes.msvc_unsupported:FIX",
    "hf-endpoint": "llmdoctor.fixes.hf_endpoint:FIX",
    "ffmpeg": "llmdoctor.fixes.ffmpeg:FIX",
    "require-packages": "llmdoctor.fixes.require_packages:FIX",
}


@dataclass
class LoadError:
    group: str
    name: str
    value: str
    source: str
    error: str


def autoload_disabled() -> bool:
    return os.environ.get("LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0")


def plugin_entry_points(groups: tuple) -> dict:
    """{group: [(entry point, "distribution version")]} of third-party plugins.

    Read from a small cache while nothing on ``sys.path`` has changed since it was written
    (installing or removing a distribution changes its folder's modification time), else from
    one walk over the installed distributions, which costs 17-20 µs for each of them.
    """
    if autoload_disabled():
        return {group: [] for group in groups}
    key = _path_key()
    cached = _read_cache(key, groups)
    if cached is not None:
        return cached
    found = _scan_distributions(groups)
    _write_cache(key, found)
    return found


class CachedEntryPoint:
    """An entry point read from the cache: a name and ``module:attribute``, loaded by import."""

    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def load(self):
        return _import(self.value)


def _scan_distributions(groups: tuple) -> dict:
    """One walk over the distributions for all groups (each walk reads every dist-info), and
    through the distributions rather than ``entry_points()``: Python 3.9's entry points do not
    know the distribution they come from, and ``list`` shows it. llmdoctor's own are skipped
    (they are built in)."""
    from importlib import metadata

    found: dict = {group: [] for group in groups}
    seen: set = set()
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"] or ""
            if name.lower() == "llmdoctor":
                continue
            eps = [ep for ep in dist.entry_points if ep.group in found]
        except Exception:  # a broken dist-info must not stop discovery
            continue
        for ep in eps:
            key = (ep.group, ep.name, ep.value)  # an editable and a normal install of one package
            if key in seen:
                continue
            seen.add(key)
            found[ep.group].append((ep, f"{name} {dist.version}"))
    return {group: sorted(pairs, key=lambda pair: pair[0].name) for group, pairs in found.items()}


def _cache_file() -> str:
    import zlib

    name = f"plugins-{zlib.crc32(sys.prefix.encode('utf-8', 'surrogateescape')):08x}.json"  # one per environment
    from llmdoctor.dirs import user_dir

    return str(user_dir("cache") / name)


def _path_key() -> list:
    """What decides which distributions are installed: the interpreter and each folder on
    sys.path with its modification time."""
    key: list = [sys.version, sys.prefix]
    for entry in sys.path:
        folder = entry or os.getcwd()
        try:
            key.append([folder, os.stat(folder).st_mtime_ns])
        except OSError:
            key.append([folder, None])
    return key


def _read_cache(key: list, groups: tuple) -> Optional[dict]:
    import json

    path = _cache_file()
    try:
        with open(path, encoding="utf-8") as handle:
            info = os.fstat(handle.fileno())
            if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
                return None  # another user's, or writable by others: not trusted to name modules
            data = json.load(handle)
        if data.get("key") != key:
            return None
        return {group: [(CachedEntryPoint(name, value), source) for name, value, source in data["groups"][group]]
                for group in groups}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(key: list, found: dict) -> None:
    import json

    path = _cache_file()
    data = {"key": key, "groups": {group: [[ep.name, ep.value, source] for ep, source in pairs]
                                   for group, pairs in found.items()}}
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only home: scan again next time


def _import(value: str):
    module, _, attribute = value.partition(":")
    item = importlib.import_module(module)
    for part in attribute.split(".") if attribute else ():
        item = getattr(item, part)
    return item


class _Table(Mapping):
    """{id: Check or Fix} that imports a built-in on first use and looks for plugins only
    when asked for everything, or for an id that is not built in."""

    def __init__(self, registry: Registry, kind: str, group: str, builtins: dict, expected: type) -> None:
        self._registry, self._kind, self._group = registry, kind, group
        self._builtins, self._expected = builtins, expected
        self._items: dict = {}
        self._tried: set = set()  # built-ins imported (or failed to): each is tried once
        self._plugins_loaded = False

    def _accept(self, item_id_hint: str, value: str, source: str, load) -> None:
        try:
            item = load()
            if callable(item) and not isinstance(item, self._expected):
                item = item()
            if not isinstance(item, self._expected):
                raise TypeError(f"expected a llmdoctor.models.{self._expected.__name__}, "
                                f"got {type(item).__name__}")
        except BaseException as exc:  # a plugin may raise anything, SystemExit included
            if isinstance(exc, KeyboardInterrupt):
                raise
            error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            self._registry.errors.append(LoadError(self._group, item_id_hint, value, source, error))
            return
        if item.id in self._items or (item.id in self._builtins and source != OWN_SOURCE):
            self._registry.errors.append(LoadError(
                self._group, item_id_hint, value, source,
                f"duplicate {self._kind} id {item.id!r} (already from "
                f"{self._registry.source_of(self._kind, item.id) if item.id in self._items else OWN_SOURCE})"))
            return
        self._items[item.id] = item
        self._registry.sources[(self._kind, item.id)] = source

    def _load_builtin(self, item_id: str) -> None:
        if item_id not in self._tried and item_id in self._builtins:
            self._tried.add(item_id)
            value = self._builtins[item_id]
            self._accept(item_id, value, OWN_SOURCE, lambda: _import(value))

    def load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep, source in self._registry.plugin_entry_points()[self._group]:
            self._accept(ep.name, ep.value, source, ep.load)

    def load_all(self) -> None:
        for item_id in self._builtins:
            self._load_builtin(item_id)
        self.load_plugins()

    def add(self, item, source: str) -> None:
        """Register ``item`` directly (tests, embedding): it wins over nothing and nobody."""
        self._items[item.id] = item
        self._registry.sources[(self._kind, item.id)] = source

    def __getitem__(self, item_id: str):
        if item_id in self._builtins:
            self._load_builtin(item_id)
        elif item_id not in self._items:
            self.load_plugins()
        return self._items[item_id]

    def __contains__(self, item_id) -> bool:
        try:
            self[item_id]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self):
        self.load_all()
        return iter(sorted(self._items))

    def __len__(self) -> int:
        self.load_all()
        return len(self._items)


@dataclass
class Registry:
    errors: list = field(default_factory=list)
    sources: dict = field(default_factory=dict)  # ("check"|"fix", id) -> "distribution version"
    builtin_checks: dict = field(default_factory=lambda: dict(BUILTIN_CHECKS))
    builtin_fixes: dict = field(default_factory=lambda: dict(BUILTIN_FIXES))
    _entry_points: Optional[dict] = field(default=None, repr=False)

    @classmethod
    def of(cls, *, checks: tuple = (), fixes: tuple = (), source: str = "tests") -> Registry:
        """A registry of exactly these checks and fixes: no built-ins, no plugins."""
        registry = cls(builtin_checks={}, builtin_fixes={}, _entry_points={CHECK_GROUP: [], FIX_GROUP: []})
        for check in checks:
            registry.checks.add(check, source)
        for fix in fixes:
            registry.fixes.add(fix, source)
        return registry

    def __post_init__(self) -> None:
        self.checks = _Table(self, "check", CHECK_GROUP, self.builtin_checks, Check)
        self.fixes = _Table(self, "fix", FIX_GROUP, self.builtin_fixes, Fix)

    def plugin_entry_points(self) -> dict:
        if self._entry_points is None:  # one walk for both groups
            self._entry_points = plugin_entry_points((CHECK_GROUP, FIX_GROUP))
        return self._entry_points

    def source_of(self, kind: str, item_id: str) -> str:
        return self.sources.get((kind, item_id), "?")

    def smoke_tests(self) -> dict:
        tests = {}
        for check in self.checks.values():
            for smoke in check.smoke:
                tests[smoke.id] = smoke
        return tests


def load_registry() -> Registry:
    """The registry; checks and fixes are imported as they are asked for, and load errors
    recorded in ``errors``."""
    return Registry()
