"""Running fixes: fresh facts -> plan -> the plan as a script -> consent -> privilege
preflight -> journaled apply -> verify (re-run the affected checks and smoke tests) ->
a one-line verdict. And undo, from the journal.

Consent is never assumed: without ``--yes`` and without a terminal to ask, the plan is
printed and nothing changes (exit 1).
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from llmdoctor.models import FixContext

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
AFTERWARDS_WORDS = {"nothing": "nothing", "new-terminal": "open a new terminal", "log-off": "sign out and in"}


def _ask(question: str) -> bool:
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _resolve(registry, requested: list, apply_all: bool, unsafe: bool, findings: list) -> list:
    from llmdoctor.runner import UsageError

    for fix_id in requested:
        if fix_id not in registry.fixes:
            raise UsageError(f"unknown fix {fix_id!r} (known: {', '.join(sorted(registry.fixes)) or 'none'})")
    if not requested and not apply_all:
        raise UsageError("name the fixes to apply (e.g. 'llmdoctor fix --path') or use --all")
    if not apply_all:
        return [registry.fixes[f] for f in dict.fromkeys(requested)]
    wanted = {f for finding in findings if finding.acknowledged is None
              and finding.severity in ("warning", "error") for f in finding.fixes}
    return [fix for fix_id, fix in sorted(registry.fixes.items())
            if fix_id in wanted and (fix.applicability == "safe" or
                                     (fix.applicability == "unsafe" and unsafe))]


def _diagnose_for(registry, config, check_ids: list, python: str, probe_options: Optional[dict] = None):
    from llmdoctor.runner import collect_live, diagnose

    snapshot = collect_live(registry, config, check_ids, python, options=probe_options)
    return snapshot, diagnose(snapshot, registry, config, check_ids, {})


def run_fixes(registry, config, requested: list, apply_all: bool, dry_run: bool, yes: bool,
              unsafe: bool, python: str, out: Callable, interactive: bool, options: Optional[dict] = None) -> int:
    from llmdoctor.render.script import render_plan

    candidates = _resolve(registry, requested, apply_all, unsafe, [])  # bad ids fail before probing
    if apply_all:
        candidates = list(registry.fixes.values())
    check_ids = sorted({c for fix in candidates for c in fix.checks if c in registry.checks})
    options = dict(options or {})
    probe_options = {}
    if "hf-endpoint" in [fix.id for fix in candidates]:
        from llmdoctor.fixes.hf_endpoint import candidates as mirrors

        probe_options["hf_candidates"] = mirrors(options, config)  # verified by the probe, not the planner
    snapshot, diagnosis = _diagnose_for(registry, config, check_ids, python, probe_options)
    fixes = _resolve(registry, requested, apply_all, unsafe, diagnosis.all_findings())
    if not fixes:
        out("Nothing to fix: no finding has a safe fix." + ("" if unsafe else
            " (Unsafe fixes need --unsafe.)"))
        return EXIT_OK
    flavour = "powershell" if snapshot["platform"]["system"] == "windows" else "bash"
    worst = EXIT_OK
    for fix in fixes:
        context = FixContext(facts=snapshot["facts"], findings=diagnosis.all_findings(),
                             platform=snapshot["platform"], python=python, config=config, options=options)
        plan = fix.plan(context)
        plan.actions = _executor(snapshot).effective(plan.actions)  # drop what is already so
        if plan.is_empty:
            out(f"✓ {fix.id}: nothing to do; the checks it covers ({', '.join(fix.checks)}) "
                "found nothing it can change.")
            continue
        needs_admin = fix.needs_admin or any(getattr(a, "needs_admin", False) for a in plan.actions)
        afterwards = plan.afterwards or fix.afterwards
        out(f"Fix '{fix.id}': {fix.title}\n"
            f"  applicability: {fix.applicability}; scope: {fix.scope}; administrator rights: "
            f"{'needed' if needs_admin else 'not needed'}; "
            f"{'undoable with llmdoctor undo' if fix.undoable else 'cannot be undone'}; afterwards: "
            f"{AFTERWARDS_WORDS[afterwards]}")
        for note in plan.notes:
            out(f"  - {note}")
        if plan.actions:
            out(f"\nThe plan as a {flavour} script:\n")
            out(render_plan(plan, flavour))
        for step in plan.manual_steps:
            out(f"  manual step: {step}")
        code = _apply_one(fix, plan, dry_run, yes, unsafe, interactive, python, registry, config,
                          snapshot, out)
        worst = max(worst, code)
    return worst


def _executor(snapshot: dict):
    from llmdoctor.executor import Executor
    from llmdoctor.winenv import get_backend

    return Executor(registry=get_backend(), is_admin=bool(snapshot["platform"].get("is_admin")))


def _apply_one(fix, plan, dry_run, yes, unsafe, interactive, python, registry, config, snapshot,
               out) -> int:
    from llmdoctor.executor import FixError
    from llmdoctor.journal import JournalRecord

    if not plan.actions:
        verdict, code = verify(fix, registry, config, python, plan.afterwards)
        if code == EXIT_OK:  # e.g. startup files already clean, only this terminal is stale
            out(f"✓ {fix.id}: nothing to change: new terminals are already healthy; "
                "this one keeps its old environment until you open a new one")
            return EXIT_OK
        out(f"✗ {fix.id}: not fixed: only manual steps remain (above).")
        return EXIT_PROBLEMS
    if dry_run:
        out(f"(dry run: nothing was changed; apply with 'llmdoctor fix --{fix.id}')")
        return EXIT_OK
    if fix.applicability == "display-only":
        out(f"{fix.id}: this fix is display-only: run the script above yourself if it suits you.")
        return EXIT_PROBLEMS
    if fix.applicability == "unsafe" and not unsafe:
        out(f"✗ {fix.id}: not applied: this fix is marked unsafe; re-run with --unsafe to allow it.")
        return EXIT_PROBLEMS
    if not yes:
        if not interactive:
            out(f"✗ {fix.id}: not applied: no terminal to ask for consent; re-run with --yes to apply.")
            return EXIT_PROBLEMS
        if not _ask(f"Apply fix '{fix.id}'?"):
            out(f"✗ {fix.id}: not applied (declined).")
            return EXIT_PROBLEMS
    executor = _executor(snapshot)
    problems = executor.preflight(plan.actions)
    if problems:
        out(f"✗ {fix.id}: not applied; nothing was changed:\n" + "\n".join(f"  - {p}" for p in problems))
        return EXIT_PROBLEMS
    record = JournalRecord.create(fix.id, plan.summary, snapshot["platform"]["system"])
    try:
        executor.apply(plan.actions, record)
    except FixError as exc:
        out(f"✗ {fix.id}: not fixed: {exc}")
        return EXIT_PROBLEMS
    verdict, code = verify(fix, registry, config, python, plan.afterwards)
    out(f"{verdict} (journal {record.id}; undo with 'llmdoctor undo {fix.id}')")
    return code


def verify(fix, registry, config, python: str, afterwards: Optional[str] = None) -> tuple:
    """Re-run the fix's checks (and smoke tests) and say in one line whether it worked."""
    afterwards = afterwards or fix.afterwards
    from llmdoctor.machine import probe_platform
    from llmdoctor.models import RuleContext
    from llmdoctor.runner import run_rules
    from llmdoctor.smoke import run_smoke_test

    facts_override = fix.reprobe(python) if fix.reprobe else None
    if facts_override is not None:
        context = RuleContext(platform=probe_platform(), config=config, all_facts=facts_override)
        findings = [f for c in fix.checks if c in registry.checks and c in facts_override
                    for f in run_rules(registry.checks[c], facts_override[c], context)]
    else:
        check_ids = [c for c in fix.checks if c in registry.checks]
        _, diagnosis = _diagnose_for(registry, config, check_ids, python)
        findings = diagnosis.all_findings()
    remaining = [f for f in findings if fix.id in f.fixes and f.severity in ("warning", "error")]
    smoke_tests = registry.smoke_tests()
    failed_smoke = []
    smoke_env = None
    if fix.smoke and afterwards == "new-terminal" and os.name != "nt":
        # the fix changed what new terminals see: prove it there, not in this stale environment
        from llmdoctor.shellenv import login_shell_environment

        fresh = login_shell_environment()
        smoke_env = {**os.environ, **fresh} if fresh else None
    for smoke_id in fix.smoke:
        if smoke_id in smoke_tests:
            result = run_smoke_test(smoke_tests[smoke_id], {"python": python}, env=smoke_env)
            if result.status == "fail":
                failed_smoke.append(f"smoke test {smoke_id}: {result.message}")
    after = {"new-terminal": "; open a new terminal to use it",
             "log-off": "; sign out and in to use it"}.get(afterwards, "")
    if not remaining and not failed_smoke:
        return f"✓ {fix.id}: fixed{after}", EXIT_OK
    reasons = [f.message for f in remaining[:3]] + failed_smoke
    return f"✗ {fix.id}: not fixed ({'; '.join(reasons)})", EXIT_PROBLEMS


