"""The terminal report: checks grouped with a glyph per status, one line per finding with
the command that fixes it, root causes shown once with their consequences folded under
them, and a summary line. ``-v`` adds details and the facts behind each finding."""

from __future__ import annotations

import io
import re

GLYPHS = {"ok": ("✓", "green"), "info": ("•", "cyan"), "warning": ("!", "yellow"),
          "error": ("✗", "red"), "skipped": ("-", "dim")}
ASCII_GLYPHS = {"ok": "OK", "info": "i", "warning": "!", "error": "X", "skipped": "-"}


def glyph(status: str, ascii_only: bool) -> str:
    if ascii_only:
        return ASCII_GLYPHS[status]
    return GLYPHS[status][0]


def fix_command(fix_ids: list) -> str:
    return "llmdoctor fix " + " ".join(f"--{f}" for f in fix_ids)


class _PlainConsole:
    """Rich's markup without rich: for pipes and logs, where colour is off anyway and
    importing rich would cost a tenth of ``llmdoctor check``'s time. Text passes through
    ``_escape``, which hides its brackets from the tag pattern."""

    TAG = re.compile(r"\[/?[a-z ]*\]")

    def __init__(self, file) -> None:
        self.file = file

    def print(self, text: str = "") -> None:
        plain = self.TAG.sub("", text.replace("\\[", _BRACKET))  # the templates' own \[ is a bracket
        self.file.write(plain.replace(_BRACKET, "[").replace(_BACKSLASH, "\\") + "\n")


_BRACKET, _BACKSLASH = "\x00", "\x01"


def _escape(text: str) -> str:
    return text.replace("\\", _BACKSLASH).replace("[", _BRACKET)


def render_diagnosis(diagnosis, verbose: bool = False, color: bool = False,
                     ascii_only: bool = False, width: int = 100) -> str:
    buffer = io.StringIO()
    if color:
        from rich.console import Console
        from rich.markup import escape as rich_escape

        from llmdoctor.render.safe_text import neutralise

        def escape(text: str) -> str:
            return rich_escape(neutralise(text))

        console = Console(file=buffer, force_terminal=True, width=width, highlight=False, soft_wrap=True)
    else:
        console, escape = _PlainConsole(buffer), _escape
    findings = diagnosis.all_findings()
    by_id = {}
    for result in diagnosis.results:
        for finding in result.findings:
            by_id.setdefault(finding.id, (result, finding))
    consequences: dict = {}
    for finding in findings:
        if finding.caused_by:
            consequences.setdefault(finding.caused_by, []).append(finding)

    platform = diagnosis.platform
    target = diagnosis.target
    diagnosing = (f"; diagnosing {escape(str(target.get('python')))} ({escape(str(target.get('how')))})"
                  if target.get("python") else "")
    console.print(f"[bold]llmdoctor[/bold] on {escape(str(platform.get('system', '?')))} "
                  f"{escape(str(platform.get('release', '')))} ({escape(str(platform.get('machine', '')))}), "
                  f"Python {escape(str(platform.get('python', '?')))}{diagnosing}")
    for result in diagnosis.results:
        mark = glyph(result.status, ascii_only)
        style = GLYPHS[result.status][1]
        timing = f" [dim]({result.duration_ms:.0f} ms)[/dim]" if result.duration_ms else ""
        reason = f" [dim]— {escape(result.reason)}[/dim]" if result.reason else ""
        console.print(f"[{style}]\\[{escape(mark)}][/{style}] [bold]{escape(result.title)}[/bold]"
                      f"{reason}{timing}")
        for finding in result.findings:
            _render_finding(console, finding, consequences, by_id, verbose, ascii_only, escape)
    summary = diagnosis.summary()
    parts = [f"{summary[s]} {s}" for s in ("error", "warning", "info", "ok", "skipped") if summary[s]]
    counts = summary["findings"]
    problems = counts["error"] + counts["warning"]
    count = len(diagnosis.results)
    line = (f"Summary: {count} check{'s' if count != 1 else ''} ({', '.join(parts) or 'none'}); "
            f"{problems} problem{'s' if problems != 1 else ''}")
    if summary["acknowledged"]:
        line += f", {summary['acknowledged']} acknowledged"
    roots = sum(1 for f in findings if f.id in consequences)
    if roots:
        line += f"; {roots} root cause{'s' if roots != 1 else ''} explain{'s' if roots == 1 else ''} " \
                f"{sum(len(v) for v in consequences.values())} other finding(s)"
    console.print()
    console.print(line + f". Exit code {diagnosis.exit_code}.")
    return buffer.getvalue()


def _render_finding(console, finding, consequences, by_id, verbose, ascii_only, escape) -> None:
    mark = glyph(finding.severity, ascii_only)
    style = GLYPHS[finding.severity][1]
    if finding.acknowledged is not None:
        console.print(f"    [dim]{escape(mark)} {escape(finding.message)} "
                      f"(acknowledged: {escape(finding.acknowledged)})[/dim]")
        return
    if finding.caused_by and finding.caused_by in by_id:
        console.print(f"    [dim]{escape(mark)} {escape(finding.message)} "
                      f"— a consequence of {escape(finding.caused_by)}, shown above[/dim]")
        return
    console.print(f"    [{style}]{escape(mark)}[/{style}] {escape(finding.message)}")
    if finding.fixes:
        arrow = "->" if ascii_only else "→"
        console.print(f"      [bold]{arrow} {escape(fix_command(finding.fixes))}[/bold]")
    for consequence in consequences.get(finding.id, []):
        origin = by_id.get(consequence.id, (None, None))[0]
        where = f" ({origin.check_id})" if origin else ""
        branch = "`-" if ascii_only else "↳"
        console.print(f"      [dim]{branch} which causes: {escape(consequence.message)}{escape(where)}[/dim]")
    if verbose:
        if finding.details:
            for line in finding.details.splitlines():
                console.print(f"      [dim]{escape(line)}[/dim]")
        if finding.facts:
            import json

            console.print(f"      [dim]facts: {escape(json.dumps(finding.facts, sort_keys=True))}[/dim]")
        shown = escape(finding.id)
        console.print(f"      [dim]id: {shown}; what it means: llmdoctor explain {shown}[/dim]")
