"""Discovery of checks and fixes through entry points, pluggy-style.

Built-ins are registered in llmdoctor's own ``pyproject.toml`` under the same groups a
third-party package uses (``llmdoctor.checks``, ``llmdoctor.fixes``), so the plugin path
runs on every invocation. A plugin that fails to load is recorded, never raised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata

from llmdoctor.models import Check, Fix

CHECK_GROUP = "llmdoctor.checks"
FIX_GROUP = "llmdoctor.fixes"


@dataclass
class LoadError:
    group: str
    name: str
    value: str
    source: str
    error: str


@dataclass
class Registry:
    checks: dict = field(default_factory=dict)  # id -> Check
    fixes: dict = field(default_factory=dict)  # id -> Fix
    sources: dict = field(default_factory=dict)  # ("check"|"fix", id) -> distribution name
    errors: list = field(default_factory=list)

    def source_of(self, kind: str, item_id: str) -> str:
        return self.sources.get((kind, item_id), "?")

    def smoke_tests(self) -> dict:
        tests = {}
        for check in self.checks.values():
            for smoke in check.smoke:
                tests[smoke.id] = smoke
        return tests


def _entry_points(groups: tuple) -> dict:
    """{group: [(entry point, "distribution version")]}, each (name, value) once per group.

    One walk over the distributions for all groups (each walk reads every dist-info), and
    through the distributions rather than ``entry_points()``: Python 3.9's entry points do
    not know the distribution they come from, and ``list`` shows it.
    """
    found: dict = {group: [] for group in groups}
    seen: set = set()
    # as pytest's PYTEST_DISABLE_PLUGIN_AUTOLOAD: only llmdoctor's own checks and fixes
    own_only = os.environ.get("LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0")
    for dist in metadata.distributions():
        if own_only and (dist.metadata["Name"] or "").lower() != "llmdoctor":
            continue
        try:
            eps = [ep for ep in dist.entry_points if ep.group in found]
        except Exception:  # a broken dist-info must not stop discovery
            continue
        for ep in eps:
            key = (ep.group, ep.name, ep.value)  # an editable and a normal install of one package
            if key in seen:
                continue
            seen.add(key)
            try:
                source = f"{dist.metadata['Name']} {dist.version}"
            except Exception:
                source = ep.value.split(":", 1)[0].split(".")[0]
            found[ep.group].append((ep, source))
    return {group: sorted(pairs, key=lambda pair: pair[0].name) for group, pairs in found.items()}


def load_registry() -> Registry:
    registry = Registry()
    entry_points = _entry_points((CHECK_GROUP, FIX_GROUP))
    for group, kind, expected in ((CHECK_GROUP, "check", Check), (FIX_GROUP, "fix", Fix)):
        for ep, source in entry_points[group]:
            try:
                item = ep.load()
                if callable(item) and not isinstance(item, expected):
                    item = item()
                if not isinstance(item, expected):
                    raise TypeError(
                        f"expected a llmdoctor.models.{expected.__name__}, got {type(item).__name__}"
                    )
            except BaseException as exc:  # a plugin may raise anything, SystemExit included
                if isinstance(exc, KeyboardInterrupt):
                    raise
                error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
                registry.errors.append(LoadError(group, ep.name, ep.value, source, error))
                continue
            table = registry.checks if kind == "check" else registry.fixes
            if item.id in table:
                registry.errors.append(
                    LoadError(group, ep.name, ep.value, source,
                              f"duplicate {kind} id {item.id!r} (already from "
                              f"{registry.source_of(kind, item.id)})")
                )
                continue
            table[item.id] = item
            registry.sources[(kind, item.id)] = source
    return registry

