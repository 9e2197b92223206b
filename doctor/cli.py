"""The ``llmdoctor`` command line.

Exit codes (onboarding scripts depend on them):
  0  no error findings (check), or the fix worked
  1  at least one error finding (or a warning under --strict); a fix not applied or not fixed
  2  usage error: unknown option or check id, bad configuration, unreadable snapshot

Heavy modules (rich, the registry, the checks) are imported inside the commands so that
``llmdoctor --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from llmdoctor import __version__
from llmdoctor.cli_support import (
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    Fail,
    can_print_unicode,
    err,
    guarded,
    load,
    out,
    requirements_from,
    run_check,
    selection,
    split_ids,
    target_and_how,
    target_python,
    use_color,
    write_report,
)

app = typer.Typer(
    name="llmdoctor",
    help="Find and fix what stops large language models from running on this machine.\n\n"
         "Exit codes: 0 no errors; 1 errors found (or warnings with --strict), or a fix not "
         "applied; 2 usage error (bad option, unknown check id, bad config or snapshot).",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: typer would otherwise import rich and a Markdown parser
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Format(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"
    prometheus = "prometheus"
    npd = "npd"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"llmdoctor {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Find and fix what stops large language models from running on this machine."""


# ----------------------------------------------------------------------------- check


@app.command()
def check(
    only: Optional[List[str]] = typer.Option(
        None, "--only", help="Run only these checks (ids, comma-separated or repeated)."),
    skip: Optional[List[str]] = typer.Option(None, "--skip", help="Skip these checks."),
    output_format: Format = typer.Option(
        Format.text, "--format", help="text, json, markdown, prometheus (node_exporter's textfile collector) or npd "
        "(a Kubernetes node-problem-detector plugin: one short line)."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Write the report to this file, atomically (for the textfile collector)."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show details and the facts behind each finding."),
    snapshot: Optional[Path] = typer.Option(
        None, "--snapshot", help="Diagnose a snapshot from 'llmdoctor collect' instead of this machine."),
    python: Optional[str] = typer.Option(
        None, "--python",
        help="Target interpreter whose packages are diagnosed (default: the active venv or conda env, else this one)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too."),
    offline: bool = typer.Option(False, "--offline", help="Do not use the network."),
    models: Optional[List[str]] = typer.Option(
        None, "--model", help="Also judge whether this model fits (repeatable)."),
    deep: bool = typer.Option(
        False, "--deep", help="Also run slower self-tests of packages (e.g. 'python -m bitsandbytes')."),
    require: Optional[Path] = typer.Option(
        None, "--require", help="A team's requirements file ([require] table) to judge this machine against."),
) -> None:
    """Diagnose this machine (or a snapshot) and report findings with the fixes for them."""
    raise typer.Exit(run_check(only=only, skip=skip, output_format=output_format.value, output=output,
                               as_json=as_json, verbose=verbose, snapshot=snapshot, python=python, strict=strict,
                               offline=offline, models=models, deep=deep, require=require))


# ----------------------------------------------------------------------------- report


