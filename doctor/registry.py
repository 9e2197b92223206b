"""Discovery of checks and fixes through entry points, pluggy-style.

Built-ins are registered in llmdoctor's own ``pyproject.toml`` under the same groups a
third-party package uses (``llmdoctor.checks``, ``llmdoctor.fixes``), so the plugin path
runs on every invocation. A plugin that fails to load is recorded, never raised.
"""

from __future__ import annotations

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


def _entry_points(group: str) -> list:
    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        selected = list(eps.select(group=group))
    else:  # Python 3.9
        selected = list(eps.get(group, []))
    # a distribution installed twice (editable and normal) would register twice
    unique, seen = [], set()
    for ep in selected:
        key = (ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            unique.append(ep)
    return sorted(unique, key=lambda ep: ep.name)


def _distribution_name(ep) -> str:
    dist = getattr(ep, "dist", None)  # Python 3.10+
    if dist is not None:
        try:
            return f"{dist.metadata['Name']} {dist.version}"
        except Exception:
            pass
    module = ep.value.split(":", 1)[0]
    return "llmdoctor (built-in)" if module.startswith("llmdoctor.") else module.split(".")[0]


def load_registry() -> Registry:
    registry = Registry()
    for group, kind, expected in ((CHECK_GROUP, "check", Check), (FIX_GROUP, "fix", Fix)):
        for ep in _entry_points(group):
            source = _distribution_name(ep)
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

