"""The `require-packages` fix: install, in the target interpreter, the packages a team's
requirements name in the versions they ask for (``--require FILE`` or ``[require.packages]``).

One ``pip install 'name<spec>' ...`` of exactly the unmet ones (pip picks the newest version
in range); the versions it replaces are journaled, so ``llmdoctor undo`` puts them back (or
removes what was not there). Verified by the ``require`` check.
"""

from __future__ import annotations

from llmdoctor.actions import PipInstall
from llmdoctor.models import Fix, FixContext, Plan


def plan(context: FixContext) -> Plan:
    result = Plan("require-packages", "install the package versions the requirements ask for")
    unmet = [f for f in context.findings if f.id == "require.packages" and f.facts.get("package")]
    if not unmet:
        return result
    python = ((context.facts.get("require") or {}).get("python") or {}).get("executable") or context.python
    specs = [f"{f.facts['package']}{f.facts.get('required') or ''}" for f in unmet]
    result.actions.append(PipInstall(python, tuple(specs)))
    result.notes.append("pip chooses the newest version in each range from the indexes pip is configured with.")
    return result


FIX = Fix(
    id="require-packages",
    title="Install the package versions a team's requirements ask for",
    checks=("require",),
    plan=plan,
    applicability="safe",
    scope="user",
    undoable=True,
)
