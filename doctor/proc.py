"""Running external tools safely: argv lists, a timeout that kills every process the tool
started, output capped and decoded whatever its encoding. Never raises; failures become data.

- Output: at most ``MAX_OUTPUT`` bytes of each stream are kept (the rest is read and
  dropped, so the tool never blocks on a full pipe); ``ToolResult.truncated`` says so.
- Descendants: every tool runs with ``LLMDOCTOR_RUN`` set to a token of this run. A tool
  that leaves children behind, even ones that escaped its process group with ``setsid``, has
  them found by that token (``/proc/PID/environ``, through psutil) and killed: on a timeout,
  when its output pipes stay open after it exited, and when llmdoctor itself exits.
- Interpreters: :func:`run_python` starts a Python in a private, empty working folder, so
  neither the folder llmdoctor was started in nor the shared temp folder can shadow a module.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import threading
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
    truncated: bool = False  # output past MAX_OUTPUT was dropped

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.error

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        return data


MAX_OUTPUT = 4 * 1024 * 1024
RUN_TOKEN_VARIABLE = "LLMDOCTOR_RUN"
_RUN_TOKEN = os.urandom(8).hex()
_live: set = set()  # tokens of tools still running, for the exit handler
_live_lock = threading.Lock()


def _descendants(token: str) -> list:
    """Processes that carry ``token`` in their environment (a tool's whole family)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return []
    found = []
    for process in psutil.process_iter(["pid"]):
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(RUN_TOKEN_VARIABLE) == token:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def _kill_family(token: str) -> None:
    for process in _descendants(token):
        try:
            process.kill()
        except Exception:  # noqa: BLE001
            pass


@atexit.register
def _kill_leftovers() -> None:
    """Nothing llmdoctor started outlives it (a probe abandoned at its deadline, say)."""
    with _live_lock:
        tokens = list(_live)
    for token in tokens:
        _kill_family(token)


def _drain(stream, sink: list, limit: int, flags: dict) -> None:
    kept = 0
    try:
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
            if kept < limit:
                sink.append(chunk[:limit - kept])
                if len(chunk) > limit - kept:
                    flags["truncated"] = True
                kept += len(chunk)
            else:
                flags["truncated"] = True
    except (OSError, ValueError):
        pass


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
    max_output: int = MAX_OUTPUT,
) -> ToolResult:
    """Run ``argv`` (a list, never a shell string) for at most ``timeout`` seconds."""
    argv = [str(a) for a in argv]
    result = ToolResult(argv=argv)
    if not argv:
        result.error = "empty command"
        return result
    started = time.monotonic()
    token = f"{_RUN_TOKEN}-{os.urandom(4).hex()}"
    environment = dict(os.environ if env is None else env)
    environment[RUN_TOKEN_VARIABLE] = token
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
            env=environment,
            cwd=cwd,
            **kwargs,
        )
    except (OSError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        result.duration_ms = (time.monotonic() - started) * 1000
        return result
    with _live_lock:
        _live.add(token)
    outputs: dict = {"stdout": [], "stderr": []}
    flags: dict = {}
    readers = [threading.Thread(target=_drain, args=(getattr(process, name), outputs[name], max_output, flags),
                                daemon=True) for name in ("stdout", "stderr")]
    for reader in readers:
        reader.start()
    try:
        if input_text is not None:
            try:
                process.stdin.write(input_text.encode())
                process.stdin.close()
            except OSError:
                pass
        deadline = started + timeout
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            result.timed_out = True
            result.error = f"timed out after {timeout:g} s and was killed"
            _kill_tree(process)
            _kill_family(token)
        for reader in readers:
            reader.join(2 if result.timed_out else 0.5)
        if any(reader.is_alive() for reader in readers):
            # the tool exited but something it started still holds its output open
            _kill_family(token)
            for reader in readers:
                reader.join(2)
    except Exception as exc:  # pragma: no cover - defensive
        _kill_tree(process)
        _kill_family(token)
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        for stream in (process.stdout, process.stderr):
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass
        with _live_lock:
            _live.discard(token)
    result.returncode = process.returncode
    result.stdout = decode(b"".join(outputs["stdout"]))
    result.stderr = decode(b"".join(outputs["stderr"]))
    result.truncated = bool(flags.get("truncated"))
    result.duration_ms = (time.monotonic() - started) * 1000
    return result


def run_python(argv: Sequence[str], timeout: float, env: Optional[dict] = None,
               max_output: int = MAX_OUTPUT) -> ToolResult:
    """Run an interpreter (``argv[0]``) in a private, empty working folder: a ``json.py``
    planted in the folder llmdoctor was started in, or in the shared temp folder, is never
    on its ``sys.path``."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmdoctor-") as folder:
        return run(argv, timeout, env=env, cwd=folder, max_output=max_output)


def which(name: str, path: Optional[str] = None) -> Optional[str]:
    return shutil.which(name, path=path)
