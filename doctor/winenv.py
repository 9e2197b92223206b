"""The Windows environment in the registry: a small backend that probes and the fix
executor use, with a real ``winreg`` implementation and an in-memory one for tests.

Scopes: ``user`` is ``HKCU\\Environment``; ``machine`` is
``HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Environment``.
Values keep their registry type (``REG_SZ`` or ``REG_EXPAND_SZ``).
"""

from __future__ import annotations

import copy
import sys
from typing import Optional

USER_KEY = r"Environment"
MACHINE_KEY = r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment"
TYPES = ("REG_SZ", "REG_EXPAND_SZ")


class RegistryError(Exception):
    pass


class InMemoryRegistry:
    """{scope: {name: (value, type)}}; names compare case-insensitively, as in Windows."""

    def __init__(self, data: Optional[dict] = None) -> None:
        self.data = {"user": {}, "machine": {}}
        for scope, values in (data or {}).items():
            for name, (value, kind) in values.items():
                self.data[scope][name] = (value, kind)
        self.broadcasts = 0

    def _find(self, scope: str, name: str) -> Optional[str]:
        for existing in self.data[scope]:
            if existing.lower() == name.lower():
                return existing
        return None

    def read_all(self, scope: str) -> dict:
        return {name: {"value": v, "type": t} for name, (v, t) in self.data[scope].items()}

    def get(self, scope: str, name: str) -> Optional[tuple]:
        key = self._find(scope, name)
        return self.data[scope][key] if key else None

    def set(self, scope: str, name: str, value: str, kind: str) -> None:
        if kind not in TYPES:
            raise RegistryError(f"unsupported registry type {kind}")
        key = self._find(scope, name) or name
        self.data[scope][key] = (value, kind)

    def delete(self, scope: str, name: str) -> None:
        key = self._find(scope, name)
        if key:
            del self.data[scope][key]

    def broadcast(self) -> None:
        self.broadcasts += 1

    def copy(self) -> InMemoryRegistry:
        clone = InMemoryRegistry()
        clone.data = copy.deepcopy(self.data)
        return clone


class WinRegBackend:  # pragma: no cover - needs Windows
    """The real registry, through ``winreg``; broadcasts WM_SETTINGCHANGE after changes."""

    def _open(self, scope: str, write: bool = False):
        import winreg

        root, path = (
            (winreg.HKEY_CURRENT_USER, USER_KEY) if scope == "user"
            else (winreg.HKEY_LOCAL_MACHINE, MACHINE_KEY)
        )
        access = winreg.KEY_READ | (winreg.KEY_SET_VALUE if write else 0)
        return winreg.OpenKey(root, path, 0, access)

    def read_all(self, scope: str) -> dict:
        import winreg

        names = {winreg.REG_SZ: "REG_SZ", winreg.REG_EXPAND_SZ: "REG_EXPAND_SZ"}
        values = {}
        with self._open(scope) as key:
            index = 0
            while True:
                try:
                    name, value, kind = winreg.EnumValue(key, index)
                except OSError:
                    break
                index += 1
                if kind in names:
                    values[name] = {"value": value, "type": names[kind]}
        return values

    def get(self, scope: str, name: str) -> Optional[tuple]:
        import winreg

        try:
            with self._open(scope) as key:
                value, kind = winreg.QueryValueEx(key, name)
        except FileNotFoundError:
            return None
        return value, "REG_EXPAND_SZ" if kind == winreg.REG_EXPAND_SZ else "REG_SZ"

    def set(self, scope: str, name: str, value: str, kind: str) -> None:
        import winreg

        reg_type = winreg.REG_EXPAND_SZ if kind == "REG_EXPAND_SZ" else winreg.REG_SZ
        try:
            with self._open(scope, write=True) as key:
                winreg.SetValueEx(key, name, 0, reg_type, value)
        except PermissionError as exc:
            raise RegistryError(f"no permission to write {scope} variable {name}: {exc}") from None

    def delete(self, scope: str, name: str) -> None:
        import winreg

        try:
            with self._open(scope, write=True) as key:
                winreg.DeleteValue(key, name)
        except FileNotFoundError:
            pass

    def broadcast(self) -> None:
        import ctypes
        from ctypes import wintypes

        HWND_BROADCAST, WM_SETTINGCHANGE, SMTO_ABORTIFHUNG = 0xFFFF, 0x001A, 0x0002
        result = wintypes.DWORD()
        ctypes.windll.user32.SendMessageTimeoutW(
            HWND_BROADCAST, WM_SETTINGCHANGE, 0, "Environment", SMTO_ABORTIFHUNG, 2000,
            ctypes.byref(result),
        )


_backend_override = None


def set_backend(backend) -> None:
    """Tests replace the registry with an :class:`InMemoryRegistry` here."""
    global _backend_override
    _backend_override = backend


def get_backend():
    if _backend_override is not None:
        return _backend_override
    if sys.platform == "win32":  # pragma: no cover
        return WinRegBackend()
    return None