@app.command("report")
def report_command(
    snapshots: List[Path] = typer.Argument(..., help="Snapshots from 'llmdoctor collect', or folders of them."),
    html_file: Optional[Path] = typer.Option(
        None, "--html", help="Also write one self-contained HTML page (a sortable table) to this file."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    require: Optional[Path] = typer.Option(
        None, "--require", help="Also judge every machine against a team's requirements file."),
) -> None:
    """One view over many machines: problems by root finding, the stack's spread, the odd ones out."""
    from llmdoctor.fleet import build_report, load_fleet
    from llmdoctor.runner import diagnose

    registry, config = load()
    check_ids = sorted(registry.checks)
    skipped = {"model-fit": "not in a fleet report"}
    requirements = requirements_from(require, config)
    if requirements:
        from dataclasses import replace

        config = replace(config, require=requirements)
    else:
        skipped["require"] = "no requirements (--require FILE, or [require] in the configuration)"

    def diagnose_one(snapshot: dict):
        return diagnose(snapshot, registry, config, check_ids=check_ids, skipped_by_user=dict(skipped))

    missing = [str(p) for p in snapshots if not p.exists()]
    if missing:
        raise Fail(f"no such file or folder: {missing[0]}")
    fleet = load_fleet(list(snapshots), diagnose_one)
    if not fleet.machines:
        why = f" ({fleet.unreadable[0][0]}: {fleet.unreadable[0][1]})" if fleet.unreadable else ""
        raise Fail(f"no readable snapshot among {len(snapshots)} path(s){why}")
    report = build_report(fleet)
    if html_file is not None:
        from llmdoctor.render.fleet import render_html

        write_report(html_file, render_html(report))
    if as_json:
        out(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        from llmdoctor.render.fleet import render_text

        out(render_text(report))
    raise typer.Exit(EXIT_PROBLEMS if report["with_errors"] else 0)


# ----------------------------------------------------------------------------- slurm-health


@app.command("slurm-health")
def slurm_health(
    only: Optional[List[str]] = typer.Option(None, "--only", help="Run only these checks."),
    skip: Optional[List[str]] = typer.Option(None, "--skip", help="Skip these checks."),
    node: Optional[str] = typer.Option(
        None, "--node", help="The node's Slurm name (default: SLURMD_NODENAME, else the short host name)."),
    require: Optional[Path] = typer.Option(None, "--require", help="A requirements file to judge the node against."),
    timeout: float = typer.Option(
        45.0, "--timeout", help="Give up after this many seconds and change nothing (Slurm kills slow health checks)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what scontrol would do; change nothing."),
) -> None:
    """Slurm's HealthCheckProgram: drain this node on an error finding, resume it when healthy."""
    import threading

    from llmdoctor import slurm
    from llmdoctor.runner import collect_live, diagnose

    if not 0 < timeout <= 3600:
        raise Fail("--timeout must be from 0 to 3600 seconds")
    registry, config = load()
    check_ids, skipped = selection(registry, config, only, skip)
    skipped.setdefault("model-fit", "not on a health check")
    requirements = requirements_from(require, config)
    if not requirements:
        skipped.setdefault("require", "no requirements (--require FILE, or [require] in the configuration)")
    elif config.require != requirements:
        from dataclasses import replace

        config = replace(config, require=requirements)
    name = slurm.node_name(node)
    outcome: dict = {}

    def run() -> None:
        try:
            to_probe = [c for c in check_ids if c not in skipped]
            target, _ = target_and_how(None)
            data = collect_live(registry, config, to_probe, target, True, options={"require": requirements})
            outcome["diagnosis"] = diagnose(data, registry, config, check_ids=check_ids, skipped_by_user=skipped)
        except BaseException as exc:  # noqa: BLE001 - reported below, in one line
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise Fail(f"llmdoctor slurm-health: no verdict within {timeout:g} s; node {name} left as it is")
    if "error" in outcome:
        raise outcome["error"]
    try:
        state, reason = slurm.node_state(name)
        decision = slurm.decide(outcome["diagnosis"], state, reason)
        if not dry_run:
            slurm.apply(name, decision)
    except slurm.SlurmError as exc:
        raise Fail(f"llmdoctor slurm-health: {exc}") from None
    said = slurm.command_line(name, decision)
    if decision.action == "none":
        out(f"llmdoctor slurm-health: {name}: {decision.reason}")
    else:
        out(f"llmdoctor slurm-health: {name}: {'would run' if dry_run else 'ran'}: {said}")
    raise typer.Exit(0 if decision.healthy else EXIT_PROBLEMS)


# ----------------------------------------------------------------------------- collect


@app.command()
def collect(
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Write the snapshot here (default: standard output); %N or %h in the name "
        "becomes this machine's name (LLMDOCTOR_NODE_NAME, else the short host name), so that many machines can "
        "write into one folder."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Probe only these checks."),
    python: Optional[str] = typer.Option(None, "--python", help="Target interpreter."),
    offline: bool = typer.Option(False, "--offline", help="Do not use the network."),
    share: bool = typer.Option(
        False, "--share", help="Also remove GPU UUIDs and serials, the host name, the user name and home paths, "
        "for a public bug report."),
) -> None:
    """Write this machine's facts as a redacted snapshot for 'check --snapshot'."""
    from llmdoctor.runner import collect_live, select_checks

    registry, config = load()
    import socket

    data = collect_live(registry, config, select_checks(registry, split_ids(only), []), target_python(python), offline,
                        with_target=True)
    # the machine's name in 'llmdoctor report': LLMDOCTOR_NODE_NAME where a pod's host name is
    # not its node's (Kubernetes' downward API sets it), else the short host name
    host = os.environ.get("LLMDOCTOR_NODE_NAME", "").strip() or socket.gethostname().split(".")[0]
    data["host"] = host
    if share:
        from llmdoctor.redact import SHARE_NOTE, scrub_for_sharing, share_scrubber

        data = scrub_for_sharing(data, share_scrubber(host=host))
        data.pop("host", None)
        data["_note"] = SHARE_NOTE  # sorts first: the top of the file says what was removed
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    if output is not None and ("%N" in str(output) or "%h" in str(output)):
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", host) or "host"
        output = Path(str(output).replace("%N", safe).replace("%h", safe))
    if output is None:
        out(text)
        return
    from llmdoctor.redact import Redactor

    try:
        output.parent.mkdir(parents=True, exist_ok=True)  # snaps/%N.json on a fresh cluster
        # bytes that were not UTF-8 (in PATH, say) are lone surrogates: written as \udcXX, the
        # same string again when the snapshot is read
        output.write_bytes((Redactor.from_environment().text(text) + "\n").encode("utf-8", "backslashreplace"))
    except OSError as exc:
        raise Fail(f"{output}: cannot write the snapshot: {exc.strerror or exc}", EXIT_PROBLEMS) from None
    err(f"wrote the snapshot of {len(data['facts'])} checks to {output}")


# ----------------------------------------------------------------------------- list


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the checks, fixes and smoke tests available, and where each comes from."""
    registry, _ = load()
    checks = [{"id": c.id, "title": c.title, "source": registry.source_of("check", c.id),
               "smoke": [s.id for s in c.smoke]} for c in registry.checks.values()]
    fixes = [{"id": f.id, "title": f.title, "source": registry.source_of("fix", f.id),
              "applicability": f.applicability, "scope": f.scope, "needs_admin": f.needs_admin,
              "undoable": f.undoable, "afterwards": f.afterwards, "checks": list(f.checks),
              "routes": [{"name": name, "scope": scope} for name, scope in f.routes]}
             for f in registry.fixes.values()]
    errors = [{"group": e.group, "name": e.name, "source": e.source, "error": e.error}
              for e in registry.errors]
    if as_json:
        out(json.dumps({"checks": checks, "fixes": fixes, "load_errors": errors}, indent=2))
        return
    lines = ["Checks:"]
    lines += [f"  {c['id']:<16} {c['title']:<40} from {c['source']}" for c in checks]
    lines.append("Fixes:")
    for f in fixes:
        admin = ", needs admin" if f["needs_admin"] else ""
        machine = [r["name"] for r in f["routes"] if r["scope"] == "machine"]
        wider = f"; machine scope and admin with --route {'|'.join(machine)}" if machine else ""
        lines.append(f"  --{f['id']:<14} {f['title']}  [{f['applicability']}, {f['scope']} scope"
                     f"{admin}{wider}, {'undoable' if f['undoable'] else 'not undoable'}] from {f['source']}")
    smoke = [s for c in checks for s in c["smoke"]]
    lines.append("Smoke tests: " + (", ".join(smoke) or "none"))
    for e in errors:
        lines.append(f"  ! plugin {e['source']} ({e['group']} {e['name']}) failed to load: {e['error']}")
    out("\n".join(lines))


# ----------------------------------------------------------------------------- explain


@app.command("explain")
def explain_command(
    finding_id: Optional[str] = typer.Argument(None, help="A finding id, e.g. path.file-entry."),
    list_all: bool = typer.Option(False, "--list", help="List every declared finding kind."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    markdown: bool = typer.Option(False, "--markdown", help="The whole catalogue as Markdown "
                                                            "(docs/findings.md)."),
) -> None:
    """What a finding means, why it matters, how to fix it, and its public sources."""
    from llmdoctor import catalogue
    from llmdoctor.registry import load_registry

    if finding_id is None and not (list_all or markdown):
        raise Fail("name a finding id (llmdoctor explain path.file-entry), or use --list")
    if finding_id is not None and (list_all or markdown):
        raise Fail("give a finding id or --list/--markdown, not both")
    registry = load_registry()
    entries = catalogue.entries(registry)
    if markdown:
        out(catalogue.render_markdown(entries))
        return
    if list_all:
        if as_json:
            out(json.dumps({"findings": [e.to_json() for e in entries.values()]}, indent=2))
            return
        width = max(len(i) for i in entries) + 2
        out("\n".join(f"{e.kind.id:<{width}}{e.kind.severity:<9}{e.kind.summary}" for e in entries.values()))
        return
    entry = catalogue.lookup(finding_id.strip(), entries, registry.checks)
    if entry is None:
        raise Fail(f"unknown finding id {finding_id[:100]!r}{catalogue.nearest_id(finding_id, entries)} "
                   f"(llmdoctor explain --list shows them all)")
    if as_json:
        out(json.dumps({**entry.to_json(), "id": finding_id.strip(), "declared_as": entry.kind.id}, indent=2))
        return
    out(catalogue.render_text(entry, shown_id=finding_id.strip()))


# ----------------------------------------------------------------------------- fix


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def fix(
    context: typer.Context,
    fix_ids: Optional[List[str]] = typer.Argument(None, help="Fix ids to apply; or --ID for each (e.g. --path)."),
    apply_all: bool = typer.Option(
        False, "--all", help="Every fix for the current findings (safe ones unless --unsafe)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan as a script; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Allow fixes marked unsafe."),
    python: Optional[str] = typer.Option(None, "--python", help="Target interpreter."),
    mirror: Optional[str] = typer.Option(
        None, "--mirror", help="For --hf-endpoint: the mirror URL to verify and save."),
    route: Optional[str] = typer.Option(
        None, "--route", help="Choose a fix's route (ffmpeg: path, imageio, brew, scoop, winget, conda, "
                              "apt-get, dnf, pacman, zypper, choco); a named machine-wide route needs no --unsafe."),
    require: Optional[Path] = typer.Option(
        None, "--require", help="Meet a team's requirements file (with --all: every fix its findings ask for)."),
) -> None:
    """Show a fix's plan as a script, ask, apply it (journaled), and verify it worked."""
    from llmdoctor.fixing import FixSession, run_fixes

    requested = []
    for extra in list(fix_ids or []) + list(context.args):
        if extra == "--snapshot" or extra.startswith("--snapshot="):
            raise Fail("fixes change this machine and refuse snapshots; run 'llmdoctor check "
                       "--snapshot FILE' to diagnose one")
        requested.append(extra[2:] if extra.startswith("--") else extra)
    registry, config = load()
    if mirror is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(mirror.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            bare = mirror.strip().strip("'\"").rstrip("/")
            raise Fail(f"--mirror {mirror}: not an http(s) URL; did you mean --mirror https://{bare.split('://')[-1]}?")
    options = {key: value for key, value in (("mirror", mirror), ("route", route)) if value}
    requirements = requirements_from(require, config)
    if requirements:
        options["require"] = requirements
        if require is not None:
            options["require_file"] = str(require)
        endpoint = requirements.get("hf-endpoint")
        # a file the user names (--require) or keeps in their own configuration names the mirror;
        # a project's [require] does not decide a machine change on its own
        if endpoint and endpoint != "official" and not mirror and (require is not None or config.origin == "user"):
            options["mirror"] = endpoint
    session = FixSession(registry=registry, config=config, python=target_python(python), out=out, yes=yes,
                         dry_run=dry_run, unsafe=unsafe, interactive=_stdin_is_terminal(), options=options)
    raise typer.Exit(run_fixes(session, requested=requested, apply_all=apply_all))


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # a closed standard input
        return False


# ----------------------------------------------------------------------------- fit


@app.command("fit")
def fit_command(
    model: str = typer.Argument(..., help="A GGUF file, a model folder, org/repo[/file.gguf] on the Hub, or a name."),
    ctx: Optional[int] = typer.Option(
        None, "--ctx", help="Context length in tokens (default: the runtime's: the trained context for llama.cpp, "
        "4096 for ollama)."),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type: f16, q8_0 or q4_0."),
    gpu_layers: Optional[int] = typer.Option(
        None, "--gpu-layers", help="Judge this --n-gpu-layers instead of the best."),
    runtime: str = typer.Option(
        "llama.cpp", "--runtime", help="Whose defaults to assume: llama.cpp (its CLI), llama-server or ollama."),
    flash_attn: Optional[str] = typer.Option(
        None, "--flash-attn", help="on, off or auto (default: the runtime's)."),
    parallel: Optional[int] = typer.Option(
        None, "--parallel", help="Parallel slots (default: the runtime's: 4 for llama-server, else 1)."),
    ubatch: Optional[int] = typer.Option(None, "--ubatch", help="Physical batch size (default 512)."),
    no_repack: bool = typer.Option(
        False, "--no-repack", help="Judge without llama.cpp's CPU repacking (as with its --no-repack)."),
    tensor_split: Optional[str] = typer.Option(
        None, "--tensor-split", help="Proportions per GPU, e.g. 3,1 (default: by free memory, as llama.cpp)."),
    engine: str = typer.Option(
        "llmdoctor", "--engine", help="llmdoctor, or llama.cpp: also run llama.cpp's own llama-fit-params "
        "(when installed) and show its projection beside this one."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    offline: bool = typer.Option(False, "--offline", help="Do not use the network (names only)."),
    allow_estimate: bool = typer.Option(
        False, "--allow-estimate", help="If the Hub cannot be reached, estimate from the name instead."),
) -> None:
    """Will this model fit on this machine, and how fast will it run? Reads headers only."""
    from llmdoctor.checks.model_fit import describe_models, machine_memory, spec_from_json
    from llmdoctor.config import load_config
    from llmdoctor.fit import FitError, fit

    if engine not in ("llmdoctor", "llama.cpp"):
        raise Fail("--engine must be llmdoctor or llama.cpp")
    split = _tensor_split(tensor_split)
    config = load_config()  # no registry: fit needs no checks
    offline = offline or os.environ.get("LLMDOCTOR_OFFLINE", "").lower() in ("1", "true", "yes")
    (described,) = describe_models([model], offline, float(config.threshold("network_timeout_s")),
                                   allow_estimate=allow_estimate)
    if "error" in described:  # an unreachable Hub is the network's fault, not a usage error
        raise Fail(described["error"], EXIT_PROBLEMS if described.get("unreachable") else EXIT_USAGE)
    if described.get("fallback"):
        err(f"llmdoctor: {described['fallback'].split(';')[0]}: estimating from the name")
    memory = machine_memory()
    if runtime == "ollama":  # ollama's own settings, where the user has made them
        ctx = ctx or _env_int("OLLAMA_CONTEXT_LENGTH")
        parallel = parallel or _env_int("OLLAMA_NUM_PARALLEL")
        if flash_attn is None and os.environ.get("OLLAMA_FLASH_ATTENTION", "").lower() in ("1", "true"):
            flash_attn = "on"
    try:
        report = fit(spec_from_json(described["spec"]), memory["gpus"], memory["ram_available"], ctx=ctx,
                     kv_type=kv_type, gpu_layers=gpu_layers,
                     ram_bandwidth=float(config.threshold("ram_bandwidth_gb_s")), runtime=runtime,
                     flash_attn=flash_attn, parallel=parallel, ubatch=ubatch, repack=not no_repack,
                     tensor_split=split, cpu_kind=memory.get("cpu_kind", "avx2"))
    except FitError as exc:
        raise Fail(str(exc)) from None
    engine_result = None
    if engine == "llama.cpp":
        from llmdoctor.llama_fit_params import run_fit_params

        engine_result = run_fit_params(described, report)
    if as_json:
        data = report.to_json()
        if engine_result is not None:
            data["llama_cpp"] = engine_result
        out(json.dumps(data, indent=2))
        return
    from llmdoctor.render.fit import render_engine, render_fit

    color = use_color()
    text = render_fit(report, color=color)
    if engine_result is not None:
        text += render_engine(engine_result, report)
    if color:
        from rich.console import Console

        Console(highlight=False, soft_wrap=True).print(text, end="")
    else:
        out(text)


def _tensor_split(text: Optional[str]) -> Optional[list]:
    """``3,1`` or ``3/1`` (llama.cpp's forms) as a list of proportions; one line and exit 2 if not."""
    if text is None:
        return None
    parts = [p for p in re.split(r"[,/]", text.strip())]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise Fail(f"--tensor-split takes numbers separated by commas, like 3,1 (got {text!r:.40})") from None
    if not values or any(not (v >= 0) or v == float("inf") for v in values) or not any(values):
        raise Fail("--tensor-split takes proportions of 0 or more, at least one above 0")
    return values


def _env_int(name: str) -> Optional[int]:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


# ----------------------------------------------------------------------------- require


@app.command("require")
def require_command(
    source: Optional[Path] = typer.Option(
        None, "--from", help="A snapshot from 'llmdoctor collect' (default: this machine, probed now)."),
    exact: bool = typer.Option(False, "--exact", help="Exact versions instead of compatible ranges."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the file here instead of printing it."),
    python: Optional[str] = typer.Option(None, "--python", help="Target interpreter (without --from)."),
) -> None:
    """Write a requirements file that this (healthy) machine, or the one in a snapshot, meets."""
    from llmdoctor.requirements import profile_from_snapshot, to_toml

    registry, config = load()
    if source is not None:
        from llmdoctor.snapshot import load_snapshot

        data = load_snapshot(source)
        where = str(source)
    else:
        from llmdoctor.runner import collect_live, select_checks

        checks = [c for c in select_checks(registry, [], []) if c not in ("require", "model-fit")]
        data = collect_live(registry, config, checks, target_python(python), offline=True, with_target=True)
        where = "this machine"
    profile = profile_from_snapshot(data, exact=exact, models=[m.name for m in config.models])
    text = to_toml(profile, header=f"Requirements met by {where}, written by llmdoctor {__version__}.\n"
                                   "Check a machine with: llmdoctor check --require FILE; meet them with: "
                                   "llmdoctor fix --all --require FILE")
    if output is None:
        out(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise Fail(f"{output}: cannot write: {exc.strerror or exc}", EXIT_PROBLEMS) from None
    err(f"wrote {len(profile)} kinds of requirement to {output}")


# ----------------------------------------------------------------------------- undo


@app.command()
def undo(
    record_id: Optional[str] = typer.Argument(None, help="A fix id or journal id (default: the last applied fix)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Undo without asking."),
    list_journal: bool = typer.Option(False, "--list", help="List the journal instead."),
) -> None:
    """Restore the before-state of the last (or the named) applied fix."""
    from llmdoctor.fixing import run_undo

    raise typer.Exit(run_undo(record_id, yes=yes, list_only=list_journal, out=out,
                              interactive=_stdin_is_terminal()))


# ----------------------------------------------------------------------------- smoke


@app.command()
def smoke(
    only: Optional[List[str]] = typer.Option(None, "--only", help="Run only these smoke tests."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    python: Optional[str] = typer.Option(None, "--python", help="Target interpreter."),
) -> None:
    """Run smoke tests, each in a subprocess with a timeout: pass, fail or skipped."""
    from llmdoctor.smoke import run_smoke_test

    registry, _ = load()
    tests = registry.smoke_tests()
    wanted = split_ids(only)
    for test_id in wanted:
        if test_id not in tests:
            raise Fail(f"unknown smoke test {test_id!r} (known: {', '.join(sorted(tests))})")
    target = target_python(python)
    results = [run_smoke_test(tests[t], {"python": target}) for t in sorted(tests)
               if not wanted or t in wanted]
    if as_json:
        out(json.dumps({"smoke": [r.to_json() for r in results]}, indent=2))
    else:
        marks = {"pass": "✓", "fail": "✗", "skipped": "-"} if can_print_unicode() else \
            {"pass": "OK", "fail": "X", "skipped": "-"}
        out("\n".join(f"[{marks[r.status]}] {r.id}: {r.message} ({r.duration_ms:.0f} ms)"
                       for r in results) or "no smoke tests")
    raise typer.Exit(EXIT_PROBLEMS if any(r.status == "fail" for r in results) else EXIT_OK)


def main() -> None:
    """The typer application as the whole program (``llmdoctor.entry.main`` comes here for all
    but the fast paths)."""
    # without standalone mode click hands typer.Exit's code back as the return value
    guarded(lambda: app(standalone_mode=False))


if __name__ == "__main__":
    main()
