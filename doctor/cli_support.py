"""What the command line needs besides typer: output, errors and exit codes, loading the
registry and configuration, and the ``check`` command itself.

Kept free of typer so that the commands people run most (``llmdoctor check``, ``--help``)
can start without importing it (see ``llmdoctor.entry``); ``llmdoctor.cli`` builds the typer
application on top of it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, List, Optional

from llmdoctor import __version__

__all__ = ["EXIT_OK", "EXIT_PROBLEMS", "EXIT_USAGE", "FORMATS", "Fail", "can_print_unicode", "err", "guarded", "load",
           "out", "requirements_from", "run_check", "selection", "split_ids", "target_and_how", "target_python",
           "use_color", "write_report"]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
FORMATS = ("text", "json", "markdown", "prometheus", "npd")


class Fail(Exception):
    """A one-line error for the user, with the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def out(text: str, *, styled: bool = False) -> None:
    """Everything printed goes through the redactor: secrets never reach the terminal; and
    control characters are shown, not sent (``styled`` output neutralised its data already
    and keeps rich's own colour sequences)."""
    from llmdoctor.redact import Redactor
    from llmdoctor.render.safe_text import neutralise

    text = Redactor.from_environment().text(text)
    sys.stdout.write(text if styled else neutralise(text))
    if not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def err(text: str) -> None:
    from llmdoctor.redact import Redactor
    from llmdoctor.render.safe_text import neutralise

    sys.stderr.write(neutralise(Redactor.from_environment().text(text)).rstrip("\n") + "\n")


def use_color() -> bool:
    """Colour on a terminal, unless NO_COLOR is set to anything (https://no-color.org)."""
    try:
        return sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    except (ValueError, OSError):
        return False


def split_ids(values: Optional[List[str]]) -> list:
    ids = []
    for value in values or []:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts:
            raise Fail(f"an empty list of ids ({value!r}): name at least one")
        ids.extend(parts)
    return ids


def load(config_path: Optional[Path] = None):
    from llmdoctor.config import ConfigError, load_config
    from llmdoctor.registry import load_registry
    from llmdoctor.runner import nearest

    registry, config = load_registry(), load_config(config_path)
    for index, check_id in enumerate(config.skip):  # a misspelt id would silently skip nothing
        if check_id not in registry.checks:
            raise ConfigError(f"{config.source}: skip[{index}]: unknown check id {check_id[:100]!r}"
                              f"{nearest(check_id, registry.checks)}")
    check_acknowledgements(registry, config)
    return registry, config


def check_acknowledgements(registry, config) -> None:
    """Each ``acknowledge`` id (a glob) must match a declared finding kind: a misspelt one would
    excuse nothing, silently. Plugins' checks that declare no kinds are taken on trust."""
    if not config.acknowledge:
        return
    from llmdoctor import catalogue
    from llmdoctor.config import ConfigError
    from llmdoctor.runner import nearest

    engine_areas = ("plugins", "config")
    areas = {ack.id.split(".", 1)[0] for ack in config.acknowledge}
    globbed = any(ch in area for area in areas for ch in "*?[")
    # only the checks the acknowledgements name are imported, unless one is a glob over checks
    named = list(registry.checks) if globbed else [a for a in areas if a in registry.checks]
    entries = catalogue.entries(registry, check_ids=named)
    for index, ack in enumerate(config.acknowledge):
        where = f"{config.source}: acknowledge[{index}].id: {ack.id[:100]!r}"
        area = ack.id.split(".", 1)[0]
        if area and not any(ch in area for ch in "*?[") and area not in engine_areas and area not in registry.checks:
            raise ConfigError(f"{where} names no check{nearest(area, set(registry.checks) | set(engine_areas))}")
        check = registry.checks.get(area)
        if check is not None and not check.findings:
            continue
        if catalogue.unknown_pattern(ack.id, entries, named):
            raise ConfigError(f"{where} matches no known finding{catalogue.nearest_id(ack.id, entries)} "
                              f"(llmdoctor explain --list)")


def selection(registry, config, only, skip) -> tuple:
    """(the checks to run, {check: why it is skipped}) from --only, --skip and the configuration."""
    from llmdoctor.runner import select_checks

    only_ids, skip_ids = split_ids(only), split_ids(skip)
    check_ids = select_checks(registry, only_ids, skip_ids)
    skipped = {c: "skipped by --skip" for c in skip_ids}
    for check_id in config.skip:
        if check_id in check_ids and check_id not in only_ids:
            skipped.setdefault(check_id, f"skipped by the configuration ({config.source})")
    return check_ids, skipped


def requirements_from(path: Optional[Path], config) -> Optional[dict]:
    """``--require FILE``, else the configuration's ``[require]``, else None."""
    if path is not None:
        from llmdoctor.requirements import load_file

        return load_file(path)
    return config.require


def target_python(python: Optional[str]) -> str:
    return target_and_how(python)[0]


def target_and_how(python: Optional[str]) -> tuple:
    """(interpreter, how it was chosen); a --python that names nothing runnable is exit 2."""
    from llmdoctor.target import choose_target

    return choose_target(python)


def write_report(path: Path, text: str) -> None:
    """All at once (a temporary file beside it, then a rename), redacted: a collector that
    reads the file never sees half of it."""
    from llmdoctor.fileio import FileIOError, atomic_write
    from llmdoctor.redact import Redactor

    if not text.endswith("\n"):
        text += "\n"
    try:
        atomic_write(str(path), Redactor.from_environment().text(text).encode("utf-8", "backslashreplace"),
                     inherit_owner=False)
    except (FileIOError, OSError) as exc:
        raise Fail(f"{path}: cannot write the report: {getattr(exc, 'strerror', None) or exc}",
                   EXIT_PROBLEMS) from None


