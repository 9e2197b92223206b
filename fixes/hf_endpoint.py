"""The `hf-endpoint` fix: persist HF_ENDPOINT for new terminals, pointing at a mirror that
passed the three-step verification.

The mirror is ``--mirror URL``, else the fastest of ``[hf] mirrors`` in the configuration
that passes; there is no built-in default, since sending someone's downloads to a
third-party mirror is their choice. Scope: the user (a marked block in the shell's startup
file, plus the active conda env's variables when one is active; on Windows the user
environment). With the mirror failing any step, nothing is changed. Verified in a fresh
login shell; journaled; ``llmdoctor undo`` restores the previous state byte for byte.
"""

from __future__ import annotations

import os
from typing import Optional

from llmdoctor.actions import BroadcastEnvironment, SetEnvVar, SetJsonValue, SetShellBlock
from llmdoctor.checks.hf_endpoint import network_findings, probe_hf
from llmdoctor.knowledge.hf import intended_endpoint, is_http_url
from llmdoctor.knowledge.shells import startup_file
from llmdoctor.models import Fix, FixContext, Plan
from llmdoctor.shellenv import block_lines, new_terminal_reprobe, quote_for_shell


def candidates(options: dict, config, environ: Optional[dict] = None) -> list:
    """Mirrors to verify: ``--mirror``; else the configuration's; else, when HF_ENDPOINT is set
    with stray quotes, spaces or a trailing slash, the URL it was meant to be."""
    mirror = options.get("mirror")
    if mirror:
        return [mirror]
    configured = list((config.hf if config is not None else {}).get("mirrors", []))
    if configured:
        return configured
    meant = intended_url((environ or {}).get("HF_ENDPOINT", ""))
    return [meant] if meant else []


def intended_url(value: str) -> Optional[str]:
    """``'https://m.example/'`` -> ``https://m.example``; None when already clean or no URL."""
    cleaned = intended_endpoint(value)
    if not value or cleaned == value or not is_http_url(cleaned):
        return None
    return cleaned


def _named_by_a_project(context: FixContext) -> Optional[str]:
    """The project file that named the mirrors, when the user did not (``--mirror``)."""
    config = context.config
    if context.options.get("mirror") or config is None or getattr(config, "origin", None) != "project":
        return None
    return config.source


def _verdict(steps: dict, repo: str) -> Optional[str]:
    """None when the mirror passes; else why not, in one line."""
    problems = [f for f in network_findings({"repo": repo, "env": {}}, steps, "mirror")
                if f.severity in ("warning", "error")]
    return problems[0].message if problems else None


def plan(context: FixContext) -> Plan:
    facts = context.facts.get("hf-endpoint") or {}
    result = Plan("hf-endpoint", "persist HF_ENDPOINT for new terminals")
    verified = facts.get("candidates") or []
    if not verified:
        result.manual_steps.append(
            "name the mirror to use: llmdoctor fix --hf-endpoint --mirror https://MIRROR (or list candidates "
            "under [hf] mirrors in the configuration); llmdoctor verifies it before saving it")
        return result
    passing = [(steps["endpoint"], steps["api"].get("elapsed_ms", 0)) for steps in verified
               if _verdict(steps, facts.get("repo", "")) is None]
    for steps in verified:
        why = _verdict(steps, facts.get("repo", ""))
        if why:
            result.notes.append(f"{steps['endpoint']} was not chosen: {why}")
    if not passing:
        result.manual_steps.append("no candidate mirror passed the verification (see above); nothing was saved")
        return result
    endpoint = min(passing, key=lambda pair: pair[1])[0]
    result.notes.append(f"{endpoint} passed: API, file metadata (X-Repo-Commit, ETag) and the large-file "
                        "hosts all answer.")
    project = _named_by_a_project(context)
    if project:
        result.notes.append(f"{endpoint} is named by {project}, a project's file, not by you.")
        result.unsafe = (f"the mirror comes from {project}, not from you; apply it with --mirror {endpoint} "
                         "if you trust it")
    try:
        quote_for_shell(context.platform.get("shell", ""), endpoint)
    except ValueError as exc:
        result.manual_steps.append(f"{endpoint!r} cannot be written into a startup file safely: {exc}")
        return result
    if context.platform.get("system") == "windows":
        result.actions += [SetEnvVar("user", "HF_ENDPOINT", endpoint, "REG_SZ"), BroadcastEnvironment()]
    else:
        shell = context.platform.get("shell", "")
        home = context.platform.get("home") or os.path.expanduser("~")
        lines = block_lines("hf-endpoint", shell, {"HF_ENDPOINT": endpoint})
        result.actions.append(SetShellBlock(startup_file(shell, home), "hf-endpoint", tuple(lines)))
    prefix = (facts.get("persisted") or {}).get("conda_prefix")
    if prefix:  # what 'conda env config vars set' writes; the file's other variables stay as they are
        result.actions.append(SetJsonValue(os.path.join(prefix, "conda-meta", "state"), ("env_vars", "HF_ENDPOINT"),
                                           endpoint, reason="the conda env's variables, set on activation"))
    result.notes.append("Notebooks and programs already running keep the old value; in a notebook set it before "
                        "importing huggingface_hub.")
    return result


def _endpoint_facts(environment: dict, python: str) -> dict:
    from llmdoctor.config import DEFAULT_HF, load_config

    config = load_config()
    timeout = float(config.threshold("network_timeout_s"))
    return {"hf-endpoint": probe_hf(environment, {**DEFAULT_HF, **config.hf}, timeout, False, None)}


FIX = Fix(
    id="hf-endpoint",
    title="Save HF_ENDPOINT for new terminals, pointing at a verified mirror",
    checks=("hf-endpoint",),
    plan=plan,
    applicability="safe",
    scope="user",
    undoable=True,
    afterwards="new-terminal",
    smoke=("hf-endpoint",),
    reprobe=new_terminal_reprobe(_endpoint_facts),
)