def run_undo(selector: Optional[str], yes: bool, list_only: bool, out: Callable,
             interactive: bool) -> int:
    from llmdoctor.actions import action_from_json
    from llmdoctor.executor import Executor
    from llmdoctor.journal import find_record, load_records
    from llmdoctor.machine import probe_platform
    from llmdoctor.winenv import get_backend

    if list_only:
        records = load_records()
        out("\n".join(f"{r.id}  {r.status:<12} {r.data.get('summary', '')}" for r in records)
            or "the journal is empty")
        return EXIT_OK
    record = find_record(selector)
    system = probe_platform()["system"]
    if record.data.get("platform", system) != system:
        from llmdoctor.journal import JournalError

        raise JournalError(f"{record.id} was applied on {record.data['platform']}; undo it there, not on {system}")
    out(f"Undo {record.id} ({record.status}): {record.data.get('summary', '')}")
    for entry in reversed(record.entries):
        if entry.get("state") != "undone":
            out(f"  - restore before: {action_from_json(entry['action']).describe()}")
    if not yes:
        if not interactive:
            out("✗ not undone: no terminal to ask for consent; re-run with --yes.")
            return EXIT_PROBLEMS
        if not _ask("Restore these?"):
            out("✗ not undone (declined).")
            return EXIT_PROBLEMS
    executor = Executor(registry=get_backend(), is_admin=bool(probe_platform().get("is_admin")))
    problems = [p for p in executor.preflight([action_from_json(e["action"]) for e in record.entries])
                if "administrator" in p or "not available" in p]
    if problems:
        out("✗ not undone; nothing was changed:\n" + "\n".join(f"  - {p}" for p in problems))
        return EXIT_PROBLEMS
    notes = executor.undo(record)
    for note in notes:
        out(f"  ! {note}")
    out(f"✓ undone: {record.id}" + ("" if not notes else " (with the problems above)"))
    return EXIT_OK if not notes else EXIT_PROBLEMS

