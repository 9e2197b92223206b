"""``check --format npd``: one short line for a Kubernetes node-problem-detector custom plugin.

The plugin interface (https://github.com/kubernetes/node-problem-detector/blob/master/docs/custom_plugin_monitor.md):
exit 0 healthy, 1 a problem, anything else unknown; the standard output is the condition's
message, cut at the plugin's ``max_output_length`` (80 by default). llmdoctor's own exit
codes already follow it: 0 healthy, 1 errors, 2 a usage error (unknown).
"""

from __future__ import annotations

MAX_LENGTH = 80


def render_npd(diagnosis, limit: int = MAX_LENGTH) -> str:
    live = [f for f in diagnosis.all_findings() if f.acknowledged is None]
    errors = [f for f in live if f.severity == "error"]
    roots = [f for f in errors if not f.caused_by] or errors
    if diagnosis.exit_code == 0:
        warnings = sum(1 for f in live if f.severity == "warning")
        ran = sum(1 for r in diagnosis.results if r.status != "skipped")
        line = f"llmdoctor: healthy ({ran} checks" + (f", {warnings} warnings)" if warnings else ")")
    else:
        ids = []
        for finding in roots:
            if finding.id not in ids:
                ids.append(finding.id)
        line = f"llmdoctor: {ids[0] if ids else 'problem'}" + (f" (+{len(ids) - 1} more)" if len(ids) > 1 else "")
        if roots:
            line += f": {roots[0].message}"
    return line if len(line) <= limit else line[: limit - 3] + "..."
