"""The plain data that flows through the doctor: checks, findings, results, fixes and plans.

Probes produce facts (JSON-able dicts), rules turn facts into :class:`Finding` objects,
fixes turn findings into a :class:`Plan` of typed actions (see ``llmdoctor.actions``).
Nothing here touches the machine, except that ``ProbeContext.target()`` starts the target
interpreter's probe on first use (in ``llmdoctor.target``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

SEVERITIES = ("ok", "info", "warning", "error")
STATUSES = ("ok", "info", "warning", "error", "skipped")
APPLICABILITIES = ("safe", "unsafe", "display-only")
SCOPES = ("process", "user", "machine")
AFTERWARDS = ("nothing", "new-terminal", "log-off")

Facts = dict  # JSON-able facts of one check


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass
class Finding:
    """One diagnosis: a stable id, a severity, one line, details, and the fixes that resolve it."""

    id: str
    severity: str
    message: str
    details: str = ""
    fixes: list[str] = field(default_factory=list)
    caused_by: Optional[str] = None  # id of the finding that is the root cause of this one
    facts: dict = field(default_factory=dict)  # the facts behind it, shown with -v
    acknowledged: Optional[str] = None  # the reason, when the configuration acknowledges it

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"finding {self.id}: unknown severity {self.severity!r}")

    def to_json(self) -> dict:
        data: dict[str, Any] = {
            "id": self.id,
            "severity": self.severity,
            "message": self.message,
            "details": self.details,
            "fixes": list(self.fixes),
        }
        if self.caused_by:
            data["caused_by"] = self.caused_by
        if self.acknowledged is not None:
            data["acknowledged"] = self.acknowledged
        if self.facts:
            data["facts"] = self.facts
        return data


class _Once:
    """A value computed on first use, once, whichever probe thread asks first."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.value: Optional[dict] = None


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may know about the run: the target interpreter, options and thresholds."""

    python: str
    offline: bool = False
    config: Any = None  # llmdoctor.config.Config
    timeout: float = 5.0
    options: dict = field(default_factory=dict)  # set by fixes, e.g. {"hf_candidates": [url]}
    # the target's probe, already started (``llmdoctor.target.start_probe``) by a run that needs it
    target_started: Any = None
    _target: _Once = field(default_factory=_Once, repr=False, compare=False)

    def target(self) -> dict:
        """Facts of the target interpreter (versions, paths), probed on first use only:
        starting another Python costs a tenth of a second that most checks do not need."""
        with self._target.lock:
            if self._target.value is None:
                if self.target_started is not None and self.target_started.python == self.python:
                    self._target.value = self.target_started.result()
                else:
                    from llmdoctor.target import probe_target

                    self._target.value = probe_target(self.python, timeout=self.timeout * 2)
            return self._target.value

    def target_if_probed(self) -> Optional[dict]:
        return self._target.value


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know besides its own facts: the platform and the configuration."""

    platform: dict
    config: Any = None  # llmdoctor.config.Config
    all_facts: dict = field(default_factory=dict)  # facts of every check, for cross-check rules


@dataclass(frozen=True)
class FindingKind:
    """The catalogue entry of one kind of finding, declared beside the rule that emits it (as
    ruff documents each rule): what it says, why it matters, how to resolve it, and the public
    sources that establish it. ``llmdoctor explain ID`` prints it.

    ``severity`` is the usual one; a rule may raise or lower it with the circumstances (a
    full disk is an error, a nearly full one a warning), which ``severities`` lists.
    """

    id: str
    severity: str
    summary: str
    why: str = ""
    fix: str = ""  # how to resolve it, in words
    fixes: tuple = ()  # ids of the llmdoctor fixes that resolve it
    references: tuple = ()  # public URLs: vendor documentation, source files at a tag, issue threads
    severities: tuple = ()  # every severity it may have, when more than one

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES or any(s not in SEVERITIES for s in self.severities):
            raise ValueError(f"finding kind {self.id}: unknown severity")
        for url in self.references:
            if not url.startswith("https://"):
                raise ValueError(f"finding kind {self.id}: a reference must be a public https URL: {url!r}")

    def to_json(self) -> dict:
        return {"id": self.id, "severity": self.severity, "severities": list(self.severities or (self.severity,)),
                "summary": self.summary, "why": self.why, "fix": self.fix, "fixes": list(self.fixes),
                "references": list(self.references)}


