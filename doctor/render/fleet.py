"""``llmdoctor report`` for people: text for a terminal, and one self-contained HTML page
(no external assets: styles and the table sorter are inline) with the same content."""

from __future__ import annotations

import html

MARK = {"ok": "ok", "info": "i", "warning": "!", "error": "X", "skipped": "-", "absent": " "}
SHOWN = 8  # machine names listed per line before "+N more"


def _names(names: list) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f", +{len(names) - SHOWN} more" if len(names) > SHOWN else "")


def render_text(report: dict) -> str:
    lines = [f"llmdoctor report: {report['machines']} machines, {report['with_errors']} with errors"
             + (f"; {len(report['unreadable'])} files unreadable" if report["unreadable"] else "")]
    for bad in report["unreadable"]:
        lines.append(f"  unreadable: {bad['file']}: {bad['why']}")
    lines.append("")
    lines.append("Problems, by root finding:" if report["problems"] else "Problems: none")
    for problem in report["problems"]:
        lines.append(f"  {problem['severity']:<7} {problem['id']}: {problem['count']} of {problem['of']}: "
                     f"{_names(problem['machines'])}")
        lines.append(f"          e.g. {problem['example']}"
                     + (f" ({problem['distinct_messages']} variants)" if problem["distinct_messages"] > 1 else ""))
    lines.append("")
    lines.append("Stack across machines (most common first):")
    for component, values in report["stack"].items():
        parts = []
        for entry in values:
            who = f": {_names(entry['machines'])}" if entry is not values[0] and entry["count"] <= SHOWN else ""
            parts.append(f"{entry['value']} ({entry['count']}{who})")
        lines.append(f"  {component:<14} " + " · ".join(parts))
    if report["differ"]:
        lines.append("")
        lines.append("Machines that differ from the majority:")
        for entry in report["differ"]:
            lines.append(f"  {entry['machine']}: " + "; ".join(
                f"{d['component']} {d['value']} (most: {d['majority']})" for d in entry["differences"]))
    lines.append("")
    checks = report["checks"]
    lines.append("Machines x checks (ok, i info, ! warning, X error, - skipped):")
    width = max([len(row["machine"]) for row in report["matrix"]] + [7])
    lines.append("  " + "machine".ljust(width) + "  " + "  ".join(checks))
    for row in report["matrix"]:
        cells = "  ".join(MARK.get(row["statuses"][c], "?").center(len(c)) for c in checks)
        lines.append("  " + row["machine"].ljust(width) + "  " + cells)
    return "\n".join(lines) + "\n"


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
th{background:#f6f8fa;cursor:pointer;user-select:none;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.ok{background:#dafbe1}td.info{background:#ddf4ff}td.warning{background:#fff8c5}td.error{background:#ffebe9}
td.skipped,td.absent{color:#8c959f}.sev-error{color:#cf222e;font-weight:600}.sev-warning{color:#9a6700}
.muted{color:#57606a}
"""

SORTER = r"""
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var ascending = !th.classList.contains("sorted-asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute("data-key") || a.cells[column].textContent;
        var y = b.cells[column].getAttribute("data-key") || b.cells[column].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
// #sort=TABLE:COLUMN (or :COLUMN:desc) in the address sorts a table on load: a link can keep an order
var wanted = /^#sort=([\w-]+):(\d+)(:desc)?$/.exec(location.hash);
if (wanted) {
  var header = document.querySelectorAll("#" + wanted[1] + " th")[+wanted[2]];
  if (header) { header.click(); if (wanted[3]) { header.click(); } }
}
document.body.setAttribute("data-sortable", "ready");
"""

RANK = {"error": 0, "warning": 1, "info": 2, "ok": 3, "skipped": 4, "absent": 5}


def render_html(report: dict) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>llmdoctor fleet report</title>", f"<style>{STYLE}</style></head><body>",
             f"<h1>llmdoctor report: {report['machines']} machines, {report['with_errors']} with errors</h1>"]
    if report["unreadable"]:
        parts.append("<p class=muted>Unreadable: " + "; ".join(
            f"{e(b['file'])} ({e(b['why'])})" for b in report["unreadable"]) + "</p>")
    parts.append("<h2>Problems, by root finding</h2>")
    if report["problems"]:
        parts.append('<table class="sortable" id="problems"><thead><tr><th>severity</th><th>finding</th>'
                     "<th>machines</th><th>which</th><th>example</th></tr></thead><tbody>")
        for p in report["problems"]:
            parts.append(f'<tr><td class="sev-{e(p["severity"])}" data-key="{RANK[p["severity"]]}">{e(p["severity"])}'
                         f'</td><td>{e(p["id"])}</td><td data-key="{p["count"]}">{p["count"]} of {p["of"]}</td>'
                         f'<td>{e(", ".join(p["machines"]))}</td><td>{e(p["example"])}</td></tr>')
        parts.append("</tbody></table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Stack across machines</h2><table><thead><tr><th>component</th><th>versions (machines)</th>"
                 "</tr></thead><tbody>")
    for component, values in report["stack"].items():
        cells = " · ".join(f"<span title=\"{e(', '.join(v['machines']))}\">{e(v['value'])} ({v['count']})</span>"
                           for v in values)
        parts.append(f"<tr><td>{e(component)}</td><td>{cells}</td></tr>")
    parts.append("</tbody></table>")
    if report["differ"]:
        parts.append("<h2>Machines that differ from the majority</h2><ul>")
        for entry in report["differ"]:
            parts.append(f"<li>{e(entry['machine'])}: " + "; ".join(
                f"{e(d['component'])} {e(d['value'])} (most: {e(d['majority'])})" for d in entry["differences"])
                + "</li>")
        parts.append("</ul>")
    checks = report["checks"]
    parts.append('<h2>Machines x checks</h2><table class="sortable" id="matrix"><thead><tr><th>machine</th>'
                 "<th>errors</th>" + "".join(f"<th>{e(c)}</th>" for c in checks) + "</tr></thead><tbody>")
    for row in report["matrix"]:
        cells = "".join(f'<td class="{e(row["statuses"][c])}" data-key="{RANK.get(row["statuses"][c], 9)}"'
                        f' title="{e(c)}">{e(row["statuses"][c])}</td>' for c in checks)
        parts.append(f'<tr><td>{e(row["machine"])}</td><td data-key="{len(row["errors"])}">'
                     f'{e(", ".join(row["errors"]) or "-")}</td>{cells}</tr>')
    parts.append("</tbody></table>")
    parts.append(f"<script>{SORTER}</script></body></html>")
    return "\n".join(parts) + "\n"
