"""Tiny Python packages for tests: a pyproject.toml with modules and entry points, built by
setuptools without the network."""

from __future__ import annotations

from pathlib import Path


def write_package(folder: Path, name: str, version: str, *, modules: dict = None, packages: dict = None,
                  entry_points: dict = None) -> Path:
    """``folder`` holding a pyproject.toml for ``name`` and its code: ``modules`` {module: source}
    (top-level .py files), ``packages`` {package: __init__ source}, ``entry_points``
    {group: {name: "module:attribute"}}."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[build-system]", 'requires = ["setuptools>=64"]', 'build-backend = "setuptools.build_meta"', "",
             "[project]", f'name = "{name}"', f'version = "{version}"', ""]
    if modules:
        lines += ["[tool.setuptools]", f"py-modules = {list(modules)!r}".replace("'", '"'), ""]
    for group, points in (entry_points or {}).items():
        lines.append(f'[project.entry-points."{group}"]')
        lines += [f'{point} = "{value}"' for point, value in points.items()]
        lines.append("")
    (folder / "pyproject.toml").write_text("\n".join(lines))
    for module, source in (modules or {}).items():
        (folder / f"{module}.py").write_text(source)
    for package, source in (packages or {}).items():
        (folder / package).mkdir(exist_ok=True)
        (folder / package / "__init__.py").write_text(source)
    return folder