@dataclass(frozen=True)
class Check:
    """A diagnosis area: a probe (I/O, returns facts) and rules (pure, facts -> findings).

    ``applies`` decides from the platform facts whether the check means anything on the
    machine the facts came from; when it returns a reason, the check is ``skipped``.
    """

    id: str
    title: str
    probe: Callable[[ProbeContext], Facts]
    rules: Callable[[Facts, RuleContext], list]
    applies: Optional[Callable[[dict], Optional[str]]] = None
    timeout: float = 5.0
    smoke: tuple = ()  # SmokeTest objects this area brings
    order: int = 100  # place in the report: the stack from the bottom up, plugins last
    deep_timeout: float = 0.0  # extra seconds the probe may take under 'check --deep'
    # the checks whose facts these rules read (``RuleContext.all_facts``): probed whenever this
    # one runs, even when --only or --skip leaves them out, so a selection never changes a verdict
    requires: tuple = ()
    # the version of the facts the probe writes: raised when their meaning changes, so that a
    # snapshot from another llmdoctor is migrated (``migrate(facts, version)`` returns facts of
    # this version, or None when it cannot) or reported as one this llmdoctor cannot judge
    facts_version: int = 1
    migrate: Optional[Callable[[Facts, int], Optional[Facts]]] = None
    findings: tuple = ()  # FindingKind of every finding its rules emit: the catalogue


@dataclass(frozen=True)
class SmokeTest:
    """A small end-to-end proof, run in a subprocess with a timeout.

    ``target`` names a function ``module:function`` that takes a dict of options and
    returns a dict with ``status`` (pass/fail/skipped), ``message`` and optional figures.
    """

    id: str
    title: str
    target: str
    timeout: float = 60.0


@dataclass
class CheckResult:
    check_id: str
    title: str
    status: str
    findings: list[Finding] = field(default_factory=list)
    duration_ms: float = 0.0
    reason: str = ""  # why it was skipped
    source: str = ""  # the distribution that provides it

    def to_json(self) -> dict:
        data: dict[str, Any] = {
            "id": self.check_id,
            "title": self.title,
            "status": self.status,
            "findings": [f.to_json() for f in self.findings],
            "duration_ms": round(self.duration_ms, 1),
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass
class Plan:
    """What a fix would do: typed actions, plus words for what cannot be scripted.

    Its scope, administrator rights and whether new terminals are needed afterwards are
    derived from its actions, never declared beside them.
    """

    fix_id: str
    summary: str
    actions: list = field(default_factory=list)  # llmdoctor.actions.Action
    notes: list[str] = field(default_factory=list)
    manual_steps: list[str] = field(default_factory=list)
    afterwards: Optional[str] = None  # only for what actions cannot say ("log-off")
    unsafe: Optional[str] = None  # why this plan needs --unsafe (a system package manager, say)
    alternatives: list[str] = field(default_factory=list)  # other routes, one line each

    @property
    def is_empty(self) -> bool:
        return not self.actions and not self.manual_steps

    @property
    def scope(self) -> str:
        return "machine" if any(a.scope == "machine" for a in self.actions) else "user"

    @property
    def needs_admin(self) -> bool:
        return any(a.needs_admin for a in self.actions)

    @property
    def new_terminal(self) -> bool:
        return any(a.new_terminal for a in self.actions)

    def after_change(self, default: str = "nothing") -> str:
        """What the user must do before the change is seen: from the actions, else ``default``
        (the fix's declaration, for a plan that has only manual steps)."""
        if self.afterwards:
            return self.afterwards
        if self.actions:
            return "new-terminal" if self.new_terminal else "nothing"
        return default


@dataclass(frozen=True)
class FixContext:
    """What a fix's planner sees: the fresh facts and findings, options and backends."""

    facts: dict
    findings: list
    platform: dict
    python: str
    config: Any = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Fix:
    """A scripted repair, with what ruff calls applicability and what it will touch.

    ``plan`` is pure: it turns facts and findings into a :class:`Plan`. The executor
    applies it; afterwards the ``checks`` are re-run and ``smoke`` tests prove it.
    """

    id: str
    title: str
    checks: tuple
    plan: Callable[[FixContext], Plan]
    applicability: str = "safe"
    # what ``list`` says before any plan exists: the scope of the default route, and the
    # other routes with theirs ({"apt-get": "machine"}); a plan's header derives its own
    scope: str = "user"
    needs_admin: bool = False
    undoable: bool = True
    afterwards: str = "nothing"
    routes: tuple = ()  # (name, scope) of the routes ``--route`` may choose
    smoke: tuple = ()  # ids of smoke tests that prove it
    # facts for verification when the fix changes what *new* processes see (a startup
    # file) rather than this one: returns {check_id: facts}, or None to re-probe as usual
    reprobe: Optional[Callable[[str], Optional[dict]]] = None  # gets the target interpreter

    def __post_init__(self) -> None:
        if self.applicability not in APPLICABILITIES:
            raise ValueError(f"fix {self.id}: applicability must be one of {APPLICABILITIES}")
        if self.scope not in SCOPES:
            raise ValueError(f"fix {self.id}: scope must be one of {SCOPES}")
        if self.afterwards not in AFTERWARDS:
            raise ValueError(f"fix {self.id}: afterwards must be one of {AFTERWARDS}")
