"""Writes doctor/help_text.py: the top-level help exactly as typer prints it at full width, for
``llmdoctor.entry``'s fast ``--help``. tests/test_startup.py fails when it is out of date.

    python tests/make_help_text.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "doctor" / "help_text.py"


def typer_help() -> str:
    """``llmdoctor --help`` through the typer application, as a wide terminal would get it."""
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0] = 'llmdoctor'; "
                             "from llmdoctor.cli import main; main()", "--help"],
                            capture_output=True, text=True, env=env, timeout=60, check=True)
    return result.stdout


def module_text(help_text: str) -> str:
    assert "'''" not in help_text and "\\" not in help_text
    return ('"""The top-level help, as typer prints it (written by tests/make_help_text.py; '
            'tests/test_startup.py\nkeeps it equal to typer\'s output)."""\n\n'
            f"TOP_LEVEL_HELP = '''{help_text}'''\n")


if __name__ == "__main__":
    TARGET.write_text(module_text(typer_help()), encoding="utf-8")
    print(f"wrote {TARGET}")