def can_print_unicode() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
    return "utf" in encoding


def guarded(command: Callable[[], object]) -> None:
    """Run ``command`` as the whole program: exit with its code; every error is one line, never a
    traceback (click's usage errors and typer.Exit included, recognised by name)."""
    from llmdoctor.errors import UserError

    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:  # started with a closed stream (>&-): as if /dev/null
            setattr(sys, name, open(os.devnull, mode))  # noqa: SIM115 - lives as long as the process
    for stream in (sys.stdout, sys.stderr):  # odd bytes in PATH must not crash the report
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    try:
        code = command()
        sys.exit(code if isinstance(code, int) else EXIT_OK)
    except UserError as exc:
        err(f"llmdoctor: error: {exc}")
        sys.exit(EXIT_USAGE)
    except Fail as exc:
        err(f"llmdoctor: error: {exc}")
        sys.exit(exc.code)
    except KeyboardInterrupt:
        err("llmdoctor: interrupted")
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is quiet
        except OSError:
            pass
        sys.exit(EXIT_PROBLEMS)
    except Exception as exc:  # typer.Exit, click's usage errors, anything unforeseen: one line
        if type(exc).__name__ == "Exit" and isinstance(getattr(exc, "exit_code", None), int):
            sys.exit(exc.exit_code)  # typer.Exit (click.exceptions.Exit)
        _handle_other(exc)


def _handle_other(exc: Exception) -> None:
    # click's exceptions, whether typer vendors click (0.2x) or depends on it (older typer)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Abort" in names:
        err("llmdoctor: aborted")
        sys.exit(EXIT_PROBLEMS)
    if "ClickException" in names:
        hint = " (see 'llmdoctor --help')"
        err(f"llmdoctor: error: {exc.format_message()}{hint if 'UsageError' in names else ''}")
        sys.exit(EXIT_USAGE if "UsageError" in names else getattr(exc, "exit_code", 1))
    err(f"llmdoctor: internal error: {type(exc).__name__}: {exc} "
         "(please report it with 'llmdoctor collect' output)")
    sys.exit(3)


def run_check(*, only: Optional[list] = None, skip: Optional[list] = None, output_format: str = "text",
              output: Optional[Path] = None, as_json: bool = False, verbose: bool = False,
              snapshot: Optional[Path] = None, python: Optional[str] = None, strict: bool = False,
              offline: bool = False, models: Optional[list] = None, deep: bool = False,
              require: Optional[Path] = None, target_started=None) -> int:
    """``llmdoctor check``: diagnose this machine (or a snapshot), print or write the report, and
    return the exit code. Called by the typer command and by the fast path (``llmdoctor.entry``)."""
    import time

    from llmdoctor.runner import collect_live, diagnose
    from llmdoctor.snapshot import load_snapshot

    started = time.monotonic()
    registry, config = load()
    if target_started is None and snapshot is None and not only:
        # every check runs, and most read the target interpreter: start it now, so that it starts
        # while the checks are imported rather than after
        from llmdoctor.target import start_probe

        target_started = start_probe(target_and_how(python)[0],
                                     timeout=float(config.threshold("probe_timeout_s")) * 2)
    check_ids, skipped = selection(registry, config, only, skip)
    if "model-fit" in check_ids and not models and not config.models:
        skipped.setdefault("model-fit", "no model named (--model, or [[models]] in the configuration)")
    requirements = requirements_from(require, config)
    if "require" in check_ids and not requirements:
        skipped.setdefault("require", "no requirements (--require FILE, or [require] in the configuration)")
    if requirements and config.require != requirements:
        from dataclasses import replace

        config = replace(config, require=requirements)  # a snapshot is judged against them too
    if snapshot is not None:
        data = load_snapshot(snapshot)
    else:
        to_probe = [c for c in check_ids if c not in skipped]
        target, how = target_and_how(python)
        data = collect_live(registry, config, to_probe, target, offline,
                            options={"models": list(models or []), "deep": deep, "require": requirements},
                            target_started=target_started)
        data["target_choice"] = {"python": target, "how": how}
    diagnosis = diagnose(data, registry, config, check_ids=check_ids, skipped_by_user=skipped, strict=strict)
    fmt = "json" if as_json else str(getattr(output_format, "value", output_format))
    if fmt == "json":
        import json

        text = json.dumps(diagnosis.to_json(), indent=2, ensure_ascii=False)
    elif fmt == "markdown":
        from llmdoctor.redact import SHARE_NOTE, share_scrubber
        from llmdoctor.render.markdown import render_markdown

        # pasted into public trackers: nothing that names the machine or its user, and it says so
        heading, _, rest = share_scrubber()(render_markdown(diagnosis)).partition("\n")
        text = f"{heading}\n\n_{SHARE_NOTE}_\n{rest}"
    elif fmt == "prometheus":
        from llmdoctor.redact import Redactor, home_scrubber
        from llmdoctor.render.prometheus import render_prometheus

        redactor, home = Redactor.from_environment(), home_scrubber()
        text = render_prometheus(diagnosis, data.get("facts") or {}, duration_s=time.monotonic() - started,
                                 timestamp=time.time(), scrub=lambda value: home(redactor.text(value)),
                                 version=__version__)
    elif fmt == "npd":
        from llmdoctor.render.npd import render_npd

        text = render_npd(diagnosis)
    else:
        from llmdoctor.render.text import render_diagnosis

        color = use_color() and output is None
        text = render_diagnosis(diagnosis, verbose=verbose, color=color, ascii_only=not can_print_unicode())
        if output is None:
            out(text, styled=color)
            return diagnosis.exit_code
    if output is not None:
        write_report(output, text)
    else:
        out(text)
    return diagnosis.exit_code
