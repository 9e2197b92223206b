"""A paste-ready Markdown report for a bug tracker: a table of checks, then each finding
with its fix command, details collapsed under ``<details>``."""

from __future__ import annotations

import html
import json

from llmdoctor.render.text import fix_command

ICONS = {"ok": "✅", "info": "ℹ️", "warning": "⚠️", "error": "❌", "skipped": "⏭️"}


def render_markdown(diagnosis) -> str:
    from llmdoctor import __version__

    platform = diagnosis.platform
    lines = [
        f"### llmdoctor {__version__} report",
        "",
        f"**Platform:** {platform.get('system', '?')} {platform.get('release', '')} "
        f"({platform.get('machine', '')}), Python {platform.get('python', '?')}"
        + (f"; diagnosing `{diagnosis.target.get('python')}` ({diagnosis.target.get('how')})"
           if diagnosis.target.get("python") else ""),
        "",
        "| | Check | Status | Findings |",
        "|---|---|---|---|",
    ]
    for result in diagnosis.results:
        live = [f for f in result.findings if f.severity != "ok"]
        lines.append(f"| {ICONS[result.status]} | {result.title} (`{result.check_id}`) | "
                     f"{result.status}{' — ' + result.reason if result.reason else ''} | {len(live)} |")
    lines.append("")
    for result in diagnosis.results:
        problems = [f for f in result.findings if f.severity != "ok"]
        if not problems:
            continue
        lines.append(f"#### {ICONS[result.status]} {result.title}")
        lines.append("")
        for finding in problems:
            suffix = ""
            if finding.acknowledged is not None:
                suffix = f" _(acknowledged: {finding.acknowledged})_"
            elif finding.caused_by:
                suffix = f" _(a consequence of `{finding.caused_by}`)_"
            lines.append(f"- {ICONS[finding.severity]} **{finding.message}** `{finding.id}`{suffix}")
            if finding.fixes:
                lines.append(f"  - fix: `{fix_command(finding.fixes)}`")
            if finding.details or finding.facts:
                body = html.escape(finding.details)
                if finding.facts:
                    body += "\n\n" + html.escape(json.dumps(finding.facts, indent=2, sort_keys=True))
                lines.append("  <details><summary>details</summary>")
                lines.append("")
                lines.append("  <pre>" + body.replace("\n", "\n  ") + "</pre>")
                lines.append("  </details>")
        lines.append("")
    summary = diagnosis.summary()
    lines.append("**Summary:** " + ", ".join(
        f"{summary[s]} {s}" for s in ("error", "warning", "info", "ok", "skipped")) +
        f"; exit code {diagnosis.exit_code}")
    return "\n".join(lines) + "\n"
