"""Running checks: probes concurrently (each with a deadline), then the pure rules.

``collect`` touches the machine and yields a snapshot; ``diagnose`` turns any snapshot
(this machine's or one from elsewhere) into check results. Probe threads are daemons, so
a probe stuck past its deadline is abandoned and reported, and never holds up the exit.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from llmdoctor.config import Config
from llmdoctor.errors import UserError
from llmdoctor.machine import probe_platform
from llmdoctor.models import (
    CheckResult,
    Finding,
    ProbeContext,
    RuleContext,
    severity_rank,
)
from llmdoctor.redact import Redactor
from llmdoctor.registry import Registry
from llmdoctor.snapshot import new_snapshot

GRACE_S = 0.5  # how long past a probe's own timeout we wait before abandoning it


class UsageError(UserError):
    """The user asked for something that does not exist (an unknown check id, say)."""


def nearest(word: str, known) -> str:
    """' (did you mean X?)' for the closest known id, or ''."""
    import difflib

    match = difflib.get_close_matches(word[:100], sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def select_checks(registry: Registry, only: list, skip: list) -> list:
    """The checks to run, in report order: ``only`` (imported alone), else every check."""
    for check_id in list(only) + list(skip):
        if check_id not in registry.checks:  # built-in ids are known without scanning for plugins
            known = set(registry.checks)
            raise UsageError(
                f"unknown check id {check_id[:100]!r}{nearest(check_id, known)} "
                f"(known: {', '.join(sorted(known)) or 'none'})"
            )
    chosen = list(dict.fromkeys(only)) if only else list(registry.checks)
    return sorted(chosen, key=lambda c: (registry.checks[c].order, c))


class _ProbeThread(threading.Thread):
    def __init__(self, check, context: ProbeContext) -> None:
        super().__init__(name=f"probe-{check.id}", daemon=True)
        self.check = check
        self.context = context
        self.facts: Optional[dict] = None
        self.error = ""
        self.duration_ms = 0.0

    def run(self) -> None:
        started = time.monotonic()
        try:
            facts = self.check.probe(self.context)
            if not isinstance(facts, dict):
                raise TypeError(f"probe returned {type(facts).__name__}, not a dict")
            self.facts = facts
        except BaseException as exc:  # probes must never raise; if one does, it is data
            self.error = f"probe raised {type(exc).__name__}: {exc}"
        self.duration_ms = (time.monotonic() - started) * 1000


def collect(
    registry: Registry, check_ids: list, context: ProbeContext, redactor: Redactor,
    with_target: bool = False,
) -> dict:
    """Probe this machine for the given checks; returns a redacted snapshot.

    The target interpreter is probed when a check asks for it, or always with
    ``with_target`` (``llmdoctor collect``: a snapshot for someone else should be complete).
    """
    platform = probe_platform()
    # a check that does not apply here (vs-cuda off Windows) is not probed: its rules would not run
    not_applicable = {c: why for c in check_ids if (why := _not_applicable(registry.checks[c], platform))}
    threads = [_ProbeThread(registry.checks[c], context) for c in check_ids if c not in not_applicable]
    target_thread = threading.Thread(target=context.target, daemon=True) if with_target else None
    started = time.monotonic()
    if target_thread:
        target_thread.start()
    for thread in threads:
        thread.start()
    facts, meta = {}, {}
    for thread in threads:
        limit = thread.check.timeout + (thread.check.deep_timeout if context.options.get("deep") else 0.0)
        thread.join(max(0.0, started + limit + GRACE_S - time.monotonic()))
        check_id = thread.check.id
        if thread.is_alive():
            facts[check_id] = {"probe_error": f"probe did not finish within {limit:g} s"}
            meta[check_id] = {"timed_out": True, "duration_ms": (time.monotonic() - started) * 1000}
        elif thread.facts is None:
            facts[check_id] = {"probe_error": thread.error}
            meta[check_id] = {"duration_ms": thread.duration_ms}
        else:
            facts[check_id] = thread.facts
            meta[check_id] = {"duration_ms": round(thread.duration_ms, 1)}
        meta[check_id]["facts_version"] = thread.check.facts_version
    for check_id, why in not_applicable.items():
        meta[check_id] = {"not_applicable": why, "facts_version": registry.checks[check_id].facts_version}
    if target_thread:
        target_thread.join(max(0.0, started + context.timeout * 2 + GRACE_S - time.monotonic()))
    target = context.target_if_probed() or {}
    if with_target and not target:
        target = {"requested": context.python, "error": "target probe did not finish"}
    snapshot = new_snapshot(platform, target, facts, meta)
    return redactor.obj(snapshot)


def _not_applicable(check, platform: dict) -> str:
    """Why ``check`` means nothing on this platform, or '' (a plugin's ``applies`` that raises is
    asked again by the rules' run, which reports it)."""
    try:
        return (check.applies(platform) or "") if check.applies else ""
    except Exception:  # noqa: BLE001
        return ""


def with_requirements(registry: Registry, check_ids: list) -> list:
    """``check_ids`` and, after them, every check they declare they read (transitively)."""
    wanted = list(check_ids)
    for check_id in wanted:  # grows while it is walked
        for required in registry.checks[check_id].requires if check_id in registry.checks else ():
            if required in registry.checks and required not in wanted:
                wanted.append(required)
    return wanted


def collect_live(registry: Registry, config: Config, check_ids: list, python: str,
                 offline: bool = False, with_target: bool = False, options: Optional[dict] = None,
                 *, target_started=None) -> dict:
    """``collect`` for this machine with the configuration's timeouts and redaction; the
    checks that ``check_ids`` require are probed too (their findings are not reported unless
    they were asked for).

    ``LLMDOCTOR_OFFLINE=1`` in the environment means the same as ``--offline`` everywhere
    (air-gapped machines, CI, tests that must not reach the internet).
    """
    check_ids = with_requirements(registry, check_ids)
    offline = offline or os.environ.get("LLMDOCTOR_OFFLINE", "").lower() in ("1", "true", "yes")
    context = ProbeContext(python=python, offline=offline, config=config,
                           timeout=float(config.threshold("probe_timeout_s")), options=dict(options or {}),
                           target_started=target_started)
    return collect(registry, check_ids, context, Redactor.from_environment(), with_target=with_target)


@dataclass
class Diagnosis:
    results: list = field(default_factory=list)  # CheckResult
    platform: dict = field(default_factory=dict)
    exit_code: int = 0
    target: dict = field(default_factory=dict)  # {"python", "how"}: the interpreter diagnosed

    def summary(self) -> dict:
        counts = {status: 0 for status in ("ok", "info", "warning", "error", "skipped")}
        findings = {severity: 0 for severity in ("info", "warning", "error")}
        acknowledged = 0
        for result in self.results:
            counts[result.status] += 1
            for finding in result.findings:
                if finding.acknowledged is not None:
                    acknowledged += 1
                elif finding.severity in findings:
                    findings[finding.severity] += 1
        return {**counts, "findings": findings, "acknowledged": acknowledged,
                "exit_code": self.exit_code}

    def all_findings(self) -> list:
        return [f for r in self.results for f in r.findings]

    def to_json(self) -> dict:
        from llmdoctor import __version__

        return {
            "schema": 1,
            "version": __version__,
            "platform": self.platform,
            **({"target": self.target} if self.target else {}),
            "checks": [r.to_json() for r in self.results],
            "summary": self.summary(),
        }


def _status_of(findings: list) -> str:
    live = [f for f in findings if f.acknowledged is None]
    if not live:
        return "ok"
    worst = max(live, key=lambda f: severity_rank(f.severity))
    return worst.severity


class _Traced(dict):
    """Facts from a snapshot file, remembering the last field the rules read: when rules
    fail on a malformed snapshot, that field is named (``gpus[0].memory_total``)."""

    def __init__(self, data: dict, path: str, trail: list) -> None:
        super().__init__(data)
        self._path, self._trail, self._children = path, trail, {}

    def _wrap(self, key, value):
        where = f"{self._path}.{key}" if self._path else str(key)
        self._trail[0] = where
        if isinstance(value, (dict, list)) and dict.get(self, key) is value:
            if key not in self._children:  # the same object each time: rules may compare identities
                self._children[key] = _trace(value, where, self._trail)
            return self._children[key]
        return _trace(value, where, self._trail)

    def __getitem__(self, key):
        return self._wrap(key, super().__getitem__(key))

    def get(self, key, default=None):
        return self._wrap(key, super().get(key, default))

    def items(self):
        return [(k, self._wrap(k, v)) for k, v in super().items()]

    def values(self):
        return [self._wrap(k, v) for k, v in super().items()]


class _TracedList(list):
    def __init__(self, data: list, path: str, trail: list) -> None:
        super().__init__(data)
        self._path, self._trail, self._children = path, trail, {}

    def _wrap(self, index: int, value):
        self._trail[0] = f"{self._path}[{index}]"
        if not isinstance(value, (dict, list)):
            return value
        if index not in self._children:
            self._children[index] = _trace(value, self._trail[0], self._trail)
        return self._children[index]

    def __getitem__(self, index):
        value = super().__getitem__(index)
        if isinstance(index, slice):
            return value
        return self._wrap(index if index >= 0 else len(self) + index, value)

    def __iter__(self):
        for index, value in enumerate(list.__iter__(self)):
            yield self._wrap(index, value)


def _trace(value, path: str, trail: list):
    if isinstance(value, dict) and not isinstance(value, _Traced):
        return _Traced(value, path, trail)
    if isinstance(value, list) and not isinstance(value, _TracedList):
        return _TracedList(value, path, trail)
    return value


def run_rules(check, facts: dict, context: RuleContext, *, from_file: bool = False) -> list:
    """The check's findings from ``facts``; rules that fail become one finding. Facts read from
    a snapshot file are traced, so a malformed one is reported naming the field."""
    if "probe_error" in facts:
        return [Finding(
            id=f"{check.id}.probe-failed",
            severity="warning",
            message=f"could not examine {check.title.lower()}: {facts['probe_error']}",
            details="The probe records why it failed instead of guessing; the other checks ran.",
        )]
    trail = [""]
    try:
        findings = list(check.rules(_trace(facts, "", trail) if from_file else facts, context))
        for finding in findings:
            if not isinstance(finding, Finding):
                raise TypeError(f"rules returned {type(finding).__name__}, not a Finding")
        return findings
    except Exception as exc:
        if from_file:
            return [Finding(
                id=f"{check.id}.malformed-facts", severity="error",
                message=f"the snapshot's facts for '{check.id}' are malformed"
                        + (f" at {trail[0]}" if trail[0] else "") + f" ({type(exc).__name__}: {str(exc)[:200]})",
                details="The snapshot was edited, damaged, or written by an llmdoctor whose facts differ; "
                        "the other checks were judged.", facts={"check": check.id, "field": trail[0]})]
        import traceback

        return [Finding(
            id=f"{check.id}.rules-failed",
            severity="error",
            message=f"internal error in the rules of '{check.id}': {type(exc).__name__}: {exc}",
            details="".join(traceback.format_exception_only(type(exc), exc)).strip(),
        )]


def diagnose(
    snapshot: dict,
    registry: Registry,
    config: Config,
    *,
    check_ids: list,
    skipped_by_user: Optional[dict] = None,
    strict: bool = False,
    today=None,
) -> Diagnosis:
    skipped_by_user = skipped_by_user or {}
    platform = snapshot["platform"]
    context = RuleContext(platform=platform, config=config, all_facts=snapshot["facts"])
    choice = snapshot.get("target_choice")
    diagnosis = Diagnosis(platform=platform, target=dict(choice) if isinstance(choice, dict) else {})
    for check_id in check_ids:
        check = registry.checks[check_id]
        source = registry.source_of("check", check_id)
        if check_id in skipped_by_user:
            diagnosis.results.append(CheckResult(check_id, check.title, "skipped",
                                                 reason=skipped_by_user[check_id], source=source))
            continue
        reason = _not_applicable(check, platform)
        if reason:
            diagnosis.results.append(CheckResult(check_id, check.title, "skipped", reason=reason,
                                                 source=source))
            continue
        facts = snapshot["facts"].get(check_id)
        if facts is None:
            diagnosis.results.append(CheckResult(
                check_id, check.title, "skipped", source=source,
                reason="the snapshot has no facts for this check"))
            continue
        facts, why_not = facts_of_this_version(check, facts, snapshot)
        if why_not:
            diagnosis.results.append(CheckResult(check_id, check.title, "skipped", reason=why_not, source=source))
            continue
        started = time.monotonic()
        findings = run_rules(check, facts, context, from_file=bool(snapshot.get("loaded_from")))
        probe_meta = snapshot.get("probes", {}).get(check_id)
        recorded = probe_meta.get("duration_ms") if isinstance(probe_meta, dict) else None
        duration = (time.monotonic() - started) * 1000 + (
            recorded if isinstance(recorded, (int, float)) and not isinstance(recorded, bool)
            and 0 <= recorded < 1e9 else 0.0)
        diagnosis.results.append(CheckResult(check_id, check.title, "ok", findings, duration,
                                             source=source))

    ran = {r.check_id for r in diagnosis.results if r.status != "skipped"}
    meta_findings = _plugin_findings(registry) + _apply_acknowledgements(
        diagnosis.all_findings(), config, ran, today)
    _resolve_root_causes(diagnosis.all_findings())
    for result in diagnosis.results:
        if result.status != "skipped":
            result.status = _status_of(result.findings)
    plugin = [f for f in meta_findings if f.id.startswith("plugins.")]
    configuration = [f for f in meta_findings if f.id.startswith("config.")]
    if plugin:
        diagnosis.results.append(CheckResult("plugins", "Plugins", _status_of(plugin), plugin))
    if configuration:
        diagnosis.results.append(CheckResult("config", "Configuration", _status_of(configuration),
                                             configuration))
    diagnosis.exit_code = exit_code_for(diagnosis.all_findings(), strict)
    return diagnosis


def facts_of_this_version(check, facts: dict, snapshot: dict) -> tuple:
    """(facts this llmdoctor's rules read, or why they cannot): a snapshot's facts of another
    version are migrated by the check when it knows how, else the check is not judged."""
    meta = (snapshot.get("probes") or {}).get(check.id)
    recorded = meta.get("facts_version", 1) if isinstance(meta, dict) else 1
    if not isinstance(recorded, int) or isinstance(recorded, bool) or recorded < 1:
        return facts, f"the snapshot's facts version for this check is not a version number ({recorded!r:.40})"
    if recorded == check.facts_version:
        return facts, ""
    made_by = snapshot.get("llmdoctor_version", "another llmdoctor")
    if recorded > check.facts_version:
        return facts, (f"the snapshot holds version {recorded} of this check's facts (llmdoctor {made_by}); this "
                       f"llmdoctor reads version {check.facts_version}: upgrade llmdoctor to judge it")
    migrated = check.migrate(dict(facts), recorded) if check.migrate else None
    if migrated is None:
        return facts, (f"the snapshot holds version {recorded} of this check's facts (llmdoctor {made_by}), which "
                       f"this llmdoctor (version {check.facts_version}) cannot read: collect the snapshot again")
    return migrated, ""


def exit_code_for(findings: list, strict: bool) -> int:
    live = [f for f in findings if f.acknowledged is None]
    if any(f.severity == "error" for f in live):
        return 1
    if strict and any(f.severity == "warning" for f in live):
        return 1
    return 0


def _plugin_findings(registry: Registry) -> list:
    return [
        Finding(
            id="plugins.load-failed",
            severity="warning",
            message=f"plugin {error.source} could not be loaded ({error.group} '{error.name}'): "
                    f"{error.error}",
            details=f"Entry point {error.name} = {error.value}. The other checks ran; "
                    f"reinstall or remove the package that provides it.",
        )
        for error in registry.errors
    ]


def _apply_acknowledgements(findings: list, config: Config, ran: set, today) -> list:
    extra = []
    for ack in config.acknowledge:
        matched = [f for f in findings if fnmatch.fnmatchcase(f.id, ack.id)]
        if ack.expired(today):
            if matched:
                extra.append(Finding(
                    id="config.acknowledgement-expired",
                    severity="warning",
                    message=f"the acknowledgement of {ack.id} expired on {ack.expires}; "
                            f"it counts again",
                    details=f"Reason given: {ack.reason}. Renew the date in {config.source} "
                            f"or fix the finding.",
                ))
            continue
        for finding in matched:
            finding.acknowledged = ack.reason
        check_of_ack = ack.id.split(".", 1)[0]
        if not matched and check_of_ack in ran:
            extra.append(Finding(
                id="config.acknowledgement-stale",
                severity="info",
                message=f"the acknowledgement of {ack.id} matches nothing any more; "
                        f"remove it from {config.source}",
                details=f"Reason given: {ack.reason}.",
            ))
    return extra


def _resolve_root_causes(findings: list) -> None:
    """Drop links to roots that are not present, so a consequence stands on its own."""
    present = {f.id for f in findings}
    for finding in findings:
        if finding.caused_by and finding.caused_by not in present:
            finding.caused_by = None
