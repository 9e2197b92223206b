"""Running fixes: fresh facts -> plan -> the plan as a script -> consent -> privilege
preflight -> journaled apply -> verify (re-run the affected checks and smoke tests) ->
a one-line verdict. And undo, from the journal.

Consent is never assumed: without ``--yes`` and without a terminal to ask, the plan is
printed and nothing changes (exit 1).

Several fixes (``--all``, or more than one named) run in root-cause order: a fix whose
findings are consequences (``caused_by``) of a finding that another pending fix resolves
waits for that fix, and every fix after the first plans against a fresh diagnosis of the
machine as the earlier ones left it, including what new terminals now see.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Optional

from llmdoctor.models import FixContext

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
AFTERWARDS_WORDS = {"nothing": "nothing", "new-terminal": "open a new terminal", "log-off": "sign out and in"}


@dataclass
class FixSession:
    """One ``llmdoctor fix`` run: what was asked, how to talk to the user, and the target."""

    registry: object
    config: object
    python: str
    out: Callable
    yes: bool = False
    dry_run: bool = False
    unsafe: bool = False
    interactive: bool = False
    options: dict = field(default_factory=dict)  # fix options: mirror, route


def _ask(question: str) -> bool:
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _check_ids(registry, requested: list, apply_all: bool) -> None:
    from llmdoctor.runner import UsageError

    for fix_id in requested:
        if fix_id not in registry.fixes:
            raise UsageError(f"unknown fix {fix_id!r} (known: {', '.join(sorted(registry.fixes)) or 'none'})")
    if not requested and not apply_all:
        raise UsageError("name the fixes to apply (e.g. 'llmdoctor fix --path') or use --all")


def _wanted(session: FixSession, findings: list) -> set:
    """The fixes that current, unacknowledged problems ask for (``--all``)."""
    fixes = session.registry.fixes
    return {f for finding in findings if finding.acknowledged is None and finding.severity in ("warning", "error")
            for f in finding.fixes if f in fixes and (fixes[f].applicability == "safe" or
                                                       (fixes[f].applicability == "unsafe" and session.unsafe))}


def root_first(candidates: list, findings: list) -> list:
    """``candidates`` (fix ids) with each fix after the fixes for the roots of its findings.

    A fix waits for another when one of its findings is ``caused_by`` a finding that the
    other resolves; ties keep the given order. Cycles are broken in the given order.
    """
    by_id = {f.id: f for f in findings}
    waits_for: dict = {c: set() for c in candidates}
    for finding in findings:
        root = by_id.get(finding.caused_by) if finding.caused_by else None
        if root is None:
            continue
        for fix_id in finding.fixes:
            if fix_id in waits_for:
                waits_for[fix_id] |= {r for r in root.fixes if r in waits_for and r != fix_id}
    ordered: list = []
    pending = list(candidates)
    while pending:
        ready = next((c for c in pending if not (waits_for[c] - set(ordered))), pending[0])
        ordered.append(ready)
        pending.remove(ready)
    return ordered


def _diagnose(session: FixSession, fix_ids: list):
    from llmdoctor.runner import collect_live, diagnose

    registry = session.registry
    check_ids = sorted({c for f in fix_ids for c in registry.fixes[f].checks if c in registry.checks})
    probe_options = {"require": session.options["require"]} if session.options.get("require") else {}
    if "hf-endpoint" in fix_ids:
        from llmdoctor.fixes.hf_endpoint import candidates as mirrors

        probe_options["hf_candidates"] = mirrors(session.options, session.config, dict(os.environ))  # probe-verified
    snapshot = collect_live(registry, session.config, check_ids, session.python, options=probe_options)
    skipped = {c: "skipped by the configuration" for c in getattr(session.config, "skip", ()) if c in check_ids}
    return snapshot, diagnose(snapshot, registry, session.config, check_ids=check_ids, skipped_by_user=skipped)


def run_fixes(session: FixSession, *, requested: list, apply_all: bool) -> int:
    """Plan, show and (with consent) apply the requested fixes, or all that current findings
    ask for; returns the exit code."""
    from llmdoctor.journal import journal_lock

    _check_ids(session.registry, requested, apply_all)  # bad ids fail before probing
    if session.dry_run:
        return _run(session, requested, apply_all)
    with journal_lock(float(os.environ.get("LLMDOCTOR_LOCK_WAIT_S", "5"))):
        return _run(session, requested, apply_all)


def _run(session: FixSession, requested: list, apply_all: bool) -> int:
    registry, out = session.registry, session.out
    scope = list(registry.fixes) if apply_all else list(dict.fromkeys(requested))
    done: list = []
    worst = EXIT_OK
    snapshot, diagnosis = _diagnose(session, scope)
    first = True
    while True:
        findings = diagnosis.all_findings()
        pending = [f for f in (sorted(_wanted(session, findings)) if apply_all else scope) if f not in done]
        if not pending:
            break
        fix_id = root_first(pending, findings)[0]
        if first and apply_all and len(pending) > 1:
            out("Fixes, roots first: " + ", ".join(root_first(pending, findings)) + "\n")
        first = False
        code, changed_terminals = _one_fix(session, registry.fixes[fix_id], snapshot, diagnosis)
        worst = max(worst, code)
        done.append(fix_id)
        if session.dry_run:
            # nothing changed: show the others as planned against the machine as it is
            for other in root_first([f for f in pending if f != fix_id], findings):
                worst = max(worst, _one_fix(session, registry.fixes[other], snapshot, diagnosis)[0])
                done.append(other)
            break
        if not [f for f in pending if f not in done] and not apply_all:
            break
        if changed_terminals:
            _adopt_new_terminal_environment(changed_terminals)
        snapshot, diagnosis = _diagnose(session, scope)
    if not done:
        out("Nothing to fix: no finding has a safe fix." + ("" if session.unsafe else " (Unsafe fixes need --unsafe.)"))
    return worst


def _executor(snapshot: dict):
    from llmdoctor.executor import Executor
    from llmdoctor.winenv import get_backend

    return Executor(registry=get_backend(), is_admin=bool(snapshot["platform"].get("is_admin")))


def _apply_hint(session: FixSession, fix) -> str:
    shown = {"mirror": "mirror", "route": "route", "require_file": "require"}
    extra = "".join(f" --{shown[key]} {value}" for key, value in sorted(session.options.items())
                    if key in shown and value)
    return f"llmdoctor fix --{fix.id}{extra}"


def _one_fix(session: FixSession, fix, snapshot: dict, diagnosis) -> tuple:
    """Plan, show and maybe apply one fix: (exit code, the new-terminal environment before the
    fix when it changed what new terminals see, else None)."""
    from llmdoctor.render.script import render_plan

    out = session.out
    context = FixContext(facts=snapshot["facts"], findings=diagnosis.all_findings(),
                         platform=snapshot["platform"], python=session.python, config=session.config,
                         options=session.options)
    try:
        plan = fix.plan(context)
    except ValueError as exc:  # a value no startup file can carry, say
        out(f"✗ {fix.id}: no plan: {exc}")
        return EXIT_PROBLEMS, None
    executor = _executor(snapshot)
    planned = list(plan.actions)
    plan.actions = executor.effective(plan.actions)  # drop what is already so
    if plan.is_empty and planned and any(a.new_terminal for a in planned):
        # what the fix would write is already written: new terminals have it, this one does not
        out(f"✓ {fix.id}: nothing to change: new terminals already get this fix's change "
            f"({planned[0].describe()}); this terminal keeps its old environment until you open a new one")
        return EXIT_OK, None
    if plan.is_empty:
        stale = [f for f in diagnosis.all_findings() if f.id.endswith(".stale-terminal")
                 and f.id.split(".", 1)[0] in fix.checks]
        if stale:
            detail = stale[0].details.splitlines()[-1].strip()
            out(f"✓ {fix.id}: nothing to change: new terminals are already fixed; this terminal still has the old "
                f"value (open a new terminal, or run: {detail})")
        else:
            out(f"✓ {fix.id}: nothing to do; the checks it covers ({', '.join(fix.checks)}) "
                "found nothing it can change.")
        return EXIT_OK, None
    flavour = "powershell" if snapshot["platform"]["system"] == "windows" else "bash"
    is_admin = bool(snapshot["platform"].get("is_admin"))
    rights = "not needed"
    if plan.needs_admin:
        rights = "needed (you have them)" if is_admin else "needed (you do not have them)"
    applicability = "unsafe" if plan.unsafe else fix.applicability
    out(f"Fix '{fix.id}': {fix.title}\n"
        f"  applicability: {applicability}; scope: {plan.scope}; administrator rights: {rights}; "
        f"{'undoable with llmdoctor undo' if fix.undoable else 'cannot be undone'}; afterwards: "
        f"{AFTERWARDS_WORDS[plan.after_change(fix.afterwards)]}")
    for note in plan.notes:
        out(f"  - {note}")
    if plan.actions:
        out(f"\nThe plan as a {flavour} script:\n")
        out(render_plan(plan, flavour))
    for step in plan.manual_steps:
        out(f"  manual step: {step}")
    if plan.alternatives:
        out("  other routes (choose one with --route NAME):")
        for line in plan.alternatives:
            out(f"    {line}")
    before_terminals = None
    if plan.actions and not session.dry_run and plan.new_terminal and os.name != "nt":
        from llmdoctor.shellenv import login_shell_environment

        before_terminals = login_shell_environment()
    code = _apply_one(session, fix, plan, executor, snapshot, shell_started=before_terminals is not None)
    changed = before_terminals if code == EXIT_OK and plan.actions and not session.dry_run else None
    return code, changed


def _adopt_new_terminal_environment(before: dict) -> None:
    """Bring this process up to what new terminals now see (for the fixes that follow): the
    variables the fix changed in a fresh login shell, PATH-like ones entry by entry."""
    from llmdoctor.shellenv import login_shell_environment

    after = login_shell_environment()
    if after is None:
        return
    for name in set(before) | set(after):
        old, new = before.get(name), after.get(name)
        if old == new or name in ("_", "SHLVL", "PWD", "OLDPWD"):
            continue
        if name.endswith("PATH") and old is not None and new is not None:
            removed = set(old.split(os.pathsep)) - set(new.split(os.pathsep))
            added = [e for e in new.split(os.pathsep) if e not in old.split(os.pathsep)]
            current = [e for e in os.environ.get(name, "").split(os.pathsep) if e and e not in removed]
            os.environ[name] = os.pathsep.join(added + [e for e in current if e not in added])
        elif new is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = new


def _apply_one(session: FixSession, fix, plan, executor, snapshot: dict, *, shell_started: bool = False) -> int:
    from llmdoctor.executor import FixError
    from llmdoctor.journal import JournalRecord

    out = session.out
    afterwards = plan.after_change(fix.afterwards)
    if not plan.actions and session.dry_run:
        out(f"(dry run: nothing to apply; only the manual steps above remain for '{fix.id}')")
        return EXIT_OK
    if not plan.actions:
        verdict, code = verify(session, fix, afterwards)
        if code == EXIT_OK and afterwards == "new-terminal" and not plan.manual_steps:  # this terminal is stale
            out(f"✓ {fix.id}: nothing to change: new terminals are already healthy; "
                "this one keeps its old environment until you open a new one")
            return EXIT_OK
        out(f"✗ {fix.id}: not fixed: only manual steps remain (above).")
        return EXIT_PROBLEMS
    if session.dry_run:
        out(f"(dry run: nothing was changed; apply with '{_apply_hint(session, fix)}')")
        return EXIT_OK
    if fix.applicability == "display-only":
        out(f"{fix.id}: this fix is display-only: run the script above yourself if it suits you.")
        return EXIT_PROBLEMS
    if (fix.applicability == "unsafe" or plan.unsafe) and not session.unsafe:
        why = plan.unsafe or "this fix is marked unsafe"
        out(f"✗ {fix.id}: not applied: {why}; re-run with --unsafe to allow it.")
        return EXIT_PROBLEMS
    problems = executor.preflight(plan.actions)
    if problems:  # before asking: a plan that cannot run is not offered
        admin = plan.needs_admin and not executor.env.is_admin
        out(f"✗ {fix.id}: not applied; nothing was changed:\n" + "\n".join(f"  - {p}" for p in problems)
            + (f"\n  run it as administrator ('sudo {_apply_hint(session, fix)}' or an elevated terminal), "
               "or run the script above yourself" if admin else ""))
        return EXIT_PROBLEMS
    if not session.yes:
        if not session.interactive:
            out(f"✗ {fix.id}: not applied: no terminal to ask for consent; re-run with --yes to apply.")
            return EXIT_PROBLEMS
        if not _ask(f"Apply fix '{fix.id}'?"):
            out(f"✗ {fix.id}: not applied (declined).")
            return EXIT_PROBLEMS
    record = JournalRecord.create(fix.id, plan.summary, snapshot["platform"]["system"])
    try:
        executor.apply(plan.actions, record)
    except FixError as exc:
        out(f"✗ {fix.id}: not fixed: {exc}")
        return EXIT_PROBLEMS
    if shell_started and not _new_shell_starts():
        _roll_back(executor, record, out)
        out(f"✗ {fix.id}: rolled back: with the change, a new login shell no longer started")
        return EXIT_PROBLEMS
    verdict, code = verify(session, fix, afterwards)
    out(f"{verdict} (journal {record.id}; undo with 'llmdoctor undo {fix.id}')")
    if code != EXIT_OK and session.interactive and not session.yes and _ask("Roll the change back?"):
        _roll_back(executor, record, out)
    return code


def _new_shell_starts() -> bool:
    from llmdoctor.shellenv import login_shell_environment

    return login_shell_environment() is not None


def _roll_back(executor, record, out: Callable) -> None:
    from llmdoctor.executor import UndoRefused

    try:
        executor.undo(record)
        out(f"  rolled back: {record.id}")
    except UndoRefused as refused:  # pragma: no cover - only if the file changed meanwhile
        out("  could not roll back: " + "; ".join(refused.problems))


def verify(session: FixSession, fix, afterwards: str) -> tuple:
    """Re-run the fix's checks (and smoke tests) and say in one line whether it worked."""
    from llmdoctor.machine import probe_platform
    from llmdoctor.models import RuleContext
    from llmdoctor.runner import run_rules
    from llmdoctor.smoke import run_smoke_test

    registry, python = session.registry, session.python
    facts_override = fix.reprobe(python) if fix.reprobe else None
    if facts_override is not None:
        context = RuleContext(platform=probe_platform(), config=session.config, all_facts=facts_override)
        findings = [f for c in fix.checks if c in registry.checks and c in facts_override
                    for f in run_rules(registry.checks[c], facts_override[c], context)]
    else:
        _, diagnosis = _diagnose(session, [fix.id])
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


