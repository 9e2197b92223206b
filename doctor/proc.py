"""Running external tools safely: argv lists, a timeout that kills the whole process
tree, and output decoded whatever its encoding. Never raises; failures become data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Optional


@dataclass
class ToolResult:
    argv: list
    returncode: Optional[int] = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    error: str = ""  # why it could not run at all
    duration_ms: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.error

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        return data


def decode(data: bytes) -> str:
    """Text from tool output: UTF-8 when valid, else the locale's code page, never an error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if sys.platform == "win32":
        try:
            return data.decode("mbcs", errors="replace")
        except LookupError:  # pragma: no cover
            pass
    return data.decode("utf-8", errors="replace")


def _kill_tree(process: subprocess.Popen) -> None:
    try:
        if sys.platform == "win32":
            subprocess.run(  # noqa: S603 - argv list, fixed tool
                ["taskkill", "/F", "/T", "/PID", str(process.pid)],
                capture_output=True,
                timeout=5,
            )
        else:
            os.killpg(process.pid, signal.SIGKILL)
    except Exception:
        pass
    try:
        process.kill()
    except Exception:
        pass


def run(
    argv: Sequence[str],
    timeout: float,
    env: Optional[dict] = None,
    cwd: Optional[str] = None,
    input_text: Optional[str] = None,
) -> ToolResult:
    """Run ``argv`` (a list, never a shell string) for at most ``timeout`` seconds."""
    argv = [str(a) for a in argv]
    result = ToolResult(argv=argv)
    if not argv:
        result.error = "empty command"
        return result
    started = time.monotonic()
    kwargs: dict = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    else:
        kwargs["start_new_session"] = True  # so a timeout can kill grandchildren too
    try:
        process = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            **kwargs,
        )
    except (OSError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        result.duration_ms = (time.monotonic() - started) * 1000
        return result
    try:
        out, err = process.communicate(
            input=input_text.encode() if input_text is not None else None, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        try:
            out, err = process.communicate(timeout=2)
        except Exception:
            out, err = b"", b""
        result.timed_out = True
        result.error = f"timed out after {timeout:g} s and was killed"
    except Exception as exc:  # pragma: no cover - defensive
        _kill_tree(process)
        out, err = b"", b""
        result.error = f"{type(exc).__name__}: {exc}"
    result.returncode = process.returncode
    result.stdout = decode(out or b"")
    result.stderr = decode(err or b"")
    result.duration_ms = (time.monotonic() - started) * 1000
    return result


def which(name: str, path: Optional[str] = None) -> Optional[str]:
    return shutil.which(name, path=path)
