"""Writes docs/findings.md from the finding kinds declared beside llmdoctor's rules.

    python docs/make_findings.py          # rewrite docs/findings.md
    python docs/make_findings.py --check  # exit 1 when it is out of date

Only llmdoctor's own checks are listed (third-party plugins are not loaded).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FINDINGS_MD = Path(__file__).resolve().parent / "findings.md"


def render() -> str:
    os.environ["LLMDOCTOR_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    from llmdoctor import catalogue
    from llmdoctor.registry import load_registry

    return catalogue.render_markdown(catalogue.entries(load_registry()))


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = FINDINGS_MD.read_text(encoding="utf-8") if FINDINGS_MD.exists() else ""
        if current != text:
            print(f"{FINDINGS_MD} is out of date: run python docs/make_findings.py", file=sys.stderr)
            return 1
        return 0
    FINDINGS_MD.write_text(text, encoding="utf-8")
    print(f"wrote {FINDINGS_MD} ({text.count('### ')} finding kinds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