def run_undo(selector: Optional[str], *, yes: bool, list_only: bool, out: Callable, interactive: bool) -> int:
    from llmdoctor.journal import journal_lock, load_records

    if list_only:
        damaged: list = []
        records = load_records(damaged=damaged)
        lines = [f"{r.id}  {r.status:<12} {r.data.get('summary', '')}" for r in records]
        lines += [f"! damaged record {d}" for d in damaged]
        out("\n".join(lines) or "the journal is empty")
        return EXIT_PROBLEMS if damaged else EXIT_OK
    with journal_lock(float(os.environ.get("LLMDOCTOR_LOCK_WAIT_S", "5"))):
        return _undo(selector, yes, out, interactive)


def _undo(selector: Optional[str], yes: bool, out: Callable, interactive: bool) -> int:
    from llmdoctor.executor import Executor, UndoRefused, describe_entry, undo_note_is_problem
    from llmdoctor.journal import JournalError, find_record
    from llmdoctor.machine import probe_platform
    from llmdoctor.winenv import get_backend

    record = find_record(selector)
    platform = probe_platform()
    system = platform["system"]
    if record.data.get("platform", system) != system:
        raise JournalError(f"{record.id} was applied on {record.data['platform']}; undo it there, not on {system}")
    out(f"Undo {record.id} ({record.status}): {record.data.get('summary', '')}")
    for entry in reversed(record.entries):
        if entry.get("state") != "undone":
            out(f"  - reverse: {describe_entry(entry) or 'an action this llmdoctor does not know'}")
    executor = Executor(registry=get_backend(), is_admin=bool(platform.get("is_admin")))
    try:
        problems = executor.undo_problems(record)
    except Exception as exc:  # an entry this version cannot read
        raise JournalError(f"{record.path} is damaged: {exc}") from None
    if problems:
        out("✗ not undone; nothing was changed:\n" + "\n".join(
            "  - " + p.replace("\n", "\n    ") for p in problems))
        return EXIT_PROBLEMS
    if not yes:
        if not interactive:
            out("✗ not undone: no terminal to ask for consent; re-run with --yes.")
            return EXIT_PROBLEMS
        if not _ask("Reverse these?"):
            out("✗ not undone (declined).")
            return EXIT_PROBLEMS
    try:
        notes = executor.undo(record)
    except UndoRefused as refused:  # changed between the check and now
        out("✗ not undone; nothing was changed:\n" + "\n".join(f"  - {p}" for p in refused.problems))
        return EXIT_PROBLEMS
    failures = [n for n in notes if undo_note_is_problem(n)]
    for note in notes:
        out(f"  ! {note}" if undo_note_is_problem(note) else f"  - {note[len('note: '):]}")
    out(f"✓ undone: {record.id}" + ("" if not failures else " (with the problems above)"))
    return EXIT_OK if not failures else EXIT_PROBLEMS
